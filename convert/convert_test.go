package convert

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// f16GGUF writes apr's F16 GGUF of the shared SafeTensors model and opens it.
func f16GGUF(t *testing.T) *Model {
	t.Helper()
	src, err := Open(testref.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), "f16.gguf")
	if _, err := WriteGGUF(context.Background(), path, src, mustType(t, "f16")); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mustType(t *testing.T, name string) FileType {
	t.Helper()
	ft, err := ParseFileType(name)
	if err != nil {
		t.Fatal(err)
	}
	return ft
}

// TestQuantizeMatchesLlamaQuantize: quantizing apr's own F16 GGUF of the
// tiny model gives, tensor by tensor, the types and bytes of the files
// llama-quantize made from llama.cpp's F16 GGUF (for Q4_K_M: its mixture
// and its fallbacks for rows of 128).
func TestQuantizeMatchesLlamaQuantize(t *testing.T) {
	f16 := f16GGUF(t)
	for _, c := range []struct{ typ, file string }{
		{"Q8_0", "qwen2-tiny-coder-q8_0.gguf"},
		{"Q4_K_M", "qwen2-tiny-coder-q4_k_m.gguf"},
	} {
		t.Run(c.typ, func(t *testing.T) {
			ref, err := Open(testref.Path(t, "models", "qwen2-tiny-coder-gguf", c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			path := filepath.Join(t.TempDir(), "q.gguf")
			r, err := WriteGGUF(context.Background(), path, f16, mustType(t, c.typ))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("fallbacks: %q", r.Fallbacks)
			got, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			compareTensors(t, got, ref)
			// The same tensors in an APR file (apr quantize -o m.apr).
			q, err := Quantize(context.Background(), f16, mustType(t, c.typ))
			if err != nil {
				t.Fatal(err)
			}
			aprPath := filepath.Join(t.TempDir(), "q.apr")
			if err := WriteAPR(context.Background(), aprPath, q, APROptions{FuseQKV: true}); err != nil {
				t.Fatal(err)
			}
			a, err := Open(aprPath)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			compareTensors(t, a, ref)
		})
	}
}

// compareTensors requires the same tensors, in the same order, with the
// same types, shapes and bytes.
func compareTensors(t *testing.T, got, want *Model) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("%d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for i, w := range want.Tensors {
		g := got.Tensors[i]
		switch {
		case g.Name != w.Name:
			t.Errorf("tensor %d is %s, want %s", i, g.Name, w.Name)
		case g.DType != w.DType:
			t.Errorf("%s: %v, want %v", w.Name, g.DType, w.DType)
		case !slices.Equal(g.Shape, w.Shape):
			t.Errorf("%s: shape %v, want %v", w.Name, g.Shape, w.Shape)
		case !slices.Equal(g.Data, w.Data):
			t.Errorf("%s (%v): bytes differ", w.Name, w.DType)
		}
	}
}
