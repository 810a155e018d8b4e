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
	// APR_ATTN_F32_DECODE=0/1 sets attnF32Decode (a test binary's one-row
	// passes over a float32 cache on attention / attn_f32_rows);
	// APR_ATTN_F32_SPLIT sets attnF32Split (0: no key ranges), for
	// before/after figures in one run.
	if v := os.Getenv("APR_ATTN_F32_DECODE"); v != "" {
		attnF32Decode = v == "1"
	}
	if n, err := strconv.Atoi(os.Getenv("APR_ATTN_F32_SPLIT")); err == nil {
		attnF32Split = n
	}
}

// TestAttentionF32Passes compares attention over a float32 cache
// (transformers' numerics) with the CPU backend's Attention for passes of
// one row (as decode steps run: attnF32Decode), of 64, 65, 512 and 779
// rows of three slots (passRows: prompt rows, interleaved rows of two
// slots, blocks mixing slots) and a one-slot prompt of 300 rows, head dims
// 128 and 64 with GQA groups 3, 7 and 1: the row-tiled attn_f32_rows
// kernels (all keys a block, and key ranges of 256 and 192 positions
// merged by attn_f32_merge), the tensor-core attn_mma kernels (blocks of
// 64 and 32 rows; passes of 64 rows and more; all keys a block, and key
// ranges of 256 and 128 positions merged by attn_f32_merge) and, as a control,
// attention (a block per row and head). All differ from the CPU by float32
// rounding only (softmax in float32 or double, sums in other orders, split F16
// products): within 1e-5 of the largest output.
func TestAttentionF32Passes(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(41, 42))
	be := cpu.New(2)
	defer be.Close()
	const ctx, slots = 1024, 3
	defer func(n, s int, dec, few, mma bool, mmaRows, mmaSplit int) {
		attnF32MinRows, attnF32Split, attnF32Decode, attnF32Dec, attnMMA, attnMMARows, attnMMASplit = n, s, dec, few, mma, mmaRows, mmaSplit
	}(attnF32MinRows, attnF32Split, attnF32Decode, attnF32Dec, attnMMA, attnMMARows, attnMMASplit)
	defer save(&attnMMASplitRows)()
	attnMMASplitRows = 0 // each variant's block rows, split or not
	for _, sh := range []struct{ heads, kvHeads, dim int }{{6, 2, 128}, {14, 2, 64}, {4, 4, 64}} {
		kvDim := sh.kvHeads * sh.dim
		qStride := sh.heads*sh.dim + 2*kvDim
		slotBytes := ctx * kvDim * 4
		caches, kc, vc := randomCaches(r, b, slots, ctx, kvDim, false)
		a := attnArgs{heads: sh.heads, kvHeads: sh.kvHeads, dim: sh.dim, ctx: ctx, scale: float32(1 / math.Sqrt(float64(sh.dim))),
			qStride: qStride, slotBytes: slotBytes, long: true}
		one := [][]Row{{{Slot: 1, Pos: 300}}, {{Slot: 2, Pos: 0}}, {{Slot: 0, Pos: ctx - 1}}}
		prompt := make([]Row, 300) // one slot's prompt: partial row and key tiles
		for p := range prompt {
			prompt[p] = Row{Slot: 1, Pos: p}
		}
		for _, rows := range append(one, passRows(7), passRows(64), passRows(65), passRows(512), passRows(779), prompt) {
			m := len(rows)
			q, qs, rc, rp := passQueries(r, rows, caches, sh.heads*sh.dim, qStride)
			want := make([]float32, len(q))
			be.Attention(want, q, rc, rp, m, sh.heads, sh.kvHeads, sh.dim)
			qd, info, passp := b.floats(qs), b.ints(rowInfo(rows...)), b.ints([]int32{int32(m)})
			scores := b.poisoned(4 * m * sh.heads * ctx)
			for _, v := range []struct {
				name           string
				minRows, split int
				few            bool // attn_f32_dec below minRows
				mmaRows        int  // attn_mma's block rows (0: off)
				mmaSplit       int  // attn_mma's key ranges (attnMMASplit)
			}{{"attn_f32_rows", 64, 0, false, 0, 0}, {"attn_f32_rows split 256", 64, 256, false, 0, 0},
				{"attn_f32_rows split 192", 64, 192, false, 0, 0}, {"attn_f32_dec", 64, 0, true, 0, 0},
				{"attn_mma 64", 64, 0, false, 64, 0}, {"attn_mma 32", 64, 0, false, 32, 0},
				{"attn_mma 32 split 256", 64, 0, false, 32, 256}, {"attn_mma 64 split 128", 64, 0, false, 64, 128},
				{"attention", 1 << 30, 0, false, 0, 0}} {
				if v.mmaRows > 0 && m < 64 {
					continue // attn_mma takes passes of 64 rows and more
				}
				attnF32MinRows, attnF32Split, attnF32Decode, attnF32Dec = v.minRows, v.split, v.minRows == 64, v.few
				attnMMA, attnMMASplit = v.mmaRows > 0, v.mmaSplit
				if attnMMA {
					attnMMARows = v.mmaRows
				}
				at := a
				if m > 1 {
					at.pass = m // one row: as the decode graph launches it
				}
				out := b.poisoned(4 * len(q))
				if err := d.attention(qd, kc, vc, out, scores, info, passp, at, m); err != nil {
					t.Fatal(err)
				}
				compare(t, fmt.Sprintf("%dx%d dim %d pass %d %s", sh.heads, sh.kvHeads, sh.dim, m, v.name), b.readFloats(out, len(q)), want, 1e-5)
			}
		}
	}
}

