package quant

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/apr-llm/apr/tensor"
)

// Matrix-matrix products for prompt processing. The n activation rows are
// quantized once (QuantizeTiles: the same bytes as QuantizeActivation),
// then packed in groups of tileCols rows into the layout of a tiled kernel.
// A kernel takes tileRows weight rows at a time: it unpacks (or widens)
// their blocks once into a side table, then sweeps the packed groups,
// multiplying each weight block with the tileCols activation blocks of a
// group while the tileRows x tileCols sums stay in registers. Every sum is
// formed exactly as the row kernel of the same weight type forms it (the
// same integer lanes, the same float operations in the same order), so a
// tiled product equals the row-by-row one bit for bit; the tiles only read
// and unpack each weight and activation block fewer times. Without a tiled
// kernel (another weight type, another CPU) MulTiles runs the row kernels.

const (
	tileRows = 4 // weight rows of one tile
	tileCols = 4 // activation rows of one tile (a group)
	// rowBlock is how many weight rows the row-kernel fallback keeps hot
	// while every activation row is multiplied with them.
	rowBlock = 16
	// tileSideBytes bounds a tile's side table (its scratch comes from
	// sidePool, 8-byte aligned: it is read as float32 and int32).
	tileSideBytes = 128 << 10
)

// tiler is the tiled kernel of one weight type.
type tiler struct {
	blockElems int // elements of one weight (and activation) block
	blockBytes int // bytes of one weight block
	packBytes  int // bytes of one packed block of a group
	maxBlocks  int // the most blocks per row the kernel takes
	// pack writes the packed block of a group from the activation blocks
	// of its rows (nil past the last row).
	pack func(dst []byte, src *[tileCols][]byte)
	// mul runs the tiles of the weight rows w (stride bytes apart, nb
	// blocks each, tileRows of them) with groups packed groups at act,
	// writing out[c*ostride+r] for the groups' tileCols*groups columns.
	// side is scratch for the rows' side table (tileSideBytes).
	mul func(w []byte, stride int, act []byte, groups, nb int, out []float32, ostride int, side []byte)
}

// tilers is indexed by weight type; assembly files fill it at start-up.
var tilers [tensor.IQ4_XS + 1]*tiler

func tilerFor(w tensor.DType) *tiler {
	if w < 0 || int(w) >= len(tilers) {
		return nil
	}
	return tilers[w]
}

// TileCols is how many activation rows one packed group holds.
const TileCols = tileCols

// HasTiles reports whether weights of type w have a tiled kernel on this CPU.
func HasTiles(w tensor.DType) bool { return tilerFor(w) != nil }

// TileGroups returns the number of packed groups of n activation rows.
func TileGroups(n int) int { return (n + tileCols - 1) / tileCols }

// TiledBytes returns the bytes of n packed activation rows of cols
// elements for weights of type w, and whether w has a tiled kernel here.
func TiledBytes(w tensor.DType, n, cols int) (int, bool) {
	tl := tilerFor(w)
	if tl == nil || n < 0 || cols <= 0 || cols%tl.blockElems != 0 || cols/tl.blockElems > tl.maxBlocks {
		return 0, false
	}
	return TileGroups(n) * (cols / tl.blockElems) * tl.packBytes, true
}

// PackTiles packs the groups glo..ghi-1 of the n activation rows act (each
// of cols elements in VecDotType(w), one after the other, as
// QuantizeActivation writes them) into dst, which holds TiledBytes(w, n,
// cols). Distinct group ranges may be packed concurrently.
func PackTiles(w tensor.DType, act []byte, n, cols, glo, ghi int, dst []byte) error {
	tl, ab, err := checkTiles(w, act, n, cols, dst)
	if err != nil {
		return err
	}
	if glo < 0 || ghi < glo || ghi > TileGroups(n) {
		return fmt.Errorf("quant: pack tiles: bad group range [%d, %d) of %d", glo, ghi, TileGroups(n))
	}
	nb := cols / tl.blockElems
	actBlock := ab / max(nb, 1)
	for g := glo; g < ghi; g++ {
		for b := range nb {
			var src [tileCols][]byte
			for c := range tileCols {
				if t := g*tileCols + c; t < n {
					off := t*ab + b*actBlock
					src[c] = act[off : off+actBlock]
				}
			}
			off := (g*nb + b) * tl.packBytes
			tl.pack(dst[off:off+tl.packBytes], &src)
		}
	}
	return nil
}

