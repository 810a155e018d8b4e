package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/server"
)

func init() { register(newServeCmd) }

// mib converts bytes to MiB for messages.
func mib[T int | int64](b T) float64 { return float64(b) / (1 << 20) }

func newServeCmd(e *env) *cobra.Command {
	var (
		mf        modelFlags
		host      string
		port      int
		apiKey    string
		parallel  int
		ctxSize   int
		queue     int
		alias     string
		batchToks int
		kvBudget  string
	)
	cmd := &cobra.Command{
		Use:   "serve MODEL",
		Short: "Serve a model over an OpenAI-compatible HTTP API",
		Long: "Serve loads MODEL and answers the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models)\n" +
			"and apr's native endpoints (/tokenize, /detokenize, /generate, /batch/generate, /health,\n" +
			"/metrics). Up to --parallel requests are decoded together (continuous batching); up to --queue\n" +
			"more wait, and beyond that requests get 503 with Retry-After. SIGINT or SIGTERM stops accepting\n" +
			"connections and lets in-flight requests finish.",
		Example: `  apr serve ./qwen2.5-coder-1.5b --port 8080
  apr serve model.gguf --host 0.0.0.0 --api-key secret --parallel 8 --ctx-size 8192`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if parallel < 1 {
				return fmt.Errorf("--parallel %d: at least 1", parallel)
			}
			budget, err := server.ParseBytes(kvBudget)
			if err != nil {
				return fmt.Errorf("--kv-budget: %w", err)
			}
			// The GPU keeps a KV cache slot for each parallel request, as
			// many as the budget holds.
			mf.slots, mf.ctx, mf.kvBudget = parallel, ctxSize, budget
			l, err := e.load(args[0], &mf)
			if err != nil {
				return err
			}
			defer l.Close()
			name := alias
			if name == "" {
				name = filepath.Base(args[0])
			}
			// Requests decode together only as many as the GPU has slots:
			// more would take each other's slots in every step and have
			// their whole history fed again.
			running := parallel
			if slots, _, _ := l.engine.DeviceCache(); slots > 0 {
				running = min(parallel, slots)
			}
			logger := slog.New(slog.NewTextHandler(e.stderr, nil))
			cfg := server.Config{
				ModelName: name, APIKey: apiKey, Parallel: running, CtxSize: ctxSize,
				QueueSize: queue, BatchTokens: batchToks, Logger: logger, KVBudget: budget,
			}
			if l.trace != nil {
				cfg.Probe = l.trace.w
			}
			srv, err := server.New(l.model, l.engine, cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				_ = srv.Close(context.Background())
				return fmt.Errorf("listen: %w", err)
			}
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			fmt.Fprintf(e.stderr, "apr: serving %s on http://%s (%d parallel, context %d, %s; KV cache type %s; device %s)\n",
				name, ln.Addr(), running, srv.Scheduler().Context(), kvLine(srv.Scheduler(), l.engine, parallel), l.engine.Cache(), l.engine.Device())
			return srv.Serve(ctx, ln, 60*time.Second)
		},
	}
	mf.register(cmd)
	mf.registerTrace(cmd)
	mf.registerDevice(cmd)
	mf.registerCache(cmd)
	fl := cmd.Flags()
	fl.StringVar(&host, "host", "127.0.0.1", "address to listen on")
	fl.IntVar(&port, "port", 8080, "port to listen on")
	fl.StringVar(&apiKey, "api-key", "", "require Authorization: Bearer KEY on every endpoint but /health")
	fl.IntVarP(&parallel, "parallel", "p", 4, "requests decoded together, each with its own KV cache (llama.cpp: --parallel)")
	fl.IntVarP(&ctxSize, "ctx-size", "c", 4096, "context window in tokens per request; 0 for the model's full context")
	fl.IntVar(&queue, "queue", 64, "requests that may wait for a free slot before the server answers 503")
	fl.IntVarP(&batchToks, "batch-size", "b", 512, "prompt tokens fed per forward pass, across requests")
	fl.StringVar(&kvBudget, "kv-budget", "", "memory all KV caches may take together (512MiB, 2GiB; a plain number is MiB); requests wait in the queue until theirs fits; on the GPU it holds that many --ctx-size caches, at most --parallel (default: --parallel caches of --ctx-size)")
	fl.StringVar(&alias, "alias", "", "model name reported by /v1/models (default: the model's file or folder name)")
	return cmd
}

// kvLine is the start-up line's account of the KV caches: on the GPU its
// slots (gpuKVLine), on the CPU the caches' memory or the budget.
func kvLine(sc *server.Scheduler, eng *engine.Engine, parallel int) string {
	if slots, ctx, bytes := eng.DeviceCache(); slots > 0 {
		return gpuKVLine(slots, ctx, bytes, sc.KVBudget(), parallel)
	}
	if b := sc.KVBudget(); b > 0 {
		full := int64(sc.Context()) * sc.PositionBytes()
		return fmt.Sprintf("KV budget %.1f MiB: %d tokens, %d full-context sequences at once; a request waits until its cache fits",
			mib(b), b/sc.PositionBytes(), min(int64(parallel), b/full))
	}
	return fmt.Sprintf("KV cache %.1f MiB", mib(sc.CacheBytes()))
}

// gpuKVLine tells of the GPU's KV cache: slots caches of ctx tokens, bytes
// in all, out of budget (0: none), and whether fewer than the parallel
// requests asked for decode at once.
func gpuKVLine(slots, ctx int, bytes, budget int64, parallel int) string {
	kv := fmt.Sprintf("GPU KV cache %d slots of %d tokens, %.1f MiB", slots, ctx, mib(bytes))
	if budget > 0 {
		kv += fmt.Sprintf(" of a %.1f MiB budget", mib(budget))
	}
	if slots < parallel {
		kv += fmt.Sprintf("; --parallel %d cut to the %d slots, more requests wait in the queue", parallel, slots)
	}
	return kv
}
