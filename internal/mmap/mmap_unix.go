//go:build unix

package mmap

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapOpen maps the first size (> 0) bytes of f read-only, populated when
// asked; f may be closed once it returns.
func mapOpen(f *os.File, size int, populate bool) ([]byte, func() error, error) {
	flags := unix.MAP_SHARED
	if populate {
		flags |= populateFlag
	}
	data, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, flags)
	if err != nil {
		return nil, nil, err
	}
	if populate && populateFlag == 0 {
		// No MAP_POPULATE here: start the read-ahead at least.
		_ = unix.Madvise(data, unix.MADV_WILLNEED)
	}
	return data, func() error { return unix.Munmap(data) }, nil
}
