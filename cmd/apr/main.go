// Command apr runs Qwen2-family language models from SafeTensors and GGUF
// files on the CPU.
package main

import (
	"os"

	"github.com/apr-llm/apr/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
