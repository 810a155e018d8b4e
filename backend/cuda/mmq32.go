package cuda

import (
	"strconv"

	"github.com/apr-llm/apr/tensor"
)

// The staged products of the 32-element block types (mmq32_T_vV in
// kernels/mmq32.cuh): each block copies 8-block chunks of its 64 weight
// rows and 64 activation rows into shared memory, V bytes a copy (cp.async),
// so the rows must start on V-byte boundaries; mmq_T (operands loaded
// straight from global memory, 2 bytes at a time) takes the others. Both
// compute the same outputs bit for bit.

// mmq32Units are the copy widths of the staged kernels, widest first.
var mmq32Units = []int{16, 8, 4}

// mmq32Names holds the staged kernels' names by weight type and copy width
// (built once: a launch allocates nothing).
var mmq32Names = func() map[tensor.DType]map[int]string {
	names := map[tensor.DType]map[int]string{}
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0} {
		names[dt] = map[int]string{}
		for _, v := range mmq32Units {
			names[dt][v] = kernelName("mmq32_", dt) + "_v" + strconv.Itoa(v)
		}
	}
	return names
}()

// mmq32Threads is the staged kernels' block size (M32_THREADS in
// kernels/mmq32.cuh; a variable for the benchmarks of PTX compiled with
// another M32_NT).
var mmq32Threads = 128

// mmq32On turns the staged kernels on (a variable for the tests and
// benchmarks that compare them with mmq_T).
var mmq32On = true

// mmq32Shared is the dynamic shared memory of a staged block for a weight
// type of blockBytes bytes a 32-element block: two stages of 64 weight and
// 64 activation rows of 8 blocks, and two 64 x 9 float arrays of scales
// (M32<KIND>::SHARED).
func mmq32Shared(blockBytes int) int {
	return 2*64*(8*blockBytes+8*34) + 2*64*9*4
}

// mmq32Unit returns the widest copy (16, 8 or 4 bytes) that the weight
// rows and activation rows allow, or 0 for none (rows of an odd number of
// blocks, or unaligned pointers).
func mmq32Unit(w *matrix, act devptr, actStride int) int {
	a := uint64(w.ptr) | uint64(w.rowBytes) | uint64(act) | uint64(actStride)
	for _, v := range mmq32Units {
		if a%uint64(v) == 0 {
			return v
		}
	}
	return 0
}

// mmq32 runs matmul's mmq product of a Q8_0, Q4_0 or Q5_0 matrix with the
// staged kernels when the rows allow; ran reports whether it did.
func (d *Device) mmq32(w *matrix, act devptr, actStride int, y devptr, yStride int, bias devptr, accumulate bool, m int) (ran bool, err error) {
	names, ok := mmq32Names[w.dt]
	if !ok || !mmq32On {
		return false, nil
	}
	v := mmq32Unit(w, act, actStride)
	if v == 0 {
		return false, nil
	}
	return true, d.launch2(names[v], ceilDiv(w.rows, 64), ceilDiv(m, 64), mmq32Threads, mmq32Shared(w.dt.TypeSize()),
		mmArgs(w, act, actStride, y, yStride, bias, accumulate, m)...)
}
