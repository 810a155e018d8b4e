package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/tensor"
)

// rawFile builds a file from a header text and a data area of dataLen bytes
// (filled with a counting pattern), without any validation.
func rawFile(hdr string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(hdr)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(hdr)))
	b = append(b, hdr...)
	for i := range dataLen {
		b = append(b, byte(i))
	}
	return b
}

// withLen builds a file whose header length field says n, followed by rest.
func withLen(n uint64, rest string) []byte {
	b := make([]byte, 8, 8+len(rest))
	binary.LittleEndian.PutUint64(b, n)
	return append(b, rest...)
}

func TestOpenRealModel(t *testing.T) {
	path := filepath.Join(testref.ModelDir(t), "model.safetensors")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	tests := []struct {
		name  string
		shape []int
	}{
		{"model.embed_tokens.weight", []int{151936, 128}},
		{"model.norm.weight", []int{128}},
		{"model.layers.0.self_attn.q_proj.weight", []int{128, 128}},
		{"model.layers.0.self_attn.k_proj.weight", []int{64, 128}},
		{"model.layers.0.self_attn.v_proj.weight", []int{64, 128}},
		{"model.layers.0.self_attn.o_proj.weight", []int{128, 128}},
		{"model.layers.0.self_attn.q_proj.bias", []int{128}},
		{"model.layers.0.self_attn.k_proj.bias", []int{64}},
		{"model.layers.0.self_attn.v_proj.bias", []int{64}},
		{"model.layers.0.mlp.gate_proj.weight", []int{512, 128}},
		{"model.layers.0.mlp.up_proj.weight", []int{512, 128}},
		{"model.layers.0.mlp.down_proj.weight", []int{128, 512}},
		{"model.layers.3.input_layernorm.weight", []int{128}},
		{"model.layers.3.post_attention_layernorm.weight", []int{128}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn, ok := f.Tensor(tt.name)
			if !ok {
				t.Fatalf("missing tensor %s", tt.name)
			}
			if tn.DType != tensor.BF16 || !slices.Equal(tn.Shape, tt.shape) {
				t.Errorf("got %v %v, want BF16 %v", tn.DType, tn.Shape, tt.shape)
			}
			if err := tn.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
	if _, ok := f.Tensor("lm_head.weight"); ok {
		t.Error("lm_head.weight present; the model ties its embeddings")
	}
	all := f.Tensors()
	if len(all) != 2+4*12 {
		t.Errorf("%d tensors, want 50", len(all))
	}
	if !slices.IsSortedFunc(all, func(a, b *tensor.Tensor) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Tensors() not sorted by name")
	}
	if got := f.Metadata()["format"]; got != "pt" {
		t.Errorf("metadata format = %q, want pt", got)
	}

	// The mapped view must hold the bytes at the header's offsets.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint64(raw)
	body := raw[8+hlen:]
	total := 0
	for _, tn := range all {
		total += len(tn.Data)
	}
	if total != len(body) {
		t.Errorf("tensors cover %d bytes, data area is %d", total, len(body))
	}
	q, _ := f.Tensor("model.layers.0.self_attn.q_proj.weight")
	const qBegin = 39338880 // from the header
	if !bytes.Equal(q.Data, body[qBegin:qBegin+len(q.Data)]) {
		t.Error("q_proj bytes differ from the file at its data_offsets")
	}

	// Parse over the same bytes agrees with Open.
	p, err := Parse(path, raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range all {
		pt, ok := p.Tensor(tn.Name)
		if !ok || !bytes.Equal(pt.Data, tn.Data) || !slices.Equal(pt.Shape, tn.Shape) {
			t.Errorf("Parse and Open disagree on %s", tn.Name)
		}
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if q.Data != nil {
		t.Error("Data still set after Close")
	}
}

func TestOpenDirSingleFile(t *testing.T) {
	s, err := OpenDir(testref.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Tensors()) != 50 || len(s.Files()) != 1 {
		t.Errorf("%d tensors in %d files, want 50 in 1", len(s.Tensors()), len(s.Files()))
	}
	if tn, ok := s.Tensor("model.embed_tokens.weight"); !ok || !slices.Equal(tn.Shape, []int{151936, 128}) {
		t.Errorf("embed_tokens: %v %v", ok, tn)
	}
	if s.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", s.Metadata())
	}
}

// sample returns small tensors of several dtypes and shapes.
func sample() []*tensor.Tensor {
	mk := func(name string, d tensor.DType, shape ...int) *tensor.Tensor {
		n, _ := tensor.NumElements(shape)
		b, _ := d.RowBytes(n)
		data := make([]byte, b)
		for i := range data {
			data[i] = byte(i*7 + len(name))
		}
		return &tensor.Tensor{Name: name, DType: d, Shape: shape, Data: data}
	}
	return []*tensor.Tensor{
		mk("a.weight", tensor.BF16, 3, 5),
		mk("b.bias", tensor.F32, 5),
		mk("c.f16", tensor.F16, 2, 2, 2),
		mk("d.f64", tensor.F64, 3),
		mk("e.i8", tensor.I8, 7),
		mk("f.i16", tensor.I16, 1, 3),
		mk("g.i32", tensor.I32, 2),
		mk("h.i64", tensor.I64, 1),
		mk("i.u8", tensor.U8, 9),
		mk("j.u16", tensor.U16, 3),
		mk("k.u32", tensor.U32, 3),
		mk("l.u64", tensor.U64, 2),
		mk("m.bool", tensor.Bool, 4),
		mk("n.f8e4m3", tensor.F8E4M3, 5),
		mk("o.f8e5m2", tensor.F8E5M2, 5),
		mk("p.scalar", tensor.F32),
		mk("q.empty", tensor.F32, 0, 4),
		mk("r.empty2", tensor.BF16, 0),
		mk("ünïcode \"quoted\" <&>", tensor.F32, 1),
	}
}

func equalTensors(t *testing.T, got, want []*tensor.Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b *tensor.Tensor) int { return strings.Compare(a.Name, b.Name) })
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("tensor %d: got %s %v %v (%d bytes), want %s %v %v (%d bytes)",
				i, g.Name, g.DType, g.Shape, len(g.Data), w.Name, w.DType, w.Shape, len(w.Data))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		tensors  []*tensor.Tensor
		metadata map[string]string
	}{
		{"empty", nil, nil},
		{"metadata only", nil, map[string]string{"format": "pt"}},
		{"one", sample()[:1], nil},
		{"all dtypes", sample(), map[string]string{"format": "pt", "note": "ü <&> \"q\"\n", "": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tt.tensors, tt.metadata); err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()
			hlen := binary.LittleEndian.Uint64(b)
			if hlen%8 != 0 {
				t.Errorf("header length %d not a multiple of 8", hlen)
			}
			f, err := Parse("roundtrip", b)
			if err != nil {
				t.Fatalf("%v\nheader: %s", err, b[8:8+hlen])
			}
			equalTensors(t, f.Tensors(), tt.tensors)
			md := f.Metadata()
			if len(md) != len(tt.metadata) {
				t.Errorf("metadata %v, want %v", md, tt.metadata)
			}
			for k, v := range tt.metadata {
				if md[k] != v {
					t.Errorf("metadata[%q] = %q, want %q", k, md[k], v)
				}
			}
			// Every tensor is aligned to its element size within the file.
			for _, tn := range f.Tensors() {
				if len(tn.Data) == 0 {
					continue
				}
				off := uintptr(unsafe.Pointer(unsafe.SliceData(tn.Data))) - uintptr(unsafe.Pointer(unsafe.SliceData(b)))
				if off%uintptr(tn.DType.TypeSize()) != 0 {
					t.Errorf("%s at file offset %d, not aligned to %d", tn.Name, off, tn.DType.TypeSize())
				}
			}
			// Writing the parsed file again gives the same bytes.
			var again bytes.Buffer
			if err := Write(&again, f.Tensors(), f.Metadata()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), b) {
				t.Error("second write differs from the first")
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	good := func() *tensor.Tensor {
		return &tensor.Tensor{Name: "x", DType: tensor.F32, Shape: []int{2}, Data: make([]byte, 8)}
	}
	tests := []struct {
		name    string
		tensors []*tensor.Tensor
		md      map[string]string
		want    string
	}{
		{"duplicate", []*tensor.Tensor{good(), good()}, nil, "duplicate tensor name"},
		{"reserved", []*tensor.Tensor{{Name: "__metadata__", DType: tensor.F32, Shape: []int{0}}}, nil, "reserved"},
		{"size mismatch", []*tensor.Tensor{{Name: "x", DType: tensor.F32, Shape: []int{3}, Data: make([]byte, 8)}}, nil, "needs 12 bytes"},
		{"quantized", []*tensor.Tensor{{Name: "x", DType: tensor.Q8_0, Shape: []int{32}, Data: make([]byte, 34)}}, nil, "no SafeTensors encoding"},
		{"invalid dtype", []*tensor.Tensor{{Name: "x", DType: tensor.Invalid}}, nil, "no SafeTensors encoding"},
		{"nil", []*tensor.Tensor{nil}, nil, "nil tensor"},
		{"bad utf8", []*tensor.Tensor{{Name: "\xff", DType: tensor.F32, Shape: []int{0}}}, nil, "UTF-8"},
		{"bad utf8 metadata", nil, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, tt.tensors, tt.md)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const ok = `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	if _, err := Parse("ok", rawFile(ok, 8)); err != nil {
		t.Fatalf("control case: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than the 8-byte header length"},
		{"truncated header length", []byte{1, 2, 3}, "shorter than the 8-byte header length"},
		{"header length past EOF", withLen(100, `{}`), "runs past the end"},
		{"huge header length", withLen(1<<62, `{}`), "exceeds the"},
		{"max uint64 header length", withLen(^uint64(0), `{}`), "exceeds the"},
		{"zero header length", withLen(0, ``), "malformed JSON"},
		{"bad JSON", rawFile(`{"a":{"dtype":"F32",}`, 0), "malformed JSON"},
		{"truncated JSON", rawFile(`{"a":{"dtype":"F32"`, 0), "malformed JSON"},
		{"non-object JSON", rawFile(`[1,2]`, 0), `not a JSON object: found "["`},
		{"string JSON", rawFile(`"x"`, 0), `not a JSON object: found string "x"`},
		{"trailing data", rawFile(`{}{}`, 0), "after the header"},
		{"trailing garbage", rawFile(`{} x`, 0), "after the header"},
		{"invalid UTF-8", rawFile("{\"\xff\":{}}", 0), "UTF-8"},
		{"entry not object", rawFile(`{"a":[1]}`, 0), `tensor "a"`},
		{"missing dtype", rawFile(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, 8), "no dtype"},
		{"missing shape", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, 8), "no shape"},
		{"missing offsets", rawFile(`{"a":{"dtype":"F32","shape":[2]}}`, 8), "no data_offsets"},
		{"unknown dtype", rawFile(`{"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}}`, 8), `unknown dtype "F128"`},
		{"quantized dtype", rawFile(`{"a":{"dtype":"Q8_0","shape":[32],"data_offsets":[0,34]}}`, 34), `unknown dtype "Q8_0"`},
		{"dtype not string", rawFile(`{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, 8), "not a string"},
		{"offsets past end", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "past the end of the 4-byte data area"},
		{"huge offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}}`, 8), "past the end"},
		{"offset overflows uint64", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]}}`, 8), "not an integer in range"},
		{"begin > end", rawFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, 8), "begin after end"},
		{"three offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, 8), "want 2"},
		{"negative offset", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, 8), "negative value"},
		{"float offset", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}}`, 8), "not an integer"},
		{"overlapping tensors", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), "overlap"},
		{"same range twice", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}`, 8), "overlap"},
		{"contained range", rawFile(`{"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}`, 16), "overlap"},
		{"shape/size mismatch", rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "needs 12 bytes"},
		{"dtype size mismatch", rawFile(`{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}`, 8), "needs 16 bytes"},
		{"overflowing shape", rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}}`, 8), "overflows"},
		{"overflowing byte size", rawFile(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}`, 8), "overflows"},
		{"shape dim too large", rawFile(`{"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}}`, 8), "too large"},
		{"negative dims", rawFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), "negative value -2"},
		{"float dims", rawFile(`{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}`, 8), "not an integer"},
		{"shape not array", rawFile(`{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}`, 8), "want an array"},
		{"duplicate names", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, 16), `duplicate tensor name "a"`},
		{"duplicate field", rawFile(`{"a":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}}`, 8), "duplicate dtype"},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, 0), "duplicate __metadata__"},
		{"duplicate metadata key", rawFile(`{"__metadata__":{"k":"a","k":"b"}}`, 0), `duplicate key "k"`},
		{"metadata not strings", rawFile(`{"__metadata__":{"n":1}}`, 0), "not a string"},
		{"metadata not object", rawFile(`{"__metadata__":[]}`, 0), "want an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("bad.safetensors", tt.data)
			if err == nil {
				t.Fatalf("no error; tensors %v", f.Tensors())
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "bad.safetensors") {
				t.Errorf("error %q: want it to name the file and contain %q", err, tt.want)
			}
			t.Log(err)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FormatError", err)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte
		ntens  int
		nmeta  int
		checks func(t *testing.T, f *File)
	}{
		{"empty object", rawFile(`{}`, 0), 0, 0, nil},
		{"space padding", rawFile(`{}      `, 0), 0, 0, nil},
		{"null metadata", rawFile(`{"__metadata__":null}`, 0), 0, 0, nil},
		{"unknown field ignored", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":{"x":[1,2]}}}`, 1), 1, 0, nil},
		{"gap between tensors", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}}`, 8), 2, 0, nil},
		{"empty tensors share an offset", rawFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},"c":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4), 3, 0, nil},
		{"scalar", rawFile(`{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`, 8), 1, 0, func(t *testing.T, f *File) {
			s, _ := f.Tensor("s")
			if len(s.Shape) != 0 || len(s.Data) != 8 {
				t.Errorf("scalar: %v %d bytes", s.Shape, len(s.Data))
			}
		}},
		{"data slice capped", rawFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 4), 1, 0, func(t *testing.T, f *File) {
			a, _ := f.Tensor("a")
			if cap(a.Data) != 2 {
				t.Errorf("cap %d, want 2 (appending must not clobber the file)", cap(a.Data))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.name, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Tensors()) != tt.ntens || len(f.Metadata()) != tt.nmeta {
				t.Errorf("%d tensors, %d metadata; want %d, %d", len(f.Tensors()), len(f.Metadata()), tt.ntens, tt.nmeta)
			}
			if tt.checks != nil {
				tt.checks(t, f)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing", filepath.Join(dir, "nope.safetensors"), "no such file"},
		{"empty file", write("empty.safetensors", nil), "0 bytes, shorter than"},
		{"tiny file", write("tiny.safetensors", []byte{8, 0, 0}), "3 bytes, shorter than"},
		{"header only", write("hdr.safetensors", withLen(8, "")), "runs past the end"},
		{"bad tensor", write("bad.safetensors", rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8)), "needs 12 bytes"},
		{"directory", dir, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Open(tt.path)
			if err == nil {
				f.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q: want it to name %s and contain %q", err, tt.path, tt.want)
			}
		})
	}
}

func TestOpenWritten(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteFile(p, sample(), map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	equalTensors(t, f.Tensors(), sample())
	if f.Path() != p {
		t.Errorf("Path() = %q", f.Path())
	}
}

func ExampleWrite() {
	var buf bytes.Buffer
	w := &tensor.Tensor{Name: "w", DType: tensor.F32, Shape: []int{1, 2}, Data: make([]byte, 8)}
	if err := Write(&buf, []*tensor.Tensor{w}, map[string]string{"format": "pt"}); err != nil {
		panic(err)
	}
	n := binary.LittleEndian.Uint64(buf.Bytes())
	fmt.Printf("%q\n", buf.Bytes()[8:8+n])
	// Output: "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}} "
}

// TestWriteMatchesPython rewrites the shared model (written by the Python
// library) and expects the very same bytes: same header layout, key order and
// padding.
func TestWriteMatchesPython(t *testing.T) {
	path := filepath.Join(testref.ModelDir(t), SingleFileName)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if err := Write(&buf, f.Tensors(), f.Metadata()); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), orig) {
		n := binary.LittleEndian.Uint64(orig)
		got := buf.Bytes()
		m := binary.LittleEndian.Uint64(got)
		t.Errorf("rewrite differs from %s (%d vs %d bytes, header %d vs %d)", path, len(got), len(orig), m, n)
	}
}

func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(testref.ModelDir(b), SingleFileName)
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
