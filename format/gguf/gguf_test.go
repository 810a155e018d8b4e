package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
	"github.com/apr-llm/apr/tokenizer"
)

func realPath(t testing.TB, quant string) string {
	t.Helper()
	return testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-"+quant+".gguf")
}

func openReal(t testing.TB, quant string) *File {
	t.Helper()
	f, err := Open(realPath(t, quant))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}

func TestOpenRealFiles(t *testing.T) {
	for _, q := range []string{"q8_0", "q4_k_m"} {
		t.Run(q, func(t *testing.T) {
			f := openReal(t, q)
			if f.Version() != 3 || f.Alignment() != 32 {
				t.Errorf("version %d alignment %d, want 3 and 32", f.Version(), f.Alignment())
			}
			if got := len(f.Tensors()); got != 50 {
				t.Errorf("%d tensors, want 50", got)
			}
			if got := len(f.KVs()); got != 28 {
				t.Errorf("%d metadata entries, want 28", got)
			}
			if got := f.Architecture(); got != "qwen2" {
				t.Errorf("architecture %q", got)
			}
			for _, ti := range f.Infos() {
				if _, ok := CanonicalName(ti.Name); !ok {
					t.Errorf("GGML name %q has no canonical name", ti.Name)
				}
			}
			for _, tt := range f.Tensors() {
				if err := tt.Validate(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	want := &model.Config{
		Arch: model.ArchQwen2, HiddenSize: 128, IntermediateSize: 512, NumLayers: 4, NumHeads: 2, NumKVHeads: 1,
		HeadDim: 64, VocabSize: 151936, MaxPositions: 32768, RopeTheta: 1e6, RMSNormEps: 1e-6,
		TieWordEmbeddings: true, AttentionBias: true, BOSTokenID: 151643, EOSTokenIDs: []int{151645, 151643},
	}
	for _, q := range []string{"q8_0", "q4_k_m"} {
		t.Run(q, func(t *testing.T) {
			got, err := openReal(t, q).Config()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Config()\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestCanonicalShapes(t *testing.T) {
	f := openReal(t, "q8_0")
	cases := []struct {
		name  string
		shape []int
		dtype tensor.DType
	}{
		{model.TokenEmbd, []int{151936, 128}, tensor.Q8_0},
		{model.OutputNorm, []int{128}, tensor.F32},
		{model.Layer(0, model.AttnNorm), []int{128}, tensor.F32},
		{model.Layer(0, model.AttnQ), []int{128, 128}, tensor.Q8_0},
		{model.Layer(0, model.AttnK), []int{64, 128}, tensor.Q8_0},
		{model.Layer(0, model.AttnV), []int{64, 128}, tensor.Q8_0},
		{model.Layer(0, model.AttnQB), []int{128}, tensor.F32},
		{model.Layer(0, model.AttnKB), []int{64}, tensor.F32},
		{model.Layer(0, model.AttnVB), []int{64}, tensor.F32},
		{model.Layer(0, model.AttnO), []int{128, 128}, tensor.Q8_0},
		{model.Layer(3, model.FFNNorm), []int{128}, tensor.F32},
		{model.Layer(3, model.FFNGate), []int{512, 128}, tensor.Q8_0},
		{model.Layer(3, model.FFNUp), []int{512, 128}, tensor.Q8_0},
		{model.Layer(3, model.FFNDown), []int{128, 512}, tensor.Q8_0},
	}
	for _, c := range cases {
		tt, ok := f.Tensor(c.name)
		if !ok {
			t.Errorf("%s missing", c.name)
			continue
		}
		if !slices.Equal(tt.Shape, c.shape) || tt.DType != c.dtype {
			t.Errorf("%s: %v %v, want %v %v", c.name, tt.DType, tt.Shape, c.dtype, c.shape)
		}
		if rb, _ := tt.DType.RowBytes(tt.Cols()); len(tt.Data) != rb*tt.Rows() {
			t.Errorf("%s: %d bytes, want %d rows of %d", c.name, len(tt.Data), tt.Rows(), rb)
		}
	}
	if _, ok := f.Tensor(model.Output); ok {
		t.Errorf("%s present in a tied model", model.Output)
	}
	// The first row of the embedding is Q8_0 blocks of token 0 ("!"): 4 blocks of 34 bytes
	// that must sit at the tensor's data offset, i.e. rows are [in]-long.
	emb, _ := f.Tensor(model.TokenEmbd)
	if emb.RowBytes() != 4*34 {
		t.Errorf("embedding row bytes %d, want 136", emb.RowBytes())
	}
}

func TestQ4KMTypes(t *testing.T) {
	f := openReal(t, "q4_k_m")
	want := map[string]tensor.DType{model.TokenEmbd: tensor.Q8_0}
	for i := 0; i < 4; i++ {
		for _, s := range []string{model.AttnQ, model.AttnK, model.AttnO, model.FFNGate, model.FFNUp} {
			want[model.Layer(i, s)] = tensor.Q5_0
		}
		for _, s := range []string{model.AttnNorm, model.FFNNorm, model.AttnQB, model.AttnKB, model.AttnVB} {
			want[model.Layer(i, s)] = tensor.F32
		}
		want[model.Layer(i, model.AttnV)] = tensor.Q5_0
		want[model.Layer(i, model.FFNDown)] = tensor.Q4_K
		if i >= 2 {
			want[model.Layer(i, model.AttnV)] = tensor.Q8_0
			want[model.Layer(i, model.FFNDown)] = tensor.Q6_K
		}
	}
	want[model.OutputNorm] = tensor.F32
	if len(f.Tensors()) != len(want) {
		t.Errorf("%d tensors, want %d", len(f.Tensors()), len(want))
	}
	for name, dt := range want {
		tt, ok := f.Tensor(name)
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if tt.DType != dt {
			t.Errorf("%s: %v, want %v", name, tt.DType, dt)
		}
	}
}

// The architecture and template come from the metadata, not the file name.
func TestRenamedFile(t *testing.T) {
	src, err := os.ReadFile(realPath(t, "q4_k_m"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "c8490f8cd005ac4e.gguf")
	if err := os.WriteFile(p, src, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.Arch != model.ArchQwen2 || c.NumLayers != 4 {
		t.Errorf("config %+v", c)
	}
	tmpl := f.ChatTemplate()
	if len(tmpl) != 2507 || !bytes.Contains([]byte(tmpl), []byte("<|im_start|>")) {
		t.Errorf("chat template of %d bytes: %.80q", len(tmpl), tmpl)
	}
}

func TestTokenizerSpec(t *testing.T) {
	f := openReal(t, "q8_0")
	s, err := f.TokenizerSpec()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tokens) != 151936 || len(s.Merges) != 151387 {
		t.Errorf("%d tokens, %d merges", len(s.Tokens), len(s.Merges))
	}
	if s.Pre != "qwen2" || !s.NFC || s.BOS != -1 || !slices.Equal(s.EOS, []int{151645, 151643}) {
		t.Errorf("pre %q nfc %v bos %d eos %v", s.Pre, s.NFC, s.BOS, s.EOS)
	}
	if s.Tokens[0] != "!" || s.Tokens[151643] != "<|endoftext|>" || s.Tokens[151665] != "" || s.Tokens[151935] != "" {
		t.Errorf("tokens %q %q %q %q", s.Tokens[0], s.Tokens[151643], s.Tokens[151665], s.Tokens[151935])
	}
	if s.Merges[0] != "Ġ Ġ" {
		t.Errorf("first merge %q", s.Merges[0])
	}
	if len(s.Added) != 22 {
		t.Fatalf("%d added tokens, want 22", len(s.Added))
	}
	for i, a := range s.Added {
		if a.ID != 151643+i || a.Content != s.Tokens[a.ID] {
			t.Errorf("added %d: %+v", i, a)
		}
		user := a.Content == "<tool_call>" || a.Content == "</tool_call>"
		if a.Special == user {
			t.Errorf("%q special = %v", a.Content, a.Special)
		}
	}
}

// Writing a file read from llama.cpp gives back llama.cpp's bytes, and
// reading that gives identical metadata and tensors.
func TestRoundTripReal(t *testing.T) {
	for _, q := range []string{"q8_0", "q4_k_m"} {
		t.Run(q, func(t *testing.T) {
			f := openReal(t, q)
			var buf bytes.Buffer
			if err := Write(&buf, f.KVs(), f.Tensors()); err != nil {
				t.Fatal(err)
			}
			orig, err := os.ReadFile(realPath(t, q))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), orig) {
				n := 0
				for n < min(len(orig), buf.Len()) && orig[n] == buf.Bytes()[n] {
					n++
				}
				t.Errorf("written file (%d bytes) differs from llama.cpp's (%d bytes) from byte %d", buf.Len(), len(orig), n)
			}
			back, err := OpenBytes("roundtrip.gguf", buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.KVs(), f.KVs()) {
				t.Error("metadata differs after the round trip")
			}
			a, b := f.Tensors(), back.Tensors()
			if len(a) != len(b) {
				t.Fatalf("%d tensors back, want %d", len(b), len(a))
			}
			for i := range a {
				if a[i].Name != b[i].Name || a[i].DType != b[i].DType || !slices.Equal(a[i].Shape, b[i].Shape) || !bytes.Equal(a[i].Data, b[i].Data) {
					t.Errorf("tensor %s differs after the round trip", a[i].Name)
				}
			}
		})
	}
}

func TestNameTable(t *testing.T) {
	cases := []struct{ ggml, hf string }{
		{"token_embd.weight", "model.embed_tokens.weight"},
		{"output_norm.weight", "model.norm.weight"},
		{"output.weight", "lm_head.weight"},
		{"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
		{"blk.12.attn_q.weight", "model.layers.12.self_attn.q_proj.weight"},
		{"blk.1.attn_k.bias", "model.layers.1.self_attn.k_proj.bias"},
		{"blk.1.attn_v.bias", "model.layers.1.self_attn.v_proj.bias"},
		{"blk.2.attn_output.weight", "model.layers.2.self_attn.o_proj.weight"},
		{"blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"},
		{"blk.3.ffn_gate.weight", "model.layers.3.mlp.gate_proj.weight"},
		{"blk.3.ffn_up.weight", "model.layers.3.mlp.up_proj.weight"},
		{"blk.31.ffn_down.weight", "model.layers.31.mlp.down_proj.weight"},
	}
	for _, c := range cases {
		if got, ok := CanonicalName(c.ggml); !ok || got != c.hf {
			t.Errorf("CanonicalName(%q) = %q, %v", c.ggml, got, ok)
		}
		if got, ok := GGMLName(c.hf); !ok || got != c.ggml {
			t.Errorf("GGMLName(%q) = %q, %v", c.hf, got, ok)
		}
	}
	for _, s := range []string{"rope_freqs.weight", "blk.01.attn_q.weight", "blk.x.attn_q.weight", "blk.1.attn_qq.weight", "blk.-1.attn_q.weight", "blk..attn_q.weight"} {
		if got, ok := CanonicalName(s); ok || got != s {
			t.Errorf("CanonicalName(%q) = %q, %v; want unchanged", s, got, ok)
		}
	}
}

// The GGUF tokenizer matches the Hugging Face folder's: same tokens, merges,
// added tokens and pre-tokenizer. Special differs only where llama.cpp's
// converter marks a token CONTROL that Hugging Face leaves non-special (the
// FIM and repo tokens).
func TestTokenizerSpecMatchesHF(t *testing.T) {
	g, err := openReal(t, "q4_k_m").TokenizerSpec()
	if err != nil {
		t.Fatal(err)
	}
	h, err := tokenizer.SpecFromDir(testref.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	// The GGUF pads the vocabulary to the embedding's 151936 rows with unused ids.
	if len(g.Tokens) < len(h.Tokens) || !slices.Equal(g.Tokens[:len(h.Tokens)], h.Tokens) {
		t.Errorf("tokens differ (%d vs %d)", len(g.Tokens), len(h.Tokens))
	}
	for id := len(h.Tokens); id < len(g.Tokens); id++ {
		if g.Tokens[id] != "" {
			t.Fatalf("padding token %d is %q, want unused", id, g.Tokens[id])
		}
	}
	if !slices.Equal(g.Merges, h.Merges) {
		t.Errorf("merges differ (%d vs %d)", len(g.Merges), len(h.Merges))
	}
	if g.Pre != h.Pre || g.NFC != h.NFC || g.BOS != h.BOS || g.AddBOS != h.AddBOS || g.IgnoreMerges != h.IgnoreMerges {
		t.Errorf("gguf pre %q nfc %v bos %d/%v ignore %v; hf pre %q nfc %v bos %d/%v ignore %v",
			g.Pre, g.NFC, g.BOS, g.AddBOS, g.IgnoreMerges, h.Pre, h.NFC, h.BOS, h.AddBOS, h.IgnoreMerges)
	}
	if len(g.Added) != len(h.Added) {
		t.Fatalf("%d added tokens, hf %d", len(g.Added), len(h.Added))
	}
	for i := range g.Added {
		a, b := g.Added[i], h.Added[i]
		if a.ID != b.ID || a.Content != b.Content || a.Normalized != b.Normalized || a.LStrip != b.LStrip || a.RStrip != b.RStrip {
			t.Errorf("added %d: gguf %+v, hf %+v", i, a, b)
		}
		if a.Special != b.Special && !strings.Contains(a.Content, "fim") && a.Content != "<|repo_name|>" && a.Content != "<|file_sep|>" {
			t.Errorf("added %q: special %v, hf %v", a.Content, a.Special, b.Special)
		}
	}
}

// The GGUF's Config equals the one read from the Hugging Face config.json,
// except the end-of-generation ids, which GGUF lists like
// generation_config.json does (151645 and 151643).
func TestConfigMatchesHF(t *testing.T) {
	g, err := openReal(t, "q8_0").Config()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(testref.ModelDir(t), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := model.ParseHFConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	g.EOSTokenIDs, h.EOSTokenIDs = nil, nil
	if !reflect.DeepEqual(g, h) {
		t.Errorf("gguf %+v\n  hf %+v", g, h)
	}
}
