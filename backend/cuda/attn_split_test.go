package cuda

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/apr-llm/apr/backend/cpu"
)

func init() {
	// APR_ATTN_SPLIT_MIN sets attnSplitMin (-1: no split, today's kernels)
	// and APR_ATTN_SPLIT_PER_SM attnSplitPerSM, for before/after figures
	// in one run.
	if n, err := strconv.Atoi(os.Getenv("APR_ATTN_SPLIT_MIN")); err == nil {
		attnSplitMin, attnSplitMinGGML = n, n
	}
	if n, err := strconv.Atoi(os.Getenv("APR_ATTN_SPLIT_PER_SM")); err == nil {
		attnSplitPerSM = n
	}
}

// TestAttentionSplit compares the split decode attention with the CPU
// backend's attention at 1, 300, 2047 and 5000 keys (one pass of four
// rows in two slots, and one row alone), head dimensions 128 and 64, GQA
// groups 6 and 7 (and 2, the tiny shared models'), over an F16 cache with
// ggml's flash attention, over one without it (a SafeTensors model with
// --cache-type-k f16: attn_f16_dec for the short rows) and over a float32
// cache.
//
// With the split forced for every row (attnSplitMin 0) the result is the
// CPU's Attention computed in another order: float32 scores (the query
// rounded to F16 over an F16 cache, as the CPU does), softmax and sums,
// so within 1e-5 of the largest output as TestAttentionF32Passes allows
// attn_f32_rows. Over an F16 cache its distance to ggml's flash attention
// (FlashAttentionGGML, whose one-chunk kernel rounds its accumulator to
// F16 at every key) is logged. With the default thresholds (splitMin),
// rows of at most that many keys run today's kernels through the fin
// kernel: over an F16 cache bit for bit as FlashAttentionGGML.
func TestAttentionSplit(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(51, 52))
	be := cpu.New(2)
	defer be.Close()
	const ctx, slots = 5120, 2
	defer func(n, g int) { attnSplitMin, attnSplitMinGGML = n, g }(attnSplitMin, attnSplitMinGGML)
	defF32, defGGML := max(attnSplitMin, 0), max(attnSplitMinGGML, 0)
	pass := []Row{{Slot: 1, Pos: 0}, {Slot: 0, Pos: 299}, {Slot: 1, Pos: 2046}, {Slot: 0, Pos: 4999}}
	for _, sh := range []struct{ heads, kvHeads, dim int }{{12, 2, 128}, {14, 2, 64}, {28, 4, 128}, {12, 2, 64}, {2, 1, 64}} {
		for _, cache := range []struct{ f16, fa bool }{{true, true}, {true, false}, {false, false}} {
			f16, fa := cache.f16, cache.fa
			elem := kvElem(f16)
			kvDim := sh.kvHeads * sh.dim
			qStride := sh.heads*sh.dim + 2*kvDim
			caches, kc, vc := randomCaches(r, b, slots, ctx, kvDim, f16)
			a := attnArgs{heads: sh.heads, kvHeads: sh.kvHeads, dim: sh.dim, ctx: ctx,
				scale: float32(1 / math.Sqrt(float64(sh.dim))), f16: f16, fa: fa, qStride: qStride, slotBytes: ctx * kvDim * elem, long: true}
			for _, rows := range [][]Row{pass, {{Slot: 0, Pos: 4999}}} {
				m, qDim := len(rows), sh.heads*sh.dim
				q, qs, rc, rp := passQueries(r, rows, caches, qDim, qStride)
				plain, ggml := make([]float32, len(q)), make([]float32, len(q))
				be.Attention(plain, q, rc, rp, m, sh.heads, sh.kvHeads, sh.dim)
				if fa { // ggml's flash attention runs over F16 caches only
					be.FlashAttentionGGML(ggml, q, rc, rp, m, sh.heads, sh.kvHeads, sh.dim)
				}
				qd, info, passp := b.floats(qs), b.ints(rowInfo(rows...)), b.ints([]int32{int32(m)})
				scores := b.poisoned(4 * m * sh.heads * ctx)
				def := defF32
				if fa {
					def = defGGML
				}
				for _, lim := range []int{0, def} {
					attnSplitMin, attnSplitMinGGML = lim, lim
					out := b.poisoned(4 * len(q))
					if ok, err := d.attnSplit(qd, kc, vc, out, scores, info, passp, a, m); err != nil || !ok {
						t.Fatalf("attnSplit: ran %v, %v", ok, err)
					}
					got := b.readFloats(out, len(q))
					for i, row := range rows {
						what := fmt.Sprintf("%dx%d dim %d f16 %v fa %v min %d pass %d: %d keys", sh.heads, sh.kvHeads, sh.dim, f16, fa, lim, m, row.Pos+1)
						g, p, f := got[i*qDim:(i+1)*qDim], plain[i*qDim:(i+1)*qDim], ggml[i*qDim:(i+1)*qDim]
						switch {
						case row.Pos+1 > lim:
							compare(t, what+" (split) vs Attention", g, p, 1e-5)
							if fa { // ggml's F16 sum: a reference with its own error (attnSplitMinGGML)
								t.Logf("%s: split vs FlashAttentionGGML max |diff| %.3g", what, maxAbsDiff(g, f))
							}
						case fa:
							compare(t, what+" (today's attention_fa)", g, f, 0)
						default:
							compare(t, what+" (today's attn_f32_dec / attn_f16_dec)", g, p, 1e-5)
						}
					}
				}
			}
		}
	}
}

