package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/apr-llm/apr/tensor"
)

// entry is one tensor as the header describes it, before validation against
// the data area.
type entry struct {
	name       string
	dtype      tensor.DType
	shape      []int
	begin, end uint64
}

type header struct {
	entries  []entry
	metadata map[string]string
}

// parseHeader walks the JSON header token by token: encoding/json's Unmarshal
// silently keeps the last of duplicate keys, and a duplicated tensor name must
// be an error.
func parseHeader(b []byte) (*header, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("header is not a JSON object: found %s", describe(tok))
	}
	h := &header{}
	seen := map[string]bool{}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return nil, err
		}
		if seen[key] {
			if key == MetadataKey {
				return nil, fmt.Errorf("duplicate %s", MetadataKey)
			}
			return nil, fmt.Errorf("duplicate tensor name %q", key)
		}
		seen[key] = true
		if key == MetadataKey {
			if h.metadata, err = parseMetadata(dec); err != nil {
				return nil, err
			}
			continue
		}
		e, err := parseEntry(dec, key)
		if err != nil {
			return nil, err
		}
		h.entries = append(h.entries, e)
	}
	if err := expectDelim(dec, '}', "header"); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, errors.New("data after the header's JSON object")
		}
		return nil, fmt.Errorf("after the header's JSON object: %w", err)
	}
	return h, nil
}

func expectDelim(dec *json.Decoder, want json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("malformed JSON in %s: %w", what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%s: want %q, found %s", what, want, describe(tok))
	}
	return nil
}

func objectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", fmt.Errorf("malformed JSON: %w", err)
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("malformed JSON: object key is %s", describe(tok))
	}
	return key, nil
}

// describe names a JSON token for an error message.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("string %q", truncate(v))
	case json.Number:
		return "number " + truncate(string(v))
	case bool:
		return fmt.Sprintf("%v", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("malformed JSON in %s: %w", MetadataKey, err)
	}
	if tok == nil { // "__metadata__": null
		return map[string]string{}, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%s: want an object of strings, found %s", MetadataKey, describe(tok))
	}
	md := map[string]string{}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", MetadataKey, err)
		}
		if _, dup := md[key]; dup {
			return nil, fmt.Errorf("%s: duplicate key %q", MetadataKey, key)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON in %s: %w", MetadataKey, err)
		}
		v, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%s: value of %q is %s, not a string", MetadataKey, key, describe(tok))
		}
		md[key] = v
	}
	if err := expectDelim(dec, '}', MetadataKey); err != nil {
		return nil, err
	}
	return md, nil
}

func parseEntry(dec *json.Decoder, name string) (entry, error) {
	e := entry{name: name}
	if err := expectDelim(dec, '{', fmt.Sprintf("tensor %q", name)); err != nil {
		return e, err
	}
	var haveDType, haveShape, haveOffsets bool
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return e, fmt.Errorf("tensor %q: %w", name, err)
		}
		switch key {
		case "dtype":
			if haveDType {
				return e, fmt.Errorf("tensor %q: duplicate dtype", name)
			}
			haveDType = true
			tok, err := dec.Token()
			if err != nil {
				return e, fmt.Errorf("tensor %q: malformed JSON: %w", name, err)
			}
			s, ok := tok.(string)
			if !ok {
				return e, fmt.Errorf("tensor %q: dtype is %s, not a string", name, describe(tok))
			}
			d, ok := tensor.ParseSafeTensorsDType(s)
			if !ok {
				return e, fmt.Errorf("tensor %q: unknown dtype %q", name, truncate(s))
			}
			e.dtype = d
		case "shape":
			if haveShape {
				return e, fmt.Errorf("tensor %q: duplicate shape", name)
			}
			haveShape = true
			dims, err := uintArray(dec)
			if err != nil {
				return e, fmt.Errorf("tensor %q: shape: %w", name, err)
			}
			e.shape = make([]int, len(dims))
			for i, d := range dims {
				if d > math.MaxInt {
					return e, fmt.Errorf("tensor %q: shape dimension %d too large", name, d)
				}
				e.shape[i] = int(d)
			}
		case "data_offsets":
			if haveOffsets {
				return e, fmt.Errorf("tensor %q: duplicate data_offsets", name)
			}
			haveOffsets = true
			offs, err := uintArray(dec)
			if err != nil {
				return e, fmt.Errorf("tensor %q: data_offsets: %w", name, err)
			}
			if len(offs) != 2 {
				return e, fmt.Errorf("tensor %q: data_offsets has %d numbers, want 2", name, len(offs))
			}
			e.begin, e.end = offs[0], offs[1]
		default: // unknown fields are ignored, as the Python library does
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return e, fmt.Errorf("tensor %q: malformed JSON in field %q: %w", name, truncate(key), err)
			}
		}
	}
	if err := expectDelim(dec, '}', fmt.Sprintf("tensor %q", name)); err != nil {
		return e, err
	}
	switch {
	case !haveDType:
		return e, fmt.Errorf("tensor %q: no dtype", name)
	case !haveShape:
		return e, fmt.Errorf("tensor %q: no shape", name)
	case !haveOffsets:
		return e, fmt.Errorf("tensor %q: no data_offsets", name)
	}
	return e, nil
}

// uintArray reads a JSON array of non-negative integers.
func uintArray(dec *json.Decoder) ([]uint64, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("want an array of integers, found %s", describe(tok))
	}
	var out []uint64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("want an integer, found %s", describe(tok))
		}
		s := string(num)
		if len(s) > 0 && s[0] == '-' {
			return nil, fmt.Errorf("negative value %s", truncate(s))
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not an integer in range", truncate(s))
		}
		out = append(out, v)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	return out, nil
}
