package cli

import (
	"encoding/json"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/chat"
	"github.com/apr-llm/apr/profile"
)

func init() { register(newProfileCmd) }

func newProfileCmd(e *env) *cobra.Command {
	var (
		mf      modelFlags
		opts    profile.Options
		prompt  string
		raw     bool
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "profile [MODEL]",
		Short: "Measure where generation time goes, brick by brick",
		Long: "Profile runs a warm-up generation, then a measured one of --tokens greedy tokens, with timers\n" +
			"around the real kernel calls of every brick (token_embed, rms_norm, attention_qkv, rope,\n" +
			"attention_score, attention_out, residual, mlp_gate_up, mlp_down, lm_head, sampling). It prints\n" +
			"each brick's time and share of the measured total, the bricks' sum beside the total with the\n" +
			"unattributed remainder, and prefill and decode tokens/s. Without MODEL the built-in demo model\n" +
			"is profiled.",
		Example: `  apr profile model.gguf --tokens 64
  apr profile ./qwen2.5-coder-1.5b --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, l, err := e.loadOptional(args, &mf)
			if err != nil {
				return err
			}
			defer l.Close()
			text := prompt
			if !raw {
				if text, err = l.model.Template.Render(chat.Request{Messages: []chat.Message{{Role: "user", Content: prompt}}, AddGenerationPrompt: true}); err != nil {
					return fmt.Errorf("chat template: %w", err)
				}
			}
			ids := l.model.Tokenizer.Encode(text)
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			fmt.Fprintf(e.stderr, "apr: profiling %s on %s: %d prompt tokens, %d warm-up and %d measured tokens\n", path, l.engine.Device(), len(ids), opts.Warmup, opts.Tokens)
			r, err := profile.Run(ctx, l.engine, ids, opts)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return r.WriteTable(e.stdout)
		},
	}
	mf.register(cmd)
	mf.registerDevice(cmd)
	mf.registerCache(cmd)
	fl := cmd.Flags()
	fl.IntVarP(&opts.Tokens, "tokens", "n", 32, "tokens generated in the measured run (EOS does not stop it)")
	fl.IntVar(&opts.Warmup, "warmup", 4, "tokens generated in the warm-up run; -1 for none")
	fl.StringVarP(&prompt, "prompt", "p", "Write a Go function that reverses a string.", "prompt to profile with")
	fl.BoolVar(&raw, "raw", false, "send the prompt as is, without the chat template")
	fl.BoolVar(&jsonOut, "json", false, "print the profile as JSON (durations in nanoseconds)")
	return cmd
}
