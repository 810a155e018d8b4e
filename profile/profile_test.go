package profile

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/internal/enginetest"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

func tinyEngine(t *testing.T, path string) (*engine.Engine, []int) {
	t.Helper()
	_, eng := enginetest.Open(t, path, nil)
	return eng, testref.HFOutputs(t)[0].TokenIDs
}

// attributedRun profiles opts on eng up to three times and returns the
// run whose bricks leave the least of the measured time unattributed, and
// that fraction: a machine busy with other work adds time between the
// bricks' timers to one run, while a brick missing its timer shows in
// every run.
func attributedRun(t *testing.T, eng *engine.Engine, ids []int, opts Options) (*Result, float64) {
	t.Helper()
	var best *Result
	bestFrac := math.Inf(1)
	for range 3 {
		r, err := Run(context.Background(), eng, ids, opts)
		if err != nil {
			t.Fatal(err)
		}
		if frac := math.Abs(r.Unattributed.Seconds()) / r.Measured.Seconds(); frac < bestFrac {
			best, bestFrac = r, frac
		}
		if bestFrac <= 0.10 {
			break
		}
	}
	return best, bestFrac
}

// TestBrickSumNearMeasuredTotal: on the tiny model the bricks' timers
// account for the measured wall time within 10% (in the best of up to
// three runs), every brick is seen, and the shares and remainder add up.
func TestBrickSumNearMeasuredTotal(t *testing.T) {
	for _, path := range []string{
		testref.ModelDir(t),
		testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q4_k_m.gguf"),
	} {
		t.Run(path, func(t *testing.T) {
			eng, ids := tinyEngine(t, path)
			r, frac := attributedRun(t, eng, ids, Options{Tokens: 24})
			var b bytes.Buffer
			_ = r.WriteTable(&b)
			t.Log("\n" + b.String())
			if len(r.Bricks) != len(Order) {
				t.Errorf("%d bricks reported, want %d", len(r.Bricks), len(Order))
			}
			if r.Tokens != 24 {
				t.Errorf("generated %d tokens, want 24", r.Tokens)
			}
			if frac > 0.10 {
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

// halfDimEngine binds random F16 weights with Qwen2.5-Coder-0.5B's layer
// dimensions (hidden 896, MLP 4864, 14 heads, 2 KV heads of 64) to an
// engine: two layers and a 32,000-token vocabulary keep it small for CI.
func halfDimEngine(t *testing.T) *engine.Engine {
	t.Helper()
	cfg := &model.Config{Arch: model.ArchQwen2, HiddenSize: 896, IntermediateSize: 4864, NumLayers: 2, NumHeads: 14,
		NumKVHeads: 2, HeadDim: 64, VocabSize: 32000, MaxPositions: 4096, RopeTheta: 1e6, RMSNormEps: 1e-6,
		AttentionBias: true, BOSTokenID: -1}
	rng := rand.New(rand.NewPCG(1, 2))
	ts := map[string]*tensor.Tensor{}
	add := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]byte, 2*n)
		for i := 0; i < n; i++ {
			v := float32(rng.NormFloat64() * 0.05)
			if len(shape) == 1 && strings.HasSuffix(name, "norm.weight") {
				v = 1
			}
			binary.LittleEndian.PutUint16(data[2*i:], tensor.F32ToF16(v))
		}
		ts[name] = &tensor.Tensor{Name: name, DType: tensor.F16, Shape: shape, Data: data}
	}
	h, q, kv, ffn := cfg.Dims()
	add(model.TokenEmbd, cfg.VocabSize, h)
	add(model.OutputNorm, h)
	for i := 0; i < cfg.NumLayers; i++ {
		add(model.Layer(i, model.AttnNorm), h)
		add(model.Layer(i, model.FFNNorm), h)
		add(model.Layer(i, model.AttnQ), q, h)
		add(model.Layer(i, model.AttnK), kv, h)
		add(model.Layer(i, model.AttnV), kv, h)
		add(model.Layer(i, model.AttnQB), q)
		add(model.Layer(i, model.AttnKB), kv)
		add(model.Layer(i, model.AttnVB), kv)
		add(model.Layer(i, model.AttnO), h, q)
		add(model.Layer(i, model.FFNGate), ffn, h)
		add(model.Layer(i, model.FFNUp), ffn, h)
		add(model.Layer(i, model.FFNDown), h, ffn)
	}
	eng, err := engine.New(cfg, ts, engine.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	return eng
}

// TestBrickSumNearMeasuredTotal05BDims: with the 0.5B model's layer
// dimensions the bricks also account for the measured total within 10%.
func TestBrickSumNearMeasuredTotal05BDims(t *testing.T) {
	eng := halfDimEngine(t)
	ids := make([]int, 32)
	for i := range ids {
		ids[i] = 100 + 37*i
	}
	r, frac := attributedRun(t, eng, ids, Options{Tokens: 8, Warmup: 2})
	var b bytes.Buffer
	_ = r.WriteTable(&b)
	t.Log("\n" + b.String())
	if frac > 0.10 {
		t.Errorf("bricks sum to %v of %v measured: %.1f%% unattributed", r.BrickSum, r.Measured, 100*frac)
	}
	if r.Share(engine.BrickMLPGateUp) <= r.Share(engine.BrickRope) {
		t.Errorf("mlp_gate_up (%.3f) should outweigh rope (%.3f) at these dimensions", r.Share(engine.BrickMLPGateUp), r.Share(engine.BrickRope))
	}
}
