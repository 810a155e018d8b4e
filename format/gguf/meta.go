package gguf

import (
	"fmt"
	"math"
)

// meta is an ordered metadata set with lookups by key; File embeds it.
type meta struct {
	file  string // for error messages
	kvs   []KV
	index map[string]int
}

func newMeta(file string, kvs []KV) meta {
	m := meta{file: file, kvs: kvs, index: make(map[string]int, len(kvs))}
	for i, kv := range kvs {
		m.index[kv.Key] = i
	}
	return m
}

// KVs returns the metadata in file order. The slice must not be modified.
func (m *meta) KVs() []KV { return m.kvs }

// Has reports whether key is present.
func (m *meta) Has(key string) bool { _, ok := m.index[key]; return ok }

// Value returns the raw value of key (see KV for the Go types).
func (m *meta) Value(key string) (any, bool) {
	i, ok := m.index[key]
	if !ok {
		return nil, false
	}
	return m.kvs[i].Value, true
}

func (m *meta) lookup(key string) (any, error) {
	v, ok := m.Value(key)
	if !ok {
		return nil, fmt.Errorf("gguf: %s: %s: %w", m.file, key, ErrNotFound)
	}
	return v, nil
}

func (m *meta) wrongType(key string, v any, want string) error {
	return fmt.Errorf("gguf: %s: metadata %s is %s, want %s", m.file, key, describe(v), want)
}

func describe(v any) string {
	if a, ok := v.(Array); ok {
		return "array of " + a.Type.String()
	}
	if t, ok := typeOf(v); ok {
		return t.String()
	}
	return fmt.Sprintf("%T", v)
}

// String returns a string value.
func (m *meta) String(key string) (string, error) {
	v, err := m.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", m.wrongType(key, v, "string")
	}
	return s, nil
}

// Uint returns an integer value of any integer type that is not negative.
func (m *meta) Uint(key string) (uint64, error) {
	v, err := m.lookup(key)
	if err != nil {
		return 0, err
	}
	u, ok := asUint(v)
	if !ok {
		return 0, m.wrongType(key, v, "a non-negative integer")
	}
	return u, nil
}

// Int returns an integer value of any integer type that fits an int64.
func (m *meta) Int(key string) (int64, error) {
	v, err := m.lookup(key)
	if err != nil {
		return 0, err
	}
	i, ok := asInt(v)
	if !ok {
		return 0, m.wrongType(key, v, "an integer")
	}
	return i, nil
}

// Float returns a float32 or float64 value as float64.
func (m *meta) Float(key string) (float64, error) {
	v, err := m.lookup(key)
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, m.wrongType(key, v, "a float")
}

// Bool returns a bool value.
func (m *meta) Bool(key string) (bool, error) {
	v, err := m.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, m.wrongType(key, v, "bool")
	}
	return b, nil
}

// Array returns an array value.
func (m *meta) Array(key string) (Array, error) {
	v, err := m.lookup(key)
	if err != nil {
		return Array{}, err
	}
	a, ok := v.(Array)
	if !ok {
		return Array{}, m.wrongType(key, v, "an array")
	}
	return a, nil
}

// Strings returns an array of strings. The slice must not be modified.
func (m *meta) Strings(key string) ([]string, error) {
	a, err := m.Array(key)
	if err != nil {
		return nil, err
	}
	s, ok := a.Values.([]string)
	if !ok {
		return nil, m.wrongType(key, a, "an array of string")
	}
	return s, nil
}

// Ints returns an array of any integer type as ints; every element must fit.
func (m *meta) Ints(key string) ([]int, error) {
	a, err := m.Array(key)
	if err != nil {
		return nil, err
	}
	out := make([]int, a.Len())
	bad := func(i int) error {
		return fmt.Errorf("gguf: %s: metadata %s[%d] does not fit an int", m.file, key, i)
	}
	switch vs := a.Values.(type) {
	case []uint8:
		for i, v := range vs {
			out[i] = int(v)
		}
	case []int8:
		for i, v := range vs {
			out[i] = int(v)
		}
	case []uint16:
		for i, v := range vs {
			out[i] = int(v)
		}
	case []int16:
		for i, v := range vs {
			out[i] = int(v)
		}
	case []uint32:
		for i, v := range vs {
			out[i] = int(v)
		}
	case []int32:
		for i, v := range vs {
			out[i] = int(v)
		}
	case []uint64:
		for i, v := range vs {
			if v > uint64(maxInt) {
				return nil, bad(i)
			}
			out[i] = int(v)
		}
	case []int64:
		for i, v := range vs {
			if int64(int(v)) != v {
				return nil, bad(i)
			}
			out[i] = int(v)
		}
	default:
		return nil, m.wrongType(key, a, "an array of integers")
	}
	return out, nil
}

// Floats returns an array of float32 or float64 as float64s.
func (m *meta) Floats(key string) ([]float64, error) {
	a, err := m.Array(key)
	if err != nil {
		return nil, err
	}
	switch vs := a.Values.(type) {
	case []float32:
		out := make([]float64, len(vs))
		for i, v := range vs {
			out[i] = float64(v)
		}
		return out, nil
	case []float64:
		return append([]float64(nil), vs...), nil
	}
	return nil, m.wrongType(key, a, "an array of floats")
}

// intOr returns the integer at key as an int, def when absent, or an error
// for a wrong type or a value out of [0, max].
func (m *meta) intOr(key string, def, max int) (int, error) {
	if !m.Has(key) {
		return def, nil
	}
	u, err := m.Uint(key)
	if err != nil {
		return 0, err
	}
	if u > uint64(max) {
		return 0, fmt.Errorf("gguf: %s: metadata %s = %d is out of range (at most %d)", m.file, key, u, max)
	}
	return int(u), nil
}

func asUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	}
	if i, ok := asInt(v); ok && i >= 0 {
		return uint64(i), true
	}
	return 0, false
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}
