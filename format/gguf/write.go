package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/apr-llm/apr/tensor"
)

// ggmlMaxName is ggml's GGML_MAX_NAME: tensor names must be shorter.
const ggmlMaxName = 64

// Writer writes GGUF version 3 files that llama.cpp loads.
type Writer struct {
	// Alignment of the tensor data; 0 means general.alignment from the
	// metadata, or 32 when absent. A general.alignment in the metadata must
	// agree with it.
	Alignment int
}

// Write writes meta (in order) and tensors (canonical names and shapes) as a
// GGUF v3 file with the default Writer.
func Write(w io.Writer, meta []KV, tensors []*tensor.Tensor) error {
	return (&Writer{}).Write(w, meta, tensors)
}

// Write writes a GGUF v3 file: the header, meta in the given order, one
// tensor info per tensor (GGML names, reversed dimensions), then the tensor
// data in the given order, each padded to the alignment. For the llama
// architecture the Q/K rows are permuted as llama.cpp's converter does.
func (wr *Writer) Write(w io.Writer, meta []KV, tensors []*tensor.Tensor) error {
	m := newMeta("write", meta)
	if len(m.index) != len(meta) {
		seen := map[string]bool{}
		for _, kv := range meta {
			if seen[kv.Key] {
				return fmt.Errorf("gguf: write: duplicate metadata key %q", kv.Key)
			}
			seen[kv.Key] = true
		}
	}
	for _, kv := range meta {
		if err := checkValue(kv.Value, 0); err != nil {
			return fmt.Errorf("gguf: write: metadata %q: %w", kv.Key, err)
		}
	}
	align := wr.Alignment
	if m.Has(KeyAlignment) {
		a, err := m.Uint(KeyAlignment)
		if err != nil {
			return fmt.Errorf("gguf: write: %w", err)
		}
		if align != 0 && uint64(align) != a {
			return fmt.Errorf("gguf: write: %s = %d disagrees with the writer's alignment %d", KeyAlignment, a, align)
		}
		align = int(min(a, maxAlignment+1))
	}
	if align == 0 {
		align = DefaultAlignment
	}
	if align < 0 || align > maxAlignment || align&(align-1) != 0 {
		return fmt.Errorf("gguf: write: alignment %d must be a power of two no larger than %d", align, maxAlignment)
	}

	perms, err := llamaPermutations(&m, tensors)
	if err != nil {
		return err
	}
	datas := make([][]byte, len(tensors))
	for i, t := range tensors {
		datas[i] = t.Data
	}
	for _, p := range perms {
		datas[p.index] = p.apply(tensors[p.index].Data, true)
	}

	type info struct {
		name string
		ne   []int
		typ  uint32
		off  uint64
	}
	infos := make([]info, len(tensors))
	names := make(map[string]bool, len(tensors))
	var off uint64
	for i, t := range tensors {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("gguf: write: %w", err)
		}
		name, _ := GGMLName(t.Name)
		if len(name) >= ggmlMaxName {
			return fmt.Errorf("gguf: write: tensor name %q is longer than ggml's %d bytes", name, ggmlMaxName-1)
		}
		if names[name] {
			return fmt.Errorf("gguf: write: duplicate tensor %q", name)
		}
		names[name] = true
		ne := ggmlDims(t.Shape)
		if len(ne) == 0 {
			ne = []int{1}
		}
		if len(ne) > MaxDims {
			return fmt.Errorf("gguf: write: tensor %q has %d dimensions, GGUF allows %d", t.Name, len(ne), MaxDims)
		}
		typ, ok := t.DType.GGMLType()
		if !ok {
			return fmt.Errorf("gguf: write: tensor %q: dtype %v has no ggml type", t.Name, t.DType)
		}
		infos[i] = info{name, ne, typ, off}
		off += uint64(padded(len(t.Data), align))
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	e := &encoder{w: bw}
	e.raw([]byte(Magic))
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(meta)))
	for _, kv := range meta {
		e.str(kv.Key)
		t, _ := typeOf(kv.Value)
		e.u32(uint32(t))
		e.value(kv.Value)
	}
	for _, in := range infos {
		e.str(in.name)
		e.u32(uint32(len(in.ne)))
		for _, d := range in.ne {
			e.u64(uint64(d))
		}
		e.u32(in.typ)
		e.u64(in.off)
	}
	e.pad(align)
	for _, d := range datas {
		e.raw(d)
		e.pad(align)
	}
	if e.err != nil {
		return fmt.Errorf("gguf: write: %w", e.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gguf: write: %w", err)
	}
	return nil
}

