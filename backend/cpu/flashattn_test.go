package cpu

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// refFlashAttentionGGML is the scalar flash attention that the vectorised
// kernels replaced, kept as their reference: one row and query head at a
// time, F16 updates through tensor's conversions.
func refFlashAttentionGGML(out, q []float32, caches []*KVCache, pos []int, n, heads, kvHeads, dim int) {
	scale := float32(1 / math.Sqrt(float64(dim)))
	group := heads / kvHeads
	qStride, kvStride := heads*dim, kvHeads*dim
	qf, acc := make([]float32, dim), make([]float32, dim)
	kq := make([]float32, ggmlFATileKV)
	acc16 := make([]uint16, dim)
	for t := range n {
		for h := range heads {
			c := caches[t]
			off := (h / group) * dim
			qv := q[t*qStride+h*dim : t*qStride+(h+1)*dim]
			o := out[t*qStride+h*dim : t*qStride+(h+1)*dim]
			if n >= ggmlFATileQ {
				refTiledRow(o, qv, c, pos[t], off, kvStride, scale, acc, kq)
			} else {
				refOneChunkRow(o, qv, c, pos[t], off, kvStride, scale, qf, acc16)
			}
		}
	}
}

// refOneChunkRow is ggml_compute_forward_flash_attn_ext_f16_one_chunk for
// one query row of one head over keys 0..p.
func refOneChunkRow(o, qv []float32, c *KVCache, p, off, kvStride int, scale float32, qf []float32, acc []uint16) {
	dim := len(qv)
	for i, v := range qv { // q_to_vec_dot: fp32 -> fp16
		qf[i] = tensor.F16ToF32(tensor.F32ToF16(v))
	}
	clear(acc)
	S, M := float32(0), float32(math.Inf(-1))
	for j := 0; j <= p; j++ {
		r := j*kvStride + off
		s := dotF16GGML(c.kh[r:r+dim], qf) * scale
		ms, vs := float32(1), float32(1)
		if s > M {
			Mold := M
			M = s
			ms = expf(Mold - M)
			for i, a := range acc { // ggml_vec_scale_f16
				acc[i] = tensor.F32ToF16(tensor.F16ToF32(a) * ms)
			}
		} else {
			vs = expf(s - M)
		}
		v := c.vh[r : r+dim]
		for i, a := range acc { // ggml_vec_mad_f16
			acc[i] = tensor.F32ToF16(fma32(tensor.F16ToF32(v[i]), vs, tensor.F16ToF32(a)))
		}
		S = float32(S*ms) + vs // never fused (GOAMD64=v3 would fuse S*ms + vs)
	}
	inv := float32(0)
	if S != 0 {
		inv = 1 / S
	}
	for i, a := range acc {
		o[i] = tensor.F16ToF32(a) * inv
	}
}

// refTiledRow is ggml_compute_forward_flash_attn_ext_tiled for one query
// row of one head over keys 0..p.
func refTiledRow(o, qv []float32, c *KVCache, p, off, kvStride int, scale float32, acc, kq []float32) {
	dim := len(qv)
	clear(acc)
	S, M := float32(0), float32(math.Inf(-1))
	ninf := float32(math.Inf(-1))
	for ic := 0; ic <= p; ic += ggmlFATileKV {
		nk := min(ggmlFATileKV, p+1-ic)
		tileMax := ninf
		for tk := 0; tk < ggmlFATileKV; tk++ {
			if tk >= nk {
				kq[tk] = ninf
				continue
			}
			r := (ic+tk)*kvStride + off
			kr := c.kh[r : r+dim]
			var s float32
			for d, x := range qv { // simd_gemm: FMA chain over dk
				s = fma32(x, tensor.F16ToF32(kr[d]), s)
			}
			s *= scale
			kq[tk] = s
			tileMax = max(tileMax, s)
		}
		if tileMax == ninf {
			continue
		}
		Mnew := max(M, tileMax)
		if Mnew > M {
			ms := expf(M - Mnew)
			for i := range acc {
				acc[i] *= ms
			}
			S *= ms
		}
		M = Mnew
		sum := faTileSoftmaxGo(kq, M) // ggml_vec_soft_max_f32
		S = float32(float64(S) + sum)
		for tk := 0; tk < nk; tk++ { // simd_gemm: VKQ += P·V, FMA chain over keys
			r := (ic+tk)*kvStride + off
			v := c.vh[r : r+dim]
			pk := kq[tk]
			for d := range acc {
				acc[d] = fma32(pk, tensor.F16ToF32(v[d]), acc[d])
			}
		}
	}
	inv := float32(0)
	if S != 0 {
		inv = 1 / S
	}
	for i, a := range acc {
		o[i] = a * inv
	}
}

