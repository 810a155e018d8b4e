// Command bench measures apr against llama.cpp on this machine and writes
// BENCHMARKS.md.
//
//	go run ./bench [flags]
//
// It writes random-weight models with the exact dimensions of
// Qwen2.5-Coder-0.5B and -1.5B (GGUF Q4_K_M and Q8_0 through apr's own
// writer and quantizers; for the 0.5B also a BF16 SafeTensors folder and an
// F16 GGUF of the same weights) into a cache folder, reused when present.
// Then, for each model and type, it runs apr (the built binary's hidden
// bench-run command) and llama.cpp (node-llama-cpp's prebuilt CPU libllama,
// driven by bench/llama/run.mjs) as child processes with the same threads,
// the same 128 prompt token ids and 128 greedy decode steps, several times
// alternately, and reports the medians of load time, prompt and decode
// tokens/s and peak RSS (VmHWM), beside the machine's measured memory
// bandwidth and the decode roofline it implies.
//
// With -gpu it measures the GPU instead (bench/gpu.go): apr's CUDA backend
// (bench-run --cuda) against a CUDA build of llama.cpp (-llama-bench and
// -llama-batched-bench name its programs) and PyTorch (bench/torch/bench.py)
// on the same files, for both sizes as Q4_K_M, Q8_0 and BF16 (F16 GGUF for
// llama.cpp): prompt tokens/s (512 tokens), decode tokens/s at batch 1 and
// the aggregate decode tokens/s of 32 streams, beside the device's measured
// bandwidth and decode roofline. It rewrites only the GPU section of the
// report, and the CPU run keeps that section.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	threads, reps, promptLen, nPredict, ctxSize int
	cache, shared, out, llamaDir                string
	models, quants                              string
	bf16                                        bool
	seed                                        uint64
	timeout                                     time.Duration
	bandwidthMiB                                int
	gpu                                         gpuOptions
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./bench [flags]\n\nMeasures apr against llama.cpp on random-weight Qwen2.5-Coder-sized models and writes BENCHMARKS.md.\n\nFlags:")
		fs.PrintDefaults()
	}
	cacheDefault := filepath.Join(os.TempDir(), "apr-bench")
	if d, err := os.UserCacheDir(); err == nil {
		cacheDefault = filepath.Join(d, "apr-bench")
	}
	fs.IntVar(&o.threads, "threads", 2, "threads for both engines (llama.cpp's -t)")
	fs.IntVar(&o.threads, "t", 2, "shorthand for --threads")
	fs.IntVar(&o.reps, "reps", 3, "repetitions of each run (the report shows medians)")
	fs.IntVar(&o.promptLen, "prompt", 128, "prompt length in tokens (random ids)")
	fs.IntVar(&o.nPredict, "n-predict", 128, "tokens to decode greedily after the prompt")
	fs.IntVar(&o.nPredict, "n", 128, "shorthand for --n-predict")
	fs.IntVar(&o.ctxSize, "ctx-size", 512, "KV cache size of both engines (llama.cpp's -c)")
	fs.StringVar(&o.cache, "cache", cacheDefault, "folder for the generated models and the apr binary (reused)")
	fs.StringVar(&o.shared, "shared", "../shared", "the shared folder (its qwen2-tiny-coder gives the tokenizer and chat template)")
	fs.StringVar(&o.out, "o", "BENCHMARKS.md", "report file to write (- for stdout)")
	fs.StringVar(&o.llamaDir, "llama-dir", filepath.Join("bench", "llama"), "folder of the llama.cpp driver (package.json, run.mjs)")
	fs.StringVar(&o.models, "models", "0.5B,1.5B", "model sizes to run")
	fs.StringVar(&o.quants, "quants", "Q4_K_M,Q8_0", "GGUF types to run")
	fs.BoolVar(&o.bf16, "bf16", true, "also run SafeTensors BF16 (apr) against an F16 GGUF of the same weights (llama.cpp), 0.5B only")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the random weights and prompt")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit of one run")
	fs.IntVar(&o.bandwidthMiB, "bandwidth-mib", 1024, "buffer size of the memory bandwidth measurement")
	o.gpu.register(fs)
	err := fs.Parse(args)
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.threads < 1 || o.reps < 1 || o.promptLen < 1 || o.nPredict < 1 {
		return nil, errors.New("--threads, --reps, --prompt and --n-predict must be positive")
	}
	o.ctxSize = max(o.ctxSize, o.promptLen+o.nPredict+1)
	if o.gpu.long, err = parseLong(o.gpu.longList); err != nil {
		return nil, err
	}
	if o.gpu.longReps < 1 {
		return nil, errors.New("-long-reps must be positive")
	}
	return o, nil
}

