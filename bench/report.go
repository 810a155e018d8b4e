package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// report is everything BENCHMARKS.md shows.
type report struct {
	Date                         time.Time
	CPU                          cpuInfo
	Threads, Reps                int
	PromptLen, NPredict, CtxSize int
	Bandwidth, Bandwidth1        float64 // bytes/s with Threads and with 1 thread
	Cases                        []benchCase
	GoVersion, Llama, Commit     string
	LoadStart, Load              string // load averages at the start and now
	FlashAttention, CPUBackend   string // as llama.cpp reported them
	Elapsed                      time.Duration
}

// Targets of the CPU speed issue: apr / llama.cpp.
const (
	decodeTarget = 1.2
	promptTarget = 1.0
)

// llamaVersion names the node-llama-cpp package and the llama.cpp release
// its prebuilt binaries were built from.
func llamaVersion(dir string) string {
	nm := filepath.Join(dir, "node_modules", "node-llama-cpp")
	var pkg struct {
		Version string `json:"version"`
	}
	var rel struct {
		Release string `json:"release"`
	}
	if b, err := os.ReadFile(filepath.Join(nm, "package.json")); err == nil {
		_ = json.Unmarshal(b, &pkg)
	}
	if b, err := os.ReadFile(filepath.Join(nm, "llama", "binariesGithubRelease.json")); err == nil {
		_ = json.Unmarshal(b, &rel)
	}
	return fmt.Sprintf("node-llama-cpp %s with @node-llama-cpp/linux-x64 (prebuilt CPU libllama, llama.cpp release %s)", pkg.Version, rel.Release)
}

// buildCommit names the commit the bench was built from when it runs
// outside a git checkout (a GPU machine): go build -ldflags "-X main.buildCommit=...".
var buildCommit = "unknown"

// gitCommit is the repository's HEAD, marked when the tree has changes.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return buildCommit
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(st) > 0 {
		c += " plus the uncommitted files of the working tree"
	}
	return c
}

