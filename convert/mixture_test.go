package convert

import (
	"fmt"
	"testing"

	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// TestMixtureLargeModel walks llama.cpp's rules on the shapes of
// Qwen2.5-7B (28 layers, hidden 3584, FFN 18944, 28/4 heads, untied
// output), where no fallback applies: use_more_bits(i, 28) picks layers 0-2,
// 5, 8, ..., 23 and 24-27 for Q6_K attn_v and ffn_down under Q4_K_M and
// Q5_K_M; the output is Q6_K, the untied token embedding the default type;
// Q4_K_S gives Q5_K to the first four attn_v and the first three ffn_down.
func TestMixtureLargeModel(t *testing.T) {
	cfg := &model.Config{Arch: model.ArchQwen2, HiddenSize: 3584, IntermediateSize: 18944, NumLayers: 28,
		NumHeads: 28, NumKVHeads: 4, HeadDim: 128, VocabSize: 152064, RopeTheta: 1e6, RMSNormEps: 1e-6}
	more := map[int]bool{}
	for _, i := range []int{0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27} {
		more[i] = true
	}
	type row struct {
		name  string
		shape []int
	}
	var rows []row
	rows = append(rows, row{"output.weight", []int{152064, 3584}}, row{"output_norm.weight", []int{3584}},
		row{"token_embd.weight", []int{152064, 3584}})
	for i := range 28 {
		for _, r := range []row{
			{"attn_k.weight", []int{512, 3584}}, {"attn_output.weight", []int{3584, 3584}},
			{"attn_q.weight", []int{3584, 3584}}, {"attn_v.weight", []int{512, 3584}},
			{"ffn_down.weight", []int{3584, 18944}}, {"ffn_gate.weight", []int{18944, 3584}},
			{"ffn_norm.weight", []int{3584}}, {"ffn_up.weight", []int{18944, 3584}},
		} {
			rows = append(rows, row{fmt.Sprintf("blk.%d.%s", i, r.name), r.shape})
		}
	}
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.name
	}
	cases := []struct {
		typ  string
		want func(name string, layer int) tensor.DType
	}{
		{"Q4_K_M", func(name string, layer int) tensor.DType {
			switch {
			case name == "output.weight":
				return tensor.Q6_K
			case (name == "attn_v.weight" || name == "ffn_down.weight") && more[layer]:
				return tensor.Q6_K
			}
			return tensor.Q4_K
		}},
		{"Q5_K_M", func(name string, layer int) tensor.DType {
			switch {
			case name == "output.weight":
				return tensor.Q6_K
			case (name == "attn_v.weight" || name == "ffn_down.weight") && more[layer]:
				return tensor.Q6_K
			}
			return tensor.Q5_K
		}},
		{"Q4_K_S", func(name string, layer int) tensor.DType {
			switch {
			case name == "output.weight":
				return tensor.Q6_K
			case name == "attn_v.weight" && layer < 4, name == "ffn_down.weight" && layer < 3:
				return tensor.Q5_K
			}
			return tensor.Q4_K
		}},
		{"Q8_0", func(string, int) tensor.DType { return tensor.Q8_0 }},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			s := newMixState(cfg, names, mustType(t, c.typ))
			for _, r := range rows {
				got := s.typeFor(r.name, r.shape, tensor.F16)
				layer, suffix := -1, r.name
				fmt.Sscanf(r.name, "blk.%d.", &layer)
				if layer >= 0 {
					suffix = r.name[len(fmt.Sprintf("blk.%d.", layer)):]
				}
				want := tensor.F16
				if len(r.shape) == 2 {
					want = c.want(suffix, layer)
				}
				if got != want {
					t.Errorf("%s: %v, want %v", r.name, got, want)
				}
			}
			if len(s.fallbacks) != 0 {
				t.Errorf("fallbacks %q, want none", s.fallbacks)
			}
		})
	}
}

func TestParseFileType(t *testing.T) {
	for in, want := range map[string]string{"q4_k_m": "Q4_K_M", "Q4_K": "Q4_K_M", "f16": "F16", "": "keep", "bf16": "BF16"} {
		ft, err := ParseFileType(in)
		if err != nil || ft.Name != want {
			t.Errorf("%q: %v %v, want %s", in, ft.Name, err, want)
		}
	}
	if _, err := ParseFileType("q9"); err == nil {
		t.Error("q9: no error")
	}
}
