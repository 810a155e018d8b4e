package cuda

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// passRows lays out a pass of p rows over three slots: a prompt of p/2
// rows from position 0 in slot 0, then rows of slots 1 and 2 alternating,
// continuing sequences whose caches hold 100 and 37 positions already.
func passRows(p int) []Row {
	rows := make([]Row, 0, p)
	for i := range p / 2 {
		rows = append(rows, Row{Slot: 0, Pos: i})
	}
	next := [3]int{0, 100, 37}
	for i := p / 2; i < p; i++ {
		s := 1 + i%2
		rows = append(rows, Row{Slot: s, Pos: next[s]})
		next[s]++
	}
	return rows
}

// TestFlashAttentionPasses compares ggml's flash attention on the device
// with the CPU backend's, bit for bit, for passes of 64, 65, 512 and 779
// rows of three slots (prompt rows, interleaved rows of two slots, a block
// mixing slots; causal edges at every position) through each kernel that
// runs ggml's tiled kernel: the row-tiled ones (head dims 64 and 128),
// attention_fa_tiled and attention_fa reading the pass size (also the
// fallback for other head dims), and for passes below 64 rows the
// one-chunk kernel over up to 302 keys (staged tiles of keys and values:
// two of 256 in attention_fa, three of 128 in attention_fa_m), and
// attention_fa_m reading the pass size for the others.
func TestFlashAttentionPasses(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(21, 22))
	be := cpu.New(2)
	defer be.Close()
	const ctx, slots = 512, 3
	defer save(&attnMMAF16)()
	attnMMAF16 = false // ggml's kernels, which long passes (attnArgs.long) leave for attn_mma_f16
	decode := []Row{{Slot: 0, Pos: 300}, {Slot: 1, Pos: 64}, {Slot: 2, Pos: 63}, {Slot: 1, Pos: 65}, {Slot: 0, Pos: 301}, {Slot: 2, Pos: 0}}
	variants := []ggmlVariant{{"attention_fa", false, false, -1, -1}, {"attention_fa_m", false, false, 1, -1},
		{"attention_fa_cl", false, false, -1, 1}, {"attention_fa_tiled", true, true, -1, -1}, {"rows", true, false, -1, -1}}
	for _, sh := range []attnShape{{6, 2, 128}, {14, 2, 64}, {4, 4, 64}, {4, 2, 32}} {
		g := newGGMLCaches(r, b, sh, slots, ctx)
		for _, rows := range [][]Row{decode, passRows(64), passRows(65), passRows(512), passRows(779)} {
			g.check(t, d, b, r, be, rows, variants)
		}
	}
}

// attnShape is an attention test's heads, KV heads and head dimension.
type attnShape struct{ heads, kvHeads, dim int }

// ggmlVariant is one way attention runs ggml's numerics: the kernel
// choices it sets (attnLegacy, attnManyRows, attnCluster), and whether
// the host knows the pass's rows (attnArgs.pass; otherwise the kernels
// read them from the device, as captured passes do).
type ggmlVariant struct {
	name          string
	host, legacy  bool
	many, cluster int
}

// ggmlCaches is random F16 caches of slots slots and ctx positions on the
// CPU and the device, with attention's arguments for shape sh.
type ggmlCaches struct {
	sh      attnShape
	caches  []*cpu.KVCache
	kc, vc  devptr
	a       attnArgs
	qStride int
}

func newGGMLCaches(r *rand.Rand, b *buffers, sh attnShape, slots, ctx int) ggmlCaches {
	kvDim := sh.kvHeads * sh.dim
	qStride := sh.heads*sh.dim + 2*kvDim
	caches, kc, vc := randomCaches(r, b, slots, ctx, kvDim, true)
	a := attnArgs{heads: sh.heads, kvHeads: sh.kvHeads, dim: sh.dim, ctx: ctx, scale: float32(1 / math.Sqrt(float64(sh.dim))),
		f16: true, fa: true, qStride: qStride, slotBytes: ctx * kvDim * 2, long: true}
	return ggmlCaches{sh: sh, caches: caches, kc: kc, vc: vc, a: a, qStride: qStride}
}