// fastActivation holds, by activation type, quantizers that assembly files
// install: bit-identical to QuantizeActivation's for finite inputs.
var fastActivation [tensor.IQ4_XS + 1]func(x []float32, dst []byte)

// QuantizeTiles quantizes the input rows of the groups glo..ghi-1 of the n
// rows x (cols floats each) into act, as QuantizeActivation would with
// VecDotType(w), and packs the groups into tiles as PackTiles does. For
// float weights (a float32 activation) act must already hold x's bytes.
// Distinct group ranges may be processed concurrently.
func QuantizeTiles(w tensor.DType, x []float32, n, cols, glo, ghi int, act, tiles []byte) error {
	vt := VecDotType(w)
	ab, err := vt.RowBytes(cols)
	switch {
	case err != nil || !vt.Valid():
		return fmt.Errorf("quant: quantize tiles: no activation type for %v rows of %d: %v", w, cols, err)
	case n < 0 || len(x) < n*cols || len(act) < n*ab:
		return fmt.Errorf("quant: quantize tiles: %d floats and %d bytes for %d rows of %d", len(x), len(act), n, cols)
	case glo < 0 || ghi < glo || ghi > TileGroups(n):
		return fmt.Errorf("quant: quantize tiles: bad group range [%d, %d) of %d", glo, ghi, TileGroups(n))
	}
	if vt != tensor.F32 {
		fast := fastActivation[vt]
		for t := glo * tileCols; t < min(ghi*tileCols, n); t++ {
			row, dst := x[t*cols:(t+1)*cols], act[t*ab:(t+1)*ab]
			if fast != nil {
				fast(row, dst)
			} else if err := QuantizeActivation(vt, row, dst); err != nil {
				return err
			}
		}
	}
	return PackTiles(w, act, n, cols, glo, ghi, tiles)
}

// checkTiles validates the activation and packed buffers of n rows.
func checkTiles(w tensor.DType, act []byte, n, cols int, tiles []byte) (*tiler, int, error) {
	size, ok := TiledBytes(w, n, cols)
	if !ok {
		return nil, 0, fmt.Errorf("quant: tiles: no tiled kernel for %d-element rows of %v", cols, w)
	}
	ab, err := VecDotType(w).RowBytes(cols)
	if err != nil {
		return nil, 0, fmt.Errorf("quant: tiles: %w", err)
	}
	if len(act) < n*ab {
		return nil, 0, fmt.Errorf("quant: tiles: %d activation bytes, %d rows of %d need %d", len(act), n, ab, n*ab)
	}
	if len(tiles) < size {
		return nil, 0, fmt.Errorf("quant: tiles: %d packed bytes, need %d", len(tiles), size)
	}
	return tilerFor(w), ab, nil
}

