package constrain

import (
	"encoding/json"
	"testing"
)

// FuzzMachine compiles fuzzed schemas and feeds fuzzed documents: nothing
// panics, and every document the machine accepts as complete is valid JSON.
func FuzzMachine(f *testing.F) {
	f.Add([]byte(`{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}`), []byte(`{"a": 12}`))
	f.Add([]byte(``), []byte(`{"x": [1, "y", null, {"z": -0.5e+3}]}`))
	f.Add([]byte(`{"enum": ["a", 1, null]}`), []byte(`"a"`))
	f.Fuzz(func(t *testing.T, schema, doc []byte) {
		s, err := Compile(schema)
		if err != nil {
			return
		}
		m := s.NewMachine()
		if m.Feed(doc) && m.Done() && !json.Valid(doc) {
			t.Fatalf("accepted invalid JSON %q under schema %q", doc, schema)
		}
	})
}
