package cuda

import (
	"bytes"
	"testing"
)

// TestKernelNamesInPTX checks, without a GPU, that every kernel the Go side
// launches is an entry of the embedded PTX (a renamed or missing kernel
// would otherwise only fail on a GPU machine).
func TestKernelNamesInPTX(t *testing.T) {
	names := []string{"quantize", "rmsnorm", "rope_store", "attention", "attention_fa", "attention_fa_tiled", "attention_fa_m", "attention_fa_cl", "attention_fa_cl_rope", "attention_fa_pl_rope", "attention_fa_rope",
		"silu_quant", "add", "argmax_part", "argmax_final", "mvx_q8_0", "mvx_q8_k", "mvf_bf16", "mvf_f16", "mvf_f32",
		"pick_penalize", "pick_part", "pick_merge"}
	for dt, per := range weightTypes {
		names = append(names, kernelName("matmul_", dt)+"_r1", kernelName("matmul_", dt)+"_r16", kernelName("get_rows_", dt))
		if per > 0 {
			names = append(names, kernelName("matmul_", dt)+"_mv", kernelName("mmq_", dt))
		}
		if splitType(dt) {
			names = append(names, kernelName("matmul_", dt)+"_rt", kernelName("mmq_", dt)+"_t")
		}
	}
	names = append(names, "term_sum")
	for _, byUnit := range mmq32Names {
		for _, n := range byUnit {
			names = append(names, n)
		}
	}
	for _, byUnit := range mmq32KSNames {
		for _, n := range byUnit {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if !bytes.Contains(embeddedPTX, []byte(".entry "+n+"(")) {
			t.Errorf("kernel %s is not in kernels/kernels.ptx", n)
		}
	}
}
