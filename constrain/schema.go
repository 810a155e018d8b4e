// Package constrain restricts generation to valid JSON: a byte-level
// pushdown recognizer for JSON values, optionally shaped by a JSON schema
// (the subset OpenAI's structured outputs use: object properties and
// required keys, arrays, strings, numbers, integers, booleans, null, enum,
// const, anyOf/oneOf and local $ref), and a token filter that masks every token whose bytes cannot
// extend the output toward a valid document.
package constrain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// kind is a schema node's JSON type.
type kind uint8

const (
	kAny kind = iota // any JSON value
	kObject
	kArray
	kString
	kNumber
	kInteger
	kBoolean
	kNull
	kEnum  // one of fixed JSON texts
	kUnion // anyOf/oneOf: the alternative whose first byte the value starts with
)

// node is one compiled schema.
type node struct {
	kind     kind
	props    []prop // kObject, in declared order
	required uint64 // bit i: props[i] is required
	extra    int    // kObject: schema index of additional properties, -1 for none allowed, -2 for any
	items    int    // kArray: schema index of items
	enum     []string
	alts     []int // kUnion: schema indexes of the alternatives, which start with distinct bytes
}

// prop is one declared object property.
type prop struct {
	name   string
	schema int
}

// Schema is a compiled JSON schema; node 0 is the root. It is read-only and
// safe for concurrent use.
type Schema struct {
	nodes []node

	// Only while compiling: the root document, for local $ref, and the
	// node of each reference compiled so far (recursive schemas refer back).
	root []byte
	refs map[string]int
}

// maxProps is the number of properties one object schema may declare.
const maxProps = 64

// AnyObject is the schema of response_format json_object: any JSON object.
func AnyObject() *Schema {
	return &Schema{nodes: []node{{kind: kObject, extra: 1}, {kind: kAny}}}
}

// Compile compiles a JSON schema. Keywords outside the supported subset
// (descriptions, titles, formats, patterns, bounds) are ignored; an empty
// schema or {} accepts any JSON value. "anyOf" and "oneOf" are supported
// when their alternatives start with distinct bytes (different JSON types,
// as in a nullable field; enums and consts merge, and integer gives way to
// number), since the recognizer picks the alternative by the value's first
// byte; oneOf is read as anyOf. "$ref" may point into the document itself
// ("#", "#/$defs/X", "#/definitions/X", any JSON pointer), recursion
// included. A type list (["string", "null"]) is the anyOf of the schema
// with each type. "allOf" and remote references are refused with an error.
func Compile(raw []byte) (*Schema, error) {
	s := &Schema{}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		s.nodes = append(s.nodes, node{kind: kAny})
		return s, nil
	}
	s.root, s.refs = raw, map[string]int{"#": 0}
	defer func() { s.root, s.refs = nil, nil }()
	if _, err := s.compile(raw, 0); err != nil {
		return nil, fmt.Errorf("json schema: %w", err)
	}
	return s, nil
}

// schemaJSON is the part of a schema apr reads.
type schemaJSON struct {
	Type                 json.RawMessage            `json:"type"`
	Properties           json.RawMessage            `json:"properties"`
	Required             []string                   `json:"required"`
	AdditionalProperties json.RawMessage            `json:"additionalProperties"`
	Items                json.RawMessage            `json:"items"`
	Enum                 []json.RawMessage          `json:"enum"`
	Const                json.RawMessage            `json:"const"`
	Ref                  string                     `json:"$ref"`
	AnyOf                []json.RawMessage          `json:"anyOf"`
	OneOf                []json.RawMessage          `json:"oneOf"`
	AllOf                []json.RawMessage          `json:"allOf"`
	Defs                 map[string]json.RawMessage `json:"$defs"`
}

const maxDepth = 32

