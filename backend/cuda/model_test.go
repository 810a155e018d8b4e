package cuda_test

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/sample"
)

// skipWithoutGPU skips on machines without a CUDA driver (CI).
func skipWithoutGPU(t testing.TB) {
	t.Helper()
	if ok, why := cuda.Available(); !ok {
		t.Skipf("skipping CUDA test: %s", why)
	}
}

// tinyModels are the shared model files, relative to the shared folder.
var tinyModels = []string{
	"models/qwen2-tiny-coder",
	"models/qwen2-tiny-coder-gguf/qwen2-tiny-coder-q8_0.gguf",
	"models/qwen2-tiny-coder-gguf/qwen2-tiny-coder-q4_k_m.gguf",
}

// tinyCase is a shared model file and the KV cache type it runs with.
type tinyCase struct {
	rel   string
	cache engine.CacheType
}

// name is the case's subtest name: the file's, and the cache type's
// unless it is the model's default.
func (c tinyCase) name() string {
	if c.cache == engine.CacheDefault {
		return filepath.Base(c.rel)
	}
	return filepath.Base(c.rel) + "-" + string(c.cache)
}

// tinyCases are tinyModels with their default KV cache, and the
// SafeTensors model over an F16 cache (--cache-type-k f16: F16 storage with
// transformers' attention, ggml's flash attention off), whose few-row
// passes run attn_f16_dec and the split without ggml's numerics.
var tinyCases = func() []tinyCase {
	var cs []tinyCase
	for _, rel := range tinyModels {
		cs = append(cs, tinyCase{rel, engine.CacheDefault})
	}
	return append(cs, tinyCase{tinyModels[0], engine.CacheF16})
}()

// nearTie is the top-2 logit gap under which a greedy divergence is blamed
// on summation order when the CPU runs quant's assembly kernels.
const nearTie = 0.05