// TestNewKernelsInPTX checks, without a GPU, that the kernels of
// attn_f32.cuh and cublas.cuh are entries of the embedded PTX (it fails
// until kernels/kernels.ptx is regenerated; the device code falls back to
// attention and mmf without them).
func TestNewKernelsInPTX(t *testing.T) {
	for _, n := range []string{"attn_f32_rows_64", "attn_f32_rows_128", "attn_f32_merge", "attn_mma_64_64", "attn_mma_64_32",
		"attn_mma_128_64", "attn_mma_128_32", "attn_f32_dec_64", "attn_f32_dec_128", "attn_f16_dec_64", "attn_f16_dec_128", "blas_split_bf16", "blas_split_f16", "blas_bias",
		"blas_silu_split_bf16", "blas_silu_split_f16", "rmsnorm_split_bf16", "rmsnorm_split_f16", "blas_sum"} {
		if !bytes.Contains(embeddedPTX, []byte(".entry "+n+"(")) {
			t.Errorf("kernel %s is not in kernels/kernels.ptx", n)
		}
	}
}

// randomCaches fills slots KV caches of ctx positions of kvDim random keys
// and values on the CPU and the same values on the device (F16 or float32,
// slot after slot).
func randomCaches(r *rand.Rand, b *buffers, slots, ctx, kvDim int, f16 bool) (caches []*cpu.KVCache, kc, vc devptr) {
	elem := kvElem(f16)
	slotBytes := ctx * kvDim * elem
	caches = make([]*cpu.KVCache, slots)
	kh, vh := make([]byte, slots*slotBytes), make([]byte, slots*slotBytes)
	for s := range caches {
		caches[s] = cpu.NewKVCache(ctx, kvDim, f16)
		for p := range ctx {
			k, v := randn(r, kvDim, 1), randn(r, kvDim, 1)
			caches[s].Store(p, k, v)
			copy(kh[s*slotBytes+p*kvDim*elem:], encodeKV(k, f16))
			copy(vh[s*slotBytes+p*kvDim*elem:], encodeKV(v, f16))
		}
	}
	return caches, b.bytes(kh), b.bytes(vh)
}

// passQueries makes random queries (qDim floats a row) for a pass's rows:
// packed (q, for the CPU) and qStride floats apart (qs, as in the device's
// fused q/k/v buffer), with each row's cache and position.
func passQueries(r *rand.Rand, rows []Row, caches []*cpu.KVCache, qDim, qStride int) (q, qs []float32, rc []*cpu.KVCache, rp []int) {
	m := len(rows)
	q = randn(r, m*qDim, 2)
	qs = make([]float32, m*qStride)
	rc, rp = make([]*cpu.KVCache, m), make([]int, m)
	for i, row := range rows {
		copy(qs[i*qStride:], q[i*qDim:(i+1)*qDim])
		rc[i], rp[i] = caches[row.Slot], row.Pos
	}
	return q, qs, rc, rp
}
