package engine

// StopMatcher watches streamed text for stop strings, holding back any tail
// that could be the start of one, so that a stop string is never emitted,
// not even in part. It is the matcher Generate uses, for callers (the
// server's scheduler) that run their own decode loop.
type StopMatcher struct{ s *stopper }

// NewStopMatcher returns a matcher for stops (empty strings are ignored).
func NewStopMatcher(stops []string) *StopMatcher { return &StopMatcher{s: newStopper(stops)} }

// Add takes newly decoded text and returns what can be emitted now, and
// whether a stop string was found (the text before it is returned, the rest
// is dropped and later calls return nothing).
func (m *StopMatcher) Add(text string) (string, bool) { return m.s.add(text) }

// Flush returns the held-back text plus tail once generation ends for
// another reason than a stop string.
func (m *StopMatcher) Flush(tail string) string { return m.s.flush(tail) }
