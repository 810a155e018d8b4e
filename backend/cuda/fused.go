package cuda

import (
	"fmt"

	"github.com/apr-llm/apr/tensor"
)

// The fused one-row products (kernels/fused.cuh): up to mvxParts matrices
// whose types share an activation encoding in one launch, each block making
// the quantized activation itself in shared memory (from floats, RMS-
// normalised or not) instead of a kernel of its own before the product.

// mvxParts is the most matrices one fused launch takes (MVX_PARTS).
const mvxParts = 3

// The fused products' prologues (MVX_GLOBAL, MVX_QUANT, MVX_NORM).
const (
	mvxGlobal = iota // the activation is already quantized in global memory
	mvxQuant         // quantize n floats
	mvxNorm          // RMS-normalise n floats, then quantize
	mvxSilu          // silu(gate) * up of n gate floats and the n up floats after them, then quantize
)

// The products of a one-row pass (decode) that run fused, as bits of
// fuseDecode (a variable for the tests' comparisons): q/k/v with the
// attention's RMSNorm, o with the quantization of the attention's output,
// gate/up with the feed-forward RMSNorm, down with silu(gate)*up and the
// LM head with the output norm.
const (
	fuseQKV = 1 << iota
	fuseO
	fuseFFN
	fuseDown
	fuseHead
)

var fuseDecode = 0

// fuseQKVK runs a one-row pass's q/k/v products with the attention's
// RMSNorm as one fused launch (mvxNorm: every block normalises and
// quantizes x itself, the same bits as rmsnorm) where their activation is
// Q8_K (mvx_q8_k: the 1.5B Q4_K_M's Q4_K q/k and Q6_K v), whatever
// fuseDecode says. Under qkvCap the launch is one wave of 83 blocks of 16
// warps, which pays the prologue once an SM; the attention norm's launch
// goes, and with it its cache-row prefetch (kvPrefetch): the attention's
// blocks, which now enter ~5 us before their release, ask for those rows
// themselves. H100, same lease, two rounds, tok/s, off -> on: 1.5B Q4_K_M
// BenchmarkDecodeLong positions 0-127 932.2, 931.2 -> 936.9, 935.5,
// positions 512-639 754.8, 754.8 -> 761.4, 761.3; BenchmarkDecodeSynthetic
// 935.5, 935.5 -> 941.0, 941.1. Q8_0-family q/k/v lose by it (1.5B Q8_0
// 871.4 -> 842.2, 0.5B Q4_K_M 1490 -> 1455, 0.5B Q8_0 1589 -> 1581), so
// they keep the rmsnorm launch. APR_CUDA_TUNE "nofuseqkvk" turns it off.
var fuseQKVK = true

// fuseQKVNorm reports whether layer l's q/k/v products of a pass of m rows
// run fused with the attention's RMSNorm (fuseDecode's fuseQKV, or
// fuseQKVK for Q8_K activations).
func fuseQKVNorm(l *layer, m int) bool {
	kernel := fusedKernel(l.qkv, l.q, l.k, l.v)
	if m != 1 || kernel == "" {
		return false
	}
	return fuseDecode&fuseQKV != 0 || (fuseQKVK && kernel == "mvx_q8_k")
}

// qkvOneLaunch runs a one-row pass's q (with k) and v products of different
// types (Q4_K_M's Q6_K attn_v) as one fused launch on the activation that
// RMSNorm quantized (mvxGlobal: no per-block prologue), instead of one
// launch each. A variable for the tests' comparisons. BenchmarkDecodeVariants
// (H100, 256 steps, two rounds, tok/s): 1.5B Q4_K_M 708, 708 -> 718, 720;
// 0.5B Q4_K_M 1161, 1160 -> 1203, 1204; Q8_0 (one type: unchanged) 669, 670.
var qkvOneLaunch = true

// mvSpread, when > 0, makes a one-row product take more rows a block than
// planMatvec's split where that split would launch more than mvSpread
// blocks per SM (every block of a fused product makes its activation
// once, and fewer waves of blocks ramp up fewer times). A variable for the
// tests' comparisons.
var mvSpread = 0

