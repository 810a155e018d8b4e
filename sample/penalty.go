package sample

// ApplyPresenceFrequency applies OpenAI's presence and frequency penalties
// in place: every token that occurs c > 0 times in generated loses
// c*frequency + presence from its logit. Ids outside logits are ignored.
func ApplyPresenceFrequency(logits []float32, generated []int, presence, frequency float64) {
	if (presence == 0 && frequency == 0) || len(generated) == 0 {
		return
	}
	counts := make(map[int]int, len(generated))
	for _, t := range generated {
		if t >= 0 && t < len(logits) {
			counts[t]++
		}
	}
	for t, c := range counts {
		logits[t] -= float32(float64(c)*frequency + presence)
	}
}
