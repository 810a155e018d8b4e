package cuda_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/sample"
)

// pickRef is what a pick must return for a row of raw logits: the host
// applies the edits (sample.ApplyEdits) and selects with sample's
// reference (Selection.Keys); full says the row must come back whole.
func pickRef(raw []float32, p cuda.Pick) (keys []uint64, full bool, penalized []float32) {
	penalized = append([]float32(nil), raw...)
	if p.K == 0 {
		return nil, true, penalized // the raw row: no edits
	}
	edits := make([]sample.Edit, len(p.Edits))
	for i, e := range p.Edits {
		edits[i] = sample.Edit{Token: int(e.Token), Sub: e.Sub, Repeat: e.Repeat}
	}
	sample.ApplyEdits(penalized, edits, p.Penalty)
	keys = sample.Selection{K: p.K, Temp: p.Temp, Greedy: p.Greedy}.Keys(penalized, nil)
	full = !p.Greedy && (len(keys) < p.K || keys[0]>>32 == 0xff800000)
	return keys, full, penalized
}

// checkPick compares a row's pick with pickRef's.
func checkPick(t *testing.T, what string, raw []float32, p cuda.Pick, got cuda.Picked, gotRow []float32) {
	t.Helper()
	keys, full, penalized := pickRef(raw, p)
	if got.Full != full {
		t.Errorf("%s: full %v, want %v", what, got.Full, full)
	}
	if p.K > 0 {
		if len(got.Keys) != len(keys) {
			t.Fatalf("%s: %d keys, want %d", what, len(got.Keys), len(keys))
		}
		for i := range keys {
			if got.Keys[i] != keys[i] {
				t.Fatalf("%s: key %d is %#x (token %d), want %#x (token %d)", what, i, got.Keys[i],
					sample.KeyID(got.Keys[i]), keys[i], sample.KeyID(keys[i]))
			}
		}
	}
	if got.Full {
		for i := range penalized {
			a, b := gotRow[i], penalized[i]
			if math.Float32bits(a) != math.Float32bits(b) && !(a != a && b != b) {
				t.Fatalf("%s: penalized logit %d is %v, want %v", what, i, a, b)
			}
		}
	}
}

