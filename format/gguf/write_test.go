package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// allTypes holds one metadata entry of every type, arrays of every element
// type (empty ones and nested ones too).
func allTypes() []KV {
	return []KV{
		{"general.architecture", "qwen2"},
		{"u8", uint8(200)}, {"i8", int8(-100)}, {"u16", uint16(60000)}, {"i16", int16(-30000)},
		{"u32", uint32(4e9)}, {"i32", int32(-2e9)}, {"f32", float32(1.5)}, {"b", true}, {"s", "héllo"},
		{"u64", uint64(1 << 63)}, {"i64", int64(-1 << 62)}, {"f64", math.Pi},
		{"a.u8", Array{TypeUint8, []uint8{1, 2}}}, {"a.i8", Array{TypeInt8, []int8{-1}}},
		{"a.u16", Array{TypeUint16, []uint16{7}}}, {"a.i16", Array{TypeInt16, []int16{-7, 7}}},
		{"a.u32", Array{TypeUint32, []uint32{1, 2, 3}}}, {"a.i32", Array{TypeInt32, []int32{-5, 5}}},
		{"a.f32", Array{TypeFloat32, []float32{0.25}}}, {"a.b", Array{TypeBool, []bool{true, false}}},
		{"a.s", Array{TypeString, []string{"a", "", "ü"}}}, {"a.u64", Array{TypeUint64, []uint64{1 << 40}}},
		{"a.i64", Array{TypeInt64, []int64{-1 << 40}}}, {"a.f64", Array{TypeFloat64, []float64{2.5, -1}}},
		{"a.empty", Array{TypeString, []string{}}},
		{"a.nested", Array{TypeArray, []Array{{TypeInt32, []int32{1}}, {TypeString, []string{"x", "y"}}, {TypeArray, []Array{}}}}},
	}
}

func f32Tensor(name string, shape []int, fill func(i int) float32) *tensor.Tensor {
	n, _ := tensor.NumElements(shape)
	data := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(fill(i)))
	}
	return &tensor.Tensor{Name: name, DType: tensor.F32, Shape: shape, Data: data}
}

