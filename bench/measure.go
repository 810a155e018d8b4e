package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runResult is one run of one engine on one model, as `apr bench-run` and
// llama/run.mjs print it.
type runResult struct {
	Engine         string  `json:"engine"`
	Threads        int     `json:"threads"`
	LoadSeconds    float64 `json:"load_s"`
	PromptTokens   int     `json:"prompt_tokens"`
	PromptSeconds  float64 `json:"prompt_s"`
	DecodeTokens   int     `json:"decode_tokens"`
	DecodeSeconds  float64 `json:"decode_s"`
	BaseRSSBytes   int64   `json:"base_rss_bytes"`
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
	Output         []int   `json:"output"`
	FlashAttention any     `json:"flash_attention,omitempty"`
	Binary         string  `json:"binary,omitempty"`
	CPUBackend     string  `json:"cpu_backend,omitempty"` // llama.cpp's ggml CPU variant
}

// PromptRate is prompt tokens per second.
func (r *runResult) PromptRate() float64 { return float64(r.PromptTokens) / r.PromptSeconds }

// DecodeRate is decoded tokens per second.
func (r *runResult) DecodeRate() float64 { return float64(r.DecodeTokens) / r.DecodeSeconds }

// job is what both engines are given for one run.
type job struct {
	Model    string
	Threads  int
	Prompt   []int
	NPredict int
	CtxSize  int
	Timeout  time.Duration
}

// runChild runs a command that prints one runResult as the last line of
// its stdout.
func runChild(j job, name string, args []string, dir string, env []string) (*runResult, error) {
	var r runResult
	if err := runJSON(j.Timeout, name, args, dir, env, &r); err != nil {
		return nil, err
	}
	if r.PromptSeconds <= 0 || r.DecodeSeconds <= 0 || r.DecodeTokens != j.NPredict || r.PromptTokens != len(j.Prompt) {
		return nil, fmt.Errorf("%s: implausible result %+v", name, r)
	}
	return &r, nil
}

// runJSON runs a command (in dir, with env added) that prints a JSON object
// as the last line of its stdout, and decodes that line into dst.
func runJSON(timeout time.Duration, name string, args []string, dir string, env []string, dst any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args[:min(len(args), 1)], " "), err,
			tail(stderr.String(), 2000), tail(stdout.String(), 500))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), dst); err != nil {
		return fmt.Errorf("%s: reading its result: %w\n%s", name, err, tail(stdout.String(), 500))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func joinIDs(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}

// runAPR runs the apr binary's hidden bench-run command.
func runAPR(apr string, j job) (*runResult, error) {
	return runChild(j, apr, []string{"bench-run", j.Model, "--threads", strconv.Itoa(j.Threads),
		"--tokens", joinIDs(j.Prompt), "--n-predict", strconv.Itoa(j.NPredict), "--ctx-size", strconv.Itoa(j.CtxSize)}, "", nil)
}

// runLlama runs llama.cpp through llama/run.mjs in llamaDir.
func runLlama(llamaDir string, j job) (*runResult, error) {
	return runChild(j, "node", []string{"run.mjs", j.Model, strconv.Itoa(j.Threads), strconv.Itoa(j.NPredict),
		strconv.Itoa(j.CtxSize), joinIDs(j.Prompt)}, llamaDir, []string{"NODE_LLAMA_CPP_SKIP_DOWNLOAD=true"})
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summary is the medians of several runs of one engine on one model.
type summary struct {
	Runs                         []*runResult
	Load, Prompt, Decode, PeakMB float64
}

func summarize(runs []*runResult) summary {
	s := summary{Runs: runs}
	var load, prompt, decode, peak []float64
	for _, r := range runs {
		load = append(load, r.LoadSeconds)
		prompt = append(prompt, r.PromptRate())
		decode = append(decode, r.DecodeRate())
		peak = append(peak, float64(r.PeakRSSBytes)/(1<<20))
	}
	s.Load, s.Prompt, s.Decode, s.PeakMB = median(load), median(prompt), median(decode), median(peak)
	return s
}

// memBandwidth measures the read bandwidth of main memory in bytes/s:
// threads goroutines sum disjoint parts of a size-byte buffer (far larger
// than the caches), best of reps passes.
func memBandwidth(size, threads, reps int) float64 {
	buf := make([]uint64, size/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	best := 0.0
	var sink uint64
	for range reps {
		var wg sync.WaitGroup
		sums := make([]uint64, threads)
		part := len(buf) / threads / 8 * 8
		t0 := time.Now()
		for w := 0; w < threads; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sums[w] = sum8(buf[w*part : (w+1)*part])
			}()
		}
		wg.Wait()
		d := time.Since(t0).Seconds()
		for _, s := range sums {
			sink += s
		}
		best = max(best, float64(part*threads*8)/d)
	}
	runtime.KeepAlive(sink)
	return best
}

// sum8 sums x (a multiple of 8 long) with eight independent accumulators,
// so the loop is bound by memory, not by the add latency.
func sum8(x []uint64) uint64 {
	var a, b, c, d, e, f, g, h uint64
	for len(x) >= 8 {
		v := x[:8:8]
		a += v[0]
		b += v[1]
		c += v[2]
		d += v[3]
		e += v[4]
		f += v[5]
		g += v[6]
		h += v[7]
		x = x[8:]
	}
	return a + b + c + d + e + f + g + h
}

// cpuInfo is what /proc/cpuinfo says about the machine.
type cpuInfo struct {
	Model    string
	Logical  int
	Features []string // the SIMD features the kernels may use
}

func readCPUInfo() cpuInfo {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return cpuInfo{Model: "unknown (" + err.Error() + ")"}
	}
	return parseCPUInfo(string(raw))
}

// parseCPUInfo reads the text of /proc/cpuinfo: the first model name, the
// number of processors, the first flags line's SIMD features.
func parseCPUInfo(text string) cpuInfo {
	var ci cpuInfo
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "processor":
			ci.Logical++
		case k == "model name" && ci.Model == "":
			ci.Model = v
		case k == "flags" && ci.Features == nil:
			ci.Features = []string{}
			for _, f := range strings.Fields(v) {
				switch f {
				case "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16":
					ci.Features = append(ci.Features, f)
				}
			}
		}
	}
	return ci
}
