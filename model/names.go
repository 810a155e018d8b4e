package model

import "fmt"

// Canonical tensor names (Hugging Face spelling). Every format maps its own
// names to these in exactly one table; weights are row-major [out, in].
const (
	TokenEmbd  = "model.embed_tokens.weight"
	OutputNorm = "model.norm.weight"
	Output     = "lm_head.weight"
)

// Per-layer tensor name suffixes (after "model.layers.N.").
const (
	AttnNorm = "input_layernorm.weight"
	AttnQ    = "self_attn.q_proj.weight"
	AttnK    = "self_attn.k_proj.weight"
	AttnV    = "self_attn.v_proj.weight"
	AttnQB   = "self_attn.q_proj.bias"
	AttnKB   = "self_attn.k_proj.bias"
	AttnVB   = "self_attn.v_proj.bias"
	AttnO    = "self_attn.o_proj.weight"
	FFNNorm  = "post_attention_layernorm.weight"
	FFNGate  = "mlp.gate_proj.weight"
	FFNUp    = "mlp.up_proj.weight"
	FFNDown  = "mlp.down_proj.weight"
)

// Layer returns the canonical name of a per-layer tensor.
func Layer(i int, suffix string) string {
	return fmt.Sprintf("model.layers.%d.%s", i, suffix)
}
