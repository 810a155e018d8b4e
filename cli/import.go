package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func init() { register(newImportCmd) }

func newImportCmd(e *env) *cobra.Command {
	f := convertFlags{format: "apr"}
	cmd := &cobra.Command{
		Use:   "import HF_DIR -o MODEL.apr",
		Short: "Import a Hugging Face model folder into an APR file",
		Long: "Import reads a Hugging Face folder (config.json, *.safetensors, tokenizer, chat template) and writes\n" +
			"one self-contained APR file: tensors byte for byte, the full tokenizer, template and provenance.\n" +
			"The model is checked first; on any problem nothing is written.",
		Example: `  apr import ./Qwen2.5-Coder-1.5B-Instruct -o coder.apr`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.convertModel(cmd, args[0], &f)
		},
	}
	f.registerOutput(cmd)
	f.registerFuse(cmd)
	cmd.SetContext(context.Background())
	return cmd
}
