package cli

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/demo"
)

func init() { register(newRunCmd) }

func newRunCmd(e *env) *cobra.Command {
	var g genFlags
	var raw bool
	cmd := &cobra.Command{
		Use:   "run [MODEL] PROMPT",
		Short: "Answer one prompt and exit",
		Long: "Run applies the model's chat template to PROMPT (unless --raw), generates the answer and prints\n" +
			"only the answer on stdout. MODEL is a Hugging Face model folder or a GGUF file; without it,\n" +
			"the built-in demo model (" + demo.Name + ") answers.",
		Example: `  apr run ./qwen2.5-coder-1.5b "Write a Go function that reverses a string"
  apr run model.gguf --raw --temperature 0 -n 64 "def fibonacci(n):"`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, prompt, err := modelAndPrompt(args)
			if err != nil {
				return err
			}
			l, err := e.load(path, g.loadFlags())
			if err != nil {
				return err
			}
			defer l.Close()
			text := prompt
			if !raw {
				var msgs []chat.Message
				if g.system != "" {
					msgs = append(msgs, chat.Message{Role: "system", Content: g.system})
				}
				msgs = append(msgs, chat.Message{Role: "user", Content: prompt})
				if text, err = l.model.Template.Render(chat.Request{Messages: msgs, AddGenerationPrompt: true}); err != nil {
					return fmt.Errorf("chat template: %w", err)
				}
			}
			ids := l.model.Tokenizer.Encode(text)
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			seq := g.sequence(l)
			if len(ids) > seq.Context() {
				return fmt.Errorf("the prompt is %d tokens, longer than the context of %d (raise --ctx-size)", len(ids), seq.Context())
			}
			if _, _, err := e.generate(ctx, &g, l, seq, ids, g.sampler(l)); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout)
			return nil
		},
	}
	g.register(cmd)
	cmd.Flags().BoolVar(&raw, "raw", false, "send the prompt as is, without the chat template")
	cmd.SetContext(context.Background())
	return cmd
}

// modelAndPrompt splits run's arguments: [MODEL] PROMPT.
func modelAndPrompt(args []string) (string, string, error) {
	if len(args) == 2 {
		return args[0], args[1], nil
	}
	path, err := defaultModel()
	if err != nil {
		return "", "", err
	}
	return path, args[0], nil
}

// defaultModel is the built-in demo model.
func defaultModel() (string, error) { return demo.Name, nil }
