package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

// raw builds GGUF bytes by hand, so that tests can write what the Writer
// refuses to.
type raw struct{ bytes.Buffer }

func (b *raw) u8(v uint8)   { b.WriteByte(v) }
func (b *raw) u32(v uint32) { b.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func (b *raw) u64(v uint64) { b.Write(binary.LittleEndian.AppendUint64(nil, v)) }
func (b *raw) str(s string) { b.u64(uint64(len(s))); b.WriteString(s) }
func (b *raw) pad(align int) {
	for b.Len()%align != 0 {
		b.WriteByte(0)
	}
}

type rawTensor struct {
	name string
	ne   []uint64
	typ  uint32
	off  uint64
}

// rawFile is a small GGUF described field by field; kv writes the metadata
// entries (their count is nKV).
type rawFile struct {
	magic    string
	version  uint32
	nTensors uint64 // 0: len(tensors)
	nKV      uint64
	kv       func(b *raw)
	tensors  []rawTensor
	data     int // bytes of tensor data after the padding
	align    int
}

func (f rawFile) bytes() []byte {
	var b raw
	b.WriteString(f.magic)
	b.u32(f.version)
	nt := f.nTensors
	if nt == 0 {
		nt = uint64(len(f.tensors))
	}
	b.u64(nt)
	b.u64(f.nKV)
	if f.kv != nil {
		f.kv(&b)
	}
	for _, t := range f.tensors {
		b.str(t.name)
		b.u32(uint32(len(t.ne)))
		for _, d := range t.ne {
			b.u64(d)
		}
		b.u32(t.typ)
		b.u64(t.off)
	}
	if f.align == 0 {
		f.align = 32
	}
	b.pad(f.align)
	b.Write(make([]byte, f.data))
	return b.Bytes()
}

// validRaw is a small valid file: one string key, an F32 vector and a Q8_0 matrix.
func validRaw() rawFile {
	return rawFile{
		magic: "GGUF", version: 3, nKV: 1,
		kv: func(b *raw) { b.str("general.architecture"); b.u32(uint32(TypeString)); b.str("qwen2") },
		tensors: []rawTensor{
			{"output_norm.weight", []uint64{32}, 0, 0},
			{"blk.0.attn_q.weight", []uint64{32, 2}, 8, 128},
		},
		data: 128 + 68,
	}
}

func kvOne(key string, typ Type, val func(b *raw)) func(b *raw) {
	return func(b *raw) { b.str(key); b.u32(uint32(typ)); val(b) }
}

func TestValidRaw(t *testing.T) {
	f, err := OpenBytes("valid.gguf", validRaw().bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors()) != 2 || f.Architecture() != "qwen2" {
		t.Errorf("tensors %d arch %q", len(f.Tensors()), f.Architecture())
	}
}

func TestBadInput(t *testing.T) {
	mod := func(edit func(f *rawFile)) []byte {
		f := validRaw()
		edit(&f)
		return f.bytes()
	}
	withTensors := func(ts ...rawTensor) []byte {
		return mod(func(f *rawFile) { f.tensors = ts })
	}
	withKV := func(kv func(b *raw)) []byte {
		return mod(func(f *rawFile) { f.nKV = 1; f.kv = kv })
	}
	cases := []struct {
		name string
		data []byte
		want string // a fragment of the message
	}{
		{"empty", nil, "truncated"},
		{"bad magic", mod(func(f *rawFile) { f.magic = "GGML" }), "bad magic"},
		{"big-endian", mod(func(f *rawFile) { f.version = 0x03000000 }), "big-endian"},
		{"big-endian v2", mod(func(f *rawFile) { f.version = 0x02000000 }), "big-endian"},
		{"version 1", mod(func(f *rawFile) { f.version = 1 }), "version 1"},
		{"version 4", mod(func(f *rawFile) { f.version = 4 }), "version 4"},
		{"huge tensor count", mod(func(f *rawFile) { f.nTensors = 1 << 62 }), "tensor count"},
		{"tensor count past end", mod(func(f *rawFile) { f.nTensors = 100 }), ""},
		{"huge kv count", mod(func(f *rawFile) { f.nKV = math.MaxUint64 }), "metadata count"},
		{"kv count past end", mod(func(f *rawFile) { f.nKV = 7 }), ""},
		{"huge key length", withKV(func(b *raw) { b.u64(1 << 63) }), "exceeds"},
		{"huge string length", withKV(kvOne("k", TypeString, func(b *raw) { b.u64(math.MaxUint64) })), "exceeds"},
		{"huge array length", withKV(kvOne("k", TypeArray, func(b *raw) { b.u32(uint32(TypeUint32)); b.u64(1 << 62) })), "array length"},
		{"huge string array", withKV(kvOne("k", TypeArray, func(b *raw) { b.u32(uint32(TypeString)); b.u64(1 << 40) })), "array length"},
		{"huge nested array", withKV(kvOne("k", TypeArray, func(b *raw) { b.u32(uint32(TypeArray)); b.u64(1 << 40) })), "array length"},
		{"array element string too long", withKV(kvOne("k", TypeArray, func(b *raw) { b.u32(uint32(TypeString)); b.u64(1); b.u64(1 << 20) })), "k[0]"},
		{"unknown value type", withKV(kvOne("k", 13, func(b *raw) { b.u32(0) })), "unknown value type"},
		{"unknown array type", withKV(kvOne("k", TypeArray, func(b *raw) { b.u32(99); b.u64(0) })), "unknown type"},
		{"deep arrays", withKV(kvOne("k", TypeArray, func(b *raw) {
			for i := 0; i < 20; i++ {
				b.u32(uint32(TypeArray))
				b.u64(1)
			}
		})), "nested"},
		{"bool 2", withKV(kvOne("k", TypeBool, func(b *raw) { b.u8(2) })), "bool"},
		{"bool array 2", withKV(kvOne("k", TypeArray, func(b *raw) { b.u32(uint32(TypeBool)); b.u64(2); b.u8(1); b.u8(7) })), "bool"},
		{"duplicate key", mod(func(f *rawFile) {
			f.nKV = 2
			f.kv = func(b *raw) {
				kvOne("a", TypeUint8, func(b *raw) { b.u8(1) })(b)
				kvOne("a", TypeUint8, func(b *raw) { b.u8(1) })(b)
			}
		}), "duplicate metadata key"},
		{"alignment 24", withKV(kvOne(KeyAlignment, TypeUint32, func(b *raw) { b.u32(24) })), "power of two"},
		{"alignment 0", withKV(kvOne(KeyAlignment, TypeUint32, func(b *raw) { b.u32(0) })), "power of two"},
		{"alignment string", withKV(kvOne(KeyAlignment, TypeString, func(b *raw) { b.str("32") })), "power of two"},
		{"unknown ggml type", withTensors(rawTensor{"a", []uint64{32}, 99, 0}), "unknown or unsupported ggml type 99"},
		{"removed ggml type 4", withTensors(rawTensor{"a", []uint64{32}, 4, 0}), "ggml type 4"},
		{"duplicate tensor", withTensors(rawTensor{"a", []uint64{8}, 0, 0}, rawTensor{"a", []uint64{8}, 0, 32}), "duplicate tensor name"},
		{"misaligned offset", withTensors(rawTensor{"a", []uint64{8}, 0, 4}), "not a multiple of the alignment"},
		{"offset past end", withTensors(rawTensor{"a", []uint64{8}, 0, 1 << 20}), "past the end"},
		{"huge offset", withTensors(rawTensor{"a", []uint64{8}, 0, math.MaxUint64 - 31}), "offset"},
		{"size past end", withTensors(rawTensor{"a", []uint64{1 << 20}, 0, 0}), "past the end"},
		{"overlap", withTensors(rawTensor{"a", []uint64{16}, 0, 0}, rawTensor{"b", []uint64{16}, 0, 32}), "overlap"},
		{"zero dims", withTensors(rawTensor{"a", nil, 0, 0}), "0 dimensions"},
		{"five dims", withTensors(rawTensor{"a", []uint64{1, 1, 1, 1, 1}, 0, 0}), "5 dimensions"},
		{"dimension overflow", withTensors(rawTensor{"a", []uint64{1 << 40, 1 << 40}, 0, 0}), "overflows"},
		{"huge dimension", withTensors(rawTensor{"a", []uint64{math.MaxUint64}, 0, 0}), "too large"},
		{"zero row hides overflow", withTensors(rawTensor{"a", []uint64{0, 1 << 40, 1 << 40}, 0, 0}), "overflows"},
		{"partial block", withTensors(rawTensor{"a", []uint64{33}, 8, 0}), "block size"},
		{"missing tensor info", mod(func(f *rawFile) { f.tensors = nil; f.nTensors = 1; f.data = 0 }), ""},
		{"canonical clash", withTensors(rawTensor{"token_embd.weight", []uint64{8}, 0, 0}, rawTensor{"model.embed_tokens.weight", []uint64{8}, 0, 32}), "canonical name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := OpenBytes("bad.gguf", c.data)
			if err == nil {
				t.Fatalf("no error; %d tensors", len(f.Tensors()))
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "bad.gguf") || !strings.Contains(msg, c.want) {
				t.Errorf("error %q should name the file and say %q", msg, c.want)
			}
		})
	}
}

