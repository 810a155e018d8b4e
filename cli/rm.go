package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/hub"
)

func init() { register(newRmCmd) }

func newRmCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm MODEL...",
		Aliases: []string{"remove"},
		Short:   "Delete models from the local cache",
		Long: "Rm deletes a model from the Hugging Face cache: for a GGUF file (hf://Org/Name/FILE.gguf or\n" +
			"Org/Name:QUANT) that file, for Org/Name the whole repository. Files that another model of\n" +
			"the cache still uses are kept. Names are the ones apr list shows.",
		Example: `  apr rm qwen2.5-coder:1.5b
  apr rm Qwen/Qwen2.5-Coder-1.5B-Instruct`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cache := hub.FromEnv().Cache
			for _, arg := range args {
				ref, err := hub.Parse(arg)
				if err != nil {
					return err
				}
				rm, err := cache.Remove(ref)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "deleted %s (%s freed)\n", arg, humanBytes(rm.Freed))
			}
			return nil
		},
	}
}
