package engine

import "time"

// Brick names a timed piece of the forward pass: what `apr profile` reports
// and `--trace` records.
type Brick string

// The bricks, in the order a token meets them. Sampling is timed by the
// caller (Generate).
const (
	BrickEmbed     Brick = "token_embed"
	BrickNorm      Brick = "rms_norm"
	BrickQKV       Brick = "attention_qkv"
	BrickRope      Brick = "rope"
	BrickScore     Brick = "attention_score"
	BrickAttnOut   Brick = "attention_out"
	BrickResidual  Brick = "residual"
	BrickMLPGateUp Brick = "mlp_gate_up"
	BrickMLPDown   Brick = "mlp_down"
	BrickLMHead    Brick = "lm_head"
	BrickSampling  Brick = "sampling"
)

// BrickEvent is one brick's run inside a forward pass.
type BrickEvent struct {
	Brick   Brick
	Layer   int // -1 outside the decoder layers
	Elapsed time.Duration
	Rows    int // tokens in the pass
	// Outputs are the brick's result rows (Rows x width each), valid only
	// during the call: for attention_qkv the q, k and v projections
	// (biases added), for rope q and k after rotation, for attention_score
	// the attention-weighted values, otherwise one output.
	Outputs [][]float32
	// Seqs are the sequences the rows belong to, parallel to the rows
	// (Rows of them; for the final rms_norm and lm_head the sequences of
	// the rows whose logits were wanted), valid only during the call; nil
	// for sampling, which Generate times for its one sequence.
	Seqs []*Sequence
}

// Probe observes forward passes: timings from timers around the real kernel
// calls and the activations they produced. It is called synchronously on
// the forward pass's goroutine.
type Probe interface {
	Brick(ev BrickEvent)
}

// BrickDelayer is an optional method of a Probe, for testing profilers: a
// probe that has it gets BrickDelay(b) called inside brick b's timing
// window, before the clock is read, so the time it takes counts as the
// brick's, as a slower kernel's would.
type BrickDelayer interface {
	BrickDelay(b Brick)
}

// SetProbe installs p (nil removes it). Without a probe the forward pass
// reads no clock.
func (e *Engine) SetProbe(p Probe) {
	e.mu.Lock()
	e.probe = p
	e.mu.Unlock()
}

// mark starts timing a brick when a probe listens.
func (e *Engine) mark() time.Time {
	if e.probe == nil {
		return time.Time{}
	}
	return time.Now()
}

// report hands a finished brick to the probe.
func (e *Engine) report(b Brick, layer int, start time.Time, rows int, outs ...[]float32) {
	if e.probe == nil {
		return
	}
	if d, ok := e.probe.(BrickDelayer); ok {
		d.BrickDelay(b)
	}
	e.emit(b, layer, time.Since(start), rows, outs...)
}

// emit hands a brick that took elapsed to the probe.
func (e *Engine) emit(b Brick, layer int, elapsed time.Duration, rows int, outs ...[]float32) {
	// Copying outs keeps the variadic slice on the caller's stack: without
	// a probe the forward pass allocates nothing.
	ev := BrickEvent{Brick: b, Layer: layer, Elapsed: elapsed, Rows: rows, Outputs: append([][]float32(nil), outs...)}
	if b != BrickSampling {
		// Only forward (under e.mu) sets owners; sampling runs outside it.
		ev.Seqs = e.scratch.owners
	}
	e.probe.Brick(ev)
}
