package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The GPU section of BENCHMARKS.md lies between these markers: the GPU mode
// rewrites only that part, and the CPU report keeps it when it rewrites the
// file.
const (
	gpuBegin = "<!-- begin GPU section: written by `go run ./bench -gpu`; `go run ./bench` keeps it -->"
	gpuEnd   = "<!-- end GPU section -->"
)

// Targets of the CUDA issue: decode apr / llama.cpp, the share of the
// decode roofline, prompt apr / llama.cpp.
const (
	gpuDecodeTarget   = 1.2
	gpuRooflineTarget = 0.5
	gpuPromptTarget   = 1.0
)

// spliceSection returns doc with its GPU section (markers included)
// replaced by section, or section appended when doc has none. The newline
// after the old end marker goes with it (section ends with its own), so
// that rewriting a file does not grow it by a blank line a run.
func spliceSection(doc, section string) string {
	i := strings.Index(doc, gpuBegin)
	j := strings.Index(doc, gpuEnd)
	if i < 0 || j < i {
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		if doc != "" {
			doc += "\n"
		}
		return doc + section
	}
	return doc[:i] + section + strings.TrimPrefix(doc[j+len(gpuEnd):], "\n")
}

// gpuSection returns doc's GPU section with its markers and the newline
// after them, or "" when it has none.
func gpuSection(doc string) string {
	i := strings.Index(doc, gpuBegin)
	j := strings.Index(doc, gpuEnd)
	if i < 0 || j < i {
		return ""
	}
	return strings.TrimRight(doc[i:j+len(gpuEnd)], "\n") + "\n"
}

// keepGPUSection appends the GPU section of the file at path (if any) to a
// freshly written CPU report, so that the CPU run does not drop it.
func keepGPUSection(path string, cpu []byte) ([]byte, error) {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cpu, nil
	}
	if err != nil {
		return nil, err
	}
	s := gpuSection(string(old))
	if s == "" {
		return cpu, nil
	}
	return []byte(spliceSection(string(cpu), s)), nil
}

