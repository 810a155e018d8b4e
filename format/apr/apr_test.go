package apr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
	"github.com/apr-llm/apr/tokenizer"
)

var writeCorpus = flag.Bool("write-corpus", false, "regenerate the seed corpus in testdata/fuzz/FuzzParse")

// tiny returns the metadata and tensors of a one-layer model small enough
// for byte-level tests: float, half and block tensors.
func tiny() (*Metadata, []*tensor.Tensor) {
	cfg := &model.Config{Arch: model.ArchQwen2, HiddenSize: 32, IntermediateSize: 32, NumLayers: 1, NumHeads: 2,
		NumKVHeads: 1, HeadDim: 16, VocabSize: 4, MaxPositions: 64, RopeTheta: 1e6, RMSNormEps: 1e-6,
		TieWordEmbeddings: true, AttentionBias: true, BOSTokenID: -1, EOSTokenIDs: []int{3}}
	spec := &tokenizer.Spec{Tokens: []string{"a", "b", "ab", "<|e|>"}, Merges: []string{"a b"}, Pre: "qwen2", NFC: true,
		BOS: -1, EOS: []int{3}, Added: []tokenizer.AddedToken{{ID: 3, Content: "<|e|>", Special: true}}}
	md := NewMetadata(cfg, spec, "{{ messages }}", nil, Provenance{Source: "test", SourceFormat: "gguf", Origin: "gguf", Converter: "test"})
	fill := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i*7)
		}
		return b
	}
	l := func(s string) string { return model.Layer(0, s) }
	ts := []*tensor.Tensor{
		{Name: model.TokenEmbd, DType: tensor.Q8_0, Shape: []int{4, 32}, Data: fill(4*34, 1)},
		{Name: model.OutputNorm, DType: tensor.F32, Shape: []int{32}, Data: fill(128, 2)},
		{Name: l(model.AttnQ), DType: tensor.Q4_0, Shape: []int{32, 32}, Data: fill(32*18, 3)},
		{Name: l(model.AttnK), DType: tensor.Q4_0, Shape: []int{16, 32}, Data: fill(16*18, 4)},
		{Name: l(model.AttnV), DType: tensor.Q4_0, Shape: []int{16, 32}, Data: fill(16*18, 5)},
		{Name: l(model.AttnQB), DType: tensor.F32, Shape: []int{32}, Data: fill(128, 6)},
		{Name: l(model.AttnKB), DType: tensor.F32, Shape: []int{16}, Data: fill(64, 7)},
		{Name: l(model.AttnVB), DType: tensor.F32, Shape: []int{16}, Data: fill(64, 8)},
		{Name: l(model.FFNDown), DType: tensor.BF16, Shape: []int{32, 32}, Data: fill(2048, 9)},
		{Name: l(model.FFNUp), DType: tensor.F16, Shape: []int{32, 32}, Data: fill(2048, 10)},
	}
	return md, ts
}

func write(t testing.TB, md *Metadata, ts []*tensor.Tensor, opts WriteOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, md, ts, opts); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestWriteParseRoundTrip(t *testing.T) {
	md, ts := tiny()
	for _, fuse := range []bool{false, true} {
		t.Run(fmt.Sprint("fuse=", fuse), func(t *testing.T) {
			raw := write(t, md, ts, WriteOptions{FuseQKV: fuse})
			f, err := Parse("tiny.apr", raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Verify(); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 10, true: 6}[fuse]; f.Stored() != want {
				t.Errorf("%d tensors stored, want %d", f.Stored(), want)
			}
			for _, e := range f.entries {
				if (f.hdr.dataOff+e.offset)%Alignment != 0 {
					t.Errorf("%s at file offset %d, not %d-byte aligned", e.name, f.hdr.dataOff+e.offset, Alignment)
				}
			}
			got := map[string]*tensor.Tensor{}
			for _, g := range f.Tensors() {
				got[g.Name] = g
			}
			for _, w := range ts {
				g := got[w.Name]
				if g == nil || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
					t.Errorf("%s does not round-trip", w.Name)
				}
			}
			cfg, err := f.Meta.ModelConfig()
			if err != nil || cfg.HiddenSize != 32 || cfg.Arch != model.ArchQwen2 {
				t.Errorf("config %+v, %v", cfg, err)
			}
			spec, err := f.Meta.TokenizerSpec()
			if err != nil || !slices.Equal(spec.Tokens, []string{"a", "b", "ab", "<|e|>"}) || len(spec.Added) != 1 {
				t.Errorf("tokenizer %+v, %v", spec, err)
			}
		})
	}
}

