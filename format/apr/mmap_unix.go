//go:build unix

package apr

import (
	"fmt"
	"os"

	"github.com/apr-llm/apr/internal/mmap"
)

// mapFile maps a regular, non-empty file read-only; the returned function
// unmaps it.
func mapFile(path string) ([]byte, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("apr: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("apr: %w", err)
	case !st.Mode().IsRegular() || st.Size() == 0 || st.Size() > int64(maxInt):
		return nil, nil, fmt.Errorf("apr: %s: %w: not a regular file of 1 to %d bytes", path, ErrInvalid, maxInt)
	}
	data, unmap, err := mmap.Map(f.Fd(), int(st.Size()))
	if err != nil {
		return nil, nil, fmt.Errorf("apr: %s: %w", path, err)
	}
	return data, unmap, nil
}
