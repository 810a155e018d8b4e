package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// gpuOptions are the flags of the GPU mode (-gpu): apr's CUDA backend
// against llama.cpp's CUDA build (its llama-bench and llama-batched-bench
// programs, built by the caller) and PyTorch on the same files.
type gpuOptions struct {
	on, prepare, torchCompile     bool
	apr, llamaBench, llamaBatched string
	python, torchScript           string
	llamaSource                   string
	prompt, streams, streamPrompt int
	llamaStreamReps               int
	longList                      string
	long                          []int // longList parsed (parseFlags)
	longReps                      int
}

func (g *gpuOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&g.on, "gpu", false, "GPU mode: apr (bench-run --cuda) against llama.cpp's CUDA build and PyTorch; writes the GPU section of the report")
	fs.BoolVar(&g.prepare, "gpu-prepare", false, "GPU mode: only write the models the GPU cases need into --cache, then stop")
	fs.StringVar(&g.apr, "apr", "", "a built apr binary to run (default: go build ./cmd/apr into --cache)")
	fs.StringVar(&g.llamaBench, "llama-bench", "", "GPU mode: path of llama.cpp's llama-bench (a CUDA build)")
	fs.StringVar(&g.llamaBatched, "llama-batched-bench", "", "GPU mode: path of llama.cpp's llama-batched-bench (a CUDA build)")
	fs.StringVar(&g.python, "python", "python3", "GPU mode: Python with torch and transformers for the PyTorch reference and the bandwidth (empty: skip)")
	fs.StringVar(&g.torchScript, "torch-script", filepath.Join("bench", "torch", "bench.py"), "GPU mode: the PyTorch driver")
	fs.StringVar(&g.llamaSource, "llama-source", "the llama.cpp source the node-llama-cpp package carries", "GPU mode: where the llama.cpp build came from, for the report")
	fs.BoolVar(&g.torchCompile, "torch-compile", false, "GPU mode: PyTorch decodes through torch.compile(mode=reduce-overhead) (CUDA graphs)")
	fs.IntVar(&g.prompt, "gpu-prompt", 512, "GPU mode: prompt tokens (llama-bench's pp)")
	fs.IntVar(&g.streams, "streams", 32, "GPU mode: concurrent streams of the aggregate decode figure (0: skip)")
	fs.IntVar(&g.streamPrompt, "stream-prompt", 128, "GPU mode: prompt tokens of each stream")
	fs.IntVar(&g.llamaStreamReps, "stream-reps", 1, "GPU mode: runs of llama-batched-bench per case")
	fs.StringVar(&g.longList, "gpu-long", "", "GPU mode: longer prompts to measure too, comma-separated token counts (e.g. 4096,16384): "+
		"apr's prompt and its decode after it, llama-bench's pp")
	fs.IntVar(&g.longReps, "long-reps", 2, "GPU mode: apr processes and llama-bench repetitions of each longer prompt")
}

