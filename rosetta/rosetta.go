// Package rosetta compares two models that should compute the same thing
// (one model in two formats, or a model and its quantization): stage by stage
// through a forward pass (CompareInference) and tensor by tensor (Diff), and
// names the first place they part.
package rosetta

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/sample"
)

// Stage is the comparison of one point of the forward pass.
type Stage struct {
	Name string `json:"stage"` // "tokenization", "embedding", "layer N", "logits"
	// MaxAbsDiff is max |a-b| over every value of the stage (all prompt
	// positions); RelDiff is MaxAbsDiff / max |a|.
	MaxAbsDiff float64 `json:"max_abs_diff"`
	RelDiff    float64 `json:"rel_diff"`
	Cosine     float64 `json:"cosine"`
	Diverged   bool    `json:"diverged"`
	Note       string  `json:"note,omitempty"`
}

// Logit is a token id and its logit.
type Logit struct {
	ID    int     `json:"id"`
	Logit float32 `json:"logit"`
}

// Report is the result of CompareInference.
type Report struct {
	Prompt    string  `json:"prompt"`
	Threshold float64 `json:"threshold"`
	TokensA   []int   `json:"tokens_a"`
	TokensB   []int   `json:"tokens_b"`
	Stages    []Stage `json:"stages"`
	ArgmaxA   int     `json:"argmax_a"`
	ArgmaxB   int     `json:"argmax_b"`
	Top5A     []Logit `json:"top5_a"`
	Top5B     []Logit `json:"top5_b"`
	// FirstDivergence names the first stage that diverged ("" when none).
	FirstDivergence string `json:"first_divergence"`
}

// Side is one model under comparison: its tokenizer and tensors (Model)
// and an engine bound to it.
type Side struct {
	Model  *model.Model
	Engine *engine.Engine
}

// CompareInference tokenizes prompt with both models, runs A's tokens
// through both (so that later stages stay comparable even when the
// tokenizers differ) and compares the embeddings, every layer's output
// (the residual stream after the layer's MLP) and the last position's
// logits. A stage diverges when its RelDiff exceeds threshold; the logits
// also diverge when their argmax differs.
func CompareInference(a, b Side, prompt string, threshold float64) (*Report, error) {
	if a.Model.Config.HiddenSize != b.Model.Config.HiddenSize || a.Model.Config.NumLayers != b.Model.Config.NumLayers ||
		a.Model.Config.VocabSize != b.Model.Config.VocabSize {
		return nil, fmt.Errorf("rosetta: the models differ in shape (hidden %d/%d, layers %d/%d, vocab %d/%d)",
			a.Model.Config.HiddenSize, b.Model.Config.HiddenSize, a.Model.Config.NumLayers, b.Model.Config.NumLayers,
			a.Model.Config.VocabSize, b.Model.Config.VocabSize)
	}
	r := &Report{Prompt: prompt, Threshold: threshold}
	r.TokensA = a.Model.Tokenizer.Encode(prompt)
	r.TokensB = b.Model.Tokenizer.Encode(prompt)
	if len(r.TokensA) == 0 {
		return nil, fmt.Errorf("rosetta: the prompt has no tokens")
	}
	tok := Stage{Name: "tokenization", Cosine: 1}
	if !slices.Equal(r.TokensA, r.TokensB) {
		tok.Diverged, tok.Cosine = true, 0
		tok.Note = fmt.Sprintf("%d vs %d tokens; B runs A's tokens from here on", len(r.TokensA), len(r.TokensB))
	}
	r.add(tok)

	ea, err := embeddings(a.Model, r.TokensA)
	if err != nil {
		return nil, err
	}
	eb, err := embeddings(b.Model, r.TokensA)
	if err != nil {
		return nil, err
	}
	r.add(compare("embedding", ea, eb, threshold))

	la, logA, err := run(a.Engine, r.TokensA)
	if err != nil {
		return nil, fmt.Errorf("rosetta: model A: %w", err)
	}
	lb, logB, err := run(b.Engine, r.TokensA)
	if err != nil {
		return nil, fmt.Errorf("rosetta: model B: %w", err)
	}
	for i := range la {
		r.add(compare(fmt.Sprintf("layer %d", i), la[i], lb[i], threshold))
	}
	st := compare("logits", logA, logB, threshold)
	r.ArgmaxA, r.ArgmaxB = sample.Argmax(logA), sample.Argmax(logB)
	r.Top5A, r.Top5B = topK(logA, 5), topK(logB, 5)
	if r.ArgmaxA != r.ArgmaxB {
		st.Diverged = true
		st.Note = fmt.Sprintf("argmax %d vs %d", r.ArgmaxA, r.ArgmaxB)
	}
	r.add(st)
	return r, nil
}