// mvxWarps, when > 0, is the fewest warps a block of a fused launch with a
// prologue (mvxQuant, mvxNorm, mvxSilu) takes, whatever its plan's items:
// the prologue's sums and quantization then run on as many threads as the
// rmsnorm and quantize kernels give them, the items on the plan's warps.
// A variable for the tests' comparisons (APR_CUDA_TUNE "mvxwarps=N").
var mvxWarps = 0

// qkvCap bounds the blocks of a decode step's q/k/v launch where the
// one-row attention after it (attention_fa_pl_rope, attention_fa_cl_rope)
// needs whole multiprocessors (at head dimension 128 attention_fa_pl_rope's
// block takes 64,512 registers and 203 KB of shared memory): with the
// products' 576 blocks spread over all of them, its blocks could start only
// once the products had ended, and its prologue (the cache rows asked for,
// the rotation's angles) ran after them. -1 (the default) bounds them to
// the multiprocessors less the attention's blocks, N > 0 to N, 0 not at
// all; the products' blocks then take more rows each (widen), as many
// warps as their kernel allows. The same bits (a row's sums do not depend
// on the block that runs it). H100, 1.5B Q4_K_M (q/k/v 576 -> 83 blocks of
// 16 warps; the products' work 2.98 -> 3.58 us, the attention's blocks
// entered 1.86 us before their release instead of at it, the boundary
// after the products 2.11 -> 0.86 us), tok/s, two rounds, 0 -> -1:
// BenchmarkDecodeLong positions 0 / 256 / 512 908.5, 908.6 -> 935.0, 935.4
// / 788.7, 788.7 -> 817.8, 817.9 / 717.4, 717.0 -> 752.8, 752.3;
// BenchmarkDecodeSynthetic 0.5B Q8_0 1555, 1556 -> 1584, 1585; 0.5B Q4_K_M
// 1460, 1457 -> 1509, 1507; 1.5B Q8_0 852.2, 851.6 -> 859.1, 858.8; 1.5B
// Q4_K_M 910.1, 909.9 -> 935.3, 935.2. A bound of 66 was slower than -1's
// 84 (930.7 at position 0). APR_CUDA_TUNE "qkvcap=N".
var qkvCap = -1

// fuseCap bounds the blocks of a decode step's fused o, gate/up and down
// launches (fuseO, fuseFFN, fuseDown) as qkvCap does the q/k/v launch's:
// -1 to the multiprocessors, N > 0 to N, 0 (the default) not at all. Each
// block of a fused launch makes its activation itself, so fewer, wider
// blocks pay that prologue fewer times. Measured (H100, same lease, two
// rounds, tok/s, 1.5B Q4_K_M position 0 / synthetic 1.5B Q8_0; default
// 932.2 / 871.4): fuseffn 747.9 / 625.6, fuseffn with fusecap=-1 892.5 /
// 802.3, fusedown with fusecap=-1 768.1 / 769.8, fuseo with fusecap=-1
// 925.2 / 829.4: one wave of 132 wide blocks reads the big products'
// weights more slowly than the 1,120 narrow ones, and the o product's 384
// blocks beat 132. So 0 stays the default. A variable for the tests'
// comparisons (APR_CUDA_TUNE "fusecap=N").
var fuseCap = 0

// fuseBlocks is fuseCap's bound on d's multiprocessors (0: none).
func (d *Device) fuseBlocks() int {
	if fuseCap < 0 {
		return d.sms
	}
	return fuseCap
}

// widen returns plan g (of a matrix of nb blocks a row) with up to k
// times its rows a block, as many as keep their terms within
// mvSharedBytes, and its warps grown with them up to maxWarps (more items a
// warp beyond).
func (g matvecPlan) widen(k, maxWarps, nb int) matvecPlan {
	for k > 1 && 4*g.rpc*k*nb > mvSharedBytes {
		k--
	}
	g.rpc *= k
	g.warps = max(g.warps, min(32, maxWarps, g.warps*k))
	return g
}

