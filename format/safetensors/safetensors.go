// Package safetensors reads and writes Hugging Face SafeTensors files: an
// 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw tensor bytes.
//
// Open maps a file read-only into memory and returns tensors whose Data are
// views of that mapping; nothing is copied. Every size, offset and count in the
// header is validated before any tensor byte is trusted, and a malformed file
// yields one error (a *FormatError) naming the file and the problem.
//
// OpenDir opens a Hugging Face model folder, sharded
// (model.safetensors.index.json) or not (model.safetensors), behind the same
// API. Write produces files the Python library reads.
package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/apr-llm/apr/internal/mmap"
	"github.com/apr-llm/apr/tensor"
)

// MaxHeaderSize is the largest JSON header accepted (100 MB, as the Python
// library allows); a larger length is taken as a corrupt file.
const MaxHeaderSize = 100 << 20

// MetadataKey is the reserved header key holding the free-form string
// metadata.
const MetadataKey = "__metadata__"

// FormatError reports a malformed SafeTensors file (or model folder).
type FormatError struct {
	Path    string // the file or folder
	Problem string // what is wrong, in words
	Err     error  // underlying cause, if any
}

// Error returns "safetensors: <path>: <problem>[: <cause>]".
func (e *FormatError) Error() string {
	s := "safetensors: " + e.Path + ": " + e.Problem
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(path string, err error, format string, args ...any) *FormatError {
	return &FormatError{Path: path, Problem: fmt.Sprintf(format, args...), Err: err}
}

// File is one parsed SafeTensors file. Its tensors' Data slices alias the
// file's bytes (the memory mapping for Open); they must not be modified and
// must not be used after Close.
type File struct {
	path     string
	data     []byte
	unmap    func() error     // nil when data is not a mapping
	tensors  []*tensor.Tensor // sorted by name
	byName   map[string]*tensor.Tensor
	metadata map[string]string
}

// Options tune OpenWith and OpenDirWith.
type Options struct {
	// Populate reads the whole file in at open (MAP_POPULATE), for a caller
	// about to compute with the weights; without it pages are read when
	// first touched, so reading the header reads little more.
	Populate bool
}

// Open memory-maps the SafeTensors file at path read-only, lazily, and
// parses it. The file must not be truncated or rewritten while open (the
// mapping would fault).
func Open(path string) (*File, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, opts Options) (*File, error) {
	data, unmap, err := mmap.File(path, opts.Populate)
	if errors.Is(err, mmap.ErrUnmappable) {
		return nil, formatErr(path, nil, "%v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := Parse(path, data)
	if err != nil {
		_ = unmap()
		return nil, err
	}
	st.unmap = unmap
	return st, nil
}

// Parse parses SafeTensors bytes; name is used in error messages only. The
// returned tensors alias data, which must stay unchanged while they are in use.
func Parse(name string, data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, formatErr(name, nil, "file is %d bytes, shorter than the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHeaderSize {
		return nil, formatErr(name, nil, "header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, formatErr(name, nil, "header length %d runs past the end of the %d-byte file", n, len(data))
	}
	hdr := data[8 : 8+n]
	body := data[8+n:]
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, formatErr(name, err, "bad header")
	}
	st := &File{
		path:     name,
		data:     data,
		byName:   make(map[string]*tensor.Tensor, len(h.entries)),
		metadata: h.metadata,
	}
	if st.metadata == nil {
		st.metadata = map[string]string{}
	}
	// Check each entry against the data area, then for overlaps.
	for i := range h.entries {
		e := &h.entries[i]
		if e.begin > e.end {
			return nil, formatErr(name, nil, "tensor %q: data_offsets [%d, %d] begin after end", e.name, e.begin, e.end)
		}
		if e.end > uint64(len(body)) {
			return nil, formatErr(name, nil, "tensor %q: data_offsets [%d, %d] past the end of the %d-byte data area", e.name, e.begin, e.end, len(body))
		}
		nel, err := tensor.NumElements(e.shape)
		if err != nil {
			return nil, formatErr(name, err, "tensor %q", e.name)
		}
		want, err := e.dtype.RowBytes(nel)
		if err != nil {
			return nil, formatErr(name, err, "tensor %q", e.name)
		}
		if got := e.end - e.begin; got != uint64(want) {
			return nil, formatErr(name, nil, "tensor %q: shape %v of %v needs %d bytes, data_offsets [%d, %d] hold %d",
				e.name, e.shape, e.dtype, want, e.begin, e.end, got)
		}
	}
	order := make([]*entry, len(h.entries))
	for i := range h.entries {
		order[i] = &h.entries[i]
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].begin != order[j].begin {
			return order[i].begin < order[j].begin
		}
		return order[i].end < order[j].end
	})
	for i := 1; i < len(order); i++ {
		prev, cur := order[i-1], order[i]
		if cur.begin < prev.end {
			return nil, formatErr(name, nil, "tensors %q [%d, %d] and %q [%d, %d] overlap",
				prev.name, prev.begin, prev.end, cur.name, cur.begin, cur.end)
		}
	}
	for i := range h.entries {
		e := &h.entries[i]
		b, en := int(e.begin), int(e.end)
		t := &tensor.Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: body[b:en:en]}
		st.tensors = append(st.tensors, t)
		st.byName[e.name] = t
	}
	slices.SortFunc(st.tensors, func(a, b *tensor.Tensor) int { return strings.Compare(a.Name, b.Name) })
	return st, nil
}

// Path returns the name the file was opened or parsed under.
func (f *File) Path() string { return f.path }

// Tensors returns the file's tensors sorted by name. The slice is a copy; the
// tensors are shared.
func (f *File) Tensors() []*tensor.Tensor { return slices.Clone(f.tensors) }

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (*tensor.Tensor, bool) {
	t, ok := f.byName[name]
	return t, ok
}

// Metadata returns a copy of the header's __metadata__ (empty, never nil, when
// absent).
func (f *File) Metadata() map[string]string { return maps.Clone(f.metadata) }

// Close releases the memory mapping. The tensors' Data must not be used
// afterwards. Closing twice is harmless.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	unmap := f.unmap
	f.unmap, f.data = nil, nil
	for _, t := range f.tensors {
		t.Data = nil // fail loudly (empty) rather than fault on unmapped memory
	}
	if err := unmap(); err != nil {
		return fmt.Errorf("safetensors: unmap %s: %w", f.path, err)
	}
	return nil
}

// isNotExist reports whether err means a missing file.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
