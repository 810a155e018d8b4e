package gguf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/apr-llm/apr/internal/mmap/mmaptest"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// TestOpenPopulate shows that Open leaves a cold file's tensor data on disk
// (it reads the header and metadata alone) while OpenWith Populate reads it
// all in.
func TestOpenPopulate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.gguf")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	big := f32Tensor(model.OutputNorm, []int{16 << 20}, func(i int) float32 { return float32(i % 251) }) // 64 MiB
	if err := Write(w, []KV{{"general.architecture", "qwen2"}}, []*tensor.Tensor{big}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mmaptest.CheckPopulate(t, path, func(populate bool) ([]byte, func(), error) {
		f, err := OpenWith(path, Options{Populate: populate})
		if err != nil {
			return nil, nil, err
		}
		d, ok := f.Tensor(model.OutputNorm)
		if !ok {
			f.Close()
			return nil, nil, errors.New("tensor missing")
		}
		return d.Data, func() { f.Close() }, nil
	})
}
