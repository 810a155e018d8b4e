package cuda

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"github.com/apr-llm/apr/tensor"
	"github.com/ebitengine/purego"
)

// The one-kernel decode step (kernels/decode_mk.cuh): every layer and the
// LM head of a one-row step as one cooperative launch whose phases are
// separated by grid barriers, for models whose layer matrices are all of
// the types it takes, with ggml's F16 flash attention (GGUF numerics).

// mkDecode turns the one-kernel decode step on where the model allows it
// (a variable for the tests' comparisons; APR_CUDA_TUNE "mk" / "nomk").
var mkDecode = false

// mkTypes are the weight types decode_mk takes, with MKPart's type index.
var mkTypes = map[tensor.DType]int32{
	tensor.Q8_0: 0, tensor.Q4_0: 1, tensor.Q5_0: 2, tensor.Q4_K: 3, tensor.Q6_K: 5,
}

// mkThreads is decode_mk's block size (its __launch_bounds__).
const mkThreads = 256

// mkPart mirrors MKPart in kernels/decode_mk.cuh.
type mkPart struct {
	w, y, bias                    devptr
	rowBytes                      int64
	rows, cols, typ, rw, rpc, acc int32
}

// mkProd mirrors MKProd.
type mkProd struct {
	p                   [3]mkPart
	x, normW, act       devptr
	nparts, n, qk, silu int32
}

// mkLayer mirrors MKLayer.
type mkLayer struct {
	qkv, o, gu, down mkProd
	kc, vc           devptr
}

// mkArgs mirrors MK.
type mkArgs struct {
	layers                                     devptr
	head                                       mkProd
	qkv, attn, scores, invFreq, info, passp    devptr
	bar, barOther, trace                       devptr
	slotBytes                                  int64
	nlayers, heads, kvHeads, dim, ctx, qStride int32
	style, f16, ggml, normThreads, actFloats   int32
	barMode, sleepNs, _                        int32
	scale, thetaScale, eps, _                  float32
}

// The barrier's kind (mk_barrier's barMode) and its polling interval in
// nanoseconds (0: none), variables for the tests' comparisons.
var mkBarMode, mkSleepNs = 2, 0

// mkTermFloats bounds a part's rows a virtual block (rpc) by their terms in
// shared memory (rpc x blocks a row floats).
const mkTermFloats = 4096

// megakernel is a Model's prepared one-kernel step.
type megakernel struct {
	args   mkArgs
	blocks int    // co-resident blocks: the grid
	shmem  int    // dynamic shared memory a block
	bars   devptr // two barrier counters (and a generation word)
	steps  int    // launches so far: which counter is this step's
}

// mkWhyNot says why the model cannot run decode_mk ("" when it can).
func (g *Model) mkWhyNot() string {
	cfg := g.Config
	switch {
	case !g.opts.KVCacheF16 || !g.opts.FlashAttention:
		return "not ggml's F16 flash attention"
	case g.first > 0:
		return "layers on the host"
	case cfg.HeadDim%8 != 0 || cfg.HeadDim > 128:
		return fmt.Sprintf("head dimension %d", cfg.HeadDim)
	case g.dev.drv.cuLaunchCooperativeKernel == 0 || g.dev.drv.cuOccupancy == 0:
		return "no cooperative launches in the driver"
	case !g.dev.has("decode_mk"):
		return "no decode_mk in the kernels"
	}
	for _, l := range g.layers {
		for _, w := range []*matrix{l.qkv, l.q, l.k, l.v, l.o, l.gateUp, l.gate, l.up, l.down} {
			if _, ok := mkTypes[w.dtOr()]; w != nil && !ok {
				return fmt.Sprintf("%s is %v", w.name, w.dt)
			}
		}
	}
	if _, ok := mkTypes[g.output.dt]; !ok {
		return fmt.Sprintf("%s is %v", g.output.name, g.output.dt)
	}
	return ""
}

// dtOr is w's type (Q8_0 for nil: nothing to check).
func (w *matrix) dtOr() tensor.DType {
	if w == nil {
		return tensor.Q8_0
	}
	return w.dt
}