// writeGPUSection puts r's section into the report at path (- for stdout),
// keeping the rest of the file.
func writeGPUSection(path string, r *gpuReport) error {
	var b bytes.Buffer
	r.write(&b)
	if path == "-" {
		_, err := os.Stdout.Write(b.Bytes())
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return writeFileAtomic(path, []byte(spliceSection(string(old), b.String())))
}

// writeFileAtomic writes data to path through a temporary file renamed into
// place, so that a reader never sees half a report.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// aprSummary is the medians of a case's apr runs.
type aprSummary struct {
	N                             int
	Load, Prompt, Decode, Streams float64
	AfterPrompt                   float64 // decode right after the prompt
	StreamPrompt                  float64
}

func summarizeGPU(runs []*gpuRun) aprSummary {
	var load, prompt, decode, after, streams, sp []float64
	for _, r := range runs {
		load = append(load, r.LoadSeconds)
		prompt = append(prompt, r.PromptRate())
		decode = append(decode, r.DecodeRate())
		after = append(after, r.AfterPromptRate())
		if r.StreamRate() > 0 {
			streams = append(streams, r.StreamRate())
		}
		if r.StreamPromptSeconds > 0 {
			sp = append(sp, float64(r.StreamPromptTokens)/r.StreamPromptSeconds)
		}
	}
	return aprSummary{N: len(runs), Load: median(load), Prompt: median(prompt), Decode: median(decode),
		AfterPrompt: median(after), Streams: median(streams), StreamPrompt: median(sp)}
}

// caseFigures are a case's tokens/s per engine and part (0: not measured):
// medians of apr's runs, of llama-bench's samples and of
// llama-batched-bench's runs, PyTorch's one run.
type caseFigures struct {
	apr                                           aprSummary
	llamaPP, llamaTG, llamaStreams, llamaStreamPP float64
	torchPP, torchTG, torchStreams                float64
}

func (c *gpuCase) figures() caseFigures {
	f := caseFigures{apr: summarizeGPU(c.APRRuns)}
	if c.LlamaPP != nil {
		f.llamaPP = median(c.LlamaPP.SamplesTS)
	}
	if c.LlamaTG != nil {
		f.llamaTG = median(c.LlamaTG.SamplesTS)
	}
	var tg, pp []float64
	for _, s := range c.LlamaStreams {
		tg, pp = append(tg, s.SpeedTG), append(pp, s.SpeedPP)
	}
	f.llamaStreams, f.llamaStreamPP = median(tg), median(pp)
	if t := c.Torch; t != nil {
		f.torchPP, f.torchTG, f.torchStreams = t.PromptRate(), t.DecodeRate(), t.StreamRate()
	}
	return f
}

// rate formats a tokens/s figure, or what stands in for a missing one.
func rate(v float64, format string) string {
	if v <= 0 {
		return "n/a"
	}
	return fmt.Sprintf(format, v)
}

// ratioCell is "a/b x" and the verdict against target (target 0: none).
func ratioCell(a, b, target float64) (string, string) {
	if a <= 0 || b <= 0 {
		return "n/a", "not measured"
	}
	r := a / b
	return floorFixed(r, 2) + "x", verdict(r, target)
}

func (r *gpuReport) write(b *bytes.Buffer) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("%s\n\n# Benchmarks: apr against llama.cpp on the GPU\n\n", gpuBegin)
	p("Written by `go run ./bench -gpu` (see `bench/gpu.go`) on %s UTC on **%s**; the run took %s.\n\n",
		r.Date.Format("2006-01-02 15:04"), orUnknown(r.Device), r.Elapsed.Round(time.Second))
	p("| | |\n| --- | --- |\n")
	p("| device | %s |\n", orUnknown(r.Device))
	if r.ReadBW > 0 {
		p("| memory bandwidth | %.0f GB/s read (PyTorch summing a %d MiB float32 buffer), %.0f GB/s copy (bytes read + written); best of 10 each |\n",
			r.ReadBW/1e9, r.BWBytes>>20, r.CopyBW/1e9)
	} else {
		p("| memory bandwidth | not measured: %s |\n", orUnknown(r.BWErr))
	}
	p("| apr | commit %s: `apr bench-run --cuda` (backend/cuda: weights resident in their file's encoding, "+
		"numerics as the CPU engine picks them, decode step replayed as a CUDA graph, greedy token chosen on the device) |\n", r.Commit)
	p("| llama.cpp | CUDA build (sm_90) of %s: %s; `llama-bench -ngl 99 -p %d -n %d -r %d`, "+
		"`llama-batched-bench -ngl 99 -npp %d -ntg %d -npl %d` |\n",
		orUnknown(r.LlamaSource), orUnknown(r.LlamaBuild), r.Prompt, r.NPredict, r.Reps, r.StreamPP, r.NPredict, r.Streams)
	compiled := "eager"
	if r.TorchCompiled {
		compiled = "decode steps through `torch.compile(mode=\"reduce-overhead\")` (CUDA graphs)"
	}
	p("| PyTorch | torch %s, transformers %s: bf16, SDPA attention, `StaticCache`, %s, on the BF16 SafeTensors folder (`bench/torch/bench.py`) |\n",
		orUnknown(r.Torch), orUnknown(r.Transformers), compiled)
	p("| workload | prompt: %d random token ids in one pass (pp%d); decode: %d greedy steps at batch 1 after it (tg%d); "+
		"streams: %d sequences of %d prompt tokens, then %d steps of one token per sequence, every row's logits returned, "+
		"aggregate decode tokens/s (llama-batched-bench's S_TG). Every engine runs each part once untimed first. "+
		"apr: %d fresh processes per model, medians; llama-bench: medians of its %d samples; streams and PyTorch: one run each |\n",
		r.Prompt, r.Prompt, r.NPredict, r.NPredict, r.Streams, r.StreamPP, r.NPredict, r.Reps, r.Reps)
	p("| models | the CPU section's random-weight files, Qwen2.5-Coder-0.5B and -1.5B dimensions; BF16 is apr and PyTorch on the " +
		"SafeTensors folder, llama.cpp on an F16 GGUF of the same weights |\n\n")
	p("Roofline: the bytes of weights one decode step reads (every matrix once; the tied embedding as the output " +
		"matrix) divided into the measured read bandwidth: the most tokens/s batch-1 decode can reach. Ratios and " +
		"shares are rounded down, so a figure beside \"not met\" never reads as its target.\n\n")

	p("## Decode at batch 1 (tokens/s)\n\n")
	p("%d greedy steps from position 0 (llama-bench's tg%d); the last column is apr's same steps right after the %d-token prompt.\n\n",
		r.NPredict, r.NPredict, r.Prompt)
	p("| model | weights | apr | llama.cpp | PyTorch | apr / llama.cpp | >= %.1fx | roofline | apr / roofline | >= %.0f%% | apr after the prompt |\n",
		gpuDecodeTarget, 100*gpuRooflineTarget)
	p("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |\n")
	for i := range r.Cases {
		c := &r.Cases[i]
		f := c.figures()
		rc, rv := ratioCell(f.apr.Decode, f.llamaTG, gpuDecodeTarget)
		roof, share, sv := 0.0, "n/a", "not measured"
		if r.ReadBW > 0 && c.WeightBytes > 0 {
			roof = r.ReadBW / float64(c.WeightBytes)
			if f.apr.Decode > 0 {
				share, sv = floorFixed(100*f.apr.Decode/roof, 1)+"%", verdict(f.apr.Decode/roof, gpuRooflineTarget)
			}
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Shape.Name, c.title(), rate(f.apr.Decode, "%.1f"),
			rate(f.llamaTG, "%.1f"), rate(f.torchTG, "%.1f"), rc, rv, rate(roof, "%.0f"), share, sv, rate(f.apr.AfterPrompt, "%.1f"))
	}

	p("\n## Prompt processing, %d tokens in one pass (tokens/s)\n\n", r.Prompt)
	p("| model | weights | apr | llama.cpp | PyTorch | apr / llama.cpp | >= %.1fx |\n| --- | --- | ---: | ---: | ---: | ---: | --- |\n",
		gpuPromptTarget)
	for i := range r.Cases {
		c := &r.Cases[i]
		f := c.figures()
		rc, rv := ratioCell(f.apr.Prompt, f.llamaPP, gpuPromptTarget)
		p("| %s | %s | %s | %s | %s | %s | %s |\n", c.Shape.Name, c.title(), rate(f.apr.Prompt, "%.0f"),
			rate(f.llamaPP, "%.0f"), rate(f.torchPP, "%.0f"), rc, rv)
	}

	if r.hasLong() {
		p("\n## Longer prompts in one pass (tokens/s)\n\n")
		p("apr: `bench-run` with the prompt and a context of the prompt and the decode steps, %s (medians); "+
			"llama.cpp: `llama-bench -ngl 99 -p N -n 0`, medians of its samples. llama.cpp keeps its KV cache in F16, "+
			"as apr does by default for GGUF files; for the SafeTensors folder apr's default is an f32 cache "+
			"(transformers' numerics), and the \"f16 cache\" columns are apr with `--cache-type-k f16`, llama.cpp's "+
			"cache type.\n\n", processes(r.longReps()))
		r.longTable(p, "prompt", "%.0f", func(a aprSummary) float64 { return a.Prompt }, func(l *longRun) float64 { return l.Llama.median() })
		p("\n## Decode after a longer prompt (tokens/s)\n\n")
		p("apr: the %d greedy steps right after the prompt above (positions N to N+%d); llama.cpp: "+
			"`llama-bench -ngl 99 -p 0 -n %d -d N` (the same steps after a context of N tokens), medians of its samples.\n\n",
			r.NPredict, r.NPredict-1, r.NPredict)
		r.longTable(p, "context N", "%.1f", func(a aprSummary) float64 { return a.AfterPrompt },
			func(l *longRun) float64 { return l.LlamaDepth.median() })
	}

	if r.Streams > 0 {
		p("\n## %d concurrent streams: aggregate decode (tokens/s)\n\n", r.Streams)
		p("| model | weights | apr | llama.cpp | PyTorch | apr / llama.cpp | apr streams' prompts | llama.cpp streams' prompts |\n")
		p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for i := range r.Cases {
			c := &r.Cases[i]
			f := c.figures()
			rc, _ := ratioCell(f.apr.Streams, f.llamaStreams, 0)
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Shape.Name, c.title(), rate(f.apr.Streams, "%.0f"),
				rate(f.llamaStreams, "%.0f"), rate(f.torchStreams, "%.0f"), rc, rate(f.apr.StreamPrompt, "%.0f"),
				rate(f.llamaStreamPP, "%.0f"))
		}
	}

	p("\n## Load and failures\n\n| model | weights | apr load (s) | apr runs | weights per token (MiB) | failures |\n| --- | --- | ---: | ---: | ---: | --- |\n")
	for i := range r.Cases {
		c := &r.Cases[i]
		a := summarizeGPU(c.APRRuns)
		errs := "none"
		if len(c.Errs) > 0 {
			errs = "`" + strings.ReplaceAll(strings.Join(c.Errs, "`; `"), "|", "\\|") + "`"
		}
		p("| %s | %s | %s | %d | %.0f | %s |\n", c.Shape.Name, c.title(), rate(a.Load, "%.2f"), a.N,
			float64(c.WeightBytes)/(1<<20), errs)
	}
	p("\n## Reproduce (on the GPU machine)\n\n```sh\n"+
		"# llama.cpp's CUDA build, from the source the node-llama-cpp package carries (not committed):\n"+
		"cmake -S llama.cpp -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \\\n"+
		"  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF && cmake --build build -j --target llama-bench llama-batched-bench\n"+
		"go run ./bench -gpu -llama-bench build/bin/llama-bench -llama-batched-bench build/bin/llama-batched-bench%s\n"+
		"```\n\nWithout Go on the GPU machine, build `apr` and the bench here (`go build -ldflags \"-X main.buildCommit=$(git rev-parse --short=12 HEAD)\" ./bench` names the commit in the report where the build stamps none), carry them, and pass `-apr PATH`.\n\n", r.longFlag())
	p("%s\n", gpuEnd)
}

