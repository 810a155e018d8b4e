package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/apr-llm/apr/tensor"
)

// maxArrayDepth bounds arrays of arrays (llama.cpp writes none deeper than 1).
const maxArrayDepth = 8

// maxAlignment bounds general.alignment (ggml uses 32; anything past a page is
// nonsense and would only waste address space).
const maxAlignment = 1 << 16

// TensorInfo describes one tensor as stored in the file, in GGML's own terms.
type TensorInfo struct {
	Name   string       // GGML name as stored (blk.0.attn_q.weight)
	DType  tensor.DType // element type
	Ne     []int        // GGML dimension order: Ne[0] is the row length
	Offset int          // byte offset from the start of its file's data section
	Size   int          // byte length: DType.RowBytes(Ne[0]) * product(Ne[1:])
	Shard  int          // index of the split file holding it (0 unless split)

	data []byte // the tensor's bytes inside the shard's mapping
}

// parsed is one GGUF file's header, metadata and tensor table, with the
// tensors' bytes sliced out of data.
type parsed struct {
	version    uint32
	kvs        []KV
	index      map[string]int
	alignment  int
	dataOffset int
	infos      []TensorInfo
}

// reader is a bounds-checked little-endian cursor over a byte slice.
type reader struct {
	name string
	b    []byte
	off  int
}

func (r *reader) errf(format string, args ...any) error {
	return fmt.Errorf("gguf: %s: %w: %s (at byte %d)", r.name, ErrInvalid, fmt.Sprintf(format, args...), r.off)
}

func (r *reader) remaining() int { return len(r.b) - r.off }

