//go:build unix

package gguf

import (
	"fmt"
	"os"

	"github.com/apr-llm/apr/internal/mmap"
)

// mapFile maps path read-only. The returned function unmaps it.
func mapFile(path string) ([]byte, func() error, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("gguf: %s: %w: not a regular file", path, ErrInvalid)
	}
	if size == 0 {
		return nil, nil, fmt.Errorf("gguf: %s: %w: empty file", path, ErrInvalid)
	}
	if size > int64(maxInt) {
		return nil, nil, fmt.Errorf("gguf: %s: file of %d bytes is too large to map", path, size)
	}
	data, unmap, err := mmap.Map(fd.Fd(), int(size))
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	return data, unmap, nil
}
