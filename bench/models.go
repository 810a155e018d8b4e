package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/format/gguf"
	"github.com/apr-llm/apr/format/safetensors"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
	"github.com/apr-llm/apr/tokenizer"
)

// shape is a benchmark model: the dimensions of a real checkpoint, filled
// with random weights.
type shape struct {
	Name string // e.g. "0.5B"
	File string // file name stem
	Cfg  model.Config
}

// qwenShape is a Qwen2.5 configuration: vocab 151936, tied embeddings, Q/K/V
// biases, RoPE theta 1e6, head dim 64.
func qwenShape(name, file string, layers, hidden, inter, heads, kvHeads int) shape {
	return shape{Name: name, File: file, Cfg: model.Config{
		Arch: model.ArchQwen2, HiddenSize: hidden, IntermediateSize: inter, NumLayers: layers,
		NumHeads: heads, NumKVHeads: kvHeads, HeadDim: hidden / heads, VocabSize: 151936,
		MaxPositions: 32768, RopeTheta: 1e6, RMSNormEps: 1e-6, TieWordEmbeddings: true,
		AttentionBias: true, BOSTokenID: 151643, EOSTokenIDs: []int{151645},
	}}
}

// shapes are the benchmark's models: Qwen2.5-Coder-0.5B and -1.5B.
var shapes = []shape{
	qwenShape("0.5B", "qwen2.5-coder-0.5b-random", 24, 896, 4864, 14, 2),
	qwenShape("1.5B", "qwen2.5-coder-1.5b-random", 28, 1536, 8960, 12, 2),
}

// weightSpec is one tensor of a model: canonical name and shape, and how its
// random values are drawn.
type weightSpec struct {
	Name  string
	Shape []int
	Mean  float64 // 1 for norms, 0 otherwise
	Std   float64
}

// weightSpecs lists a model's tensors in llama.cpp's order (token_embd,
// output_norm, then each layer's tensors by GGML name).
func weightSpecs(c *model.Config) []weightSpec {
	h, qDim, kvDim, ffn := c.Dims()
	const std = 0.02
	specs := []weightSpec{
		{model.TokenEmbd, []int{c.VocabSize, h}, 0, std},
		{model.OutputNorm, []int{h}, 1, std},
	}
	for i := 0; i < c.NumLayers; i++ {
		l := func(s string) string { return model.Layer(i, s) }
		specs = append(specs,
			weightSpec{l(model.AttnK), []int{kvDim, h}, 0, std},
			weightSpec{l(model.AttnKB), []int{kvDim}, 0, std},
			weightSpec{l(model.AttnNorm), []int{h}, 1, std},
			weightSpec{l(model.AttnO), []int{h, qDim}, 0, std},
			weightSpec{l(model.AttnQ), []int{qDim, h}, 0, std},
			weightSpec{l(model.AttnQB), []int{qDim}, 0, std},
			weightSpec{l(model.AttnV), []int{kvDim, h}, 0, std},
			weightSpec{l(model.AttnVB), []int{kvDim}, 0, std},
			weightSpec{l(model.FFNDown), []int{h, ffn}, 0, std},
			weightSpec{l(model.FFNGate), []int{ffn, h}, 0, std},
			weightSpec{l(model.FFNNorm), []int{h}, 1, std},
			weightSpec{l(model.FFNUp), []int{ffn, h}, 0, std},
		)
	}
	return specs
}

// chunkRows is how many rows share one random stream, so that values do not
// depend on the number of workers.
const chunkRows = 256

// values fills dst (the tensor's elements, row-major) with normal(Mean, Std)
// values rounded to BF16, the master precision of every file written: the
// BF16 SafeTensors, F16 and quantized GGUFs all hold the same weights. seed
// picks the model.
func (w *weightSpec) values(seed uint64, dst []float32) {
	cols := w.Shape[len(w.Shape)-1]
	rows := len(dst) / cols
	h := fnv.New64a()
	io.WriteString(h, w.Name)
	base := h.Sum64() ^ seed
	parallelChunks((rows+chunkRows-1)/chunkRows, func(c int) {
		r := rand.New(rand.NewPCG(base, uint64(c)))
		lo, hi := c*chunkRows*cols, min((c+1)*chunkRows, rows)*cols
		for i := lo; i < hi; i++ {
			v := float32(w.Mean + w.Std*r.NormFloat64())
			dst[i] = tensor.BF16ToF32(tensor.F32ToBF16(v))
		}
	})
}