// pickRows are logit rows of a vocabulary of vocab: random, tied (rounded
// to 1/4), masked with -Inf and NaN, with fewer candidates than a top-k,
// with +Inf logits, all NaN, NaN at token 0, and all zeros of both signs.
func pickRows(rng *rand.Rand, vocab int) [][]float32 {
	rows := make([][]float32, 8)
	for r := range rows {
		rows[r] = make([]float32, vocab)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for i := range vocab {
		x := float32(rng.NormFloat64() * 3)
		rows[0][i] = x
		rows[1][i] = float32(math.Round(float64(x)*4) / 4)
		rows[2][i] = x
		switch {
		case i%3 == 0:
			rows[2][i] = -inf
		case i%1001 == 0:
			rows[2][i] = nan
		}
		rows[3][i] = -inf
		if i%5000 == 17 {
			rows[3][i] = x
		}
		rows[4][i] = x
		rows[5][i] = nan
		rows[6][i] = x
		rows[7][i] = float32(math.Copysign(0, float64(i%2)-0.5))
	}
	rows[4][100], rows[4][vocab-3] = inf, inf
	rows[6][0] = nan
	return rows
}

// randomEdits are n edits of distinct tokens, with and without a
// subtraction and the repeat penalty.
func randomEdits(rng *rand.Rand, vocab, n int) []cuda.Edit {
	edits := make([]cuda.Edit, 0, n)
	seen := map[int32]bool{}
	for len(edits) < n {
		t := int32(rng.IntN(vocab))
		if t%7 == 0 {
			t = int32(rng.IntN(64)) // tokens near the top of tied rows
		}
		if seen[t] {
			continue
		}
		seen[t] = true
		e := cuda.Edit{Token: t, Repeat: rng.IntN(2) == 0}
		if rng.IntN(3) > 0 {
			e.Sub = float32(rng.IntN(5)) * 0.75
		}
		edits = append(edits, e)
	}
	return edits
}

// tinyQ4KM opens the shared tiny Q4_K_M GGUF model (skipping without a GPU).
func tinyQ4KM(t *testing.T) *model.Model {
	t.Helper()
	skipWithoutGPU(t)
	m, err := format.Open(testref.Path(t, "models", "qwen2-tiny-coder-gguf", "qwen2-tiny-coder-q4_k_m.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// pickModel loads the shared tiny Q4_K_M GGUF model on the GPU, with three
// slots.
func pickModel(t *testing.T) *cuda.Model {
	t.Helper()
	m := tinyQ4KM(t)
	o := cuda.OptionsFor(m, 256)
	o.Slots = 3
	g, err := cuda.Load(m, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// TestPickRowsMatchesReference runs the pick kernels on chosen rows (ties,
// -Inf, NaN, +Inf, too few candidates) under greedy, top-1, top-40 and
// top-256 picks at several temperatures, with and without penalties and
// mixed with rows that want their full logits, against pickRef.
func TestPickRowsMatchesReference(t *testing.T) {
	g := pickModel(t)
	vocab := g.Config.VocabSize
	rng := rand.New(rand.NewPCG(1, 2))
	rows := pickRows(rng, vocab)
	flat := make([]float32, 0, len(rows)*vocab)
	for _, r := range rows {
		flat = append(flat, r...)
	}
	edits := randomEdits(rng, vocab, 300)
	picks := []struct {
		name string
		p    cuda.Pick
	}{
		{"greedy", cuda.Pick{K: 1, Greedy: true}},
		{"greedy-penalized", cuda.Pick{K: 1, Greedy: true, Edits: edits, Penalty: 1.3}},
		{"top1", cuda.Pick{K: 1, Temp: 1}},
		{"top40", cuda.Pick{K: 40, Temp: 0.8}},
		{"top40-penalized", cuda.Pick{K: 40, Temp: 0.8, Edits: edits, Penalty: 1.1}},
		{"top256", cuda.Pick{K: 256, Temp: 1.3}},
		{"top256-tiny-temp", cuda.Pick{K: 256, Temp: 1e-30, Edits: edits[:10], Penalty: 0.8}},
	}
	out := make([]float32, len(flat))
	res := make([]cuda.Picked, len(rows))
	ps := make([]cuda.Pick, len(rows))
	for _, pc := range picks {
		for i := range ps {
			ps[i] = pc.p
		}
		if err := g.PickRows(flat, ps, res, out); err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			checkPick(t, pc.name+"/row"+string(rune('0'+i)), rows[i], ps[i], res[i], out[i*vocab:(i+1)*vocab])
		}
	}
	// Mixed: each row its own pick, some the full row.
	for i := range ps {
		ps[i] = picks[i%len(picks)].p
		if i%3 == 2 {
			ps[i] = cuda.Pick{Edits: edits[:5], Penalty: 1.2}
		}
	}
	if err := g.PickRows(flat, ps, res, out); err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		checkPick(t, "mixed/row"+string(rune('0'+i)), rows[i], ps[i], res[i], out[i*vocab:(i+1)*vocab])
	}
}

// TestForwardPickMatchesForward runs passes of a real model (three slots'
// prompts with every row's logits, more rows than one LM head group; then
// one decode row) with Forward and again with ForwardPick: every row's
// pick must equal pickRef's on Forward's logits.
func TestForwardPickMatchesForward(t *testing.T) {
	g := pickModel(t)
	vocab := g.Config.VocabSize
	rng := rand.New(rand.NewPCG(3, 4))
	var rows []cuda.Row
	for slot := range 3 {
		for p := range 15 {
			rows = append(rows, cuda.Row{Slot: slot, Token: (slot*977 + p*7919) % vocab, Pos: p, Logits: true})
		}
	}
	decode := []cuda.Row{{Slot: 1, Token: 13, Pos: 15, Logits: true}}
	for _, pass := range [][]cuda.Row{rows, decode} {
		want := make([]float32, len(pass)*vocab)
		if err := g.Forward(pass, want); err != nil {
			t.Fatal(err)
		}
		picks := make([]cuda.Pick, len(pass))
		for i := range picks {
			switch i % 4 {
			case 0:
				picks[i] = cuda.Pick{K: 1, Greedy: true, Edits: randomEdits(rng, vocab, 20), Penalty: 1.3}
			case 1:
				picks[i] = cuda.Pick{K: 40, Temp: 0.8}
			case 2:
				picks[i] = cuda.Pick{K: 256, Temp: 1.1, Edits: randomEdits(rng, vocab, 64), Penalty: 1.05}
			}
		}
		res := make([]cuda.Picked, len(pass))
		got := make([]float32, len(pass)*vocab)
		if err := g.ForwardPick(pass, picks, res, got); err != nil {
			t.Fatal(err)
		}
		for i := range pass {
			checkPick(t, "row", want[i*vocab:(i+1)*vocab], picks[i], res[i], got[i*vocab:(i+1)*vocab])
		}
	}
}

// TestForwardPickRejects: bad picks are errors, not panics.
func TestForwardPickRejects(t *testing.T) {
	g := pickModel(t)
	rows := []cuda.Row{{Token: 1, Logits: true}}
	logits := make([]float32, g.Config.VocabSize)
	for _, p := range []cuda.Pick{{K: cuda.MaxTopK + 1, Temp: 1}, {K: -1}, {K: 2, Greedy: true}, {K: 5, Temp: 0},
		{K: 5, Temp: float32(math.NaN())}, {K: 5, Temp: 1, Edits: []cuda.Edit{{Token: 1}}}} {
		if err := g.ForwardPick(rows, []cuda.Pick{p}, make([]cuda.Picked, 1), logits); err == nil {
			t.Errorf("pick %+v: no error", p)
		}
	}
	if err := g.ForwardPick(rows, nil, nil, logits); err == nil {
		t.Error("no picks: no error")
	}
}

// TestGenerateSampledMatchesCPU: engine.Generate on the GPU, which draws
// from the device's candidates (engine.Draw), writes the CPU's tokens for
// the same sampler settings and seed: sampled with temperature, top-k,
// top-p, min-p and a repeat penalty, and greedy with a repeat penalty, on
// the Q4_K_M tiny model, whose logits the GPU computes bit for bit as the
// CPU does.
func TestGenerateSampledMatchesCPU(t *testing.T) {
	m := tinyQ4KM(t)
	opts := engine.OptionsFor(m, 0)
	cpuEng, err := engine.New(m.Config, m.Tensors, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cpuEng.Close)
	gpuEng, notice, err := engine.Load(m, opts, engine.Offload{Device: engine.DeviceCUDA, GPULayers: -1, Context: 512})
	if err != nil || notice != "" {
		t.Fatalf("GPU engine: %v %s", err, notice)
	}
	t.Cleanup(gpuEng.Close)
	params := []sample.Params{
		{Temperature: 0.8, TopK: 40},
		{Temperature: 0.8, TopK: 40, TopP: 0.95, RepeatPenalty: 1.1, RepeatLastN: 64},
		{Temperature: 1.3, TopK: 200, MinP: 0.02},
		{RepeatPenalty: 1.3, RepeatLastN: -1},
	}
	prompt := testref.HFOutputs(t)[0].TokenIDs
	gen := func(e *engine.Engine, p sample.Params) []int {
		st, err := e.NewSequence(512).Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: 32,
			Sampler: sample.New(p), Decoder: m.Tokenizer.NewDecoder()}, func(string) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return st.Output
	}
	for i, p := range params {
		for _, seed := range []uint64{1, 7, 42} {
			p.Seed = seed
			want, got := gen(cpuEng, p), gen(gpuEng, p)
			if !slices.Equal(got, want) {
				t.Errorf("settings %d seed %d: GPU %v, CPU %v", i, seed, got, want)
			}
		}
	}
}
