package tokenizer

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Character classes of the pre-tokenizer regexes. A rune with none of cL, cN
// and cS is "other" ([^\s\p{L}\p{N}]); invalid UTF-8 bytes are "other" too.
const (
	cL  = 1 << iota // \p{L}
	cN              // \p{N}
	cS              // \s: Unicode White_Space, as Oniguruma defines it
	cNL             // \r or \n
)

var (
	bmpOnce  sync.Once
	bmpClass []uint8 // class of every rune below 0x10000
)

func classOf(r rune) uint8 {
	var c uint8
	if unicode.IsLetter(r) {
		c |= cL
	}
	if unicode.IsNumber(r) {
		c |= cN
	}
	if unicode.Is(unicode.White_Space, r) {
		c |= cS
	}
	if r == '\r' || r == '\n' {
		c |= cNL
	}
	return c
}

func initClasses() {
	bmpOnce.Do(func() {
		t := make([]uint8, 0x10000)
		for r := range t {
			t[r] = classOf(rune(r))
		}
		bmpClass = t
	})
}

// next decodes the rune at s[i] and returns its class and width. An invalid
// byte is one "other" rune of width 1.
func next(s string, i int) (c uint8, w int) {
	b := s[i]
	if b < utf8.RuneSelf {
		return bmpClass[b], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r < 0x10000 {
		if r == utf8.RuneError && w == 1 {
			return 0, 1
		}
		return bmpClass[r], w
	}
	return classOf(r), w
}

func isOther(c uint8) bool { return c&(cL|cN|cS) == 0 }

// run advances j over runes whose class satisfies keep.
func runOf(s string, j int, mask uint8) int {
	for j < len(s) {
		c, w := next(s, j)
		if c&mask == 0 {
			break
		}
		j += w
	}
	return j
}

func otherRun(s string, j int) int {
	for j < len(s) {
		c, w := next(s, j)
		if !isOther(c) {
			break
		}
		j += w
	}
	return j
}

// contractionLen matches (?i:'s|'t|'re|'ve|'m|'ll|'d) (foldCase) or the
// case-sensitive GPT-2 form on the text after the apostrophe and returns the
// length of the match after the apostrophe, 0 for none.
func contractionLen(s string, foldCase bool) int {
	if len(s) == 0 {
		return 0
	}
	lower := func(b byte) byte {
		if foldCase && b >= 'A' && b <= 'Z' {
			return b + 'a' - 'A'
		}
		return b
	}
	switch lower(s[0]) {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if len(s) > 1 && lower(s[1]) == 'e' {
			return 2
		}
	case 'l':
		if len(s) > 1 && lower(s[1]) == 'l' {
			return 2
		}
	case 0xC5:
		// U+017F LATIN SMALL LETTER LONG S case-folds to 's'.
		if foldCase && len(s) > 1 && s[1] == 0xBF {
			return 2
		}
	}
	return 0
}

// splitLlama splits s as the Qwen2 (maxDigits 1) and LLaMA-3 (maxDigits 3)
// regex does:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// with Oniguruma's leftmost-first backtracking semantics, calling emit for
// every piece in order. Every byte of s lands in exactly one piece.
func splitLlama(s string, maxDigits int, emit func(string)) {
	i := 0
	for i < len(s) {
		c, w := next(s, i)
		// 1. contractions
		if s[i] == '\'' {
			if n := contractionLen(s[i+1:], true); n > 0 {
				emit(s[i : i+1+n])
				i += 1 + n
				continue
			}
		}
		// 2. [^\r\n\p{L}\p{N}]?\p{L}+
		if c&cL != 0 {
			j := runOf(s, i+w, cL)
			emit(s[i:j])
			i = j
			continue
		}
		if c&(cN|cNL) == 0 && i+w < len(s) {
			if c2, w2 := next(s, i+w); c2&cL != 0 {
				j := runOf(s, i+w+w2, cL)
				emit(s[i:j])
				i = j
				continue
			}
		}
		// 3. \p{N}{1,maxDigits}
		if c&cN != 0 {
			j := i + w
			for n := 1; n < maxDigits && j < len(s); n++ {
				c2, w2 := next(s, j)
				if c2&cN == 0 {
					break
				}
				j += w2
			}
			emit(s[i:j])
			i = j
			continue
		}
		// 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
		j := i
		if s[i] == ' ' && i+1 < len(s) {
			if c2, _ := next(s, i+1); isOther(c2) {
				j = i + 1
			}
		}
		if c2, _ := next(s, j); isOther(c2) {
			j = otherRun(s, j)
			for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
				j++
			}
			emit(s[i:j])
			i = j
			continue
		}
		// Whitespace from here on.
		end, lastNL, lastStart, runes := i, -1, i, 0
		for end < len(s) {
			c2, w2 := next(s, end)
			if c2&cS == 0 {
				break
			}
			if c2&cNL != 0 {
				lastNL = end + w2
			}
			lastStart = end
			end += w2
			runes++
		}
		switch {
		case lastNL >= 0: // 5. \s*[\r\n]+
			j = lastNL
		case end == len(s): // 6. \s+(?!\S) at the end
			j = end
		case runes >= 2: // 6. \s+(?!\S) leaving the last space for the next word
			j = lastStart
		default: // 7. \s+
			j = end
		}
		emit(s[i:j])
		i = j
	}
}

// splitGPT2 splits s as GPT-2's ByteLevel regex does:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(s string, emit func(string)) {
	i := 0
	for i < len(s) {
		if s[i] == '\'' {
			if n := contractionLen(s[i+1:], false); n > 0 {
				emit(s[i : i+1+n])
				i += 1 + n
				continue
			}
		}
		j := i
		if s[i] == ' ' && i+1 < len(s) {
			j = i + 1
		}
		c, w := next(s, j)
		if j > i && c&cS != 0 {
			// A space followed by a space: no ' ?X+' alternative applies.
			j, c, w = i, cS, 1
		}
		var end int
		switch {
		case c&cL != 0:
			end = runOf(s, j+w, cL)
		case c&cN != 0:
			end = runOf(s, j+w, cN)
		case isOther(c):
			end = otherRun(s, j+w)
		}
		if end > 0 {
			emit(s[i:end])
			i = end
			continue
		}
		// Whitespace at s[i].
		end, lastStart, runes := i, i, 0
		for end < len(s) {
			c2, w2 := next(s, end)
			if c2&cS == 0 {
				break
			}
			lastStart = end
			end += w2
			runes++
		}
		switch {
		case end == len(s):
			j = end
		case runes >= 2:
			j = lastStart
		default:
			j = end
		}
		emit(s[i:j])
		i = j
	}
}
