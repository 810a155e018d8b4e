package cli

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/hub"
)

func init() { register(newPullCmd) }

func newPullCmd(e *env) *cobra.Command {
	var (
		revision string
		jobs     int
		retries  int
	)
	cmd := &cobra.Command{
		Use:   "pull MODEL...",
		Short: "Download models from the Hugging Face Hub into the local cache",
		Long: "Pull downloads a model into the Hugging Face cache (models--Org--Name under $HF_HUB_CACHE,\n" +
			"$HF_HOME/hub or ~/.cache/huggingface/hub), where Hugging Face's own tools find it too, and\n" +
			"prints the path to open on stdout. MODEL is one of:\n" +
			"  Org/Name                      a SafeTensors model (config, tokenizer, all weight shards),\n" +
			"                                or the repository's GGUF file (Q4_K_M when it has several)\n" +
			"  Org/Name:Q8_0                 the repository's GGUF file of that quantization\n" +
			"  hf://Org/Name[@REV]/FILE.gguf one file, at a branch, tag or commit\n" +
			"  https://huggingface.co/Org/Name/resolve/main/FILE.gguf\n" +
			"  a short name: " + shortNames() + "\n\n" +
			"Interrupted downloads resume where they stopped; every file is checked against the hub's\n" +
			"sha256 (LFS) or git hash before it appears in the cache. Files already there are not\n" +
			"downloaded again. Environment: HF_ENDPOINT (a mirror), HF_TOKEN (gated and private\n" +
			"models; also read from $HF_HOME/token), HF_HUB_OFFLINE=1 (use only the cache).",
		Example: `  apr pull qwen2.5-coder:1.5b
  apr pull Qwen/Qwen2.5-Coder-1.5B-Instruct
  apr pull hf://Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := hub.FromEnv()
			c.Jobs, c.Retries, c.UserAgent = jobs, retries, "apr/"+Version
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			for _, arg := range args {
				ref, err := hub.Parse(arg)
				if err != nil {
					return err
				}
				if revision != "" {
					ref.Revision = revision
				}
				obs, stop := e.downloadProgress()
				c.Observer = obs
				if c.Offline {
					fmt.Fprintf(e.stderr, "apr: HF_HUB_OFFLINE is set: looking for %s in %s only\n", ref, c.Cache.Dir)
				}
				got, err := c.Pull(ctx, ref)
				stop()
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, got.Path)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&revision, "revision", "", "branch, tag or commit to pull (default: main, or the one the name gives)")
	cmd.Flags().IntVarP(&jobs, "jobs", "j", 4, "files to download at once")
	cmd.Flags().IntVar(&retries, "retries", 5, "times to resume a file whose transfer breaks")
	return cmd
}

func shortNames() string {
	s := ""
	for _, n := range []string{"qwen2.5-coder:0.5b", "qwen2.5-coder:1.5b", "qwen2.5-coder:3b", "qwen2.5-coder:1.5b-safetensors"} {
		if s != "" {
			s += ", "
		}
		s += n
	}
	return s + " ..."
}