func padded(n, align int) int { return (n + align - 1) / align * align }

// checkValue verifies that v is a GGUF metadata value (see KV and Array).
func checkValue(v any, depth int) error {
	a, isArray := v.(Array)
	if !isArray {
		if _, ok := typeOf(v); !ok {
			return fmt.Errorf("unsupported Go type %T", v)
		}
		return nil
	}
	if depth >= maxArrayDepth {
		return fmt.Errorf("arrays nested deeper than %d", maxArrayDepth)
	}
	want := map[Type]string{
		TypeUint8: "[]uint8", TypeInt8: "[]int8", TypeUint16: "[]uint16", TypeInt16: "[]int16",
		TypeUint32: "[]uint32", TypeInt32: "[]int32", TypeFloat32: "[]float32", TypeBool: "[]bool",
		TypeString: "[]string", TypeUint64: "[]uint64", TypeInt64: "[]int64", TypeFloat64: "[]float64",
		TypeArray: "[]gguf.Array",
	}[a.Type]
	if got := fmt.Sprintf("%T", a.Values); got != want || want == "" {
		return fmt.Errorf("array of %v holds %s", a.Type, got)
	}
	if vs, ok := a.Values.([]Array); ok {
		for i, x := range vs {
			if err := checkValue(x, depth+1); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	}
	return nil
}

// encoder writes little-endian GGUF primitives, keeping the first error.
type encoder struct {
	w   *bufio.Writer
	n   int
	err error
	buf [8]byte
}

func (e *encoder) raw(p []byte) {
	if e.err != nil {
		return
	}
	var k int
	k, e.err = e.w.Write(p)
	e.n += k
}

func (e *encoder) u8(v uint8) { e.buf[0] = v; e.raw(e.buf[:1]) }
func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.raw(e.buf[:2])
}
func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.raw(e.buf[:4])
}
func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.raw(e.buf[:8])
}
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.raw([]byte(s)) }
func (e *encoder) bool(b bool) {
	if b {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *encoder) pad(align int) {
	var zeros [64]byte
	for n := (align - e.n%align) % align; n > 0; {
		k := min(n, len(zeros))
		e.raw(zeros[:k])
		n -= k
	}
}

// value writes a checked metadata value (without its type tag).
func (e *encoder) value(v any) {
	switch x := v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		e.bool(x)
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case Array:
		e.u32(uint32(x.Type))
		e.u64(uint64(x.Len()))
		switch vs := x.Values.(type) {
		case []uint8:
			e.raw(vs)
		case []int8:
			for _, v := range vs {
				e.u8(uint8(v))
			}
		case []uint16:
			for _, v := range vs {
				e.u16(v)
			}
		case []int16:
			for _, v := range vs {
				e.u16(uint16(v))
			}
		case []uint32:
			for _, v := range vs {
				e.u32(v)
			}
		case []int32:
			for _, v := range vs {
				e.u32(uint32(v))
			}
		case []float32:
			for _, v := range vs {
				e.u32(math.Float32bits(v))
			}
		case []bool:
			for _, v := range vs {
				e.bool(v)
			}
		case []string:
			for _, v := range vs {
				e.str(v)
			}
		case []uint64:
			for _, v := range vs {
				e.u64(v)
			}
		case []int64:
			for _, v := range vs {
				e.u64(uint64(v))
			}
		case []float64:
			for _, v := range vs {
				e.u64(math.Float64bits(v))
			}
		case []Array:
			for _, v := range vs {
				e.value(v)
			}
		}
	}
}
