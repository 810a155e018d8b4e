package gguf

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

var genSeeds = flag.Bool("gen-seeds", false, "rewrite testdata/fuzz/FuzzParse from the real GGUF files")

// FuzzParse feeds arbitrary bytes to the parser: every input must give a
// File or an error wrapping ErrInvalid, never a panic; a File must have valid
// tensors, and writing it must give a file that reads back and writes again
// identically.
func FuzzParse(f *testing.F) {
	f.Add(validRaw().bytes())
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := OpenBytes("fuzz.gguf", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for _, tt := range file.Tensors() {
			if err := tt.Validate(); err != nil {
				t.Fatalf("accepted an invalid tensor: %v", err)
			}
		}
		_, _ = file.Config()
		_, _ = file.TokenizerSpec()
		_ = file.ChatTemplate()
		if file.Alignment()*(len(file.Tensors())+1) > 1<<22 {
			return // a valid file, but its rewrite would be large
		}
		var w1 bytes.Buffer
		if err := Write(&w1, file.KVs(), file.Tensors()); err != nil {
			return // e.g. names ggml would refuse
		}
		back, err := OpenBytes("rewritten.gguf", w1.Bytes())
		if err != nil {
			t.Fatalf("reading a written file: %v", err)
		}
		var w2 bytes.Buffer
		if err := Write(&w2, back.KVs(), back.Tensors()); err != nil {
			t.Fatalf("writing again: %v", err)
		}
		if !bytes.Equal(w1.Bytes(), w2.Bytes()) {
			t.Fatal("write(read(write(x))) differs from write(x)")
		}
	})
}

// miniature rebuilds a real file small: its metadata with arrays cut to n
// entries and the tensors that keep names accepts cut to their first row.
func miniature(t *testing.T, quant string, n int, keep func(name string) bool) []byte {
	f := openReal(t, quant)
	var meta []KV
	for _, kv := range f.KVs() {
		if a, ok := kv.Value.(Array); ok && a.Len() > n {
			switch v := a.Values.(type) {
			case []string:
				a.Values = v[:n]
			case []int32:
				a.Values = v[:n]
			default:
				t.Fatalf("%s: unexpected %T", kv.Key, v)
			}
			kv.Value = a
		}
		meta = append(meta, kv)
	}
	var ts []*tensor.Tensor
	for _, tt := range f.Tensors() {
		if !keep(tt.Name) {
			continue
		}
		small := *tt
		small.Shape = append([]int(nil), tt.Shape...)
		if len(small.Shape) == 2 {
			small.Shape[0] = 1
		}
		small.Data = tt.Data[:tt.RowBytes()*max(1, small.Rows())]
		if len(small.Shape) == 1 {
			small.Data = tt.Data
		}
		ts = append(ts, &small)
	}
	var buf bytes.Buffer
	if err := Write(&buf, meta, ts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGenerateSeeds writes the fuzz seed corpus (go test -run GenerateSeeds -gen-seeds).
func TestGenerateSeeds(t *testing.T) {
	if !*genSeeds {
		t.Skip("run with -gen-seeds to rewrite the seed corpus")
	}
	seeds := map[string][]byte{}
	// Globals, layer 0, and layer 2's Q8_0 attn_v and Q6_K ffn_down.
	q4 := miniature(t, "q4_k_m", 32, func(name string) bool {
		return !strings.HasPrefix(name, "model.layers.") || strings.HasPrefix(name, "model.layers.0.") ||
			name == model.Layer(2, model.AttnV) || name == model.Layer(2, model.FFNDown)
	})
	seeds["q4_k_m_mini"] = q4
	seeds["q8_0_mini"] = miniature(t, "q8_0", 8, func(name string) bool {
		return strings.HasPrefix(name, "model.layers.1.")
	})
	real, err := os.ReadFile(realPath(t, "q8_0"))
	if err != nil {
		t.Fatal(err)
	}
	seeds["q8_0_head1k"] = real[:1024]
	p, err := parse("mini", q4)
	if err != nil {
		t.Fatal(err)
	}
	seeds["q4_k_m_mini_no_data"] = q4[:p.dataOffset]
	mutate := func(name string, edit func(b []byte)) {
		b := bytes.Clone(q4)
		if !strings.Contains(name, "tensor") {
			b = b[:256]
		}
		edit(b)
		seeds[name] = b
	}
	mutate("version1", func(b []byte) { b[4] = 1 })
	mutate("bigendian", func(b []byte) { copy(b[4:8], []byte{0, 0, 0, 3}) })
	mutate("tensor_count", func(b []byte) { b[15] = 0x40 })
	at := bytes.Index(q4, []byte("blk.0.ffn_up.weight")) + len("blk.0.ffn_up.weight")
	mutate("tensor_unknown_type", func(b []byte) { b[at+4+16] = 99 })
	mutate("tensor_misaligned", func(b []byte) { b[at+4+16+4] ^= 4 })
	ts := []*tensor.Tensor{
		rowFill(model.Layer(0, model.AttnQ), 8, 32),
		rowFill(model.Layer(0, model.AttnK), 4, 32),
	}
	var llama bytes.Buffer
	if err := Write(&llama, []KV{{"general.architecture", "llama"}, {"llama.attention.head_count", uint32(2)}, {"llama.attention.head_count_kv", uint32(1)}}, ts); err != nil {
		t.Fatal(err)
	}
	seeds["llama"] = llama.Bytes()
	var all bytes.Buffer
	if err := Write(&all, allTypes(), nil); err != nil {
		t.Fatal(err)
	}
	seeds["all_types"] = all.Bytes()

	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	total := 0
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		total += len(body)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d seeds, %d bytes", len(seeds), total)
}
