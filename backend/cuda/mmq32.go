package cuda

import (
	"strconv"

	"github.com/apr-llm/apr/tensor"
)

// The staged products of the 32-element block types (mmq32_T_vV<tile> in
// kernels/mmq32.cuh): each block copies 8-block chunks of its weight rows
// and activation rows into shared memory, V bytes a copy (cp.async), so the
// rows must start on V-byte boundaries; mmq_T (operands loaded straight
// from global memory, 2 bytes at a time) takes the others. All compute the
// same outputs bit for bit.

// mmq32Units are the copy widths of the staged kernels, widest first.
var mmq32Units = []int{16, 8, 4}

// mmq32Tile is a block shape of the staged kernels: wm x wn warps of 32 x
// 32 outputs (32 wm weight rows by 32 wn activation rows), compiled for at
// least minBlocks blocks an SM (MMQ32_TILE in kernels/mmq32.cuh).
type mmq32Tile struct {
	wm, wn, minBlocks int
	suffix            string
}

// mmq32Tiles are the staged kernels' block shapes.
var mmq32Tiles = []mmq32Tile{
	{2, 2, 3, ""},
	{4, 2, 2, "_t42"},
}

// The tiles that mmq32TileFor picks (indices of mmq32Tiles).
const (
	mmq32Default = 0
	mmq32Large   = 1
)

// mmq32Key names a staged kernel of a weight type: its tile (an index of
// mmq32Tiles) and copy width.
type mmq32Key struct{ tile, unit int }

// mmq32Names holds the staged kernels' names by weight type, tile and copy
// width (built once: a launch allocates nothing).
var mmq32Names = stagedNames(len(mmq32Tiles), func(i int) string { return mmq32Tiles[i].suffix },
	func(i, v int) mmq32Key { return mmq32Key{i, v} })

// stagedNames builds a family of staged kernels' names, mmq32_T_vV plus
// the suffix of tile i, for each 32-element weight type, tile and copy
// width, keyed by key(i, width).
func stagedNames[K comparable](tiles int, suffix func(i int) string, key func(i, v int) K) map[tensor.DType]map[K]string {
	names := map[tensor.DType]map[K]string{}
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0} {
		names[dt] = map[K]string{}
		for i := range tiles {
			for _, v := range mmq32Units {
				names[dt][key(i, v)] = kernelName("mmq32_", dt) + "_v" + strconv.Itoa(v) + suffix(i)
			}
		}
	}
	return names
}

// mmq32KSTile is a K-split kernel's tile height: the weight rows a block
// takes and its kernels' name suffix.
type mmq32KSTile struct {
	rows   int
	suffix string
}

// mmq32KSTiles are the K-split kernels' tile heights.
var mmq32KSTiles = []mmq32KSTile{{32, "_ks"}, {16, "_ks16"}}

// mmq32KSKey names a K-split kernel of a weight type: its tile's weight
// rows and copy width.
type mmq32KSKey struct{ rows, unit int }

// mmq32KSNames holds the K-split kernels' names (mmq32_T_vV_ks,
// mmq32_T_vV_ks16) by weight type, tile rows and copy width.
var mmq32KSNames = stagedNames(len(mmq32KSTiles), func(i int) string { return mmq32KSTiles[i].suffix },
	func(i, v int) mmq32KSKey { return mmq32KSKey{mmq32KSTiles[i].rows, v} })

// mmq32KSRows is the weight rows a K-split block takes (the rows of one
// of mmq32KSTiles); a variable for the benchmarks that compare.
// BenchmarkPassProducts (H100, 1.5B Q8_0 shapes, us, 32-row / 16-row
// tiles) at 32 rows: down 44.3 / 28.6, qkv 9.7 / 7.6, o 9.5 / 7.2; at 64
// rows equal (down 44.0 / 41.3, o 9.8 / 9.8). BenchmarkStreamsSynthetic,
// 32 streams, ms a pass (two rounds): 1.5B Q8_0 4.210, 4.265 -> 3.617,
// 3.644; 0.5B Q4_K_M 2.770, 2.764 -> 2.613, 2.607.
var mmq32KSRows = 16

// mmq32KSMode picks the K-split kernels (mmq32ks in kernels/mmq32.cuh: a
// block of 8 warps a tile of mmq32KSRows x 32 outputs, each warp one block
// of a chunk) for a staged product: 0 where it has at most mmq32KSMaxRows
// activation rows and fewer 64 x 64 tiles than multiprocessors (mmq32KS),
// 1 always, -1 never. A variable for the tests and benchmarks that compare.
var mmq32KSMode = 0

