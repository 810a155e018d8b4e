package safetensors

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/tensor"
)

// realTensors copies some tensors of the shared model out of its mapping.
func realTensors(t *testing.T) []*tensor.Tensor {
	t.Helper()
	f, err := Open(filepath.Join(testref.ModelDir(t), SingleFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*tensor.Tensor
	for _, tn := range f.Tensors() {
		if strings.HasPrefix(tn.Name, "model.layers.0.") || tn.Name == "model.norm.weight" {
			out = append(out, &tensor.Tensor{Name: tn.Name, DType: tn.DType, Shape: tn.Shape, Data: bytes.Clone(tn.Data)})
		}
	}
	if len(out) != 13 {
		t.Fatalf("took %d tensors from the shared model, want 13", len(out))
	}
	return out
}

// writeSharded writes tensors into dir as two shards and an index.
func writeSharded(t *testing.T, dir string, tensors []*tensor.Tensor) map[string]string {
	t.Helper()
	const s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	half := len(tensors) / 2
	if err := WriteFile(filepath.Join(dir, s1), tensors[:half], map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, s2), tensors[half:], map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	wm := map[string]string{}
	for i, tn := range tensors {
		if i < half {
			wm[tn.Name] = s1
		} else {
			wm[tn.Name] = s2
		}
	}
	writeIndex(t, dir, wm)
	return wm
}

func writeIndex(t *testing.T, dir string, wm map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 12345}, "weight_map": wm})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDirSharded(t *testing.T) {
	want := realTensors(t)
	dir := t.TempDir()
	writeSharded(t, dir, want)

	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := len(s.Files()); n != 2 {
		t.Errorf("%d files, want 2", n)
	}
	equalTensors(t, s.Tensors(), want)
	for _, w := range want {
		g, ok := s.Tensor(w.Name)
		if !ok || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("Tensor(%q) = %v, %v", w.Name, ok, g)
		}
	}
	if _, ok := s.Tensor("lm_head.weight"); ok {
		t.Error("unexpected lm_head.weight")
	}
	if s.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", s.Metadata())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDirErrors(t *testing.T) {
	tensors := sample()[:4] // a.weight, b.bias, c.f16, d.f64
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"empty folder", func(t *testing.T, dir string) {}, "no model.safetensors.index.json or model.safetensors"},
		{"path escape", func(t *testing.T, dir string) {
			writeSharded(t, dir, tensors)
			writeIndex(t, dir, map[string]string{"a.weight": "../evil.safetensors"})
		}, `shard name "../evil.safetensors" escapes`},
		{"nested path escape", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"a.weight": "sub/../../evil.safetensors"})
		}, "escapes the model folder"},
		{"absolute path", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"a.weight": filepath.Join(dir, "x.safetensors")})
		}, "escapes the model folder"},
		{"backslash path", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"a.weight": `..\evil.safetensors`})
		}, "escapes the model folder"},
		{"empty shard name", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"a.weight": ""})
		}, "escapes the model folder"},
		{"missing shard", func(t *testing.T, dir string) {
			wm := writeSharded(t, dir, tensors)
			wm["extra"] = "model-00003-of-00003.safetensors"
			writeIndex(t, dir, wm)
		}, `shard "model-00003-of-00003.safetensors" is missing`},
		{"tensor not in its shard", func(t *testing.T, dir string) {
			wm := writeSharded(t, dir, tensors)
			wm["ghost.weight"] = wm["a.weight"]
			writeIndex(t, dir, wm)
		}, `tensor "ghost.weight": the index puts it in shard "model-00001-of-00002.safetensors", found in no shard`},
		{"tensor in the other shard", func(t *testing.T, dir string) {
			wm := writeSharded(t, dir, tensors)
			wm["a.weight"] = "model-00002-of-00002.safetensors"
			writeIndex(t, dir, wm)
		}, `tensor "a.weight": the index puts it in shard "model-00002-of-00002.safetensors", found in shard "model-00001-of-00002.safetensors"`},
		{"tensor in two shards", func(t *testing.T, dir string) {
			wm := writeSharded(t, dir, tensors)
			if err := WriteFile(filepath.Join(dir, "dup.safetensors"), tensors[:1], nil); err != nil {
				t.Fatal(err)
			}
			wm["b.bias"] = "dup.safetensors" // keep the new shard referenced
			writeIndex(t, dir, wm)
		}, `tensor "a.weight" is in two shards`},
		{"duplicate weight_map entry", func(t *testing.T, dir string) {
			writeSharded(t, dir, tensors)
			idx := `{"weight_map":{"a.weight":"model-00001-of-00002.safetensors","a.weight":"model-00002-of-00002.safetensors"}}`
			if err := os.WriteFile(filepath.Join(dir, IndexFileName), []byte(idx), 0o644); err != nil {
				t.Fatal(err)
			}
		}, `tensor "a.weight" listed twice`},
		{"bad index JSON", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "malformed JSON"},
		{"index without weight_map", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"metadata":{}}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "no weight_map"},
		{"empty weight_map", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{})
		}, "empty weight_map"},
		{"shard value not string", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":{"a":1}}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a string"},
		{"corrupt shard", func(t *testing.T, dir string) {
			wm := writeSharded(t, dir, tensors)
			if err := os.WriteFile(filepath.Join(dir, wm["a.weight"]), []byte("garbage!garbage!"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "model-00001-of-00002.safetensors: header length 2406443243860549991 exceeds the"},
		{"corrupt single file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, SingleFileName), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "0 bytes, shorter than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			s, err := OpenDir(dir)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the folder or file", err)
			}
		})
	}
}

func TestOpenDirSymlinkedShards(t *testing.T) {
	// The Hugging Face cache links snapshot files into a blobs folder: links
	// that leave the folder are followed, only the names are checked.
	root := t.TempDir()
	blobs, snap := filepath.Join(root, "blobs"), filepath.Join(root, "snapshot")
	for _, d := range []string{blobs, snap} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := sample()
	if err := WriteFile(filepath.Join(blobs, "abc123"), want, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "blobs", "abc123"), filepath.Join(snap, SingleFileName)); err != nil {
		t.Fatal(err)
	}
	s, err := OpenDir(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	equalTensors(t, s.Tensors(), want)
}
