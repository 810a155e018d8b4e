package quant

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// tileCase is a matrix product shape: weight rows [lo, hi) of rows, n
// activation rows of cols elements.
type tileCase struct {
	rows, lo, hi, n, cols int
	raw                   bool // weights of random bytes rather than quantized floats
}

// tileCases cover whole and partial tiles, one and many groups, and rows
// of one block up to many.
func tileCases(blockElems int) []tileCase {
	return []tileCase{
		{rows: 4, lo: 0, hi: 4, n: 4, cols: blockElems},
		{rows: 8, lo: 0, hi: 8, n: 1, cols: 2 * blockElems},
		{rows: 13, lo: 1, hi: 12, n: 7, cols: 3 * blockElems, raw: true},
		{rows: 16, lo: 4, hi: 16, n: 9, cols: 4 * blockElems},
		{rows: 20, lo: 0, hi: 20, n: 16, cols: 7 * blockElems, raw: true},
		{rows: 9, lo: 0, hi: 9, n: 130, cols: 2 * blockElems},
		{rows: 8, lo: 0, hi: 8, n: 5, cols: 70 * blockElems}, // long rows (the float tiles' narrow kernel)
	}
}

// randomMatrix returns rows weight rows of type dt, stride bytes apart
// (padded by 3 bytes to catch stride mistakes).
func randomMatrix(t *testing.T, rng *rand.Rand, dt tensor.DType, rows, cols int, raw bool) ([]byte, int) {
	t.Helper()
	rb, err := dt.RowBytes(cols)
	if err != nil {
		t.Fatal(err)
	}
	stride := rb + 3
	w := make([]byte, rows*stride)
	for r := range rows {
		copy(w[r*stride:], randomWeights(t, rng, dt, cols, raw))
	}
	return w, stride
}

// TestMulTilesMatchesRows checks every matrix product against DotRows row
// by row, bit for bit: with the tiled kernel where this CPU has one and
// with the row-kernel fallback (nil tiles) for every type.
func TestMulTilesMatchesRows(t *testing.T) {
	checkMulTiles(t, benchTypes)
}

// checkMulTiles runs TestMulTilesMatchesRows's comparison for the types.
func checkMulTiles(t *testing.T, types []tensor.DType) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dt := range types {
		blockElems := qk
		if dt >= tensor.Q2_K {
			blockElems = qkK
		}
		for _, tc := range tileCases(blockElems) {
			w, stride := randomMatrix(t, rng, dt, tc.rows, tc.cols, tc.raw)
			vt := VecDotType(dt)
			ab, _ := vt.RowBytes(tc.cols)
			act := make([]byte, 0, tc.n*ab)
			for range tc.n {
				act = append(act, mustQuantize(t, vt, randomRow(rng, tc.cols), true)...)
			}
			want := make([]float32, tc.n*tc.rows)
			for i := range tc.n {
				if err := DotRows(dt, w, stride, tc.lo, tc.hi, act[i*ab:(i+1)*ab], tc.cols, want[i*tc.rows+tc.lo:]); err != nil {
					t.Fatal(err)
				}
			}
			var packed []byte
			if size, ok := TiledBytes(dt, tc.n, tc.cols); ok {
				packed = make([]byte, size)
				g := TileGroups(tc.n)
				// Two ranges, as two workers would pack them.
				if err := PackTiles(dt, act, tc.n, tc.cols, 0, g/2, packed); err != nil {
					t.Fatal(err)
				}
				if err := PackTiles(dt, act, tc.n, tc.cols, g/2, g, packed); err != nil {
					t.Fatal(err)
				}
			}
			for _, tiles := range [][]byte{nil, packed} {
				got := make([]float32, tc.n*tc.rows)
				if err := MulTiles(dt, w, stride, tc.lo, tc.hi, act, tiles, tc.n, tc.cols, got, tc.rows); err != nil {
					t.Fatalf("%v %+v: %v", dt, tc, err)
				}
				for i, v := range got {
					if math.Float32bits(v) != math.Float32bits(want[i]) {
						t.Fatalf("%v %+v tiled=%v: output %d (activation row %d, weight row %d) = %v, row kernel %v",
							dt, tc, tiles != nil, i, i/tc.rows, i%tc.rows, v, want[i])
					}
				}
				if tiles == nil && packed == nil {
					break
				}
			}
		}
	}
}

// TestTiledTypes pins which weight types have tiled kernels on this CPU.
func TestTiledTypes(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q5_0, tensor.Q4_K, tensor.Q6_K, tensor.BF16, tensor.F16} {
		if _, ok := TiledBytes(dt, 4, 256); ok != hasVNNI {
			t.Errorf("%v: tiled %v, want %v (AVX-512 VNNI %v)", dt, ok, hasVNNI, hasVNNI)
		}
	}
	if _, ok := TiledBytes(tensor.Q4_1, 4, 64); ok {
		t.Error("Q4_1 has no tiled kernel, yet TiledBytes accepts it")
	}
}

