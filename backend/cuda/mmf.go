package cuda

// Tensor-core products of float weights (kernels/mmf.cuh): TF32 mma.sync
// with the activation split into two TF32 parts (three products for F32
// weights), for passes of mmfMinRows activation rows or more.

// mmfMinRows is the fewest activation rows that the mmf kernels take;
// smaller passes run the _r1/_r16 kernels.
const mmfMinRows = 16

// mmfCols is the column step of the mmf kernels: rows must be a multiple.
const mmfCols = 32

// mmfWeightRows is the weight rows an mmf block takes.
const mmfWeightRows = 64

// mmfMinBlocks is the fewest blocks of 64 x 64 outputs for which a product
// runs the mmf _n64 kernels; fewer would leave SMs idle (two blocks for
// each of an H100's 132), so it runs blocks of 64 x 32 (_n32). A variable
// for the tests and benchmarks of each tile.
var mmfMinBlocks = 264

// mmfDisabled sends every float product to the _r1/_r16 kernels (for
// benchmarks against them).
var mmfDisabled = false

// mmfKernel returns the mmf kernel that multiplies w by m activation rows
// at act (actStride bytes apart) and the activation rows its blocks take, or ""
// when the product is not one for them: a quantized or too small product,
// rows not a multiple of mmfCols, or operands not 16-byte aligned (the
// kernels' vector loads).
func mmfKernel(w *matrix, act devptr, actStride, m int) (string, int) {
	if per, ok := weightTypes[w.dt]; !ok || per > 0 || mmfDisabled || m < mmfMinRows {
		return "", 0
	}
	if w.cols%mmfCols != 0 || w.rowBytes%16 != 0 || w.ptr%16 != 0 || act%16 != 0 || actStride%16 != 0 {
		return "", 0
	}
	if ceilDiv(w.rows, mmfWeightRows)*ceilDiv(m, 64) >= mmfMinBlocks {
		return kernelName("mmf_", w.dt) + "_n64", 64
	}
	return kernelName("mmf_", w.dt) + "_n32", 32
}

// mmf runs matmul's product on the mmf kernels when mmfKernel picks one;
// ran is false when it does not (nothing was launched).
func (d *Device) mmf(w *matrix, act devptr, actStride int, y devptr, yStride int, bias devptr, accumulate bool, m int) (ran bool, err error) {
	name, bn := mmfKernel(w, act, actStride, m)
	if name == "" {
		return false, nil
	}
	return true, d.launch2(name, ceilDiv(w.rows, mmfWeightRows), ceilDiv(m, bn), 128, 0,
		mmArgs(w, act, actStride, y, yStride, bias, accumulate, m)...)
}
