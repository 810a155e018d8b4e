package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/check"
)

func init() { register(newCheckCmd) }

func newCheckCmd(e *env) *cobra.Command {
	var (
		mf      modelFlags
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "check [MODEL]",
		Short: "Run the ten-stage self-check of a model and print its file checksums",
		Long: "Check runs the model through ten stages, each executed for real and each able to fail:\n" +
			" 1 tokenizer round trip on fixed texts, 2 embedding lookup, 3 positional encoding (RoPE),\n" +
			" 4 Q/K/V projection, 5 attention scores (softmax rows sum to 1, output = P·V), 6 MLP, 7 norms,\n" +
			" 8 LM head (vocabulary-sized), 9 logits -> probs (finite, sum to 1, the model predicts a chat\n" +
			" conversation far better than chance), 10 sampler/decode (the greedy answer decodes to text).\n" +
			"Stages 2-8 recompute the forward pass's bricks in float64 from the weights and compare.\n" +
			"It prints a table with the measured value per stage and the SHA-256 of every model file, and\n" +
			"exits non-zero when any stage fails. Without MODEL the built-in demo model is checked.",
		Example: `  apr check ./qwen2.5-coder-1.5b
  apr check model.gguf --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, l, err := e.loadOptional(args, &mf)
			if err != nil {
				return err
			}
			defer l.Close()
			r, err := check.Run(l.model, l.engine)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else if err := r.WriteTable(e.stdout); err != nil {
				return err
			}
			if !r.Pass {
				var names []string
				for _, s := range r.Failed() {
					names = append(names, fmt.Sprintf("stage %d (%s): %s", s.N, s.Name, s.Detail))
				}
				return &exitError{code: 1, err: fmt.Errorf("check %s failed: %s", path, strings.Join(names, "; "))}
			}
			return nil
		},
	}
	mf.register(cmd)
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}

// loadOptional loads the model named by an optional MODEL argument (the
// built-in demo model without one) and returns its path.
func (e *env) loadOptional(args []string, mf *modelFlags) (string, *loaded, error) {
	path, err := defaultModel()
	if err != nil {
		return "", nil, err
	}
	if len(args) > 0 {
		path = args[0]
	}
	l, err := e.load(path, mf)
	return path, l, err
}