// check runs a pass of rows with random queries through each variant
// (those that need the host to know the rows only from 64 rows, ggml's
// tiled kernel) and compares the output with the CPU backend's
// FlashAttentionGGML over the same caches, bit for bit.
func (g ggmlCaches) check(t *testing.T, d *Device, b *buffers, r *rand.Rand, be *cpu.Backend, rows []Row, variants []ggmlVariant) {
	t.Helper()
	defer save(&attnLegacy)()
	defer save(&attnManyRows)()
	defer save(&attnCluster)()
	sh, m := g.sh, len(rows)
	q, qs, rc, rp := passQueries(r, rows, g.caches, sh.heads*sh.dim, g.qStride)
	want := make([]float32, len(q))
	be.FlashAttentionGGML(want, q, rc, rp, m, sh.heads, sh.kvHeads, sh.dim)
	qd, info, passp := b.floats(qs), b.ints(rowInfo(rows...)), b.ints([]int32{int32(m)})
	scores := b.poisoned(4 * m * sh.heads * g.a.ctx)
	for _, v := range variants {
		if m < 64 && v.host {
			continue
		}
		attnLegacy, attnManyRows, attnCluster = v.legacy, v.many, v.cluster
		at := g.a
		if v.host {
			at.pass = m
		}
		out := b.poisoned(4 * len(q))
		if err := d.attention(qd, g.kc, g.vc, out, scores, info, passp, at, m); err != nil {
			t.Fatal(err)
		}
		compare(t, fmt.Sprintf("%dx%d dim %d pass %d %s", sh.heads, sh.kvHeads, sh.dim, m, v.name), b.readFloats(out, len(q)), want, 0)
	}
}

// TestFlashAttentionLongRows compares ggml's one-chunk kernel
// (attention_fa, attention_fa_m and attention_fa_cl, the split decode
// attention off) with the CPU backend's FlashAttentionGGML, bit for bit,
// on rows of 1 to 2,048 keys: its key and value tiles of 256 (128) keys,
// the value tiles copied behind the element chains, groups of 8 keys with
// and without a new maximum, rows of keys not a multiple of 8, rows past
// the 1,024 keys whose scores stay in shared memory (FA_DEC_SC; the
// cluster's first block runs those), and a cluster's key quarters.
func TestFlashAttentionLongRows(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(23, 24))
	be := cpu.New(2)
	defer be.Close()
	const ctx, slots = 2048, 2
	defer save(&attnSplitMinGGML)()
	attnSplitMinGGML = -1
	rows := []Row{{Slot: 0, Pos: 0}, {Slot: 1, Pos: 7}, {Slot: 0, Pos: 255}, {Slot: 1, Pos: 256}, {Slot: 0, Pos: 511},
		{Slot: 1, Pos: 700}, {Slot: 0, Pos: 1023}, {Slot: 1, Pos: 1024}, {Slot: 0, Pos: 1500}, {Slot: 1, Pos: 2047}}
	variants := []ggmlVariant{{"attention_fa", false, false, -1, -1}, {"attention_fa_m", false, false, 1, -1},
		{"attention_fa_cl", false, false, -1, 1}}
	for _, sh := range []attnShape{{12, 2, 128}, {14, 2, 64}, {4, 2, 32}} {
		newGGMLCaches(r, b, sh, slots, ctx).check(t, d, b, r, be, rows, variants)
	}
}

