//go:build unix

package mmap

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestMap(t *testing.T) {
	want := bytes.Repeat([]byte("apr model bytes "), 4096)
	path := filepath.Join(t.TempDir(), "m.bin")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	data, unmap, err := Map(f.Fd(), len(want))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Error("mapped bytes differ from the file's")
	}
	if err := unmap(); err != nil {
		t.Error(err)
	}
	for _, size := range []int{0, -1} {
		if _, _, err := Map(f.Fd(), size); err == nil {
			t.Errorf("Map(size %d) = nil error", size)
		}
	}
}
