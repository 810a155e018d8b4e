// Package cli holds apr's commands: one file per command with its flags, UX
// and output. Answers go to stdout; progress, logs and errors to stderr.
package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Version is apr's version string.
var Version = "0.1.0-dev"

// env is what a command reads and writes, so tests can run commands in
// process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// NewRoot builds the command tree.
func NewRoot(in io.Reader, out, errw io.Writer) *cobra.Command {
	e := &env{stdin: in, stdout: out, stderr: errw}
	root := &cobra.Command{
		Use:           "apr",
		Short:         "Run Qwen2.5-Coder and other Qwen2/LLaMA models locally",
		Long:          "apr runs Qwen2-family language models from Hugging Face SafeTensors folders and GGUF files.",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errw)
	root.SetGlobalNormalizationFunc(aliasFlags)
	for _, mk := range commands {
		root.AddCommand(mk(e))
	}
	return root
}

// commands are the subcommand constructors; each command's file adds its
// own in an init function, so commands can be added without touching this
// file.
var commands []func(*env) *cobra.Command

func register(mk func(*env) *cobra.Command) { commands = append(commands, mk) }

// Main runs apr with args and returns the process exit code.
func Main(args []string, in io.Reader, out, errw io.Writer) int {
	root := NewRoot(in, out, errw)
	root.SetArgs(llamaShortFlags(args))
	if err := root.Execute(); err != nil {
		fmt.Fprintf(errw, "apr: %v\n", err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// aliasFlags accepts the spellings llama.cpp and Ollama users type.
func aliasFlags(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	switch name {
	case "temp":
		name = "temperature"
	case "n-predict", "num-predict", "max_tokens":
		name = "max-tokens"
	case "reverse-prompt":
		name = "stop"
	case "ctx-size", "num-ctx", "num_ctx":
		name = "ctx-size"
	case "n-gpu-layers", "ngl", "num-gpu", "num_gpu":
		name = "gpu-layers"
	}
	return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
}
