package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/convert"
)

func init() { register(newConvertCmd) }

// convertFlags are the output options shared by convert, import, export and
// quantize.
type convertFlags struct {
	output  string
	format  string
	typ     string
	fuseQKV bool
}

func (f *convertFlags) registerOutput(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.output, "output", "o", "", "output path: a .gguf or .apr file, or a folder for safetensors (required)")
}

func (f *convertFlags) registerFuse(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.fuseQKV, "fuse-qkv", false, "APR output: store each layer's Q/K/V projections as one fused tensor")
}

func (f *convertFlags) registerFormat(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.format, "format", "", "output format: gguf, apr or safetensors (default: from the -o name)")
}

func (f *convertFlags) registerType(cmd *cobra.Command) {
	help := "tensor type: " + strings.ToLower(strings.Join(convert.FileTypeNames(), ", ")) +
		" (llama.cpp's mixtures for the _S/_M/_L types; default: F16 from SafeTensors, else unchanged)"
	cmd.Flags().StringVar(&f.typ, "type", "", help)
	cmd.Flags().StringVar(&f.typ, "quant", "", "same as --type")
	cmd.Flags().StringVar(&f.typ, "outtype", "", "same as --type (convert_hf_to_gguf.py's name)")
	_ = cmd.Flags().MarkHidden("outtype")
}

// outputFormat is --format, or else what the -o name suggests.
func (f *convertFlags) outputFormat() (string, error) {
	if f.output == "" {
		return "", fmt.Errorf("no output: give -o PATH")
	}
	format := strings.ToLower(f.format)
	if format == "" {
		switch strings.ToLower(filepath.Ext(f.output)) {
		case ".gguf":
			format = "gguf"
		case ".apr":
			format = "apr"
		case ".safetensors", "":
			format = "safetensors"
		default:
			return "", fmt.Errorf("cannot tell the output format from %q: give --format gguf|apr|safetensors", f.output)
		}
	}
	switch format {
	case "gguf", "apr", "safetensors":
		return format, nil
	}
	return "", fmt.Errorf("unknown --format %q (want gguf, apr or safetensors)", f.format)
}

// convertModel opens in, checks it and writes it in the flags' format and
// type; the written path goes to stdout, progress to stderr.
func (e *env) convertModel(cmd *cobra.Command, in string, f *convertFlags) error {
	format, err := f.outputFormat()
	if err != nil {
		return err
	}
	ft, err := convert.ParseFileType(f.typ)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	t0 := time.Now()
	m, err := openForConversion(in)
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(e.stderr, "apr: converting %s (%s, %s, %d tensors) to %s\n", in, m.Format, m.Config.Arch, len(m.Tensors), format)
	done := make(chan error, 1)
	go func() { done <- e.write(ctx, format, f.output, m, ft, f.fuseQKV) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// The writers stop at their next write once ctx is cancelled and
		// remove their temporary file; wait so that nothing is left behind.
		fmt.Fprintln(e.stderr, "apr: interrupted, removing the partial output")
		if err = <-done; err != nil {
			return fmt.Errorf("interrupted: nothing written")
		}
	}
	if err != nil {
		return err
	}
	size := ""
	if st, err := os.Stat(f.output); err == nil && !st.IsDir() {
		size = fmt.Sprintf(", %.1f MB", float64(st.Size())/1e6)
	}
	fmt.Fprintf(e.stderr, "apr: wrote %s (%s%s) in %.2fs\n", f.output, format, size, time.Since(t0).Seconds())
	fmt.Fprintln(e.stdout, f.output)
	return nil
}

// write writes m in format to out.
func (e *env) write(ctx context.Context, format, out string, m *convert.Model, ft convert.FileType, fuseQKV bool) error {
	switch format {
	case "gguf":
		r, err := convert.WriteGGUF(ctx, out, m, ft)
		if err != nil {
			return err
		}
		for _, fb := range r.Fallbacks {
			fmt.Fprintf(e.stderr, "apr: %s (rows not a multiple of the block size, as llama.cpp falls back)\n", fb)
		}
		return nil
	}
	if !ft.Keep() {
		q, err := convert.Quantize(ctx, m, ft)
		if err != nil {
			return err
		}
		m = q
	}
	switch format {
	case "apr":
		return convert.WriteAPR(ctx, out, m, convert.APROptions{FuseQKV: fuseQKV})
	case "safetensors":
		r, err := convert.WriteSafeTensors(ctx, out, m)
		if err != nil {
			return err
		}
		if n := len(r.Dequantized); n > 0 {
			fmt.Fprintf(e.stderr, "apr: warning: %d quantized tensors were dequantized to float32; the folder is several times larger than the source\n", n)
		}
		return nil
	}
	return fmt.Errorf("unknown output format %q", format)
}

func newConvertCmd(e *env) *cobra.Command {
	var f convertFlags
	cmd := &cobra.Command{
		Use:   "convert MODEL -o OUT [--format gguf|apr|safetensors] [--type TYPE]",
		Short: "Convert a model between SafeTensors, GGUF and APR",
		Long: "Convert reads a Hugging Face folder, a GGUF or an APR file and writes it in another format.\n" +
			"GGUF output follows llama.cpp: from SafeTensors, 1-D tensors and norms are F32 and other weights F16\n" +
			"(convert_hf_to_gguf.py --outtype f16); quantized types are made from those F16 weights with\n" +
			"llama-quantize's per-tensor rules. The model is checked first (shapes, counts, vocabulary,\n" +
			"architecture, NaN/Inf): on any problem nothing is written. The output appears only when complete.",
		Example: `  apr convert ./Qwen2.5-Coder-1.5B-Instruct --format gguf -o coder-f16.gguf
  apr convert ./Qwen2.5-Coder-1.5B-Instruct --format gguf --type q4_k_m -o coder-q4_k_m.gguf
  apr convert coder-q4_k_m.gguf -o coder.apr
  apr convert coder-q8_0.gguf --format safetensors -o ./coder-hf`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