// parseLong reads the -gpu-long list: positive token counts.
func parseLong(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-gpu-long: %q is not a positive token count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// longRun is one longer prompt of a GPU case (-gpu-long): apr's runs
// (prompt, then the decode steps after it), llama-bench's pp and its
// decode steps after a context of the prompt's length (tg at depth N).
type longRun struct {
	Prompt  int
	APRRuns []*gpuRun
	// APRF16 are apr's runs with an F16 KV cache (--cache-type-k f16), as
	// llama.cpp keeps it, where apr's default is f32 (SafeTensors).
	APRF16 []*gpuRun
	Llama  *llamaBenchRow
	// LlamaDepth is llama-bench's -n n-predict -d Prompt: the decode steps
	// at positions Prompt.., as apr's decode after the prompt.
	LlamaDepth *llamaBenchRow
}

// gpuRun is one run of apr's or PyTorch's GPU driver: runResult plus the
// device and the many-stream figures.
type gpuRun struct {
	runResult
	Device              string  `json:"device"`
	DecodeAfterPrompt   float64 `json:"decode_after_prompt_s"` // the decode steps right after the prompt
	Streams             int     `json:"streams"`
	StreamPromptTokens  int     `json:"stream_prompt_tokens"`
	StreamPromptSeconds float64 `json:"stream_prompt_s"`
	StreamDecodeTokens  int     `json:"stream_decode_tokens"`
	StreamDecodeSeconds float64 `json:"stream_decode_s"`
	Torch               string  `json:"torch"`
	Transformers        string  `json:"transformers"`
	Compiled            bool    `json:"compiled"`
}

// AfterPromptRate is tokens/s of the decode steps that follow the prompt
// (0 when not measured); DecodeRate's steps start at position 0.
func (r *gpuRun) AfterPromptRate() float64 {
	if r.DecodeAfterPrompt <= 0 {
		return 0
	}
	return float64(r.DecodeTokens) / r.DecodeAfterPrompt
}

// StreamRate is the aggregate decode tokens/s of the streams (0 without).
func (r *gpuRun) StreamRate() float64 {
	if r.StreamDecodeSeconds <= 0 {
		return 0
	}
	return float64(r.StreamDecodeTokens) / r.StreamDecodeSeconds
}

// llamaBenchRow is one test of llama-bench's JSON-lines output.
type llamaBenchRow struct {
	BuildCommit string    `json:"build_commit"`
	BuildNumber int       `json:"build_number"`
	GPUInfo     string    `json:"gpu_info"`
	Backends    string    `json:"backends"`
	FlashAttn   any       `json:"flash_attn"`
	NGPULayers  int       `json:"n_gpu_layers"`
	NPrompt     int       `json:"n_prompt"`
	NGen        int       `json:"n_gen"`
	NDepth      int       `json:"n_depth"`
	AvgTS       float64   `json:"avg_ts"`
	SamplesTS   []float64 `json:"samples_ts"`
}

// batchedRow is one line of llama-batched-bench's JSON-lines output.
type batchedRow struct {
	PP      int     `json:"pp"`
	TG      int     `json:"tg"`
	PL      int     `json:"pl"`
	SpeedPP float64 `json:"speed_pp"`
	SpeedTG float64 `json:"speed_tg"`
}

// gpuCase is one row of the GPU tables: apr on one file, llama.cpp on the
// same file (F16 GGUF for apr's BF16 SafeTensors), PyTorch on the BF16
// folder of the same weights.
type gpuCase struct {
	Shape                   shape
	APR, Llama              fileKind
	WeightBytes, LlamaBytes int64
	APRRuns                 []*gpuRun
	LlamaPP, LlamaTG        *llamaBenchRow
	LlamaStreams            []batchedRow
	Torch                   *gpuRun
	Long                    []longRun
	Errs                    []string // engine: why a part failed
}

// fail notes in c.Errs (and the log) that part of the case failed: what
// ran (an engine, and the prompt where it is not the main one) and why.
func (c *gpuCase) fail(what string, err error) {
	c.Errs = append(c.Errs, what+": "+strings.Join(strings.Fields(tail(err.Error(), 300)), " "))
	logf("%s %s %s: %v", c.Shape.Name, c.APR.Name, what, err)
}

func (c *gpuCase) title() string {
	if c.APR.Name == c.Llama.Name {
		return c.APR.Name
	}
	return c.APR.Name + " / " + c.Llama.Name
}

// gpuReport is the GPU section of BENCHMARKS.md.
type gpuReport struct {
	Date                time.Time
	Device              string
	ReadBW, CopyBW      float64 // bytes/s, measured through PyTorch (0: not measured)
	BWBytes             int64
	BWErr               string
	Prompt, NPredict    int
	Streams, StreamPP   int
	Reps                int
	Commit, LlamaBuild  string
	LlamaSource         string
	Torch, Transformers string
	TorchCompiled       bool
	Cases               []gpuCase
	Elapsed             time.Duration
}

// planGPU lists the GPU cases: each selected size as Q4_K_M, Q8_0 and BF16
// SafeTensors (against an F16 GGUF).
func planGPU(o *options) ([]gpuCase, error) {
	cpu, err := plan(o)
	if err != nil {
		return nil, err
	}
	var cases []gpuCase
	for _, c := range cpu {
		if c.APR == kindBF16 {
			continue
		}
		cases = append(cases, gpuCase{Shape: c.Shape, APR: c.APR, Llama: c.Llama})
	}
	if o.bf16 {
		var withBF16 []gpuCase
		for i, c := range cases {
			withBF16 = append(withBF16, c)
			if i == len(cases)-1 || cases[i+1].Shape.Name != c.Shape.Name {
				withBF16 = append(withBF16, gpuCase{Shape: c.Shape, APR: kindBF16, Llama: kindF16})
			}
		}
		cases = withBF16
	}
	return cases, nil
}

// runGPU is the GPU mode: it writes the models, measures the device's
// bandwidth, runs each case's engines and rewrites the GPU section of the
// report after every case.
func runGPU(o *options) error {
	start := time.Now()
	g := &o.gpu
	if err := os.MkdirAll(o.cache, 0o755); err != nil {
		return err
	}
	cases, err := planGPU(o)
	if err != nil {
		return err
	}
	var vocab *vocabSource
	for i := range cases {
		c := &cases[i]
		bc := benchCase{Shape: c.Shape, APR: c.APR, Llama: c.Llama}
		if err := ensureModels(o, &vocab, &bc); err != nil {
			return err
		}
		c.WeightBytes, c.LlamaBytes = bc.WeightBytes, bc.LlamaBytes
	}
	if g.prepare {
		logf("models ready in %s", o.cache)
		return nil
	}
	if g.llamaBench == "" || (g.llamaBatched == "" && g.streams > 0) {
		return errors.New("-gpu needs -llama-bench and (unless -streams 0) -llama-batched-bench: the programs of a llama.cpp CUDA build")
	}
	apr, err := buildAPR(o)
	if err != nil {
		return err
	}

	r := rand.New(rand.NewPCG(o.seed, 0x70726f6d7074))
	prompt := make([]int, g.prompt)
	for i := range prompt {
		prompt[i] = r.IntN(151643)
	}
	rep := &gpuReport{Prompt: g.prompt, NPredict: o.nPredict, Streams: g.streams, StreamPP: g.streamPrompt,
		Reps: o.reps, Commit: binaryCommit(), TorchCompiled: g.torchCompile, LlamaSource: g.llamaSource, Cases: cases}
	if g.python != "" {
		var bw struct {
			Device string  `json:"device"`
			Read   float64 `json:"read_bytes_per_s"`
			Copy   float64 `json:"copy_bytes_per_s"`
			Bytes  int64   `json:"buffer_bytes"`
		}
		if err := runJSON(o.timeout, g.python, []string{g.torchScript, "--bandwidth"}, "", nil, &bw); err != nil {
			rep.BWErr = err.Error()
			logf("bandwidth: %v", err)
		} else {
			rep.Device, rep.ReadBW, rep.CopyBW, rep.BWBytes = bw.Device, bw.Read, bw.Copy, bw.Bytes
			logf("%s: read %.0f GB/s, copy %.0f GB/s", bw.Device, bw.Read/1e9, bw.Copy/1e9)
		}
	}
	longPrompts := make([][]int, len(g.long))
	for i, n := range g.long {
		longPrompts[i] = make([]int, n)
		for j := range longPrompts[i] {
			longPrompts[i][j] = r.IntN(151643)
		}
	}
	for i := range cases {
		c := &cases[i]
		measureGPUCase(o, apr, prompt, c, rep)
		for _, lp := range longPrompts {
			c.Long = append(c.Long, measureLong(o, apr, lp, c))
		}
		rep.Date, rep.Elapsed = time.Now().UTC(), time.Since(start)
		if err := writeGPUSection(o.out, rep); err != nil {
			return err
		}
	}
	logf("wrote the GPU section of %s in %s", o.out, time.Since(start).Round(time.Second))
	return nil
}

// measureGPUCase runs apr (o.reps processes), llama-bench (-r o.reps),
// llama-batched-bench and, for BF16, PyTorch on case c. A failing engine
// is noted in c.Errs; the others still run.
func measureGPUCase(o *options, apr string, prompt []int, c *gpuCase, rep *gpuReport) {
	g := &o.gpu
	fail := c.fail
	aprFile, llamaFile := c.APR.path(o.cache, c.Shape), c.Llama.path(o.cache, c.Shape)
	ids := joinIDs(prompt)
	for k := 0; k < o.reps; k++ {
		// The streams run in the first process only: one run per engine,
		// as llama-batched-bench's.
		streams := 0
		if k == 0 {
			streams = g.streams
		}
		args := []string{"bench-run", aprFile, "--cuda", "--tokens", ids, "--n-predict", strconv.Itoa(o.nPredict),
			"--ctx-size", strconv.Itoa(o.ctxSize), "--streams", strconv.Itoa(streams), "--stream-prompt", strconv.Itoa(g.streamPrompt)}
		run, err := runAPRGPU(o, apr, args, len(prompt))
		if err != nil {
			fail("apr", err)
			break
		}
		c.APRRuns = append(c.APRRuns, run)
		if rep.Device == "" {
			rep.Device = run.Device
		}
		logf("%s %s apr rep %d: load %.2fs, prompt %.0f tok/s, decode %.1f tok/s, %d streams %.0f tok/s",
			c.Shape.Name, c.APR.Name, k+1, run.LoadSeconds, run.PromptRate(), run.DecodeRate(), run.Streams, run.StreamRate())
	}

	rows, err := llamaBench(o, llamaFile, len(prompt))
	if err != nil {
		fail("llama-bench", err)
	}
	for i := range rows {
		switch {
		case rows[i].NPrompt > 0 && rows[i].NGen == 0:
			c.LlamaPP = &rows[i]
		case rows[i].NGen > 0 && rows[i].NPrompt == 0:
			c.LlamaTG = &rows[i]
		}
		if rep.LlamaBuild == "" {
			rep.LlamaBuild = fmt.Sprintf("build commit %s, backends %s, GPU %s, -ngl %d, flash attention %s (its default)",
				rows[i].BuildCommit, rows[i].Backends, rows[i].GPUInfo, rows[i].NGPULayers, flashAttn(rows[i].FlashAttn))
		}
	}
	if c.LlamaPP != nil && c.LlamaTG != nil {
		logf("%s %s llama-bench: pp%d %.0f tok/s, tg%d %.1f tok/s", c.Shape.Name, c.Llama.Name,
			c.LlamaPP.NPrompt, median(c.LlamaPP.SamplesTS), c.LlamaTG.NGen, median(c.LlamaTG.SamplesTS))
	}
	if g.streams > 0 {
		for k := 0; k < g.llamaStreamReps; k++ {
			b, err := llamaBatched(o, llamaFile)
			if err != nil {
				fail("llama-batched-bench", err)
				break
			}
			c.LlamaStreams = append(c.LlamaStreams, *b)
			logf("%s %s llama-batched-bench: %d streams %.0f tok/s", c.Shape.Name, c.Llama.Name, b.PL, b.SpeedTG)
		}
	}

	if c.APR == kindBF16 && g.python != "" {
		var run gpuRun
		args := []string{g.torchScript, aprFile, "--tokens", ids, "--n-predict", strconv.Itoa(o.nPredict),
			"--streams", strconv.Itoa(g.streams), "--stream-prompt", strconv.Itoa(g.streamPrompt)}
		if g.torchCompile {
			args = append(args, "--compile")
		}
		if err := runJSON(o.timeout, g.python, args, "", nil, &run); err != nil {
			fail("PyTorch", err)
		} else if err := run.check(len(prompt), o.nPredict); err != nil {
			fail("PyTorch", err)
		} else {
			c.Torch = &run
			rep.Torch, rep.Transformers = run.Torch, run.Transformers
			logf("%s PyTorch: prompt %.0f tok/s, decode %.1f tok/s, %d streams %.0f tok/s",
				c.Shape.Name, run.PromptRate(), run.DecodeRate(), run.Streams, run.StreamRate())
		}
	}
}

// measureLong runs the longer prompt on case c: apr (o.gpu.longReps
// processes, no streams, a context of the prompt and the decode steps),
// llama-bench's pp of the same length (-n 0) and its decode steps after a
// context of that length (-p 0 -n n-predict -d N).
func measureLong(o *options, apr string, prompt []int, c *gpuCase) longRun {
	g := &o.gpu
	lr := longRun{Prompt: len(prompt)}
	fail := func(engine string, err error) { c.fail(fmt.Sprintf("%s pp%d", engine, len(prompt)), err) }
	ids := joinIDs(prompt)
	caches := []string{""}
	if c.APR == kindBF16 {
		caches = append(caches, "f16") // llama.cpp's cache type; apr's default here is f32
	}
	for _, cache := range caches {
		for k := 0; k < g.longReps; k++ {
			args := []string{"bench-run", c.APR.path(o.cache, c.Shape), "--cuda", "--tokens", ids, "--n-predict", strconv.Itoa(o.nPredict),
				"--ctx-size", strconv.Itoa(len(prompt) + o.nPredict + 1), "--streams", "0"}
			engine, runs := "apr", &lr.APRRuns
			if cache != "" {
				args = append(args, "--cache-type-k", cache)
				engine, runs = "apr --cache-type-k "+cache, &lr.APRF16
			}
			run, err := runAPRGPU(o, apr, args, len(prompt))
			if err != nil {
				fail(engine, err)
				break
			}
			*runs = append(*runs, run)
			logf("%s %s %s pp%d rep %d: prompt %.0f tok/s, decode after it %.1f tok/s", c.Shape.Name, c.APR.Name, engine,
				len(prompt), k+1, run.PromptRate(), run.AfterPromptRate())
		}
	}
	file := c.Llama.path(o.cache, c.Shape)
	rows, err := llamaBenchRuns(o, file, len(prompt), 0, 0, g.longReps)
	if err != nil {
		fail("llama-bench", err)
	}
	for i := range rows {
		if rows[i].NPrompt == len(prompt) && rows[i].NGen == 0 {
			lr.Llama = &rows[i]
			logf("%s %s llama-bench: pp%d %.0f tok/s", c.Shape.Name, c.Llama.Name, len(prompt), median(rows[i].SamplesTS))
		}
	}
	rows, err = llamaBenchRuns(o, file, 0, o.nPredict, len(prompt), g.longReps)
	if err != nil {
		fail(fmt.Sprintf("llama-bench tg%d at depth", o.nPredict), err)
	}
	for i := range rows {
		if rows[i].NPrompt == 0 && rows[i].NGen == o.nPredict && rows[i].NDepth == len(prompt) {
			lr.LlamaDepth = &rows[i]
			logf("%s %s llama-bench: tg%d at depth %d %.1f tok/s", c.Shape.Name, c.Llama.Name, o.nPredict, len(prompt),
				median(rows[i].SamplesTS))
		}
	}
	return lr
}

// runAPRGPU runs apr with args (a GPU bench-run) and checks its result against
// the prompt's tokens and o.nPredict.
func runAPRGPU(o *options, apr string, args []string, prompt int) (*gpuRun, error) {
	var run gpuRun
	if err := runJSON(o.timeout, apr, args, "", nil, &run); err != nil {
		return nil, err
	}
	if err := run.check(prompt, o.nPredict); err != nil {
		return nil, err
	}
	return &run, nil
}

// flashAttn names llama-bench's flash_attn field: -1 auto, 0 off, 1 on.
func flashAttn(v any) string {
	switch fmt.Sprint(v) {
	case "-1":
		return "auto"
	case "0", "false":
		return "off"
	case "1", "true":
		return "on"
	}
	return fmt.Sprint(v)
}

// binaryCommit is the commit the bench binary was built from: the one
// the build was told (-X main.buildCommit), else the one the Go toolchain
// stamped into it (built in a git checkout), else the checkout's HEAD. On
// a GPU machine the carried binaries are what runs, whatever tree is
// there (its copy of the repository may be stale or carry other files).
func binaryCommit() string {
	if buildCommit != "unknown" {
		return buildCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if c := vcsCommit(bi.Settings); c != "" {
			return c
		}
	}
	return gitCommit()
}

// vcsCommit is the commit that a binary's build settings record
// (vcs.revision, shortened to 12 digits; marked when vcs.modified), or ""
// when they record none.
func vcsCommit(settings []debug.BuildSetting) string {
	rev, modified := "", false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += " plus uncommitted changes of the tree it was built from"
	}
	return rev
}

