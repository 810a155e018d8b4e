package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/profile"
	"github.com/apr-llm/apr/sample"
)

// needGPU skips a test without a usable GPU, with cuda.Available's reason.
func needGPU(t *testing.T) {
	t.Helper()
	if ok, why := cuda.Available(); !ok {
		t.Skip("no usable GPU: " + why)
	}
}

// sharedModels are the shared model files by format, and an APR file
// imported from the SafeTensors folder.
func sharedModels(t *testing.T) [][2]string {
	t.Helper()
	dir := testref.ModelDir(t)
	aprFile := filepath.Join(t.TempDir(), "tiny.apr")
	if code, _, errOut := apr(t, "", "import", dir, "-o", aprFile); code != 0 {
		t.Fatalf("apr import: exit %d: %s", code, errOut)
	}
	gguf := func(q string) string {
		return testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-"+q+".gguf")
	}
	return [][2]string{{"safetensors", dir}, {"gguf-q8_0", gguf("q8_0")}, {"gguf-q4_k_m", gguf("q4_k_m")}, {"apr", aprFile}}
}

// greedyArgs are `apr run` arguments for a raw greedy continuation of
// text without repeat penalty, as the reference runs were made.
func greedyArgs(model, text string, n int, device string) []string {
	return []string{"run", model, "--raw", "--temp", "0", "--repeat-penalty", "1", "-n", fmt.Sprint(n), "--device", device, "--verbose", text}
}

// TestRunOnGPUMatchesCPU: for every shared model and reference prompt,
// `apr run --device cuda` writes the CPU's greedy continuation (32 tokens
// or up to EOS) and says it ran on the GPU, with every layer there and
// with the last two (-ngl 2: the CPU runs the first two).
//
// This test's CPU runs quant's AVX2/AVX-512 kernels, whose float sums run
// in another order than the GPU's (which reproduce the portable kernels
// bit for bit: backend/cuda's tests), so a greedy continuation of a GGUF
// file may take the other branch of a near tie. Where the texts differ,
// both continuations are replayed in process (gpuDivergence): they must
// part at a step where the two tokens' logits on the CPU are within the
// issue's parity bar of each other, twice 1e-2 x max|logit| (each side may
// be off by one bar), and nowhere else.
func TestRunOnGPUMatchesCPU(t *testing.T) {
	needGPU(t)
	for _, m := range sharedModels(t) {
		t.Run(m[0], func(t *testing.T) {
			for _, p := range testref.HFOutputs(t) {
				code, want, errOut := apr(t, "", greedyArgs(m[1], p.Text, 32, "cpu")...)
				if code != 0 {
					t.Fatalf("%s on the CPU: exit %d: %s", p.Name, code, errOut)
				}
				for _, ngl := range []int{-1, 2} {
					code, got, errOut := apr(t, "", append(greedyArgs(m[1], p.Text, 32, "cuda"), "-ngl", fmt.Sprint(ngl))...)
					if code != 0 {
						t.Fatalf("%s on the GPU (-ngl %d): exit %d: %s", p.Name, ngl, code, errOut)
					}
					if !strings.Contains(errOut, "device cuda (") {
						t.Fatalf("%s (-ngl %d): not on the GPU: %s", p.Name, ngl, errOut)
					}
					if got == want {
						continue
					}
					step, gap, bar := gpuDivergence(t, m[1], p.TokenIDs, 32, ngl)
					if step < 0 || gap >= bar {
						t.Errorf("%s: GPU (-ngl %d) %q, CPU %q; in process they part at step %d, the GPU's token %.4g below the CPU's in the CPU's logits (bar %.4g)",
							p.Name, ngl, got, want, step, gap, bar)
						continue
					}
					t.Logf("%s (-ngl %d): the GPU takes the other branch of a near tie at step %d (its token %.4g below the CPU's in the CPU's logits, bar %.4g)",
						p.Name, ngl, step, gap, bar)
				}
			}
		})
	}
}

