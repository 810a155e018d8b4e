package cuda

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// mmq32OffEnv, set in a test binary's environment, turns the staged
// products off (BenchmarkPrefillSynthetic before/after in one binary).
// mmq32TileEnv sets mmq32Force (an index of mmq32Tiles: every staged
// product takes that tile).
const (
	mmq32OffEnv  = "APR_CUDA_MMQ32_OFF"
	mmq32TileEnv = "APR_CUDA_MMQ32_TILE"
)

func init() {
	if os.Getenv(mmq32OffEnv) != "" {
		mmq32On = false
	}
	if n, err := strconv.Atoi(os.Getenv(mmq32TileEnv)); err == nil && n >= 0 && n < len(mmq32Tiles) {
		mmq32Force = n
	}
}

// TestMMQ32Unit checks the staged kernels' copy width: the widest of 16, 8
// and 4 bytes that divides both pointers and both row lengths (Q8_0 rows of
// 1536, 896, 320 and 352 columns: 48, 28, 10 and 11 blocks), else none.
func TestMMQ32Unit(t *testing.T) {
	row := func(dt tensor.DType, cols int) int {
		n, err := dt.RowBytes(cols)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		name       string
		dt         tensor.DType
		cols       int
		wptr, aptr devptr
		want       int
	}{
		{"q8_0 48 blocks", tensor.Q8_0, 1536, 1 << 20, 2 << 20, 16},
		{"q4_0 48 blocks", tensor.Q4_0, 1536, 1 << 20, 2 << 20, 16},
		{"q5_0 48 blocks", tensor.Q5_0, 1536, 1 << 20, 2 << 20, 16},
		{"q8_0 28 blocks", tensor.Q8_0, 896, 1 << 20, 2 << 20, 8},
		{"q5_0 28 blocks", tensor.Q5_0, 896, 1 << 20, 2 << 20, 8},
		{"q8_0 10 blocks", tensor.Q8_0, 320, 1 << 20, 2 << 20, 4},
		{"q8_0 11 blocks", tensor.Q8_0, 352, 1 << 20, 2 << 20, 0},
		{"weights 8-aligned", tensor.Q8_0, 1536, 1<<20 + 8, 2 << 20, 8},
		{"activations 2-aligned", tensor.Q4_0, 1536, 1 << 20, 2<<20 + 34, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &matrix{dt: tc.dt, rows: 64, cols: tc.cols, rowBytes: row(tc.dt, tc.cols), ptr: tc.wptr}
			if got := mmq32Unit(w, tc.aptr, row(tensor.Q8_0, tc.cols)); got != tc.want {
				t.Errorf("mmq32Unit = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestMMQ32Names checks that each 32-element weight type has a staged
// kernel of each tile and copy width, with the shared memory its layout
// needs (two stages of weight and activation rows, and the scales).
func TestMMQ32Names(t *testing.T) {
	for _, tc := range []struct {
		dt      tensor.DType
		tile    int
		suffix  string
		threads int
		shared  int
	}{
		{tensor.Q8_0, 0, "", 128, 2*64*(272+272) + 4096},
		{tensor.Q4_0, 0, "", 128, 2*64*(144+272) + 4096},
		{tensor.Q5_0, 0, "", 128, 2*64*(176+272) + 4096},
		{tensor.Q8_0, 1, "_t42", 256, 2*(128*272+64*272) + 192*32},
		{tensor.Q4_0, 1, "_t42", 256, 2*(128*144+64*272) + 192*32},
		{tensor.Q5_0, 1, "_t42", 256, 2*(128*176+64*272) + 192*32},
	} {
		tile := mmq32Tiles[tc.tile]
		for _, v := range mmq32Units {
			want := kernelName("mmq32_", tc.dt) + map[int]string{16: "_v16", 8: "_v8", 4: "_v4"}[v] + tc.suffix
			if got := mmq32Names[tc.dt][mmq32Key{tc.tile, v}]; got != want {
				t.Errorf("%v, tile %d, %d bytes: kernel %q, want %q", tc.dt, tc.tile, v, got, want)
			}
		}
		if got := tile.threads(); got != tc.threads {
			t.Errorf("%v, tile %d: %d threads, want %d", tc.dt, tc.tile, got, tc.threads)
		}
		if got := tile.shared(tc.dt.TypeSize()); got != tc.shared {
			t.Errorf("%v, tile %d: shared memory %d, want %d", tc.dt, tc.tile, got, tc.shared)
		}
	}
	if _, ok := mmq32Names[tensor.Q4_K]; ok {
		t.Error("Q4_K has staged 32-element kernels")
	}
}

// TestMMQ32TileShapes checks every staged tile of every 32-element type
// bit for bit against quant.VecDot (checkMMQ): 200 weight rows (a part
// block for each tile's rows), 16, 65 and 130 activation rows, copies of
// 16 bytes (512 and 1280 columns), 8 (896: a part chunk of 4 blocks) and
// 4 (320: a part chunk of 2).
func TestMMQ32TileShapes(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(11, 12))
	defer func(f int) { mmq32Force = f }(mmq32Force)
	for ti, tile := range mmq32Tiles {
		mmq32Force = ti
		for _, tc := range []struct{ cols, m int }{{512, 65}, {1280, 130}, {896, 16}, {896, 130}, {320, 65}} {
			for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0} {
				checkMMQ(t, d, b, r, dt, 200, tc.cols, tc.m, fmt.Sprintf("%v mmq32 tile %dx%d", dt, tile.wm, tile.wn))
			}
		}
	}
}

// TestMMQ32KS checks the K-split kernels of every 32-element type bit for
// bit against quant.VecDot (checkMMQ), in tiles of 32 and 16 weight rows:
// 200 weight rows (a part block of 8 rows), 2, 7, 16, 32, 33 and 64 activation rows (part and whole blocks of
// 32; the fewest through fewRowsMMQ),
// copies of 16 bytes (512 and 1280 columns: 2 and 5 chunks), 8 (896: a
// part chunk of 4 blocks) and 4 (320: a part chunk of 2).
func TestMMQ32KS(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(15, 16))
	defer func(k, few, blocks int) {
		mmq32KSMode, mmqFewRows, mmqMinBlocks = k, few, blocks
	}(mmq32KSMode, mmqFewRows, mmqMinBlocks)
	mmq32KSMode, mmqFewRows, mmqMinBlocks = 1, 2, 0
	defer func(rows int) { mmq32KSRows = rows }(mmq32KSRows)
	for _, tile := range mmq32KSTiles {
		mmq32KSRows = tile.rows
		for _, tc := range []struct{ cols, m int }{{512, 32}, {1280, 33}, {896, 16}, {896, 64}, {320, 33}, {512, 2}, {896, 7}} {
			for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0} {
				checkMMQ(t, d, b, r, dt, 200, tc.cols, tc.m, fmt.Sprintf("%v mmq32 K-split, %d-row tiles", dt, tile.rows))
			}
		}
	}
}

// TestMMQ32KSChoice checks, without a GPU, which staged products take the
// K-split kernels on 132 SMs (few tiles of at most 64 activation rows) and
// which passes of 8-15 rows take mmq32 (matrices of many blocks).
func TestMMQ32KSChoice(t *testing.T) {
	defer func(k int) { mmq32KSMode = k }(mmq32KSMode)
	mmq32KSMode = 0
	for _, tc := range []struct {
		name         string
		rows, m, sms int
		want         bool
	}{
		{"down 1.5B, 32 rows", 1536, 32, 132, true},
		{"o 1.5B, 64 rows", 1536, 64, 132, true},
		{"qkv 1.5B, 16 rows", 2048, 16, 132, true},
		{"gate+up 1.5B, 32 rows", 17920, 32, 132, false},
		{"down 1.5B, 65 rows", 1536, 65, 132, false},
		{"down 1.5B, 512 rows", 1536, 512, 132, false},
		{"unknown SMs", 1536, 32, 0, false},
	} {
		if got := mmq32KS(tc.rows, tc.m, tc.sms); got != tc.want {
			t.Errorf("%s: K-split %v, want %v", tc.name, got, tc.want)
		}
	}
	d := &Device{sms: 132}
	for _, tc := range []struct {
		name    string
		dt      tensor.DType
		rows, m int
		want    bool
	}{
		{"gate+up Q8_0, 8 rows", tensor.Q8_0, 17920, 8, true},
		{"gate+up Q8_0, 15 rows", tensor.Q8_0, 17920, 15, true},
		{"gate+up Q8_0, 4 rows", tensor.Q8_0, 17920, 4, false},
		{"gate+up Q8_0, 16 rows (useMMQ's)", tensor.Q8_0, 17920, 16, false},
		{"down Q8_0, 8 rows", tensor.Q8_0, 1536, 8, false},
		{"gate+up Q4_K, 8 rows", tensor.Q4_K, 17920, 8, true},
		{"o Q4_K, 8 rows", tensor.Q4_K, 1536, 8, false},
		{"gate+up BF16, 8 rows", tensor.BF16, 17920, 8, false},
		{"gate+up 0.5B Q8_0 (896 columns), 8 rows", tensor.Q8_0, 9728, 8, false},
	} {
		cols := 1536
		if tc.rows == 9728 {
			cols = 896
		}
		rb, _ := tc.dt.RowBytes(cols)
		w := &matrix{dt: tc.dt, rows: tc.rows, cols: cols, rowBytes: rb, ptr: 1 << 20}
		ab, _ := tensor.Q8_0.RowBytes(cols)
		if got := d.fewRowsMMQ(w, 2<<20, ab, tc.m); got != tc.want {
			t.Errorf("%s: fewRowsMMQ %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := mmq32KSShared(32, 34); got != 2*2*32*272+2048+32768 {
		t.Errorf("Q8_0 K-split shared memory (32 rows) %d", got)
	}
	if got := mmq32KSShared(16, 34); got != 2*(16*272+32*272)+2048+16384 {
		t.Errorf("Q8_0 K-split shared memory (16 rows) %d", got)
	}
}

// shapesQ8 are the products of Qwen2.5-Coder-1.5B's and -0.5B's Q8_0
// passes (q, k and v as one matrix).
var shapesQ8 = []productShape{
	{"qkv", tensor.Q8_0, 2048, 1536},
	{"o", tensor.Q8_0, 1536, 1536},
	{"gate+up", tensor.Q8_0, 17920, 1536},
	{"down", tensor.Q8_0, 1536, 8960},
	{"qkv-0.5B", tensor.Q8_0, 1152, 896},
	{"o-0.5B", tensor.Q8_0, 896, 896},
	{"gate+up-0.5B", tensor.Q8_0, 9728, 896},
	{"down-0.5B", tensor.Q8_0, 896, 4864},
}

// BenchmarkMMQ32Tiles times each staged tile on the Q8_0 passes' products
// at 512 activation rows (CUDA events around b.N back-to-back launches;
// "-auto" is the tile that mmq32TileFor picks).
func BenchmarkMMQ32Tiles(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(13, 14))
	const m = 512
	for _, s := range shapesQ8 {
		wq, act, rb, ab := mmqOperands(b, r, s.dt, s.rows, s.cols, m, 64)
		w := &matrix{name: s.name, dt: s.dt, rows: s.rows, cols: s.cols, rowBytes: rb, ptr: bufs.bytes(wq)}
		a, y := bufs.bytes(act), bufs.poisoned(4*s.rows*m)
		for ti := -1; ti < len(mmq32Tiles); ti++ {
			name := fmt.Sprintf("%s-%dx%d-auto", s.name, s.rows, s.cols)
			if ti >= 0 {
				name = fmt.Sprintf("%s-%dx%d-t%d%d", s.name, s.rows, s.cols, mmq32Tiles[ti].wm, mmq32Tiles[ti].wn)
			}
			b.Run(name, func(b *testing.B) {
				defer func(f int) { mmq32Force = f }(mmq32Force)
				mmq32Force = ti
				reportProduct(b, d, s, m, func() error { return d.matmul(w, a, ab, y, s.rows, 0, false, m) })
			})
		}
	}
}

// TestMMQ32TileFor checks the tile choice on 132 SMs for the Q8_0 passes'
// products at 512 rows, a short pass, and an unknown SM count.
func TestMMQ32TileFor(t *testing.T) {
	defer func(f int) { mmq32Force = f }(mmq32Force)
	mmq32Force = -1
	for _, tc := range []struct {
		name         string
		rows, m, sms int
		want         int
	}{
		{"gate+up 1.5B", 17920, 512, 132, mmq32Large},
		{"gate+up 0.5B", 9728, 512, 132, mmq32Large},
		{"down 1.5B", 1536, 512, 132, mmq32Default},
		{"qkv 1.5B", 2048, 512, 132, mmq32Default},
		{"gate+up 1.5B, 64 rows", 17920, 64, 132, mmq32Default},
		{"gate+up 1.5B, 128 rows", 17920, 128, 132, mmq32Large},
		{"down 1.5B, 4096 rows", 1536, 4096, 132, mmq32Large},
		{"unknown SMs", 17920, 512, 0, mmq32Default},
	} {
		if got := mmq32TileFor(tc.rows, tc.m, tc.sms); got != tc.want {
			t.Errorf("%s: tile %d, want %d", tc.name, got, tc.want)
		}
	}
	mmq32Force = 1
	if got := mmq32TileFor(17920, 512, 132); got != 1 {
		t.Errorf("forced tile 1: got %d", got)
	}
}

// TestFewRowsMMQ checks products of 8-15 activation rows that fewRowsMMQ
// sends to mmq (every matrix here: mmqMinBlocks 0) bit for bit against
// quant.VecDot: the staged K-quant mmq and mmq32's 64 x 64 tiles (K-split
// off) on part tiles of 8, 9 and 15 rows.
func TestFewRowsMMQ(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(17, 18))
	defer func(few, blocks, ks int) {
		mmqFewRows, mmqMinBlocks, mmq32KSMode = few, blocks, ks
	}(mmqFewRows, mmqMinBlocks, mmq32KSMode)
	mmqFewRows, mmqMinBlocks, mmq32KSMode = 8, 0, -1
	for _, m := range []int{8, 9, 15} {
		for _, dt := range []tensor.DType{tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.Q8_0, tensor.Q4_0, tensor.Q5_0} {
			checkMMQ(t, d, b, r, dt, 200, 2048, m, fmt.Sprintf("%v mmq from %d rows", dt, mmqFewRows))
		}
	}
}
