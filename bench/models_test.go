package main

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/format/gguf"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/quant"
)

// A model of the shared tiny coder's dimensions, written as each file kind,
// loads through format.Open with that shape, runs without NaN, holds the same
// weights in every file (the embedding rows stay near the BF16 ones), and
// its GGUFs have, tensor for tensor, the types that llama.cpp's own
// llama-quantize gave the shared tiny model's files.
func TestWriteModelTiny(t *testing.T) {
	s := qwenShape("tiny", "tiny", 4, 128, 512, 2, 1)
	v, err := loadVocab(testref.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var bf16Row []float32
	for _, c := range []struct {
		kind fileKind
		ref  string // llama.cpp's file of the same type
	}{
		{kindBF16, ""},
		{kindF16, ""},
		{kindQ8_0, "qwen2-tiny-coder-q8_0.gguf"},
		{kindQ4KM, "qwen2-tiny-coder-q4_k_m.gguf"},
	} {
		t.Run(c.kind.Name, func(t *testing.T) {
			if err := writeModel(dir, s, c.kind, v, 7); err != nil {
				t.Fatal(err)
			}
			m, err := format.Open(c.kind.path(dir, s))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			cfg := m.Config
			if cfg.NumLayers != 4 || cfg.HiddenSize != 128 || cfg.IntermediateSize != 512 || cfg.NumHeads != 2 ||
				cfg.NumKVHeads != 1 || cfg.VocabSize != 151936 || !cfg.AttentionBias || cfg.RopeTheta != 1e6 {
				t.Fatalf("config read back: %+v", cfg)
			}
			if _, ok := m.Tensors[model.Output]; ok {
				t.Error("lm_head written: embeddings should be tied")
			}
			if c.ref != "" {
				ref, err := gguf.Open(testref.Path(t, "models", "qwen2-tiny-coder-gguf", c.ref))
				if err != nil {
					t.Fatal(err)
				}
				defer ref.Close()
				for _, rt := range ref.Tensors() {
					if got, ok := m.Tensors[rt.Name]; !ok || got.DType != rt.DType {
						t.Errorf("%s: bench wrote %v, llama-quantize %v", rt.Name, got, rt.DType)
					}
				}
			}
			eng, err := engine.New(cfg, m.Tensors, engine.OptionsFor(m, 1))
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
			row := make([]float32, cfg.HiddenSize)
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
		LoadStart: "0.5 0.5 0.5", Load: "4.5 1.0 1.0", CPU: cpuInfo{Model: "test", Logical: 2}}
	var b strings.Builder
	if err := r.write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| 0.5B | Q4_K_M | 36.00 | 30.00 | 1.20x | met | 100.0 | 110.0 | 0.90x | **not met** |",
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

func TestBusy(t *testing.T) {
	for _, c := range []struct {
		load  string
		limit int
		want  bool
	}{
		{"0.09 0.95 1.83", 2, false},
		{"2.06 1.83 1.94", 4, false}, // the end of a 2-thread run on 2 CPUs
		{"4.50 1.00 1.00", 4, true},
		{"2.01 0.1 0.1", 2, true},
		{"garbage", 2, false},
	} {
		if got := busy(c.load, c.limit); got != c.want {
			t.Errorf("busy(%q, %d) = %v, want %v", c.load, c.limit, got, c.want)
		}
	}
}

// A figure printed beside its verdict is rounded down: a share just short of
// the target must not print as the target.
func TestFloorFixed(t *testing.T) {
	for _, c := range []struct {
		v        float64
		decimals int
		want     string
	}{
		{100 * 882.0 / 1775, 1, "49.6"}, // the 1.5B Q8_0's share that once printed as "50%"
		{100 * 0.49999, 1, "49.9"},
		{1.1999, 2, "1.19"},
		{1.18, 2, "1.18"}, // exact decimals stay as they are
		{590.0 / 500, 2, "1.18"},
		{36.0 / 30, 2, "1.20"},
		{3.2, 2, "3.20"},
		{53.0, 0, "53"},
	} {
		if got := floorFixed(c.v, c.decimals); got != c.want {
			t.Errorf("floorFixed(%v, %d) = %q, want %q", c.v, c.decimals, got, c.want)
		}
	}
}
