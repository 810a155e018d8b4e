package convert

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// ErrCheck is wrapped by every error of Check: the model is not fit to be
// written, and nothing was.
var ErrCheck = errors.New("conversion stopped")

// Check is the conversion's Jidoka: it stops on anything that would make a
// broken output. The architecture must be Qwen2 or LLaMA; every tensor the
// architecture needs must be present with the shape the config implies and
// no other tensor may be; Q/K/V biases must be present exactly when the
// config says so; the tokenizer must fit the embedding's rows; and every
// value must be finite (quantized tensors are dequantized to be checked).
func Check(m *Model) error {
	cfg := m.Config
	if cfg == nil {
		return fmt.Errorf("%w: %s: no config", ErrCheck, m.Path)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCheck, m.Path, err)
	}
	if cfg.Arch != model.ArchQwen2 && cfg.Arch != model.ArchLlama {
		return fmt.Errorf("%w: %s: architecture %q is not supported (qwen2, llama)", ErrCheck, m.Path, cfg.Arch)
	}
	want := ExpectedShapes(cfg)
	seen := make(map[string]bool, len(m.Tensors))
	for _, t := range m.Tensors {
		if seen[t.Name] {
			return fmt.Errorf("%w: %s: tensor %s appears twice", ErrCheck, m.Path, t.Name)
		}
		seen[t.Name] = true
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCheck, m.Path, err)
		}
		shape, ok := want[t.Name]
		if !ok {
			if isBias(t.Name) && !cfg.AttentionBias {
				return fmt.Errorf("%w: %s: architecture mismatch: tensor %s is a Q/K/V bias but the %s config has none", ErrCheck, m.Path, t.Name, cfg.Arch)
			}
			return fmt.Errorf("%w: %s: unexpected tensor %s for a %s model", ErrCheck, m.Path, t.Name, cfg.Arch)
		}
		if !slices.Equal(shape, t.Shape) {
			return fmt.Errorf("%w: %s: shape mismatch: tensor %s is %v, the config implies %v", ErrCheck, m.Path, t.Name, t.Shape, shape)
		}
	}
	for name := range want {
		if !seen[name] && name != model.Output {
			return fmt.Errorf("%w: %s: count mismatch: tensor %s is missing (%d tensors, a %d-layer %s needs %d)",
				ErrCheck, m.Path, name, len(m.Tensors), cfg.NumLayers, cfg.Arch, len(want)-1)
		}
	}
	if n := len(m.Tokenizer.Tokens); n == 0 || n > cfg.VocabSize {
		return fmt.Errorf("%w: %s: vocabulary size mismatch: the tokenizer has %d tokens, the embedding %d rows", ErrCheck, m.Path, n, cfg.VocabSize)
	}
	for _, id := range append(slices.Clone(m.Tokenizer.EOS), cfg.EOSTokenIDs...) {
		if id < 0 || id >= cfg.VocabSize {
			return fmt.Errorf("%w: %s: vocabulary size mismatch: EOS id %d outside the vocabulary of %d", ErrCheck, m.Path, id, cfg.VocabSize)
		}
	}
	for _, t := range m.Tensors {
		if err := CheckFinite(t); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCheck, m.Path, err)
		}
	}
	return nil
}

// ExpectedShapes returns every tensor a model with this config has, with
// its canonical shape; lm_head.weight is included but optional (tied
// embeddings).
func ExpectedShapes(cfg *model.Config) map[string][]int {
	h, q, kv, ffn := cfg.Dims()
	w := map[string][]int{
		model.TokenEmbd:  {cfg.VocabSize, h},
		model.OutputNorm: {h},
		model.Output:     {cfg.VocabSize, h},
	}
	for i := range cfg.NumLayers {
		for suffix, shape := range map[string][]int{
			model.AttnNorm: {h}, model.FFNNorm: {h},
			model.AttnQ: {q, h}, model.AttnK: {kv, h}, model.AttnV: {kv, h}, model.AttnO: {h, q},
			model.FFNGate: {ffn, h}, model.FFNUp: {ffn, h}, model.FFNDown: {h, ffn},
		} {
			w[model.Layer(i, suffix)] = shape
		}
		if cfg.AttentionBias {
			w[model.Layer(i, model.AttnQB)] = []int{q}
			w[model.Layer(i, model.AttnKB)] = []int{kv}
			w[model.Layer(i, model.AttnVB)] = []int{kv}
		}
	}
	return w
}

func isBias(name string) bool {
	for _, s := range []string{model.AttnQB, model.AttnKB, model.AttnVB} {
		if len(name) > len(s) && name[len(name)-len(s):] == s {
			return true
		}
	}
	return false
}

// CheckFinite fails on the first NaN or infinity in t, naming the tensor and
// the element.
func CheckFinite(t *tensor.Tensor) error {
	bad := -1
	switch t.DType {
	case tensor.F32:
		for i := 0; i+4 <= len(t.Data); i += 4 {
			if binary.LittleEndian.Uint32(t.Data[i:])&0x7f800000 == 0x7f800000 {
				bad = i / 4
				break
			}
		}
	case tensor.F16:
		for i := 0; i+2 <= len(t.Data); i += 2 {
			if binary.LittleEndian.Uint16(t.Data[i:])&0x7c00 == 0x7c00 {
				bad = i / 2
				break
			}
		}
	case tensor.BF16:
		for i := 0; i+2 <= len(t.Data); i += 2 {
			if binary.LittleEndian.Uint16(t.Data[i:])&0x7f80 == 0x7f80 {
				bad = i / 2
				break
			}
		}
	default:
		if !t.DType.Quantized() {
			return fmt.Errorf("tensor %s: dtype %v is not a weight type", t.Name, t.DType)
		}
		dq, err := quant.DequantizeRowFunc(t.DType)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		row := make([]float32, t.Cols())
		for r := range t.Rows() {
			dq(t.Row(r), row)
			for j, v := range row {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return fmt.Errorf("tensor %s: element %d is %v", t.Name, r*len(row)+j, v)
				}
			}
		}
		return nil
	}
	if bad >= 0 {
		return fmt.Errorf("tensor %s: element %d is NaN or infinite", t.Name, bad)
	}
	return nil
}