// busy reports whether a 1-minute load average (the first of
// /proc/loadavg's fields) exceeds limit runnable tasks.
func busy(load string, limit int) bool {
	var one float64
	if _, err := fmt.Sscan(load, &one); err != nil {
		return false
	}
	return one > float64(limit)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// floorFixed formats v with the given decimals, rounded down, so a figure
// printed beside its verdict never reads as the target when it falls short
// of it (0.4969 of the roofline printed as 50% beside "not met"). The 1e-9
// tolerance keeps exact decimals whose binary value lies just below them
// (1.18) from flooring to 1.17; a measured figure within 1e-9 of a digit
// boundary is far below a benchmark's noise.
func floorFixed(v float64, decimals int) string {
	scale := math.Pow(10, float64(decimals))
	return strconv.FormatFloat(math.Floor(v*scale+1e-9)/scale, 'f', decimals, 64)
}

func verdict(r, target float64) string {
	if r >= target {
		return "met"
	}
	return "**not met**"
}

func (c *benchCase) title() string {
	if c.APR.Name == c.Llama.Name {
		return fmt.Sprintf("%s %s", c.Shape.Name, c.APR.Name)
	}
	return fmt.Sprintf("%s %s (apr, SafeTensors) / %s (llama.cpp, GGUF)", c.Shape.Name, c.APR.Name, c.Llama.Name)
}

func (r *report) write(w io.Writer) error {
	b := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("# Benchmarks: apr against llama.cpp on the CPU\n\n")
	p("Written by `go run ./bench` (see `bench/`) on %s UTC; the whole run took %s.\n\n",
		r.Date.Format("2006-01-02 15:04"), r.Elapsed.Round(time.Second))
	p("| | |\n| --- | --- |\n")
	p("| CPU | %s, %d logical CPUs (%s) |\n", r.CPU.Model, r.CPU.Logical, strings.Join(r.CPU.Features, " "))
	p("| threads | %d for both engines |\n", r.Threads)
	p("| memory read bandwidth | %.1f GB/s with %d threads, %.1f GB/s with 1 (summing a 1 GiB buffer, best of 5) |\n",
		r.Bandwidth/1e9, r.Threads, r.Bandwidth1/1e9)
	p("| apr | commit %s, %s |\n", r.Commit, r.GoVersion)
	p("| llama.cpp | %s; ggml CPU variant %q; flash attention %q (its default) |\n", r.Llama, r.CPUBackend, r.FlashAttention)
	p("| workload | %d random prompt token ids evaluated in one batch, then %d greedy decode steps (one token each); KV cache of %d; "+
		"%d runs per engine and model planned, alternating apr and llama.cpp, each a fresh process; medians |\n",
		r.PromptLen, r.NPredict, r.CtxSize, r.Reps)
	p("| models | random weights (normal(0, 0.02), norms 1 + normal(0, 0.02), rounded to BF16) with the exact dimensions of " +
		"Qwen2.5-Coder-0.5B (24 layers, hidden 896, FFN 4864, 14 heads, 2 KV heads) and -1.5B (28 layers, hidden 1536, FFN 8960, " +
		"12 heads, 2 KV heads), vocab 151936, tied embeddings, Q/K/V biases; written by apr's writers and quantizers " +
		"(a BF16 SafeTensors master, converted by package convert as convert_hf_to_gguf.py and llama-quantize would: F16, Q8_0, and Q4_K_M with llama-quantize's per-tensor mixture); both engines read the same file, except BF16, where apr reads the SafeTensors " +
		"folder and llama.cpp an F16 GGUF of the same weights |\n")
	p("| load average | %s at the start, %s at the end (1, 5, 15 min) |\n\n", r.LoadStart, r.Load)
	// At the end the engines' own threads count in the load average (up to
	// Threads runnable tasks), so only what exceeds them says that other
	// processes competed.
	if busy(r.LoadStart, r.CPU.Logical) || busy(r.Load, r.CPU.Logical+r.Threads) {
		p("**The machine was busy**: its load average exceeded its %d logical CPUs (at the end, beyond the benchmark's own threads), so other processes competed with both "+
			"engines for the cores, and the figures below are noisy (llama.cpp's threads spin at barriers and lose the most "+
			"when a core is taken away). Rerun `go run ./bench` on a quiet machine for figures to rely on.\n\n", r.CPU.Logical)
	}
	p("Load time: from opening the file to a ready KV cache (apr: format.Open + engine.New + NewSequence; llama.cpp: " +
		"loadModel + createContext, which includes node-llama-cpp reading the GGUF metadata in JavaScript). Peak RSS: VmHWM of the process (llama.cpp's includes Node.js, about 90 MiB before the model loads). " +
		"Roofline: the bytes of weights one decode step reads (every matrix once; the tied embedding as the output matrix) " +
		"divided into the measured bandwidth.\n\n")

	p("## Summary\n\n")
	p("| model | weights | decode apr | decode llama.cpp | decode ratio | >= %.1fx | prompt apr | prompt llama.cpp | prompt ratio | >= %.1fx |\n",
		decodeTarget, promptTarget)
	p("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |\n")
	for i := range r.Cases {
		c := &r.Cases[i]
		dr, pr := ratio(c.APRSum.Decode, c.LSum.Decode), ratio(c.APRSum.Prompt, c.LSum.Prompt)
		weights := c.APR.Name
		if c.APR.Name != c.Llama.Name {
			weights += " / " + c.Llama.Name
		}
		if len(c.APRSum.Runs) == 0 {
			p("| %s | %s | | | | not measured | | | | not measured |\n", c.Shape.Name, weights)
			continue
		}
		p("| %s | %s | %.2f | %.2f | %sx | %s | %.1f | %.1f | %sx | %s |\n", c.Shape.Name, weights,
			c.APRSum.Decode, c.LSum.Decode, floorFixed(dr, 2), verdict(dr, decodeTarget),
			c.APRSum.Prompt, c.LSum.Prompt, floorFixed(pr, 2), verdict(pr, promptTarget))
	}
	p("\nTokens/s; ratio = apr / llama.cpp.\n")

	for i := range r.Cases {
		c := &r.Cases[i]
		a, l := c.APRSum, c.LSum
		p("\n## %s\n\n", c.title())
		if c.Err != "" {
			p("A run failed, so this case stopped after %d runs: `%s`\n\n", len(a.Runs), strings.Join(strings.Fields(tail(c.Err, 600)), " "))
		}
		if len(a.Runs) == 0 {
			if c.Err == "" {
				p("Not measured: the run ended before this case.\n")
			}
			continue
		}
		p("| median of %d | apr | llama.cpp | apr / llama.cpp |\n| --- | ---: | ---: | ---: |\n", len(a.Runs))
		p("| load (s) | %.2f | %.2f | %.2fx |\n", a.Load, l.Load, ratio(a.Load, l.Load))
		p("| prompt (tok/s) | %.1f | %.1f | %.2fx |\n", a.Prompt, l.Prompt, ratio(a.Prompt, l.Prompt))
		p("| decode (tok/s) | %.2f | %.2f | %.2fx |\n", a.Decode, l.Decode, ratio(a.Decode, l.Decode))
		p("| peak RSS (MiB) | %.0f | %.0f | %.2fx |\n\n", a.PeakMB, l.PeakMB, ratio(a.PeakMB, l.PeakMB))
		roof := r.Bandwidth / float64(c.WeightBytes)
		p("Weights read per decoded token: %.0f MiB, so the decode roofline at %.1f GB/s is %.1f tok/s; apr reaches %.0f%% of it",
			float64(c.WeightBytes)/(1<<20), r.Bandwidth/1e9, roof, 100*a.Decode/roof)
		if c.LlamaBytes == c.WeightBytes {
			p(", llama.cpp %.0f%%.", 100*l.Decode/roof)
		} else {
			lroof := r.Bandwidth / float64(c.LlamaBytes)
			p("; llama.cpp's file is %.0f MiB per token (roofline %.1f tok/s), it reaches %.0f%%.",
				float64(c.LlamaBytes)/(1<<20), lroof, 100*l.Decode/lroof)
		}
		p(" Greedy outputs: the first %d of %d tokens are the same in both engines (a loose check only: random weights give "+
			"nearly flat logits, whose near ties quantization and summation order decide).\n", c.Agree, r.NPredict+1)
	}

	p("\n## Every run\n\n| model | weights | engine | run | load (s) | prompt (tok/s) | decode (tok/s) | peak RSS (MiB) |\n")
	p("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for i := range r.Cases {
		c := &r.Cases[i]
		for _, s := range []struct {
			kind fileKind
			sum  summary
		}{{c.APR, c.APRSum}, {c.Llama, c.LSum}} {
			for k, run := range s.sum.Runs {
				p("| %s | %s | %s | %d | %.2f | %.1f | %.2f | %.0f |\n", c.Shape.Name, s.kind.Name, run.Engine, k+1,
					run.LoadSeconds, run.PromptRate(), run.DecodeRate(), float64(run.PeakRSSBytes)/(1<<20))
			}
		}
	}
	p("\n## Reproduce\n\n```sh\ngo run ./bench            # writes the models to the user cache folder once, then BENCHMARKS.md\n" +
		"go run ./bench -h         # flags: --threads, --reps, --models, --quants, --cache, -o\n```\n\n" +
		"It needs Go, Node.js >= 20 and npm (the first run installs `bench/llama/node_modules` from `package-lock.json`: " +
		"node-llama-cpp and its prebuilt linux-x64 CPU binaries; nothing is compiled or downloaded at run time).\n")
	_, err := io.WriteString(w, b.String())
	return err
}
