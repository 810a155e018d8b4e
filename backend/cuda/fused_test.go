package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// TestMVXLayout checks, without a GPU, that the fused products' parameter
// has the size and field offsets of MVX and MVPart in kernels/fused.cuh.
func TestMVXLayout(t *testing.T) {
	var a mvxArgs
	for _, c := range []struct {
		what      string
		got, want uintptr
	}{
		{"sizeof(MVPart)", unsafe.Sizeof(a.p[0]), 64},
		{"MVPart.rows", unsafe.Offsetof(a.p[0].rows), 32},
		{"MVPart.acc", unsafe.Offsetof(a.p[0].acc), 56},
		{"MVX.x", unsafe.Offsetof(a.x), 3 * 64},
		{"MVX.eps", unsafe.Offsetof(a.eps), 3*64 + 16},
		{"MVX.termFloats", unsafe.Offsetof(a.termFloats), 3*64 + 16 + 24},
		{"sizeof(MVX)", unsafe.Sizeof(a), 3*64 + 16 + 32},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
}

// TestFusable checks which matrices go as one fused launch.
func TestFusable(t *testing.T) {
	m := func(dt tensor.DType) *matrix { return &matrix{dt: dt} }
	for _, c := range []struct {
		what string
		ws   []*matrix
		want bool
	}{
		{"Q4_K q+k, Q6_K v", []*matrix{m(tensor.Q4_K), nil, m(tensor.Q6_K)}, true},
		{"Q5_0, Q8_0, Q4_0", []*matrix{m(tensor.Q5_0), m(tensor.Q8_0), m(tensor.Q4_0)}, true},
		{"Q4_K with Q8_0 (two activation encodings)", []*matrix{m(tensor.Q4_K), m(tensor.Q8_0)}, false},
		{"BF16", []*matrix{m(tensor.BF16)}, false},
		{"none", []*matrix{nil, nil}, false},
		{"four", []*matrix{m(tensor.Q4_K), m(tensor.Q4_K), m(tensor.Q4_K), m(tensor.Q4_K)}, false},
	} {
		if got := fusable(c.ws...); got != c.want {
			t.Errorf("%s: fusable = %v, want %v", c.what, got, c.want)
		}
	}
}

// TestMatVecFused checks the fused one-row products against the CPU
// backend: RMSNorm (or none), quant's activation quantization and
// quant.VecDot per row, for parts of different types in one launch.
func TestMatVecFused(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(11, 12))
	be := cpu.New(1)
	defer be.Close()
	defer func(w int) { mvTargetWarps = w }(mvTargetWarps)
	type part struct {
		dt   tensor.DType
		rows int
		bias bool
		acc  bool
	}
	for _, tc := range []struct {
		mode, n     int
		ggml        bool
		targetWarps int
		parts       []part
	}{
		{mvxNorm, 1536, true, 2048, []part{{tensor.Q4_K, 77, true, false}, {tensor.Q6_K, 40, true, false}, {tensor.Q5_K, 33, false, true}}},
		{mvxNorm, 1536, false, 1, []part{{tensor.Q4_K, 300, false, false}, {tensor.Q6_K, 9, true, true}}},
		{mvxNorm, 896, true, 2048, []part{{tensor.Q5_0, 70, true, false}, {tensor.Q8_0, 20, true, false}, {tensor.Q4_0, 17, false, true}}},
		{mvxNorm, 896, true, 1, []part{{tensor.Q8_0, 130, false, false}}},
		{mvxQuant, 1536, true, 2048, []part{{tensor.Q4_K, 96, false, true}}},
		{mvxQuant, 896, true, 1, []part{{tensor.Q5_0, 50, false, true}, {tensor.Q8_0, 50, false, false}}},
		{mvxGlobal, 2304, true, 2048, []part{{tensor.Q6_K, 64, true, false}, {tensor.Q5_K, 8, false, true}}},
		{mvxSilu, 8960, true, 2048, []part{{tensor.Q6_K, 40, false, true}}},
		{mvxSilu, 4864, false, 1, []part{{tensor.Q6_K, 12, false, true}, {tensor.Q4_K, 30, false, false}}},
		{mvxSilu, 4864, true, 2048, []part{{tensor.Q8_0, 33, false, true}}},
	} {
		mvTargetWarps = tc.targetWarps
		n := tc.n
		x, nw := randn(r, n, 3), randn(r, n, 1)
		if tc.mode == mvxSilu {
			x = randn(r, 2*n, 3) // gate, then up
		}
		vt := actType(tc.parts[0].dt)
		ab, err := vt.RowBytes(n)
		if err != nil {
			t.Fatal(err)
		}
		// The activation as the CPU engine makes it.
		xn := append([]float32(nil), x[:n]...)
		switch {
		case tc.mode == mvxSilu && tc.ggml:
			cpu.SiLUMulGGML(xn, x[n:])
		case tc.mode == mvxSilu:
			cpu.SiLUMul(xn, x[n:])
		case tc.mode == mvxNorm:
			if tc.ggml {
				be.RMSNormGGML(xn, x, nw, 1, 1e-6)
			} else {
				be.RMSNorm(xn, x, nw, 1, 1e-6)
			}
		}
		act := make([]byte, ab)
		if err := quant.QuantizeActivation(vt, xn, act); err != nil {
			t.Fatal(err)
		}
		xp := b.floats(x)
		if tc.mode == mvxGlobal {
			xp = b.bytes(act)
		}
		var outs []mvxOut
		var wants [][]float32
		var ys []devptr
		for _, p := range tc.parts {
			rb, _ := p.dt.RowBytes(n)
			wq := make([]byte, p.rows*rb)
			if err := quant.Quantize(p.dt, randn(r, p.rows*n, 1), wq); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, p.rows)
			y0, bias := randn(r, p.rows, 1), randn(r, p.rows, 1)
			o := mvxOut{w: &matrix{name: p.dt.String(), dt: p.dt, rows: p.rows, cols: n, rowBytes: rb, ptr: b.bytes(wq)}, acc: p.acc}
			for i := range want {
				want[i] = quant.VecDot(p.dt, wq[i*rb:(i+1)*rb], act, n)
				if p.bias {
					want[i] += bias[i]
				}
				if p.acc {
					want[i] += y0[i]
				}
			}
			if p.bias {
				o.bias = b.floats(bias)
			}
			o.y = b.poisoned(4 * p.rows)
			if p.acc {
				o.y = b.floats(y0)
			}
			outs, wants, ys = append(outs, o), append(wants, want), append(ys, o.y)
		}
		if err := d.matvecFused(outs, tc.mode, xp, n, b.floats(nw), 1e-6, tc.ggml); err != nil {
			t.Fatal(err)
		}
		for i, p := range tc.parts {
			what := fmt.Sprintf("mode %d, n %d, ggml %v, mvTargetWarps %d: part %d (%v, %d rows)", tc.mode, n, tc.ggml, tc.targetWarps, i, p.dt, p.rows)
			compare(t, what, b.readFloats(ys[i], p.rows), wants[i], 1e-5)
		}
	}
}

