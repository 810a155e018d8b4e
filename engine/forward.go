package engine

import (
	"errors"
	"fmt"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/model"
)

// ErrContextFull is returned when tokens would not fit the sequence's context.
var ErrContextFull = errors.New("context window is full")

// Sequence is one conversation's state: its KV cache and position.
type Sequence struct {
	e     *Engine
	ctx   int
	pos   int
	cache []*cpu.KVCache // per layer (CPU engines)
	dev   *deviceSeq     // its device KV cache (GPU engines)
}

// NewSequence allocates a KV cache for ctx positions (ctx < 1 or larger than
// the model's context means the model's context length).
func (e *Engine) NewSequence(ctx int) *Sequence {
	if ctx < 1 || (e.Config.MaxPositions > 0 && ctx > e.Config.MaxPositions) {
		ctx = e.Config.MaxPositions
	}
	s := &Sequence{e: e, ctx: ctx}
	layers := len(e.layers)
	if e.dev != nil {
		e.dev.attach(s)
		layers = e.dev.first // the layers the CPU runs before the GPU's
	}
	kvDim := e.Config.NumKVHeads * e.Config.HeadDim
	for range layers {
		s.cache = append(s.cache, cpu.NewKVCache(s.ctx, kvDim, e.opts.KVCacheF16))
	}
	return s
}

// Pos is the number of tokens in the cache.
func (s *Sequence) Pos() int { return s.pos }

// CacheBytes is the KV cache's memory footprint.
func (s *Sequence) CacheBytes() int {
	n := 0
	if s.dev != nil {
		n = cacheBytes(s.e.Config, s.e.opts, s.ctx, s.e.Config.NumLayers-s.e.dev.first)
	}
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
		if s.dev != nil {
			s.dev.hist = s.dev.hist[:n]
		}
	}
}

// Forward runs tokens through the model at the sequence's next positions,
// appending them to its cache. It returns the logits of the last token, or
// of every token (n x vocab) when all is true, in a new slice. The whole
// prompt goes through each matrix product at once.
func (s *Sequence) Forward(tokens []int, all bool) ([]float32, error) {
	return s.ForwardInto(nil, tokens, all)
}

// ForwardInto is Forward writing the logits into dst when its capacity
// suffices (vocab values, or n x vocab when all is true), so that a decode
// loop that passes the previous step's logits back allocates nothing. It
// returns the logits slice (dst resliced, or a new slice when dst is too
// small).
func (s *Sequence) ForwardInto(dst []float32, tokens []int, all bool) ([]float32, error) {
	return s.forwardEntry(BatchEntry{Seq: s, Tokens: tokens, AllLogits: all, Logits: dst})
}

// forwardEntry runs b, an entry of s, alone and returns its logits.
func (s *Sequence) forwardEntry(b BatchEntry) ([]float32, error) {
	entries := [1]BatchEntry{b}
	var out [1][]float32
	if err := s.e.forward(entries[:], out[:]); err != nil {
		return nil, err
	}
	return out[0], nil
}

// BatchEntry is one sequence's share of a batched forward pass.
type BatchEntry struct {
	Seq       *Sequence
	Tokens    []int // appended at Seq's next positions
	AllLogits bool  // logits for every token, not only the last
	// Logits, when its capacity holds the entry's logits, receives them
	// (ForwardBatch returns it resliced); otherwise a new slice is made.
	Logits []float32
	// Draw, when set, lets a GPU pass draw the entry's next token itself
	// (see Draw); its Drawn says whether it did.
	Draw *Draw
}

// ForwardBatch runs several sequences' tokens through the model in one pass:
// every matrix product sees all rows of all entries at once (continuous
// batching mixes one sequence's prompt with others' single decode tokens),
// while attention reads each row's own sequence cache. It returns each
// entry's logits (last token, or all tokens when AllLogits), in the entry's
// Logits buffer when it is large enough, else in a new slice. An entry's
// sequence must not appear twice. Calls on one Engine are serialised.
func (e *Engine) ForwardBatch(entries []BatchEntry) ([][]float32, error) {
	out := make([][]float32, len(entries))
	if err := e.forward(entries, out); err != nil {
		return nil, err
	}
	return out, nil
}

// check validates a batch and returns its row count and the number of
// rows whose logits are wanted.
func (e *Engine) check(entries []BatchEntry) (rows, outRows int, err error) {
	vocab := e.Config.VocabSize
	for i, b := range entries {
		s, n := b.Seq, len(b.Tokens)
		switch {
		case s == nil || s.e != e:
			return 0, 0, errors.New("forward: sequence of another engine")
		case n == 0:
			return 0, 0, errors.New("forward: no tokens")
		case s.pos+n > s.ctx:
			return 0, 0, fmt.Errorf("%w: %d cached + %d new tokens > context of %d", ErrContextFull, s.pos, n, s.ctx)
		}
		for _, o := range entries[:i] {
			if o.Seq == s {
				return 0, 0, errors.New("forward: a sequence appears twice in one batch")
			}
		}
		for _, t := range b.Tokens {
			if t < 0 || t >= vocab {
				return 0, 0, fmt.Errorf("forward: token id %d outside the vocabulary (%d)", t, vocab)
			}
		}
		rows += n
		if b.AllLogits {
			outRows += n
		} else {
			outRows++
		}
	}
	return rows, outRows, nil
}