// Every prefix of a valid file is refused with an error.
func TestTruncatedSmall(t *testing.T) {
	data := validRaw().bytes()
	for n := 0; n < len(data); n++ {
		if _, err := OpenBytes("cut.gguf", data[:n]); err == nil || !errors.Is(err, ErrInvalid) {
			t.Fatalf("prefix of %d bytes: err %v", n, err)
		}
	}
}

// Prefixes of the real file, cut all through its 5.9 MB header and into its
// tensor data, are refused with an error.
func TestTruncatedReal(t *testing.T) {
	data, err := os.ReadFile(realPath(t, "q8_0"))
	if err != nil {
		t.Fatal(err)
	}
	cuts := []int{0, 3, 4, 7, 8, 15, 16, 23, 24, 25, 31, 40, 63, 64, 100, 1000}
	for n := 4096; n < 6_000_000; n = n*3/2 + 7 {
		cuts = append(cuts, n)
	}
	cuts = append(cuts, 5_934_000, 5_934_056, 5_934_060, 5_934_100, 6_000_000, len(data)/2, len(data)-1)
	for _, n := range cuts {
		if _, err := OpenBytes("cut.gguf", data[:n]); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("prefix of %d bytes: err %v", n, err)
		}
	}
	if _, err := OpenBytes("whole.gguf", data); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	empty := dir + "/empty.gguf"
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := dir + "/bad.gguf"
	if err := os.WriteFile(bad, []byte("GGUF\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir + "/missing.gguf", empty, bad, dir} {
		f, err := Open(p)
		if err == nil {
			f.Close()
			t.Errorf("Open(%s): no error", p)
			continue
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%s): error %q does not name the file", p, err)
		}
	}
}