// faCase is a flash-attention pass: its rows' caches, positions and queries.
type faCase struct {
	heads, kvHeads, dim, n int
	q                      []float32
	caches                 []*KVCache
	pos                    []int
}

// newFACase fills caches of ctx positions with random keys and values and
// makes n query rows: seqs sequences take turns in blocks of run rows, each
// sequence's rows at consecutive positions after a prefix of start
// positions (a prompt continued, or decode steps of several sequences).
// mag scales the queries (large scores exercise the softmax's range).
func newFACase(rng *rand.Rand, heads, kvHeads, dim, n, seqs, run, start, ctx int, mag float64) faCase {
	kvDim := kvHeads * dim
	caches := make([]*KVCache, seqs)
	for s := range caches {
		caches[s] = NewKVCache(ctx, kvDim, true)
		k, v := make([]float32, kvDim), make([]float32, kvDim)
		for p := range ctx {
			for i := range k {
				k[i], v[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			caches[s].Store(p, k, v)
		}
	}
	c := faCase{heads: heads, kvHeads: kvHeads, dim: dim, n: n}
	next := make([]int, seqs)
	for t := range n {
		s := t / run % seqs
		c.caches = append(c.caches, caches[s])
		c.pos = append(c.pos, start+next[s])
		next[s]++
	}
	c.q = make([]float32, n*heads*dim)
	for i := range c.q {
		c.q[i] = float32(rng.NormFloat64() * mag)
	}
	return c
}

// TestFlashAttentionGGMLMatchesScalar: the vectorised kernels (and their
// portable versions) give bit for bit the values of the scalar kernels, for
// both of ggml's kernels (F16 under 64 rows, tiled from 64), head sizes with
// and without assembly, grouped and plain heads, rows of several sequences
// and long contexts.
func TestFlashAttentionGGMLMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	type shape struct{ heads, kvHeads, dim int }
	cases := []struct {
		shape
		n, seqs, run, start int
		mag                 float64
	}{
		{shape{14, 2, 64}, 1, 1, 1, 0, 1},    // first decode step
		{shape{14, 2, 64}, 1, 1, 1, 300, 1},  // decode at context 301
		{shape{12, 2, 128}, 1, 1, 1, 200, 1}, // 1.5B's heads
		{shape{14, 2, 64}, 4, 4, 1, 90, 4},   // four sequences decoding, large scores
		{shape{14, 2, 64}, 39, 1, 39, 0, 1},  // a short prompt
		{shape{4, 4, 64}, 63, 1, 63, 20, 1},
		{shape{3, 1, 32}, 17, 1, 17, 5, 1},  // no assembly (dim 32)
		{shape{14, 2, 64}, 64, 1, 64, 0, 1}, // the tiled kernel from 64 rows
		{shape{14, 2, 64}, 128, 1, 128, 0, 1},
		{shape{12, 2, 128}, 130, 1, 130, 0, 1},
		{shape{14, 2, 64}, 70, 1, 70, 100, 8}, // a prompt continued, large scores
		{shape{14, 2, 64}, 80, 2, 5, 30, 1},   // two sequences in turns
		{shape{2, 1, 64}, 67, 67, 1, 150, 1},  // 67 sequences, one row each
		{shape{4, 2, 40}, 75, 1, 75, 0, 1},    // no assembly (dim 40)
	}
	// Each available level of assembly, then none.
	saved, saved512 := hasFA, hasFA512
	defer func() { hasFA, hasFA512 = saved, saved512 }()
	for _, mode := range [][2]bool{{true, true}, {true, false}, {false, false}} {
		hasFA, hasFA512 = saved && mode[0], saved512 && mode[1]
		for _, threads := range []int{1, 2} {
			b := New(threads)
			for _, tc := range cases {
				ctx := tc.start + (tc.n+tc.seqs-1)/tc.seqs + tc.run + 70
				c := newFACase(rng, tc.heads, tc.kvHeads, tc.dim, tc.n, tc.seqs, tc.run, tc.start, ctx, tc.mag)
				want := make([]float32, len(c.q))
				got := make([]float32, len(c.q))
				refFlashAttentionGGML(want, c.q, c.caches, c.pos, c.n, c.heads, c.kvHeads, c.dim)
				b.FlashAttentionGGML(got, c.q, c.caches, c.pos, c.n, c.heads, c.kvHeads, c.dim)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("avx2 %v avx512 %v threads %d %+v: value %d (row %d): %g, scalar %g",
							hasFA, hasFA512, threads, tc, i, i/(c.heads*c.dim), got[i], want[i])
					}
				}
			}
			b.Close()
		}
	}
}

