package safetensors

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/apr-llm/apr/internal/mmap/mmaptest"
	"github.com/apr-llm/apr/tensor"
)

// TestOpenPopulate shows that OpenDir leaves a cold file's tensor data on
// disk (it reads the header alone) while OpenDirWith Populate reads it all in.
func TestOpenPopulate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SingleFileName)
	big := &tensor.Tensor{Name: "big.weight", DType: tensor.I8, Shape: []int{64 << 20}, Data: make([]byte, 64<<20)}
	for i := range big.Data {
		big.Data[i] = byte(i % 251)
	}
	if err := WriteFile(path, []*tensor.Tensor{big}, nil); err != nil {
		t.Fatal(err)
	}
	mmaptest.CheckPopulate(t, path, func(populate bool) ([]byte, func(), error) {
		s, err := OpenDirWith(dir, Options{Populate: populate})
		if err != nil {
			return nil, nil, err
		}
		d, ok := s.Tensor("big.weight")
		if !ok {
			s.Close()
			return nil, nil, errors.New("tensor missing")
		}
		return d.Data, func() { s.Close() }, nil
	})
}
