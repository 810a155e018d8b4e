package sample

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzSample feeds arbitrary logit rows (NaN, ±Inf, ties, any size up to
// 3,000, so both the sorted and the mass path run) and parameters: Sample
// must not panic, must return an id in range, and must draw a token whose
// logit is a number above -Inf whenever one exists. On rows of finite
// scaled logits at temperatures 0.1 to 10 that take the sorted path (at
// most exactMax candidates after top-k) it must draw what the reference
// draws. The mass path is not held to that here: on rows of exactly tied
// logits a cumulative sum can land exactly on a top-p or draw boundary,
// where the order of the sums decides (TestSampleMatchesReference and
// TestSampleDistribution cover it on real and random logits).
func FuzzSample(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64}, uint16(1000), uint16(0), uint16(0), uint16(0), uint64(1), uint16(1))
	f.Add([]byte{0, 0, 128, 127, 0, 0, 128, 255, 0, 0, 192, 127}, uint16(700), uint16(3), uint16(900), uint16(50), uint64(2), uint16(2000))
	f.Fuzz(func(t *testing.T, raw []byte, temp, topK, topP, minP uint16, seed uint64, repeat uint16) {
		n := len(raw) / 4
		logits := make([]float32, n)
		for i := range logits {
			logits[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		// Repeat the row to reach the mass path (> exactMax candidates).
		for repeat = min(repeat, 3000); n > 0 && len(logits) < int(repeat); {
			logits = append(logits, logits[:min(n, int(repeat)-len(logits))]...)
		}
		if len(logits) == 0 {
			return
		}
		p := Params{
			Temperature:   float64(temp) / 1000,
			TopK:          int(topK % 2048),
			TopP:          float64(topP) / 1000,
			MinP:          float64(minP) / 1000,
			RepeatPenalty: 1.2,
			RepeatLastN:   -1,
			Seed:          seed,
		}
		history := []int{0, len(logits) / 2}
		row := append([]float32(nil), logits...)
		id := New(p).Sample(row, history)
		if id < 0 || id >= len(logits) {
			t.Fatalf("id %d outside %d logits", id, len(logits))
		}
		valid, finite, count := false, true, 0
		for _, l := range row { // after the penalty, which can overflow
			if l == l && !math.IsInf(float64(l), -1) {
				valid = true
				count++
			}
			x := l / float32(p.Temperature) // the reference's sums need finite scaled logits
			finite = finite && x == x && !math.IsInf(float64(x), 0)
		}
		if l := row[id]; valid && (l != l || math.IsInf(float64(l), -1)) {
			t.Fatalf("drew %d, logit %v", id, l)
		}
		exact := count <= exactMax || (p.TopK > 0 && p.TopK <= exactMax)
		if exact && finite && p.Temperature >= 0.1 && p.Temperature <= 10 {
			want := newRef(p).Sample(append([]float32(nil), logits...), history)
			if id != want {
				t.Fatalf("drew %d, reference %d (%+v)", id, want, p)
			}
		}
	})
}
