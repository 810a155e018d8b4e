package mmap

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/apr-llm/apr/internal/mmap/mmaptest"
)

// TestPopulateResidency shows, with mincore(2), that a lazy mapping of a file
// that is not in the page cache reads (almost) nothing when only its first
// bytes are read, as a metadata reader reads them, while a populated mapping
// has every page resident when File returns.
func TestPopulateResidency(t *testing.T) {
	const size = 64 << 20 // well above a device's read-ahead (128 KiB to 8 MiB)
	path := filepath.Join(t.TempDir(), "cold.bin")
	if err := os.WriteFile(path, bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, size/8), 0o644); err != nil {
		t.Fatal(err)
	}
	mmaptest.CheckPopulate(t, path, func(populate bool) ([]byte, func(), error) {
		data, unmap, err := File(path, populate)
		if err != nil {
			return nil, nil, err
		}
		if !bytes.Equal(data[:8], []byte{1, 2, 3, 4, 5, 6, 7, 8}) { // the header, as a metadata reader reads it
			t.Error("mapped bytes differ from the file's")
		}
		return data, func() { _ = unmap() }, nil
	})
}