// capPlan is plan g of kernel (a matrix of nb blocks a row) in a launch of
// blocks blocks, widened by the least factor that brings them within
// d.mvCap (qkvCap's bound; g itself where there is none).
func (d *Device) capPlan(kernel string, g matvecPlan, blocks, nb int) matvecPlan {
	if k := spanFactor(blocks, d.mvCap); k > 1 {
		return g.widen(k, d.maxThreads(kernel)/32, nb)
	}
	return g
}

// spanFactor is the least k that brings blocks to at most capBlocks (1
// where capBlocks is 0 or more).
func spanFactor(blocks, capBlocks int) int {
	if capBlocks <= 0 || blocks <= capBlocks {
		return 1
	}
	return ceilDiv(blocks, capBlocks)
}

// planRows is planMatvec's split of a rows x nb-block product (passes of
// per blocks), spread by mvSpread.
func (d *Device) planRows(rows, nb, per int) matvecPlan {
	g := planMatvec(rows, nb, per)
	if mvSpread <= 0 || d.sms <= 0 {
		return g
	}
	rpc := ceilDiv(ceilDiv(rows, mvSpread*d.sms), g.rw) * g.rw
	for rpc > g.rpc && 4*rpc*nb > mvSharedBytes {
		rpc -= g.rw
	}
	if rpc > g.rpc {
		g.rpc = rpc
	}
	return g
}

// mvPart mirrors MVPart in kernels/fused.cuh.
type mvPart struct {
	w, y, bias                                  devptr
	rowBytes                                    int64
	rows, cols, typ, rw, rpc, blocks, acc, _pad int32
}

// mvxArgs mirrors MVX in kernels/fused.cuh.
type mvxArgs struct {
	p                                                 [mvxParts]mvPart
	x, normW                                          devptr
	eps                                               float32
	ggml, mode, n, nparts, normThreads, termFloats, _ int32
}

// mvxFamily returns the fused kernel for dt's activation encoding and dt's
// type index in it; ok is false for types no fused kernel takes.
func mvxFamily(dt tensor.DType) (kernel string, typ int, ok bool) {
	switch dt {
	case tensor.Q8_0, tensor.Q4_0, tensor.Q5_0:
		return "mvx_q8_0", map[tensor.DType]int{tensor.Q8_0: 0, tensor.Q4_0: 1, tensor.Q5_0: 2}[dt], true
	case tensor.Q4_K, tensor.Q5_K, tensor.Q6_K:
		return "mvx_q8_k", map[tensor.DType]int{tensor.Q4_K: 0, tensor.Q5_K: 1, tensor.Q6_K: 2}[dt], true
	}
	return "", 0, false
}

// fusable reports whether the non-nil matrices ws (at most mvxParts) can
// go as one fused launch: all quantized with one activation encoding.
func fusable(ws ...*matrix) bool {
	return fusedKernel(ws...) != ""
}

// fusedKernel is the fused kernel (mvxFamily) that runs the non-nil
// matrices ws as one launch, "" where they cannot go as one (fusable).
func fusedKernel(ws ...*matrix) string {
	kernel, n := "", 0
	for _, w := range ws {
		if w == nil {
			continue
		}
		k, _, ok := mvxFamily(w.dt)
		if !ok || (kernel != "" && k != kernel) {
			return ""
		}
		kernel = k
		n++
	}
	if n == 0 || n > mvxParts {
		return ""
	}
	return kernel
}

// mvxOut is one matrix of a fused launch: y (+)= w·act (+ bias).
type mvxOut struct {
	w       *matrix
	y, bias devptr
	acc     bool
}