// gpuDivergence replays n greedy steps after prompt on the CPU and on the
// GPU (ngl layers there), each loaded as `apr run` loads it, and returns
// the first step whose tokens differ (-1: none), how far the GPU's token
// is below the CPU's in the CPU's logits there, and the bar that gap must
// stay under: 2e-2 x the CPU's max|logit| at that step.
func gpuDivergence(t *testing.T, path string, prompt []int, n, ngl int) (step int, gap, bar float32) {
	t.Helper()
	greedy := func(f modelFlags) (ids []int, steps [][]float32) {
		e := &env{stdout: io.Discard, stderr: io.Discard}
		f.threads, f.slots, f.ctx = 2, 1, len(prompt)+n+1
		l, err := e.load(path, &f)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		seq := l.engine.NewSequence(f.ctx)
		logits, err := seq.Forward(prompt, false)
		for range n {
			if err != nil {
				t.Fatal(err)
			}
			steps = append(steps, slices.Clone(logits))
			ids = append(ids, sample.Argmax(logits))
			logits, err = seq.Forward(ids[len(ids)-1:], false)
		}
		return ids, steps
	}
	cpuIDs, cpuLogits := greedy(modelFlags{device: "cpu"})
	gpuIDs, _ := greedy(modelFlags{device: "cuda", gpuLayers: ngl})
	for i := range cpuIDs {
		if cpuIDs[i] != gpuIDs[i] {
			l := cpuLogits[i]
			scale := float32(0)
			for _, v := range l {
				scale = max(scale, float32(math.Abs(float64(v))))
			}
			return i, l[cpuIDs[i]] - l[gpuIDs[i]], 2e-2 * scale
		}
	}
	return -1, 0, 0
}

// startServe runs `apr serve` in process with args (a free port is added)
// and returns its base URL and a function that stops it and checks that
// it exited cleanly.
func startServe(t testing.TB, args ...string) (string, func()) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	root := NewRoot(strings.NewReader(""), io.Discard, pw)
	root.SetArgs(append(append([]string{"serve"}, args...), "--port", "0"))
	done := make(chan error, 1)
	go func() {
		done <- root.ExecuteContext(ctx)
		pw.Close()
	}()
	addr := regexp.MustCompile(`on http://(\S+) `)
	sc := bufio.NewScanner(pr)
	var base string
	for sc.Scan() {
		if m := addr.FindStringSubmatch(sc.Text()); m != nil {
			base = "http://" + m[1]
			break
		}
	}
	if base == "" {
		cancel()
		t.Fatalf("apr serve printed no address: %v", <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return base, func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("apr serve after shutdown: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("apr serve did not stop")
		}
	}
}

