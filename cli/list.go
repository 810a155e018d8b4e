package cli

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/hub"
)

func init() { register(newListCmd) }

func newListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the models in the local cache",
		Long: "List shows the models in the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or\n" +
			"~/.cache/huggingface/hub), whether apr or Hugging Face's tools downloaded them: the name to\n" +
			"give run, chat or rm, the format, the quantization (GGUF) or dtype (SafeTensors), the size\n" +
			"and the path.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cache := hub.FromEnv().Cache
			entries, err := cache.List()
			if err != nil {
				return err
			}
			rows := make([]listRow, len(entries))
			for i, en := range entries {
				rows[i] = listRow{Name: entryName(en.Ref), Format: en.Format, Quant: entryQuant(en), Size: en.Size, Path: en.Path}
			}
			if asJSON {
				b, err := json.MarshalIndent(rows, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(e.stdout, string(b))
				return err
			}
			if len(rows) == 0 {
				fmt.Fprintf(e.stderr, "apr: no models in %s (apr pull MODEL downloads one)\n", cache.Dir)
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFORMAT\tQUANT\tSIZE\tPATH")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Format, r.Quant, humanBytes(r.Size), r.Path)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}

type listRow struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	Quant  string `json:"quant"`
	Size   int64  `json:"size"`
	Path   string `json:"path"`
}

// entryName is the name that run, chat and rm accept for a cached model:
// its short name when it has one, else Org/Name[@REV][/FILE].
func entryName(r hub.Ref) string {
	if s := hub.ShortName(r); s != "" {
		return s
	}
	return strings.TrimPrefix(r.String(), "hf://")
}

var quantInName = regexp.MustCompile(`(?i)(?:^|[-._])((?:i?q[1-8]_(?:k_[sml]|k|[01]|xxs|xs|s|m|nl))|bf16|f16|f32)(?:[-._]|$)`)

// entryQuant is a GGUF file's quantization as its name gives it, or a
// SafeTensors model's dtype.
func entryQuant(en hub.Entry) string {
	if en.Format == "gguf" {
		if m := quantInName.FindStringSubmatch(path.Base(en.Ref.File)); m != nil {
			return strings.ToUpper(m[1])
		}
		return "-"
	}
	switch en.DType {
	case "bfloat16":
		return "BF16"
	case "float16":
		return "F16"
	case "float32":
		return "F32"
	case "":
		return "-"
	}
	return strings.ToUpper(en.DType)
}
