package mmap

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPopulateResidency shows, with mincore(2), that a lazy mapping of a file
// that is not in the page cache reads (almost) nothing when only its first
// bytes are touched, as a metadata reader touches them, while a populated
// mapping has every page resident when File returns.
func TestPopulateResidency(t *testing.T) {
	const size = 64 << 20 // well above a device's read-ahead (often 128 KiB to 8 MiB)
	path := filepath.Join(t.TempDir(), "cold.bin")
	writeCold(t, path, size)
	if n := resident(t, rawMap(t, path, size)); n > pages(size)/8 {
		t.Skipf("the page cache keeps %d of %d pages after POSIX_FADV_DONTNEED on this filesystem: residency cannot be told", n, pages(size))
	}
	tests := []struct {
		name     string
		populate bool
		min, max int // resident pages allowed
	}{
		{"lazy", false, 0, pages(size) / 2}, // the read-ahead around the header
		{"populate", true, pages(size), pages(size)},
	}
	for _, tt := range tests {
		evict(t, path)
		data, unmap, err := File(path, tt.populate)
		if err != nil {
			t.Fatal(err)
		}
		header := bytes.Clone(data[:4096]) // read as a metadata reader reads it
		n := resident(t, data)
		if err := unmap(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d of %d pages resident (header %x...)", tt.name, n, pages(size), header[:4])
		if n < tt.min || n > tt.max {
			t.Errorf("%s: %d of %d pages resident after File, want %d to %d", tt.name, n, pages(size), tt.min, tt.max)
		}
	}
}

// writeCold writes size random bytes to path, syncs them and drops them from
// the page cache.
func writeCold(t *testing.T, path string, size int) {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	evict(t, path)
}

// evict drops the clean, unmapped pages of path from the page cache.
func evict(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Skipf("posix_fadvise: %v", err)
	}
}

// rawMap maps path without File and without touching it, unmapping it at the
// test's end.
func rawMap(t *testing.T, path string, size int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(b) })
	return b
}

func pages(size int) int {
	ps := os.Getpagesize()
	return (size + ps - 1) / ps
}

// resident counts the pages of the mapping b that are in memory.
func resident(t *testing.T, b []byte) int {
	t.Helper()
	vec := make([]byte, pages(len(b)))
	// x/sys has no Mincore wrapper.
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}
