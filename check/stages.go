package check

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/sample"
	"github.com/apr-llm/apr/tensor"
	"github.com/apr-llm/apr/trace"
)

// roundTripTexts are the tokenizer stage's fixed texts (NFC already, so a
// normalising tokenizer must give them back unchanged).
var roundTripTexts = []string{
	"Hello, world! What is 2+2?",
	"func main() {\n\tfmt.Println(\"héllo\")\n}\n",
	"  leading spaces,\ttabs and\n\nblank lines  ",
	"Numbers 1234567890 and 3.14159, contractions: don't, I'M, we'll.",
	"日本語のテキスト, 中文, 한국어, العربية, हिन्दी",
	"emoji 👍🏽 👨‍👩‍👧 ✓",
	"def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n",
}

// conversation is the probed pass's text, rendered with the model's
// template: a chat model predicts most of it.
var conversation = []chat.Message{
	{Role: "system", Content: "You are a helpful assistant."},
	{Role: "user", Content: "What is 2+2? Answer with just the number."},
	{Role: "assistant", Content: "4"},
	{Role: "user", Content: "Write a Go function that adds two integers."},
}

// question is the decode stage's prompt.
const question = "What is 2+2? Answer with just the number."

// event is a copy of one probed brick.
type event struct {
	brick engine.Brick
	layer int
	rows  int
	outs  [][]float32
}

// recorder copies every brick of the passes it observes.
type recorder struct{ events []event }

func (r *recorder) Brick(ev engine.BrickEvent) {
	e := event{brick: ev.Brick, layer: ev.Layer, rows: ev.Rows}
	for _, o := range ev.Outputs {
		e.outs = append(e.outs, append([]float32(nil), o...))
	}
	r.events = append(r.events, e)
}

// checker holds one probed forward pass over the conversation (all
// positions' logits) and what the stages share.
type checker struct {
	m      *model.Model
	e      *engine.Engine
	cfg    *model.Config
	ids    []int
	events []event
	logits []float32
	err    error // why the probed pass could not run
	// scanned holds each weight matrix's finiteness scan.
	scanned map[string]error
}

func newChecker(m *model.Model, eng *engine.Engine) *checker {
	c := &checker{m: m, e: eng, cfg: eng.Config}
	text, err := m.Template.Render(chat.Request{Messages: conversation, AddGenerationPrompt: true})
	if err != nil {
		c.err = fmt.Errorf("chat template: %w", err)
		return c
	}
	c.ids = m.Tokenizer.Encode(text)
	var rec recorder
	eng.SetProbe(&rec)
	defer eng.SetProbe(nil)
	c.logits, c.err = eng.NewSequence(len(c.ids)+1).Forward(c.ids, true)
	if c.err != nil {
		c.err = fmt.Errorf("forward pass: %w", c.err)
	}
	c.events = rec.events
	return c
}

// find returns the nth (from 0) event of brick b in layer.
func (c *checker) find(layer int, b engine.Brick, nth int) (*event, error) {
	if c.err != nil {
		return nil, fmt.Errorf("not run: %w", c.err)
	}
	for i := range c.events {
		ev := &c.events[i]
		if ev.layer == layer && ev.brick == b {
			if nth == 0 {
				return ev, nil
			}
			nth--
		}
	}
	return nil, fmt.Errorf("the probe saw no %s in layer %d", b, layer)
}

// out returns output i of an event, checking its size and finiteness.
func (ev *event) out(i, width int) ([]float32, error) {
	if i >= len(ev.outs) {
		return nil, fmt.Errorf("%s layer %d: %d outputs, want at least %d", ev.brick, ev.layer, len(ev.outs), i+1)
	}
	o := ev.outs[i]
	if len(o) != ev.rows*width {
		return nil, fmt.Errorf("%s layer %d: output %d holds %d values, want %d rows x %d", ev.brick, ev.layer, i, len(o), ev.rows, width)
	}
	if s := trace.Summarize(o); !s.Finite() {
		return nil, fmt.Errorf("%s layer %d: output %d has %d NaN and %d Inf of %d values", ev.brick, ev.layer, i, s.NaN, s.Inf, s.N)
	}
	return o, nil
}