// prepareMK builds the one-kernel step's parameters: per-layer phases in
// device memory, the grid from the kernel's occupancy. It leaves g.mk nil
// when the model cannot run it.
func (g *Model) prepareMK() error {
	if g.mkWhyNot() != "" {
		return nil
	}
	d, cfg := g.dev, g.Config
	h, qDim, kvDim, ffn := cfg.Dims()
	f, err := d.fn("decode_mk")
	if err != nil {
		return err
	}
	actFloats := max(h, qDim, ffn)
	actBytes := ((actFloats+255)/256*292 + 15) &^ 15
	fa := 4 * (2*cfg.HeadDim + 64 + 64*(cfg.HeadDim+1))
	// The terms of the widest part are known after the plan; start with
	// the activation and the attention's scratch, and size the grid with
	// the final figure below.
	mk := &megakernel{}
	blocks := 2 * d.sms
	var layers []mkLayer
	terms := 0
	plan := func(w *matrix, y, bias devptr, acc bool, rowsFrom int) mkPart {
		nb := w.cols / w.dt.BlockSize()
		per := weightTypes[w.dt]
		rows := w.rows
		rpc0 := min(ceilDiv(rows, blocks), max(1, mkTermFloats/nb))
		passes := ceilDiv(nb, per)
		rw := 1
		for _, c := range []int{4, 2} {
			if rpc0%c == 0 && rpc0/c*passes >= mkThreads/32 {
				rw = c
				break
			}
		}
		terms = max(terms, rpc0*nb)
		return mkPart{w: w.ptr + devptr(int64(rowsFrom)*int64(w.rowBytes)), y: y, bias: bias, rowBytes: int64(w.rowBytes),
			rows: int32(rows), cols: int32(w.cols), typ: mkTypes[w.dt], rw: int32(rw), rpc: int32(rpc0),
			acc: int32(boolInt(acc))}
	}
	prod := func(x, normW, act devptr, n int, silu bool, parts ...mkPart) (mkProd, error) {
		p := mkProd{x: x, normW: normW, act: act, nparts: int32(len(parts)), n: int32(n), silu: int32(boolInt(silu))}
		for i, part := range parts {
			qk := part.typ >= 3
			if i > 0 && qk != (p.qk != 0) {
				return p, errors.New("one phase's matrices need two activation encodings")
			}
			p.qk = int32(boolInt(qk))
			p.p[i] = part
		}
		return p, nil
	}
	for i := range g.layers {
		l := &g.layers[i]
		var qkv []mkPart
		if l.qkv != nil {
			qkv = []mkPart{plan(l.qkv, g.qkv, l.qkvBias, false, 0)}
		} else {
			qkv = []mkPart{plan(l.q, g.qkv, l.qkvBias, false, 0)}
			if l.k != nil {
				qkv = append(qkv, plan(l.k, offset(g.qkv, qDim), offset(l.qkvBias, qDim), false, 0))
			}
			qkv = append(qkv, plan(l.v, offset(g.qkv, qDim+kvDim), offset(l.qkvBias, qDim+kvDim), false, 0))
		}
		var gate, up mkPart
		if l.gateUp != nil {
			half := *l.gateUp
			half.rows = ffn
			gate = plan(&half, g.gu, 0, false, 0)
			up = plan(&half, offset(g.gu, ffn), 0, false, ffn)
		} else {
			gate = plan(l.gate, g.gu, 0, false, 0)
			up = plan(l.up, offset(g.gu, ffn), 0, false, 0)
		}
		var ly mkLayer
		var e1, e2, e3, e4 error
		ly.qkv, e1 = prod(g.x, l.attnNorm, 0, h, false, qkv...)
		ly.o, e2 = prod(g.attn, 0, 0, qDim, false, plan(l.o, g.x, 0, true, 0))
		ly.gu, e3 = prod(g.x, l.mlpNorm, g.act, h, true, gate, up)
		ly.down, e4 = prod(g.act, 0, 0, ffn, false, plan(l.down, g.x, 0, true, 0))
		ly.kc, ly.vc = l.kc, l.vc
		if err := errors.Join(e1, e2, e3, e4); err != nil {
			return nil // another path runs the model
		}
		layers = append(layers, ly)
	}
	head, err := prod(g.x, g.norm, 0, h, false, plan(g.output, g.logits, 0, false, 0))
	if err != nil {
		return nil
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&layers[0])), len(layers)*int(unsafe.Sizeof(layers[0])))
	lp, err := g.track(d.upload(buf))
	if err != nil {
		return err
	}
	bar, err := g.track(d.alloc(16))
	if err != nil {
		return err
	}
	if err := d.drv.check("cuMemsetD8 (barrier)", d.drv.cuMemsetD8(bar, 0, 16)); err != nil {
		return err
	}
	shmem := max(4*actFloats+actBytes+4*terms, fa)
	const maxDynamicShared = 8 // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
	if err := d.drv.check("cuFuncSetAttribute decode_mk", d.drv.cuFuncSetAttribute(f, maxDynamicShared, int32(shmem))); err != nil {
		return err
	}
	var perSM int32
	r, _, _ := purego.SyscallN(d.drv.cuOccupancy, uintptr(unsafe.Pointer(&perSM)), f, mkThreads, uintptr(shmem))
	if err := d.drv.check("cuOccupancyMaxActiveBlocksPerMultiprocessor decode_mk", result(r)); err != nil {
		return err
	}
	if int(perSM)*d.sms < blocks || cfg.NumHeads > blocks {
		return nil // fewer co-resident blocks than planned: the usual kernels
	}
	mk.blocks, mk.shmem, mk.bars = blocks, shmem, bar
	mk.args = mkArgs{layers: lp, head: head, qkv: g.qkv, attn: g.attn, scores: g.scores, invFreq: g.invFreq,
		info: g.info(), passp: g.passp(), slotBytes: int64(g.slotBytes), nlayers: int32(len(layers)),
		heads: int32(cfg.NumHeads), kvHeads: int32(cfg.NumKVHeads), dim: int32(cfg.HeadDim), ctx: int32(g.ctx),
		qStride: int32(qDim + 2*kvDim), style: int32(g.style()), f16: 1, ggml: int32(boolInt(g.opts.GGMLOps)),
		normThreads: int32(normThreads(h)), actFloats: int32(actFloats), scale: float32(1 / math.Sqrt(float64(cfg.HeadDim))),
		thetaScale: g.thetaScale, eps: float32(cfg.RMSNormEps)}
	g.mk = mk
	return nil
}

