package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apr-llm/apr/tensor"
)

// Write writes tensors and metadata as a SafeTensors file to w. As the Python
// library does, tensors are laid out by descending element size, then by name
// (so every tensor is aligned to its element size), __metadata__ comes first
// in the header when metadata is non-empty, and the header is padded with
// spaces to a multiple of 8 bytes. Each tensor must pass Validate, carry a
// SafeTensors dtype and a unique name other than __metadata__.
func Write(w io.Writer, tensors []*tensor.Tensor, metadata map[string]string) error {
	order := slices.Clone(tensors)
	seen := make(map[string]bool, len(order))
	for _, t := range order {
		if t == nil {
			return errors.New("safetensors: write: nil tensor")
		}
		if t.Name == MetadataKey {
			return fmt.Errorf("safetensors: write: tensor name %q is reserved", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("safetensors: write: duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		if !utf8.ValidString(t.Name) {
			return fmt.Errorf("safetensors: write: tensor name %q is not valid UTF-8", t.Name)
		}
		if d, ok := tensor.ParseSafeTensorsDType(t.DType.String()); !ok || d != t.DType {
			return fmt.Errorf("safetensors: write: tensor %q: dtype %v has no SafeTensors encoding", t.Name, t.DType)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("safetensors: write: %w", err)
		}
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("safetensors: write: metadata %q: not valid UTF-8", k)
		}
	}
	slices.SortFunc(order, func(a, b *tensor.Tensor) int {
		if sa, sb := a.DType.TypeSize(), b.DType.TypeSize(); sa != sb {
			return sb - sa
		}
		return strings.Compare(a.Name, b.Name)
	})

	var hdr bytes.Buffer
	hdr.WriteByte('{')
	first := true
	comma := func() {
		if !first {
			hdr.WriteByte(',')
		}
		first = false
	}
	if len(metadata) > 0 {
		comma()
		writeString(&hdr, MetadataKey)
		hdr.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if i > 0 {
				hdr.WriteByte(',')
			}
			writeString(&hdr, k)
			hdr.WriteByte(':')
			writeString(&hdr, metadata[k])
		}
		hdr.WriteByte('}')
	}
	var off uint64
	for _, t := range order {
		comma()
		writeString(&hdr, t.Name)
		hdr.WriteString(`:{"dtype":`)
		writeString(&hdr, t.DType.String())
		hdr.WriteString(`,"shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				hdr.WriteByte(',')
			}
			hdr.WriteString(strconv.Itoa(d))
		}
		end := off + uint64(len(t.Data))
		fmt.Fprintf(&hdr, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	if hdr.Len() > MaxHeaderSize {
		return fmt.Errorf("safetensors: write: header of %d bytes exceeds the %d-byte limit", hdr.Len(), MaxHeaderSize)
	}

	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(hdr.Len()))
	if _, err := w.Write(n[:]); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	for _, t := range order {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// WriteFile writes a SafeTensors file at path (see Write). On failure the
// partial file is removed.
func WriteFile(path string, tensors []*tensor.Tensor, metadata map[string]string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("safetensors: close %s: %w", path, cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := Write(bw, tensors, metadata); err != nil {
		return fmt.Errorf("%w (writing %s)", err, path)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return nil
}

// writeString appends s as a JSON string. Unlike json.Marshal it leaves <, >
// and & unescaped, as Python's json.dumps does.
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode appends a newline
}
