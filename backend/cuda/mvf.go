package cuda

import "github.com/apr-llm/apr/tensor"

// The one-row products of float weights (kernels/mvf.cuh): a warp takes
// 1, 2 or 4 weight rows sharing its activation loads, 16-byte weight loads
// with several in flight a lane, for decode's products of BF16, F16 and
// F32 weights (the _r1 kernels take other float products of one row).

// mvfWarps is the warps of an mvf block (MVF_WARPS in mvf.cuh).
const mvfWarps = 4

// mvfTargetWarps is the fewest warps for which an mvf product takes 4
// (else 2, else 1) weight rows a warp: fewer would leave SMs idle. A
// variable for the tests of each group size and the benchmarks.
var mvfTargetWarps = 2048

// mvfDisabled sends one-row float products to the _r1 kernels (for
// before/after figures in one run).
var mvfDisabled = false

// mvfChunk is the elements of a 16-byte weight chunk of dt.
func mvfChunk(dt tensor.DType) int {
	if dt == tensor.F32 {
		return 4
	}
	return 8
}

// mvfKernel returns the mvf kernel for a one-row product of w by the
// activation at act and its weight rows a warp, or "" when the product is
// not one for it: quantized weights, rows whose length is not a multiple
// of a 16-byte chunk, or operands not 16-byte aligned.
func mvfKernel(w *matrix, act devptr) (string, int) {
	if per, ok := weightTypes[w.dt]; !ok || per > 0 || mvfDisabled {
		return "", 0
	}
	if w.cols%mvfChunk(w.dt) != 0 || w.rowBytes%16 != 0 || w.ptr%16 != 0 || act%16 != 0 {
		return "", 0
	}
	rw := 4
	for rw > 1 && ceilDiv(w.rows, rw) < mvfTargetWarps {
		rw /= 2
	}
	return kernelName("mvf_", w.dt), rw
}

// mvf runs a one-row product on the mvf kernels when mvfKernel picks
// one; ran is false when it does not (nothing was launched).
func (d *Device) mvf(w *matrix, act, y, bias devptr, accumulate bool) (ran bool, err error) {
	name, rw := mvfKernel(w, act)
	if name == "" {
		return false, nil
	}
	return true, d.launch(name, ceilDiv(w.rows, mvfWarps*rw), 32*mvfWarps, 0,
		w.ptr, act, y, bias, w.rows, w.cols, int64(w.rowBytes), boolInt(accumulate), rw)
}