// TestOpenFromDisk maps a written file and loads it as a model.
func TestOpenFromDisk(t *testing.T) {
	md, ts := tiny()
	path := filepath.Join(t.TempDir(), "tiny.apr")
	if err := os.WriteFile(path, write(t, md, ts, WriteOptions{FuseQKV: true}), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Format != "apr" || len(m.Tensors) != len(ts) || m.Tokenizer.VocabSize() != 4 {
		t.Errorf("format %s, %d tensors, vocab %d", m.Format, len(m.Tensors), m.Tokenizer.VocabSize())
	}
}

// TestDamage: a truncated or bit-flipped file is refused, and the error
// names the failing checksum or section.
func TestDamage(t *testing.T) {
	md, ts := tiny()
	raw := write(t, md, ts, WriteOptions{})
	h := decodeHeader(raw)
	flip := func(off uint64) []byte {
		b := slices.Clone(raw)
		b[off] ^= 0x10
		return b
	}
	// The third tensor (attn_q, Q4_0) and a padding byte before the data.
	f, err := Parse("x", raw)
	if err != nil {
		t.Fatal(err)
	}
	q := f.entries[2]
	cases := []struct {
		name    string
		data    []byte
		verify  bool
		wantErr error
		want    string
	}{
		{"truncated header", raw[:100], false, ErrInvalid, "truncated"},
		{"truncated data", raw[:len(raw)-10], false, ErrInvalid, "truncated"},
		{"truncated metadata", raw[:HeaderSize+10], false, ErrInvalid, "truncated"},
		{"bad magic", append([]byte("GGUF"), raw[4:]...), false, ErrInvalid, "magic"},
		{"header bit", flip(20), false, ErrChecksum, "header CRC-32C"},
		{"metadata bit", flip(h.metaOff + 5), false, ErrChecksum, "metadata CRC-32C"},
		{"index bit", flip(h.indexOff + 3), false, ErrChecksum, "tensor index CRC-32C"},
		{"tensor bit", flip(h.dataOff + q.offset + 7), true, ErrChecksum, "tensor model.layers.0.self_attn.q_proj.weight"},
		{"padding bit", flip(h.dataOff - 1), true, ErrChecksum, "file SHA-256"},
		{"trailing bytes", append(slices.Clone(raw), 0), false, ErrInvalid, "after the data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("damaged.apr", c.data)
			if err == nil && c.verify {
				err = f.Verify()
			}
			if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %v naming %q", err, c.wantErr, c.want)
			}
			if !strings.Contains(err.Error(), "damaged.apr") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	// Without Verify, a flipped tensor bit is only found by Verify.
	if _, err := Parse("x", flip(h.dataOff+q.offset+7)); err != nil {
		t.Errorf("Parse checked tensor data: %v", err)
	}
}

func TestWriteErrors(t *testing.T) {
	md, ts := tiny()
	bad := *md
	bad.Architecture = "gpt2"
	cases := map[string]struct {
		md *Metadata
		ts []*tensor.Tensor
	}{
		"no metadata":  {nil, ts},
		"architecture": {&bad, ts},
		"duplicate":    {md, append(slices.Clone(ts), ts[0])},
		"short data":   {md, []*tensor.Tensor{{Name: "x", DType: tensor.F32, Shape: []int{2}, Data: make([]byte, 4)}}},
		"no dims":      {md, []*tensor.Tensor{{Name: "x", DType: tensor.F32, Shape: nil, Data: make([]byte, 4)}}},
		"non-ggml":     {md, []*tensor.Tensor{{Name: "x", DType: tensor.U8, Shape: []int{1}, Data: make([]byte, 1)}}},
	}
	for name, c := range cases {
		if err := Write(&bytes.Buffer{}, c.md, c.ts, WriteOptions{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// seeds are FuzzParse's starting points: valid files and damaged ones.
func seeds(t testing.TB) map[string][]byte {
	md, ts := tiny()
	raw := write(t, md, ts, WriteOptions{})
	fused := write(t, md, ts, WriteOptions{FuseQKV: true})
	h := decodeHeader(raw)
	// A file whose index claims more tensors than it holds, with valid
	// checksums: only the bounds checks stop it.
	recount := slices.Clone(raw)
	binary.LittleEndian.PutUint64(recount[64:], h.count+1)
	hh := decodeHeader(recount)
	copy(recount, hh.encode())
	return map[string][]byte{
		"valid":      raw,
		"fused":      fused,
		"truncated":  raw[:len(raw)/2],
		"header":     raw[:HeaderSize],
		"recount":    recount,
		"empty_meta": append([]byte(nil), raw[:HeaderSize+1]...),
	}
}

func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	for name, data := range seeds(t) {
		path := filepath.Join(dir, name)
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if *writeCorpus {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s: seed corpus is stale (go test ./format/apr -run TestSeedCorpus -write-corpus)", path)
		}
	}
}

// FuzzParse: any input gives a File or an error, never a panic, and a
// parsed file's tensors lie inside the input.
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Each input is tried as it is and with its checksums recomputed,
		// so that mutations reach the checks behind them.
		for _, d := range [][]byte{data, reseal(data)} {
			file, err := Parse("fuzz.apr", d)
			if err != nil {
				continue
			}
			_ = file.Verify()
			for _, tt := range file.Tensors() {
				if err := tt.Validate(); err != nil {
					t.Fatalf("parsed tensor invalid: %v", err)
				}
			}
		}
	})
}

// reseal recomputes the metadata, index and header checksums of a file
// whose sections lie inside it.
func reseal(data []byte) []byte {
	if len(data) < HeaderSize {
		return data
	}
	b := slices.Clone(data)
	h := decodeHeader(b)
	in := func(off, n uint64) bool { return off <= uint64(len(b)) && n <= uint64(len(b))-off }
	if in(h.metaOff, h.metaLen) {
		h.metaCRC = crc(b[h.metaOff : h.metaOff+h.metaLen])
	}
	if in(h.indexOff, h.indexLen) {
		h.indexCRC = crc(b[h.indexOff : h.indexOff+h.indexLen])
	}
	copy(b, h.encode())
	copy(b, data[:4]) // keep the magic as mutated
	binary.LittleEndian.PutUint32(b[headerCRCOffset:], crc(b[:headerCRCOffset]))
	return b
}
