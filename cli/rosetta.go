package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/rosetta"
)

func init() { register(newRosettaCmd) }

func newRosettaCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rosetta",
		Short: "Compare two models stage by stage or tensor by tensor",
		Long: "Rosetta compares two models that should agree: one model in two formats, or a model and its\n" +
			"quantization. compare-inference runs both on the same tokens; diff compares their tensors.",
	}
	cmd.AddCommand(newCompareInferenceCmd(e), newDiffCmd(e))
	return cmd
}

func newCompareInferenceCmd(e *env) *cobra.Command {
	var (
		mf        modelFlags
		prompt    string
		threshold float64
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "compare-inference A B --prompt TEXT",
		Short: "Run two models on the same tokens and name the first stage where they diverge",
		Long: "compare-inference tokenizes the prompt with both models, runs A's tokens through both and\n" +
			"reports, stage by stage, tokenization, embedding, each layer's output and the last position's\n" +
			"logits (max abs diff, relative diff = max abs diff / max |A|, cosine; argmax and top-5). A stage\n" +
			"diverges when its relative diff exceeds --threshold (logits also when the argmax differs).\n" +
			"Exit status 1 when any stage diverges.",
		Example: `  apr rosetta compare-inference ./coder coder-q4_0.gguf --prompt "def fib(n):"
  apr rosetta compare-inference ./coder coder.apr --prompt "hello" --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if prompt == "" {
				return fmt.Errorf("give --prompt TEXT")
			}
			a, err := e.load(args[0], &mf)
			if err != nil {
				return err
			}
			defer a.Close()
			b, err := e.load(args[1], &mf)
			if err != nil {
				return err
			}
			defer b.Close()
			r, err := rosetta.CompareInference(rosetta.Side{Model: a.model, Engine: a.engine},
				rosetta.Side{Model: b.model, Engine: b.engine}, prompt, threshold)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printReport(e, args[0], args[1], r)
			}
			if r.FirstDivergence != "" {
				return &exitError{code: 1, err: fmt.Errorf("first divergence: %s (threshold %g)", r.FirstDivergence, threshold)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&prompt, "prompt", "p", "", "text to run through both models (as is, no chat template)")
	cmd.Flags().Float64Var(&threshold, "threshold", 1e-3, "relative difference above which a stage diverges")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	mf.register(cmd)
	cmd.SetContext(context.Background())
	return cmd
}

func printReport(e *env, a, b string, r *rosetta.Report) {
	fmt.Fprintf(e.stdout, "A: %s\nB: %s\n%d tokens, threshold %g\n\n", a, b, len(r.TokensA), r.Threshold)
	w := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STAGE\tMAX ABS DIFF\tREL DIFF\tCOSINE\t\tNOTE")
	for _, s := range r.Stages {
		mark := "ok"
		if s.Diverged {
			mark = "DIVERGED"
		}
		fmt.Fprintf(w, "%s\t%.4g\t%.4g\t%.6f\t%s\t%s\n", s.Name, s.MaxAbsDiff, s.RelDiff, s.Cosine, mark, s.Note)
	}
	w.Flush()
	fmt.Fprintf(e.stdout, "\nargmax: A %d, B %d\ntop-5 A: %v\ntop-5 B: %v\n", r.ArgmaxA, r.ArgmaxB, r.Top5A, r.Top5B)
	if r.FirstDivergence == "" {
		fmt.Fprintln(e.stdout, "no divergence")
	} else {
		fmt.Fprintf(e.stdout, "first divergence: %s\n", r.FirstDivergence)
	}
}

func newDiffCmd(e *env) *cobra.Command {
	var (
		threshold float64
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two models' tensors by name: shape, type, max abs diff after dequantization",
		Long: "diff lines up the tensors of two models (any formats) by their canonical names and reports each\n" +
			"one's shapes, types and the largest absolute difference after dequantizing both to float32.\n" +
			"Exit status 1 when a tensor is missing on one side, shapes differ, or a difference exceeds\n" +
			"--threshold (when given).",
		Example: `  apr rosetta diff ./coder coder-q8_0.gguf
  apr rosetta diff coder.apr coder.gguf --threshold 0`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := openForConversion(args[0])
			if err != nil {
				return err
			}
			defer a.Close()
			b, err := openForConversion(args[1])
			if err != nil {
				return err
			}
			defer b.Close()
			ds, err := rosetta.Diff(a, b)
			if err != nil {
				return err
			}
			bad := 0
			for _, d := range ds {
				if d.Problem != "" || (threshold >= 0 && d.MaxAbsDiff > threshold) {
					bad++
				}
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(ds); err != nil {
					return err
				}
			} else {
				w := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(w, "TENSOR\tSHAPE A\tSHAPE B\tTYPE A\tTYPE B\tMAX ABS DIFF\t")
				for _, d := range ds {
					diff := fmt.Sprintf("%.4g", d.MaxAbsDiff)
					if d.Identical {
						diff = "identical"
					}
					if d.Problem != "" {
						diff = d.Problem
					}
					fmt.Fprintf(w, "%s\t%v\t%v\t%s\t%s\t%s\t\n", d.Name, d.ShapeA, d.ShapeB, d.DTypeA, d.DTypeB, diff)
				}
				w.Flush()
			}
			if bad > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d tensors differ beyond what was allowed", bad, len(ds))}
			}
			return nil
		},
	}
	cmd.Flags().Float64Var(&threshold, "threshold", -1, "largest max abs diff allowed (negative: report only)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the comparison as JSON")
	cmd.SetContext(context.Background())
	return cmd
}
