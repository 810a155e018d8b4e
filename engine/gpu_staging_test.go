package engine

import (
	"errors"
	"testing"
)

// lender is a device that lends host floats (cuda.Model.HostFloats), or
// fails to.
type lender struct {
	device
	buf []float32
	err error
}

func (l *lender) HostFloats(n int) ([]float32, error) {
	if l.err != nil {
		return nil, l.err
	}
	if cap(l.buf) < n {
		l.buf = make([]float32, n)
	}
	return l.buf[:n], nil
}

// TestStaging checks that a batch's logits go to the device's lent memory
// when it lends it and to the engine's own buffer otherwise.
func TestStaging(t *testing.T) {
	for _, c := range []struct {
		name string
		d    device
		lent bool
	}{
		{"lends", &lender{}, true},
		{"fails to lend", &lender{err: errors.New("no page-locked memory")}, false},
		{"does not lend", constDevice{vocab: 8}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &onDevice{d: c.d}
			for _, n := range []int{10, 4, 30} {
				v := g.staging(n)
				if len(v) != n {
					t.Fatalf("staging(%d) has %d floats", n, len(v))
				}
				l, ok := c.d.(*lender)
				if lent := ok && len(l.buf) > 0 && &l.buf[0] == &v[0]; lent != c.lent {
					t.Fatalf("staging(%d) lent by the device: %v, want %v", n, lent, c.lent)
				}
			}
		})
	}
}
