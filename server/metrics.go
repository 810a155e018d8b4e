package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series /metrics serves, in a registry of the
// server's own (two servers in one process do not collide).
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	promptTokens prometheus.Counter
	cachedTokens prometheus.Counter
	genTokens    prometheus.Counter
	queueDepth   prometheus.Gauge
	active       prometheus.Gauge
	queueWait    prometheus.Histogram
	ttft         prometheus.Histogram
	tokensPerSec prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apr_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		promptTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apr_prompt_tokens_total", Help: "Prompt tokens of finished requests.",
		}),
		cachedTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apr_prompt_tokens_cached_total", Help: "Prompt tokens taken from a cached prefix instead of recomputed.",
		}),
		genTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apr_generated_tokens_total", Help: "Tokens generated for finished requests.",
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apr_queue_depth", Help: "Requests waiting for a free sequence slot.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apr_active_sequences", Help: "Sequences in the running batch.",
		}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "apr_queue_wait_seconds", Help: "Time from arrival to joining the running batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "apr_time_to_first_token_seconds", Help: "Time from arrival to the first generated token.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 10),
		}),
		tokensPerSec: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "apr_decode_tokens_per_second", Help: "Per-request decode speed after the first token.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
	}
	m.reg.MustRegister(m.requests, m.promptTokens, m.cachedTokens, m.genTokens, m.queueDepth, m.active,
		m.queueWait, m.ttft, m.tokensPerSec)
	return m
}