// TestServeOnGPUConcurrentStreams: `apr serve --device cuda` with four
// parallel slots answers twelve concurrent streamed completions (more
// requests than slots, so slots are reused) with the CPU's greedy
// continuation of each reference prompt, and a request with X-Trace-Level
// gets its passes as device_forward bricks. The model is the SafeTensors one:
// with GGUF files the numerics follow llama.cpp's, whose flash attention
// rounds differently in passes of 64 rows or more, so a batch of several
// prompts may tip a near tie another way than one prompt alone would, on
// either device.
func TestServeOnGPUConcurrentStreams(t *testing.T) {
	needGPU(t)
	const n = 24
	model := testref.ModelDir(t)
	prompts := testref.HFOutputs(t)
	want := map[string]string{}
	for _, p := range prompts {
		code, out, errOut := apr(t, "", greedyArgs(model, p.Text, n, "cpu")...)
		if code != 0 {
			t.Fatalf("%s on the CPU: exit %d: %s", p.Name, code, errOut)
		}
		want[p.Name] = strings.TrimSuffix(out, "\n")
	}
	base, stop := startServe(t, model, "--device", "cuda", "--parallel", "4", "--ctx-size", "1024")
	defer stop()
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithMaxRetries(0))
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		p := prompts[i%len(prompts)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := client.Completions.NewStreaming(context.Background(), openai.CompletionNewParams{
				Model:       "tiny",
				Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String(p.Text)},
				Temperature: openai.Float(0),
				MaxTokens:   openai.Int(n),
			}, option.WithJSONSet("repetition_penalty", 1))
			text := ""
			for s.Next() {
				if ch := s.Current(); len(ch.Choices) > 0 {
					text += ch.Choices[0].Text
				}
			}
			switch {
			case s.Err() != nil:
				errs <- fmt.Errorf("stream %d (%s): %w", i, p.Name, s.Err())
			case text != want[p.Name]:
				errs <- fmt.Errorf("stream %d (%s): GPU %q, CPU %q", i, p.Name, text, want[p.Name])
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A request's own trace: its passes are device_forward bricks.
	req, err := http.NewRequest("POST", base+"/v1/completions",
		strings.NewReader(`{"prompt": "def fib(n):", "max_tokens": 4, "temperature": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Trace-Level", "brick")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Trace struct {
			Lines []struct {
				Type, Brick string
				Rows        int
			}
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	bricks := 0
	for _, l := range body.Trace.Lines {
		if l.Brick == string(engine.BrickDevice) && l.Rows > 0 {
			bricks++
		}
	}
	if res.StatusCode != http.StatusOK || bricks < 2 {
		t.Errorf("traced request: status %d, %d device_forward bricks in %+v", res.StatusCode, bricks, body.Trace.Lines)
	}
}

// TestProfileTraceChatOnGPU: apr profile on the GPU times each pass as one
// device_forward brick (CUDA events) beside sampling, their sum and the
// unattributed rest making up the measured total; --trace names the GPU
// in its header and writes one pass per forward pass; chat answers each
// piped message on the GPU.
func TestProfileTraceChatOnGPU(t *testing.T) {
	needGPU(t)
	model := testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q8_0.gguf")
	code, out, errOut := apr(t, "", "profile", model, "--json", "-n", "8", "--device", "cuda")
	if code != 0 {
		t.Fatalf("profile: exit %d: %s", code, errOut)
	}
	var r profile.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("profile --json: %v in %q", err, out)
	}
	calls := map[engine.Brick]int{}
	for _, b := range r.Bricks {
		calls[b.Name] = b.Calls
		if b.Total <= 0 {
			t.Errorf("brick %s: total %v", b.Name, b.Total)
		}
	}
	if !strings.HasPrefix(r.Device, "cuda (") || len(r.Bricks) != 2 || calls[engine.BrickDevice] != 8 || calls[engine.BrickSampling] != 8 || r.BrickSum+r.Unattributed != r.Measured || r.BrickSum > r.Measured {
		t.Errorf("profile on the GPU: %+v", r)
	}
	t.Logf("profile on the GPU: %d tokens, prefill %.0f tok/s, decode %.0f tok/s, bricks %+v", r.Tokens, r.PrefillRate, r.DecodeRate, r.Bricks)

	q := "What is 2+2? Answer with just the number."
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	code, out, errOut = apr(t, "", "run", model, "--temperature", "0", "--device", "cuda", "--trace", path, q)
	if code != 0 || out != "4\n" {
		t.Fatalf("run --trace: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	tr := readTrace(t, path)
	if !strings.HasPrefix(tr.Header.Device, "cuda (") || len(tr.Passes) != 2 || tr.Passes[0].Bricks != 1 || tr.Passes[0].Rows < 10 {
		t.Errorf("trace on the GPU: header %+v, passes %+v", tr.Header, tr.Passes)
	}

	code, out, errOut = apr(t, q+"\nWhat is 3+3? Answer with just the number.\n", "chat", model, "--temperature", "0", "--device", "cuda", "--verbose")
	if code != 0 || !strings.Contains(errOut, "device cuda (") || !strings.Contains(out, "4") || !strings.Contains(out, "6") {
		t.Errorf("chat on the GPU: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// BenchmarkServeStreamsGPU measures `apr serve` on the GPU end to end:
// -streams (32) concurrent completions of 128 tokens each (EOS ignored by
// the random-weight models it is meant for), their aggregate generated
// tokens/s through the HTTP API, the scheduler's continuous batching and
// the engine. The model is $APR_BENCH_MODEL (a bench -gpu-prepare file);
// it skips without it or without a usable GPU.
func BenchmarkServeStreamsGPU(b *testing.B) {
	model := os.Getenv("APR_BENCH_MODEL")
	if model == "" {
		b.Skip("APR_BENCH_MODEL names no model")
	}
	if ok, why := cuda.Available(); !ok {
		b.Skip("no usable GPU: " + why)
	}
	const streams, tokens = 32, 128
	base, stop := startServe(b, model, "--device", "cuda", "--parallel", fmt.Sprint(streams), "--ctx-size", "512")
	defer stop()
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithMaxRetries(0))
	var total atomic.Int64
	for b.Loop() {
		var wg sync.WaitGroup
		for i := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := client.Completions.New(context.Background(), openai.CompletionNewParams{
					Model:       "bench",
					Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String(fmt.Sprintf("def f%d(x):", i))},
					Temperature: openai.Float(0),
					MaxTokens:   openai.Int(tokens),
				})
				if err != nil {
					b.Error(err)
					return
				}
				total.Add(res.Usage.CompletionTokens)
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(total.Load())/b.Elapsed().Seconds(), "tok/s")
}
