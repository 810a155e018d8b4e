package engine

import (
	"strings"
	"testing"
)

func TestStopper(t *testing.T) {
	cases := []struct {
		name   string
		stops  []string
		chunks []string
		want   string
		hit    bool
	}{
		{"no stops", nil, []string{"a", "b"}, "ab", false},
		{"stop inside a chunk", []string{"END"}, []string{"abcENDxyz"}, "abc", true},
		{"stop split over chunks", []string{"END"}, []string{"abE", "N", "Dzz"}, "ab", true},
		{"false start released", []string{"END"}, []string{"abE", "Nx", "y"}, "abENxy", false},
		{"earliest of two", []string{"yz", "b"}, []string{"abcyz"}, "a", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStopper(c.stops)
			var out strings.Builder
			hit := false
			for _, ch := range c.chunks {
				text, h := s.add(ch)
				out.WriteString(text)
				if h {
					hit = true
					break
				}
			}
			if !hit {
				out.WriteString(s.flush(""))
			}
			if out.String() != c.want || hit != c.hit {
				t.Fatalf("got %q hit=%v, want %q hit=%v", out.String(), hit, c.want, c.hit)
			}
		})
	}
}