// openBothCache opens a model file and binds it to the CPU engine and the
// GPU (options as cuda.OptionsFor, then tune when not nil), both sides'
// KV caches of type cache (engine.CacheDefault: the model's).
func openBothCache(t testing.TB, rel string, ctx int, cache engine.CacheType, tune func(*cuda.Options)) (*model.Model, *engine.Engine, *cuda.Model) {
	t.Helper()
	m, err := format.Open(testref.Path(t, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	eo := engine.OptionsFor(m, 0).WithCache(cache)
	e, err := engine.New(m.Config, m.Tensors, eo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	o := cuda.OptionsFor(m, ctx)
	o.Numerics = eo.Numerics
	if tune != nil {
		tune(&o)
	}
	g, err := cuda.Load(m, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return m, e, g
}

// decodePrompt decodes ids on g token by token from position 0, as passes
// of rows rows for ggml's attention choice (SetBatchRows), and returns the
// last position's logits.
func decodePrompt(t *testing.T, g *cuda.Model, ids []int, rows int) []float32 {
	t.Helper()
	g.SetBatchRows(rows)
	var got []float32
	for i, id := range ids {
		var err error
		if got, err = g.Decode(id, i); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// forwardCPU runs ids through a new sequence of e in one pass, with room
// for 40 more tokens, and returns it and the last position's logits.
func forwardCPU(t *testing.T, e *engine.Engine, ids []int) (*engine.Sequence, []float32) {
	t.Helper()
	seq := e.NewSequence(len(ids) + 40)
	logits, err := seq.Forward(ids, false)
	if err != nil {
		t.Fatal(err)
	}
	return seq, logits
}

// top2 returns the best two logits' ids and values.
func top2(l []float32) (int, float32, int, float32) {
	a, b := -1, -1
	for i, v := range l {
		switch {
		case a < 0 || v > l[a]:
			b, a = a, i
		case b < 0 || v > l[b]:
			b = i
		}
	}
	return a, l[a], b, l[b]
}

// TestDecodeMatchesCPU runs every reference prompt through the GPU decode
// step token by token and through the CPU engine, for every shared model
// file: the last position's logits must agree within 1e-2 x max|logit|,
// and the 32-step greedy continuations must be identical.
//
// For quantized files that holds when both sides sum floats in the same
// order: the GPU kernels reproduce quant's portable Go kernels, so build
// the test with -tags purego on the GPU machine. Otherwise (quant's AVX2
// kernels) a one-ulp difference occasionally moves an 8-bit activation
// quant by one step, which moves logits by up to a few percent (llama.cpp's
// own CPU logits move as much between batch sizes); the test then allows
// 5e-2 x max|logit| and greedy divergence at near ties (top-2 within
// nearTie), and logs them.
//
// Each file runs with both KV cache types (--cache-type-k): its
// reference's and the other. GGUF weights over a float32 cache (no ggml
// flash attention) sum the attention in another order on each side, so
// their 8-bit activations may differ by a step as without -tags purego:
// those take the looser bars.
func TestDecodeMatchesCPU(t *testing.T) {
	skipWithoutGPU(t)
	prompts := testref.HFOutputs(t)
	for _, rel := range tinyModels {
		for _, cache := range []engine.CacheType{engine.CacheF32, engine.CacheF16} {
			t.Run(filepath.Base(rel)+"/"+string(cache), func(t *testing.T) { decodeMatchesCPU(t, prompts, rel, cache) })
		}
	}
}

// decodeMatchesCPU is TestDecodeMatchesCPU for one file and cache type.
func decodeMatchesCPU(t *testing.T, prompts []testref.Prompt, rel string, cache engine.CacheType) {
	ctx := 0
	for _, p := range prompts {
		ctx = max(ctx, len(p.TokenIDs)+40)
	}
	m, e, g := openBothCache(t, rel, ctx, cache, nil)
	strict := m.Format != "gguf" || portableCPU && cache == engine.CacheF16
	tol := 1e-2
	if !strict {
		tol = 5e-2
	}
	worstRatio := 0.0
	for _, p := range prompts {
		ids := p.TokenIDs
		seq, want := forwardCPU(t, e, ids)
		got := decodePrompt(t, g, ids, len(ids)) // the CPU forwards the prompt in one pass
		ratio := logitRatio(got, want)           // +Inf where got has a NaN
		worstRatio = max(worstRatio, ratio)
		if ratio > tol {
			t.Errorf("%s: last-position logits differ by %.3g x max|logit| (> %g)", p.Name, ratio, tol)
		}
		// Greedy continuation, 32 steps, past EOS as in the reference.
		ct, gt := sample.Argmax(want), sample.Argmax(got)
		same := 0
		pos := len(ids)
		for step := 0; step < 32; step++ {
			if ct != gt {
				a, av, b, bv := top2(want)
				msg := fmt.Sprintf("%s: greedy step %d: GPU %d, CPU %d (CPU top-2 %d %.4f / %d %.4f)", p.Name, step, gt, ct, a, av, b, bv)
				if strict || av-bv >= nearTie {
					t.Error(msg)
				} else {
					t.Log(msg + ": a near tie")
				}
				break
			}
			same++
			g.SetBatchRows(1)
			var err error
			if want, err = seq.Forward([]int{ct}, false); err != nil {
				t.Fatal(err)
			}
			ct = sample.Argmax(want)
			if gt, err = g.DecodeArgmax(gt, pos); err != nil {
				t.Fatal(err)
			}
			pos++
		}
		t.Logf("%-28s logits |diff| %.3g x max|logit|; greedy GPU == CPU for %d steps", p.Name, ratio, same)
	}
	t.Logf("worst last-position logit difference: %.3g x max|logit|", worstRatio)
}

// TestGraphMatchesDirect checks that replaying the captured decode step
// gives the same logits, bit for bit, as launching its kernels one by one.
func TestGraphMatchesDirect(t *testing.T) {
	skipWithoutGPU(t)
	p := testref.HFOutputs(t)[0]
	for _, rel := range tinyModels {
		m, err := format.Open(testref.Path(t, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		var out [2][]float32
		for i, noGraph := range []bool{false, true} {
			o := cuda.OptionsFor(m, len(p.TokenIDs))
			o.NoGraph = noGraph
			g, err := cuda.Load(m, o)
			if err != nil {
				t.Fatal(err)
			}
			for pos, id := range p.TokenIDs {
				if out[i], err = g.Decode(id, pos); err != nil {
					t.Fatal(err)
				}
			}
			g.Close()
		}
		for i := range out[0] {
			if math.Float32bits(out[0][i]) != math.Float32bits(out[1][i]) {
				t.Fatalf("%s: logit %d: graph %v, direct %v", rel, i, out[0][i], out[1][i])
			}
		}
	}
}

// BenchmarkDecode measures the GPU decode step (token in, greedy token out,
// one host synchronisation) of each shared model at positions 0..255, by
// graph replay and by launching kernel by kernel.
func BenchmarkDecode(b *testing.B) {
	skipWithoutGPU(b)
	for _, rel := range tinyModels {
		for _, noGraph := range []bool{false, true} {
			name := filepath.Base(rel) + "/graph"
			if noGraph {
				name = filepath.Base(rel) + "/direct"
			}
			b.Run(name, func(b *testing.B) {
				m, err := format.Open(testref.Path(b, filepath.FromSlash(rel)))
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				o := cuda.OptionsFor(m, 256)
				o.NoGraph = noGraph
				g, err := cuda.Load(m, o)
				if err != nil {
					b.Fatal(err)
				}
				defer g.Close()
				tok := 9707
				for i := 0; i < 16; i++ { // warm-up (and graph capture)
					if tok, err = g.DecodeArgmax(tok, i); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if tok, err = g.DecodeArgmax(tok, i%256); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}
