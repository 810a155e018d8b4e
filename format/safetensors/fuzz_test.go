package safetensors

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"github.com/apr-llm/apr/tensor"
)

var writeCorpus = flag.Bool("write-corpus", false, "regenerate the seed corpus in testdata/fuzz/FuzzParse")

// seeds are the fuzzer's starting points: small valid files and mutations of
// them that each trip one check.
func seeds() map[string][]byte {
	small := []*tensor.Tensor{
		{Name: "w", DType: tensor.F32, Shape: []int{2, 2}, Data: []byte("0123456789abcdef")},
		{Name: "b", DType: tensor.BF16, Shape: []int{3}, Data: []byte("xxyyzz")},
		{Name: "n", DType: tensor.I64, Shape: []int{1}, Data: []byte("12345678")},
	}
	write := func(ts []*tensor.Tensor, md map[string]string) []byte {
		var buf bytes.Buffer
		if err := Write(&buf, ts, md); err != nil {
			panic(err)
		}
		return buf.Bytes()
	}
	const dataOK = `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}`
	return map[string][]byte{
		"valid_small":        write(small, map[string]string{"format": "pt"}),
		"valid_all_dtypes":   write(sample(), map[string]string{"format": "pt", "x": "ü"}),
		"valid_empty":        write(nil, nil),
		"valid_handwritten":  rawFile(dataOK, 12),
		"valid_padded_null":  rawFile(`{"__metadata__":null,"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"z":{"dtype":"F16","shape":[0,9],"data_offsets":[8,8]}}    `, 8),
		"bad_overlap":        rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, 12),
		"bad_duplicate":      rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}`, 12),
		"bad_begin_end":      rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[9,1]}}`, 12),
		"bad_overflow_shape": rawFile(`{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, 8),
		"bad_negative_dim":   rawFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4),
		"bad_dtype":          rawFile(`{"a":{"dtype":"Q4_K","shape":[256],"data_offsets":[0,144]}}`, 144),
		"bad_json":           rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]`, 8),
		"bad_header_len":     withLen(1<<40, dataOK),
		"bad_past_end":       rawFile(dataOK, 11),
		"valid_escapes":      rawFile(`{"\u00e9\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"k":"\n"}}`, 1),
	}
}

func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -write-corpus to regenerate testdata/fuzz/FuzzParse")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds() {
		text := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range slices.Sorted(maps.Keys(seeds())) {
		f.Add(seeds()[name])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			if _, ok := err.(*FormatError); !ok {
				t.Fatalf("error %T is not a *FormatError: %v", err, err)
			}
			return
		}
		start := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
		for _, tn := range file.Tensors() {
			if err := tn.Validate(); err != nil {
				t.Fatalf("accepted an invalid tensor: %v", err)
			}
			if len(tn.Data) > 0 {
				p := uintptr(unsafe.Pointer(unsafe.SliceData(tn.Data)))
				if p < start || p+uintptr(len(tn.Data)) > start+uintptr(len(data)) {
					t.Fatalf("tensor %q lies outside the input", tn.Name)
				}
			}
		}
		// Whatever parses must write and parse back to the same thing.
		var buf bytes.Buffer
		if err := Write(&buf, file.Tensors(), file.Metadata()); err != nil {
			t.Fatalf("re-write of a parsed file: %v", err)
		}
		again, err := Parse("again", buf.Bytes())
		if err != nil {
			t.Fatalf("re-parse of a written file: %v", err)
		}
		equalTensors(t, again.Tensors(), file.Tensors())
		if !maps.Equal(again.Metadata(), file.Metadata()) {
			t.Fatalf("metadata %v became %v", file.Metadata(), again.Metadata())
		}
	})
}
