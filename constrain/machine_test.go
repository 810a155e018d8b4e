package constrain

import (
	"encoding/json"
	"strings"
	"testing"
)

func feedAll(s *Schema, doc string) (valid, done bool) {
	m := s.NewMachine()
	return m.Feed([]byte(doc)), m.Done()
}

func TestMachine(t *testing.T) {
	weather := `{"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
		"unit": {"enum": ["celsius", "fahrenheit"]}, "tags": {"type": "array", "items": {"type": "string"}},
		"ok": {"type": "boolean"}, "extra": {"type": "null"}, "t": {"type": "number"}}, "required": ["city", "days"]}`
	cases := []struct {
		name, schema, doc string
		valid, done       bool
	}{
		{"object any", "", `{"a": [1, 2.5e-3, "x\u00e9\n", true, false, null, {}]}`, true, true},
		{"prefix", "", `{"a": [1, 2`, true, false},
		{"trailing comma", "", `{"a": 1,}`, false, false},
		{"bad literal", "", `{"a": tru }`, false, false},
		{"leading zero", "", `{"a": 01}`, false, false},
		{"unescaped newline", "", "{\"a\": \"x\ny\"}", false, false},
		{"bad escape", "", `{"a": "\x"}`, false, false},
		{"after end", "", `{} x`, false, true},
		{"schema ok", weather, `{"city": "Paris", "days": 3, "unit": "celsius", "tags": ["a"], "ok": true, "extra": null, "t": -1.5}`, true, true},
		{"schema any order", weather, `{"days": 3, "city": "Paris"}`, true, true},
		{"schema missing required", weather, `{"city": "Paris"}`, false, false},
		{"schema unknown key", weather, `{"town": "Paris"}`, false, false},
		{"schema repeated key", weather, `{"city": "a", "city": "b"}`, false, false},
		{"schema wrong type", weather, `{"city": 3}`, false, false},
		{"schema integer", weather, `{"city": "a", "days": 3.5}`, false, false},
		{"schema enum", weather, `{"city": "a", "days": 1, "unit": "kelvin"}`, false, false},
		{"schema enum prefix", weather, `{"city": "a", "days": 1, "unit": "cel`, true, false},
		{"number enum", `{"enum": [1, 12, "x"]}`, `12`, true, true},
		{"const", `{"type": "object", "properties": {"v": {"const": "a"}}, "required": ["v"]}`, `{"v": "a"}`, true, true},
		{"array items", `{"type": "array", "items": {"type": "integer"}}`, `[1, 2, 3]`, true, true},
		{"array wrong item", `{"type": "array", "items": {"type": "integer"}}`, `[1, "2"]`, false, false},
		{"string cap", "", `{"a": "` + strings.Repeat("x", maxStrLen+1) + `"}`, false, false},
		{"string at cap", "", `{"a": "` + strings.Repeat("x", maxStrLen) + `"}`, true, true},
		{"too much white space", "", "{" + string(make([]byte, 0)) + "                    }", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := AnyObject()
			if c.schema != "" {
				var err error
				if s, err = Compile([]byte(c.schema)); err != nil {
					t.Fatal(err)
				}
			}
			valid, done := feedAll(s, c.doc)
			if valid != c.valid || (valid && done != c.done) {
				t.Fatalf("%s: valid %v done %v, want %v %v", c.doc, valid, done, c.valid, c.done)
			}
			// Every complete document the machine accepts is valid JSON.
			if valid && done && !json.Valid([]byte(c.doc)) {
				t.Fatalf("accepted invalid JSON %s", c.doc)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, s := range []string{
		`{"$ref": "#/x"}`, `{"$ref": "other.json#/a"}`, `{"$ref": "#/$defs/missing", "$defs": {}}`,
		`{"allOf": [{}]}`, `{"anyOf": []}`, `{"anyOf": [{"type": "object"}, {"type": "object", "properties": {"a": {}}}]}`,
		`{"oneOf": [{"type": "string"}, {"enum": ["a"]}]}`, `{"type": []}`, `{"type": ["string", "date"]}`, `{"type": "date"}`,
		`{"type": "object", "properties": {"a": {}}, "required": ["b"]}`, `[1]`, `{"enum": []}`,
		`{"type": "object", "properties": {"a\"b": {}}}`,
	} {
		if _, err := Compile([]byte(s)); err == nil {
			t.Errorf("Compile(%s) succeeded, want an error", s)
		}
	}
}

func TestFilterMasksAndFinishes(t *testing.T) {
	vocab := Vocab{[]byte(`{"`), []byte(`a`), []byte(`":`), []byte(` 1`), []byte(`}`), []byte(`x`), nil, []byte(`"}`)}
	s, err := Compile([]byte(`{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	f := NewFilter(s, vocab, []int{6})
	for _, step := range []struct {
		take    int
		allowed []int
	}{{0, []int{0}}, {1, []int{1}}, {2, []int{2}}, {3, []int{3}}, {4, []int{4}}} {
		logits := make([]float32, len(vocab))
		f.Mask(logits)
		var got []int
		for id, l := range logits {
			if l == 0 {
				got = append(got, id)
			}
		}
		if len(got) != len(step.allowed) || got[0] != step.allowed[0] {
			t.Fatalf("before token %d: allowed %v, want %v", step.take, got, step.allowed)
		}
		f.Accept(step.take)
	}
	if !f.Done() {
		t.Fatal("document not done")
	}
	logits := make([]float32, len(vocab))
	f.Mask(logits)
	if logits[6] != 0 || logits[4] == 0 {
		t.Fatalf("after the document only EOS may follow: %v", logits)
	}
}
