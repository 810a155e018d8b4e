package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/format"
)

func init() { register(newTokenizeCmd) }

func newTokenizeCmd(e *env) *cobra.Command {
	var withText bool
	cmd := &cobra.Command{
		Use:   "tokenize MODEL TEXT",
		Short: "Print the token ids of TEXT as a JSON array",
		Long:  "Tokenize prints the ids the model's tokenizer gives TEXT (no chat template, no BOS).",
		Example: `  apr tokenize ./qwen2.5-coder-1.5b "hello world"
  apr tokenize model.gguf --with-text "func main() {}"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := resolveModel(args[0])
			if err != nil {
				return err
			}
			m, err := format.Open(path) // lazily: the tokenizer reads the metadata alone
			if err != nil {
				return err
			}
			defer m.Close()
			ids := m.Tokenizer.Encode(args[1])
			var out any = ids
			if withText {
				type piece struct {
					ID   int    `json:"id"`
					Text string `json:"text"`
				}
				pieces := make([]piece, len(ids))
				for i, id := range ids {
					pieces[i] = piece{ID: id, Text: m.Tokenizer.Decode([]int{id})}
				}
				out = pieces
			}
			b, err := json.Marshal(out)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, string(b))
			return err
		},
	}
	cmd.Flags().BoolVar(&withText, "with-text", false, "print each token's text beside its id")
	return cmd
}
