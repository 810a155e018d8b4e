package cpu

import (
	"fmt"
	"unsafe"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// quantSupported reports whether GGML block type dt has CPU kernels: a
// row decoder (for embeddings) and an integer dot product (for products).
func quantSupported(dt tensor.DType) bool {
	if _, err := quant.DequantizeRowFunc(dt); err != nil {
		return false
	}
	return quant.VecDotType(dt) != tensor.Invalid
}

// decodeQuantRow dequantizes one row of a block type (validated at load).
func decodeQuantRow(dt tensor.DType, src []byte, dst []float32) {
	f, err := quant.DequantizeRowFunc(dt)
	if err != nil {
		panic(fmt.Sprintf("cpu: %v (NewMatrix admits only supported types)", err))
	}
	f(src, dst)
}

// rowBlock is the grain of a matrix product's split over weight rows: a
// multiple of the tiled kernels' rows, small enough to balance the workers.
const rowBlock = 16

// matMulOp is the matrix product in flight: Backend.MatMul fills it and the
// pool runs its bound methods, so that no closure is allocated per call.
type matMulOp struct {
	dst      []float32
	w        *Matrix
	x        []float32
	n        int
	act      []byte // the n input rows in the kernel's activation type
	buf      []byte // act's storage for block types, kept across calls
	tiles    []byte // act packed for the tiled kernels (nil: row kernels)
	tileBuf  []byte // tiles' storage, kept across calls
	actBytes int
	vt       tensor.DType
}

// quantize encodes input rows lo..hi-1 as the weights' activation type.
func (op *matMulOp) quantize(lo, hi, _ int) {
	in, ab := op.w.Cols, op.actBytes
	for t := lo; t < hi; t++ {
		if err := quant.QuantizeActivationFast(op.vt, op.x[t*in:(t+1)*in], op.act[t*ab:(t+1)*ab]); err != nil {
			panic(fmt.Sprintf("cpu: %s: %v", op.w.Name, err))
		}
	}
}

// quantizeTiles encodes the input rows of the groups lo..hi-1 and packs
// them for the tiled kernels.
func (op *matMulOp) quantizeTiles(lo, hi, _ int) {
	if err := quant.QuantizeTiles(op.w.DType, op.x, op.n, op.w.Cols, lo, hi, op.act, op.tiles); err != nil {
		panic(fmt.Sprintf("cpu: %s: %v", op.w.Name, err))
	}
}

// rows computes output columns lo..hi-1 for every input row: the tiled
// kernels when the input rows were packed for them, otherwise the row
// kernels, a few weight rows at a time.
func (op *matMulOp) rows(lo, hi, _ int) {
	w := op.w
	var err error
	if op.n == 1 { // one input row: nothing to keep hot, one call
		err = quant.DotRows(w.DType, w.data, w.rowB, lo, hi, op.act, w.Cols, op.dst[lo:hi])
	} else {
		err = quant.MulTiles(w.DType, w.data, w.rowB, lo, hi, op.act, op.tiles, op.n, w.Cols, op.dst, w.Rows)
	}
	if err != nil {
		panic(fmt.Sprintf("cpu: %s: %v", w.Name, err))
	}
}

// bytesOfF32 views float32s as their little-endian bytes (amd64, arm64).
func bytesOfF32(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// matMul multiplies as ggml does: each input row is quantized once to the
// weights' activation type (8-bit blocks for GGML block weights, float32 for
// F32/F16/BF16 weights, used in place), then every weight row is dotted
// with it by the quant kernels. The weight matrix is never expanded to
// float32.
func (b *Backend) matMul(dst []float32, w *Matrix, x []float32, n int) {
	op := &b.mm
	in := w.Cols
	vt := quant.VecDotType(w.DType)
	ab, err := vt.RowBytes(in)
	if err != nil {
		panic(fmt.Sprintf("cpu: %s: %v", w.Name, err))
	}
	*op = matMulOp{dst: dst, w: w, x: x, n: n, actBytes: ab, vt: vt, buf: op.buf, tileBuf: op.tileBuf}
	switch size, tiled := quant.TiledBytes(w.DType, n, in); {
	case tiled && n > 1:
		if vt == tensor.F32 {
			op.act = bytesOfF32(x[:n*in])
		} else {
			op.buf = growBytes(op.buf, n*ab)
			op.act = op.buf
		}
		op.tileBuf = growBytes(op.tileBuf, size)
		op.tiles = op.tileBuf
		b.pool.Run(quant.TileGroups(n), 1, b.mmQuantizeTiles)
	case vt == tensor.F32:
		op.act = bytesOfF32(x[:n*in])
	case n == 1:
		op.buf = growBytes(op.buf, ab)
		op.act = op.buf
		op.quantize(0, 1, 0)
	default:
		op.buf = growBytes(op.buf, n*ab)
		op.act = op.buf
		b.pool.Run(n, 1, b.mmQuantize)
	}
	b.pool.Run(w.Rows, rowBlock, b.mmRows)
	op.dst, op.w, op.x, op.act, op.tiles = nil, nil, nil, nil, nil
}

// growBytes returns s resized to n, reallocating only when it is too small.
func growBytes(s []byte, n int) []byte {
	if cap(s) < n {
		return make([]byte, n)
	}
	return s[:n]
}
