package engine

import (
	"testing"
	"time"

	"github.com/apr-llm/apr/internal/testref"
)

type recorder struct {
	events []BrickEvent
}

func (r *recorder) Brick(ev BrickEvent) {
	ev.Outputs = nil
	r.events = append(r.events, ev)
}

// TestProbeSeesEveryBrick: every layer reports each brick once per pass,
// with outputs of the right size, and the bricks' time adds up to at most
// the pass's wall time.
func TestProbeSeesEveryBrick(t *testing.T) {
	e := tinyEngine(t)
	ids := testref.HFOutputs(t)[0].TokenIDs
	sizes := map[Brick]int{}
	var rec recorder
	check := probeFunc(func(ev BrickEvent) {
		rec.Brick(ev)
		for _, o := range ev.Outputs {
			if len(o) == 0 || len(o)%ev.Rows != 0 {
				t.Errorf("%s layer %d: output of %d values for %d rows", ev.Brick, ev.Layer, len(o), ev.Rows)
			}
		}
		sizes[ev.Brick] = len(ev.Outputs)
	})
	e.SetProbe(check)
	defer e.SetProbe(nil)
	start := time.Now()
	if _, err := e.NewSequence(0).Forward(ids, false); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	perLayer := map[Brick]int{}
	var sum time.Duration
	for _, ev := range rec.events {
		sum += ev.Elapsed
		if ev.Layer >= 0 {
			perLayer[ev.Brick]++
		}
	}
	L := e.Config.NumLayers
	want := map[Brick]int{BrickNorm: 2 * L, BrickQKV: L, BrickRope: L, BrickScore: L, BrickAttnOut: L, BrickResidual: 2 * L, BrickMLPGateUp: L, BrickMLPDown: L}
	for b, n := range want {
		if perLayer[b] != n {
			t.Errorf("%s reported %d times in the layers, want %d", b, perLayer[b], n)
		}
	}
	if sizes[BrickQKV] != 3 || sizes[BrickRope] != 2 {
		t.Errorf("qkv reported %d outputs, rope %d; want 3 and 2", sizes[BrickQKV], sizes[BrickRope])
	}
	if sum <= 0 || sum > wall {
		t.Errorf("bricks sum to %v, the pass took %v", sum, wall)
	}
}

type probeFunc func(BrickEvent)

func (f probeFunc) Brick(ev BrickEvent) { f(ev) }
