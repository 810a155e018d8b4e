package sample

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// penaltyInputs are a history (prompt and output) and the output alone,
// drawn from the first tokens of a vocabulary (so they repeat), with ids
// outside it mixed in (every penalty ignores those).
func penaltyInputs(rng *rand.Rand, vocab, n int) (history, generated []int) {
	for i := range n {
		t := rng.IntN(min(vocab, 64))
		switch i % 17 {
		case 5:
			t = -1
		case 11:
			t = vocab + 3
		}
		history = append(history, t)
	}
	return history, history[n/2:]
}

// drawBoth draws a token with Sample from the full logits (after
// ApplyPresenceFrequency, as the server does) and with the device's path
// (Penalties, ApplyEdits, the reference selection, SampleKeys or, where it
// declines, SamplePenalized), with two samplers of p in the same state, and
// fails unless the penalized logits and the tokens are the same. keys are
// shuffled first: a device returns them in any order.
func drawBoth(t *testing.T, full, dev *Sampler, logits []float32, history, generated []int, presence, frequency float64, shuffle *rand.Rand) {
	t.Helper()
	a := append([]float32(nil), logits...)
	ApplyPresenceFrequency(a, generated, presence, frequency)
	want := full.Sample(a, history)
	b := append([]float32(nil), logits...)
	edits, pen := dev.Penalties(nil, len(b), history, generated, presence, frequency)
	ApplyEdits(b, edits, pen)
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			t.Fatalf("penalized logit %d: %v on the host, %v from the edits", i, a[i], b[i])
		}
	}
	var got int
	sel, ok := dev.Selection(256)
	if ok {
		keys := sel.Keys(b, nil)
		shuffle.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		got, ok = dev.SampleKeys(keys)
	}
	if !ok {
		got = dev.SamplePenalized(b)
	}
	if got != want {
		t.Fatalf("drew %d from the candidates, %d from the full logits (%+v, presence %v, frequency %v)",
			got, want, dev.p, presence, frequency)
	}
}

// TestSampleKeysMatchesSample draws 6 tokens in a row per logit shape
// (real logits, flattened, tied, masked with -Inf and NaN, a row of few
// candidates) and parameter set, over two seeds, through both paths.
func TestSampleKeysMatchesSample(t *testing.T) {
	shapes := logitShapes(t)
	few := make([]float32, len(shapes["prompt0"]))
	for i := range few {
		few[i] = float32(math.Inf(-1))
		if i%20000 == 7 {
			few[i] = float32(i % 5)
		}
	}
	shapes["few"] = few
	inf := append([]float32(nil), shapes["flat"]...)
	inf[100], inf[2000] = float32(math.Inf(1)), float32(math.Inf(1))
	shapes["inf"] = inf
	params := []Params{
		{},
		{RepeatPenalty: 1.3, RepeatLastN: 64},
		{Temperature: 0.8, TopK: 40},
		{Temperature: 0.8, TopK: 40, RepeatPenalty: 1.1, RepeatLastN: 64},
		{Temperature: 0.7, TopK: 20, TopP: 0.8, RepeatPenalty: 1.05, RepeatLastN: -1},
		{Temperature: 1, TopK: 1},
		{Temperature: 1.5, TopK: 256, MinP: 0.05},
		{Temperature: 0.3, TopK: 100, TopP: 0.5, MinP: 0.1, RepeatPenalty: 0.9, RepeatLastN: 10},
		{Temperature: 1, TopK: 300}, // above the bound: full logits
		{Temperature: 1},            // top-k off: full logits
	}
	pf := [][2]float64{{0, 0}, {0.5, 0.25}, {-0.3, 1}}
	for _, logits := range shapes {
		for pi, p := range params {
			for si := range 2 {
				p.Seed = uint64(1000*pi + si)
				rng := rand.New(rand.NewPCG(p.Seed, 7))
				full, dev := New(p), New(p)
				history, generated := penaltyInputs(rng, len(logits), 80)
				for step := range 6 {
					f := pf[(step+si)%len(pf)]
					drawBoth(t, full, dev, logits, history, generated, f[0], f[1], rng)
				}
			}
		}
	}
}

// TestSelectionKeys checks the reference selection on a small row: order,
// the bound K, temperature, NaN and -Inf, ties by id, and greedy's rules.
func TestSelectionKeys(t *testing.T) {
	nan, inf, negZero := float32(math.NaN()), float32(math.Inf(1)), float32(math.Copysign(0, -1))
	row := []float32{1, nan, 3, 3, float32(math.Inf(-1)), negZero, 0, inf, 2}
	ids := func(keys []uint64) []int {
		var out []int
		for _, k := range keys {
			out = append(out, KeyID(k))
		}
		return out
	}
	tests := []struct {
		name string
		sel  Selection
		row  []float32
		want []int
	}{
		{"top3", Selection{K: 3, Temp: 1}, row, []int{7, 2, 3}},
		{"all", Selection{K: 20, Temp: 0.5}, row, []int{7, 2, 3, 8, 0, 5, 6}},
		{"greedy", Selection{K: 1, Temp: 1, Greedy: true}, row, []int{7}},
		{"greedy -Inf", Selection{K: 1, Temp: 1, Greedy: true}, []float32{nan, float32(math.Inf(-1))}, []int{0}},
		{"greedy all -Inf", Selection{K: 1, Temp: 1, Greedy: true}, []float32{float32(math.Inf(-1)), float32(math.Inf(-1))}, []int{0}},
		{"zeros tie", Selection{K: 1, Temp: 1}, []float32{-1, negZero, 0}, []int{1}},
		{"none", Selection{K: 2, Temp: 1}, []float32{nan, float32(math.Inf(-1))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(tt.sel.Keys(tt.row, nil))
			if len(got) != len(tt.want) {
				t.Fatalf("ids %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("ids %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// FuzzSampleKeys feeds arbitrary rows (NaN, ±Inf, ties), parameters and
// penalties: the device's path must draw what Sample draws from the full
// logits.
func FuzzSampleKeys(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64}, uint16(1000), uint16(2), uint16(0), uint16(0), uint64(1), uint16(1200), int16(5), int16(3))
	f.Add([]byte{0, 0, 128, 127, 0, 0, 128, 255, 0, 0, 192, 127, 0, 0, 0, 0}, uint16(700), uint16(3), uint16(900), uint16(50), uint64(2), uint16(800), int16(-7), int16(0))
	f.Fuzz(func(t *testing.T, raw []byte, temp, topK, topP, minP uint16, seed uint64, repeat uint16, presence, frequency int16) {
		n := len(raw) / 4
		if n == 0 {
			return
		}
		logits := make([]float32, n)
		for i := range logits {
			logits[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		p := Params{
			Temperature:   float64(temp%5000) / 1000,
			TopK:          int(topK % 300),
			TopP:          float64(topP) / 1000,
			MinP:          float64(minP) / 1000,
			RepeatPenalty: float64(repeat) / 1000,
			RepeatLastN:   int(seed % 7),
			Seed:          seed,
		}
		rng := rand.New(rand.NewPCG(seed, 3))
		history, generated := penaltyInputs(rng, n, 12)
		full, dev := New(p), New(p)
		for range 3 {
			drawBoth(t, full, dev, logits, history, generated, float64(presence)/100, float64(frequency)/100, rng)
		}
	})
}