// TestPlanRowsSpread checks mvSpread's wider blocks: rows for mvSpread
// blocks per SM in whole groups, the terms within shared memory, and
// planMatvec's split when that has fewer blocks already.
func TestPlanRowsSpread(t *testing.T) {
	defer func(s int) { mvSpread = s }(mvSpread)
	d := &Device{sms: 132}
	for _, tc := range []struct {
		what          string
		spread        int
		rows, nb, per int
		want          matvecPlan
	}{
		{"off", 0, 17920, 6, 8, matvecPlan{rw: 4, rpc: 16, warps: 3, units: true}},
		{"gate+up Q4_K", 2, 17920, 6, 8, matvecPlan{rw: 4, rpc: 68, warps: 3, units: true}},
		{"output Q8_0: terms capped", 2, 151936, 48, 32, matvecPlan{rw: 4, rpc: 256, warps: 3, units: true}},
		{"down Q6_K", 4, 1536, 35, 4, matvecPlan{rw: 4, rpc: 4, warps: 9}},
	} {
		mvSpread = tc.spread
		got := d.planRows(tc.rows, tc.nb, tc.per)
		if got != tc.want {
			t.Errorf("%s: planRows = %+v, want %+v", tc.what, got, tc.want)
		}
		if 4*got.rpc*tc.nb > mvSharedBytes {
			t.Errorf("%s: %d bytes of terms", tc.what, 4*got.rpc*tc.nb)
		}
	}
}

