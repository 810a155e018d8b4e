package check

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apr-llm/apr/convert"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/internal/breakmodel"
	"github.com/apr-llm/apr/internal/enginetest"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
)

// open loads a model bound to an engine.
func open(t *testing.T, path string, mutate func(m *model.Model)) (*model.Model, *engine.Engine) {
	t.Helper()
	return enginetest.Open(t, path, mutate)
}

// TestHealthyModelsPass: the tiny model passes every stage as SafeTensors
// and as llama.cpp's Q4_K_M GGUF.
func TestHealthyModelsPass(t *testing.T) {
	for _, path := range []string{
		testref.ModelDir(t),
		testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q4_k_m.gguf"),
	} {
		t.Run(path, func(t *testing.T) {
			m, eng := open(t, path, nil)
			r, err := Run(m, eng)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_ = r.WriteTable(&b)
			t.Log("\n" + b.String())
			if !r.Pass || len(r.Stages) != 10 {
				t.Errorf("want 10 passing stages, failed: %v", r.Failed())
			}
		})
	}
}

// brokenCopy writes a copy of the tiny SafeTensors model with mut applied
// and opens it.
func brokenCopy(t *testing.T, mut breakmodel.Mutation) (*model.Model, *engine.Engine) {
	t.Helper()
	dir := t.TempDir()
	if err := breakmodel.Copy(testref.ModelDir(t), dir, mut); err != nil {
		t.Fatal(err)
	}
	return open(t, dir, nil)
}

// TestBrokenModelsFail: a NaN planted in one weight, or two tensors of a
// layer swapped, make check fail, naming the stage (and the weight, where a
// weight is at fault).
func TestBrokenModelsFail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mut   breakmodel.Mutation
		stage int
		want  string // in the failing stage's detail
	}{
		{"NaN in down_proj", breakmodel.PlantNaN(model.Layer(1, model.FFNDown), 777), 6, model.Layer(1, model.FFNDown)},
		{"NaN in q_proj", breakmodel.PlantNaN(model.Layer(2, model.AttnQ), 5), 4, model.Layer(2, model.AttnQ)},
		{"NaN in a norm", breakmodel.PlantNaN(model.Layer(0, model.FFNNorm), 3), 7, model.Layer(0, model.FFNNorm)},
		{"q_proj and o_proj swapped", breakmodel.Swap(model.Layer(0, model.AttnQ), model.Layer(0, model.AttnO)), 9, "scrambled"},
		{"layers 1 and 2 MLP down swapped", breakmodel.Swap(model.Layer(1, model.FFNDown), model.Layer(2, model.FFNDown)), 9, "scrambled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, eng := brokenCopy(t, tc.mut)
			r, err := Run(m, eng)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_ = r.WriteTable(&b)
			t.Log("\n" + b.String())
			if r.Pass {
				t.Fatal("check passed a broken model")
			}
			s := r.Stages[tc.stage-1]
			if s.Pass || !strings.Contains(s.Detail, tc.want) {
				t.Errorf("stage %d %s: pass %v, detail %q; want a failure naming %q", s.N, s.Name, s.Pass, s.Detail, tc.want)
			}
			if !strings.Contains(b.String(), fmt.Sprintf("FAILED: %d %s", s.N, s.Name)) && !strings.Contains(b.String(), fmt.Sprintf(", %d %s", s.N, s.Name)) {
				t.Errorf("the verdict does not name stage %q", s.Name)
			}
		})
	}
}

// TestAPRIntegrity: an APR copy of the tiny model passes with its embedded
// checksums verified; the same file with one byte of tensor data flipped
// fails the integrity check while it still loads.
func TestAPRIntegrity(t *testing.T) {
	src, err := convert.Open(testref.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.apr")
	if err := convert.WriteAPR(context.Background(), path, src, convert.APROptions{}); err != nil {
		t.Fatal(err)
	}
	for _, flip := range []bool{false, true} {
		if flip {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-100] ^= 0x01 // inside the last tensor's data
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m, eng := open(t, path, nil)
		r, err := Run(m, eng)
		if err != nil {
			t.Fatal(err)
		}
		if r.IntegrityOK == flip || r.Pass == flip || r.Integrity == "" {
			t.Errorf("flipped %v: integrity ok %v (%s), pass %v", flip, r.IntegrityOK, r.Integrity, r.Pass)
		}
	}
}