// benchCase is one row group of the report: apr on one file, llama.cpp on
// another (the same file, except BF16 SafeTensors against F16 GGUF).
type benchCase struct {
	Shape        shape
	APR, Llama   fileKind
	APRSum, LSum summary
	WeightBytes  int64  // read per decoded token (apr's file)
	LlamaBytes   int64  // the same for llama.cpp's file
	Agree        int    // leading greedy tokens on which the engines agree (first run)
	Err          string // why the case stopped, if it failed
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if o.gpu.on || o.gpu.prepare {
		return runGPU(o)
	}
	start := time.Now()
	if err := os.MkdirAll(o.cache, 0o755); err != nil {
		return err
	}
	cases, err := plan(o)
	if err != nil {
		return err
	}
	apr, err := buildAPR(o)
	if err != nil {
		return err
	}
	if err := ensureLlama(o.llamaDir); err != nil {
		return err
	}

	logf("measuring memory bandwidth (%d MiB buffer)", o.bandwidthMiB)
	bw := memBandwidth(o.bandwidthMiB<<20, o.threads, 5)
	bw1 := memBandwidth(o.bandwidthMiB<<20, 1, 5)
	logf("read bandwidth: %.1f GB/s with %d threads, %.1f GB/s with 1", bw/1e9, o.threads, bw1/1e9)

	r := rand.New(rand.NewPCG(o.seed, 0x70726f6d7074))
	prompt := make([]int, o.promptLen)
	for i := range prompt {
		prompt[i] = r.IntN(151643) // ordinary tokens: below the added ones
	}
	rep := &report{
		CPU: readCPUInfo(), Threads: o.threads, Reps: o.reps,
		PromptLen: o.promptLen, NPredict: o.nPredict, CtxSize: o.ctxSize,
		Bandwidth: bw, Bandwidth1: bw1, Cases: cases, GoVersion: runtime.Version(),
		Llama: llamaVersion(o.llamaDir), LoadStart: loadAverage(), Commit: gitCommit(),
	}
	// Repetitions are the outer loop and the report is rewritten after
	// every run pair, so that an interrupted run still leaves a report of
	// every case measured so far.
	var vocab *vocabSource
	j := job{Threads: o.threads, Prompt: prompt, NPredict: o.nPredict, CtxSize: o.ctxSize, Timeout: o.timeout}
	for k := 0; k < o.reps; k++ {
		for i := range cases {
			c := &cases[i]
			if c.Err != "" {
				continue
			}
			// Models are written when first needed, so the cases whose
			// files exist are measured first.
			if k == 0 {
				if err := ensureModels(o, &vocab, c); err != nil {
					return err
				}
			}
			j.Model = c.APR.path(o.cache, c.Shape)
			a, err := runAPR(apr, j)
			if err == nil {
				logRun(c, k, a)
				j.Model = c.Llama.path(o.cache, c.Shape)
				var l *runResult
				if l, err = runLlama(o.llamaDir, j); err == nil {
					logRun(c, k, l)
					c.APRSum = summarize(append(c.APRSum.Runs, a))
					c.LSum = summarize(append(c.LSum.Runs, l))
					c.Agree = agreement(c.APRSum.Runs[0].Output, c.LSum.Runs[0].Output)
					if rep.FlashAttention == "" {
						rep.FlashAttention, rep.CPUBackend = fmt.Sprint(l.FlashAttention), l.CPUBackend
					}
				}
			}
			if err != nil {
				// One failing case (a timeout, a crash) must not lose the
				// others: it is reported and not run again.
				c.Err = err.Error()
				logf("%s %s: %v", c.Shape.Name, c.APR.Name, err)
			}
			rep.Date, rep.Elapsed, rep.Load = time.Now().UTC(), time.Since(start), loadAverage()
			if err := writeReport(o.out, rep); err != nil {
				return err
			}
		}
	}
	logf("wrote %s in %s", o.out, time.Since(start).Round(time.Second))
	return nil
}

