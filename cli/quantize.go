package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/convert"
)

func init() { register(newQuantizeCmd) }

func newQuantizeCmd(e *env) *cobra.Command {
	var f convertFlags
	cmd := &cobra.Command{
		Use:   "quantize MODEL -o OUT.gguf|OUT.apr --type TYPE",
		Short: "Quantize a model (to GGUF or APR) as llama-quantize does",
		Long: "Quantize writes MODEL (GGUF, APR or a Hugging Face folder, which first becomes F16 as\n" +
			"convert_hf_to_gguf.py makes it) as a GGUF of TYPE, choosing each tensor's type with llama.cpp's\n" +
			"rules: the Q4_K_M/Q5_K_M mixtures, Q8_0 or Q6_K for the (tied) output, and fallbacks for rows\n" +
			"that are not a multiple of 256. Blocks are made by ggml's reference quantizers, bit for bit.\n" +
			"The output format follows -o's name (.gguf or .apr) unless --format is given.\n" +
			"Types: " + strings.Join(convert.FileTypeNames(), ", ") + ".",
		Example: `  apr quantize coder-f16.gguf -o coder-q4_k_m.gguf --type Q4_K_M
  apr quantize ./Qwen2.5-Coder-1.5B-Instruct -o coder-q8_0.gguf --type q8_0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.typ == "" {
				return fmt.Errorf("give --type (%s)", strings.Join(convert.FileTypeNames(), ", "))
			}
			return e.convertModel(cmd, args[0], &f)
		},
	}
	f.registerOutput(cmd)
	f.registerFormat(cmd)
	f.registerType(cmd)
	f.registerFuse(cmd)
	cmd.SetContext(context.Background())
	return cmd
}
