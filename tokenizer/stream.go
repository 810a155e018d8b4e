package tokenizer

// StreamDecoder turns ids into text one at a time, as a model generates them.
// Each call returns only complete UTF-8 text: the bytes of a character split
// across tokens are held back until it is whole. The concatenation of every
// Add and the final Flush equals Decode of all the ids. It is not safe for
// concurrent use.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
}

// NewDecoder returns a StreamDecoder for t.
func (t *Tokenizer) NewDecoder() *StreamDecoder { return &StreamDecoder{t: t} }

// Add appends the bytes of id and returns the text that became complete
// (possibly ""). Invalid sequences become U+FFFD as soon as they are known
// to be invalid; unknown ids are skipped.
func (d *StreamDecoder) Add(id int) string {
	d.pending = append(d.pending, d.t.TokenBytes(id)...)
	if len(d.pending) == 0 {
		return ""
	}
	out, n := appendLossy(nil, d.pending, false)
	d.pending = d.pending[:copy(d.pending, d.pending[n:])]
	return string(out)
}

// Flush returns what is held back, with an unfinished sequence as U+FFFD,
// and resets the decoder.
func (d *StreamDecoder) Flush() string {
	if len(d.pending) == 0 {
		return ""
	}
	out, _ := appendLossy(nil, d.pending, true)
	d.pending = d.pending[:0]
	return string(out)
}
