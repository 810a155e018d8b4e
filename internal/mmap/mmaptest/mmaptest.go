//go:build linux

// Package mmaptest helps tests tell which pages of a file mapping are in
// memory: Cold drops a file from the page cache and Resident counts a
// mapping's resident pages with mincore(2).
package mmaptest

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Cold syncs the file at path and drops it from the page cache. It skips
// the test where the page cache keeps the file (tmpfs, for one), since
// residency then tells nothing.
func Cold(t testing.TB, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Skipf("posix_fadvise: %v", err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	if n, total := Resident(t, b); n > total/8 {
		t.Skipf("the page cache keeps %d of %d pages of %s after POSIX_FADV_DONTNEED: residency cannot be told here", n, total, path)
	}
}

// Resident returns how many of the pages that b spans are in memory, and
// how many it spans. b must lie in a mapping.
func Resident(t testing.TB, b []byte) (n, total int) {
	t.Helper()
	if len(b) == 0 {
		return 0, 0
	}
	ps := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	first := start &^ (ps - 1)
	length := start + uintptr(len(b)) - first
	vec := make([]byte, (length+ps-1)/ps)
	// x/sys has no Mincore wrapper.
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, first, length, uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	for _, v := range vec {
		n += int(v & 1)
	}
	return n, len(vec)
}

// CheckPopulate opens the file at path cold through open, lazily and then
// populated, and fails t unless the lazy opening leaves at least half of the
// bytes open returns on disk and the populated one has them all in memory.
// open returns the bytes to look at (a tensor's data, say) and the function
// that closes what it opened.
func CheckPopulate(t *testing.T, path string, open func(populate bool) ([]byte, func(), error)) {
	t.Helper()
	for _, populate := range []bool{false, true} {
		Cold(t, path)
		data, closeFn, err := open(populate)
		if err != nil {
			t.Fatal(err)
		}
		n, total := Resident(t, data)
		closeFn()
		t.Logf("populate %v: %d of %d pages resident after open", populate, n, total)
		if populate && n != total || !populate && n > total/2 {
			t.Errorf("populate %v: %d of %d pages resident after open, want all: %v", populate, n, total, populate)
		}
	}
}
