package cuda

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/backend/cpu"
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
	legacy, many := attnLegacy, attnManyRows
	decode := []Row{{Slot: 0, Pos: 300}, {Slot: 1, Pos: 64}, {Slot: 2, Pos: 63}, {Slot: 1, Pos: 65}, {Slot: 0, Pos: 301}, {Slot: 2, Pos: 0}}
	for _, sh := range []struct{ heads, kvHeads, dim int }{{6, 2, 128}, {14, 2, 64}, {4, 4, 64}, {4, 2, 32}} {
		kvDim := sh.kvHeads * sh.dim
		qStride := sh.heads*sh.dim + 2*kvDim
		slotBytes := ctx * kvDim * 2
		caches, kc, vc := randomCaches(r, b, slots, ctx, kvDim, true)
		a := attnArgs{heads: sh.heads, kvHeads: sh.kvHeads, dim: sh.dim, ctx: ctx, scale: float32(1 / math.Sqrt(float64(sh.dim))),
			f16: true, fa: true, qStride: qStride, slotBytes: slotBytes, long: true}
		for _, rows := range [][]Row{decode, passRows(64), passRows(65), passRows(512), passRows(779)} {
			m := len(rows)
			q, qs, rc, rp := passQueries(r, rows, caches, sh.heads*sh.dim, qStride)
			want := make([]float32, len(q))
			be.FlashAttentionGGML(want, q, rc, rp, m, sh.heads, sh.kvHeads, sh.dim)
			qd, info, passp := b.floats(qs), b.ints(rowInfo(rows...)), b.ints([]int32{int32(m)})
			scores := b.poisoned(4 * m * sh.heads * ctx)
			variants := []struct {
				name         string
				host, legacy bool
				many         int
			}{{"attention_fa", false, false, -1}, {"attention_fa_m", false, false, 1}, {"attention_fa_tiled", true, true, -1},
				{"rows", true, false, -1}}
			for _, v := range variants {
				if m < 64 && v.host {
					continue
				}
				attnLegacy, attnManyRows = v.legacy, v.many
				at := a
				if v.host {
					at.pass = m
				}
				out := b.poisoned(4 * len(q))
				err := d.attention(qd, kc, vc, out, scores, info, passp, at, m)
				attnLegacy, attnManyRows = legacy, many
				if err != nil {
					t.Fatal(err)
				}
				compare(t, fmt.Sprintf("%dx%d dim %d pass %d %s", sh.heads, sh.kvHeads, sh.dim, m, v.name), b.readFloats(out, len(q)), want, 0)
			}
		}
	}
}

// TestFlashAttentionKernelsInPTX checks, without a GPU, that the row-tiled
// kernels are entries of the embedded PTX (as TestKernelNamesInPTX does for
// the others).
func TestFlashAttentionKernelsInPTX(t *testing.T) {
	for _, n := range faRowsKernels {
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