// TestFlashAttentionPrimitivesMatchPortable compares each assembly
// primitive with its portable code on values across the range: scores far
// below the maximum (exponentials that underflow to subnormals and zero),
// above it (overflow), -Inf (masked keys), and F16 values of every size.
func TestFlashAttentionPrimitivesMatchPortable(t *testing.T) {
	if !hasFA {
		t.Skip("no AVX2/FMA/F16C: the portable code is all there is")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	check := func(name string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s [%d]: asm %g, portable %g", name, i, got[i], want[i])
			}
		}
	}
	portable := func(f func()) {
		saved512 := hasFA512
		hasFA, hasFA512 = false, false
		defer func() { hasFA, hasFA512 = true, saved512 }()
		f()
	}
	for rep := range 200 {
		// Tile softmax: x - M over [-250, 250], some -Inf.
		kq := make([]float32, ggmlFATileKV)
		for i := range kq {
			kq[i] = float32(rng.Float64()*500 - 250)
			if rng.IntN(10) == 0 {
				kq[i] = float32(math.Inf(-1))
			}
		}
		m := float32(rng.Float64()*100 - 50)
		got, want := append([]float32(nil), kq...), append([]float32(nil), kq...)
		gs := faTileSoftmax(got, m)
		var ws float64
		portable(func() { ws = faTileSoftmax(want, m) })
		check("faTileSoftmax", got, want)
		if math.Float64bits(gs) != math.Float64bits(ws) && !(math.IsNaN(gs) && math.IsNaN(ws)) {
			t.Fatalf("faTileSoftmax sum: asm %g, portable %g", gs, ws)
		}

		// Tile maximum: masked keys set to -Inf; NaN, zeros and -Inf
		// among the scores.
		nk0 := 1 + rng.IntN(ggmlFATileKV)
		for i := range kq {
			switch rng.IntN(40) {
			case 0:
				kq[i] = float32(math.NaN())
			case 1:
				kq[i] = float32(math.Copysign(0, -1))
			case 2:
				kq[i] = 0
			default:
				kq[i] = float32(rng.NormFloat64())
			}
		}
		got, want = append([]float32(nil), kq...), append([]float32(nil), kq...)
		gm := faTileMax(got, nk0)
		var wm float32
		portable(func() { wm = faTileMax(want, nk0) })
		if gm != wm && !(gm != gm && wm != wm) && !(gm == 0 && wm == 0) {
			t.Fatalf("faTileMax(nk %d): asm %g, portable %g", nk0, gm, wm)
		}
		for i := range want {
			if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
				t.Fatalf("faTileMax(nk %d) [%d]: asm %g, portable %g", nk0, i, got[i], want[i])
			}
		}

		// Online softmax: ties, -Inf and NaN among the scores.
		keys0 := 1 + rng.IntN(100)
		sc0, sc1 := make([]float32, keys0), make([]float32, keys0)
		for i := range sc0 {
			for _, sc := range [][]float32{sc0, sc1} {
				switch rng.IntN(30) {
				case 0:
					sc[i] = float32(math.NaN())
				case 1:
					sc[i] = float32(math.Inf(-1))
				case 2:
					sc[i] = 1
				default:
					sc[i] = float32(rng.NormFloat64() * 3)
				}
			}
		}
		gm0, gm1, gv := make([]float32, keys0), make([]float32, keys0), make([]float32, 2*keys0)
		wm0, wm1, wv := make([]float32, keys0), make([]float32, keys0), make([]float32, 2*keys0)
		gS0, gS1 := faOnlineSoftmax2(sc0, sc1, gm0, gm1, gv)
		var wS0, wS1 float32
		portable(func() { wS0, wS1 = faOnlineSoftmax2(sc0, sc1, wm0, wm1, wv) })
		same := func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b }
		if !same(gS0, wS0) || !same(gS1, wS1) {
			t.Fatalf("faOnlineSoftmax2 sums: asm %g %g, portable %g %g", gS0, gS1, wS0, wS1)
		}
		for i := range gv {
			if !same(gv[i], wv[i]) || i < keys0 && (!same(gm0[i], wm0[i]) || !same(gm1[i], wm1[i])) {
				t.Fatalf("faOnlineSoftmax2 [%d]: asm %g, portable %g", i, gv[i], wv[i])
			}
		}

		dim := 64 * (1 + rep%2)
		keys := 1 + rng.IntN(80)
		stride := dim + 64*rng.IntN(2)
		kh := make([]uint16, keys*stride)
		for i := range kh {
			kh[i] = uint16(rng.Uint32()) &^ 0x7c00 // finite halves of every exponent
			kh[i] |= uint16(rng.IntN(30)) << 10
		}
		q := make([]float32, dim)
		for i := range q {
			q[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(20)-10)))
		}
		scale := float32(0.125)

		got, want = make([]float32, dim), make([]float32, dim)
		faRoundF16(got, q)
		portable(func() { faRoundF16(want, q) })
		check("faRoundF16", got, want)

		s1, s2 := make([]float32, keys), make([]float32, keys)
		faScoresF16(s1, kh, stride, got, scale)
		portable(func() { faScoresF16(s2, kh, stride, got, scale) })
		check("faScoresF16", s1, s2)

		ms, ms2, vsBoth := make([]float32, keys), make([]float32, keys), make([]float32, 2*keys)
		faOnlineSoftmax2(s1, s1, ms, ms2, vsBoth)
		vs := vsBoth[:keys]
		a1, a2 := make([]float32, dim), make([]float32, dim)
		faMadF16(a1, kh, stride, ms, vs)
		portable(func() { faMadF16(a2, kh, stride, ms, vs) })
		check("faMadF16", a1, a2)

		// Two heads at once: the second with its own query and weights.
		q2 := append([]float32(nil), got...)
		rng.Shuffle(dim, func(i, j int) { q2[i], q2[j] = q2[j], q2[i] })
		p1, p2 := make([]float32, keys), make([]float32, keys)
		faScores2F16(p1, p2, kh, stride, got, q2, scale)
		check("faScores2F16 head 0", p1, s2)
		portable(func() { faScoresF16(s2, kh, stride, q2, scale) })
		check("faScores2F16 head 1", p2, s2)
		vs2 := make([]float32, 2*keys)
		faOnlineSoftmax2(p2, p2, ms2, make([]float32, keys), vs2)
		vs2 = vs2[:keys]
		b1, b2 := make([]float32, dim), make([]float32, dim)
		clear(a1)
		faMad2F16(a1, b1, kh, stride, ms, vs, ms2, vs2)
		check("faMad2F16 head 0", a1, a2)
		portable(func() { faMadF16(b2, kh, stride, ms2, vs2) })
		check("faMad2F16 head 1", b1, b2)

		nk := min(keys, ggmlFATileKV)
		kt1, vt1 := make([]float32, ggmlFATileKV*dim), make([]float32, ggmlFATileKV*dim)
		kt2, vt2 := make([]float32, ggmlFATileKV*dim), make([]float32, ggmlFATileKV*dim)
		faTileLoad(kt1, vt1, kh, kh[stride-dim:], stride, nk, dim)
		portable(func() { faTileLoad(kt2, vt2, kh, kh[stride-dim:], stride, nk, dim) })
		check("faTileLoad keys", kt1, kt2)
		check("faTileLoad values", vt1, vt2)

		k1, k2 := make([]float32, ggmlFATileKV), make([]float32, ggmlFATileKV)
		faTileScores(k1, q, kt1, nk, scale)
		portable(func() { faTileScores(k2, q, kt1, nk, scale) })
		check("faTileScores", k1[:nk], k2[:nk])
		qb := append([]float32(nil), q...)
		rng.Shuffle(dim, func(i, j int) { qb[i], qb[j] = qb[j], qb[i] })
		k3, k4 := make([]float32, ggmlFATileKV), make([]float32, ggmlFATileKV)
		faTileScores2(k3, k4, q, qb, kt1, nk, scale)
		check("faTileScores2 query 0", k3[:nk], k2[:nk])
		portable(func() { faTileScores(k2, qb, kt1, nk, scale) })
		check("faTileScores2 query 1", k4[:nk], k2[:nk])

		p := make([]float32, nk)
		for i := range p {
			p[i] = float32(rng.Float64())
		}
		copy(a2, a1)
		ms0 := float32(rng.Float64())
		faTilePV(a1, p, vt1, dim, ms0)
		portable(func() { faTilePV(a2, p, vt1, dim, ms0) })
		check("faTilePV", a1, a2)

		faScale(got, a1, scale)
		portable(func() { faScale(want, a1, scale) })
		check("faScale", got, want)
	}
}

