package tokenizer

import "unicode/utf8"

// byteToRune is GPT-2's bytes-to-unicode table: printable Latin-1 bytes map to
// themselves, the others to U+0100 upwards in byte order.
var byteToRune [256]rune

// runeToByte inverts byteToRune for the 256 runes it produces.
var runeToByte = map[rune]byte{}

// byteToString holds each byte's one-rune spelling, to avoid allocations.
var byteToString [256]string

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
		byteToString[b] = string(byteToRune[b])
	}
}

// byteLevelEncode spells raw bytes in the byte-level alphabet.
func byteLevelEncode(s string) string {
	buf := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteToRune[s[i]])
	}
	return string(buf)
}

// byteLevelDecode turns a token's byte-level spelling back into raw bytes.
// Like Hugging Face's ByteLevel decoder, a token holding any rune outside the
// byte-level alphabet is taken as its own UTF-8 bytes.
func byteLevelDecode(tok string) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return []byte(tok)
		}
		out = append(out, b)
	}
	return out
}

// validPrefix reports how the bytes at the start of p form UTF-8, following the
// Unicode "maximal subpart" rule that Rust's String::from_utf8_lossy (and so
// Hugging Face's decoder) uses. It returns n, the bytes examined, and status:
// utfValid (a whole rune of n bytes), utfInvalid (n bytes make one U+FFFD) or
// utfIncomplete (p is a valid but unfinished prefix; more bytes may complete it).
func validPrefix(p []byte) (n int, status int) {
	c := p[0]
	if c < 0x80 {
		return 1, utfValid
	}
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1, utfInvalid
	}
	for i := 1; i <= need; i++ {
		if i >= len(p) {
			return i, utfIncomplete
		}
		b := p[i]
		if i == 1 {
			if b < lo || b > hi {
				return 1, utfInvalid
			}
		} else if b < 0x80 || b > 0xBF {
			return i, utfInvalid
		}
	}
	return need + 1, utfValid
}

const (
	utfValid = iota
	utfInvalid
	utfIncomplete
)

// appendLossy appends p to dst as valid UTF-8, replacing each maximal invalid
// subpart with U+FFFD, exactly as Rust's from_utf8_lossy does. When final is
// false, a trailing incomplete sequence is not consumed; the number of bytes
// of p consumed is returned.
func appendLossy(dst []byte, p []byte, final bool) ([]byte, int) {
	i := 0
	for i < len(p) {
		if p[i] < 0x80 {
			j := i + 1
			for j < len(p) && p[j] < 0x80 {
				j++
			}
			dst = append(dst, p[i:j]...)
			i = j
			continue
		}
		n, st := validPrefix(p[i:])
		switch st {
		case utfValid:
			dst = append(dst, p[i:i+n]...)
		case utfInvalid:
			dst = append(dst, "\uFFFD"...)
		case utfIncomplete:
			if !final {
				return dst, i
			}
			dst = append(dst, "\uFFFD"...)
		}
		i += n
	}
	return dst, i
}
