package mmap

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("apr model bytes "), 4096)
	full := filepath.Join(dir, "m.bin")
	empty := filepath.Join(dir, "empty.bin")
	for p, b := range map[string][]byte{full: want, empty: nil} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		path    string
		want    []byte
		wantErr error // nil: no error
	}{
		{"file", full, want, nil},
		{"empty file", empty, nil, nil},
		{"missing", filepath.Join(dir, "nope.bin"), nil, fs.ErrNotExist},
		{"directory", dir, nil, ErrUnmappable},
	}
	for _, tt := range tests {
		for _, populate := range []bool{false, true} {
			data, unmap, err := File(tt.path, populate)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("%s, populate %v: error %v, want %v", tt.name, populate, err, tt.wantErr)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s, populate %v: %v", tt.name, populate, err)
				continue
			}
			if !bytes.Equal(data, tt.want) {
				t.Errorf("%s, populate %v: mapped bytes differ from the file's", tt.name, populate)
			}
			if err := unmap(); err != nil {
				t.Errorf("%s, populate %v: unmap: %v", tt.name, populate, err)
			}
		}
	}
}
