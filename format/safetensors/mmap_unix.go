//go:build unix

package safetensors

import (
	"os"

	"github.com/apr-llm/apr/internal/mmap"
)

// mapFile maps size (> 0) bytes of f read-only and returns the bytes and the
// function that unmaps them.
func mapFile(f *os.File, size int) ([]byte, func([]byte) error, error) {
	data, unmap, err := mmap.Map(f.Fd(), size)
	if err != nil {
		return nil, nil, err
	}
	return data, func([]byte) error { return unmap() }, nil
}
