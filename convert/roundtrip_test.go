package convert

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/format/apr"
	"github.com/apr-llm/apr/format/gguf"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

func openT(t *testing.T, path string) *Model {
	t.Helper()
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func sharedGGUF(t *testing.T, quant string) string {
	return testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-"+quant+".gguf")
}

// TestSafeTensorsAPRSafeTensors: SafeTensors -> APR -> SafeTensors keeps
// every tensor byte for byte (with Q/K/V fused inside the APR file or not),
// and the tokenizer, config and chat template survive both steps.
func TestSafeTensorsAPRSafeTensors(t *testing.T) {
	src := openT(t, testref.ModelDir(t))
	for _, fuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "separate", true: "fused"}[fuse], func(t *testing.T) {
			dir := t.TempDir()
			aprPath := filepath.Join(dir, "m.apr")
			if err := WriteAPR(context.Background(), aprPath, src, APROptions{FuseQKV: fuse}); err != nil {
				t.Fatal(err)
			}
			a := openT(t, aprPath)
			if a.Format != FormatAPR || a.Origin != FormatSafeTensors {
				t.Errorf("format %s origin %s", a.Format, a.Origin)
			}
			if fuse {
				f, err := apr.Open(aprPath, apr.Options{Verify: true})
				if err != nil {
					t.Fatal(err)
				}
				if f.Stored() != len(src.Tensors)-2*4*2 {
					t.Errorf("%d tensors stored, want Q/K/V weights and biases fused (%d)", f.Stored(), len(src.Tensors)-16)
				}
				f.Close()
			}
			compareTensors(t, a, src)
			sameModel(t, a, src)
			out := filepath.Join(dir, "hf")
			if _, err := WriteSafeTensors(context.Background(), out, a); err != nil {
				t.Fatal(err)
			}
			back := openT(t, out)
			compareTensors(t, back, src)
			sameModel(t, back, src)
		})
	}
}

// sameModel compares what is not a tensor.
func sameModel(t *testing.T, got, want *Model) {
	t.Helper()
	if !reflect.DeepEqual(got.Config, want.Config) {
		t.Errorf("config\n got %+v\nwant %+v", got.Config, want.Config)
	}
	g, w := got.Tokenizer, want.Tokenizer
	// A GGUF's vocabulary is padded to the embedding's rows with unused
	// ids; a Hugging Face folder's is not.
	trim := func(s []string) []string {
		for len(s) > 0 && s[len(s)-1] == "" {
			s = s[:len(s)-1]
		}
		return s
	}
	// Hugging Face's tokenizer_config.json names one EOS; config.json
	// carries the others.
	eos := func(m *Model) []int {
		ids := append(slices.Clone(m.Tokenizer.EOS), m.Config.EOSTokenIDs...)
		slices.Sort(ids)
		return slices.Compact(ids)
	}
	if !slices.Equal(trim(g.Tokens), trim(w.Tokens)) || !slices.Equal(g.Merges, w.Merges) || !reflect.DeepEqual(g.Added, w.Added) {
		t.Error("tokenizer vocabulary, merges or added tokens differ")
	}
	if g.Pre != w.Pre || g.NFC != w.NFC || g.BOS != w.BOS || !slices.Equal(eos(got), eos(want)) || g.AddBOS != w.AddBOS {
		t.Errorf("tokenizer settings differ: got pre %q nfc %v bos %d eos %v, want pre %q nfc %v bos %d eos %v",
			g.Pre, g.NFC, g.BOS, eos(got), w.Pre, w.NFC, w.BOS, eos(want))
	}
	if got.ChatTemplate != want.ChatTemplate {
		t.Error("chat template differs")
	}
	if !reflect.DeepEqual(got.Generation, want.Generation) {
		t.Errorf("generation %+v, want %+v", got.Generation, want.Generation)
	}
}

// TestGGUFAPRGGUF: GGUF -> APR -> GGUF keeps every tensor (quantized blocks
// included) byte for byte and the metadata equivalent: the same keys with
// the same values.
func TestGGUFAPRGGUF(t *testing.T) {
	for _, q := range []string{"q8_0", "q4_k_m"} {
		t.Run(q, func(t *testing.T) {
			srcPath := sharedGGUF(t, q)
			src := openT(t, srcPath)
			dir := t.TempDir()
			aprPath := filepath.Join(dir, "m.apr")
			if err := WriteAPR(context.Background(), aprPath, src, APROptions{FuseQKV: true}); err != nil {
				t.Fatal(err)
			}
			a := openT(t, aprPath)
			compareTensors(t, a, src)
			sameModel(t, a, src)
			out := filepath.Join(dir, "back.gguf")
			if _, err := WriteGGUF(context.Background(), out, a, Keep); err != nil {
				t.Fatal(err)
			}
			compareTensors(t, openT(t, out), src)
			orig, err := gguf.Open(srcPath)
			if err != nil {
				t.Fatal(err)
			}
			defer orig.Close()
			back, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer back.Close()
			if len(back.KVs()) != len(orig.KVs()) {
				t.Errorf("%d metadata keys, the source has %d", len(back.KVs()), len(orig.KVs()))
			}
			for _, kv := range orig.KVs() {
				v, ok := back.Value(kv.Key)
				if !ok {
					t.Errorf("%s: missing", kv.Key)
				} else if !reflect.DeepEqual(v, kv.Value) {
					t.Errorf("%s = %.80v, the source has %.80v", kv.Key, v, kv.Value)
				}
			}
		})
	}
}