// TestWidenPlan checks qkvCap's wider blocks: the least factor that brings
// a launch's blocks within the bound, rows and warps grown by it, warps
// within the kernel's limit and 32, and terms within mvSharedBytes.
func TestWidenPlan(t *testing.T) {
	for _, tc := range []struct {
		what              string
		blocks, capBlocks int
		g                 matvecPlan
		maxWarps, nb      int
		wantK             int
		want              matvecPlan
	}{
		{"1.5B q Q4_K in 84", 576, 84, matvecPlan{rw: 1, rpc: 4, warps: 3, units: true}, 16, 6, 7,
			matvecPlan{rw: 1, rpc: 28, warps: 16, units: true}},
		{"no bound", 576, 0, matvecPlan{rw: 1, rpc: 4, warps: 3}, 16, 6, 1, matvecPlan{rw: 1, rpc: 4, warps: 3}},
		{"within the bound", 80, 84, matvecPlan{rw: 2, rpc: 8, warps: 4}, 32, 48, 1, matvecPlan{rw: 2, rpc: 8, warps: 4}},
		{"warps to 32", 1000, 100, matvecPlan{rw: 4, rpc: 8, warps: 4}, 32, 48, 10, matvecPlan{rw: 4, rpc: 80, warps: 32}},
		{"terms capped", 1000, 10, matvecPlan{rw: 4, rpc: 64, warps: 8}, 32, 48, 100, matvecPlan{rw: 4, rpc: 256, warps: 32}},
		{"kernel allows fewer warps than the plan", 576, 84, matvecPlan{rw: 1, rpc: 4, warps: 8}, 4, 6, 7,
			matvecPlan{rw: 1, rpc: 28, warps: 8}},
		{"the driver does not say (maxThreads 0)", 576, 84, matvecPlan{rw: 1, rpc: 4, warps: 3}, 0, 6, 7,
			matvecPlan{rw: 1, rpc: 28, warps: 3}},
	} {
		k := spanFactor(tc.blocks, tc.capBlocks)
		if k != tc.wantK {
			t.Errorf("%s: spanFactor = %d, want %d", tc.what, k, tc.wantK)
		}
		got := tc.g
		if k > 1 {
			got = tc.g.widen(k, tc.maxWarps, tc.nb)
		}
		if got != tc.want {
			t.Errorf("%s: widen = %+v, want %+v", tc.what, got, tc.want)
		}
		if 4*got.rpc*tc.nb > mvSharedBytes {
			t.Errorf("%s: %d bytes of terms", tc.what, 4*got.rpc*tc.nb)
		}
	}
}

// TestFuseQKVNorm checks which layers' q/k/v run fused with the
// attention's RMSNorm: one-row passes of Q8_K activations by default
// (fuseQKVK), every fusable family under fuseDecode's fuseQKV.
func TestFuseQKVNorm(t *testing.T) {
	defer func(f int, k bool) { fuseDecode, fuseQKVK = f, k }(fuseDecode, fuseQKVK)
	m := func(dt tensor.DType) *matrix { return &matrix{dt: dt} }
	q4k := layer{q: m(tensor.Q4_K), k: m(tensor.Q4_K), v: m(tensor.Q6_K)}
	q80 := layer{q: m(tensor.Q8_0), k: m(tensor.Q8_0), v: m(tensor.Q8_0)}
	fusedK := layer{qkv: m(tensor.Q4_K)}
	mixed := layer{q: m(tensor.Q4_K), k: m(tensor.Q4_K), v: m(tensor.Q8_0)}
	bf16 := layer{q: m(tensor.BF16), k: m(tensor.BF16), v: m(tensor.BF16)}
	for _, c := range []struct {
		what   string
		l      layer
		rows   int
		decode int
		k      bool
		want   bool
	}{
		{"Q4_K/Q6_K, one row", q4k, 1, 0, true, true},
		{"Q4_K/Q6_K, two rows", q4k, 2, 0, true, false},
		{"Q4_K/Q6_K, nofuseqkvk", q4k, 1, 0, false, false},
		{"fused Q4_K qkv", fusedK, 1, 0, true, true},
		{"Q8_0", q80, 1, 0, true, false},
		{"Q8_0 under fuseqkv", q80, 1, fuseQKV, true, true},
		{"Q4_K with a Q8_0 v (not fusable)", mixed, 1, fuseQKV, true, false},
		{"BF16", bf16, 1, fuseQKV, true, false},
	} {
		fuseDecode, fuseQKVK = c.decode, c.k
		if got := fuseQKVNorm(&c.l, c.rows); got != c.want {
			t.Errorf("%s: fuseQKVNorm = %v, want %v", c.what, got, c.want)
		}
	}
}
