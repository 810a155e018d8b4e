package cli

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/sample"
)

// genFlags are the sampling and length flags of run and chat, named as
// llama.cpp and Ollama users know them. Unset flags take the model's
// generation_config.json defaults.
type genFlags struct {
	modelFlags
	temperature   float64
	topK          int
	topP          float64
	minP          float64
	repeatPenalty float64
	repeatLastN   int
	seed          int64
	maxTokens     int
	ctxSize       int
	stop          []string
	system        string
	cmd           *cobra.Command
}

func (g *genFlags) register(cmd *cobra.Command) {
	g.cmd = cmd
	g.modelFlags.register(cmd)
	g.modelFlags.registerTrace(cmd)
	g.modelFlags.registerDevice(cmd)
	g.modelFlags.registerCache(cmd)
	fl := cmd.Flags()
	fl.Float64Var(&g.temperature, "temperature", 0.8, "sampling temperature; 0 is greedy (alias --temp; default: the model's)")
	fl.IntVar(&g.topK, "top-k", 40, "keep the k most likely tokens; 0 disables (default: the model's)")
	fl.Float64Var(&g.topP, "top-p", 0.95, "nucleus sampling threshold; 1 disables (default: the model's)")
	fl.Float64Var(&g.minP, "min-p", 0.05, "drop tokens below min-p x the best token's probability; 0 disables (default: the model's)")
	fl.Float64Var(&g.repeatPenalty, "repeat-penalty", 1.0, "penalty for repeated tokens; 1 disables (default: the model's)")
	fl.IntVar(&g.repeatLastN, "repeat-last-n", 64, "how many recent tokens the repeat penalty sees; -1 for the whole context")
	fl.Int64VarP(&g.seed, "seed", "s", -1, "random seed; -1 picks one at random")
	fl.IntVarP(&g.maxTokens, "max-tokens", "n", -1, "stop after this many tokens; -1 for no limit (alias --n-predict)")
	fl.IntVarP(&g.ctxSize, "ctx-size", "c", 4096, "context window in tokens; 0 for the model's full context")
	fl.StringArrayVar(&g.stop, "stop", nil, "stop when the output contains this string (repeatable)")
	fl.StringVar(&g.system, "system", "", "system prompt")
}

// sampler builds the sampler: explicit flags win, then the model's
// generation_config.json, then the flag defaults (llama.cpp's).
func (g *genFlags) sampler(l *loaded) *sample.Sampler {
	gen := l.model.Generation
	changed := g.cmd.Flags().Changed
	p := sample.Params{
		Temperature: g.temperature, TopK: g.topK, TopP: g.topP, MinP: g.minP,
		RepeatPenalty: g.repeatPenalty, RepeatLastN: g.repeatLastN,
	}
	if !changed("temperature") && gen.Temperature != nil {
		p.Temperature = *gen.Temperature
		if gen.DoSample != nil && !*gen.DoSample {
			p.Temperature = 0
		}
	}
	if !changed("top-k") && gen.TopK != nil {
		p.TopK = *gen.TopK
	}
	if !changed("top-p") && gen.TopP != nil {
		p.TopP = *gen.TopP
	}
	if !changed("min-p") && (gen.TopP != nil || gen.TopK != nil) {
		// The model ships its own filters; llama.cpp's min-p default would
		// be an addition it did not ask for.
		p.MinP = 0
		if gen.MinP != nil {
			p.MinP = *gen.MinP
		}
	}
	if !changed("repeat-penalty") && gen.RepeatPenalty != nil {
		p.RepeatPenalty = *gen.RepeatPenalty
	}
	if g.seed < 0 {
		p.Seed = rand.Uint64()
	} else {
		p.Seed = uint64(g.seed)
	}
	return sample.New(p)
}

// loadFlags are the model flags with one sequence of --ctx-size positions
// at a time, for sizing the GPU's KV cache.
func (g *genFlags) loadFlags() *modelFlags {
	g.slots, g.ctx = 1, g.ctxSize
	return &g.modelFlags
}

// sequence allocates the KV cache for the requested context.
func (g *genFlags) sequence(l *loaded) *engine.Sequence {
	return l.engine.NewSequence(g.ctxSize)
}

// generate streams the answer for prompt ids to stdout and returns it.
func (e *env) generate(ctx context.Context, g *genFlags, l *loaded, seq *engine.Sequence, ids []int, s *sample.Sampler) (*engine.Stats, string, error) {
	var answer strings.Builder
	start, ttft := time.Now(), time.Duration(0)
	st, err := seq.Generate(ctx, ids, engine.GenerateOptions{
		MaxTokens: g.maxTokens,
		Sampler:   s,
		EOS:       l.model.EOS(),
		Stop:      g.stop,
		Decoder:   l.model.Tokenizer.NewDecoder(),
	}, func(text string) error {
		if ttft == 0 {
			ttft = time.Since(start)
		}
		answer.WriteString(text)
		_, err := fmt.Fprint(e.stdout, text)
		return err
	})
	if err == nil && g.verbose {
		e.verboseGenerate(st, ttft, seq)
	}
	return st, answer.String(), err
}