// forward runs a batch and stores entry i's logits in out[i]. Once the
// scratch buffers have grown, it allocates only logits that do not fit
// their entry's Logits buffer.
func (e *Engine) forward(entries []BatchEntry, out [][]float32) error {
	cfg := e.Config
	rows, outRows, err := e.check(entries)
	if err != nil {
		return err
	}
	for _, b := range entries {
		if b.Draw != nil {
			b.Draw.Drawn = false
		}
	}
	if e.dev != nil {
		return e.forwardDevice(entries, out)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.scratch.get(cfg, rows, outRows)
	// The probe attributes the rows of every brick to their sequences:
	// a.seqs until the final norm, then the owners of the selected rows.
	a.owners = a.seqs
	defer func() { a.owners = nil }()
	// Each row's sequence and position, for RoPE, the cache and attention.
	r := 0
	for _, b := range entries {
		for i, t := range b.Tokens {
			a.seqs[r] = b.Seq
			a.pos[r] = b.Seq.pos + i
			a.tokens[r] = t
			r++
		}
	}
	e.decoderStack(a, rows, len(e.layers))
	h := cfg.HiddenSize
	x := a.x
	// Gather the rows whose logits are wanted, then norm and LM head.
	sel := a.sel
	r, o := 0, 0
	for _, b := range entries {
		n := len(b.Tokens)
		from := r + n - 1
		if b.AllLogits {
			from = r
		}
		k := r + n - from
		copy(sel[o*h:(o+k)*h], x[from*h:(r+n)*h])
		for i := o; i < o+k; i++ {
			a.selSeqs[i] = b.Seq
		}
		r += n
		o += k
	}
	a.owners = a.selSeqs
	t0 := e.mark()
	e.rmsNorm(sel, sel, e.norm, outRows, float32(cfg.RMSNormEps))
	e.report(BrickNorm, -1, t0, outRows, sel)
	t0 = e.mark()
	vocab := cfg.VocabSize
	sizeLogits(entries, out, vocab)
	if len(entries) == 1 {
		// One sequence: the LM head writes straight into its logits.
		e.be.MatMul(out[0], e.output, sel, outRows)
		e.report(BrickLMHead, -1, t0, outRows, out[0])
	} else {
		a.logits = grow(a.logits, outRows*vocab)
		e.be.MatMul(a.logits, e.output, sel, outRows)
		e.report(BrickLMHead, -1, t0, outRows, a.logits)
		o = 0
		for i := range entries {
			o += copy(out[i], a.logits[o:])
		}
	}
	for _, b := range entries {
		b.Seq.pos += len(b.Tokens)
	}
	return nil
}

// decoderStack embeds the n rows of a (their tokens, positions and
// sequences set) into a.x and runs decoder layers 0..layers-1 on them.
func (e *Engine) decoderStack(a *activations, n, layers int) {
	h := e.Config.HiddenSize
	x := a.x
	t0 := e.mark()
	for i, t := range a.tokens[:n] {
		e.embed.RowF32(x[i*h:(i+1)*h], t)
	}
	e.report(BrickEmbed, -1, t0, n, x[:n*h])
	// RoPE's angles, once a row for every layer and head.
	dim := e.Config.HeadDim
	a.rope = grow(a.rope, n*dim)
	for t, pos := range a.pos[:n] {
		e.rope.Angles(a.rope[t*dim:(t+1)*dim], pos)
	}
	for li := range e.layers[:layers] {
		e.layers[li].forward(e, li, x, a, n)
	}
}

// activations are the scratch buffers of a forward pass, kept by the engine
// and grown as needed so that decoding allocates nothing.
type activations struct {
	x, norm, q, k, v, attn, proj, gate, up, sel []float32
	logits                                      []float32 // LM head output of a batch of several entries
	seqs                                        []*Sequence
	selSeqs                                     []*Sequence // the sequence of each row of sel
	owners                                      []*Sequence // the rows' sequences the probe is told (seqs or selSeqs)
	rope                                        []float32   // each row's RoPE angles (Rope.Angles)
	pos, tokens                                 []int
	caches                                      []*cpu.KVCache
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// get sizes the buffers for n rows (outRows of them wanting logits).
func (a *activations) get(cfg *model.Config, n, outRows int) *activations {
	h, qDim, kvDim, ffn := cfg.Dims()
	a.x = grow(a.x, n*h)
	a.norm = grow(a.norm, n*h)
	a.q = grow(a.q, n*qDim)
	a.k = grow(a.k, n*kvDim)
	a.v = grow(a.v, n*kvDim)
	a.attn = grow(a.attn, n*qDim)
	a.proj = grow(a.proj, n*h)
	a.gate = grow(a.gate, n*ffn)
	a.up = grow(a.up, n*ffn)
	a.sel = grow(a.sel, outRows*h)
	a.seqs = grow(a.seqs, n)
	a.selSeqs = grow(a.selSeqs, outRows)
	a.pos = grow(a.pos, n)
	a.tokens = grow(a.tokens, n)
	a.caches = grow(a.caches, n)
	return a
}

// rmsNorm normalises n rows with the numerics of the model's reference.
func (e *Engine) rmsNorm(dst, x, weight []float32, n int, eps float32) {
	if e.opts.GGMLOps {
		e.be.RMSNormGGML(dst, x, weight, n, eps)
	} else {
		e.be.RMSNorm(dst, x, weight, n, eps)
	}
}

// forward applies one decoder layer to the n hidden states x in place:
// x += attn(norm(x)); x += mlp(norm(x)).
func (l *decoderLayer) forward(e *Engine, li int, x []float32, a *activations, n int) {
	eps := float32(e.Config.RMSNormEps)
	t0 := e.mark()
	e.rmsNorm(a.norm, x, l.attnNorm, n, eps)
	e.report(BrickNorm, li, t0, n, a.norm)
	l.attn.forward(e, li, a, n)
	t0 = e.mark()
	cpu.Add(x, a.proj)
	e.report(BrickResidual, li, t0, n, x)

	t0 = e.mark()
	e.rmsNorm(a.norm, x, l.mlpNorm, n, eps)
	e.report(BrickNorm, li, t0, n, a.norm)
	l.mlp.forward(e, li, a, n)
	t0 = e.mark()
	cpu.Add(x, a.proj)
	e.report(BrickResidual, li, t0, n, x)
}

// forward: q, k, v projections with bias, RoPE, cache append, causal GQA,
// output projection into a.proj.
func (at *attention) forward(e *Engine, li int, a *activations, n int) {
	be := e.be
	t0 := e.mark()
	be.MatMul(a.q, at.q, a.norm, n)
	be.MatMul(a.k, at.k, a.norm, n)
	be.MatMul(a.v, at.v, a.norm, n)
	if at.qb != nil {
		cpu.AddBias(a.q, at.qb, n)
		cpu.AddBias(a.k, at.kb, n)
		cpu.AddBias(a.v, at.vb, n)
	}
	e.report(BrickQKV, li, t0, n, a.q, a.k, a.v)
	qDim, kvDim := at.heads*at.headDim, at.kvHead*at.headDim
	t0 = e.mark()
	for t := 0; t < n; t++ {
		pos := a.pos[t]
		cs := a.rope[t*at.headDim : (t+1)*at.headDim]
		e.rope.Rotate(a.q[t*qDim:(t+1)*qDim], at.heads, cs)
		e.rope.Rotate(a.k[t*kvDim:(t+1)*kvDim], at.kvHead, cs)
		a.caches[t] = a.seqs[t].cache[li]
		a.caches[t].Store(pos, a.k[t*kvDim:(t+1)*kvDim], a.v[t*kvDim:(t+1)*kvDim])
	}
	e.report(BrickRope, li, t0, n, a.q, a.k)
	t0 = e.mark()
	if e.opts.FlashAttention && e.opts.KVCacheF16 {
		be.FlashAttentionGGML(a.attn, a.q, a.caches, a.pos, n, at.heads, at.kvHead, at.headDim)
	} else {
		be.Attention(a.attn, a.q, a.caches, a.pos, n, at.heads, at.kvHead, at.headDim)
	}
	e.report(BrickScore, li, t0, n, a.attn)
	t0 = e.mark()
	be.MatMul(a.proj, at.o, a.attn, n)
	e.report(BrickAttnOut, li, t0, n, a.proj)
}

// forward: down(silu(gate(x)) * up(x)) into a.proj.
func (m *mlp) forward(e *Engine, li int, a *activations, n int) {
	t0 := e.mark()
	e.be.MatMul(a.gate, m.gate, a.norm, n)
	e.be.MatMul(a.up, m.up, a.norm, n)
	if e.opts.GGMLOps {
		e.be.SiLUMulGGML(a.gate, a.up, n)
	} else {
		e.be.SiLUMul(a.gate, a.up, n)
	}
	e.report(BrickMLPGateUp, li, t0, n, a.gate)
	t0 = e.mark()
	e.be.MatMul(a.proj, m.down, a.gate, n)
	e.report(BrickMLPDown, li, t0, n, a.proj)
}
