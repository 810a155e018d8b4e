// Package constrain restricts generation to valid JSON: a byte-level
// pushdown recognizer for JSON values, optionally shaped by a JSON schema
// (the subset OpenAI's structured outputs use: object properties and
// required keys, arrays, strings, numbers, integers, booleans, null, enum
// and const), and a token filter that masks every token whose bytes cannot
// extend the output toward a valid document.
package constrain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
	kEnum // one of fixed JSON texts
)

// node is one compiled schema.
type node struct {
	kind     kind
	props    []prop // kObject, in declared order
	required uint64 // bit i: props[i] is required
	extra    int    // kObject: schema index of additional properties, -1 for none allowed, -2 for any
	items    int    // kArray: schema index of items
	enum     []string
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
}

// maxProps is the number of properties one object schema may declare.
const maxProps = 64

// AnyObject is the schema of response_format json_object: any JSON object.
func AnyObject() *Schema {
	return &Schema{nodes: []node{{kind: kObject, extra: 1}, {kind: kAny}}}
}

// Compile compiles a JSON schema. Keywords outside the supported subset
// (descriptions, titles, formats, patterns, bounds) are ignored; an empty
// schema or {} accepts any JSON value; "$ref", "anyOf", "oneOf", "allOf"
// and type lists are refused with an error.
func Compile(raw []byte) (*Schema, error) {
	s := &Schema{}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		s.nodes = append(s.nodes, node{kind: kAny})
		return s, nil
	}
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
		return 0, fmt.Errorf("$ref %q is not supported", sj.Ref)
	case sj.AnyOf != nil || sj.OneOf != nil || sj.AllOf != nil:
		return 0, errors.New("anyOf, oneOf and allOf are not supported")
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
	if len(sj.Type) > 0 {
		if err := json.Unmarshal(sj.Type, &typ); err != nil {
			return 0, fmt.Errorf("type must be one string (type lists are not supported): %s", sj.Type)
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