// parallelChunks runs f(0..n-1) on all CPUs.
func parallelChunks(n int, f func(int)) {
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				f(c)
			}
		}()
	}
	wg.Wait()
}

// encode converts values to dt: quant.Quantize by row chunks in parallel
// (rows are whole blocks, so chunks quantize independently).
func encode(dt tensor.DType, shp []int, vals []float32) ([]byte, error) {
	cols := shp[len(shp)-1]
	rowBytes, err := dt.RowBytes(cols)
	if err != nil {
		return nil, fmt.Errorf("%v rows of %d: %w", dt, cols, err)
	}
	rows := len(vals) / cols
	out := make([]byte, rows*rowBytes)
	var mu sync.Mutex
	var first error
	parallelChunks((rows+chunkRows-1)/chunkRows, func(c int) {
		lo, hi := c*chunkRows, min((c+1)*chunkRows, rows)
		if err := quant.Quantize(dt, vals[lo*cols:hi*cols], out[lo*rowBytes:hi*rowBytes]); err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		}
	})
	return out, first
}

// fileKind is one file the benchmark writes for a shape.
type fileKind struct {
	Name string // "Q4_K_M", "Q8_0", "F16" (GGUF) or "BF16" (SafeTensors folder)
	Ext  string // file name suffix
	// typeFor picks each tensor's type (canonical name, shape, layer index
	// or -1); nil for the SafeTensors folder (BF16 throughout).
	typeFor  func(c *model.Config, name string, shp []int, layer int) tensor.DType
	fileType uint32 // general.file_type (llama_ftype)
}

var (
	kindQ4KM = fileKind{"Q4_K_M", "-q4_k_m.gguf", typeQ4KM, 15}
	kindQ8_0 = fileKind{"Q8_0", "-q8_0.gguf", uniform(tensor.Q8_0), 7}
	kindF16  = fileKind{"F16", "-f16.gguf", uniform(tensor.F16), 1}
	kindBF16 = fileKind{Name: "BF16", Ext: "-bf16"}
)

// path is where kind's file of shape s lives in dir.
func (k fileKind) path(dir string, s shape) string { return filepath.Join(dir, s.File+k.Ext) }

// uniform gives every matrix type dt (llama-quantize's Q8_0, the converter's
// F16); vectors (norms, biases) stay F32.
func uniform(dt tensor.DType) func(*model.Config, string, []int, int) tensor.DType {
	return func(_ *model.Config, _ string, shp []int, _ int) tensor.DType {
		if len(shp) < 2 {
			return tensor.F32
		}
		return dt
	}
}

// typeQ4KM is llama-quantize's Q4_K_M choice (llama_tensor_get_type in
// src/llama-quant.cpp, no importance matrix) for a Qwen2 model with tied
// embeddings: the embedding (which is also the output) Q6_K, or Q8_0 when its
// rows are not whole 256-blocks; attn_v and ffn_down Q6_K in the layers
// use_more_bits picks; every other matrix Q4_K; then the fallback of a type
// whose block does not divide the row (Q4_K -> Q5_0, Q6_K -> Q8_0).
func typeQ4KM(c *model.Config, name string, shp []int, layer int) tensor.DType {
	if len(shp) < 2 {
		return tensor.F32
	}
	cols := shp[len(shp)-1]
	useMoreBits := func(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }
	t := tensor.Q4_K
	switch {
	case name == model.TokenEmbd || name == model.Output:
		if cols%tensor.Q6_K.BlockSize() != 0 {
			return tensor.Q8_0
		}
		t = tensor.Q6_K
	case name == model.Layer(layer, model.AttnV) || name == model.Layer(layer, model.FFNDown):
		if useMoreBits(layer, c.NumLayers) {
			t = tensor.Q6_K
		}
	}
	if cols%t.BlockSize() != 0 {
		t = map[tensor.DType]tensor.DType{tensor.Q4_K: tensor.Q5_0, tensor.Q6_K: tensor.Q8_0}[t]
	}
	return t
}

// layerOf is the layer index of a canonical per-layer name, or -1.
func layerOf(name string) int {
	var i int
	if _, err := fmt.Sscanf(name, "model.layers.%d.", &i); err != nil {
		return -1
	}
	return i
}

