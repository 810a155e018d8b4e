//go:build unix

package mmap

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Map maps the first size (> 0) bytes of the open file fd read-only and
// returns them with the function that unmaps them. The file may be closed
// once Map returns.
func Map(fd uintptr, size int) ([]byte, func() error, error) {
	if size <= 0 {
		return nil, nil, fmt.Errorf("mmap: size %d", size)
	}
	data, err := unix.Mmap(int(fd), 0, size, unix.PROT_READ, unix.MAP_SHARED|populate)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	if populate == 0 {
		// Start the read-ahead at least (no MAP_POPULATE here).
		_ = unix.Madvise(data, unix.MADV_WILLNEED)
	}
	return data, func() error { return unix.Munmap(data) }, nil
}
