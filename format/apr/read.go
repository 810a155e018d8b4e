package apr

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/apr-llm/apr/internal/mmap"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// File is an open APR file. Its tensors' Data lie in a read-only mapping of
// the file and are valid until Close.
type File struct {
	// Meta is the decoded metadata block.
	Meta    Metadata
	path    string
	data    []byte
	hdr     header
	entries []entry
	tensors []*tensor.Tensor // canonical, fused tensors split
	unmap   func() error
}

// Options tune Open.
type Options struct {
	// Verify checks every tensor's CRC-32C and the whole-file SHA-256 at
	// open (reading every byte once); without it only the header, metadata
	// and index checksums are checked.
	Verify bool
	// Populate reads the whole file in at open (MAP_POPULATE), for a caller
	// about to compute with the weights; without it pages are read when
	// first touched, so reading the metadata reads little more.
	Populate bool
}

// Open maps the APR file at path and validates it.
func Open(path string, opts Options) (*File, error) {
	data, unmap, err := mmap.File(path, opts.Populate)
	if errors.Is(err, mmap.ErrUnmappable) {
		return nil, fmt.Errorf("apr: %s: %w: %w", path, ErrInvalid, err)
	}
	if err != nil {
		return nil, fmt.Errorf("apr: %w", err)
	}
	f, err := parse(path, data)
	if err == nil && opts.Verify {
		err = f.Verify()
	}
	if err != nil {
		unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse validates an APR file held in memory; name is used in errors. The
// File references data, which must not change.
func Parse(name string, data []byte) (*File, error) { return parse(name, data) }

func (f *File) errf(format string, args ...any) error {
	return fmt.Errorf("apr: %s: %w: %s", f.path, ErrInvalid, fmt.Sprintf(format, args...))
}

func (f *File) checksumErr(what string) error {
	return fmt.Errorf("apr: %s: %w: %s", f.path, ErrChecksum, what)
}

// section returns data[off:off+n] after checking it lies in the file.
func (f *File) section(off, n uint64, what string) ([]byte, error) {
	size := uint64(len(f.data))
	if off > size || n > size-off {
		return nil, f.errf("%s [%d, +%d) lies past the end of the %d-byte file (truncated?)", what, off, n, size)
	}
	return f.data[off : off+n], nil
}

func parse(path string, data []byte) (*File, error) {
	f := &File{path: path, data: data}
	if len(data) < HeaderSize {
		if len(data) >= 4 && string(data[:4]) != Magic {
			return nil, f.errf("bad magic %q", data[:4])
		}
		return nil, f.errf("%d bytes, shorter than the %d-byte header (truncated?)", len(data), HeaderSize)
	}
	if string(data[:4]) != Magic {
		return nil, f.errf("bad magic %q", data[:4])
	}
	h := decodeHeader(data)
	if got := crc(data[:headerCRCOffset]); got != h.headerCRC {
		return nil, f.checksumErr(fmt.Sprintf("header CRC-32C is %08x, the header says %08x", got, h.headerCRC))
	}
	if h.version != Version {
		return nil, f.errf("version %d, this apr reads version %d", h.version, Version)
	}
	if h.flags != 0 {
		return nil, f.errf("unknown flags %#x", h.flags)
	}
	if h.alignment != Alignment {
		return nil, f.errf("alignment %d, want %d", h.alignment, Alignment)
	}
	if h.metaLen > maxMetadata || h.indexLen > maxIndex || h.count > maxTensors {
		return nil, f.errf("implausible sizes (metadata %d, index %d, %d tensors)", h.metaLen, h.indexLen, h.count)
	}
	if h.metaOff < HeaderSize || h.indexOff < h.metaOff+h.metaLen || h.dataOff < h.indexOff+h.indexLen || h.dataOff%Alignment != 0 {
		return nil, f.errf("sections out of order or misaligned (metadata %d, index %d, data %d)", h.metaOff, h.indexOff, h.dataOff)
	}
	f.hdr = h
	meta, err := f.section(h.metaOff, h.metaLen, "metadata")
	if err != nil {
		return nil, err
	}
	index, err := f.section(h.indexOff, h.indexLen, "tensor index")
	if err != nil {
		return nil, err
	}
	dataSec, err := f.section(h.dataOff, h.dataLen, "tensor data")
	if err != nil {
		return nil, err
	}
	if uint64(len(data)) != h.dataOff+h.dataLen {
		return nil, f.errf("%d bytes after the data section", uint64(len(data))-h.dataOff-h.dataLen)
	}
	if got := crc(meta); got != h.metaCRC {
		return nil, f.checksumErr(fmt.Sprintf("metadata CRC-32C is %08x, the header says %08x", got, h.metaCRC))
	}
	if got := crc(index); got != h.indexCRC {
		return nil, f.checksumErr(fmt.Sprintf("tensor index CRC-32C is %08x, the header says %08x", got, h.indexCRC))
	}
	dec := json.NewDecoder(bytes.NewReader(meta))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f.Meta); err != nil {
		return nil, f.errf("metadata: %v", err)
	}
	if err := f.parseIndex(index, dataSec); err != nil {
		return nil, err
	}
	if err := f.assemble(); err != nil {
		return nil, err
	}
	return f, nil
}

// parseIndex decodes and checks every index record against the data section.
func (f *File) parseIndex(b []byte, dataSec []byte) error {
	le := binary.LittleEndian
	off := 0
	need := func(n int, what string, i int) error {
		if n > len(b)-off {
			return f.errf("tensor index entry %d: %s runs past the index", i, what)
		}
		return nil
	}
	names := make(map[string]bool)
	var spans [][2]uint64
	f.entries = make([]entry, 0, min(f.hdr.count, 4096))
	for i := range int(f.hdr.count) {
		if err := need(2, "name length", i); err != nil {
			return err
		}
		n := int(le.Uint16(b[off:]))
		off += 2
		if n == 0 || n > maxName {
			return f.errf("tensor index entry %d: name length %d", i, n)
		}
		if err := need(n+8, "name", i); err != nil {
			return err
		}
		name := string(b[off : off+n])
		off += n
		if !utf8.ValidString(name) {
			return f.errf("tensor index entry %d: name is not UTF-8", i)
		}
		if names[name] {
			return f.errf("tensor %q appears twice", name)
		}
		names[name] = true
		ggml, nd := le.Uint32(b[off:]), le.Uint32(b[off+4:])
		off += 8
		dt, ok := tensor.FromGGMLType(ggml)
		if !ok {
			return f.errf("tensor %q: unknown type %d", name, ggml)
		}
		if nd == 0 || nd > maxDims {
			return f.errf("tensor %q: %d dimensions", name, nd)
		}
		if err := need(int(nd)*8+20, "shape", i); err != nil {
			return err
		}
		shape := make([]int, nd)
		for d := range shape {
			v := le.Uint64(b[off:])
			off += 8
			if v > 1<<40 {
				return f.errf("tensor %q: dimension %d is %d", name, d, v)
			}
			shape[d] = int(v)
		}
		e := entry{name: name, dtype: dt, shape: shape, offset: le.Uint64(b[off:]), size: le.Uint64(b[off+8:]), crc: le.Uint32(b[off+16:])}
		off += 20
		t := &tensor.Tensor{Name: name, DType: dt, Shape: shape}
		if _, err := tensor.NumElements(shape); err != nil {
			return f.errf("tensor %q: %v", name, err)
		}
		want, err := byteSize(t)
		if err != nil {
			return f.errf("%v", err)
		}
		if e.size != uint64(want) {
			return f.errf("tensor %q: %d bytes, shape %v of %v needs %d", name, e.size, shape, dt, want)
		}
		if e.offset%Alignment != 0 {
			return f.errf("tensor %q: offset %d is not %d-byte aligned", name, e.offset, Alignment)
		}
		if e.offset > uint64(len(dataSec)) || e.size > uint64(len(dataSec))-e.offset {
			return f.errf("tensor %q: [%d, +%d) lies past the %d-byte data section (truncated?)", name, e.offset, e.size, len(dataSec))
		}
		spans = append(spans, [2]uint64{e.offset, e.offset + e.size})
		f.entries = append(f.entries, e)
	}
	if off != len(b) {
		return f.errf("%d bytes after the last tensor index entry", len(b)-off)
	}
	slices.SortFunc(spans, func(a, b [2]uint64) int { return int(min(max(int64(a[0])-int64(b[0]), -1), 1)) })
	for i := 1; i < len(spans); i++ {
		if spans[i][0] < spans[i-1][1] {
			return f.errf("tensors overlap in the data section at offset %d", spans[i][0])
		}
	}
	return nil
}

// byteSize is the size of t's data, checking block alignment of rows.
func byteSize(t *tensor.Tensor) (int, error) {
	n := t.Len()
	if t.DType.BlockSize() > 1 {
		rb, err := t.DType.RowBytes(t.Cols())
		if err != nil {
			return 0, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		rows := t.Rows()
		if rows > 0 && rb > maxInt/rows {
			return 0, fmt.Errorf("tensor %q: byte size overflows", t.Name)
		}
		return rb * rows, nil
	}
	sz, err := t.DType.RowBytes(n)
	if err != nil {
		return 0, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return sz, nil
}

// assemble builds the canonical tensors, splitting fused Q/K/V.
func (f *File) assemble() error {
	dataSec := f.data[f.hdr.dataOff:]
	cfg, err := f.Meta.ModelConfig()
	if err != nil {
		return f.errf("metadata: %v", err)
	}
	_, qDim, kvDim, _ := cfg.Dims()
	for _, e := range f.entries {
		t := &tensor.Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: dataSec[e.offset : e.offset+e.size]}
		prefix, fused, ok := splitFusedName(e.name)
		if !ok {
			f.tensors = append(f.tensors, t)
			continue
		}
		parts, err := splitQKV(t, prefix, fused, qDim, kvDim)
		if err != nil {
			return f.errf("%v", err)
		}
		f.tensors = append(f.tensors, parts...)
	}
	seen := map[string]bool{}
	for _, t := range f.tensors {
		if seen[t.Name] {
			return f.errf("tensor %q appears both fused and separate", t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

// splitFusedName recognises model.layers.N.self_attn.qkv_proj.{weight,bias}.
func splitFusedName(name string) (prefix, fused string, ok bool) {
	for _, s := range []string{FusedQKV, FusedQKVB} {
		if p, found := strings.CutSuffix(name, s); found && strings.HasPrefix(p, "model.layers.") {
			return p, s, true
		}
	}
	return "", "", false
}

// splitQKV cuts a fused [q+2kv, ...] tensor into Q, K and V views.
func splitQKV(t *tensor.Tensor, prefix, fused string, qDim, kvDim int) ([]*tensor.Tensor, error) {
	names := []string{model.AttnQ, model.AttnK, model.AttnV}
	if fused == FusedQKVB {
		names = []string{model.AttnQB, model.AttnKB, model.AttnVB}
	}
	if len(t.Shape) == 0 || t.Shape[0] != qDim+2*kvDim {
		return nil, fmt.Errorf("fused tensor %q has shape %v, its first dimension must be %d+2*%d", t.Name, t.Shape, qDim, kvDim)
	}
	rowBytes := len(t.Data) / t.Shape[0]
	var out []*tensor.Tensor
	start := 0
	for i, rows := range []int{qDim, kvDim, kvDim} {
		shape := slices.Clone(t.Shape)
		shape[0] = rows
		out = append(out, &tensor.Tensor{Name: prefix + names[i], DType: t.DType, Shape: shape,
			Data: t.Data[start*rowBytes : (start+rows)*rowBytes]})
		start += rows
	}
	return out, nil
}

// Verify checks every tensor's CRC-32C and the SHA-256 of the file after
// the header, naming the first tensor (or section) that fails.
func (f *File) Verify() error {
	dataSec := f.data[f.hdr.dataOff:]
	for _, e := range f.entries {
		if got := crc(dataSec[e.offset : e.offset+e.size]); got != e.crc {
			return f.checksumErr(fmt.Sprintf("tensor %s: CRC-32C is %08x, the index says %08x", e.name, got, e.crc))
		}
	}
	if got := sha256.Sum256(f.data[HeaderSize:]); got != f.hdr.fileSHA {
		return f.checksumErr(fmt.Sprintf("file SHA-256 is %x, the header says %x (damage outside the tensors: padding or gaps)", got, f.hdr.fileSHA))
	}
	return nil
}

// Path returns the path the file was opened from.
func (f *File) Path() string { return f.path }

// Tensors returns the tensors with canonical names in file order, fused
// Q/K/V split into separate views. The slice must not be modified.
func (f *File) Tensors() []*tensor.Tensor { return f.tensors }

// Stored returns the number of tensors as stored (fused ones counting once).
func (f *File) Stored() int { return len(f.entries) }

// Close unmaps the file.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap = nil
	if err != nil {
		return fmt.Errorf("apr: %s: close: %w", f.path, err)
	}
	return nil
}

// VerifyFile opens the APR file at path and checks every checksum (header,
// metadata, index, each tensor, the whole file), for `apr check`.
func VerifyFile(path string) error {
	f, err := Open(path, Options{Verify: true})
	if err != nil {
		return err
	}
	return f.Close()
}
