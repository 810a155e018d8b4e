package server

import (
	"encoding/json"
	"net/http"
)

// sseWriter writes server-sent events, flushing each one.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &sseWriter{w: w, rc: http.NewResponseController(w)}
}

// send writes v as one "data:" event.
func (s *sseWriter) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"error": apiError{Message: err.Error(), Type: "server_error"}})
	}
	s.raw(b)
}

func (s *sseWriter) raw(b []byte) {
	buf := make([]byte, 0, len(b)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, b...)
	buf = append(buf, "\n\n"...)
	_, _ = s.w.Write(buf)
	_ = s.rc.Flush()
}

// done ends the stream as OpenAI does.
func (s *sseWriter) done() { s.raw([]byte("[DONE]")) }