// matvecFused runs the one-row products of outs (fusable) in one launch.
// The activation is n floats at x, RMS-normalised with the weights normW
// first (ggml's numerics when ggml) unless normW is 0; with mode mvxGlobal
// x is instead the activation already quantized.
func (d *Device) matvecFused(outs []mvxOut, mode int, x devptr, n int, normW devptr, eps float32, ggml bool) error {
	a := &d.mvx
	*a = mvxArgs{x: x, normW: normW, eps: eps, ggml: int32(boolInt(ggml)), mode: int32(mode), n: int32(n),
		nparts: int32(len(outs)), normThreads: int32(rmsThreads(n))}
	if len(outs) == 0 || len(outs) > mvxParts {
		return fmt.Errorf("cuda: fused product of %d matrices (1..%d)", len(outs), mvxParts)
	}
	// The parts' plans first: qkvCap's bound (capPlan) is on their blocks
	// in all.
	kernel, total := "", 0
	var plans [mvxParts]matvecPlan
	var typs [mvxParts]int
	for i, o := range outs {
		k, typ, ok := mvxFamily(o.w.dt)
		if !ok || (kernel != "" && k != kernel) {
			return fmt.Errorf("cuda: %s (%v) does not fuse with %s", o.w.name, o.w.dt, outs[0].w.name)
		}
		kernel, typs[i] = k, typ
		plans[i] = d.planRows(o.w.rows, o.w.cols/o.w.dt.BlockSize(), weightTypes[o.w.dt])
		total += ceilDiv(o.w.rows, plans[i].rpc)
	}
	blocks, warps, terms := 0, 1, 0
	for i, o := range outs {
		nb := o.w.cols / o.w.dt.BlockSize()
		g := d.capPlan(kernel, plans[i], total, nb)
		b := ceilDiv(o.w.rows, g.rpc)
		a.p[i] = mvPart{w: o.w.ptr, y: o.y, bias: o.bias, rowBytes: int64(o.w.rowBytes), rows: int32(o.w.rows),
			cols: int32(o.w.cols), typ: int32(typs[i]), rw: int32(g.arg()), rpc: int32(g.rpc), blocks: int32(b),
			acc: int32(boolInt(o.acc))}
		blocks += b
		warps = max(warps, g.warps)
		terms = max(terms, g.rpc*nb)
	}
	a.termFloats = int32(terms)
	shmem := 4 * terms
	if mode != mvxGlobal {
		warps = max(warps, min(32, mvxWarps))
		vt := tensor.Q8_0
		if kernel == "mvx_q8_k" {
			vt = tensor.Q8_K
		}
		ab, err := vt.RowBytes(n)
		if err != nil {
			return fmt.Errorf("cuda: fused product of %d values: %w", n, err)
		}
		shmem += ab
	}
	return d.launch(kernel, blocks, 32*warps, shmem, a)
}

// capped runs f with the one-row products it launches bounded to n blocks
// in all (d.mvCap, which capPlan reads; 0: their plans'), and the bound
// lifted after it.
func (d *Device) capped(n int, f func() error) error {
	d.mvCap = n
	defer func() { d.mvCap = 0 }()
	return f()
}

// qkvOuts are layer l's q, k and v products of one row (into g.qkv, with
// their biases) as fused parts.
func (g *Model) qkvOuts(l *layer) []mvxOut {
	_, qDim, kvDim, _ := g.Config.Dims()
	if l.qkv != nil {
		return []mvxOut{{w: l.qkv, y: g.qkv, bias: l.qkvBias}}
	}
	outs := []mvxOut{{w: l.q, y: g.qkv, bias: l.qkvBias}}
	if l.k != nil {
		outs = append(outs, mvxOut{w: l.k, y: offset(g.qkv, qDim), bias: offset(l.qkvBias, qDim)})
	}
	return append(outs, mvxOut{w: l.v, y: offset(g.qkv, qDim+kvDim), bias: offset(l.qkvBias, qDim+kvDim)})
}

// gateUpOuts are layer l's gate and up products of one row (into g.gu) as
// fused parts.
func (g *Model) gateUpOuts(l *layer) []mvxOut {
	_, _, _, ffn := g.Config.Dims()
	if l.gateUp != nil {
		return []mvxOut{{w: l.gateUp, y: g.gu}}
	}
	return []mvxOut{{w: l.gate, y: g.gu}, {w: l.up, y: offset(g.gu, ffn)}}
}