// TestSplitCount checks the key ranges the host picks: about
// attnSplitPerSM blocks a multiprocessor over the pass's KV heads and
// rows, at most one range a 32 keys of the context, and never more
// partials than the scores scratch holds (none for a context too short to
// hold one).
func TestSplitCount(t *testing.T) {
	defer func(n int) { attnSplitPerSM = n }(attnSplitPerSM)
	attnSplitPerSM = 2
	for _, c := range []struct {
		ctx, dim, kvHeads, m, scoreRows, sms, want int
		fa                                         bool
	}{
		{16640, 128, 2, 1, 64, 132, 132, false}, // decode: two blocks an SM
		{16640, 64, 2, 1, 64, 132, 132, false},
		{4224, 128, 2, 1, 0, 132, 32, false},   // a one-row scratch: 32 x 132 floats <= 4,224
		{5120, 128, 2, 4, 0, 132, 33, false},   // 264 blocks over 2 KV heads x 4 rows
		{4096, 128, 4, 1, 64, 114, 57, false},  // 228 blocks over 4 KV heads
		{1024, 128, 4, 1, 64, 114, 32, false},  // one range a 32 keys
		{200, 128, 2, 1, 64, 132, 7, false},    // one range a 32 keys
		{100, 128, 2, 1, 0, 132, 0, false},     // not one partial fits
		{16640, 128, 2, 32, 64, 0, 5, false},   // no SM count: an H100's
		{16640, 128, 2, 1, 64, 132, 132, true}, // ggml's numerics at the default threshold
	} {
		a := attnArgs{ctx: c.ctx, dim: c.dim, kvHeads: c.kvHeads, scoreRows: c.scoreRows, fa: c.fa}
		got := splitCount(a, c.m, c.sms)
		if got != c.want {
			t.Errorf("splitCount(ctx %d, dim %d, %d KV heads, %d rows, scratch %d, %d SMs) = %d, want %d",
				c.ctx, c.dim, c.kvHeads, c.m, c.scoreRows, c.sms, got, c.want)
		}
		if got > 0 && !a.fits(got*(c.dim+4), c.m) {
			t.Errorf("splitCount(ctx %d, dim %d) = %d: partials overflow the scratch", c.ctx, c.dim, got)
		}
	}
	// Past faDecScores the short rows' ggml body keeps its scores in the
	// scratch, where the long rows' partials lie: no split.
	defer func(g int) { attnSplitMinGGML = g }(attnSplitMinGGML)
	attnSplitMinGGML = faDecScores + 1
	a := attnArgs{ctx: 16640, dim: 128, kvHeads: 2, scoreRows: 64, fa: true}
	if got := splitCount(a, 1, 132); got != 0 {
		t.Errorf("splitCount with ggml's threshold at %d keys = %d, want 0", attnSplitMinGGML, got)
	}
	if a.fa = false; splitCount(a, 1, 132) != 132 {
		t.Errorf("splitCount without ggml's numerics declined because of ggml's threshold")
	}
}

// TestSplitKernelsInPTX checks, without a GPU, that the split kernels are
// entries of the embedded PTX (it fails until kernels/kernels.ptx is
// regenerated; attention then runs today's kernels).
func TestSplitKernelsInPTX(t *testing.T) {
	names := []string{"attn_split_fin_fa"}
	for _, m := range []map[int]string{attnSplitKernels[true], attnSplitKernels[false], attnSplitFinDec[false], attnSplitFinDec[true]} {
		for _, n := range m {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if !bytes.Contains(embeddedPTX, []byte(".entry "+n+"(")) {
			t.Errorf("kernel %s is not in kernels/kernels.ptx", n)
		}
	}
}

// maxAbsDiff is the largest |a[i] - b[i]|.
func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}
