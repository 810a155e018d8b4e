package apr

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// WriteOptions tune Write.
type WriteOptions struct {
	// FuseQKV stores each layer's Q, K and V projections (and biases) as
	// one self_attn.qkv_proj tensor when they share a type. Open splits them
	// again, so readers see the same tensors either way.
	FuseQKV bool
}

// Write writes an APR v2 file: md as the metadata block, then the tensors
// in order (canonical names, any type with a GGML id), each aligned to 64
// bytes, with their checksums. Tensor bytes are stored as they are.
func Write(w io.Writer, md *Metadata, tensors []*tensor.Tensor, opts WriteOptions) error {
	if md == nil {
		return fmt.Errorf("apr: write: no metadata")
	}
	cfg, err := md.ModelConfig()
	if err != nil {
		return fmt.Errorf("apr: write: %w", err)
	}
	if opts.FuseQKV {
		if tensors, err = fuseQKV(tensors, cfg); err != nil {
			return err
		}
	}
	var mbuf bytes.Buffer
	enc := json.NewEncoder(&mbuf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(md); err != nil {
		return fmt.Errorf("apr: write: metadata: %w", err)
	}
	meta := bytes.TrimSuffix(mbuf.Bytes(), []byte("\n"))
	if len(meta) > maxMetadata {
		return fmt.Errorf("apr: write: metadata of %d bytes exceeds %d", len(meta), maxMetadata)
	}

	entries := make([]entry, len(tensors))
	seen := make(map[string]bool, len(tensors))
	var off uint64
	for i, t := range tensors {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("apr: write: %w", err)
		}
		switch {
		case t.Name == "" || len(t.Name) > maxName || !utf8.ValidString(t.Name):
			return fmt.Errorf("apr: write: tensor name %q must be 1 to %d bytes of UTF-8", t.Name, maxName)
		case seen[t.Name]:
			return fmt.Errorf("apr: write: duplicate tensor %q", t.Name)
		case len(t.Shape) == 0 || len(t.Shape) > maxDims:
			return fmt.Errorf("apr: write: tensor %q has %d dimensions (1 to %d)", t.Name, len(t.Shape), maxDims)
		}
		if _, ok := t.DType.GGMLType(); !ok {
			return fmt.Errorf("apr: write: tensor %q: dtype %v has no GGML type id", t.Name, t.DType)
		}
		seen[t.Name] = true
		off = padTo(off, Alignment)
		entries[i] = entry{name: t.Name, dtype: t.DType, shape: t.Shape, offset: off, size: uint64(len(t.Data)), crc: crc(t.Data)}
		off += uint64(len(t.Data))
	}
	var index []byte
	for i := range entries {
		index = encodeEntry(index, &entries[i])
	}
	h := header{version: Version, alignment: Alignment, metaOff: HeaderSize, metaLen: uint64(len(meta)),
		indexLen: uint64(len(index)), dataLen: off, count: uint64(len(tensors)),
		metaCRC: crc(meta), indexCRC: crc(index)}
	h.indexOff = h.metaOff + h.metaLen
	h.dataOff = padTo(h.indexOff+h.indexLen, Alignment)

	// The body (everything after the header) is produced twice: once into
	// the SHA-256 that the header records, once into w.
	body := func(out io.Writer) error {
		bw := &countWriter{w: out}
		bw.write(meta)
		bw.write(index)
		bw.pad(h.dataOff - HeaderSize)
		for i, t := range tensors {
			bw.pad(h.dataOff - HeaderSize + entries[i].offset)
			bw.write(t.Data)
		}
		return bw.err
	}
	sum := sha256.New()
	if err := body(sum); err != nil {
		return fmt.Errorf("apr: write: %w", err)
	}
	copy(h.fileSHA[:], sum.Sum(nil))
	buf := bufio.NewWriterSize(w, 1<<20)
	if _, err := buf.Write(h.encode()); err != nil {
		return fmt.Errorf("apr: write: %w", err)
	}
	if err := body(buf); err != nil {
		return fmt.Errorf("apr: write: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return fmt.Errorf("apr: write: %w", err)
	}
	return nil
}

// countWriter writes and counts bytes after the header, keeping the first
// error; pad writes zeros up to a body offset.
type countWriter struct {
	w   io.Writer
	n   uint64
	err error
}

func (c *countWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	k, err := c.w.Write(p)
	c.n += uint64(k)
	c.err = err
}

func (c *countWriter) pad(to uint64) {
	var zeros [Alignment]byte
	for c.n < to && c.err == nil {
		c.write(zeros[:min(to-c.n, Alignment)])
	}
}

// fuseQKV replaces each layer's Q/K/V weights (and biases) by one fused
// tensor when the three share a type and row length.
func fuseQKV(ts []*tensor.Tensor, cfg *model.Config) ([]*tensor.Tensor, error) {
	byName := make(map[string]*tensor.Tensor, len(ts))
	for _, t := range ts {
		byName[t.Name] = t
	}
	drop := map[string]bool{}
	fused := map[string]*tensor.Tensor{} // keyed by the Q tensor's name
	for i := range cfg.NumLayers {
		for _, g := range [][4]string{
			{model.AttnQ, model.AttnK, model.AttnV, FusedQKV},
			{model.AttnQB, model.AttnKB, model.AttnVB, FusedQKVB},
		} {
			var parts []*tensor.Tensor
			for _, s := range g[:3] {
				if t, ok := byName[model.Layer(i, s)]; ok {
					parts = append(parts, t)
				}
			}
			if len(parts) != 3 || !sameLayout(parts) {
				continue
			}
			shape := slices.Clone(parts[0].Shape)
			shape[0] = parts[0].Shape[0] + parts[1].Shape[0] + parts[2].Shape[0]
			var data []byte
			for _, p := range parts {
				data = append(data, p.Data...)
				drop[p.Name] = true
			}
			fused[parts[0].Name] = &tensor.Tensor{Name: model.Layer(i, g[3]), DType: parts[0].DType, Shape: shape, Data: data}
		}
	}
	out := make([]*tensor.Tensor, 0, len(ts))
	for _, t := range ts {
		if f, ok := fused[t.Name]; ok {
			out = append(out, f)
		}
		if !drop[t.Name] {
			if strings.HasSuffix(t.Name, FusedQKV) || strings.HasSuffix(t.Name, FusedQKVB) {
				return nil, fmt.Errorf("apr: write: tensor %q is already fused", t.Name)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

func sameLayout(ts []*tensor.Tensor) bool {
	for _, t := range ts[1:] {
		if t.DType != ts[0].DType || len(t.Shape) != len(ts[0].Shape) || !slices.Equal(t.Shape[1:], ts[0].Shape[1:]) {
			return false
		}
	}
	return true
}
