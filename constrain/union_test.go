package constrain

import (
	"encoding/json"
	"testing"
)

// TestUnionAndRef feeds documents to schemas with anyOf, oneOf and local
// $ref: valid ones must be accepted (and be JSON), invalid ones refused.
func TestUnionAndRef(t *testing.T) {
	nullable := `{"type": "object", "properties": {"name": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "required": ["name"]}`
	mixed := `{"oneOf": [{"type": "integer"}, {"type": "number"}, {"type": "boolean"}, {"enum": ["a", "b"]}, {"const": null},
		{"type": "array", "items": {"type": "integer"}}]}`
	defs := `{"type": "object", "properties": {"from": {"$ref": "#/$defs/point"}, "to": {"$ref": "#/definitions/point"}},
		"required": ["from", "to"],
		"$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}},
		"definitions": {"point": {"$ref": "#/$defs/point"}}}`
	tree := `{"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
		"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}}}`
	pydantic := `{"type": "object", "properties": {"pet": {"anyOf": [{"$ref": "#/$defs/Cat"}, {"type": "null"}]}}, "required": ["pet"],
		"$defs": {"Cat": {"type": "object", "properties": {"lives": {"type": "integer"}}, "required": ["lives"]}}}`
	typeList := `{"type": ["object", "null"], "properties": {"a": {"type": ["integer", "string"]}}, "required": ["a"]}`
	escaped := `{"$ref": "#/$defs/a~1b", "$defs": {"a/b": {"type": "boolean"}}}`
	cases := []struct {
		name, schema, doc string
		valid, done       bool
	}{
		{"nullable string", nullable, `{"name": "Ann"}`, true, true},
		{"nullable null", nullable, `{"name": null}`, true, true},
		{"nullable number", nullable, `{"name": 3}`, false, false},
		{"oneOf integer", mixed, `12`, true, false}, // a number may go on
		{"oneOf number", mixed, `-1.5e3`, true, false},
		{"oneOf boolean", mixed, `false`, true, true},
		{"oneOf enum", mixed, `"b"`, true, true},
		{"oneOf enum other", mixed, `"c"`, false, false},
		{"oneOf null", mixed, `null`, true, true},
		{"oneOf array", mixed, `[1, 2]`, true, true},
		{"oneOf array wrong", mixed, `[1, true]`, false, false},
		{"oneOf object", mixed, `{}`, false, false},
		{"defs", defs, `{"from": {"x": 1, "y": 2}, "to": {"x": 3, "y": 4}}`, true, true},
		{"defs missing key", defs, `{"from": {"x": 1}, "to": {"x": 3, "y": 4}}`, false, false},
		{"defs wrong type", defs, `{"from": {"x": 1, "y": 2}, "to": {"x": "3", "y": 4}}`, false, false},
		{"recursive", tree, `{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4, "kids": []}]}]}`, true, true},
		{"recursive wrong", tree, `{"v": 1, "kids": [{"w": 2}]}`, false, false},
		{"ref in anyOf", pydantic, `{"pet": {"lives": 9}}`, true, true},
		{"ref in anyOf null", pydantic, `{"pet": null}`, true, true},
		{"ref in anyOf wrong", pydantic, `{"pet": {"lives": "9"}}`, false, false},
		{"escaped pointer", escaped, `true`, true, true},
		{"type list object", typeList, `{"a": 1}`, true, true},
		{"type list inner string", typeList, `{"a": "x"}`, true, true},
		{"type list null", typeList, `null`, true, true},
		{"type list wrong", typeList, `{"a": true}`, false, false},
		{"type list missing", typeList, `{}`, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Compile([]byte(c.schema))
			if err != nil {
				t.Fatal(err)
			}
			valid, done := feedAll(s, c.doc)
			if valid != c.valid || (valid && done != c.done) {
				t.Fatalf("%s: valid %v done %v, want %v %v", c.doc, valid, done, c.valid, c.done)
			}
			if valid && done && !json.Valid([]byte(c.doc)) {
				t.Fatalf("accepted invalid JSON %s", c.doc)
			}
		})
	}
}