// errTracker keeps the largest error relative to a reference's scale.
type errTracker struct {
	worst float64
	where string
}

// add compares got with want (same length): the largest absolute
// difference over the largest |want| (at least floor).
func (t *errTracker) add(got []float32, want []float64, floor float64, where string) {
	scale, diff := floor, 0.0
	for i, w := range want {
		scale = max(scale, math.Abs(w))
		d := math.Abs(float64(got[i]) - w)
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		diff = max(diff, d)
	}
	if r := diff / scale; r > t.worst || math.IsInf(r, 0) {
		t.worst, t.where = r, where
	}
}

// within fails when the worst relative error exceeds tol.
func (t *errTracker) within(tol float64, what string) (string, error) {
	v := fmt.Sprintf("%s: max rel err %.2g (tol %.0g)", what, t.worst, tol)
	if !(t.worst <= tol) {
		return v, fmt.Errorf("%s differs from its recomputation by %.3g (relative) at %s", what, t.worst, t.where)
	}
	return v, nil
}

// tolerance is the relative error allowed for a product with weights of
// type dt: float weights agree closely; quantized ones meet activations
// quantized to 8 bits.
func tolerance(dt tensor.DType) float64 {
	switch dt {
	case tensor.F32:
		return 1e-4
	case tensor.F16, tensor.BF16:
		return 1e-2
	}
	return 6e-2
}

// matrix binds a named weight for recomputation, once checking that every
// value of it decodes to a finite number.
func (c *checker) matrix(name string) (*cpu.Matrix, error) {
	t, ok := c.m.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("missing tensor %s", name)
	}
	w, err := cpu.NewMatrix(t)
	if err != nil {
		return nil, err
	}
	if c.scanned == nil {
		c.scanned = map[string]error{}
	}
	if err, ok := c.scanned[name]; ok {
		return w, err
	}
	row := make([]float32, w.Cols)
	for r := 0; r < w.Rows && c.scanned[name] == nil; r++ {
		w.RowF32(row, r)
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				c.scanned[name] = fmt.Errorf("weight %s holds %g at row %d, column %d", name, v, r, j)
				break
			}
		}
	}
	return w, c.scanned[name]
}