func (r *Report) add(s Stage) {
	r.Stages = append(r.Stages, s)
	if s.Diverged && r.FirstDivergence == "" {
		r.FirstDivergence = s.Name
	}
}

// compare measures b against a.
func compare(name string, a, b []float32, threshold float64) Stage {
	s := Stage{Name: name}
	if len(a) != len(b) {
		s.Diverged, s.Note = true, fmt.Sprintf("%d vs %d values", len(a), len(b))
		return s
	}
	var maxA, dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		d := math.Abs(x - y)
		if d > s.MaxAbsDiff || math.IsNaN(d) {
			s.MaxAbsDiff = d
		}
		maxA = max(maxA, math.Abs(x))
		dot += x * y
		na += x * x
		nb += y * y
	}
	switch {
	case na == 0 && nb == 0:
		s.Cosine = 1
	case na == 0 || nb == 0:
		s.Cosine = 0
	default:
		s.Cosine = dot / math.Sqrt(na*nb)
	}
	if maxA > 0 {
		s.RelDiff = s.MaxAbsDiff / maxA
	} else if s.MaxAbsDiff > 0 {
		s.RelDiff = math.Inf(1)
	}
	s.Diverged = s.RelDiff > threshold || math.IsNaN(s.MaxAbsDiff)
	return s
}

// embeddings are the token embedding rows of ids, decoded to float32 as the
// engine decodes them.
func embeddings(m *model.Model, ids []int) ([]float32, error) {
	t, ok := m.Tensors[model.TokenEmbd]
	if !ok {
		return nil, fmt.Errorf("rosetta: %s has no %s", m.Path, model.TokenEmbd)
	}
	dq, err := quant.DequantizeRowFunc(t.DType)
	if err != nil {
		return nil, fmt.Errorf("rosetta: %s: %w", m.Path, err)
	}
	h := t.Cols()
	out := make([]float32, len(ids)*h)
	for i, id := range ids {
		if id < 0 || id >= t.Rows() {
			return nil, fmt.Errorf("rosetta: token %d outside %s's embedding", id, m.Path)
		}
		dq(t.Row(id), out[i*h:(i+1)*h])
	}
	return out, nil
}

// layerProbe keeps each layer's last residual output: the layer's result.
type layerProbe struct{ layers [][]float32 }

func (p *layerProbe) Brick(ev engine.BrickEvent) {
	if ev.Brick != engine.BrickResidual || ev.Layer < 0 || len(ev.Outputs) == 0 {
		return
	}
	for len(p.layers) <= ev.Layer {
		p.layers = append(p.layers, nil)
	}
	p.layers[ev.Layer] = append(p.layers[ev.Layer][:0], ev.Outputs[0]...)
}

// run runs ids through e on a fresh sequence and returns every layer's
// output and the last position's logits.
func run(e *engine.Engine, ids []int) ([][]float32, []float32, error) {
	p := &layerProbe{}
	e.SetProbe(p)
	defer e.SetProbe(nil)
	logits, err := e.NewSequence(len(ids)).Forward(ids, false)
	if err != nil {
		return nil, nil, err
	}
	if len(p.layers) != e.Config.NumLayers {
		return nil, nil, fmt.Errorf("the engine reported %d of %d layers", len(p.layers), e.Config.NumLayers)
	}
	return p.layers, logits, nil
}

func topK(logits []float32, k int) []Logit {
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return logits[idx[i]] > logits[idx[j]] })
	out := make([]Logit, 0, k)
	for _, i := range idx[:min(k, len(idx))] {
		out = append(out, Logit{i, logits[i]})
	}
	return out
}
