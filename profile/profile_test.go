package profile

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
)

func tinyEngine(t *testing.T, path string) (*engine.Engine, []int) {
	t.Helper()
	m, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	eng, err := engine.New(m.Config, m.Tensors, engine.OptionsFor(m, 2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	return eng, testref.HFOutputs(t)[0].TokenIDs
}

// TestBrickSumNearMeasuredTotal: on the tiny model the bricks' timers
// account for the measured wall time within 10%, every brick is seen, and
// the shares and remainder add up.
func TestBrickSumNearMeasuredTotal(t *testing.T) {
	for _, path := range []string{
		testref.ModelDir(t),
		testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q4_k_m.gguf"),
	} {
		t.Run(path, func(t *testing.T) {
			eng, ids := tinyEngine(t, path)
			r, err := Run(context.Background(), eng, ids, Options{Tokens: 24})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_ = r.WriteTable(&b)
			t.Log("\n" + b.String())
			if len(r.Bricks) != len(Order) {
				t.Errorf("%d bricks reported, want %d", len(r.Bricks), len(Order))
			}
			if r.Tokens != 24 {
				t.Errorf("generated %d tokens, want 24", r.Tokens)
			}
			if frac := math.Abs(r.Unattributed.Seconds()) / r.Measured.Seconds(); frac > 0.10 {
				t.Errorf("bricks sum to %v of %v measured: %.1f%% unattributed, want within 10%%", r.BrickSum, r.Measured, 100*frac)
			}
			sum := 0.0
			for _, x := range r.Bricks {
				sum += x.Share
			}
			if got := sum + r.Unattributed.Seconds()/r.Measured.Seconds(); math.Abs(got-1) > 1e-6 {
				t.Errorf("shares and remainder add up to %v", got)
			}
			if r.DecodeRate <= 0 || r.PrefillRate <= 0 {
				t.Errorf("rates: prefill %v, decode %v tok/s", r.PrefillRate, r.DecodeRate)
			}
		})
	}
}

// TestInjectedDelayMovesShare: a brick slowed inside its timing window
// (as a slower kernel would be) takes a correspondingly larger share, and
// the bricks still account for the measured total.
func TestInjectedDelayMovesShare(t *testing.T) {
	eng, ids := tinyEngine(t, testref.ModelDir(t))
	for _, tc := range []struct {
		brick engine.Brick
		delay time.Duration
	}{
		{engine.BrickRope, 300 * time.Microsecond},
		{engine.BrickMLPDown, time.Millisecond},
	} {
		t.Run(string(tc.brick), func(t *testing.T) {
			base, err := Run(context.Background(), eng, ids, Options{Tokens: 16})
			if err != nil {
				t.Fatal(err)
			}
			slow, err := Run(context.Background(), eng, ids, Options{Tokens: 16, Delay: map[engine.Brick]time.Duration{tc.brick: tc.delay}})
			if err != nil {
				t.Fatal(err)
			}
			calls, total := 0, time.Duration(0)
			for _, b := range slow.Bricks {
				if b.Name == tc.brick {
					calls, total = b.Calls, b.Total
				}
			}
			added := time.Duration(calls) * tc.delay
			// The share the delay alone should add, at the slowed run's total.
			want := added.Seconds() / slow.Measured.Seconds()
			before, after := base.Share(tc.brick), slow.Share(tc.brick)
			t.Logf("%s: share %.1f%% -> %.1f%% (%d calls x %v added, expected about +%.1f points)", tc.brick, 100*before, 100*after, calls, tc.delay, 100*want)
			if total < added {
				t.Errorf("%s measured %v in %d calls, less than the %v injected", tc.brick, total, calls, added)
			}
			if after-before < 0.5*want {
				t.Errorf("%s's share moved from %.3f to %.3f, want about +%.3f", tc.brick, before, after, want)
			}
			if frac := math.Abs(slow.Unattributed.Seconds()) / slow.Measured.Seconds(); frac > 0.10 {
				t.Errorf("slowed run: %.1f%% unattributed", 100*frac)
			}
		})
	}
}
