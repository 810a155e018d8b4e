package cuda_test

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/sample"
)

// logitRatio is max|got-want| / max|want|; NaN in got counts as infinite.
func logitRatio(got, want []float32) float64 {
	maxLogit, maxDiff := 0.0, 0.0
	for i := range want {
		maxLogit = max(maxLogit, math.Abs(float64(want[i])))
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		maxDiff = max(maxDiff, d)
	}
	return maxDiff / maxLogit
}

// sixteen lists 16 prompts by index for 16 slots, the n prompts but those
// of skip, in turn: the steps after them are passes of 16 rows, which
// Forward captures as graphs on their second run (BF16/F16 weights:
// cuBLAS GEMMs inside the graph).
func sixteen(n int, skip []int) []int {
	var all, out []int
	for i := range n {
		if !slices.Contains(skip, i) {
			all = append(all, i)
		}
	}
	for i := range 16 {
		out = append(out, all[i%len(all)])
	}
	return out
}

// TestForwardMatchesCPU feeds several reference prompts to Forward at once,
// each into its own slot with the rows interleaved, then decodes every slot
// one row each per call, and compares with the CPU engine running the same
// passes (ForwardBatch of every sequence): each row's logits within
// tolerance (1e-2 x max|logit|, 5e-2 without -tags purego on GGUF files)
// and the greedy tokens equal, as TestDecodeMatchesCPU demands of Decode.
// tinyCases: the SafeTensors model also over an F16 cache, whose passes of
// few rows run attn_f16_dec and, past attnSplitMin keys, the split.
func TestForwardMatchesCPU(t *testing.T) {
	skipWithoutGPU(t)
	prompts := testref.HFOutputs(t)
	const steps = 12
	byName := map[string]int{}
	for i, p := range prompts {
		byName[p.Name] = i
	}
	long := []int{byName["tools"], byName["raw_long_code"]} // 179 and 600 tokens: mmq, tiled attention, two chunks
	cases := []struct {
		name   string
		slots  int
		batch  bool    // all of a group's slots in one call
		groups [][]int // prompts by index, a group's in slots 0, 1, ...
	}{
		{"batched", 3, true, [][]int{{0, 1, 2}}},
		{"each-alone", 1, false, [][]int{{0}, {1}, {2}}},
		{"long", 2, true, [][]int{long}},
		{"sixteen", 16, true, [][]int{sixteen(len(prompts), long)}},
	}
	for _, tc := range tinyCases {
		rel := tc.rel
		for _, c := range cases {
			t.Run(tc.name()+"/"+c.name, func(t *testing.T) {
				ctx := 0
				for _, grp := range c.groups {
					for _, pi := range grp {
						ctx = max(ctx, len(prompts[pi].TokenIDs)+steps+1)
					}
				}
				m, e, g := openBothCache(t, rel, ctx, tc.cache, func(o *cuda.Options) { o.Slots = c.slots })
				if g.Slots() != c.slots {
					t.Fatalf("Slots() = %d, want %d", g.Slots(), c.slots)
				}
				tol := 1e-2
				if !portableCPU && m.Format == "gguf" {
					tol = 5e-2
				}
				vocab := m.Config.VocabSize
				worst := 0.0
				for _, grp := range c.groups {
					seqs := make([]*engine.Sequence, len(grp))
					entries := make([]engine.BatchEntry, len(grp))
					var rows []cuda.Row
					longest := 0
					for i, pi := range grp {
						seqs[i] = e.NewSequence(ctx)
						entries[i] = engine.BatchEntry{Seq: seqs[i], Tokens: prompts[pi].TokenIDs}
						longest = max(longest, len(prompts[pi].TokenIDs))
					}
					// Interleave the prompts' rows: position j of every slot, then j+1.
					for j := 0; j < longest; j++ {
						for i, pi := range grp {
							ids := prompts[pi].TokenIDs
							if j < len(ids) {
								rows = append(rows, cuda.Row{Slot: i % c.slots, Token: ids[j], Pos: j, Logits: j == len(ids)-1})
							}
						}
					}
					// Logits come in row order: the slot whose prompt ends first comes first.
					order := make([]int, 0, len(grp))
					for _, r := range rows {
						if r.Logits {
							order = append(order, r.Slot)
						}
					}
					got := make([]float32, len(grp)*vocab)
					pos := make([]int, len(grp))
					for i, pi := range grp {
						pos[i] = len(prompts[pi].TokenIDs)
					}
					for step := 0; ; step++ {
						want, err := e.ForwardBatch(entries)
						if err != nil {
							t.Fatal(err)
						}
						if err := g.Forward(rows, got); err != nil {
							t.Fatal(err)
						}
						for k, slot := range order {
							i := slot
							if !c.batch {
								i = 0
							}
							gl := got[k*vocab : (k+1)*vocab]
							r := logitRatio(gl, want[i])
							worst = max(worst, r)
							if r > tol {
								t.Fatalf("prompt %s step %d: logits differ by %.3g x max|logit| > %g", prompts[grp[i]].Name, step, r, tol)
							}
							if gt, ct := sample.Argmax(gl), sample.Argmax(want[i]); gt != ct {
								a, av, b, bv := top2(want[i])
								if portableCPU || m.Format != "gguf" || av-bv >= nearTie {
									t.Fatalf("prompt %s step %d: greedy GPU %d, CPU %d (CPU top-2 %d %.4f / %d %.4f)", prompts[grp[i]].Name, step, gt, ct, a, av, b, bv)
								}
								t.Logf("prompt %s step %d: greedy splits at a near tie; stopping", prompts[grp[i]].Name, step)
								return
							}
						}
						if step == steps {
							break
						}
						// Next: one row per slot, the CPU's greedy token.
						rows = rows[:0]
						order = order[:0]
						for i := range grp {
							tok := sample.Argmax(want[i])
							entries[i].Tokens = []int{tok}
							slot := i % c.slots
							rows = append(rows, cuda.Row{Slot: slot, Token: tok, Pos: pos[i], Logits: true})
							order = append(order, slot)
							pos[i]++
						}
					}
				}
				t.Logf("worst logit difference over all rows and steps: %.3g x max|logit|", worst)
			})
		}
	}
}

