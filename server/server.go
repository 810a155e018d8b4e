// Package server serves a model over HTTP: the OpenAI API (chat completions
// and completions, streamed as server-sent events), apr's native endpoints
// (/tokenize, /detokenize, /generate, /batch/generate), /health and
// Prometheus /metrics. Requests run through a Scheduler that batches every
// active sequence into one forward pass per step (continuous batching).
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apr-llm/apr/constrain"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/model"
)

// Config configures a Server.
type Config struct {
	ModelName   string // the id /v1/models reports; the model path's base name by default
	APIKey      string // when set, every endpoint but /health needs "Authorization: Bearer APIKey"
	Parallel    int    // sequences decoded together (default 4)
	CtxSize     int    // context per sequence (default 4096; 0 or larger than the model's: the model's)
	QueueSize   int    // requests waiting beyond Parallel before 503 (default 64)
	BatchTokens int    // prompt tokens fed per step (default 512)
	MaxBody     int64  // request body cap in bytes (default 8 MiB)
	Logger      *slog.Logger
	// Probe is the probe already installed on the engine (apr serve
	// --trace), kept receiving every brick while requests with
	// X-Trace-Level are traced.
	Probe engine.Probe
	// KVBudget caps the KV caches of all sequences together, in bytes
	// (0: none; see SchedulerOptions.KVBudget). Requests wait in the queue
	// while theirs does not fit.
	KVBudget int64
}

// minBudgetPositions is the fewest token positions a KV budget must hold.
const minBudgetPositions = 16

// Server is the HTTP front end of one model.
type Server struct {
	cfg     Config
	model   *model.Model
	sched   *Scheduler
	metrics *metrics
	mux     *http.ServeMux
	log     *slog.Logger
	created int64

	vocabOnce  sync.Once
	vocabBytes constrain.Vocab
}

// New starts the scheduler of a server for m running on eng. Close stops it.
func New(m *model.Model, eng *engine.Engine, cfg Config) (*Server, error) {
	if m == nil || eng == nil || m.Tokenizer == nil {
		return nil, errors.New("server: a model with a tokenizer and an engine are required")
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.CtxSize == 0 {
		cfg.CtxSize = 4096
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 64
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 8 << 20
	}
	if cfg.ModelName == "" {
		cfg.ModelName = m.Path
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KVBudget < 0 {
		return nil, fmt.Errorf("server: negative KV budget %d", cfg.KVBudget)
	}
	if cfg.KVBudget > 0 {
		per := int64(eng.NewSequence(1).CacheBytes())
		if cfg.KVBudget < minBudgetPositions*per {
			return nil, fmt.Errorf("server: a KV budget of %d bytes holds %d token positions (%d bytes each); it must hold at least %d",
				cfg.KVBudget, cfg.KVBudget/per, per, minBudgetPositions)
		}
	}
	met := newMetrics()
	s := &Server{cfg: cfg, model: m, metrics: met, log: cfg.Logger, created: time.Now().Unix()}
	s.sched = NewScheduler(eng, m.Tokenizer, m.EOS(), SchedulerOptions{
		Parallel: cfg.Parallel, CtxSize: cfg.CtxSize, QueueSize: cfg.QueueSize, BatchTokens: cfg.BatchTokens,
		Probe: cfg.Probe, KVBudget: cfg.KVBudget,
	}, met)
	s.routes()
	return s, nil
}

// Scheduler is the server's batch scheduler.
func (s *Server) Scheduler() *Scheduler { return s.sched }

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Close stops the scheduler after the requests it holds finish, or when
// ctx ends.
func (s *Server) Close(ctx context.Context) error { return s.sched.Close(ctx) }

// Serve serves on l until ctx is cancelled, then shuts down gracefully:
// it stops accepting connections, lets in-flight requests finish (up to
// grace), and stops the scheduler.
func (s *Server) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		_ = s.Close(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	if cerr := s.Close(sctx); err == nil {
		err = cerr
	}
	<-errc
	return err
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.handle("GET /health", s.health, false)
	s.handle("GET /v1/models", s.models, true)
	s.handle("POST /v1/chat/completions", s.chatCompletions, true)
	s.handle("POST /v1/completions", s.completions, true)
	s.handle("POST /tokenize", s.tokenize, true)
	s.handle("POST /detokenize", s.detokenize, true)
	s.handle("POST /generate", s.generate, true)
	s.handle("POST /batch/generate", s.batchGenerate, true)
	metricsHandler := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	s.handle("GET /metrics", func(w http.ResponseWriter, r *http.Request) { metricsHandler.ServeHTTP(w, r) }, true)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
}

// handle registers h with authentication, a body cap and request counting.
func (s *Server) handle(pattern string, h http.HandlerFunc, auth bool) {
	endpoint := pattern[strings.Index(pattern, " ")+1:]
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() { s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(rec.code)).Inc() }()
		if auth && s.cfg.APIKey != "" && !s.authorized(r) {
			rec.Header().Set("WWW-Authenticate", "Bearer")
			writeError(rec, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "missing or wrong API key (send Authorization: Bearer KEY)")
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBody)
		h(rec, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.cfg.APIKey)) == 1
}

// statusRecorder remembers the status code for the metrics and passes
// flushes through for streaming.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "ok", "active": s.sched.Active(), "slots": s.cfg.Parallel, "queue": len(s.sched.queue),
	})
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data": []map[string]any{{
			"id": s.cfg.ModelName, "object": "model", "created": s.created, "owned_by": "apr",
			"context_length": s.sched.Context(),
		}},
	})
}

// apiError is the OpenAI error shape.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	e := apiError{Message: msg, Type: typ}
	if code != "" {
		e.Code = &code
	}
	writeJSON(w, status, map[string]apiError{"error": e})
}

// badRequest writes a 400 naming the offending parameter.
func badRequest(w http.ResponseWriter, param, msg string) {
	e := apiError{Message: msg, Type: "invalid_request_error"}
	if param != "" {
		e.Param = &param
	}
	writeJSON(w, http.StatusBadRequest, map[string]apiError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody reads a JSON body into v, writing the 400 or 413 itself and
// reporting false on failure.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
				fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
			return false
		}
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			badRequest(w, ute.Field, fmt.Sprintf("invalid type for %q: got JSON %s, want %s", ute.Field, ute.Value, ute.Type))
			return false
		}
		badRequest(w, "", "invalid JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		badRequest(w, "", "invalid JSON body: data after the object")
		return false
	}
	return true
}

// submitError writes the status for a scheduler's refusal.
func submitError(w http.ResponseWriter, err error) {
	var ce *contextError
	switch {
	case errors.As(err, &ce):
		badRequest(w, "messages", err.Error())
	case errors.Is(err, ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "server_error", "server_busy", err.Error())
	case errors.Is(err, ErrShuttingDown):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "server_error", "shutting_down", err.Error())
	default:
		badRequest(w, "", err.Error())
	}
}