// check rejects a result whose counts are not the job's or whose times are
// not positive.
func (r *gpuRun) check(prompt, predict int) error {
	if r.PromptTokens != prompt || r.DecodeTokens != predict || r.PromptSeconds <= 0 || r.DecodeSeconds <= 0 ||
		(r.Streams > 0 && (r.StreamDecodeSeconds <= 0 || r.StreamDecodeTokens <= 0)) {
		return fmt.Errorf("implausible result %+v", *r)
	}
	return nil
}

// llamaBench runs llama-bench on file: pp<prompt> and tg<n-predict>, all
// layers on the GPU, o.reps repetitions.
func llamaBench(o *options, file string, prompt int) ([]llamaBenchRow, error) {
	return llamaBenchRuns(o, file, prompt, o.nPredict, 0, o.reps)
}

// llamaBenchRuns runs llama-bench on file: pp<prompt> and tg<gen> (either
// 0: none) after a context of depth tokens (0: none), reps repetitions.
func llamaBenchRuns(o *options, file string, prompt, gen, depth, reps int) ([]llamaBenchRow, error) {
	args := []string{"-m", file, "-ngl", "99", "-p", strconv.Itoa(prompt), "-n", strconv.Itoa(gen), "-r", strconv.Itoa(reps), "-o", "jsonl"}
	if depth > 0 {
		args = append(args, "-d", strconv.Itoa(depth))
	}
	out, err := runOutput(o.timeout, o.gpu.llamaBench, args...)
	if err != nil {
		return nil, err
	}
	var rows []llamaBenchRow
	for _, line := range jsonLines(out) {
		var r llamaBenchRow
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("llama-bench output: %w", err)
		}
		if len(r.SamplesTS) == 0 {
			return nil, fmt.Errorf("llama-bench: a test without samples: %s", line)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("llama-bench printed no results:\n%s", tail(string(out), 1000))
	}
	return rows, nil
}

