package cuda

import "github.com/apr-llm/apr/tensor"

// Split quantized products of a few activation rows (kernels/matvec.cuh:
// the _rt kernels and term_sum; kernels/mmq.cuh: mmq_T_t). The _r16
// kernels give each weight row one warp that walks the whole row for 16
// activation rows, and mmq one block a 64 x 64 tile that walks it: a
// product of few weight rows and long rows (a 1.5B model's ffn_down: 1,536
// rows of 8,960 columns) keeps few warps or blocks busy for long. The
// split kernels take a part of each row and store every block term;
// term_sum then adds each output's terms in block order, as the _r16 and
// mmq kernels do: the same bits.

// termsEnabled turns the split products on (a variable for the tests'
// comparisons: APR_CUDA_TUNE=noterms).
var termsEnabled = true

// termsScratchBytes is the device's block-term scratch: a product runs
// split when its m x rows x blocks terms fit (a 1.5B ffn_down of 63 rows:
// 13.5 MB).
const termsScratchBytes = 16 << 20

// termsTargetWarps is the warps a split product aims at: rows x
// activation tiles x splits (132 SMs x 64 warps, twice over).
const termsTargetWarps = 16896

// termsTile is the activation rows of an _rt block row (matmul_terms' R).
const termsTile = 16

// initTerms allocates the device's block-term scratch once; the device
// must be bound.
func (d *Device) initTerms() error {
	if d.terms != 0 {
		return nil
	}
	p, err := d.alloc(termsScratchBytes)
	if err != nil {
		return err
	}
	d.terms = p
	return nil
}

// termsMinPasses is the fewest passes a row (blocks / weightTypes' per)
// for which a product below mmq runs split (_rt): shorter rows are few
// passes a warp already, and the extra launch and scratch traffic cost
// more than the split saves (BenchmarkPassProducts: q+k, o, v at 8 rows).
const termsMinPasses = 4

// splitType reports whether weight type dt has split kernels (mmq_T_t, a
// block a super-block, and matmul_T_rt): the K-quants, whose block terms
// come one a 256-element super-block. The 32-element types' would be 8
// times as many (a 1.5B Q8_0 model's 8-row passes: 3.92 ms split against
// 3.57 ms with _r16, H200).
func splitType(dt tensor.DType) bool {
	return dt == tensor.Q4_K || dt == tensor.Q5_K || dt == tensor.Q6_K
}

// termsSplit is how many blocks (grid.z) a split product spreads each
// row's np passes over, and the passes a block takes.
func termsSplit(rows, m, np int) (splits, pps int) {
	tiles := ceilDiv(m, termsTile)
	splits = min(np, max(1, ceilDiv(termsTargetWarps, rows*tiles)))
	pps = ceilDiv(np, splits)
	return ceilDiv(np, pps), pps
}

// matmulSplit runs y[c] (+)= W·act[c] + bias for m > 1 activation rows
// split along the rows where that pays and the terms fit the scratch:
// K-quant products of 16 or more rows whose mmq would make fewer 64 x 64
// tiles than the device has SMs run mmq_T_t (a block a tile and
// super-block), and products that mmq does not take (mmq false) with rows
// of termsMinPasses passes or more the _rt kernels; term_sum then adds the
// terms. ran is false (nothing launched) otherwise.
func (d *Device) matmulSplit(w *matrix, act devptr, actStride int, y devptr, yStride int, bias devptr, accumulate bool,
	m int, mmq bool) (ran bool, err error) {
	per := weightTypes[w.dt]
	if !termsEnabled || !splitType(w.dt) || m < 2 || d.terms == 0 || !d.has("term_sum") {
		return false, nil
	}
	nb := w.cols / w.dt.BlockSize()
	if 4*m*w.rows*nb > termsScratchBytes {
		return false, nil
	}
	tiles := ceilDiv(w.rows, 64) * ceilDiv(m, 64)
	switch name := kernelName("mmq_", w.dt) + "_t"; {
	case m >= mmqMinRows && tiles < d.sms && d.has(name):
		err = d.launch3(name, ceilDiv(w.rows, 64), ceilDiv(m, 64), nb, 128, 0,
			w.ptr, act, int64(actStride), d.terms, w.rows, w.cols, int64(w.rowBytes), m)
	case !mmq && ceilDiv(nb, per) >= termsMinPasses && d.has(kernelName("matmul_", w.dt)+"_rt"):
		splits, pps := termsSplit(w.rows, m, ceilDiv(nb, per))
		err = d.launch3(kernelName("matmul_", w.dt)+"_rt", ceilDiv(w.rows*32, matvecThreads), ceilDiv(m, termsTile), splits,
			matvecThreads, 0, w.ptr, act, int64(actStride), d.terms, w.rows, w.cols, int64(w.rowBytes), m, pps)
	default:
		return false, nil
	}
	if err != nil {
		return true, err
	}
	return true, d.launch("term_sum", ceilDiv(m*w.rows, 256), 256, 0, d.terms, y, yStride, bias, w.rows, nb,
		boolInt(accumulate), m)
}

// matrices lists the model's matrices (nil where a layer has none of that
// kind: separate q/k/v where they are stacked, say).
func (g *Model) matrices() []*matrix {
	ws := []*matrix{g.output}
	for i := range g.layers {
		l := &g.layers[i]
		ws = append(ws, l.qkv, l.q, l.k, l.v, l.o, l.gateUp, l.gate, l.up, l.down)
	}
	return ws
}