func writeBytes(t *testing.T, meta []KV, ts []*tensor.Tensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, meta, ts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestMetadataRoundTrip(t *testing.T) {
	meta := allTypes()
	ts := []*tensor.Tensor{
		f32Tensor(model.OutputNorm, []int{3}, func(i int) float32 { return float32(i) }),
		f32Tensor("rope_freqs.weight", []int{2, 1, 5}, func(i int) float32 { return -float32(i) }),
	}
	data := writeBytes(t, meta, ts)
	f, err := OpenBytes("meta.gguf", data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.KVs(), meta) {
		t.Errorf("metadata\n got %#v\nwant %#v", f.KVs(), meta)
	}
	if got := f.Infos()[1]; got.Name != "rope_freqs.weight" || !slices.Equal(got.Ne, []int{5, 1, 2}) {
		t.Errorf("info %+v", got)
	}
	for i, tt := range f.Tensors() {
		if tt.Name != ts[i].Name || !slices.Equal(tt.Shape, ts[i].Shape) || !bytes.Equal(tt.Data, ts[i].Data) {
			t.Errorf("tensor %d: %s %v", i, tt.Name, tt.Shape)
		}
	}
	if !bytes.Equal(writeBytes(t, f.KVs(), f.Tensors()), data) {
		t.Error("second write differs")
	}

	// Accessors.
	check := func(what string, got, want any, err error) {
		t.Helper()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, %v; want %v", what, got, err, want)
		}
	}
	u, err := f.Uint("u16")
	check("Uint(u16)", u, uint64(60000), err)
	u, err = f.Uint("u64")
	check("Uint(u64)", u, uint64(1<<63), err)
	i, err := f.Int("i8")
	check("Int(i8)", i, int64(-100), err)
	fl, err := f.Float("f32")
	check("Float(f32)", fl, 1.5, err)
	b, err := f.Bool("b")
	check("Bool(b)", b, true, err)
	s, err := f.String("s")
	check("String(s)", s, "héllo", err)
	ss, err := f.Strings("a.s")
	check("Strings(a.s)", ss, []string{"a", "", "ü"}, err)
	is, err := f.Ints("a.i16")
	check("Ints(a.i16)", is, []int{-7, 7}, err)
	fs, err := f.Floats("a.f32")
	check("Floats(a.f32)", fs, []float64{0.25}, err)

	for _, c := range []struct {
		name string
		get  func() error
		nf   bool
	}{
		{"missing", func() error { _, err := f.String("nope"); return err }, true},
		{"string as uint", func() error { _, err := f.Uint("s"); return err }, false},
		{"negative as uint", func() error { _, err := f.Uint("i8"); return err }, false},
		{"huge as int", func() error { _, err := f.Int("u64"); return err }, false},
		{"int as float", func() error { _, err := f.Float("u8"); return err }, false},
		{"ints as strings", func() error { _, err := f.Strings("a.i32"); return err }, false},
		{"strings as ints", func() error { _, err := f.Ints("a.s"); return err }, false},
		{"scalar as array", func() error { _, err := f.Floats("f32"); return err }, false},
	} {
		err := c.get()
		if err == nil || errors.Is(err, ErrNotFound) != c.nf || !strings.Contains(err.Error(), "meta.gguf") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if got := f.ChatTemplate(); got != "" {
		t.Errorf("ChatTemplate() = %q for a file without one", got)
	}
}

func TestWriteErrors(t *testing.T) {
	vec := f32Tensor("a", []int{4}, func(int) float32 { return 0 })
	cases := []struct {
		name string
		meta []KV
		ts   []*tensor.Tensor
	}{
		{"duplicate key", []KV{{"a", uint8(1)}, {"a", uint8(2)}}, nil},
		{"bad value type", []KV{{"a", 3}}, nil},
		{"array type mismatch", []KV{{"a", Array{TypeUint32, []int32{1}}}}, nil},
		{"nested mismatch", []KV{{"a", Array{TypeArray, []Array{{TypeBool, []string{}}}}}}, nil},
		{"bad alignment", []KV{{KeyAlignment, uint32(48)}}, nil},
		{"duplicate tensor", nil, []*tensor.Tensor{vec, vec}},
		{"long name", nil, []*tensor.Tensor{{Name: strings.Repeat("x", 64), DType: tensor.F32, Shape: []int{1}, Data: make([]byte, 4)}}},
		{"short data", nil, []*tensor.Tensor{{Name: "b", DType: tensor.F32, Shape: []int{2}, Data: make([]byte, 4)}}},
		{"five dims", nil, []*tensor.Tensor{{Name: "c", DType: tensor.F32, Shape: []int{1, 1, 1, 1, 1}, Data: make([]byte, 4)}}},
		{"no ggml type", nil, []*tensor.Tensor{{Name: "d", DType: tensor.U8, Shape: []int{1}, Data: make([]byte, 1)}}},
	}
	for _, c := range cases {
		if err := Write(&bytes.Buffer{}, c.meta, c.ts); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// rowFill makes an F32 [rows, cols] matrix whose row r holds the value r.
func rowFill(name string, rows, cols int) *tensor.Tensor {
	return f32Tensor(name, []int{rows, cols}, func(i int) float32 { return float32(i / cols) })
}

func rowValues(t *tensor.Tensor) []int {
	var out []int
	for r := 0; r < t.Rows(); r++ {
		out = append(out, int(math.Float32frombits(binary.LittleEndian.Uint32(t.Row(r)))))
	}
	return out
}

// For llama the writer applies convert_hf_to_gguf.py's Q/K row permutation
// and the reader undoes it.
func TestLlamaPermutation(t *testing.T) {
	meta := []KV{
		{"general.architecture", "llama"},
		{"llama.attention.head_count", uint32(2)},
		{"llama.attention.head_count_kv", uint32(1)},
	}
	ts := []*tensor.Tensor{
		rowFill(model.Layer(0, model.AttnQ), 8, 32), // 2 heads of 4
		rowFill(model.Layer(0, model.AttnK), 4, 32), // 1 head of 4
		f32Tensor(model.Layer(0, model.AttnKB), []int{4}, func(i int) float32 { return float32(i) }),
		rowFill(model.Layer(0, model.AttnV), 4, 32), // not permuted
	}
	data := writeBytes(t, meta, ts)
	p, err := parse("llama.gguf", data)
	if err != nil {
		t.Fatal(err)
	}
	// Stored order: numpy's w.reshape(n_head, 2, d/2, cols).swapaxes(1, 2).
	want := map[string][]int{
		"blk.0.attn_q.weight": {0, 2, 1, 3, 4, 6, 5, 7},
		"blk.0.attn_k.weight": {0, 2, 1, 3},
		"blk.0.attn_k.bias":   {0, 2, 1, 3},
		"blk.0.attn_v.weight": {0, 1, 2, 3},
	}
	for _, ti := range p.infos {
		stored := &tensor.Tensor{Name: ti.Name, DType: ti.DType, Shape: canonicalShape(ti.Ne), Data: ti.data}
		if len(stored.Shape) == 1 {
			stored.Shape = []int{stored.Shape[0], 1}
		}
		if got := rowValues(stored); !slices.Equal(got, want[ti.Name]) {
			t.Errorf("%s stored rows %v, want %v", ti.Name, got, want[ti.Name])
		}
	}
	f, err := OpenBytes("llama.gguf", data)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range f.Tensors() {
		if !bytes.Equal(tt.Data, ts[i].Data) {
			t.Errorf("%s: rows %v after reading back", tt.Name, rowValues(tt))
		}
	}
	if !bytes.Equal(writeBytes(t, f.KVs(), f.Tensors()), data) {
		t.Error("rewriting the llama file changes it")
	}

	// Head counts that do not divide the rows are refused.
	bad := []KV{meta[0], {"llama.attention.head_count", uint32(3)}}
	if err := Write(&bytes.Buffer{}, bad, ts[:1]); err == nil {
		t.Error("8 rows in 3 heads: no error")
	}
}

func TestSplit(t *testing.T) {
	dir := t.TempDir()
	ts := []*tensor.Tensor{
		f32Tensor(model.TokenEmbd, []int{4, 8}, func(i int) float32 { return float32(i) }),
		f32Tensor(model.OutputNorm, []int{8}, func(i int) float32 { return 1 }),
		f32Tensor(model.Layer(0, model.AttnNorm), []int{8}, func(i int) float32 { return 2 }),
	}
	write := func(count int, no int, extra []KV, tensors ...*tensor.Tensor) {
		meta := []KV{
			{KeySplitNo, uint16(no)}, {KeySplitCount, uint16(count)}, {KeySplitTensors, int32(len(ts))},
		}
		meta = append(meta, extra...)
		p := filepath.Join(dir, fmt.Sprintf("m-%05d-of-%05d.gguf", no+1, count))
		if err := os.WriteFile(p, writeBytes(t, meta, tensors), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(3, 0, []KV{{"general.architecture", "qwen2"}}, ts[0])
	write(3, 1, nil, ts[1])
	write(3, 2, nil, ts[2])
	for _, no := range []int{1, 2, 3} {
		f, err := Open(filepath.Join(dir, fmt.Sprintf("m-%05d-of-00003.gguf", no)))
		if err != nil {
			t.Fatal(err)
		}
		if f.Architecture() != "qwen2" || len(f.Tensors()) != 3 {
			t.Errorf("split %d: arch %q, %d tensors", no, f.Architecture(), len(f.Tensors()))
		}
		for i, tt := range f.Tensors() {
			if tt.Name != ts[i].Name || !bytes.Equal(tt.Data, ts[i].Data) || f.Infos()[i].Shard != i {
				t.Errorf("split %d: tensor %d is %s", no, i, tt.Name)
			}
		}
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}

	first := filepath.Join(dir, "m-00001-of-00003.gguf")
	bad := []struct {
		name string
		prep func()
	}{
		{"wrong split.no", func() {
			write(3, 1, nil, ts[1])
			os.Rename(filepath.Join(dir, "m-00002-of-00003.gguf"), filepath.Join(dir, "m-00003-of-00003.gguf"))
		}},
		{"missing sibling", func() { os.Remove(filepath.Join(dir, "m-00003-of-00003.gguf")) }},
		{"duplicate across splits", func() { write(3, 2, nil, ts[1]) }},
		{"tensor count", func() { write(3, 2, nil) }},
	}
	for _, c := range bad {
		write(3, 1, nil, ts[1])
		write(3, 2, nil, ts[2])
		c.prep()
		if f, err := Open(first); err == nil {
			f.Close()
			t.Errorf("%s: no error", c.name)
		} else if !strings.Contains(err.Error(), "gguf") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// A split file whose name does not say where its siblings are.
	odd := filepath.Join(dir, "renamed.gguf")
	os.Rename(first, odd)
	if f, err := Open(odd); err == nil {
		f.Close()
		t.Error("split file with an unrelated name: no error")
	}
}