// take returns the next n bytes or a truncation error describing what.
func (r *reader) take(n uint64, what string) ([]byte, error) {
	if n > uint64(r.remaining()) {
		return nil, r.errf("truncated: %s needs %d bytes, %d left", what, n, r.remaining())
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p, nil
}

func (r *reader) u8(what string) (uint8, error) {
	p, err := r.take(1, what)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func (r *reader) u16(what string) (uint16, error) {
	p, err := r.take(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(p), nil
}

func (r *reader) u32(what string) (uint32, error) {
	p, err := r.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

func (r *reader) u64(what string) (uint64, error) {
	p, err := r.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(p), nil
}

func (r *reader) str(what string) (string, error) {
	s, ok := r.strFast()
	if !ok {
		return "", r.strErr(what)
	}
	return s, nil
}

// strFast reads a string, reporting only whether it fit (no message is built
// on the hot path of 100k-entry token lists).
func (r *reader) strFast() (string, bool) {
	if r.remaining() < 8 {
		return "", false
	}
	n := binary.LittleEndian.Uint64(r.b[r.off:])
	if n > uint64(r.remaining()-8) {
		return "", false
	}
	r.off += 8
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s, true
}

// strErr describes why strFast failed at the current offset.
func (r *reader) strErr(what string) error {
	if r.remaining() < 8 {
		return r.errf("truncated: %s length needs 8 bytes, %d left", what, r.remaining())
	}
	n := binary.LittleEndian.Uint64(r.b[r.off:])
	return r.errf("%s length %d exceeds the %d bytes left", what, n, r.remaining()-8)
}

// count reads an element count and checks that n elements of at least minSize
// bytes each can still fit, so that nothing is allocated from a lie.
func (r *reader) count(what string, minSize int) (int, error) {
	start := r.off
	n, err := r.u64(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(r.remaining()/minSize) {
		r.off = start
		return 0, r.errf("%s %d cannot fit in the %d bytes left", what, n, r.remaining())
	}
	return int(n), nil
}

// parse reads and validates a whole GGUF file held in data. name is used in
// error messages only.
func parse(name string, data []byte) (*parsed, error) {
	r := &reader{name: name, b: data}
	magic, err := r.take(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		r.off = 0
		return nil, r.errf("bad magic %q, want %q", magic, Magic)
	}
	version, err := r.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case version == 2 || version == 3:
	case version == 1:
		return nil, r.errf("GGUF version 1 is not supported (only 2 and 3); convert the file again with a current llama.cpp")
	case version&0xffff == 0 && bits.ReverseBytes32(version) <= 3 && bits.ReverseBytes32(version) != 0:
		return nil, r.errf("big-endian GGUF (version %d read byte-swapped) is not supported", bits.ReverseBytes32(version))
	default:
		return nil, r.errf("unsupported GGUF version %d", version)
	}
	p := &parsed{version: version, alignment: DefaultAlignment}

	// Each tensor info takes at least 8 (name) + 4 (n_dims) + 8 (ne) + 4 (type) + 8 (offset) bytes;
	// each key/value at least 8 (key) + 4 (type) + 1 (value) bytes.
	nTensors, err := r.count("tensor count", 32)
	if err != nil {
		return nil, err
	}
	nKV, err := r.count("metadata count", 13)
	if err != nil {
		return nil, err
	}

	p.kvs = make([]KV, 0, nKV)
	p.index = make(map[string]int, nKV)
	for i := 0; i < nKV; i++ {
		key, err := r.str(fmt.Sprintf("metadata key %d", i))
		if err != nil {
			return nil, err
		}
		if _, dup := p.index[key]; dup {
			return nil, r.errf("duplicate metadata key %q", key)
		}
		t, err := r.u32(fmt.Sprintf("type of %q", key))
		if err != nil {
			return nil, err
		}
		v, err := r.value(Type(t), key, 0)
		if err != nil {
			return nil, err
		}
		p.index[key] = len(p.kvs)
		p.kvs = append(p.kvs, KV{Key: key, Value: v})
	}

	if i, ok := p.index[KeyAlignment]; ok {
		a, ok := asUint(p.kvs[i].Value)
		if !ok || a == 0 || a > maxAlignment || a&(a-1) != 0 {
			return nil, r.errf("%s = %v: must be a power of two no larger than %d", KeyAlignment, p.kvs[i].Value, maxAlignment)
		}
		p.alignment = int(a)
	}

	p.infos = make([]TensorInfo, 0, nTensors)
	names := make(map[string]bool, nTensors)
	for i := 0; i < nTensors; i++ {
		ti, err := r.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if names[ti.Name] {
			return nil, r.errf("duplicate tensor name %q", ti.Name)
		}
		names[ti.Name] = true
		p.infos = append(p.infos, ti)
	}

	// The data section starts at the next multiple of the alignment.
	end := r.off
	pad := (p.alignment - end%p.alignment) % p.alignment
	p.dataOffset = end + pad
	if err := p.placeTensors(name, data); err != nil {
		return nil, err
	}
	return p, nil
}

// tensorInfo reads one tensor info entry and computes its byte size.
func (r *reader) tensorInfo(i int) (TensorInfo, error) {
	name, err := r.str(fmt.Sprintf("tensor %d name", i))
	if err != nil {
		return TensorInfo{}, err
	}
	nd, err := r.u32(fmt.Sprintf("tensor %q dimension count", name))
	if err != nil {
		return TensorInfo{}, err
	}
	if nd == 0 || nd > MaxDims {
		return TensorInfo{}, r.errf("tensor %q has %d dimensions (1 to %d allowed)", name, nd, MaxDims)
	}
	ne := make([]int, nd)
	for j := range ne {
		d, err := r.u64(fmt.Sprintf("tensor %q dimension %d", name, j))
		if err != nil {
			return TensorInfo{}, err
		}
		if d > uint64(maxInt) {
			return TensorInfo{}, r.errf("tensor %q dimension %d = %d is too large", name, j, d)
		}
		ne[j] = int(d)
	}
	gt, err := r.u32(fmt.Sprintf("tensor %q type", name))
	if err != nil {
		return TensorInfo{}, err
	}
	dt, ok := tensor.FromGGMLType(gt)
	if !ok {
		return TensorInfo{}, r.errf("tensor %q has unknown or unsupported ggml type %d", name, gt)
	}
	off, err := r.u64(fmt.Sprintf("tensor %q offset", name))
	if err != nil {
		return TensorInfo{}, err
	}
	if off > uint64(maxInt) {
		return TensorInfo{}, r.errf("tensor %q offset %d is too large", name, off)
	}
	size, err := byteSize(dt, ne)
	if err != nil {
		return TensorInfo{}, r.errf("tensor %q: %v", name, err)
	}
	return TensorInfo{Name: name, DType: dt, Ne: ne, Offset: int(off), Size: size}, nil
}

// byteSize is the size of a tensor of GGML dimensions ne:
// RowBytes(ne[0]) times the number of rows, with overflow checked.
func byteSize(dt tensor.DType, ne []int) (int, error) {
	rb, err := dt.RowBytes(ne[0])
	if err != nil {
		return 0, err
	}
	size := uint64(rb)
	for _, d := range ne[1:] {
		hi, lo := bits.Mul64(size, uint64(d))
		if hi != 0 || lo > uint64(maxInt) {
			return 0, fmt.Errorf("shape %v of %v: byte size overflows", ne, dt)
		}
		size = lo
	}
	// The element count must fit as well (a zero row length hides large ne[1:]).
	n := uint64(1)
	for _, d := range ne {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > uint64(maxInt) {
			return 0, fmt.Errorf("shape %v: element count overflows", ne)
		}
		n = lo
	}
	return int(size), nil
}

const maxInt = int(^uint(0) >> 1)

// placeTensors checks every tensor's offset and extent against the data
// section and the other tensors, then slices out its bytes.
func (p *parsed) placeTensors(name string, data []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("gguf: %s: %w: %s", name, ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(p.infos) > 0 && p.dataOffset > len(data) {
		return bad("truncated: data section would start at byte %d, file has %d bytes", p.dataOffset, len(data))
	}
	avail := len(data) - p.dataOffset
	for i := range p.infos {
		ti := &p.infos[i]
		if ti.Offset%p.alignment != 0 {
			return bad("tensor %q offset %d is not a multiple of the alignment %d", ti.Name, ti.Offset, p.alignment)
		}
		if ti.Offset > avail || ti.Size > avail-ti.Offset {
			return bad("tensor %q (%d bytes at data offset %d) runs past the end of the file (data section holds %d bytes)",
				ti.Name, ti.Size, ti.Offset, avail)
		}
		start := p.dataOffset + ti.Offset
		ti.data = data[start : start+ti.Size : start+ti.Size]
	}
	order := make([]int, len(p.infos))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return p.infos[a].Offset - p.infos[b].Offset })
	for k := 1; k < len(order); k++ {
		a, b := &p.infos[order[k-1]], &p.infos[order[k]]
		if a.Size > 0 && b.Size > 0 && a.Offset+a.Size > b.Offset {
			return bad("tensors %q (bytes %d to %d) and %q (from %d) overlap", a.Name, a.Offset, a.Offset+a.Size, b.Name, b.Offset)
		}
	}
	return nil
}

// value reads one metadata value of type t.
func (r *reader) value(t Type, key string, depth int) (any, error) {
	what := fmt.Sprintf("value of %q", key)
	switch t {
	case TypeUint8:
		return r.u8(what)
	case TypeInt8:
		v, err := r.u8(what)
		return int8(v), err
	case TypeUint16:
		return r.u16(what)
	case TypeInt16:
		v, err := r.u16(what)
		return int16(v), err
	case TypeUint32:
		return r.u32(what)
	case TypeInt32:
		v, err := r.u32(what)
		return int32(v), err
	case TypeFloat32:
		v, err := r.u32(what)
		return math.Float32frombits(v), err
	case TypeBool:
		v, err := r.u8(what)
		if err != nil {
			return nil, err
		}
		if v > 1 {
			return nil, r.errf("%s: bool byte %d is neither 0 nor 1", what, v)
		}
		return v == 1, nil
	case TypeString:
		return r.str(what)
	case TypeUint64:
		return r.u64(what)
	case TypeInt64:
		v, err := r.u64(what)
		return int64(v), err
	case TypeFloat64:
		v, err := r.u64(what)
		return math.Float64frombits(v), err
	case TypeArray:
		return r.array(key, depth)
	}
	return nil, r.errf("metadata %q has unknown value type %d", key, uint32(t))
}

// array reads an array value: element type, count, elements.
func (r *reader) array(key string, depth int) (Array, error) {
	if depth >= maxArrayDepth {
		return Array{}, r.errf("metadata %q: arrays nested deeper than %d", key, maxArrayDepth)
	}
	et, err := r.u32(fmt.Sprintf("array type of %q", key))
	if err != nil {
		return Array{}, err
	}
	t := Type(et)
	minSize := t.size()
	switch t {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 12
	}
	if minSize == 0 {
		return Array{}, r.errf("metadata %q: array of unknown type %d", key, et)
	}
	n, err := r.count(fmt.Sprintf("array length of %q", key), minSize)
	if err != nil {
		return Array{}, err
	}
	if t.size() > 0 {
		raw, _ := r.take(uint64(n*minSize), "array")
		return decodeFixed(r, key, t, raw, n)
	}
	if t == TypeString {
		vs := make([]string, n)
		for i := range vs {
			var ok bool
			if vs[i], ok = r.strFast(); !ok {
				return Array{}, r.strErr(fmt.Sprintf("%s[%d]", key, i))
			}
		}
		return Array{Type: t, Values: vs}, nil
	}
	vs := make([]Array, n)
	for i := range vs {
		if vs[i], err = r.array(key, depth+1); err != nil {
			return Array{}, err
		}
	}
	return Array{Type: t, Values: vs}, nil
}

// decodeFixed decodes n fixed-size little-endian elements of type t from raw.
func decodeFixed(r *reader, key string, t Type, raw []byte, n int) (Array, error) {
	le := binary.LittleEndian
	a := Array{Type: t}
	switch t {
	case TypeUint8:
		a.Values = slices.Clone(raw)
	case TypeInt8:
		a.Values = decodeEach(raw, n, 1, func(b []byte) int8 { return int8(b[0]) })
	case TypeBool:
		for i, b := range raw[:n] {
			if b > 1 {
				return Array{}, r.errf("%s[%d]: bool byte %d is neither 0 nor 1", key, i, b)
			}
		}
		a.Values = decodeEach(raw, n, 1, func(b []byte) bool { return b[0] == 1 })
	case TypeUint16:
		a.Values = decodeEach(raw, n, 2, le.Uint16)
	case TypeInt16:
		a.Values = decodeEach(raw, n, 2, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case TypeUint32:
		a.Values = decodeEach(raw, n, 4, le.Uint32)
	case TypeInt32:
		a.Values = decodeEach(raw, n, 4, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case TypeFloat32:
		a.Values = decodeEach(raw, n, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case TypeUint64:
		a.Values = decodeEach(raw, n, 8, le.Uint64)
	case TypeInt64:
		a.Values = decodeEach(raw, n, 8, func(b []byte) int64 { return int64(le.Uint64(b)) })
	case TypeFloat64:
		a.Values = decodeEach(raw, n, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	}
	return a, nil
}

// decodeEach decodes n elements of size bytes each from raw (at least n x
// size bytes, which the caller has checked) with dec.
func decodeEach[T any](raw []byte, n, size int, dec func([]byte) T) []T {
	vs := make([]T, n)
	for i := range vs {
		vs[i] = dec(raw[size*i:])
	}
	return vs
}
