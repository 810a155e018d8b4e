package cuda

import "fmt"

// Weight prefetches into L2 on a side stream (kernels/matvec.cuh's
// l2_prefetch): a one-row decode step spends about half its time in
// latency-bound kernels (RMSNorm, RoPE, attention, quantization) during
// which HBM idles; a prefetch launched on a second stream, ordered after a
// point of the step by an event, streams the weights of the products that
// follow into L2 meanwhile. It writes nothing, so it changes no result; the
// step's last node waits for it (join), so a replayed graph never overlaps
// the next step's.

// l2Ranges mirrors L2Ranges in kernels/matvec.cuh.
type l2Ranges struct {
	p                       [l2MaxRanges]devptr
	n                       [l2MaxRanges]int64
	count, chunk, bulk, pad int32
}

// l2MaxRanges is L2_RANGES.
const l2MaxRanges = 6

// The prefetch schedules (l2Schedule, a variable for the tests'
// comparisons; APR_CUDA_TUNE "pf=N"):
const (
	l2Off = iota
	// l2Layer: at the start of layer L (after the step's embedding or layer
	// L-1's down product), all of layer L's matrices.
	l2Layer
	// l2Split: after layer L's q/k/v products, L's o, gate/up and down;
	// after L's gate/up product, layer L+1's q/k/v (layer 0's at the
	// step's start).
	l2Split
	// l2Early: at the start of layer L, L's o, gate/up and down; after L's
	// gate/up product, layer L+1's q/k/v.
	l2Early
)

// BenchmarkDecodeVariants (H100, 256 steps, two rounds, tok/s, with
// qkvOneLaunch): 1.5B Q4_K_M off 718, 720; l2Layer 727, 727; l2Split 725,
// 727; l2Early 664, 654; line prefetches 585; 0.5B Q4_K_M off 1203, 1204;
// l2Layer 1215, 1213; l2Split 1220, 1219; 1.5B Q8_0 off 669, 670; every
// schedule 656-661 (it loses). Not on: +1% where it wins.
var (
	l2Schedule = l2Off
	// l2Bulk prefetches with the copy engine's bulk prefetch (one
	// instruction a chunk) instead of a prefetch instruction a line.
	l2Bulk = true
	// l2Chunk is the bytes a thread asks for at a time, l2Blocks and
	// l2Threads the prefetch's grid.
	l2Chunk, l2Blocks, l2Threads = 16 << 10, 16, 128
)

// The points of a layer where a prefetch may start (prefetchAt).
const (
	atLayer = iota // before the layer's first kernel
	atQKV          // after its q/k/v products
	atFFN          // after its gate/up product
)

// prefetchAt issues the prefetches that the schedule starts at point at
// of layer li (of a one-row pass).
func (g *Model) prefetchAt(li, at int) error {
	var ws []*matrix
	l := &g.layers[li]
	attn := func(l *layer) []*matrix { return []*matrix{l.qkv, l.q, l.k, l.v} }
	ffn := []*matrix{l.o, l.gateUp, l.gate, l.up, l.down}
	switch {
	case l2Schedule == l2Layer && at == atLayer:
		ws = append(attn(l), ffn...)
	case l2Schedule == l2Split && at == atQKV, l2Schedule == l2Early && at == atLayer:
		ws = ffn
	case (l2Schedule == l2Split || l2Schedule == l2Early) && at == atLayer && li == 0:
		ws = attn(l)
	case (l2Schedule == l2Split || l2Schedule == l2Early) && at == atFFN && li+1 < len(g.layers):
		ws = attn(&g.layers[li+1])
	}
	if l2Schedule == l2Early && at == atLayer && li == 0 {
		ws = append(attn(l), ffn...)
	}
	return g.dev.prefetchL2(ws...)
}

// prefetchL2 launches l2_prefetch for the matrices ws (nil ones skipped)
// on the side stream, after the work enqueued on the main stream so far.
func (d *Device) prefetchL2(ws ...*matrix) error {
	r := &d.l2r
	*r = l2Ranges{chunk: int32(l2Chunk), bulk: int32(boolInt(l2Bulk))}
	for _, w := range ws {
		if w == nil {
			continue
		}
		if r.count == l2MaxRanges {
			return fmt.Errorf("cuda: prefetch of more than %d matrices", l2MaxRanges)
		}
		r.p[r.count], r.n[r.count] = w.ptr, int64(w.rows)*int64(w.rowBytes)
		r.count++
	}
	if r.count == 0 {
		return nil
	}
	if d.side == 0 {
		if err := d.drv.check("cuStreamCreate (prefetch)", d.drv.cuStreamCreate(&d.side, 1)); err != nil {
			return err
		}
		for i := range d.sideEv {
			const disableTiming = 2 // CU_EVENT_DISABLE_TIMING
			if err := d.drv.check("cuEventCreate (prefetch)", d.drv.cuEventCreate(&d.sideEv[i], disableTiming)); err != nil {
				return err
			}
		}
	}
	if err := d.order(d.sideEv[0], d.stream, d.side); err != nil {
		return err
	}
	d.sideOpen = true
	main := d.stream
	d.stream = d.side
	err := d.launch("l2_prefetch", l2Blocks, l2Threads, 0, r)
	d.stream = main
	return err
}

// joinPrefetches makes the main stream's later work wait for the
// prefetches launched so far (a captured step ends with every branch
// joined).
func (d *Device) joinPrefetches() error {
	if !d.sideOpen {
		return nil
	}
	d.sideOpen = false
	return d.order(d.sideEv[1], d.side, d.stream)
}

// order makes stream to wait for the work enqueued on stream from so far,
// through event ev.
func (d *Device) order(ev, from, to uintptr) error {
	return d.drv.check("cuEventRecord / cuStreamWaitEvent", orResult(d.drv.cuEventRecord(ev, from), func() result {
		return d.drv.cuStreamWaitEvent(to, ev, 0)
	}))
}

// orResult is r when it is an error, else next's result.
func orResult(r result, next func() result) result {
	if r != 0 {
		return r
	}
	return next()
}
