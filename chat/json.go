package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"
)

// maxJSONDepth bounds the nesting of JSON given to templates.
const maxJSONDepth = 200

// jsonValue parses JSON text into a template value, keeping the key order of
// objects (as Python's json.loads does) and telling integers from floats.
func jsonValue(data []byte) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeJSONValue(dec, 0)
	if err != nil {
		return jinja.Undefined(), err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jinja.Undefined(), errors.New("trailing data after JSON value")
	}
	return v, nil
}

func decodeJSONValue(dec *json.Decoder, depth int) (jinja.Value, error) {
	if depth > maxJSONDepth {
		return jinja.Undefined(), fmt.Errorf("JSON nested deeper than %d", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return jinja.Undefined(), err
	}
	switch t := tok.(type) {
	case nil:
		return jinja.None(), nil
	case bool:
		return jinja.NewBool(t), nil
	case string:
		return jinja.NewString(t), nil
	case json.Number:
		return numberValue(t), nil
	case json.Delim:
		switch t {
		case '[':
			var items []jinja.Value
			for dec.More() {
				v, err := decodeJSONValue(dec, depth+1)
				if err != nil {
					return jinja.Undefined(), err
				}
				items = append(items, v)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Undefined(), err
			}
			return jinja.NewList(items), nil
		case '{':
			d := jinja.NewDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jinja.Undefined(), err
				}
				key, ok := kt.(string)
				if !ok {
					return jinja.Undefined(), fmt.Errorf("object key is %T, not a string", kt)
				}
				v, err := decodeJSONValue(dec, depth+1)
				if err != nil {
					return jinja.Undefined(), err
				}
				d.AsDict().Set(key, v)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Undefined(), err
			}
			return d, nil
		}
	}
	return jinja.Undefined(), fmt.Errorf("unexpected JSON token %v", tok)
}

// numberValue keeps integers as integers (Python's json.loads does too);
// integers beyond int64 become floats.
func numberValue(n json.Number) jinja.Value {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := n.Int64(); err == nil {
			return jinja.NewInt(i)
		}
	}
	f, err := n.Float64()
	if err != nil {
		// Out of range: Python gives inf for such literals.
		if strings.HasPrefix(s, "-") {
			return jinja.NewFloat(math.Inf(-1))
		}
		return jinja.NewFloat(math.Inf(1))
	}
	return jinja.NewFloat(f)
}

// goValue converts a Go value given by a caller into a template value.
// JSON (json.RawMessage) keeps its key order; maps are sorted by key.
func goValue(v any) (jinja.Value, error) {
	switch t := v.(type) {
	case jinja.Value:
		return t, nil
	case json.RawMessage:
		return jsonValue(t)
	case []string:
		items := make([]jinja.Value, len(t))
		for i, s := range t {
			items[i] = jinja.NewString(s)
		}
		return jinja.NewList(items), nil
	case map[string]string:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := jinja.NewDict()
		for _, k := range keys {
			d.AsDict().Set(k, jinja.NewString(t[k]))
		}
		return d, nil
	case float32:
		return jinja.NewFloat(float64(t)), nil
	case int32:
		return jinja.NewInt(int64(t)), nil
	case uint:
		return jinja.NewInt(int64(t)), nil
	}
	out := jinja.FromGoValue(v)
	if out.IsUndefined() && v != nil {
		return out, fmt.Errorf("unsupported value of type %T", v)
	}
	return out, nil
}

// jsonOptions are the arguments of Python's json.dumps that tojson accepts.
type jsonOptions struct {
	itemSep, keySep string
	indent          *string
	sortKeys        bool
	ensureASCII     bool
}