func (s *Schema) compile(raw []byte, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errors.New("nested deeper than 32 levels")
	}
	idx := len(s.nodes)
	s.nodes = append(s.nodes, node{kind: kAny})
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("true")) {
		return idx, nil
	}
	var sj schemaJSON
	if err := json.Unmarshal(raw, &sj); err != nil {
		return 0, fmt.Errorf("not a schema object: %w", err)
	}
	switch {
	case sj.Ref != "":
		s.nodes = s.nodes[:idx] // the reference's target takes its place
		return s.compileRef(sj.Ref, depth)
	case sj.AllOf != nil:
		return 0, errors.New("allOf is not supported")
	case sj.AnyOf != nil || sj.OneOf != nil:
		return idx, s.compileUnion(idx, append(sj.AnyOf, sj.OneOf...), depth)
	}
	if len(sj.Const) > 0 {
		sj.Enum = []json.RawMessage{sj.Const}
	}
	if sj.Enum != nil {
		if len(sj.Enum) == 0 || len(sj.Enum) > maxProps {
			return 0, fmt.Errorf("enum needs 1 to %d values, got %d", maxProps, len(sj.Enum))
		}
		n := node{kind: kEnum}
		for _, e := range sj.Enum {
			var buf bytes.Buffer
			if err := json.Compact(&buf, e); err != nil {
				return 0, fmt.Errorf("enum value: %w", err)
			}
			n.enum = append(n.enum, buf.String())
		}
		s.nodes[idx] = n
		return idx, nil
	}
	typ := ""
	if t := bytes.TrimSpace(sj.Type); len(t) > 0 && t[0] == '[' {
		alts, err := typeAlternatives(raw)
		if err != nil {
			return 0, err
		}
		return idx, s.compileUnion(idx, alts, depth)
	}
	if len(sj.Type) > 0 {
		if err := json.Unmarshal(sj.Type, &typ); err != nil {
			return 0, fmt.Errorf("type must be a string or a list of strings: %s", sj.Type)
		}
	}
	if typ == "" && sj.Properties != nil {
		typ = "object"
	}
	n := node{extra: -2}
	switch typ {
	case "":
		n.kind = kAny
	case "object":
		n.kind = kObject
	case "array":
		n.kind = kArray
	case "string":
		n.kind = kString
	case "number":
		n.kind = kNumber
	case "integer":
		n.kind = kInteger
	case "boolean":
		n.kind = kBoolean
	case "null":
		n.kind = kNull
	default:
		return 0, fmt.Errorf("unknown type %q", typ)
	}
	switch n.kind {
	case kObject:
		if err := s.compileObject(&n, &sj, depth); err != nil {
			return 0, err
		}
	case kArray:
		n.items = -1
		if len(sj.Items) > 0 {
			it, err := s.compile(sj.Items, depth+1)
			if err != nil {
				return 0, fmt.Errorf("items: %w", err)
			}
			n.items = it
		} else {
			n.items = len(s.nodes)
			s.nodes = append(s.nodes, node{kind: kAny})
		}
	}
	s.nodes[idx] = n
	return idx, nil
}

func (s *Schema) compileObject(n *node, sj *schemaJSON, depth int) error {
	if len(sj.Properties) > 0 {
		names, raws, err := orderedObject(sj.Properties)
		if err != nil {
			return fmt.Errorf("properties: %w", err)
		}
		if len(names) > maxProps {
			return fmt.Errorf("more than %d properties", maxProps)
		}
		for i, name := range names {
			if !plainKey(name) {
				return fmt.Errorf("property name %q needs escaping, which is not supported", name)
			}
			sub, err := s.compile(raws[i], depth+1)
			if err != nil {
				return fmt.Errorf("property %q: %w", name, err)
			}
			n.props = append(n.props, prop{name: name, schema: sub})
		}
	}
	for _, r := range sj.Required {
		found := false
		for i, p := range n.props {
			if p.name == r {
				n.required |= 1 << i
				found = true
			}
		}
		if !found {
			return fmt.Errorf("required property %q is not declared", r)
		}
	}
	ap := bytes.TrimSpace(sj.AdditionalProperties)
	switch {
	case bytes.Equal(ap, []byte("false")):
		n.extra = -1
	case len(ap) == 0 && len(n.props) > 0:
		// Structured outputs: declared properties only.
		n.extra = -1
	case len(ap) == 0 || bytes.Equal(ap, []byte("true")):
		n.extra = len(s.nodes)
		s.nodes = append(s.nodes, node{kind: kAny})
	default:
		sub, err := s.compile(ap, depth+1)
		if err != nil {
			return fmt.Errorf("additionalProperties: %w", err)
		}
		n.extra = sub
	}
	return nil
}

// plainKey reports whether name is written in JSON without escapes.
func plainKey(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// orderedObject returns an object's keys and values in written order.
func orderedObject(raw json.RawMessage) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	t, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, nil, errors.New("not an object")
	}
	var names []string
	var vals []json.RawMessage
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		if seen[key] {
			return nil, nil, fmt.Errorf("property %q twice", key)
		}
		seen[key] = true
		names = append(names, key)
		vals = append(vals, v)
	}
	return names, vals, nil
}

// compileRef compiles the schema a local reference points to, once: later
// references (and recursive ones) share its node.
func (s *Schema) compileRef(ref string, depth int) (int, error) {
	if i, ok := s.refs[ref]; ok {
		return i, nil
	}
	target, err := resolvePointer(s.root, ref)
	if err != nil {
		return 0, err
	}
	// compile puts the target's node at the next index; register it first
	// so that the target may refer to itself.
	s.refs[ref] = len(s.nodes)
	i, err := s.compile(target, depth+1)
	if err != nil {
		return 0, fmt.Errorf("$ref %q: %w", ref, err)
	}
	return i, nil
}