// TestForwardRejects checks Forward's argument errors.
func TestForwardRejects(t *testing.T) {
	skipWithoutGPU(t)
	m, err := format.Open(testref.Path(t, filepath.FromSlash(tinyModels[1])))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	o := cuda.OptionsFor(m, 16)
	o.Slots = 2
	g, err := cuda.Load(m, o)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	vocab := m.Config.VocabSize
	for _, c := range []struct {
		name   string
		rows   []cuda.Row
		logits int
	}{
		{"slot", []cuda.Row{{Slot: 2, Token: 1}}, 0},
		{"negative slot", []cuda.Row{{Slot: -1, Token: 1}}, 0},
		{"token", []cuda.Row{{Token: vocab}}, 0},
		{"position", []cuda.Row{{Token: 1, Pos: 16}}, 0},
		{"logits buffer", []cuda.Row{{Token: 1, Logits: true}}, vocab - 1},
	} {
		if err := g.Forward(c.rows, make([]float32, c.logits)); err == nil {
			t.Errorf("%s: Forward accepted %+v", c.name, c.rows)
		}
	}
}

// hiddenProbe keeps the CPU's hidden states entering decoder layer layer:
// the embedding for layer 0, else the last residual of layer-1.
type hiddenProbe struct {
	layer int
	out   []float32
}

func (p *hiddenProbe) Brick(ev engine.BrickEvent) {
	if (p.layer == 0 && ev.Brick == engine.BrickEmbed) || (ev.Brick == engine.BrickResidual && ev.Layer == p.layer-1) {
		p.out = append(p.out[:0], ev.Outputs[0]...)
	}
}

// TestForwardHidden runs the device's layers from FirstLayer on (0, the
// middle one, the last) with the hidden states the CPU engine computed for
// the layers before, on a 67-token prompt (a pass of 64+ rows) and four
// greedy steps, and compares the logits with the CPU's as
// TestForwardMatchesCPU does.
func TestForwardHidden(t *testing.T) {
	skipWithoutGPU(t)
	p := testref.HFOutputs(t)[2] // multi_turn
	const steps = 4
	for _, rel := range tinyModels {
		m, err := format.Open(testref.Path(t, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		n := m.Config.NumLayers
		for _, first := range []int{0, n / 2, n - 1} {
			t.Run(fmt.Sprintf("%s/first-%d", filepath.Base(rel), first), func(t *testing.T) {
				e, err := engine.New(m.Config, m.Tensors, engine.OptionsFor(m, 0))
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				probe := &hiddenProbe{layer: first}
				e.SetProbe(probe)
				ctx := len(p.TokenIDs) + steps + 1
				o := cuda.OptionsFor(m, ctx)
				o.FirstLayer = first
				g, err := cuda.Load(m, o)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				if first > 0 {
					if err := g.Forward([]cuda.Row{{Token: 1}}, nil); err == nil {
						t.Error("Forward ran on a model without the first layers")
					}
				}
				tol := 1e-2
				if !portableCPU && m.Format == "gguf" {
					tol = 5e-2
				}
				seq := e.NewSequence(ctx)
				tokens := p.TokenIDs
				got := make([]float32, m.Config.VocabSize)
				for step, pos := 0, 0; step <= steps; step++ {
					want, err := seq.Forward(tokens, false)
					if err != nil {
						t.Fatal(err)
					}
					rows := make([]cuda.Row, len(tokens))
					for i, tok := range tokens {
						rows[i] = cuda.Row{Token: tok, Pos: pos + i, Logits: i == len(tokens)-1}
					}
					if err := g.ForwardHidden(rows, probe.out, got); err != nil {
						t.Fatal(err)
					}
					if r := logitRatio(got, want); r > tol {
						t.Fatalf("step %d: logits differ by %.3g x max|logit| > %g", step, r, tol)
					}
					if gt, ct := sample.Argmax(got), sample.Argmax(want); gt != ct {
						a, av, b, bv := top2(want)
						if portableCPU || m.Format != "gguf" || av-bv >= nearTie {
							t.Fatalf("step %d: greedy GPU %d, CPU %d (CPU top-2 %d %.4f / %d %.4f)", step, gt, ct, a, av, b, bv)
						}
						t.Logf("step %d: greedy splits at a near tie; stopping", step)
						return
					}
					pos += len(tokens)
					tokens = []int{sample.Argmax(want)}
				}
			})
		}
	}
}