// llamaBatched runs llama-batched-bench on file: o.gpu.streams sequences of
// stream-prompt tokens each, then n-predict steps of one token per stream.
func llamaBatched(o *options, file string) (*batchedRow, error) {
	g := &o.gpu
	ctx := g.streams * (g.streamPrompt + o.nPredict)
	out, err := runOutput(o.timeout, g.llamaBatched, "-m", file, "-ngl", "99", "-c", strconv.Itoa(ctx),
		"-npp", strconv.Itoa(g.streamPrompt), "-ntg", strconv.Itoa(o.nPredict), "-npl", strconv.Itoa(g.streams),
		"--output-format", "jsonl")
	if err != nil {
		return nil, err
	}
	for _, line := range jsonLines(out) {
		var r batchedRow
		if json.Unmarshal(line, &r) == nil && r.PL == g.streams && r.SpeedTG > 0 {
			return &r, nil
		}
	}
	return nil, fmt.Errorf("llama-batched-bench printed no result for %d streams:\n%s", g.streams, tail(string(out), 1000))
}

// jsonLines returns the lines of out that hold a JSON object.
func jsonLines(out []byte) [][]byte {
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) > 1 && line[0] == '{' && line[len(line)-1] == '}' {
			lines = append(lines, append([]byte(nil), line...))
		}
	}
	return lines
}

// runOutput runs a program and returns its stdout and stderr together
// (llama.cpp's tools print results on either).
func runOutput(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", name, err, tail(string(out), 2000))
	}
	return out, nil
}