// TestAttentionMMAF16 compares attn_mma_f16 (prompt passes over an F16
// cache on tensor cores: attnMMAF16) with the CPU backend's Attention over
// the same cache (the query rounded to F16, softmax and sums in float32)
// for passes of 64, 65, 512 and 779 rows of three slots (passRows), a
// one-slot prompt of 300 rows and one of 512 rows from position 1,500,
// head dims 128 and 64 with GQA groups 3, 7, 1 and 6, blocks of 64 and 32
// rows, all keys a block or key ranges of 1,024, 256 and 128 positions
// (attnMMASplit, merged by attn_f32_merge): within 1e-5 of the largest
// output, as attn_mma over a float32
// cache. The distance to ggml's flash attention (FlashAttentionGGML,
// which rounds its sum to F16 at every key) is logged. A pass whose rows
// are all within attnSplitMinGGML keys (not long) still runs ggml's tiled
// kernel, bit for bit.
func TestAttentionMMAF16(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(61, 62))
	be := cpu.New(2)
	defer be.Close()
	const ctx, slots = 2048, 3
	defer save(&attnMMARows)()
	defer save(&attnMMASplit)()
	defer save(&attnMMASplitRows)()
	defer save(&attnMMAF16)()
	attnMMAF16 = true
	prompt, late := make([]Row, 300), make([]Row, 512)
	for p := range prompt {
		prompt[p] = Row{Slot: 1, Pos: p}
	}
	for p := range late {
		late[p] = Row{Slot: 2, Pos: 1500 + p}
	}
	for _, sh := range []struct{ heads, kvHeads, dim int }{{6, 2, 128}, {14, 2, 64}, {4, 4, 64}, {12, 2, 128}} {
		kvDim := sh.kvHeads * sh.dim
		qStride := sh.heads*sh.dim + 2*kvDim
		caches, kc, vc := randomCaches(r, b, slots, ctx, kvDim, true)
		a := attnArgs{heads: sh.heads, kvHeads: sh.kvHeads, dim: sh.dim, ctx: ctx, scale: float32(1 / math.Sqrt(float64(sh.dim))),
			f16: true, fa: true, qStride: qStride, slotBytes: ctx * kvDim * 2}
		for _, rows := range [][]Row{passRows(64), passRows(65), passRows(512), passRows(779), prompt, late} {
			m := len(rows)
			q, qs, rc, rp := passQueries(r, rows, caches, sh.heads*sh.dim, qStride)
			plain, ggml := make([]float32, len(q)), make([]float32, len(q))
			be.Attention(plain, q, rc, rp, m, sh.heads, sh.kvHeads, sh.dim)
			be.FlashAttentionGGML(ggml, q, rc, rp, m, sh.heads, sh.kvHeads, sh.dim)
			qd, info, passp := b.floats(qs), b.ints(rowInfo(rows...)), b.ints([]int32{int32(m)})
			scores := b.poisoned(4 * m * sh.heads * ctx)
			for _, v := range []struct {
				rows, split int
				long        bool
			}{{64, 0, true}, {32, 0, true}, {32, 1024, true}, {32, 256, true}, {64, 128, true}, {32, 1024, false}} {
				attnMMARows, attnMMASplit, attnMMASplitRows = v.rows, v.split, 0
				at := a
				at.pass, at.long = m, v.long
				out := b.poisoned(4 * len(q))
				if err := d.attention(qd, kc, vc, out, scores, info, passp, at, m); err != nil {
					t.Fatal(err)
				}
				got := b.readFloats(out, len(q))
				what := fmt.Sprintf("%dx%d dim %d pass %d", sh.heads, sh.kvHeads, sh.dim, m)
				if !v.long {
					compare(t, what+" not long: ggml's tiled kernel", got, ggml, 0)
					continue
				}
				what += fmt.Sprintf(" attn_mma_f16 %d rows split %d", v.rows, v.split)
				compare(t, what+" vs Attention", got, plain, 1e-5)
				t.Logf("%s: vs FlashAttentionGGML max |diff| %.3g", what, maxAbsDiff(got, ggml))
			}
		}
	}
}