// mmq32KSMaxRows is the most activation rows a product takes the K-split
// kernels for (passes of many slots' decode steps).
const mmq32KSMaxRows = 64

// mmq32KS reports whether a staged product of rows weight rows by m
// activation rows on sms multiprocessors takes the K-split kernels: the
// 64 x 64 tiles' blocks each walk the whole row, so a 32-row pass's o and
// down of a 1.5B model (24 tiles) ran on 24 of 132 multiprocessors.
func mmq32KS(rows, m, sms int) bool {
	if mmq32KSMode != 0 {
		return mmq32KSMode > 0
	}
	return m <= mmq32KSMaxRows && sms > 0 && ceilDiv(rows, 64)*ceilDiv(m, 64) < sms
}

// mmq32KSShared is the dynamic shared memory of a K-split block of rows
// weight rows for a weight type of blockBytes bytes a 32-element block:
// two stages of its weight rows and 32 activation rows of 8 blocks, the
// chunk's scales as floats (32 places each for weights and activations)
// and the 8 warps' terms of rows x 32 outputs.
func mmq32KSShared(rows, blockBytes int) int {
	return 2*(rows*8*blockBytes+32*8*34) + 2*8*32*4 + 8*rows*32*4
}

// mmq32On turns the staged kernels on (a variable for the tests and
// benchmarks that compare them with mmq_T).
var mmq32On = true

// mmq32Force, when not negative, is the index of the tile that every
// staged product takes (a variable for the tests and benchmarks).
var mmq32Force = -1

// rows returns the weight rows and activation rows of a block.
func (t mmq32Tile) rows() (bm, bn int) { return 32 * t.wm, 32 * t.wn }

// threads returns a block's threads.
func (t mmq32Tile) threads() int { return 32 * t.wm * t.wn }

// shared returns the dynamic shared memory of a block for a weight type of
// blockBytes bytes a 32-element block: two stages of its weight rows and
// activation rows of 8 blocks (34 bytes an activation block), and a
// chunk's scales as floats.
func (t mmq32Tile) shared(blockBytes int) int {
	bm, bn := t.rows()
	return 2*(bm*8*blockBytes+bn*8*34) + (bm+bn)*8*4
}

// mmq32TileFor returns the tile of a product of rows weight rows by m
// activation rows on sms multiprocessors (0: unknown): 128 x 64 (8 warps,
// 2 blocks an SM: 16 warps instead of 12, a third less staging an output)
// when the 64 x 64 tiles would number 4 or more a multiprocessor, else
// 64 x 64. BenchmarkMMQ32Tiles on an H100 (512 rows, us): gate+up 1.5B
// 167.4 -> 162.3, gate+up 0.5B 84.6 -> 71.0; the products of 1.5B's o,
// qkv and down (192-256 tiles) are equal either way (25.3, 25.4, 126.0),
// 0.5B's o and down (112) 16.1 -> 19.6 and 43.1 -> 70.3. Tiles of 64 x 32
// or 32 x 64 (twice the blocks for those few-tile products) measured
// slower on every shape (down 1.5B 142, 0.5B 66).
func mmq32TileFor(rows, m, sms int) int {
	if mmq32Force >= 0 {
		return mmq32Force
	}
	if sms > 0 && ceilDiv(rows, 64)*ceilDiv(m, 64) >= 4*sms {
		return mmq32Large
	}
	return mmq32Default
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
	if mmq32KS(w.rows, m, d.sms) {
		bm := mmq32KSRows
		return true, d.launch2(mmq32KSNames[w.dt][mmq32KSKey{bm, v}], ceilDiv(w.rows, bm), ceilDiv(m, 32), 8*32,
			mmq32KSShared(bm, w.dt.TypeSize()), mmArgs(w, act, actStride, y, yStride, bias, accumulate, m)...)
	}
	ti := mmq32TileFor(w.rows, m, d.sms)
	t := mmq32Tiles[ti]
	bm, bn := t.rows()
	return true, d.launch2(names[mmq32Key{ti, v}], ceilDiv(w.rows, bm), ceilDiv(m, bn), t.threads(), t.shared(w.dt.TypeSize()),
		mmArgs(w, act, actStride, y, yStride, bias, accumulate, m)...)
}
