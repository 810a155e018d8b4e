package engine

import (
	"context"
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/convert"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/tensor"
)

// writeF16GGUF converts the shared SafeTensors model to an F16 GGUF in a
// temporary folder, as `apr convert DIR --format gguf --type f16` does.
func writeF16GGUF(t *testing.T) (string, *convert.Model) {
	t.Helper()
	src, err := convert.Open(testref.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	ft, err := convert.ParseFileType("f16")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "qwen2-tiny-coder-f16.gguf")
	if _, err := convert.WriteGGUF(context.Background(), path, src, ft); err != nil {
		t.Fatal(err)
	}
	return path, src
}

// TestConvertF16GGUFMatchesReferences is the GGUF issue's F16 item: the F16
// GGUF apr writes from the SafeTensors model matches llama.cpp's run on its
// own F16 file (llamacpp_outputs.json "f16") and transformers' greedy
// continuations (hf_outputs.json), and its tensors are what llama.cpp's
// converter writes.
func TestConvertF16GGUFMatchesReferences(t *testing.T) {
	path, src := writeF16GGUF(t)
	m, e := openModel(t, path)
	if m.Format != "gguf" {
		t.Fatalf("format %q, want gguf", m.Format)
	}
	t.Run("tensors", func(t *testing.T) { checkConverterTensors(t, m.Tensors, src) })
	t.Run("llama.cpp", func(t *testing.T) { compareWithLlamaCpp(t, e, "f16") })
	t.Run("transformers", func(t *testing.T) { compareGreedyWithTransformers(t, e) })
}

// greedyRef is one prompt's reference greedy continuation.
type greedyRef struct {
	name, kind string
	tokens     []int
	greedy     []int
	top2       [][][2]float64
}

func transformersRefs(t *testing.T) []greedyRef {
	var refs []greedyRef
	for _, p := range testref.HFOutputs(t) {
		refs = append(refs, greedyRef{p.Name, p.Kind, p.TokenIDs, p.Greedy32, p.Greedy32Top2})
	}
	return refs
}

func llamaCppRefs(t *testing.T, key string) []greedyRef {
	kinds := map[string]string{}
	for _, p := range testref.HFOutputs(t) {
		kinds[p.Name] = p.Kind
	}
	var refs []greedyRef
	for _, p := range testref.LlamaCppOutputs(t, key) {
		refs = append(refs, greedyRef{p.Name, kinds[p.Name], p.LlamaTokens, p.Greedy32, p.Greedy32Top2})
	}
	return refs
}

// compareGreedyWithTransformers checks 32 greedy steps of every prompt
// against hf_outputs.json (see compareGreedy).
// The F16 file runs with llama.cpp's numerics, and llama.cpp's own F16 run
// equals transformers' greedy continuations for all 11 prompts: so must
// apr's, strictly (no near-tie allowance).
func compareGreedyWithTransformers(t *testing.T, e *Engine) {
	t.Helper()
	for _, p := range transformersRefs(t) {
		got, _, err := greedy(e, p.tokens, len(p.greedy))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, p.greedy) {
			t.Errorf("%s: greedy32 %v, transformers %v", p.name, got, p.greedy)
		}
	}
}

// compareGreedy checks 32 greedy steps of every prompt against a
// reference. A continuation may leave the reference's only at a near tie
// (top-2 logits within nearTie in apr or in the reference: on the tiny
// model's raw_fim prompt they are 0.0006 apart at step 20 in transformers,
// closer than F16 weights can resolve), and never inside a chat answer.
func compareGreedy(t *testing.T, e *Engine, refName string, refs []greedyRef) {
	t.Helper()
	identical := 0
	for _, p := range refs {
		got, gaps, err := greedy(e, p.tokens, len(p.greedy))
		if err != nil {
			t.Fatal(err)
		}
		step := -1
		for i := range got {
			if got[i] != p.greedy[i] {
				step = i
				break
			}
		}
		if step < 0 {
			identical++
			continue
		}
		ref := p.top2[step]
		refGap := math.Abs(ref[0][1] - ref[1][1])
		answered := slices.ContainsFunc(p.greedy[:step], isEOS)
		switch {
		case p.kind == "chat" && !answered:
			t.Errorf("%s: chat answer differs from %s at step %d: apr %d, %s %d", p.name, refName, step, got[step], refName, p.greedy[step])
		case gaps[step] > nearTie && refGap > nearTie:
			t.Errorf("%s: greedy differs from %s at step %d (apr %d, %s %d) and it is no near tie: top-2 gap %.4f in apr, %.4f in %s",
				p.name, refName, step, got[step], refName, p.greedy[step], gaps[step], refGap, refName)
		default:
			t.Logf("%s: greedy leaves %s at step %d, after the answer or at a near tie (top-2 gap %.4f in apr, %.4f in %s)",
				p.name, refName, step, gaps[step], refGap, refName)
		}
	}
	t.Logf("greedy32 identical to %s for %d of %d prompts", refName, identical, len(refs))
}

// greedy decodes n tokens after ids, always taking the largest logit, and
// returns them with the gap between the two best logits at each step.
func greedy(e *Engine, ids []int, n int) ([]int, []float64, error) {
	seq := e.NewSequence(len(ids) + n)
	logits, err := seq.Forward(ids, false)
	if err != nil {
		return nil, nil, err
	}
	var out []int
	var gaps []float64
	for range n {
		id, a, _, b := top2(logits)
		out = append(out, id)
		gaps = append(gaps, float64(a-b))
		if logits, err = seq.Forward([]int{id}, false); err != nil {
			return nil, nil, err
		}
	}
	return out, gaps, nil
}