// resolvePointer returns the value a local reference ("#" and a JSON
// pointer) names in root.
func resolvePointer(root []byte, ref string) ([]byte, error) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("$ref %q: only references within the schema (#/...) are supported", ref)
	}
	cur := json.RawMessage(root)
	if ptr == "" {
		return cur, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("$ref %q: not a JSON pointer", ref)
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil {
			var arr []json.RawMessage
			i, aerr := strconv.Atoi(tok)
			if json.Unmarshal(cur, &arr) != nil || aerr != nil || i < 0 || i >= len(arr) {
				return nil, fmt.Errorf("$ref %q: %q not found", ref, tok)
			}
			cur = arr[i]
			continue
		}
		next, ok := obj[tok]
		if !ok {
			return nil, fmt.Errorf("$ref %q: %q not found", ref, tok)
		}
		cur = next
	}
	return cur, nil
}

// compileUnion compiles anyOf/oneOf alternatives into node idx: a kUnion
// whose alternatives start with distinct bytes, enums merged into one and
// integer absorbed by number; any alternative that accepts anything makes
// the node accept anything.
func (s *Schema) compileUnion(idx int, raws []json.RawMessage, depth int) error {
	if len(raws) == 0 {
		return errors.New("anyOf/oneOf needs at least one schema")
	}
	var alts []int
	var enum []string
	for i, r := range raws {
		a, err := s.compile(r, depth+1)
		if err != nil {
			return fmt.Errorf("anyOf/oneOf[%d]: %w", i, err)
		}
		n := &s.nodes[a]
		switch n.kind {
		case kAny:
			s.nodes[idx] = node{kind: kAny}
			return nil
		case kEnum:
			enum = append(enum, n.enum...)
			continue
		case kUnion:
			alts = append(alts, n.alts...)
			continue
		}
		alts = append(alts, a)
	}
	if len(enum) > 0 {
		if len(enum) > maxProps {
			return fmt.Errorf("anyOf/oneOf: more than %d enum values together", maxProps)
		}
		alts = append(alts, len(s.nodes))
		s.nodes = append(s.nodes, node{kind: kEnum, enum: enum})
	}
	// integer is a subset of number: keep number.
	hasNumber := slices.ContainsFunc(alts, func(a int) bool { return s.nodes[a].kind == kNumber })
	if hasNumber {
		alts = slices.DeleteFunc(alts, func(a int) bool { return s.nodes[a].kind == kInteger })
	}
	var seen [256]int
	for _, a := range alts {
		for c := range 256 {
			if !s.startsWith(a, byte(c)) {
				continue
			}
			if seen[c] != 0 {
				return fmt.Errorf("anyOf/oneOf: two alternatives can start with %q (alternatives must differ in JSON type; objects of different shapes are not supported)", rune(c))
			}
			seen[c] = a + 1
		}
	}
	if len(alts) == 1 {
		s.nodes[idx] = s.nodes[alts[0]]
		return nil
	}
	s.nodes[idx] = node{kind: kUnion, alts: alts}
	return nil
}

// startsWith reports whether a value of schema node i can start with c.
func (s *Schema) startsWith(i int, c byte) bool {
	n := &s.nodes[i]
	switch n.kind {
	case kAny:
		return c == '{' || c == '[' || c == '"' || c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f' || c == 'n'
	case kObject:
		return c == '{'
	case kArray:
		return c == '['
	case kString:
		return c == '"'
	case kNumber, kInteger:
		return c == '-' || c >= '0' && c <= '9'
	case kBoolean:
		return c == 't' || c == 'f'
	case kNull:
		return c == 'n'
	case kEnum:
		for _, e := range n.enum {
			if e != "" && e[0] == c {
				return true
			}
		}
	case kUnion:
		for _, a := range n.alts {
			if s.startsWith(a, c) {
				return true
			}
		}
	}
	return false
}

// typeAlternatives splits a schema whose type is a list into one schema per
// type, each keeping the other keywords.
func typeAlternatives(raw []byte) ([]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("not a schema object: %w", err)
	}
	var types []string
	if err := json.Unmarshal(obj["type"], &types); err != nil || len(types) == 0 {
		return nil, fmt.Errorf("type must be a string or a non-empty list of strings: %s", obj["type"])
	}
	alts := make([]json.RawMessage, len(types))
	for i, t := range types {
		one := maps.Clone(obj)
		var err error
		if one["type"], err = json.Marshal(t); err != nil {
			return nil, fmt.Errorf("type %q: %w", t, err)
		}
		if alts[i], err = json.Marshal(one); err != nil {
			return nil, fmt.Errorf("type %q: %w", t, err)
		}
	}
	return alts, nil
}
