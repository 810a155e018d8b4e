package engine

import (
	"math"
	"testing"

	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/sample"
)

// minArgmaxAgreement is the share of prompt positions where apr's argmax
// must equal llama.cpp's (the GGUF issue asks for 99%). llama.cpp's logits for
// one token prefix depend on the prompt length because its CPU flash
// attention (on by default) switches kernels at 64 rows; apr follows that
// choice and ggml's elementwise numerics.
const minArgmaxAgreement = 0.99

// nearTie is how close the top two logits must be for a greedy divergence
// between apr and llama.cpp to be blamed on quantization rounding.
const nearTie = 0.1

// openModel loads a model file through the format dispatcher and binds it.
func openModel(t *testing.T, path string) (*model.Model, *Engine) {
	return openModelWith(t, path, CacheDefault)
}

// openModelWith is openModel with a KV cache of type cache.
func openModelWith(t *testing.T, path string, cache CacheType) (*model.Model, *Engine) {
	t.Helper()
	m, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e, err := New(m.Config, m.Tensors, OptionsFor(m, 0).WithCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return m, e
}

// top2 returns the best two [id, logit] pairs of logits.
func top2(logits []float32) (int, float32, int, float32) {
	a, b := -1, -1
	for i, v := range logits {
		switch {
		case a < 0 || v > logits[a]:
			b, a = a, i
		case b < 0 || v > logits[b]:
			b = i
		}
	}
	return a, logits[a], b, logits[b]
}

func isEOS(id int) bool { return id == 151645 || id == 151643 }

// compareWithLlamaCpp runs every prompt through e and checks it against
// llama.cpp's outputs for the same file (compareWithReference).
func compareWithLlamaCpp(t *testing.T, e *Engine, key string) {
	compareWithReference(t, e, key, "llama.cpp", testref.LlamaCppOutputs(t, key), refBars{minArgmax: minArgmaxAgreement})
}

// refBars are compareWithReference's bars: the share of prompt positions
// whose argmax must agree, and (where > 0, with the reference's top-2 per
// position) the largest top-2 gap of the reference at a position where
// they may differ.
type refBars struct {
	minArgmax, maxGap float64
}

// hfReference is transformers' outputs in llama.cpp's entries' shape (its
// token ids as the prompt), for compareWithReference.
func hfReference(t *testing.T) []testref.LlamaPrompt {
	var out []testref.LlamaPrompt
	for _, p := range testref.HFOutputs(t) {
		out = append(out, testref.LlamaPrompt{Name: p.Name, LlamaTokens: p.TokenIDs, ArgmaxPerPos: p.ArgmaxPerPos,
			LastTop20: p.LastTop20, Greedy32: p.Greedy32, Greedy32Top2: p.Greedy32Top2})
	}
	return out
}

// compareWithReference runs every prompt through e and checks it against
// ref (llama.cpp's or transformers' outputs, named who):
//   - the argmax agrees at bars.minArgmax of all prompt positions, and
//     where it does not, the reference's top-2 are within bars.maxGap;
//   - chat prompts: the greedy answer (up to and including the first EOS)
//     is identical;
//   - every prompt: where the 32-step greedy continuations differ, the first
//     differing step is a near tie (top-2 within nearTie in apr or in
//     the reference).
func compareWithReference(t *testing.T, e *Engine, key, who string, ref []testref.LlamaPrompt, bars refBars) {
	hf := testref.HFOutputs(t)
	kinds := map[string]string{}
	for _, p := range hf {
		kinds[p.Name] = p.Kind
	}
	vocab := e.Config.VocabSize
	total, agree := 0, 0
	for _, p := range ref {
		ids := p.LlamaTokens
		seq := e.NewSequence(len(ids) + 40)
		logits, err := seq.Forward(ids, true)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range p.ArgmaxPerPos {
			total++
			got := sample.Argmax(logits[i*vocab : (i+1)*vocab])
			if got == want {
				agree++
			} else if bars.maxGap > 0 && i < len(p.Top2PerPos) {
				if gap := p.Top2PerPos[i][0][1] - p.Top2PerPos[i][1][1]; gap > bars.maxGap {
					t.Errorf("%s/%s: position %d: argmax %d, %s %d with a top-2 gap of %.3f (> %g)", key, p.Name, i, got, who, want, gap, bars.maxGap)
				}
			}
		}
		last := logits[(len(ids)-1)*vocab:]
		answerDone := false
		for step, want := range p.Greedy32 {
			got, g1, _, g2 := top2(last)
			if got != want {
				ref := p.Greedy32Top2[step]
				aprGap := float64(g1 - g2)
				llamaGap := math.Abs(ref[0][1] - ref[1][1])
				if kinds[p.Name] == "chat" && !answerDone {
					t.Errorf("%s/%s: chat answer differs at step %d: apr %d, %s %d", key, p.Name, step, got, who, want)
				} else if aprGap > nearTie && llamaGap > nearTie {
					t.Errorf("%s/%s: greedy differs at step %d (apr %d, %s %d) and it is no near tie: top-2 gap %.3f in apr, %.3f in %s",
						key, p.Name, step, got, who, want, aprGap, llamaGap, who)
				} else {
					t.Logf("%s/%s: greedy differs at step %d after the answer or at a near tie (gaps %.3f apr, %.3f %s)", key, p.Name, step, aprGap, llamaGap, who)
				}
				break
			}
			if isEOS(got) {
				answerDone = true
			}
			if last, err = seq.Forward([]int{got}, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	frac := float64(agree) / float64(total)
	t.Logf("%s: argmax agrees with %s at %d/%d prompt positions (%.2f%%)", key, who, agree, total, 100*frac)
	if frac < bars.minArgmax {
		t.Errorf("%s: argmax agrees with %s at %.2f%% of positions, want >= %.1f%%", key, who, 100*frac, 100*bars.minArgmax)
	}
}

// ggufReferences are the shared GGUF files and their keys in
// llamacpp_outputs.json.
var ggufReferences = []struct{ key, file string }{
	{"q8_0", "qwen2-tiny-coder-q8_0.gguf"},
	{"q4_k_m", "qwen2-tiny-coder-q4_k_m.gguf"},
}

func TestGGUFMatchesLlamaCpp(t *testing.T) {
	for _, c := range ggufReferences {
		t.Run(c.key, func(t *testing.T) {
			_, e := openModel(t, testref.Path(t, "models", "qwen2-tiny-coder-gguf", c.file))
			compareWithLlamaCpp(t, e, c.key)
		})
	}
}

// TestCrossFormatArgmax is the seed's invariant: SafeTensors and the Q8_0
// GGUF give the same argmax at the last position of every prompt.
func TestCrossFormatArgmax(t *testing.T) {
	st := tinyEngine(t)
	_, q8 := openModel(t, testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf"))
	for _, p := range testref.HFOutputs(t) {
		a, err := st.NewSequence(len(p.TokenIDs)).Forward(p.TokenIDs, false)
		if err != nil {
			t.Fatal(err)
		}
		b, err := q8.NewSequence(len(p.TokenIDs)).Forward(p.TokenIDs, false)
		if err != nil {
			t.Fatal(err)
		}
		if x, y := sample.Argmax(a), sample.Argmax(b); x != y {
			t.Errorf("%s: last-position argmax %d from SafeTensors, %d from Q8_0 GGUF", p.Name, x, y)
		}
	}
}
