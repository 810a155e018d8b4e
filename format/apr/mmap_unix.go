//go:build unix

package apr

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps path read-only. The returned function unmaps it.
func mapFile(path string) ([]byte, func() error, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("apr: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("apr: %w", err)
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("apr: %s: %w: not a regular file", path, ErrInvalid)
	}
	if size == 0 {
		return nil, nil, fmt.Errorf("apr: %s: %w: empty file", path, ErrInvalid)
	}
	if size > int64(maxInt) {
		return nil, nil, fmt.Errorf("apr: %s: file of %d bytes is too large to map", path, size)
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("apr: %s: mmap: %w", path, err)
	}
	return data, func() error { return unix.Munmap(data) }, nil
}
