package engine

import (
	"errors"
	"fmt"

	"github.com/apr-llm/apr/backend/cpu"
)

// ErrContextFull is returned when tokens would not fit the sequence's context.
var ErrContextFull = errors.New("context window is full")

// Sequence is one conversation's state: its KV cache and position.
type Sequence struct {
	e     *Engine
	ctx   int
	pos   int
	cache []*cpu.KVCache // per layer
}

// NewSequence allocates a KV cache for ctx positions (ctx < 1 or larger than
// the model's context means the model's context length).
func (e *Engine) NewSequence(ctx int) *Sequence {
	if ctx < 1 || (e.Config.MaxPositions > 0 && ctx > e.Config.MaxPositions) {
		ctx = e.Config.MaxPositions
	}
	s := &Sequence{e: e, ctx: ctx}
	kvDim := e.Config.NumKVHeads * e.Config.HeadDim
	for range e.layers {
		s.cache = append(s.cache, cpu.NewKVCache(ctx, kvDim, e.opts.KVCacheF16))
	}
	return s
}

// Pos is the number of tokens in the cache.
func (s *Sequence) Pos() int { return s.pos }

// CacheBytes is the KV cache's memory footprint.
func (s *Sequence) CacheBytes() int {
	n := 0
	for _, c := range s.cache {
		n += c.Bytes()
	}
	return n
}

// Context is the cache's capacity in tokens.
func (s *Sequence) Context() int { return s.ctx }

// Truncate drops cached positions from n on (to reuse a shared prefix).
func (s *Sequence) Truncate(n int) {
	if n >= 0 && n < s.pos {
		s.pos = n
	}
}

// Forward runs tokens through the model at the next positions, appending
// them to the cache. It returns the logits of the last token, or of every
// token (n x vocab) when all is true. The whole batch goes through each
// matrix product at once.
func (s *Sequence) Forward(tokens []int, all bool) ([]float32, error) {
	e, cfg := s.e, s.e.Config
	n := len(tokens)
	if n == 0 {
		return nil, errors.New("forward: no tokens")
	}
	if s.pos+n > s.ctx {
		return nil, fmt.Errorf("%w: %d cached + %d new tokens > context of %d", ErrContextFull, s.pos, n, s.ctx)
	}
	for _, t := range tokens {
		if t < 0 || t >= cfg.VocabSize {
			return nil, fmt.Errorf("forward: token id %d outside the vocabulary (%d)", t, cfg.VocabSize)
		}
	}
	h := cfg.HiddenSize
	x := make([]float32, n*h)
	for i, t := range tokens {
		e.embed.RowF32(x[i*h:(i+1)*h], t)
	}
	a := newActivations(cfg.HiddenSize, cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim, cfg.IntermediateSize, n)
	for li := range e.layers {
		e.layers[li].forward(e, s, li, x, a, n)
	}
	rows := x
	if !all {
		rows = x[(n-1)*h:]
		n = 1
	}
	normed := a.norm[:n*h]
	e.be.RMSNorm(normed, rows, e.norm, n, float32(cfg.RMSNormEps))
	logits := make([]float32, n*cfg.VocabSize)
	e.be.MatMul(logits, e.output, normed, n)
	s.pos += len(tokens)
	return logits, nil
}

// activations are the scratch buffers of one forward call.
type activations struct {
	norm, q, k, v, attn, proj, gate, up []float32
}

func newActivations(h, qDim, kvDim, ffn, n int) *activations {
	return &activations{
		norm: make([]float32, n*h),
		q:    make([]float32, n*qDim),
		k:    make([]float32, n*kvDim),
		v:    make([]float32, n*kvDim),
		attn: make([]float32, n*qDim),
		proj: make([]float32, n*h),
		gate: make([]float32, n*ffn),
		up:   make([]float32, n*ffn),
	}
}

// forward applies one decoder layer to the n hidden states x in place:
// x += attn(norm(x)); x += mlp(norm(x)).
func (l *decoderLayer) forward(e *Engine, s *Sequence, li int, x []float32, a *activations, n int) {
	eps := float32(e.Config.RMSNormEps)
	e.be.RMSNorm(a.norm, x, l.attnNorm, n, eps)
	l.attn.forward(e, s, li, a, n)
	cpu.Add(x, a.proj)

	e.be.RMSNorm(a.norm, x, l.mlpNorm, n, eps)
	l.mlp.forward(e, a, n)
	cpu.Add(x, a.proj)
}

// forward: q, k, v projections with bias, RoPE, cache append, causal GQA,
// output projection into a.proj.
func (at *attention) forward(e *Engine, s *Sequence, li int, a *activations, n int) {
	be := e.be
	be.MatMul(a.q, at.q, a.norm, n)
	be.MatMul(a.k, at.k, a.norm, n)
	be.MatMul(a.v, at.v, a.norm, n)
	if at.qb != nil {
		cpu.AddBias(a.q, at.qb, n)
		cpu.AddBias(a.k, at.kb, n)
		cpu.AddBias(a.v, at.vb, n)
	}
	qDim, kvDim := at.heads*at.headDim, at.kvHead*at.headDim
	cache := s.cache[li]
	for t := 0; t < n; t++ {
		pos := s.pos + t
		e.rope.Apply(a.q[t*qDim:(t+1)*qDim], at.heads, pos)
		e.rope.Apply(a.k[t*kvDim:(t+1)*kvDim], at.kvHead, pos)
		cache.Store(pos, a.k[t*kvDim:(t+1)*kvDim], a.v[t*kvDim:(t+1)*kvDim])
	}
	be.Attention(a.attn, a.q, cache, n, s.pos, at.heads, at.kvHead, at.headDim)
	be.MatMul(a.proj, at.o, a.attn, n)
}

// forward: down(silu(gate(x)) * up(x)) into a.proj.
func (m *mlp) forward(e *Engine, a *activations, n int) {
	e.be.MatMul(a.gate, m.gate, a.norm, n)
	e.be.MatMul(a.up, m.up, a.norm, n)
	cpu.SiLUMul(a.gate, a.up)
	e.be.MatMul(a.proj, m.down, a.gate, n)
}
