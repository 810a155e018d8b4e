package main

import (
	"context"
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
	"github.com/apr-llm/apr/convert"
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
	Name string // "Q4_K_M", "Q8_0", "F16" (GGUF; convert.ParseFileType names) or "BF16" (SafeTensors folder)
	Ext  string // file name suffix
}

var (
	kindQ4KM = fileKind{"Q4_K_M", "-q4_k_m.gguf"}
	kindQ8_0 = fileKind{"Q8_0", "-q8_0.gguf"}
	kindF16  = fileKind{"F16", "-f16.gguf"}
	kindBF16 = fileKind{"BF16", "-bf16"}
)

// path is where kind's file of shape s lives in dir.
func (k fileKind) path(dir string, s shape) string { return filepath.Join(dir, s.File+k.Ext) }

// vocabSource is the folder whose tokenizer and chat template the models
// carry (../shared/models/qwen2-tiny-coder: the real Qwen2.5 ones).
type vocabSource struct {
	Dir string
}

// loadVocab checks that dir's tokenizer and chat template load.
func loadVocab(dir string) (*vocabSource, error) {
	if _, err := tokenizer.SpecFromDir(dir); err != nil {
		return nil, fmt.Errorf("tokenizer of %s: %w", dir, err)
	}
	if _, err := chat.LoadDir(dir); err != nil {
		return nil, fmt.Errorf("chat template of %s: %w", dir, err)
	}
	return &vocabSource{Dir: dir}, nil
}

// writeModel writes kind's file of shape s into dir, drawing the random
// weights from seed. The BF16 SafeTensors folder is the master copy; every
// GGUF is made from it by apr's converter (package convert: F16 as
// convert_hf_to_gguf.py writes it, then llama-quantize's per-tensor mixture
// with the reference quantizers), so all files hold the same weights. Files
// appear complete or not at all.
func writeModel(dir string, s shape, kind fileKind, v *vocabSource, seed uint64) error {
	master := kindBF16.path(dir, s)
	if _, err := os.Stat(master); err != nil {
		if err := writeHFDir(master, s, v, seed); err != nil {
			return err
		}
	}
	if kind == kindBF16 {
		return nil
	}
	ft, err := convert.ParseFileType(kind.Name)
	if err != nil {
		return err
	}
	m, err := convert.Open(master)
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := convert.WriteGGUF(context.Background(), kind.path(dir, s), m, ft); err != nil {
		return fmt.Errorf("%s: %w", kind.path(dir, s), err)
	}
	return nil
}

// writeHFDir writes a Hugging Face folder of random BF16 weights
// (config.json, the tokenizer files of v, model.safetensors) through a
// temporary folder renamed into place.
func writeHFDir(dir string, s shape, v *vocabSource, seed uint64) error {
	var tensors []*tensor.Tensor
	for _, w := range weightSpecs(&s.Cfg) {
		n, err := tensor.NumElements(w.Shape)
		if err != nil {
			return err
		}
		vals := make([]float32, n)
		w.values(seed, vals)
		data, err := encode(tensor.BF16, w.Shape, vals)
		if err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
		tensors = append(tensors, &tensor.Tensor{Name: w.Name, DType: tensor.BF16, Shape: w.Shape, Data: data})
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := writeHFFiles(tmp, s, tensors, v); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("%s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

func writeHFFiles(dir string, s shape, tensors []*tensor.Tensor, v *vocabSource) error {
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
// once (the tied embedding as the output matrix; the one embedding row the
// token looks up is not counted again).
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
