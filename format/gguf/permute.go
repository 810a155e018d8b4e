package gguf

import (
	"fmt"
	"strings"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// rowPermutation records one llama Q or K tensor whose rows llama.cpp's
// convert_hf_to_gguf.py reordered: within each head of headDim rows, Hugging
// Face row j*headDim/2+i (j in {0,1}) is stored as row 2i+j.
type rowPermutation struct {
	index    int // into File.tensors (or the writer's list)
	heads    int
	rows     int
	rowBytes int
}

// apply returns a reordered copy of data: toGGML true applies llama.cpp's
// permutation (HF -> GGUF), false undoes it (GGUF -> HF).
func (p rowPermutation) apply(data []byte, toGGML bool) []byte {
	out := make([]byte, len(data))
	d := p.rows / p.heads
	half := d / 2
	for h := 0; h < p.heads; h++ {
		for i := 0; i < half; i++ {
			for j := 0; j < 2; j++ {
				g := h*d + 2*i + j     // GGUF row
				hf := h*d + j*half + i // Hugging Face row
				src, dst := g, hf
				if toGGML {
					src, dst = hf, g
				}
				copy(out[dst*p.rowBytes:(dst+1)*p.rowBytes], data[src*p.rowBytes:(src+1)*p.rowBytes])
			}
		}
	}
	return out
}

// llamaPermutations finds the Q/K weights and biases that need their rows
// restored (llama architecture only) and checks that their shapes allow it.
// ts holds canonical names and shapes.
func llamaPermutations(m *meta, ts []*tensor.Tensor) ([]rowPermutation, error) {
	arch, _ := m.String(KeyArchitecture)
	if arch != string(model.ArchLlama) {
		return nil, nil
	}
	var perms []rowPermutation
	var heads, kvHeads int
	for i, t := range ts {
		isQ := strings.HasSuffix(t.Name, "."+model.AttnQ) || strings.HasSuffix(t.Name, "."+model.AttnQB)
		isK := strings.HasSuffix(t.Name, "."+model.AttnK) || strings.HasSuffix(t.Name, "."+model.AttnKB)
		if !strings.HasPrefix(t.Name, "model.layers.") || (!isQ && !isK) {
			continue
		}
		if heads == 0 {
			var err error
			if heads, err = m.intOr(arch+".attention.head_count", 0, 1<<16); err != nil {
				return nil, err
			}
			if kvHeads, err = m.intOr(arch+".attention.head_count_kv", heads, 1<<16); err != nil {
				return nil, err
			}
			if heads == 0 || kvHeads == 0 {
				return nil, fmt.Errorf("gguf: %s: %w: llama Q/K rows cannot be restored without %s.attention.head_count", m.file, ErrInvalid, arch)
			}
		}
		n := heads
		if isK {
			n = kvHeads
		}
		if len(t.Shape) == 0 || t.Shape[0] == 0 {
			continue
		}
		rows := t.Shape[0]
		if rows%(2*n) != 0 || len(t.Data)%rows != 0 {
			return nil, fmt.Errorf("gguf: %s: %w: tensor %q: %d rows do not split into %d heads of an even size", m.file, ErrInvalid, t.Name, rows, n)
		}
		perms = append(perms, rowPermutation{index: i, heads: n, rows: rows, rowBytes: len(t.Data) / rows})
	}
	return perms, nil
}