// checkConverterTensors checks the written tensors against what
// convert_hf_to_gguf.py --outtype f16 produces: 1-D tensors (norms, biases)
// F32 and byte-identical to llama.cpp's own conversion (read from the shared
// Q8_0 file, where llama-quantize left them untouched); every 2-D weight,
// token_embd included, F16 holding each BF16 value rounded to the nearest
// half, ties to even (numpy's astype(float16) after torch's widening).
func checkConverterTensors(t *testing.T, got map[string]*tensor.Tensor, src *convert.Model) {
	q8, err := convert.Open(testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer q8.Close()
	if len(got) != len(src.Tensors) {
		t.Errorf("%d tensors written, the source has %d", len(got), len(src.Tensors))
	}
	for _, s := range src.Tensors {
		g, ok := got[s.Name]
		if !ok {
			t.Errorf("%s: missing", s.Name)
			continue
		}
		if !slices.Equal(g.Shape, s.Shape) {
			t.Errorf("%s: shape %v, source %v", s.Name, g.Shape, s.Shape)
		}
		if len(s.Shape) == 1 {
			ref, ok := q8.Tensor(s.Name)
			if !ok || ref.DType != tensor.F32 {
				t.Fatalf("%s: no F32 tensor in llama.cpp's file", s.Name)
			}
			if g.DType != tensor.F32 || !slices.Equal(g.Data, ref.Data) {
				t.Errorf("%s: %v, not byte-identical to llama.cpp's F32", s.Name, g.DType)
			}
			continue
		}
		if g.DType != tensor.F16 {
			t.Errorf("%s: %v, want F16", s.Name, g.DType)
			continue
		}
		if s.DType != tensor.BF16 {
			t.Fatalf("%s: source is %v, the test expects BF16", s.Name, s.DType)
		}
		for i := 0; i < len(s.Data); i += 2 {
			x := float64(tensor.BF16ToF32(binary.LittleEndian.Uint16(s.Data[i:])))
			h := binary.LittleEndian.Uint16(g.Data[i:])
			if !nearestHalf(x, h) {
				t.Fatalf("%s: element %d: %g became half %#04x (%g), not the nearest half", s.Name, i/2, x, h, tensor.F16ToF32(h))
			}
		}
	}
}

// nearestHalf reports whether half h is x rounded to nearest, ties to even,
// by comparing it with its neighbours (an independent check of rounding,
// not a second implementation of it).
func nearestHalf(x float64, h uint16) bool {
	v := float64(tensor.F16ToF32(h))
	if math.IsInf(v, 0) || math.IsNaN(v) || math.Signbit(v) != math.Signbit(x) && x != 0 {
		return false
	}
	d := math.Abs(x - v)
	for _, n := range []uint16{h - 1, h + 1} {
		if n&0x7c00 == 0x7c00 || (n^h)&0x8000 != 0 {
			continue
		}
		dn := math.Abs(x - float64(tensor.F16ToF32(n)))
		if dn < d || (dn == d && n&1 == 0) {
			return false
		}
	}
	return true
}

// TestConversionPathsGreedy is the APR issue's six paths, each giving its
// source's greedy continuations. Three paths compute differently from
// anything else tested and run here:
//   - import (SafeTensors -> APR, Q/K/V fused in the file) against
//     transformers;
//   - GGUF -> APR (Q8_0 blocks kept) against llama.cpp on the Q8_0 file;
//   - GGUF -> SafeTensors (Q8_0 dequantized to float32) against llama.cpp on
//     the Q8_0 file.
//
// The other three give tensors byte-identical to a model tested elsewhere
// (convert's TestSafeTensorsAPRSafeTensors, TestGGUFAPRGGUF,
// TestHFToQuantizedGGUF), and SafeTensors -> GGUF F16 is
// TestConvertF16GGUFMatchesReferences.
func TestConversionPathsGreedy(t *testing.T) {
	dir := t.TempDir()
	open := func(t *testing.T, path string) *convert.Model {
		m, err := convert.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	q8 := testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf")
	t.Run("import", func(t *testing.T) {
		path := filepath.Join(dir, "import.apr")
		if err := convert.WriteAPR(context.Background(), path, open(t, testref.ModelDir(t)), convert.APROptions{FuseQKV: true}); err != nil {
			t.Fatal(err)
		}
		_, e := openModel(t, path)
		compareGreedy(t, e, "transformers", transformersRefs(t))
	})
	t.Run("gguf to apr", func(t *testing.T) {
		path := filepath.Join(dir, "q8_0.apr")
		if err := convert.WriteAPR(context.Background(), path, open(t, q8), convert.APROptions{}); err != nil {
			t.Fatal(err)
		}
		m, err := format.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		// The APR file remembers that its weights came from GGUF, so it
		// runs with llama.cpp's numerics.
		o := OptionsFor(m, 0)
		if !o.KVCacheF16 || o.Rope != cpu.RopeGGML {
			t.Fatalf("APR from GGUF (origin %q) gets options %+v, want llama.cpp's numerics", m.Origin, o)
		}
		e, err := New(m.Config, m.Tensors, o)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		compareGreedy(t, e, "llama.cpp q8_0", llamaCppRefs(t, "q8_0"))
	})
	t.Run("gguf to safetensors", func(t *testing.T) {
		path := filepath.Join(dir, "q8_0-hf")
		if _, err := convert.WriteSafeTensors(context.Background(), path, open(t, q8)); err != nil {
			t.Fatal(err)
		}
		_, e := openModel(t, path)
		compareGreedy(t, e, "llama.cpp q8_0", llamaCppRefs(t, "q8_0"))
	})
}