// writeReport writes the report to path (- for stdout) through a temporary
// file, so a reader never sees half a report; the file's GPU section, if
// any, is kept.
func writeReport(path string, r *report) error {
	if path == "-" {
		return r.write(os.Stdout)
	}
	var b bytes.Buffer
	if err := r.write(&b); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	data, err := keepGPUSection(path, b.Bytes())
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

// buildAPR returns the apr binary to run: -apr, or one built from
// ./cmd/apr into the cache folder.
func buildAPR(o *options) (string, error) {
	if o.gpu.apr != "" {
		return o.gpu.apr, nil
	}
	apr := filepath.Join(o.cache, "apr")
	logf("building apr into %s", apr)
	if out, err := exec.Command("go", "build", "-o", apr, "./cmd/apr").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/apr: %w\n%s", err, out)
	}
	return apr, nil
}

// plan lists the cases the flags select.
func plan(o *options) ([]benchCase, error) {
	var cases []benchCase
	wantModel := strings.Split(strings.ToUpper(o.models), ",")
	for _, s := range shapes {
		if !contains(wantModel, strings.ToUpper(s.Name)) {
			continue
		}
		for _, q := range strings.Split(o.quants, ",") {
			var k fileKind
			switch strings.ToUpper(strings.TrimSpace(q)) {
			case "Q4_K_M":
				k = kindQ4KM
			case "Q8_0":
				k = kindQ8_0
			default:
				return nil, fmt.Errorf("--quants: %q is not Q4_K_M or Q8_0", q)
			}
			cases = append(cases, benchCase{Shape: s, APR: k, Llama: k})
		}
		if o.bf16 && s.Name == "0.5B" {
			cases = append(cases, benchCase{Shape: s, APR: kindBF16, Llama: kindF16})
		}
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("--models %q selects none of 0.5B, 1.5B", o.models)
	}
	return cases, nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if strings.TrimSpace(v) == x {
			return true
		}
	}
	return false
}

// ensureModels writes the files case c needs that are not in the cache
// (loading the tokenizer into *vocab when first needed), and records the
// bytes a decode step reads from each.
func ensureModels(o *options, vocab **vocabSource, c *benchCase) error {
	for _, p := range []struct {
		k   fileKind
		dst *int64
	}{{c.APR, &c.WeightBytes}, {c.Llama, &c.LlamaBytes}} {
		path := p.k.path(o.cache, c.Shape)
		if _, err := os.Stat(path); err != nil {
			if *vocab == nil {
				if *vocab, err = loadVocab(filepath.Join(o.shared, "models", "qwen2-tiny-coder")); err != nil {
					return err
				}
			}
			logf("writing %s", path)
			t0 := time.Now()
			if err := writeModel(o.cache, c.Shape, p.k, *vocab, o.seed); err != nil {
				return err
			}
			logf("  done in %s", time.Since(t0).Round(time.Second))
		}
		ts, err := fileTensors(path)
		if err != nil {
			return err
		}
		*p.dst = weightBytes(ts)
	}
	return nil
}

// ensureLlama installs the npm packages into llamaDir/node_modules when
// absent: the exact versions of package-lock.json (npm ci; where npm
// refuses the lock file, npm install --no-save of the versions
// package.json pins), without optional (GPU) packages and without install
// scripts, so nothing is built or downloaded beyond the prebuilt CPU
// binaries.
func ensureLlama(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@node-llama-cpp", "linux-x64")); err == nil {
		return nil
	}
	npm := func(args ...string) ([]byte, error) {
		logf("npm %s in %s", strings.Join(args, " "), dir)
		cmd := exec.Command("npm", append(args, "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund")...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NODE_LLAMA_CPP_SKIP_DOWNLOAD=true", "NODE_LLAMA_CPP_POSTINSTALL=skip")
		return cmd.CombinedOutput()
	}
	out, err := npm("ci")
	if err == nil {
		return nil
	}
	// npm 11's ci refuses a lock file that lacks node-llama-cpp's optional
	// packages for other platforms, which a registry without them (a
	// mirror) cannot add. The install below takes the same versions
	// (package.json pins them) and leaves the lock file as it is.
	out2, err2 := npm("install", "--no-save")
	if err2 != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s\nthen npm install --no-save: %w\n%s", dir, err, out, err2, out2)
	}
	return nil
}

// agreement counts the leading tokens two greedy outputs share.
func agreement(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func logRun(c *benchCase, rep int, r *runResult) {
	logf("%s %-6s %-9s rep %d: load %.2fs, prompt %.1f tok/s, decode %.2f tok/s, peak RSS %.0f MiB",
		c.Shape.Name, c.APR.Name, r.Engine, rep+1, r.LoadSeconds, r.PromptRate(), r.DecodeRate(), float64(r.PeakRSSBytes)/(1<<20))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