// vocabSource is the tokenizer and chat template the models carry (those of
// ../shared/models/qwen2-tiny-coder, the real Qwen2.5 ones).
type vocabSource struct {
	Dir      string
	Spec     tokenizer.Spec
	Template string
}

func loadVocab(dir string, vocab int) (*vocabSource, error) {
	spec, err := tokenizer.SpecFromDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tokenizer of %s: %w", dir, err)
	}
	for len(spec.Tokens) < vocab {
		spec.Tokens = append(spec.Tokens, "")
	}
	tmpl, err := chat.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("chat template of %s: %w", dir, err)
	}
	return &vocabSource{Dir: dir, Spec: spec, Template: tmpl.Source()}, nil
}

// writeModel writes kind's file of shape s to path (through a temporary
// name, so an interrupted run leaves nothing half-written), drawing the
// random weights from seed.
func writeModel(path string, s shape, kind fileKind, v *vocabSource, seed uint64) error {
	var tensors []*tensor.Tensor
	for _, w := range weightSpecs(&s.Cfg) {
		n, err := tensor.NumElements(w.Shape)
		if err != nil {
			return err
		}
		vals := make([]float32, n)
		w.values(seed, vals)
		dt := tensor.BF16
		if kind.typeFor != nil {
			dt = kind.typeFor(&s.Cfg, w.Name, w.Shape, layerOf(w.Name))
		}
		data, err := encode(dt, w.Shape, vals)
		if err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
		tensors = append(tensors, &tensor.Tensor{Name: w.Name, DType: dt, Shape: w.Shape, Data: data})
	}
	tmp := path + ".tmp"
	os.RemoveAll(tmp)
	var err error
	if kind.typeFor == nil {
		err = writeHFDir(tmp, s, tensors, v)
	} else {
		err = writeGGUF(tmp, s, kind, tensors, v)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func writeGGUF(path string, s shape, kind fileKind, tensors []*tensor.Tensor, v *vocabSource) error {
	meta, err := gguf.Metadata(&s.Cfg, &v.Spec, v.Template)
	if err != nil {
		return err
	}
	meta = append(meta,
		gguf.KV{Key: "general.name", Value: "random weights, Qwen2.5-Coder-" + s.Name + " dimensions"},
		gguf.KV{Key: "general.file_type", Value: kind.fileType})
	if kind.Name != "F16" {
		meta = append(meta, gguf.KV{Key: "general.quantization_version", Value: uint32(2)})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := gguf.Write(f, meta, tensors); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeHFDir writes a Hugging Face folder: config.json, the tokenizer files
// of v, and model.safetensors.
func writeHFDir(dir string, s shape, tensors []*tensor.Tensor, v *vocabSource) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c := &s.Cfg
	cfg := map[string]any{
		"architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2", "hidden_act": "silu",
		"hidden_size": c.HiddenSize, "intermediate_size": c.IntermediateSize,
		"num_hidden_layers": c.NumLayers, "num_attention_heads": c.NumHeads,
		"num_key_value_heads": c.NumKVHeads, "vocab_size": c.VocabSize,
		"max_position_embeddings": c.MaxPositions, "rope_theta": c.RopeTheta, "rms_norm_eps": c.RMSNormEps,
		"tie_word_embeddings": c.TieWordEmbeddings, "bos_token_id": c.BOSTokenID, "eos_token_id": c.EOSTokenIDs[0],
		"torch_dtype": "bfloat16",
	}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		return err
	}
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(v.Dir, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"})
}

// weightBytes is what one decode step reads from the weights: every tensor
// but the embedding, which is read as the (tied) output matrix instead.
func weightBytes(ts []tensorInfo) int64 {
	var n int64
	for _, t := range ts {
		n += t.Bytes
	}
	return n
}

// tensorInfo is a tensor's size in a written file.
type tensorInfo struct {
	Name  string
	Type  string
	Bytes int64
}

// fileTensors lists the tensors of a written GGUF file or SafeTensors folder.
func fileTensors(path string) ([]tensorInfo, error) {
	var ts []*tensor.Tensor
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		f, err := safetensors.OpenDir(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ts = f.Tensors()
	} else {
		f, err := gguf.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ts = f.Tensors()
	}
	out := make([]tensorInfo, len(ts))
	for i, t := range ts {
		out[i] = tensorInfo{t.Name, t.DType.String(), int64(len(t.Data))}
	}
	return out, nil
}
