package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/format/gguf"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// The per-tensor types the benchmark writes are llama-quantize's: applied
// to the shared tiny model's tensors, they reproduce the types of the files
// llama.cpp's own llama-quantize made from it.
func TestTypesMatchLlamaQuantize(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testref.ModelDir(t), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := model.ParseHFConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		kind fileKind
	}{
		{"qwen2-tiny-coder-q4_k_m.gguf", kindQ4KM},
		{"qwen2-tiny-coder-q8_0.gguf", kindQ8_0},
	} {
		t.Run(c.kind.Name, func(t *testing.T) {
			f, err := gguf.Open(testref.Path(t, "models", "qwen2-tiny-coder-gguf", c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			kinds := map[tensor.DType]int{}
			for _, ts := range f.Tensors() {
				got := c.kind.typeFor(cfg, ts.Name, ts.Shape, layerOf(ts.Name))
				if got != ts.DType {
					t.Errorf("%s %v: bench writes %v, llama-quantize wrote %v", ts.Name, ts.Shape, got, ts.DType)
				}
				kinds[ts.DType]++
			}
			if len(kinds) < 2 {
				t.Errorf("only types %v: the file does not exercise the mixture", kinds)
			}
		})
	}
}

// A small model written as each file kind loads through format.Open with
// the configured shape, runs without NaN, and every file holds the same
// weights (the quantized embedding stays near the BF16 one).
func TestWriteModelTiny(t *testing.T) {
	s := qwenShape("tiny", "tiny", 2, 128, 512, 2, 1)
	v, err := loadVocab(testref.ModelDir(t), s.Cfg.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var bf16Row []float32
	for _, k := range []fileKind{kindBF16, kindF16, kindQ8_0, kindQ4KM} {
		t.Run(k.Name, func(t *testing.T) {
			path := k.path(dir, s)
			if err := writeModel(path, s, k, v, 7); err != nil {
				t.Fatal(err)
			}
			m, err := format.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			c := m.Config
			if c.NumLayers != 2 || c.HiddenSize != 128 || c.IntermediateSize != 512 || c.NumHeads != 2 ||
				c.NumKVHeads != 1 || c.VocabSize != 151936 || !c.AttentionBias || c.RopeTheta != 1e6 {
				t.Fatalf("config read back: %+v", c)
			}
			if _, ok := m.Tensors[model.Output]; ok {
				t.Error("lm_head written: embeddings should be tied")
			}
			if k.typeFor != nil {
				for name, ts := range m.Tensors {
					if want := k.typeFor(&s.Cfg, name, ts.Shape, layerOf(name)); ts.DType != want {
						t.Errorf("%s is %v, want %v", name, ts.DType, want)
					}
				}
			}
			eng, err := engine.New(c, m.Tensors, engine.OptionsFor(m, 1))
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			logits, err := eng.NewSequence(16).Forward([]int{1, 100, 1000, 151000}, false)
			if err != nil {
				t.Fatal(err)
			}
			for i, x := range logits {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("logit %d is %v", i, x)
				}
			}
			emb := m.Tensors[model.TokenEmbd]
			row := make([]float32, c.HiddenSize)
			if err := quant.Dequantize(emb.DType, emb.Row(12345), row); err != nil {
				t.Fatal(err)
			}
			if bf16Row == nil {
				bf16Row = row
				return
			}
			var num, den float64
			for i := range row {
				d := float64(row[i] - bf16Row[i])
				num += d * d
				den += float64(bf16Row[i]) * float64(bf16Row[i])
			}
			if rel := math.Sqrt(num / den); rel > 0.02 {
				t.Errorf("embedding row differs from the BF16 file's by %.3f (relative RMS)", rel)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// The report marks each target met or not from the medians, and says which
// cases were not measured.
func TestReportVerdicts(t *testing.T) {
	run := func(engine string, prompt, decode float64) *runResult {
		return &runResult{Engine: engine, PromptTokens: 128, PromptSeconds: 128 / prompt,
			DecodeTokens: 128, DecodeSeconds: 128 / decode, PeakRSSBytes: 500 << 20}
	}
	c := []benchCase{
		{Shape: shapes[0], APR: kindQ4KM, Llama: kindQ4KM, WeightBytes: 400 << 20, LlamaBytes: 400 << 20,
			APRSum: summarize([]*runResult{run("apr", 100, 36)}),
			LSum:   summarize([]*runResult{run("llama.cpp", 110, 30)})},
		{Shape: shapes[1], APR: kindQ8_0, Llama: kindQ8_0, Err: "timed out"},
	}
	r := &report{Threads: 2, Reps: 1, PromptLen: 128, NPredict: 128, Bandwidth: 10e9, Bandwidth1: 6e9, Cases: c,
		LoadStart: "0.5 0.5 0.5", Load: "3.0 1.0 1.0", CPU: cpuInfo{Model: "test", Logical: 2}}
	var b strings.Builder
	if err := r.write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| 0.5B | Q4_K_M | 36.00 | 30.00 | 1.20x | met | 100.0 | 110.0 | 0.91x | **not met** |",
		"| 1.5B | Q8_0 | | | | not measured |",
		"this case stopped after 0 runs: `timed out`",
		"**The machine was busy**",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestParseCPUInfo(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       cpuInfo
	}{
		{"two cpus", "processor\t: 0\nmodel name\t: Xeon X\nflags\t\t: fpu avx2 fma avx512f\n\nprocessor\t: 1\nmodel name\t: Xeon X\nflags\t\t: fpu\n",
			cpuInfo{"Xeon X", 2, []string{"avx2", "fma", "avx512f"}}},
		{"empty", "", cpuInfo{}},
		{"no colon", "garbage\nmore", cpuInfo{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := parseCPUInfo(c.text)
			if got.Model != c.want.Model || got.Logical != c.want.Logical || !slices.Equal(got.Features, c.want.Features) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// FuzzParseCPUInfo: any text parses without a panic, counting one
// processor per "processor" line.
func FuzzParseCPUInfo(f *testing.F) {
	f.Add("processor\t: 0\nmodel name\t: Xeon\nflags\t: avx2 fma\n")
	f.Add(":\n::\nprocessor:\nflags:")
	f.Fuzz(func(t *testing.T, text string) {
		ci := parseCPUInfo(text)
		n := 0
		for _, line := range strings.Split(text, "\n") {
			if k, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "processor" {
				n++
			}
		}
		if ci.Logical != n {
			t.Fatalf("%d processors, want %d", ci.Logical, n)
		}
	})
}