// TestGGUFToSafeTensors: the dequantized folder holds exactly ggml's
// dequantization of every block, and loads as a model.
func TestGGUFToSafeTensors(t *testing.T) {
	src := openT(t, sharedGGUF(t, "q4_k_m"))
	out := filepath.Join(t.TempDir(), "hf")
	r, err := WriteSafeTensors(context.Background(), out, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Dequantized) != 1+4*7 {
		t.Errorf("%d tensors dequantized, want 29", len(r.Dequantized))
	}
	back := openT(t, out)
	sameModel(t, back, src)
	for _, s := range src.Tensors {
		g, ok := back.Tensor(s.Name)
		if !ok {
			t.Fatalf("%s missing", s.Name)
		}
		want := s.Data
		if s.DType.Quantized() {
			f := make([]float32, s.Len())
			if err := quant.Dequantize(s.DType, s.Data, f); err != nil {
				t.Fatal(err)
			}
			want = make([]byte, 4*len(f))
			if err := quant.Quantize(tensor.F32, f, want); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(g.Data, want) {
			t.Errorf("%s: bytes differ from the dequantized source", s.Name)
		}
	}
	m, err := format.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}

// TestHFToQuantizedGGUF: `apr convert DIR --format gguf --type q8_0` gives
// llama.cpp's Q8_0 file's tensors directly (through the F16 step).
func TestHFToQuantizedGGUF(t *testing.T) {
	src := openT(t, testref.ModelDir(t))
	out := filepath.Join(t.TempDir(), "q8.gguf")
	if _, err := WriteGGUF(context.Background(), out, src, mustType(t, "q8_0")); err != nil {
		t.Fatal(err)
	}
	compareTensors(t, openT(t, out), openT(t, sharedGGUF(t, "q8_0")))
}

// TestJidoka: a model with a NaN, a wrong shape, a missing tensor, a
// tokenizer larger than the embedding or a bias the architecture lacks is
// refused, and no output file appears.
func TestJidoka(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(m *Model)
	}{
		{"nan", func(m *Model) {
			t := m.Tensors[0]
			d := slices.Clone(t.Data)
			d[len(d)-1] |= 0x7f // F32 norm: exponent all ones
			d[len(d)-2] |= 0xc0
			m.Tensors[0] = &tensor.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape, Data: d}
		}},
		{"shape", func(m *Model) {
			t := m.Tensors[0]
			m.Tensors[0] = &tensor.Tensor{Name: t.Name, DType: t.DType, Shape: []int{t.Shape[0] / 2}, Data: t.Data[:len(t.Data)/2]}
		}},
		{"count", func(m *Model) { m.Tensors = m.Tensors[:len(m.Tensors)-1] }},
		{"vocabulary", func(m *Model) {
			m.Tokenizer.Tokens = append(slices.Clone(m.Tokenizer.Tokens), make([]string, m.Config.VocabSize)...)
		}},
		{"architecture", func(m *Model) {
			c := *m.Config
			c.AttentionBias = false
			m.Config = &c
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := openT(t, sharedGGUF(t, "q8_0"))
			m.Tensors = slices.Clone(m.Tensors)
			c.mutate(m)
			dir := t.TempDir()
			errs := []error{}
			_, err := WriteGGUF(context.Background(), filepath.Join(dir, "m.gguf"), m, Keep)
			errs = append(errs, err)
			errs = append(errs, WriteAPR(context.Background(), filepath.Join(dir, "m.apr"), m, APROptions{}))
			_, err = WriteSafeTensors(context.Background(), filepath.Join(dir, "hf"), m)
			errs = append(errs, err)
			for _, err := range errs {
				if !errors.Is(err, ErrCheck) {
					t.Errorf("error %v, want a check failure", err)
				} else {
					t.Log(err)
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("output left behind: %v", ents)
			}
		})
	}
}

// TestCancelledWritesNothing: a conversion whose context is cancelled (as
// Ctrl-C does in the CLI) leaves no output and no temporary file.
func TestCancelledWritesNothing(t *testing.T) {
	src := openT(t, sharedGGUF(t, "q8_0"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if _, err := WriteGGUF(ctx, filepath.Join(dir, "m.gguf"), src, mustType(t, "q4_0")); !errors.Is(err, context.Canceled) {
		t.Errorf("GGUF: %v, want context.Canceled", err)
	}
	if err := WriteAPR(ctx, filepath.Join(dir, "m.apr"), src, APROptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("APR: %v, want context.Canceled", err)
	}
	if _, err := WriteSafeTensors(ctx, filepath.Join(dir, "hf"), src); !errors.Is(err, context.Canceled) {
		t.Errorf("SafeTensors: %v, want context.Canceled", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// TestDamagedAPRIsRefused: converting an APR file with a flipped tensor
// byte stops at open, naming the tensor whose checksum failed.
func TestDamagedAPRIsRefused(t *testing.T) {
	src := openT(t, sharedGGUF(t, "q8_0"))
	path := filepath.Join(t.TempDir(), "m.apr")
	if err := WriteAPR(context.Background(), path, src, APROptions{}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-100] ^= 1 // inside the last tensor's data
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	last := src.Tensors[len(src.Tensors)-1].Name
	_, err = Open(path)
	if !errors.Is(err, apr.ErrChecksum) || !strings.Contains(err.Error(), last) {
		t.Fatalf("error %v, want a checksum failure naming %s", err, last)
	}
}