// TestFAExpMatchesMathExp: the vectorised exponential is
// float32(math.Exp(x)) bit for bit, over the whole range and at the edges
// where math.Exp takes its other paths (underflow, overflow, infinities).
func TestFAExpMatchesMathExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	var xs []float32
	for range 200000 {
		xs = append(xs, float32(rng.Float64()*240-130))
	}
	for _, edge := range []float64{-104, -103.97, -103.28, -87.3, 0, 88.72, 88.7228, 89, 709.8} {
		x := float32(edge)
		for range 200 {
			xs = append(xs, x)
			x = math.Nextafter32(x, float32(math.Inf(1)))
		}
	}
	xs = append(xs, float32(math.Inf(-1)), float32(math.Inf(1)), -1e30, 1e30, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 3)
	saved512 := hasFA512
	defer func() { hasFA512 = saved512 }()
	for _, wide := range []bool{true, false} { // AVX-512 (where present), AVX2
		hasFA512 = saved512 && wide
		got := append([]float32(nil), xs...)
		faExp(got)
		for i, x := range xs {
			if want := expf(x); math.Float32bits(got[i]) != math.Float32bits(want) {
				t.Fatalf("avx512 %v: faExp(%g) = %g, expf %g", hasFA512, x, got[i], want)
			}
		}
	}
}