// TestFlashAttentionKernelsInPTX checks, without a GPU, that the row-tiled
// kernels and attn_mma_f16 are entries of the embedded PTX (as TestKernelNamesInPTX does for
// the others).
func TestFlashAttentionKernelsInPTX(t *testing.T) {
	names := slices.Collect(maps.Values(faRowsKernels))
	for k, n := range attnMMAKernels {
		if k.f16 {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if !bytes.Contains(embeddedPTX, []byte(".entry "+n+"(")) {
			t.Errorf("kernel %s is not in kernels/kernels.ptx", n)
		}
	}
}

// TestManyRows checks, without a GPU, which passes run attention_fa_m by
// default: more head x row blocks than multiprocessors, but not more than
// its one wave.
func TestManyRows(t *testing.T) {
	d := &Device{sms: 132}
	for _, c := range []struct {
		heads, m int
		want     bool
	}{
		{12, 1, false}, {12, 8, false}, {12, 11, false}, {12, 12, true}, {12, 32, true}, {12, 33, true},
		{12, 34, false}, {14, 32, false}, {14, 28, true}, {14, 9, false}, {14, 10, true},
	} {
		if got := d.manyRows(c.heads, c.m); got != c.want {
			t.Errorf("%d heads, %d rows: attention_fa_m %v, want %v", c.heads, c.m, got, c.want)
		}
	}
}

// TestChunkRows checks, without a GPU, a pass's rows and the attention
// scratch's: 512-row passes where the head dimension has the row-tiled
// kernels and the scratch holds 64 rows, else the scratch's rows.
func TestChunkRows(t *testing.T) {
	defer save(&smallChunks)()
	for _, c := range []struct {
		heads, dim, ctx, chunk, scoreRows int
		small                             bool
	}{
		{12, 128, 641, 512, 512, false}, {12, 128, 16513, 512, 338, false}, {14, 64, 16513, 512, 290, false},
		{12, 128, 16513, 338, 338, true}, {12, 128, 131072, 42, 42, false}, {12, 96, 16513, 338, 338, false},
		{12, 128, 87381, 512, 64, false}, {12, 128, 87382, 63, 63, false},
	} {
		smallChunks = c.small
		chunk, rows := chunkRows(c.heads, c.dim, c.ctx)
		if chunk != c.chunk || rows != c.scoreRows {
			t.Errorf("chunkRows(%d, %d, %d) small %v = %d, %d; want %d, %d", c.heads, c.dim, c.ctx, c.small, chunk, rows, c.chunk, c.scoreRows)
		}
	}
}

// TestAttentionScratchRows runs a 512-row pass through attention with a
// scores scratch of fewer rows (attnArgs.scoreRows, as a model with a long
// context has): the tensor-core kernels over both caches, with key ranges
// where their partials fit (128 rows) and without (64 rows), match the
// CPU's Attention within 1e-5 and leave the memory past the scratch as it
// was; a kernel that keeps a row's scores in the scratch refuses the pass.
func TestAttentionScratchRows(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(71, 72))
	be := cpu.New(2)
	defer be.Close()
	const ctx, heads, kvHeads, dim = 2048, 12, 2, 128
	defer save(&attnMMASplit)()
	attnMMASplit = 1024
	rows := make([]Row, 512)
	for i := range rows {
		rows[i] = Row{Slot: 0, Pos: 1400 + i}
	}
	m, kvDim := len(rows), kvHeads*dim
	qStride := heads*dim + 2*kvDim
	for _, f16 := range []bool{true, false} {
		elem := kvElem(f16)
		caches, kc, vc := randomCaches(r, b, 1, ctx, kvDim, f16)
		q, qs, rc, rp := passQueries(r, rows, caches, heads*dim, qStride)
		want := make([]float32, len(q))
		be.Attention(want, q, rc, rp, m, heads, kvHeads, dim)
		qd, info, passp := b.floats(qs), b.ints(rowInfo(rows...)), b.ints([]int32{int32(m)})
		for _, scoreRows := range []int{64, 128} {
			const canary = 1 << 16
			n := 4 * scoreRows * heads * ctx
			scores := b.poisoned(n + canary)
			a := attnArgs{heads: heads, kvHeads: kvHeads, dim: dim, ctx: ctx, scale: float32(1 / math.Sqrt(dim)), f16: f16, fa: f16,
				qStride: qStride, slotBytes: ctx * kvDim * elem, pass: m, long: true, scoreRows: scoreRows}
			out := b.poisoned(4 * len(q))
			if err := d.attention(qd, kc, vc, out, scores, info, passp, a, m); err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("f16 %v, scratch of %d rows (key ranges: %v)", f16, scoreRows, a.fits(2*(dim+4), m))
			compare(t, what, b.readFloats(out, len(q)), want, 1e-5)
			tail := b.readBytes(scores, n+canary)[n:]
			for i, v := range tail {
				if v != 0xff {
					t.Fatalf("%s: byte %d past the scratch written", what, i)
				}
			}
			if f16 {
				// Plain attention over an F16 cache (ggml's flash attention
				// off: --cache-type-k f16 on a SafeTensors model), its pass
				// size unknown: attn_f16_dec, a block per row and head and
				// no scratch, as the CPU computes it.
				a.pass, a.long, a.fa = 0, false, false
				out := b.poisoned(4 * len(q))
				if err := d.attention(qd, kc, vc, out, scores, info, passp, a, m); err != nil {
					t.Fatalf("%s, attn_f16_dec: %v", what, err)
				}
				compare(t, what+", attn_f16_dec", b.readFloats(out, len(q)), want, 1e-5)
				// Without it, the one-block attention kernel refuses a pass
				// its scratch cannot hold.
				restore := save(&attnF32Dec)
				attnF32Dec = false
				if err := d.attention(qd, kc, vc, out, scores, info, passp, a, m); err == nil {
					t.Errorf("%s: the one-block attention ran a pass of %d rows", what, m)
				}
				restore()
			}
		}
	}
}