// weights scans the named matrices (suffixes of every layer when perLayer)
// for values that are not finite, before a stage looks at activations, so
// that a bad weight is named rather than the activations it poisoned.
func (c *checker) weights(perLayer bool, names ...string) error {
	for _, n := range names {
		if !perLayer {
			if _, err := c.matrix(n); err != nil {
				return err
			}
			continue
		}
		for li := 0; li < c.cfg.NumLayers; li++ {
			if _, err := c.matrix(model.Layer(li, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// vector decodes a named 1-D weight; a missing optional one gives nil.
func (c *checker) vector(name string, optional bool) ([]float32, error) {
	t, ok := c.m.Tensors[name]
	if !ok {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("missing tensor %s", name)
	}
	v, err := cpu.Vector(t)
	if err != nil {
		return nil, err
	}
	if s := trace.Summarize(v); !s.Finite() {
		return nil, fmt.Errorf("weight %s has %d NaN and %d Inf values", name, s.NaN, s.Inf)
	}
	return v, nil
}

// matVec recomputes rows r of w·x (+ bias) in float64.
func matVec(w *cpu.Matrix, x []float32, bias []float32, rows []int) []float64 {
	out := make([]float64, len(rows))
	buf := make([]float32, w.Cols)
	for i, r := range rows {
		w.RowF32(buf, r)
		var s float64
		for j, v := range buf {
			s += float64(v) * float64(x[j])
		}
		if bias != nil {
			s += float64(bias[r])
		}
		out[i] = s
	}
	return out
}

// all returns 0..n-1.
func all(n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = i
	}
	return r
}

// probeRows are the token rows the projection stages recompute: the first
// and the last.
func (c *checker) probeRows() []int {
	if len(c.ids) < 2 {
		return []int{0}
	}
	return []int{0, len(c.ids) - 1}
}

// projection checks rows of a probed output against w·x (+ bias).
func (c *checker) projection(t *errTracker, weight, biasName string, x []float32, got []float32, where string) error {
	w, err := c.matrix(weight)
	if err != nil {
		return err
	}
	var bias []float32
	if biasName != "" {
		if bias, err = c.vector(biasName, true); err != nil {
			return err
		}
	}
	if w.Cols <= 0 || len(x)%w.Cols != 0 || len(got)%w.Rows != 0 {
		return fmt.Errorf("%s: %dx%d does not fit activations of %d and outputs of %d", weight, w.Rows, w.Cols, len(x), len(got))
	}
	for _, r := range c.probeRows() {
		want := matVec(w, x[r*w.Cols:(r+1)*w.Cols], bias, all(w.Rows))
		t.add(got[r*w.Rows:(r+1)*w.Rows], want, 1e-3, fmt.Sprintf("%s, token %d", where, r))
	}
	return nil
}

// Stage 1: fixed texts encode and decode back unchanged, and the chat
// template's text tokenizes.
func (c *checker) tokenizer() (string, error) {
	tok := c.m.Tokenizer
	if tok == nil {
		return "", errors.New("the model has no tokenizer")
	}
	n := 0
	for _, s := range roundTripTexts {
		ids := tok.Encode(s)
		n += len(ids)
		if len(ids) == 0 {
			return "", fmt.Errorf("%q encodes to no tokens", s)
		}
		for _, id := range ids {
			if id < 0 || id >= c.cfg.VocabSize {
				return "", fmt.Errorf("%q: token id %d outside the vocabulary of %d", s, id, c.cfg.VocabSize)
			}
		}
		if back := tok.Decode(ids); back != s {
			return "", fmt.Errorf("%q decodes back as %q", s, back)
		}
	}
	return fmt.Sprintf("%d/%d texts round-trip, %d tokens", len(roundTripTexts), len(roundTripTexts), n), nil
}

// Stage 2: the embedding brick's rows are the embedding matrix's rows of the
// prompt's ids, finite and of hidden width.
func (c *checker) embedding() (string, error) {
	if err := c.weights(false, model.TokenEmbd); err != nil {
		return "", err
	}
	ev, err := c.find(-1, engine.BrickEmbed, 0)
	if err != nil {
		return "", err
	}
	h := c.cfg.HiddenSize
	x, err := ev.out(0, h)
	if err != nil {
		return "", err
	}
	if ev.rows != len(c.ids) {
		return "", fmt.Errorf("embedded %d rows for %d tokens", ev.rows, len(c.ids))
	}
	w, err := c.matrix(model.TokenEmbd)
	if err != nil {
		return "", err
	}
	row := make([]float32, h)
	for i, id := range c.ids {
		w.RowF32(row, id)
		for j, v := range row {
			if x[i*h+j] != v {
				return "", fmt.Errorf("token %d (id %d): embedding value %d is %g, the matrix row holds %g", i, id, j, x[i*h+j], v)
			}
		}
	}
	s := trace.Summarize(x)
	if s.Min == 0 && s.Max == 0 {
		return "", errors.New("every embedding value is zero")
	}
	return fmt.Sprintf("%d x %d, range [%.3g, %.3g]", ev.rows, h, s.Min, s.Max), nil
}

// Stage 3: the rotated q and k equal a float64 rotation of the projected
// ones by pos * theta^(-2i/d) (position 0 unchanged, norms kept).
func (c *checker) rope() (string, error) {
	var t errTracker
	_, qDim, kvDim, _ := c.cfg.Dims()
	d := c.cfg.HeadDim
	for li := 0; li < c.cfg.NumLayers; li++ {
		pre, err := c.find(li, engine.BrickQKV, 0)
		if err != nil {
			return "", err
		}
		post, err := c.find(li, engine.BrickRope, 0)
		if err != nil {
			return "", err
		}
		for i, width := range []int{qDim, kvDim} {
			a, err := pre.out(i, width)
			if err != nil {
				return "", err
			}
			b, err := post.out(i, width)
			if err != nil {
				return "", err
			}
			want := make([]float64, len(a))
			for r := 0; r < pre.rows; r++ {
				for h := 0; h < width/d; h++ {
					rotate(want[r*width+h*d:r*width+(h+1)*d], a[r*width+h*d:r*width+(h+1)*d], r, c.cfg.RopeTheta)
				}
			}
			t.add(b, want, 1e-3, fmt.Sprintf("layer %d %s", li, []string{"q", "k"}[i]))
		}
	}
	return t.within(1e-3, fmt.Sprintf("q, k of %d layers at positions 0..%d", c.cfg.NumLayers, len(c.ids)-1))
}

// rotate writes the rotate-half RoPE of one head x at position pos into dst.
func rotate(dst []float64, x []float32, pos int, theta float64) {
	half := len(x) / 2
	for i := 0; i < half; i++ {
		ang := float64(pos) * math.Pow(theta, -float64(2*i)/float64(len(x)))
		cs, sn := math.Cos(ang), math.Sin(ang)
		a, b := float64(x[i]), float64(x[i+half])
		dst[i] = a*cs - b*sn
		dst[i+half] = b*cs + a*sn
	}
}

// Stage 4: q, k and v equal W·norm(x) + b recomputed from the weights.
func (c *checker) qkv() (string, error) {
	var t errTracker
	h, qDim, kvDim, _ := c.cfg.Dims()
	tol := 0.0
	if err := c.weights(true, model.AttnQ, model.AttnK, model.AttnV); err != nil {
		return "", err
	}
	for li := 0; li < c.cfg.NumLayers; li++ {
		in, err := c.find(li, engine.BrickNorm, 0)
		if err != nil {
			return "", err
		}
		x, err := in.out(0, h)
		if err != nil {
			return "", err
		}
		ev, err := c.find(li, engine.BrickQKV, 0)
		if err != nil {
			return "", err
		}
		for i, p := range []struct {
			w, b  string
			width int
		}{{model.AttnQ, model.AttnQB, qDim}, {model.AttnK, model.AttnKB, kvDim}, {model.AttnV, model.AttnVB, kvDim}} {
			got, err := ev.out(i, p.width)
			if err != nil {
				return "", err
			}
			bias := ""
			if c.cfg.AttentionBias {
				bias = model.Layer(li, p.b)
			}
			if err := c.projection(&t, model.Layer(li, p.w), bias, x, got, fmt.Sprintf("layer %d %s", li, p.w)); err != nil {
				return "", err
			}
			tol = max(tol, tolerance(c.m.Tensors[model.Layer(li, p.w)].DType))
		}
	}
	return t.within(tol, fmt.Sprintf("%d layers", c.cfg.NumLayers))
}

// Stage 5: softmax(q·k/sqrt(d)) recomputed from the rotated q and k has
// rows summing to 1, and the attention brick's output equals P·V.
func (c *checker) attention() (string, error) {
	var t errTracker
	_, qDim, kvDim, _ := c.cfg.Dims()
	d, heads, group := c.cfg.HeadDim, c.cfg.NumHeads, c.cfg.NumHeads/c.cfg.NumKVHeads
	worstSum := 0.0
	for li := 0; li < c.cfg.NumLayers; li++ {
		qkv, err := c.find(li, engine.BrickQKV, 0)
		if err != nil {
			return "", err
		}
		rope, err := c.find(li, engine.BrickRope, 0)
		if err != nil {
			return "", err
		}
		att, err := c.find(li, engine.BrickScore, 0)
		if err != nil {
			return "", err
		}
		v, err := qkv.out(2, kvDim)
		if err != nil {
			return "", err
		}
		q, err := rope.out(0, qDim)
		if err != nil {
			return "", err
		}
		k, err := rope.out(1, kvDim)
		if err != nil {
			return "", err
		}
		got, err := att.out(0, qDim)
		if err != nil {
			return "", err
		}
		n := rope.rows
		p := make([]float64, n)
		want := make([]float64, d)
		for r := 0; r < n; r++ {
			for hd := 0; hd < heads; hd++ {
				kv := hd / group
				qh := q[r*qDim+hd*d : r*qDim+(hd+1)*d]
				top := math.Inf(-1)
				for j := 0; j <= r; j++ {
					var s float64
					for i, x := range qh {
						s += float64(x) * float64(k[j*kvDim+kv*d+i])
					}
					p[j] = s / math.Sqrt(float64(d))
					top = max(top, p[j])
				}
				var sum float64
				for j := 0; j <= r; j++ {
					p[j] = math.Exp(p[j] - top)
					sum += p[j]
				}
				total := 0.0
				clear(want)
				for j := 0; j <= r; j++ {
					p[j] /= sum
					total += p[j]
					for i := range want {
						want[i] += p[j] * float64(v[j*kvDim+kv*d+i])
					}
				}
				if e := math.Abs(total - 1); !(e <= worstSum) {
					worstSum = e
				}
				t.add(got[r*qDim+hd*d:r*qDim+(hd+1)*d], want, 1e-3, fmt.Sprintf("layer %d head %d token %d", li, hd, r))
			}
		}
	}
	if !(worstSum <= 1e-9) {
		return "", fmt.Errorf("attention probabilities sum to 1 ± %.3g", worstSum)
	}
	v, err := t.within(2e-2, "P·V")
	return fmt.Sprintf("rows sum to 1 ± %.1g; %s", worstSum, v), err
}

// Stage 6: silu(gate·x) * (up·x) and down·(that) equal the MLP bricks.
func (c *checker) mlp() (string, error) {
	var t errTracker
	h, _, _, ffn := c.cfg.Dims()
	tol := 0.0
	if err := c.weights(true, model.FFNGate, model.FFNUp, model.FFNDown); err != nil {
		return "", err
	}
	for li := 0; li < c.cfg.NumLayers; li++ {
		in, err := c.find(li, engine.BrickNorm, 1)
		if err != nil {
			return "", err
		}
		x, err := in.out(0, h)
		if err != nil {
			return "", err
		}
		gu, err := c.find(li, engine.BrickMLPGateUp, 0)
		if err != nil {
			return "", err
		}
		g, err := gu.out(0, ffn)
		if err != nil {
			return "", err
		}
		down, err := c.find(li, engine.BrickMLPDown, 0)
		if err != nil {
			return "", err
		}
		y, err := down.out(0, h)
		if err != nil {
			return "", err
		}
		gate, err := c.matrix(model.Layer(li, model.FFNGate))
		if err != nil {
			return "", err
		}
		up, err := c.matrix(model.Layer(li, model.FFNUp))
		if err != nil {
			return "", err
		}
		if gate.Cols != h || up.Cols != h || gate.Rows != ffn || up.Rows != ffn {
			return "", fmt.Errorf("layer %d: gate %dx%d, up %dx%d, want %dx%d", li, gate.Rows, gate.Cols, up.Rows, up.Cols, ffn, h)
		}
		for _, r := range c.probeRows() {
			a := matVec(gate, x[r*h:(r+1)*h], nil, all(ffn))
			b := matVec(up, x[r*h:(r+1)*h], nil, all(ffn))
			for i := range a {
				a[i] = a[i] / (1 + math.Exp(-a[i])) * b[i]
			}
			t.add(g[r*ffn:(r+1)*ffn], a, 1e-3, fmt.Sprintf("layer %d gate/up, token %d", li, r))
		}
		if err := c.projection(&t, model.Layer(li, model.FFNDown), "", g, y, fmt.Sprintf("layer %d down", li)); err != nil {
			return "", err
		}
		for _, n := range []string{model.FFNGate, model.FFNUp, model.FFNDown} {
			tol = max(tol, tolerance(c.m.Tensors[model.Layer(li, n)].DType))
		}
	}
	return t.within(tol, fmt.Sprintf("%d layers", c.cfg.NumLayers))
}

// Stage 7: every RMSNorm's output equals x / rms(x) * w recomputed from its
// input (the embedding or the residual stream before it).
func (c *checker) norms() (string, error) {
	if c.err != nil {
		return "", fmt.Errorf("not run: %w", c.err)
	}
	var t errTracker
	h := c.cfg.HiddenSize
	for li := 0; li < c.cfg.NumLayers; li++ {
		for _, n := range []string{model.AttnNorm, model.FFNNorm} {
			if _, err := c.vector(model.Layer(li, n), false); err != nil {
				return "", err
			}
		}
	}
	if _, err := c.vector(model.OutputNorm, false); err != nil {
		return "", err
	}
	var stream []float32 // the residual stream's latest value
	count := 0
	seen := map[int]bool{} // layers whose attention norm was checked
	for i := range c.events {
		ev := &c.events[i]
		switch ev.brick {
		case engine.BrickEmbed, engine.BrickResidual:
			x, err := ev.out(0, h)
			if err != nil {
				return "", err
			}
			stream = x
		case engine.BrickNorm:
			y, err := ev.out(0, h)
			if err != nil {
				return "", err
			}
			if stream == nil || len(stream) != len(y) {
				return "", fmt.Errorf("rms_norm in layer %d has %d values, its input %d", ev.layer, len(y), len(stream))
			}
			name := model.OutputNorm
			if ev.layer >= 0 {
				name = model.Layer(ev.layer, model.AttnNorm)
				if seen[ev.layer] {
					name = model.Layer(ev.layer, model.FFNNorm)
				}
				seen[ev.layer] = true
			}
			w, err := c.vector(name, false)
			if err != nil {
				return "", err
			}
			if len(w) != h {
				return "", fmt.Errorf("%s has %d values, want %d", name, len(w), h)
			}
			want := make([]float64, len(y))
			for r := 0; r < ev.rows; r++ {
				x := stream[r*h : (r+1)*h]
				var ss float64
				for _, v := range x {
					ss += float64(v) * float64(v)
				}
				inv := 1 / math.Sqrt(ss/float64(h)+c.cfg.RMSNormEps)
				for j, v := range x {
					want[r*h+j] = float64(v) * inv * float64(w[j])
				}
			}
			t.add(y, want, 1e-3, name)
			count++
		}
	}
	if count != 2*c.cfg.NumLayers+1 {
		return "", fmt.Errorf("the probe saw %d norms, want %d", count, 2*c.cfg.NumLayers+1)
	}
	return t.within(1e-3, fmt.Sprintf("%d norms", count))
}

// Stage 8: the LM head gives vocabulary-sized rows whose entries equal the
// output matrix times the final norm's output.
func (c *checker) lmHead() (string, error) {
	name := model.Output
	if _, ok := c.m.Tensors[name]; !ok {
		name = model.TokenEmbd
	}
	if err := c.weights(false, name); err != nil {
		return "", err
	}
	ev, err := c.find(-1, engine.BrickLMHead, 0)
	if err != nil {
		return "", err
	}
	nv := c.cfg.VocabSize
	if tv := c.m.Tokenizer.VocabSize(); tv > nv {
		return "", fmt.Errorf("the tokenizer has %d tokens, the LM head %d rows", tv, nv)
	}
	logits, err := ev.out(0, nv)
	if err != nil {
		return "", err
	}
	norm, err := c.find(-1, engine.BrickNorm, 0)
	if err != nil {
		return "", err
	}
	x, err := norm.out(0, c.cfg.HiddenSize)
	if err != nil {
		return "", err
	}
	w, err := c.matrix(name)
	if err != nil {
		return "", err
	}
	if w.Rows != nv {
		return "", fmt.Errorf("%s has %d rows, the vocabulary %d", name, w.Rows, nv)
	}
	last := ev.rows - 1
	row := logits[last*nv : (last+1)*nv]
	ids := []int{sample.Argmax(row), 0, nv - 1}
	ids = append(ids, c.ids[:min(8, len(c.ids))]...)
	want := matVec(w, x[last*w.Cols:(last+1)*w.Cols], nil, ids)
	got := make([]float32, len(ids))
	for i, id := range ids {
		got[i] = row[id]
	}
	var t errTracker
	t.add(got, want, 1e-3, name)
	v, err := t.within(tolerance(w.DType), fmt.Sprintf("%d rows x %d", ev.rows, nv))
	return v, err
}

// Stage 9: the logits give finite probabilities summing to 1, and they
// predict the conversation's next tokens far better than chance.
func (c *checker) probs() (string, error) {
	if c.err != nil {
		return "", fmt.Errorf("not run: %w", c.err)
	}
	nv := c.cfg.VocabSize
	n := len(c.ids)
	if len(c.logits) != n*nv {
		return "", fmt.Errorf("%d logits for %d tokens x %d", len(c.logits), n, nv)
	}
	worst, nll := 0.0, 0.0
	for r := 0; r < n; r++ {
		row := c.logits[r*nv : (r+1)*nv]
		top := math.Inf(-1)
		for i, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return "", fmt.Errorf("token %d: logit %d is %g", r, i, v)
			}
			top = max(top, float64(v))
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - top)
		}
		var total float64
		for _, v := range row {
			total += math.Exp(float64(v)-top) / sum
		}
		if e := math.Abs(total - 1); !(e <= worst) {
			worst = e
		}
		if r+1 < n {
			nll += -(float64(row[c.ids[r+1]]) - top - math.Log(sum))
		}
	}
	if !(worst <= 1e-9) {
		return "", fmt.Errorf("probabilities sum to 1 ± %.3g", worst)
	}
	mean := nll / float64(max(n-1, 1))
	chance := math.Log(float64(nv))
	v := fmt.Sprintf("sum to 1 ± %.1g; %.2f nats per token of the check conversation (chance %.2f)", worst, mean, chance)
	if mean > maxNLLShare*chance {
		return v, fmt.Errorf("the model predicts its own chat conversation at %.2f nats per token, worse than %.0f%% of chance (%.2f): weights are scrambled", mean, 100*maxNLLShare, chance)
	}
	return v, nil
}

// maxNLLShare bounds the mean negative log-likelihood of the check
// conversation as a share of a uniform guess's.
const maxNLLShare = 0.35

// Stage 10: greedy decoding of a question picks the argmax and decodes to
// non-empty, valid text.
func (c *checker) decode() (string, error) {
	text, err := c.m.Template.Render(chat.Request{Messages: []chat.Message{{Role: "user", Content: question}}, AddGenerationPrompt: true})
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	ids := c.m.Tokenizer.Encode(text)
	logits, err := c.e.NewSequence(len(ids)+1).Forward(ids, false)
	if err != nil {
		return "", fmt.Errorf("forward pass: %w", err)
	}
	if st := trace.Summarize(logits); !st.Finite() {
		return "", fmt.Errorf("the question's logits hold %d NaN and %d Inf values: nothing to sample from", st.NaN, st.Inf)
	}
	want := sample.Argmax(logits)
	seq := c.e.NewSequence(len(ids) + 17)
	var out strings.Builder
	st, err := seq.Generate(context.Background(), ids, engine.GenerateOptions{
		MaxTokens: 16,
		Sampler:   sample.New(sample.Params{Temperature: 0}),
		EOS:       c.m.EOS(),
		Decoder:   c.m.Tokenizer.NewDecoder(),
	}, func(s string) error { out.WriteString(s); return nil })
	if err != nil {
		return "", fmt.Errorf("generate: %w", err)
	}
	answer := out.String()
	v := fmt.Sprintf("%q (%d tokens, %s)", answer, st.Tokens, st.StopReason)
	switch {
	case len(st.Output) > 0 && st.Output[0] != want:
		return v, fmt.Errorf("the greedy sampler picked id %d, the logits' argmax is %d", st.Output[0], want)
	case len(st.Output) == 0 && st.StopReason != "eos":
		return v, errors.New("no token generated")
	case strings.TrimSpace(answer) == "":
		return v, errors.New("the greedy answer decodes to empty text")
	case !utf8.ValidString(answer) || strings.ContainsRune(answer, utf8.RuneError):
		return v, errors.New("the greedy answer holds invalid UTF-8 or U+FFFD")
	}
	return v, nil
}