// TestFMA32RoundsOnce: fma32 is the correctly rounded a*b + c, also where
// rounding the exact sum to float64 first would land on a float32 midpoint.
func TestFMA32RoundsOnce(t *testing.T) {
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
		x.Mul(x, new(big.Float).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetFloat64(float64(c)))
		f, _ := x.Float32()
		return f
	}
	u := float32(math.Ldexp(1, -23))
	// (1+2^-23) * 2^-24(1-2^-23) + (1+2^-23) = 1 + 2^-23 + 2^-24 - 2^-70:
	// just under a midpoint, which the float64 sum rounds onto.
	cases := [][3]float32{{1 + u, float32(math.Ldexp(1, -24)) * (1 - u), 1 + u}}
	rng := rand.New(rand.NewPCG(11, 12))
	for range 100000 {
		r := func() float32 {
			return float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(60)-30))
		}
		cases = append(cases, [3]float32{r(), r(), r()})
	}
	for _, c := range cases {
		if got, want := fma32(c[0], c[1], c[2]), exact(c[0], c[1], c[2]); got != want {
			t.Fatalf("fma32(%g, %g, %g) = %g, exact %g", c[0], c[1], c[2], got, want)
		}
	}
	if got := fma32(float32(math.Inf(1)), 1, 1); !math.IsInf(float64(got), 1) {
		t.Fatalf("fma32(Inf, 1, 1) = %g", got)
	}
}

