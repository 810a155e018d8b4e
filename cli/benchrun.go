package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/sample"
)

func init() { register(newBenchRunCmd) }

// benchResult is what bench-run prints: the timings of one prompt pass and
// one greedy decode, and the process's memory high-water mark, as the
// benchmark command (go run ./bench) reads them.
type benchResult struct {
	Engine        string  `json:"engine"`
	Threads       int     `json:"threads"`
	LoadSeconds   float64 `json:"load_s"`
	PromptTokens  int     `json:"prompt_tokens"`
	PromptSeconds float64 `json:"prompt_s"`
	DecodeTokens  int     `json:"decode_tokens"`
	DecodeSeconds float64 `json:"decode_s"`
	BaseRSSBytes  int64   `json:"base_rss_bytes"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
	Output        []int   `json:"output"`
	Device        string  `json:"device,omitempty"` // --cuda: the GPU's name
	// DecodeAfterPromptSeconds (--cuda) times the greedy steps that follow
	// the prompt; DecodeSeconds then times the same number of steps from
	// position 0, as llama-bench's tg test.
	DecodeAfterPromptSeconds float64 `json:"decode_after_prompt_s,omitempty"`
	streamResult
}

// newBenchRunCmd is the hidden command the benchmark runs as a child
// process: it feeds token ids (no tokenizer), so apr and llama.cpp see the
// same input, and reports load, prompt and decode times and peak RSS.
func newBenchRunCmd(e *env) *cobra.Command {
	var (
		f       modelFlags
		tokens  string
		predict int
		ctxSize int
		onGPU   bool
		gpu     gpuBench
	)
	cmd := &cobra.Command{
		Use:    "bench-run MODEL",
		Short:  "Time one prompt pass and a greedy decode on token ids (used by go run ./bench)",
		Hidden: true,
		Long: "bench-run loads MODEL, evaluates the prompt given as token ids in one pass, then decodes\n" +
			"--n-predict tokens greedily (EOS does not stop it), and prints one JSON object on stdout:\n" +
			"load, prompt and decode times, and the peak resident memory (VmHWM) of the process.\n" +
			"With --cuda it runs on the GPU (backend/cuda): each timed part once untimed first, and with\n" +
			"--streams N also N sequences of --stream-prompt tokens decoding --n-predict steps together.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(tokens)
			if err != nil {
				return err
			}
			if predict < 1 {
				return fmt.Errorf("--n-predict must be at least 1, got %d", predict)
			}
			r := benchResult{Engine: "apr", PromptTokens: len(ids), DecodeTokens: predict}
			if r.BaseRSSBytes, err = procStatusBytes("VmRSS"); err != nil {
				return err
			}
			if onGPU {
				r.Engine = "apr-cuda"
				if gpu.Cache, err = f.cacheType(); err != nil {
					return err
				}
				if err := benchCUDA(&r, args[0], ids, predict, ctxSize, gpu); err != nil {
					return err
				}
				return e.printBenchResult(&r)
			}
			t0 := time.Now()
			l, err := e.load(args[0], &f)
			if err != nil {
				return err
			}
			defer l.Close()
			if ctxSize < len(ids)+predict {
				ctxSize = len(ids) + predict
			}
			seq := l.engine.NewSequence(ctxSize)
			r.LoadSeconds = time.Since(t0).Seconds()
			r.Threads = l.engine.Threads()
			if err := checkIDs(ids, l.model.Config.VocabSize); err != nil {
				return err
			}

			t1 := time.Now()
			logits, err := seq.Forward(ids, false)
			if err != nil {
				return fmt.Errorf("prompt: %w", err)
			}
			r.PromptSeconds = time.Since(t1).Seconds()
			next := sample.Argmax(logits)
			r.Output = append(r.Output, next)
			t2 := time.Now()
			for i := 0; i < predict; i++ {
				if logits, err = seq.Forward([]int{next}, false); err != nil {
					return fmt.Errorf("decode step %d: %w", i, err)
				}
				next = sample.Argmax(logits)
				r.Output = append(r.Output, next)
			}
			r.DecodeSeconds = time.Since(t2).Seconds()
			return e.printBenchResult(&r)
		},
	}
	f.register(cmd)
	f.registerCache(cmd)
	fl := cmd.Flags()
	fl.StringVar(&tokens, "tokens", "", "prompt token ids, comma-separated")
	fl.IntVarP(&predict, "n-predict", "n", 128, "tokens to decode after the prompt")
	fl.IntVarP(&ctxSize, "ctx-size", "c", 512, "KV cache size in tokens (at least prompt + n-predict)")
	fl.BoolVar(&onGPU, "cuda", false, "run on the GPU (backend/cuda) instead of the CPU engine")
	fl.IntVar(&gpu.Streams, "streams", 0, "with --cuda: also decode this many sequences together")
	fl.IntVar(&gpu.StreamPrompt, "stream-prompt", 128, "with --streams: prompt tokens of each sequence")
	return cmd
}

// printBenchResult completes r with the peak memory and prints it as one
// JSON line.
func (e *env) printBenchResult(r *benchResult) error {
	var err error
	if r.PeakRSSBytes, err = procStatusBytes("VmHWM"); err != nil {
		return err
	}
	out, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", out)
	return err
}

// checkIDs reports the first id outside a vocabulary of vocab tokens.
func checkIDs(ids []int, vocab int) error {
	for _, id := range ids {
		if id < 0 || id >= vocab {
			return fmt.Errorf("token id %d is outside the vocabulary of %d", id, vocab)
		}
	}
	return nil
}

// parseIDs reads comma-separated token ids.
func parseIDs(s string) ([]int, error) {
	var ids []int
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		id, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("--tokens: %q is not a token id", p)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("--tokens: no token ids given")
	}
	return ids, nil
}

// procStatusBytes reads a "kB" field of /proc/self/status (VmRSS, VmHWM).
func procStatusBytes(field string) (int64, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak memory: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/status %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/self/status has no %s", field)
}
