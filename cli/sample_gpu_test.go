package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

// TestRunSampledOnGPUMatchesCPU: `apr run` with temperature, top-k, top-p
// and a repeat penalty, or greedy with a repeat penalty, on the GPU (which
// draws from its own top-k candidates, engine.Draw) writes the text the
// CPU writes with the same seed, for the GGUF models, whose logits the GPU
// computes bit for bit as the CPU does.
func TestRunSampledOnGPUMatchesCPU(t *testing.T) {
	needGPU(t)
	prompt := testref.HFOutputs(t)[0].Text
	settings := [][]string{
		{"--temp", "0.8", "--top-k", "40", "--repeat-penalty", "1"},
		{"--temp", "0.8", "--top-k", "40", "--top-p", "0.95", "--repeat-penalty", "1.1"},
		{"--temp", "1.3", "--top-k", "200", "--min-p", "0.02"},
		{"--temp", "0", "--repeat-penalty", "1.3"},
	}
	for _, q := range []string{"q8_0", "q4_k_m"} {
		t.Run(q, func(t *testing.T) { runSampled(t, q, prompt, settings) })
	}
}

// runSampled compares `apr run`'s texts on the CPU and the GPU for the
// tiny GGUF model quantized as q, for each of settings and three seeds.
func runSampled(t *testing.T, q, prompt string, settings [][]string) {
	model := testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-"+q+".gguf")
	for i, set := range settings {
		for _, seed := range []int{1, 7, 42} {
			args := func(device string) []string {
				a := []string{"run", model, "--raw", "-n", "32", "--seed", fmt.Sprint(seed), "--device", device, "--verbose"}
				return append(append(a, set...), prompt)
			}
			code, want, errOut := apr(t, "", args("cpu")...)
			if code != 0 {
				t.Fatalf("%s %v on the CPU: exit %d: %s", q, set, code, errOut)
			}
			code, got, errOut := apr(t, "", args("cuda")...)
			if code != 0 {
				t.Fatalf("%s %v on the GPU: exit %d: %s", q, set, code, errOut)
			}
			if !strings.Contains(errOut, "device cuda (") {
				t.Fatalf("%s %v: not on the GPU: %s", q, set, errOut)
			}
			if got != want {
				t.Errorf("%s settings %d seed %d: GPU %q, CPU %q", q, i, seed, got, want)
			}
		}
	}
}