// MulTiles computes out[t*ostride+r] = VecDot(w, row r, activation row t,
// cols) for the weight rows lo..hi-1 of wdata (rows rowBytes apart) and
// every activation row t < n of act. tiles, when not nil, holds the rows
// packed by PackTiles, and the tiled kernel runs; with nil tiles the row
// kernels do. The results are the same either way.
func MulTiles(w tensor.DType, wdata []byte, rowBytes, lo, hi int, act, tiles []byte, n, cols int, out []float32, ostride int) error {
	ab, err := VecDotType(w).RowBytes(cols)
	if err != nil || !VecDotType(w).Valid() {
		return fmt.Errorf("quant: mul tiles: no dot product for %v rows of %d: %v", w, cols, err)
	}
	switch {
	case lo < 0 || hi < lo:
		return fmt.Errorf("quant: mul tiles: bad row range [%d, %d)", lo, hi)
	case n < 0 || len(act) < n*ab:
		return fmt.Errorf("quant: mul tiles: %d activation bytes for %d rows of %d", len(act), n, ab)
	case n > 0 && (ostride < hi || len(out) < (n-1)*ostride+hi):
		return fmt.Errorf("quant: mul tiles: output of %d values with stride %d cannot hold rows [%d, %d) of %d columns", len(out), ostride, lo, hi, n)
	}
	// Rows that make no whole tile, and everything without tiles, go
	// through the row kernels (DotRows validates the weight range).
	tail := lo
	if tiles != nil && n > 0 {
		tl, _, err := checkTiles(w, act, n, cols, tiles)
		if err != nil {
			return err
		}
		if err := checkWeightRows(w, len(wdata), rowBytes, lo, hi, cols); err != nil {
			return err
		}
		tail = lo + (hi-lo)/tileRows*tileRows
		mulTiled(tl, wdata, rowBytes, lo, tail, tiles, n, cols, out, ostride)
	}
	for rb := tail; rb < hi; rb += rowBlock {
		re := min(rb+rowBlock, hi)
		for t := range n {
			if err := DotRows(w, wdata, rowBytes, rb, re, act[t*ab:(t+1)*ab], cols, out[t*ostride+rb:t*ostride+re]); err != nil {
				return fmt.Errorf("quant: mul tiles: %w", err)
			}
		}
	}
	return nil
}

// checkWeightRows validates that rows lo..hi-1 of cols elements of type w,
// rowBytes apart, lie inside wlen bytes.
func checkWeightRows(w tensor.DType, wlen, rowBytes, lo, hi, cols int) error {
	need, err := w.RowBytes(cols)
	switch {
	case err != nil:
		return fmt.Errorf("quant: mul tiles: %w", err)
	case lo < 0 || hi < lo:
		return fmt.Errorf("quant: mul tiles: bad row range [%d, %d)", lo, hi)
	case hi > lo && (rowBytes < need || wlen < need || hi-1 > (wlen-need)/rowBytes):
		return fmt.Errorf("quant: mul tiles: rows [%d, %d) of %d bytes, stride %d, exceed the %d weight bytes", lo, hi, need, rowBytes, wlen)
	}
	return nil
}

// sidePool holds the side tables' scratch, one per concurrent product.
var sidePool = sync.Pool{New: func() any { return new([tileSideBytes / 8]uint64) }}

// tileBlockBytes bounds the packed activations that one sweep over a
// chunk's weight rows reads: the groups beyond it wait for the next sweep,
// so that the ones in flight stay in the L2 cache while every tile of
// weight rows passes over them.
const tileBlockBytes = 768 << 10

// mulTiled runs the tiled kernel over the weight rows lo..hi-1 (a multiple
// of tileRows) and all n packed rows, in sweeps of a few groups.
func mulTiled(tl *tiler, wdata []byte, rowBytes, lo, hi int, tiles []byte, n, cols int, out []float32, ostride int) {
	nb := cols / tl.blockElems
	groupBytes := nb * tl.packBytes
	full := n / tileCols
	sweep := max(1, tileBlockBytes/groupBytes)
	sideWords := sidePool.Get().(*[tileSideBytes / 8]uint64)
	defer sidePool.Put(sideWords)
	side := unsafe.Slice((*byte)(unsafe.Pointer(&sideWords[0])), tileSideBytes)
	for g0 := 0; g0 < full; g0 += sweep {
		g1 := min(g0+sweep, full)
		for r := lo; r < hi; r += tileRows {
			tl.mul(wdata[r*rowBytes:], rowBytes, tiles[g0*groupBytes:], g1-g0, nb, out[g0*tileCols*ostride+r:], ostride, side)
		}
	}
	rest := n - full*tileCols
	if rest == 0 {
		return
	}
	var last [tileRows * tileCols]float32
	for r := lo; r < hi; r += tileRows {
		tl.mul(wdata[r*rowBytes:], rowBytes, tiles[full*groupBytes:], 1, nb, last[:], tileRows, side)
		for c := range rest {
			copy(out[(full*tileCols+c)*ostride+r:][:tileRows], last[c*tileRows:])
		}
	}
}
