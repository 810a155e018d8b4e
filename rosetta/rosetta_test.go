package rosetta

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apr-llm/apr/convert"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
)

const prompt = "<|im_start|>user\nWhat is 2+2? Answer with just the number.<|im_end|>\n<|im_start|>assistant\n"

func side(t *testing.T, path string) Side {
	t.Helper()
	m, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e, err := engine.New(m.Config, m.Tensors, engine.OptionsFor(m, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return Side{m, e}
}

var (
	derivedOnce           sync.Once
	derivedQ4, derivedAPR string
	derivedErr            error
	derivedDir            string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if derivedDir != "" {
		os.RemoveAll(derivedDir)
	}
	os.Exit(code)
}

// derived writes the shared SafeTensors model as a Q4_0 GGUF and as an
// APR copy, once for all tests.
func derived(t *testing.T) (q4, aprPath string) {
	t.Helper()
	modelDir := testref.ModelDir(t)
	derivedOnce.Do(func() {
		src, err := convert.Open(modelDir)
		if err != nil {
			derivedErr = err
			return
		}
		defer src.Close()
		if derivedDir, derivedErr = os.MkdirTemp("", "rosetta-test-"); derivedErr != nil {
			return
		}
		derivedQ4, derivedAPR = filepath.Join(derivedDir, "q4_0.gguf"), filepath.Join(derivedDir, "copy.apr")
		ft, err := convert.ParseFileType("q4_0")
		if err != nil {
			derivedErr = err
			return
		}
		if _, derivedErr = convert.WriteGGUF(context.Background(), derivedQ4, src, ft); derivedErr != nil {
			return
		}
		derivedErr = convert.WriteAPR(context.Background(), derivedAPR, src, convert.APROptions{FuseQKV: true})
	})
	if derivedErr != nil {
		t.Fatal(derivedErr)
	}
	return derivedQ4, derivedAPR
}

// TestCompareInference: the SafeTensors model against its Q4_0 GGUF
// diverges (a threshold is crossed, and the first diverging stage is
// named); against its own APR copy nothing diverges and every stage is
// exact.
func TestCompareInference(t *testing.T) {
	q4, aprPath := derived(t)
	st := side(t, testref.ModelDir(t))
	t.Run("q4_0", func(t *testing.T) {
		r, err := CompareInference(st, side(t, q4), prompt, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.Stages {
			t.Logf("%-12s max abs %.4g rel %.4g cos %.6f diverged %v %s", s.Name, s.MaxAbsDiff, s.RelDiff, s.Cosine, s.Diverged, s.Note)
		}
		if r.FirstDivergence == "" {
			t.Fatal("no divergence reported against Q4_0")
		}
		// llama.cpp's rules make a tied token embedding Q6_K, here Q8_0
		// (rows of 128), so the embedding is already inexact.
		if r.FirstDivergence != "embedding" {
			t.Errorf("first divergence %q, want embedding (the quantized token embedding)", r.FirstDivergence)
		}
		if r.Stages[0].Diverged {
			t.Error("tokenization diverged: the GGUF carries the same tokenizer")
		}
	})
	t.Run("apr copy", func(t *testing.T) {
		r, err := CompareInference(st, side(t, aprPath), prompt, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		if r.FirstDivergence != "" {
			t.Errorf("first divergence %q against its own APR copy", r.FirstDivergence)
		}
		for _, s := range r.Stages {
			if s.MaxAbsDiff != 0 {
				t.Errorf("%s: max abs diff %g, want 0", s.Name, s.MaxAbsDiff)
			}
		}
		if len(r.Stages) != 1+1+st.Model.Config.NumLayers+1 || r.ArgmaxA != r.ArgmaxB {
			t.Errorf("%d stages, argmax %d/%d", len(r.Stages), r.ArgmaxA, r.ArgmaxB)
		}
	})
}

func TestCompareStage(t *testing.T) {
	cases := []struct {
		name     string
		a, b     []float32
		diverged bool
	}{
		{"equal", []float32{1, -2, 3}, []float32{1, -2, 3}, false},
		{"tiny", []float32{1000, 1}, []float32{1000, 1.5}, false},
		{"large", []float32{1, 2}, []float32{1, 2.5}, true},
		{"length", []float32{1}, []float32{1, 2}, true},
		{"nan", []float32{1}, []float32{float32(nan())}, true},
	}
	for _, c := range cases {
		if s := compare(c.name, c.a, c.b, 1e-3); s.Diverged != c.diverged {
			t.Errorf("%s: diverged %v, want %v (%+v)", c.name, s.Diverged, c.diverged, s)
		}
	}
}

func nan() float64 { var z float64; return z / z }

// TestDiff: the SafeTensors model and its APR copy are identical tensor for
// tensor; against the shared Q8_0 GGUF every matrix differs by a small
// amount and nothing is missing.
func TestDiff(t *testing.T) {
	_, aprPath := derived(t)
	open := func(p string) *convert.Model {
		m, err := convert.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	st := open(testref.ModelDir(t))
	ds, err := Diff(st, open(aprPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if !d.Identical || d.Problem != "" {
			t.Errorf("APR copy: %+v", d)
		}
	}
	ds, err = Diff(st, open(testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf")))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		switch {
		case d.Problem != "":
			t.Errorf("%s: %s", d.Name, d.Problem)
		case strings.HasSuffix(d.Name, "proj.weight") && (d.MaxAbsDiff == 0 || d.MaxAbsDiff > 0.05):
			t.Errorf("%s: max abs diff %g against Q8_0", d.Name, d.MaxAbsDiff)
		}
	}
}