// TestMulTilesRejectsBadArguments feeds sizes that do not fit.
func TestMulTilesRejectsBadArguments(t *testing.T) {
	dt := tensor.Q8_0
	ab, _ := dt.RowBytes(64)
	w := make([]byte, 4*ab)
	act := make([]byte, 4*ab)
	out := make([]float32, 16)
	cases := []struct {
		name            string
		lo, hi, n, cols int
		out             []float32
		w, act          []byte
	}{
		{"rows past the weights", 0, 5, 4, 64, out, w, act},
		{"short activation", 0, 4, 4, 64, out, w, act[:ab]},
		{"short output", 0, 4, 4, 64, out[:15], w, act},
		{"negative range", 3, 2, 4, 64, out, w, act},
		{"partial block", 0, 4, 4, 60, out, w, act},
	}
	for _, tc := range cases {
		if err := MulTiles(dt, tc.w, ab, tc.lo, tc.hi, tc.act, nil, tc.n, tc.cols, tc.out, 4); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := PackTiles(tensor.Q4_1, act, 4, 64, 0, 1, make([]byte, 1024)); err == nil {
		t.Error("PackTiles accepted a type without a tiled kernel")
	}
}

// BenchmarkMulTiles multiplies 128 activation rows (a prompt) with 256
// weight rows of 896 (1024 for the K-quants), tiled and row by row; the
// throughput is in multiply-adds.
func BenchmarkMulTiles(b *testing.B) {
	benchMulTiles(b, []tensor.DType{tensor.Q5_0, tensor.Q8_0, tensor.Q4_K, tensor.Q6_K, tensor.BF16})
}

// benchMulTiles runs BenchmarkMulTiles's cases for the types.
func benchMulTiles(b *testing.B, types []tensor.DType) {
	const rows, n = 256, 128
	rng := rand.New(rand.NewPCG(7, 8))
	for _, dt := range types {
		cols := 896
		if dt >= tensor.Q2_K {
			cols = 1024
		}
		rb, _ := dt.RowBytes(cols)
		w := make([]byte, 0, rows*rb)
		for range rows {
			w = append(w, mustQuantize(b, dt, randomRow(rng, cols), false)...)
		}
		vt := VecDotType(dt)
		ab, _ := vt.RowBytes(cols)
		act := make([]byte, 0, n*ab)
		for range n {
			act = append(act, mustQuantize(b, vt, randomRow(rng, cols), true)...)
		}
		out := make([]float32, n*rows)
		var packed []byte
		if size, ok := TiledBytes(dt, n, cols); ok {
			packed = make([]byte, size)
		}
		for _, tiled := range []bool{false, true} {
			if tiled && packed == nil {
				continue
			}
			name := dt.String() + map[bool]string{false: "/rows", true: "/tiles"}[tiled]
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(rows * n * cols))
				for b.Loop() {
					var tiles []byte
					if tiled {
						if err := PackTiles(dt, act, n, cols, 0, TileGroups(n), packed); err != nil {
							b.Fatal(err)
						}
						tiles = packed
					}
					if err := MulTiles(dt, w, rb, 0, rows, act, tiles, n, cols, out, rows); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// activationRows returns rows of activations that exercise a quantizer:
// normal values at several magnitudes, zero blocks, halves (ties after
// scaling), subnormals and the float32 extremes.
func activationRows(rng *rand.Rand, cols int) [][]float32 {
	var rows [][]float32
	for _, scale := range []float64{1, 1e-3, 1e3, 1e-30, 1e30, 1e-42} {
		x := randomRow(rng, cols)
		for i := range x {
			x[i] = float32(float64(x[i]) * scale)
		}
		rows = append(rows, x)
	}
	ties := make([]float32, cols)
	for i := range ties {
		ties[i] = float32(i%255-127) / 2 // multiples of 1/2 up to 63.5 against an amax of 63.5
	}
	zeros := make([]float32, cols)
	mixed := randomRow(rng, cols)
	clear(mixed[:min(cols, 32)])
	mixed[len(mixed)-1] = math.MaxFloat32
	mixed[len(mixed)-2] = -math.SmallestNonzeroFloat32
	return append(rows, ties, zeros, mixed)
}

// TestFastActivationsMatch checks the assembly activation quantizers byte
// for byte against QuantizeActivation.
func TestFastActivationsMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for vt, fast := range fastActivation {
		if fast == nil {
			continue
		}
		dt := tensor.DType(vt)
		for _, cols := range []int{256, 512, 4864} {
			for i, x := range activationRows(rng, cols) {
				want := mustQuantize(t, dt, x, true)
				got := make([]byte, len(want))
				fast(x, got)
				if !bytes.Equal(got, want) {
					for j := range got {
						if got[j] != want[j] {
							t.Fatalf("%v cols %d row %d: byte %d is %#x, QuantizeActivation %#x", dt, cols, i, j, got[j], want[j])
						}
					}
				}
			}
		}
	}
}

// TestQuantizeTilesMatches checks QuantizeTiles against QuantizeActivation
// and PackTiles.
func TestQuantizeTilesMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q5_0, tensor.Q4_K, tensor.Q6_K} {
		const n, cols = 10, 512
		size, ok := TiledBytes(dt, n, cols)
		if !ok {
			continue
		}
		vt := VecDotType(dt)
		ab, _ := vt.RowBytes(cols)
		x := randomRow(rng, n*cols)
		want, wantTiles := make([]byte, n*ab), make([]byte, size)
		for r := range n {
			if err := QuantizeActivation(vt, x[r*cols:(r+1)*cols], want[r*ab:(r+1)*ab]); err != nil {
				t.Fatal(err)
			}
		}
		if err := PackTiles(dt, want, n, cols, 0, TileGroups(n), wantTiles); err != nil {
			t.Fatal(err)
		}
		got, gotTiles := make([]byte, n*ab), make([]byte, size)
		for g := range TileGroups(n) {
			if err := QuantizeTiles(dt, x, n, cols, g, g+1, got, gotTiles); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, want) || !bytes.Equal(gotTiles, wantTiles) {
			t.Errorf("%v: QuantizeTiles differs from QuantizeActivation + PackTiles", dt)
		}
		if err := QuantizeTiles(dt, x[:10], n, cols, 0, 1, got, gotTiles); err == nil {
			t.Errorf("%v: QuantizeTiles accepted a short input", dt)
		}
	}
}
