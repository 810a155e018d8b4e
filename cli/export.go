package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func init() { register(newExportCmd) }

func newExportCmd(e *env) *cobra.Command {
	var f convertFlags
	cmd := &cobra.Command{
		Use:   "export MODEL.apr --format gguf|safetensors -o OUT",
		Short: "Export an APR file as GGUF or as a Hugging Face folder",
		Long: "Export writes an APR model as a GGUF file llama.cpp loads (quantized blocks unchanged) or as a\n" +
			"Hugging Face SafeTensors folder (quantized tensors dequantized to float32).",
		Example: `  apr export coder.apr --format gguf -o coder.gguf
  apr export coder.apr --format safetensors -o ./coder-hf`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.convertModel(cmd, args[0], &f)
		},
	}
	f.registerOutput(cmd)
	f.registerFormat(cmd)
	f.registerType(cmd)
	cmd.SetContext(context.Background())
	return cmd
}