// tojsonFilter is Hugging Face's tojson: json.dumps(x, ensure_ascii=False,
// indent=None, separators=None, sort_keys=False), positional or keyword.
func tojsonFilter(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.Undefined(), errors.New("tojson: no value to encode")
	}
	opt := jsonOptions{itemSep: ", ", keySep: ": "}
	get := func(pos int, name string) (jinja.Value, bool) {
		if v, ok := kwargs[name]; ok {
			return v, true
		}
		if pos < len(args) {
			return args[pos], true
		}
		return jinja.Undefined(), false
	}
	if v, ok := get(1, "ensure_ascii"); ok {
		opt.ensureASCII = v.IsTruthy()
	}
	if v, ok := get(2, "indent"); ok && !v.IsNone() && !v.IsUndefined() {
		var ind string
		switch {
		case v.IsInt():
			ind = strings.Repeat(" ", int(max(0, min(v.AsInt(), 64))))
		case v.IsString():
			ind = v.AsString()
		default:
			return jinja.Undefined(), fmt.Errorf("tojson: indent must be an integer or a string, got %s", v.String())
		}
		opt.indent = &ind
		opt.itemSep = ","
	}
	if v, ok := get(3, "separators"); ok && !v.IsNone() && !v.IsUndefined() {
		if !v.IsList() || v.AsList().Len() != 2 || !v.AsList().Get(0).IsString() || !v.AsList().Get(1).IsString() {
			return jinja.Undefined(), errors.New("tojson: separators must be two strings")
		}
		opt.itemSep, opt.keySep = v.AsList().Get(0).AsString(), v.AsList().Get(1).AsString()
	}
	if v, ok := get(4, "sort_keys"); ok {
		opt.sortKeys = v.IsTruthy()
	}
	var sb strings.Builder
	if err := encodeJSON(&sb, args[0], &opt, 0); err != nil {
		return jinja.Undefined(), fmt.Errorf("tojson: %w", err)
	}
	return jinja.NewString(sb.String()), nil
}

// encodeJSON writes v as Python's json.dumps would.
func encodeJSON(sb *strings.Builder, v jinja.Value, opt *jsonOptions, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("value nested deeper than %d", maxJSONDepth)
	}
	newline := func(level int) {
		if opt.indent != nil {
			sb.WriteByte('\n')
			for range level {
				sb.WriteString(*opt.indent)
			}
		}
	}
	switch {
	case v.IsUndefined(), v.IsNone():
		sb.WriteString("null")
	case v.IsBool():
		if v.AsBool() {
			sb.WriteString("true")
		} else {
			sb.WriteString("false")
		}
	case v.IsInt():
		sb.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		sb.WriteString(pyFloat(v.AsFloat()))
	case v.IsString():
		writePyString(sb, v.AsString(), opt.ensureASCII)
	case v.IsList():
		items := v.AsList().Items
		if len(items) == 0 {
			sb.WriteString("[]")
			return nil
		}
		sb.WriteByte('[')
		for i, item := range items {
			if i > 0 {
				sb.WriteString(opt.itemSep)
			}
			newline(depth + 1)
			if err := encodeJSON(sb, item, opt, depth+1); err != nil {
				return err
			}
		}
		newline(depth)
		sb.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		if d.Len() == 0 {
			sb.WriteString("{}")
			return nil
		}
		keys := d.OrderedKeys()
		if opt.sortKeys {
			keys = append([]string(nil), keys...)
			sort.Strings(keys)
		}
		sb.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				sb.WriteString(opt.itemSep)
			}
			newline(depth + 1)
			writePyString(sb, k, opt.ensureASCII)
			sb.WriteString(opt.keySep)
			val, _ := d.Get(k)
			if err := encodeJSON(sb, val, opt, depth+1); err != nil {
				return err
			}
		}
		newline(depth)
		sb.WriteByte('}')
	default:
		return fmt.Errorf("object of kind %s is not JSON serializable", v.String())
	}
	return nil
}

// pyFloat formats f as Python's float repr (which json.dumps uses).
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	i := strings.LastIndexByte(e, 'e')
	exp, _ := strconv.Atoi(e[i+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// writePyString writes s as a JSON string the way Python's json.dumps does.
func writePyString(sb *strings.Builder, s string, ensureASCII bool) {
	const hex = "0123456789abcdef"
	u4 := func(r rune) {
		sb.WriteString(`\u`)
		sb.WriteByte(hex[r>>12&0xf])
		sb.WriteByte(hex[r>>8&0xf])
		sb.WriteByte(hex[r>>4&0xf])
		sb.WriteByte(hex[r&0xf])
	}
	sb.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				sb.WriteString(`\"`)
			case '\\':
				sb.WriteString(`\\`)
			case '\n':
				sb.WriteString(`\n`)
			case '\r':
				sb.WriteString(`\r`)
			case '\t':
				sb.WriteString(`\t`)
			case '\b':
				sb.WriteString(`\b`)
			case '\f':
				sb.WriteString(`\f`)
			default:
				if c < 0x20 {
					u4(rune(c))
				} else {
					sb.WriteByte(c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !ensureASCII:
			sb.WriteString(s[i : i+size])
		case r >= 0x10000:
			r -= 0x10000
			u4(0xd800 | (r>>10)&0x3ff)
			u4(0xdc00 | r&0x3ff)
		default:
			u4(r)
		}
		i += size
	}
	sb.WriteByte('"')
}
