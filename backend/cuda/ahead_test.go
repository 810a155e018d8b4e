package cuda_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/sample"
)

// aheadRun is what aheadScript saw: the greedy tokens of each part and the
// logits of the rows read in full.
type aheadRun struct {
	tokens [][]int
	logits [][]float32
}

// aheadScript runs greedy decoding on g the way the engine and the bench
// do, with turns that leave a step sent ahead unused: a prompt in slot 0,
// greedy steps, a token of the caller's at the next position (a user's
// turn: the step sent ahead fed another token there), greedy steps
// through ForwardPick (the last one a Last pick, which sends nothing
// ahead), a second sequence in slot 1, back to slot 0, and a
// full-logits step at the position a step was sent ahead for. With host
// set, every greedy token is sample.Argmax of logits brought back in full
// (Decode, Forward) instead of the device's answer, and the picks' keys
// are not checked.
func aheadScript(t *testing.T, g *cuda.Model, prompt []int, host bool) aheadRun {
	t.Helper()
	vocab := g.Config.VocabSize
	var run aheadRun
	logits := make([]float32, vocab)
	forward := func(rows []cuda.Row) []float32 {
		if err := g.Forward(rows, logits); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(logits)
	}
	prefill := func(slot int, ids []int) int {
		rows := make([]cuda.Row, len(ids))
		for i, id := range ids {
			rows[i] = cuda.Row{Slot: slot, Token: id, Pos: i, Logits: i == len(ids)-1}
		}
		return sample.Argmax(forward(rows))
	}
	// greedy runs n steps from tok at pos of slot: DecodeArgmax (slot 0)
	// or ForwardPick, whose last pick is Last when last is set; with host,
	// full logits and sample.Argmax. Without host, each step must leave the
	// step after it sent ahead, except a Last pick.
	greedy := func(slot, tok, pos, n int, pick, last bool) []int {
		out := []int{tok}
		for i := 0; i < n; i++ {
			row := cuda.Row{Slot: slot, Token: tok, Pos: pos + i, Logits: true}
			final := last && i == n-1
			var err error
			switch {
			case host && slot == 0 && !pick:
				var l []float32
				if l, err = g.Decode(tok, pos+i); err == nil {
					tok = sample.Argmax(l)
				}
			case host:
				tok = sample.Argmax(forward([]cuda.Row{row}))
			case pick:
				res := make([]cuda.Picked, 1)
				err = g.ForwardPick([]cuda.Row{row}, []cuda.Pick{{K: 1, Greedy: true, Last: final}}, res, logits)
				if err == nil {
					if len(res[0].Keys) != 1 || res[0].Full {
						t.Fatalf("greedy pick: %d keys, full %v; want one key", len(res[0].Keys), res[0].Full)
					}
					tok = sample.KeyID(res[0].Keys[0])
				}
			default:
				tok, err = g.DecodeArgmax(tok, pos+i)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !host && g.StepAhead() == final {
				t.Fatalf("slot %d position %d: a step sent ahead %v after a pick with Last %v", slot, pos+i, g.StepAhead(), final)
			}
			out = append(out, tok)
		}
		return out
	}
	n := len(prompt)
	a := greedy(0, prefill(0, prompt), n, 12, false, false)
	// The caller's own token where a step went ahead with a.
	user := (a[12] + 1) % vocab
	run.logits = append(run.logits, forward([]cuda.Row{{Token: user, Pos: n + 12, Logits: true}}))
	// b ends with a Last pick: d sends its first step itself.
	b := greedy(0, sample.Argmax(run.logits[0]), n+13, 10, true, true)
	c := greedy(1, prefill(1, prompt[:n-1]), n-1, 6, true, false)
	d := greedy(0, b[10], n+23, 5, false, false)
	// A full step of the token and position the last step sent ahead for.
	l, err := g.Decode(d[5], n+28)
	if err != nil {
		t.Fatal(err)
	}
	run.logits = append(run.logits, l)
	run.tokens = [][]int{a, b, c, d}
	return run
}

// TestGreedyAheadMatchesHost checks the greedy steps sent ahead
// (DecodeArgmax and one-row greedy ForwardPick send the next step before
// reading their token) on every shared model file: the tokens of
// aheadScript's parts, and the logits of the steps that follow a step sent
// ahead and not used, are those of the same script run with nothing sent
// ahead and every token chosen on the host from full logits
// (sample.Argmax), bit for bit.
func TestGreedyAheadMatchesHost(t *testing.T) {
	skipWithoutGPU(t)
	prompt := testref.HFOutputs(t)[0].TokenIDs
	for _, rel := range tinyModels {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			m, err := format.Open(testref.Path(t, filepath.FromSlash(rel)))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var runs [2]aheadRun
			for i, host := range []bool{false, true} {
				if host {
					defer cuda.SetTune("nopipe")()
				}
				o := cuda.OptionsFor(m, 128)
				o.Slots = 2
				g, err := cuda.Load(m, o)
				if err != nil {
					t.Fatal(err)
				}
				runs[i] = aheadScript(t, g, prompt, host)
				g.Close()
			}
			for i := range runs[0].tokens {
				if !slices.Equal(runs[0].tokens[i], runs[1].tokens[i]) {
					t.Errorf("part %d: greedy tokens %v, from full logits %v", i, runs[0].tokens[i], runs[1].tokens[i])
				}
			}
			for i := range runs[0].logits {
				if r := logitRatio(runs[0].logits[i], runs[1].logits[i]); r != 0 {
					t.Errorf("logits %d after a step sent ahead differ by %.3g x max|logit|", i, r)
				}
			}
			t.Logf("greedy parts %v", runs[0].tokens)
		})
	}
}
