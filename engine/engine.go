// Package engine implements the Qwen2/LLaMA transformer forward pass once,
// against the CPU backend's operations, with a KV cache per sequence and
// batched prefill.
package engine

import (
	"fmt"
	"sync"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tensor"
)

// Options configure an Engine.
type Options struct {
	Threads int // worker threads; < 1 means all CPUs
	cpu.Numerics
}

// OptionsFor returns options with the numerics of m's reference
// implementation (see cpu.NumericsFor).
func OptionsFor(m *model.Model, threads int) Options {
	return Options{Threads: threads, Numerics: cpu.NumericsFor(m)}
}

// Engine holds a model's weights bound to a backend and runs forward passes.
type Engine struct {
	Config  *model.Config
	opts    Options
	be      *cpu.Backend
	mu      sync.Mutex  // one forward pass at a time
	scratch activations // reused by every forward pass, under mu
	probe   Probe       // observes bricks when set, under mu
	embed   *cpu.Matrix
	layers  []decoderLayer
	norm    []float32
	output  *cpu.Matrix
	rope    *cpu.Rope
	dev     *onDevice // when set, every forward pass runs there
}

// attention is one layer's self-attention block.
type attention struct {
	q, k, v, o    *cpu.Matrix
	qb, kb, vb    []float32 // nil without biases (LLaMA)
	heads, kvHead int
	headDim       int
}

// mlp is one layer's SiLU-gated feed-forward block.
type mlp struct {
	gate, up, down *cpu.Matrix
}

// decoderLayer is attention and MLP, each behind an RMSNorm, with residuals.
type decoderLayer struct {
	attnNorm []float32
	attn     attention
	mlpNorm  []float32
	mlp      mlp
}

// New binds the named tensors to the forward pass, checking every shape
// against the config.
func New(cfg *model.Config, tensors map[string]*tensor.Tensor, opts Options) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := binder{cfg: cfg, tensors: tensors}
	h, kvDim, qDim := cfg.HiddenSize, cfg.NumKVHeads*cfg.HeadDim, cfg.NumHeads*cfg.HeadDim
	e := &Engine{Config: cfg, opts: opts}
	e.embed = b.matrix(model.TokenEmbd, cfg.VocabSize, h)
	e.norm = b.vector(model.OutputNorm, h)
	// A model without lm_head.weight has tied embeddings, whatever the
	// config says; one that has it uses it.
	if _, ok := tensors[model.Output]; ok {
		e.output = b.matrix(model.Output, cfg.VocabSize, h)
	} else {
		e.output = e.embed
	}
	for i := 0; i < cfg.NumLayers; i++ {
		l := decoderLayer{
			attnNorm: b.vector(model.Layer(i, model.AttnNorm), h),
			mlpNorm:  b.vector(model.Layer(i, model.FFNNorm), h),
			attn: attention{
				q:       b.matrix(model.Layer(i, model.AttnQ), qDim, h),
				k:       b.matrix(model.Layer(i, model.AttnK), kvDim, h),
				v:       b.matrix(model.Layer(i, model.AttnV), kvDim, h),
				o:       b.matrix(model.Layer(i, model.AttnO), h, qDim),
				heads:   cfg.NumHeads,
				kvHead:  cfg.NumKVHeads,
				headDim: cfg.HeadDim,
			},
			mlp: mlp{
				gate: b.matrix(model.Layer(i, model.FFNGate), cfg.IntermediateSize, h),
				up:   b.matrix(model.Layer(i, model.FFNUp), cfg.IntermediateSize, h),
				down: b.matrix(model.Layer(i, model.FFNDown), h, cfg.IntermediateSize),
			},
		}
		if cfg.AttentionBias {
			l.attn.qb = b.vector(model.Layer(i, model.AttnQB), qDim)
			l.attn.kb = b.vector(model.Layer(i, model.AttnKB), kvDim)
			l.attn.vb = b.vector(model.Layer(i, model.AttnVB), kvDim)
		}
		e.layers = append(e.layers, l)
	}
	if b.err != nil {
		return nil, b.err
	}
	e.rope = cpu.NewRope(cfg.HeadDim, cfg.RopeTheta, opts.Rope)
	e.be = cpu.New(opts.Threads)
	return e, nil
}

// Threads is the number of worker threads.
func (e *Engine) Threads() int { return e.be.Threads() }

// Close releases the worker pool and, on a GPU, the device memory.
func (e *Engine) Close() {
	if e.dev != nil {
		e.dev.close()
	}
	e.be.Close()
}

// binder looks tensors up by canonical name and checks their shapes,
// remembering the first error.
type binder struct {
	cfg     *model.Config
	tensors map[string]*tensor.Tensor
	err     error
}

func (b *binder) get(name string, shape ...int) *tensor.Tensor {
	if b.err != nil {
		return nil
	}
	t, ok := b.tensors[name]
	if !ok {
		b.err = fmt.Errorf("missing tensor %s", name)
		return nil
	}
	if len(t.Shape) != len(shape) {
		b.err = fmt.Errorf("tensor %s: shape %v, but the config needs %v", name, t.Shape, shape)
		return nil
	}
	for i := range shape {
		if t.Shape[i] != shape[i] {
			b.err = fmt.Errorf("tensor %s: shape %v, but the config needs %v", name, t.Shape, shape)
			return nil
		}
	}
	return t
}

func (b *binder) matrix(name string, rows, cols int) *cpu.Matrix {
	t := b.get(name, rows, cols)
	if t == nil {
		return nil
	}
	m, err := cpu.NewMatrix(t)
	if err != nil {
		b.err = err
	}
	return m
}

func (b *binder) vector(name string, n int) []float32 {
	t := b.get(name, n)
	if t == nil {
		return nil
	}
	v, err := cpu.Vector(t)
	if err != nil {
		b.err = err
	}
	return v
}