// benchFA times one flash-attention pass of the 0.5B model's layer shape.
func benchFA(b *testing.B, n, start int, ref bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := newFACase(rng, 14, 2, 64, n, 1, n, start, start+n, 1)
	be := New(1)
	defer be.Close()
	out := make([]float32, len(c.q))
	for b.Loop() {
		if ref {
			refFlashAttentionGGML(out, c.q, c.caches, c.pos, c.n, c.heads, c.kvHeads, c.dim)
		} else {
			be.FlashAttentionGGML(out, c.q, c.caches, c.pos, c.n, c.heads, c.kvHeads, c.dim)
		}
	}
}

// BenchmarkFlashAttentionGGML: a decode step at context 256 and a
// 128-token prompt, the kernels against the scalar reference (one thread).
func BenchmarkFlashAttentionGGML(b *testing.B) {
	b.Run("decode256", func(b *testing.B) { benchFA(b, 1, 255, false) })
	b.Run("decode256-scalar", func(b *testing.B) { benchFA(b, 1, 255, true) })
	b.Run("prefill128", func(b *testing.B) { benchFA(b, 128, 0, false) })
	b.Run("prefill128-scalar", func(b *testing.B) { benchFA(b, 128, 0, true) })
}

// refAttention is Attention as it was computed before its softmax and
// weighted sum were vectorised: quant's dot product per key, math.Exp per
// score, quant's axpy per key.
func refAttention(out, q []float32, caches []*KVCache, pos []int, n, heads, kvHeads, dim int) {
	scale := float32(1 / math.Sqrt(float64(dim)))
	group := heads / kvHeads
	qStride, kvStride := heads*dim, kvHeads*dim
	for t := range n {
		c, L := caches[t], pos[t]+1
		for h := range heads {
			off := h / group * dim
			qv := append([]float32(nil), q[t*qStride+h*dim:][:dim]...)
			if c.f16 {
				for i, v := range qv {
					qv[i] = tensor.F16ToF32(tensor.F32ToF16(v))
				}
			}
			p := make([]float32, L)
			for j := range L {
				r := j*kvStride + off
				if c.f16 {
					p[j] = quant.DotF16(c.kh[r:r+dim], qv) * scale
				} else {
					p[j] = quant.DotF32(qv, c.k[r:r+dim]) * scale
				}
			}
			m := float32(math.Inf(-1))
			for _, v := range p {
				m = max(m, v)
			}
			var sum float32
			for j, v := range p {
				p[j] = float32(math.Exp(float64(v - m)))
				sum += p[j]
			}
			for j := range p {
				p[j] *= 1 / sum
			}
			o := out[t*qStride+h*dim:][:dim]
			clear(o)
			for j := range L {
				r := j*kvStride + off
				if c.f16 {
					quant.AxpyF16(o, p[j], c.vh[r:r+dim])
				} else {
					quant.AxpyF32(o, p[j], c.v[r:r+dim])
				}
			}
		}
	}
}

