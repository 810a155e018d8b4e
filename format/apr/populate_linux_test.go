package apr

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apr-llm/apr/internal/mmap/mmaptest"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// TestOpenPopulate shows that Open leaves a cold file's tensor data on disk
// (it reads the header, metadata and index alone) while Options.Populate
// reads it all in.
func TestOpenPopulate(t *testing.T) {
	md, ts := tiny()
	i := slices.IndexFunc(ts, func(t *tensor.Tensor) bool { return t.Name == model.Layer(0, model.FFNUp) })
	ts[i] = &tensor.Tensor{Name: ts[i].Name, DType: tensor.F32, Shape: []int{32, 512 << 10}, Data: make([]byte, 64<<20)} // 64 MiB
	for j := range ts[i].Data {
		ts[i].Data[j] = byte(j % 251)
	}
	path := filepath.Join(t.TempDir(), "big.apr")
	if err := os.WriteFile(path, write(t, md, ts, WriteOptions{}), 0o644); err != nil {
		t.Fatal(err)
	}
	name := ts[i].Name
	mmaptest.CheckPopulate(t, path, func(populate bool) ([]byte, func(), error) {
		f, err := Open(path, Options{Populate: populate})
		if err != nil {
			return nil, nil, err
		}
		j := slices.IndexFunc(f.Tensors(), func(t *tensor.Tensor) bool { return t.Name == name })
		if j < 0 {
			f.Close()
			return nil, nil, errors.New("tensor missing")
		}
		return f.Tensors()[j].Data, func() { f.Close() }, nil
	})
}
