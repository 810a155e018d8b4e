package engine

import (
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/apr-llm/apr/format/safetensors"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/sample"
	"github.com/apr-llm/apr/tensor"
)

var (
	tinyOnce sync.Once
	tinyEng  *Engine
	tinyErr  error
)

// tinyEngine loads ../shared/models/qwen2-tiny-coder (BF16 SafeTensors) once.
func tinyEngine(t testing.TB) *Engine {
	t.Helper()
	dir := testref.ModelDir(t)
	tinyOnce.Do(func() {
		raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			tinyErr = err
			return
		}
		cfg, err := model.ParseHFConfig(raw)
		if err != nil {
			tinyErr = err
			return
		}
		set, err := safetensors.OpenDir(dir)
		if err != nil {
			tinyErr = err
			return
		}
		tensors := map[string]*tensor.Tensor{}
		for _, tt := range set.Tensors() {
			tensors[tt.Name] = tt
		}
		tinyEng, tinyErr = New(cfg, tensors, Options{})
	})
	if tinyErr != nil {
		t.Fatalf("load tiny model: %v", tinyErr)
	}
	return tinyEng
}

func maxAbs(x []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, float32(math.Abs(float64(v))))
	}
	return m
}

// TestForwardMatchesTransformers checks every prompt of hf_outputs.json:
// argmax at every position, the last position's top-20 logits, and 32 steps
// of greedy decoding through the KV cache.
func TestForwardMatchesTransformers(t *testing.T) {
	e := tinyEngine(t)
	vocab := e.Config.VocabSize
	for _, p := range testref.HFOutputs(t) {
		t.Run(p.Name, func(t *testing.T) {
			seq := e.NewSequence(len(p.TokenIDs) + 40)
			logits, err := seq.Forward(p.TokenIDs, true)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range p.ArgmaxPerPos {
				if got := sample.Argmax(logits[i*vocab : (i+1)*vocab]); got != want {
					t.Errorf("position %d: argmax %d, transformers %d", i, got, want)
				}
			}
			last := logits[(len(p.TokenIDs)-1)*vocab:]
			tol := 1e-3 * maxAbs(last)
			for _, pair := range p.LastTop20 {
				id, want := int(pair[0]), float32(pair[1])
				if d := math.Abs(float64(last[id] - want)); d > float64(tol) {
					t.Errorf("last logit[%d] = %g, transformers %g (|diff| %g > %g)", id, last[id], want, d, tol)
				}
			}
			// Greedy continuation, one token at a time through the cache.
			next := sample.Argmax(last)
			for step, want := range p.Greedy32 {
				if next != want {
					t.Fatalf("greedy step %d: %d, transformers %d", step, next, want)
				}
				l, err := seq.Forward([]int{next}, false)
				if err != nil {
					t.Fatal(err)
				}
				next = sample.Argmax(l)
			}
		})
	}
}

// TestFullLogitsPrompt0 compares the whole last-position vocabulary.
func TestFullLogitsPrompt0(t *testing.T) {
	e := tinyEngine(t)
	p := testref.HFOutputs(t)[0]
	want := testref.HFLogitsPrompt0(t)
	got, err := e.NewSequence(0).Forward(p.TokenIDs, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d logits, reference has %d", len(got), len(want))
	}
	tol := 1e-3 * float64(maxAbs(want))
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
	}
	t.Logf("max |logit diff| = %.3g (tolerance %.3g)", worst, tol)
	if worst > tol {
		t.Fatalf("max |logit diff| %g > %g", worst, tol)
	}
}

// TestIncrementalDecodeMatchesFullForward checks that the KV cache gives the
// logits of a full forward over the whole sequence.
func TestIncrementalDecodeMatchesFullForward(t *testing.T) {
	e := tinyEngine(t)
	ids := testref.HFOutputs(t)[1].TokenIDs
	vocab := e.Config.VocabSize
	full, err := e.NewSequence(0).Forward(ids, true)
	if err != nil {
		t.Fatal(err)
	}
	split := len(ids) / 2
	seq := e.NewSequence(0)
	if _, err := seq.Forward(ids[:split], false); err != nil {
		t.Fatal(err)
	}
	for i := split; i < len(ids); i++ {
		got, err := seq.Forward(ids[i:i+1], false)
		if err != nil {
			t.Fatal(err)
		}
		want := full[i*vocab : (i+1)*vocab]
		scale := float64(maxAbs(want))
		for j := range want {
			if d := math.Abs(float64(got[j] - want[j])); d > 1e-4*scale {
				t.Fatalf("position %d logit %d: incremental %g, full %g", i, j, got[j], want[j])
			}
		}
	}
}

func TestContextFull(t *testing.T) {
	e := tinyEngine(t)
	seq := e.NewSequence(4)
	if _, err := seq.Forward([]int{1, 2, 3, 4, 5}, false); err == nil {
		t.Fatal("5 tokens into a context of 4: no error")
	}
	if _, err := seq.Forward([]int{-1}, false); err == nil {
		t.Fatal("negative token id: no error")
	}
}

// TestForwardBatchMatchesSeparate: a batch mixing one sequence's prompt with
// another's decode token gives each the logits it gets alone.
func TestForwardBatchMatchesSeparate(t *testing.T) {
	e := tinyEngine(t)
	ps := testref.HFOutputs(t)
	a, b := ps[0].TokenIDs, ps[1].TokenIDs
	// Alone.
	sa := e.NewSequence(0)
	wantA, err := sa.Forward(a, false)
	if err != nil {
		t.Fatal(err)
	}
	sb := e.NewSequence(0)
	if _, err := sb.Forward(b[:len(b)-1], false); err != nil {
		t.Fatal(err)
	}
	wantB, err := sb.Forward(b[len(b)-1:], false)
	if err != nil {
		t.Fatal(err)
	}
	// Together: a's whole prompt and b's last token in one pass.
	sa2, sb2 := e.NewSequence(0), e.NewSequence(0)
	if _, err := sb2.Forward(b[:len(b)-1], false); err != nil {
		t.Fatal(err)
	}
	got, err := e.ForwardBatch([]BatchEntry{{Seq: sa2, Tokens: a}, {Seq: sb2, Tokens: b[len(b)-1:]}})
	if err != nil {
		t.Fatal(err)
	}
	for i, pair := range [][2][]float32{{got[0], wantA}, {got[1], wantB}} {
		scale := float64(maxAbs(pair[1]))
		for j := range pair[1] {
			if d := math.Abs(float64(pair[0][j] - pair[1][j])); d > 1e-5*scale {
				t.Fatalf("entry %d logit %d: batched %g, alone %g", i, j, pair[0][j], pair[1][j])
			}
		}
	}
	if sa2.Pos() != len(a) || sb2.Pos() != len(b) {
		t.Fatalf("positions after the batch: %d, %d; want %d, %d", sa2.Pos(), sb2.Pos(), len(a), len(b))
	}
	if _, err := e.ForwardBatch([]BatchEntry{{Seq: sa2, Tokens: a[:1]}, {Seq: sa2, Tokens: a[:1]}}); err == nil {
		t.Fatal("the same sequence twice in a batch: no error")
	}
}