// longTable writes a table of the longer prompts, a row each: apr's
// figure (apr picks it from a run summary, printed with format) with its
// default cache and, for SafeTensors, an F16 one, against llama.cpp's
// (llama), and their ratios; first names the third column.
func (r *gpuReport) longTable(p func(string, ...any), first, format string, apr func(aprSummary) float64,
	llama func(*longRun) float64) {
	p("| model | weights | %s | apr | llama.cpp | apr / llama.cpp | apr, f16 cache | f16 cache / llama.cpp |\n", first)
	p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i := range r.Cases {
		c := &r.Cases[i]
		for j := range c.Long {
			l := &c.Long[j]
			a, ll := apr(summarizeGPU(l.APRRuns)), llama(l)
			rc, _ := ratioCell(a, ll, 0)
			f16, f16r := "the default", "the default"
			if c.APR == kindBF16 {
				h := apr(summarizeGPU(l.APRF16))
				f16 = rate(h, format)
				f16r, _ = ratioCell(h, ll, 0)
			}
			p("| %s | %s | %d | %s | %s | %s | %s | %s |\n", c.Shape.Name, c.title(), l.Prompt, rate(a, format),
				rate(ll, format), rc, f16, f16r)
		}
	}
}

// median is the median of a llama-bench row's samples, 0 without a row.
func (b *llamaBenchRow) median() float64 {
	if b == nil {
		return 0
	}
	return median(b.SamplesTS)
}

// hasLong reports whether a case measured longer prompts (-gpu-long).
func (r *gpuReport) hasLong() bool {
	for i := range r.Cases {
		if len(r.Cases[i].Long) > 0 {
			return true
		}
	}
	return false
}

// longReps is the most apr runs a longer prompt had.
func (r *gpuReport) longReps() int {
	n := 0
	for i := range r.Cases {
		for _, l := range r.Cases[i].Long {
			n = max(n, len(l.APRRuns))
		}
	}
	return n
}

// longFlag is the -gpu-long flag that reproduces the longer prompts
// measured (" -gpu-long 4096,16384"), "" for none.
func (r *gpuReport) longFlag() string {
	var ns []string
	for i := range r.Cases {
		for _, l := range r.Cases[i].Long {
			if n := strconv.Itoa(l.Prompt); !slices.Contains(ns, n) {
				ns = append(ns, n)
			}
		}
	}
	if len(ns) == 0 {
		return ""
	}
	return " -gpu-long " + strings.Join(ns, ",")
}

// processes is "n process" or "n processes".
func processes(n int) string {
	if n == 1 {
		return "1 process"
	}
	return fmt.Sprintf("%d processes", n)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