// mkStep issues the one-row step (the state's row 0) as the embedding
// row, decode_mk and the argmax of its logits.
func (g *Model) mkStep() error {
	d := g.dev
	if err := d.getRows(g.embed, g.x, g.info(), 1); err != nil {
		return err
	}
	f, err := d.fn("decode_mk")
	if err != nil {
		return err
	}
	mk := g.mk
	a := &mk.args
	a.barMode, a.sleepNs = int32(mkBarMode), int32(mkSleepNs)
	if mkBarMode == 2 {
		// Counters at bars and bars+4, one a step: this step's only grows,
		// and the kernel clears the other for the next step.
		a.bar, a.barOther = mk.bars+devptr(4*(mk.steps%2)), mk.bars+devptr(4*(1-mk.steps%2))
		mk.steps++
	} else {
		a.bar, a.barOther = mk.bars+8, 0 // count and generation at bars+8
	}
	p := unsafe.Pointer(a)
	r, _, _ := purego.SyscallN(d.drv.cuLaunchCooperativeKernel, f, uintptr(g.mk.blocks), 1, 1, mkThreads, 1, 1,
		uintptr(g.mk.shmem), d.stream, uintptr(unsafe.Pointer(&p)))
	runtime.KeepAlive(g.mk)
	if err := d.drv.check("cuLaunchCooperativeKernel decode_mk", result(r)); err != nil {
		return err
	}
	return d.argmax(g.logits, g.Config.VocabSize, g.argScratch, g.best)
}
