package server

import (
	"fmt"
	"testing"

	"github.com/apr-llm/apr/sample"
)

// TestPlanMarksLastDraw: a slot's device draw says Last (the device sends
// no greedy step ahead) exactly when the token it draws reaches the
// request's max_tokens, and a pass that does not end the prompt plans no
// draw.
func TestPlanMarksLastDraw(t *testing.T) {
	cases := []struct {
		max, generated, next, pending, feed int
		draw, last                          bool
	}{
		{max: 1, next: -1, pending: 5, feed: 5, draw: true, last: true},
		{max: 4, next: -1, pending: 5, feed: 5, draw: true},
		{max: 4, next: -1, pending: 5, feed: 3},
		{max: 4, generated: 2, next: 7, feed: 1, draw: true},
		{max: 4, generated: 3, next: 7, feed: 1, draw: true, last: true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("max-%d-generated-%d-feed-%d-of-%d", c.max, c.generated, c.feed, c.pending), func(t *testing.T) {
			sl := &slot{job: &job{maxTokens: c.max, sampler: sample.New(sample.Params{})},
				next: c.next, pending: make([]int, c.pending), generated: make([]int, c.generated)}
			d := sl.plan(c.feed)
			if (d != nil) != c.draw {
				t.Fatalf("plan gave a draw %v, want %v", d != nil, c.draw)
			}
			if d != nil && d.Last != c.last {
				t.Errorf("Last %v, want %v", d.Last, c.last)
			}
		})
	}
}