// TestAttentionRopeOneRow runs RoPE, the KV store and ggml's one-chunk
// attention of one row in one launch (attentionRope: attention_fa_pl_rope,
// attention_fa_cl_rope, and attention_fa_rope for a block a head) and compares with the CPU
// backend's rotation (both styles), its F16 cache row and its
// FlashAttentionGGML over the cache, bit for bit: rows of 1 to 1,501 keys,
// the row's key in every quarter of the cluster, in each of the pipelined
// kernel's key tiles and past the 1,024 keys the first block takes alone; and the output's Q8_0 encoding
// for the o product (attnQuantQ80: every head dimension here, never Q8_K)
// against the CPU's quantization of the CPU's output.
func TestAttentionRopeOneRow(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(25, 26))
	be := cpu.New(2)
	defer be.Close()
	defer save(&ropeInAttention)()
	defer save(&attnCluster)()
	defer save(&faPipelined)()
	defer save(&faPipeIso)()
	const ctx, theta = 2048, 1e6
	variants := []struct {
		name          string
		rope, cluster int
		pipe, iso     bool
		quant         tensor.DType // the o product's activation, encoded in the launch where it can
	}{{"attention_fa_cl_rope", 0, 0, false, false, 0}, {"attention_fa_rope", 1, -1, false, false, 0},
		{"attention_fa_cl_rope q8_0", 0, 0, false, false, tensor.Q8_0}, {"attention_fa_cl_rope q8_k", 0, 0, false, false, tensor.Q8_K},
		{"attention_fa_pl_rope", 0, 0, true, true, 0}, {"attention_fa_pl_rope q8_0", 0, 0, true, true, tensor.Q8_0},
		{"attention_fa_pl_rope q8_k", 0, 0, true, true, tensor.Q8_K},
		{"attention_fa_pl_rope 288", 0, 0, true, false, 0}, {"attention_fa_pl_rope 288 q8_0", 0, 0, true, false, tensor.Q8_0}}
	// 12x2x128 is the 1.5B's attention, 14x2x64 the 0.5B's.
	for _, sh := range []attnShape{{12, 2, 128}, {14, 2, 64}, {4, 2, 32}, {16, 4, 64}, {8, 2, 32}} {
		kvDim, qDim := sh.kvHeads*sh.dim, sh.heads*sh.dim
		slotBytes := ctx * kvDim * 2
		// Slot 1 of two; its earlier positions random.
		kh, vh := make([]byte, 2*slotBytes), make([]byte, 2*slotBytes)
		past := make([][2][]float32, ctx)
		for p := range ctx {
			past[p] = [2][]float32{randn(r, kvDim, 1), randn(r, kvDim, 1)}
			copy(kh[slotBytes+p*kvDim*2:], encodeKV(past[p][0], true))
			copy(vh[slotBytes+p*kvDim*2:], encodeKV(past[p][1], true))
		}
		inv := make([]float32, sh.dim/2)
		for i := range inv {
			inv[i] = float32(1 / math.Pow(theta, float64(float32(2*i)/float32(sh.dim))))
		}
		a := attnArgs{heads: sh.heads, kvHeads: sh.kvHeads, dim: sh.dim, ctx: ctx, scale: float32(1 / math.Sqrt(float64(sh.dim))),
			f16: true, fa: true, qStride: qDim + 2*kvDim, slotBytes: slotBytes}
		for _, pos := range []int{0, 1, 6, 7, 8, 255, 256, 511, 512, 700, 1022, 1023, 1024, 1500} {
			for style, rs := range []cpu.RopeStyle{cpu.RopeHF, cpu.RopeGGML} {
				qkv := randn(r, a.qStride, 1)
				q := append([]float32(nil), qkv[:qDim]...)
				k, v := append([]float32(nil), qkv[qDim:qDim+kvDim]...), qkv[qDim+kvDim:]
				rope := cpu.NewRope(sh.dim, theta, rs)
				rope.Apply(q, sh.heads, pos)
				rope.Apply(k, sh.kvHeads, pos)
				cache := cpu.NewKVCache(ctx, kvDim, true)
				for p := range pos {
					cache.Store(p, past[p][0], past[p][1])
				}
				cache.Store(pos, k, v)
				want := make([]float32, qDim)
				be.FlashAttentionGGML(want, q, []*cpu.KVCache{cache}, []int{pos}, 1, sh.heads, sh.kvHeads, sh.dim)
				at := slotBytes + pos*kvDim*2
				for _, vr := range variants {
					ropeInAttention, attnCluster, faPipelined, faPipeIso = vr.rope, vr.cluster, vr.pipe, vr.iso
					what := fmt.Sprintf("%dx%d dim %d style %d position %d %s", sh.heads, sh.kvHeads, sh.dim, style, pos, vr.name)
					for i := at; i < at+kvDim*2; i++ {
						kh[i], vh[i] = 0xff, 0xff // the row the kernel stores
					}
					kc, vc := b.bytes(kh), b.bytes(vh)
					out := b.poisoned(4 * qDim)
					var q80, q8k devptr
					var qBytes int
					if vr.quant != 0 {
						qBytes, _ = vr.quant.RowBytes(qDim)
						if vr.quant == tensor.Q8_0 {
							q80 = b.poisoned(qBytes)
						} else {
							q8k = b.poisoned(qBytes)
						}
					}
					ran, quantized, err := d.attentionRope(b.floats(qkv), kc, vc, out, b.poisoned(4*sh.heads*ctx),
						b.ints(rowInfo(Row{Slot: 1, Pos: pos})), b.ints([]int32{1}), b.floats(inv),
						float32(math.Pow(theta, -2.0/float64(sh.dim))), style, a, 1, q80, q8k)
					if err != nil || !ran {
						t.Fatalf("%s: ran %v, %v", what, ran, err)
					}
					compare(t, what, b.readFloats(out, qDim), want, 0)
					wantQ := vr.quant == tensor.Q8_0 // every shape's head dimension is whole Q8_0 blocks
					if quantized != wantQ {
						t.Fatalf("%s: quantized %v, want %v", what, quantized, wantQ)
					}
					if quantized {
						// The encoding quantize (and the CPU's matmul) makes of the CPU's output.
						enc := make([]byte, qBytes)
						if err := quant.QuantizeActivation(vr.quant, want, enc); err != nil {
							t.Fatal(err)
						}
						if got := b.readBytes(max(q80, q8k), qBytes); !bytes.Equal(got, enc) {
							t.Errorf("%s: the output's %v encoding differs from cpu's", what, vr.quant)
						}
					}
					if !bytes.Equal(b.readBytes(kc, 2*slotBytes)[at:at+kvDim*2], encodeKV(k, true)) ||
						!bytes.Equal(b.readBytes(vc, 2*slotBytes)[at:at+kvDim*2], encodeKV(v, true)) {
						t.Errorf("%s: the cached key or value differs from cpu's", what)
					}
				}
				copy(kh[at:], encodeKV(past[pos][0], true)) // the earlier rows of the next positions
				copy(vh[at:], encodeKV(past[pos][1], true))
			}
		}
	}
}