// TestAttentionMatchesPerKeyKernels: the float32 attention (SafeTensors
// models) gives bit for bit what it gave with one kernel call per key, for
// both cache types and the shapes of the 0.5B and 1.5B models.
func TestAttentionMatchesPerKeyKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	b := New(2)
	defer b.Close()
	for _, tc := range []struct{ heads, kvHeads, dim, n, start int }{
		{14, 2, 64, 1, 300}, {12, 2, 128, 1, 100}, {14, 2, 64, 70, 0}, {4, 4, 64, 9, 20}, {2, 1, 48, 5, 3},
	} {
		for _, f16 := range []bool{false, true} {
			ctx := tc.start + tc.n
			kvDim := tc.kvHeads * tc.dim
			c := NewKVCache(ctx, kvDim, f16)
			for p := range ctx {
				c.Store(p, randVec(rng, kvDim), randVec(rng, kvDim))
			}
			caches, pos := make([]*KVCache, tc.n), make([]int, tc.n)
			for i := range pos {
				caches[i], pos[i] = c, tc.start+i
			}
			q := randVec(rng, tc.n*tc.heads*tc.dim)
			got, want := make([]float32, len(q)), make([]float32, len(q))
			b.Attention(got, q, caches, pos, tc.n, tc.heads, tc.kvHeads, tc.dim)
			refAttention(want, q, caches, pos, tc.n, tc.heads, tc.kvHeads, tc.dim)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%+v f16 %v: value %d: %g, per-key kernels %g", tc, f16, i, got[i], want[i])
				}
			}
		}
	}
}

// TestToF16MatchesScalar holds the KV cache's F16 conversion (toF16: the
// vector conversion where the CPU has F16C) to tensor.F32ToF16 bit for bit
// on rounding ties, subnormals, the overflow edge, infinities, zeros, the
// canonical NaN and random values, for a length the vector code takes and
// one it leaves to the scalar loop.
func TestToF16MatchesScalar(t *testing.T) {
	edges := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, -65504, 65519.996, 65520, 1e9, -1e9,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, -0x1p-24, 0x1.002p0, 0x1.003p0, 0x1.001p0, 0x1.ffep-15}
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{4096, 4093} {
		src := make([]float32, n)
		copy(src, edges)
		for i := len(edges); i < n; i++ {
			switch i % 3 {
			case 0:
				src[i] = float32(r.NormFloat64())
			case 1:
				src[i] = float32(r.NormFloat64() * 1e-5) // F16 subnormals
			default:
				src[i] = math.Float32frombits(r.Uint32()) // any bits (NaNs aside, below)
			}
			if x := src[i]; x != x {
				src[i] = float32(i)
			}
		}
		got := make([]uint16, n)
		toF16(got, src)
		for i, x := range src {
			if want := tensor.F32ToF16(x); got[i] != want {
				t.Fatalf("n=%d: toF16(%g = %#08x) = %#04x, tensor.F32ToF16 %#04x", n, x, math.Float32bits(x), got[i], want)
			}
		}
	}
}

// BenchmarkKVStoreF16 times storing one position's keys and values (the
// 1.5B model's 256 of each) in an F16 cache.
func BenchmarkKVStoreF16(b *testing.B) {
	const dim = 256
	c := NewKVCache(8, dim, true)
	k, v := make([]float32, dim), make([]float32, dim)
	for i := range k {
		k[i], v[i] = float32(i)*0.01, -float32(i)*0.02
	}
	for i := 0; b.Loop(); i++ {
		c.Store(i%8, k, v)
	}
}
