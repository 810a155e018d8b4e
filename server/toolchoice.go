package server

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/apr-llm/apr/constrain"
)

// The markers around a Qwen2 tool call; a forced call starts the assistant
// turn with toolCallPrefix and ends with toolCallSuffix once the constrained
// JSON object is complete.
const (
	toolCallPrefix = "<tool_call>\n"
	toolCallSuffix = "\n</tool_call>"
)

// toolSpec is the part of a tools[] entry apr reads.
type toolSpec struct {
	Type     string `json:"type"`
	Function struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// toolChoice is a parsed tool_choice: mode is "auto", "none", "required" or
// "function" (then name is the forced function).
type toolChoice struct {
	mode string
	name string
}

// parseToolChoice reads tool_choice: absent or null is "auto"; the strings
// "auto", "none" and "required"; or {"type": "function", "function":
// {"name": X}}. "required" and a named function need tools, and the name
// must be one of them.
func parseToolChoice(raw json.RawMessage, tools []toolSpec) (toolChoice, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return toolChoice{mode: "auto"}, nil
	}
	var tc toolChoice
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &tc.mode); err != nil {
			return tc, invalid("tool_choice", "tool_choice: %v", err)
		}
		switch tc.mode {
		case "auto", "none":
			return tc, nil
		case "required":
		default:
			return tc, invalid("tool_choice", "tool_choice %q is not supported (want auto, none, required or a function)", tc.mode)
		}
	} else {
		var obj struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
			return tc, invalid("tool_choice", `tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}`)
		}
		tc = toolChoice{mode: "function", name: obj.Function.Name}
	}
	if len(tools) == 0 {
		return tc, invalid("tool_choice", "tool_choice %s needs tools", raw)
	}
	if tc.mode == "function" {
		found := false
		for _, t := range tools {
			found = found || t.Function.Name == tc.name
		}
		if !found {
			return tc, invalid("tool_choice", "tool_choice names function %q, which is not among the tools", tc.name)
		}
	}
	return tc, nil
}

// forced reports whether the model must call a tool.
func (tc toolChoice) forced() bool { return tc.mode == "required" || tc.mode == "function" }

// callSchema is the JSON schema of the forced call's body, {"name": ...,
// "arguments": ...}: the name is one of the tools' names (or the named
// function) and the arguments follow that tool's parameters schema where
// package constrain compiles it, else any JSON object.
func (tc toolChoice) callSchema(tools []toolSpec) (*constrain.Schema, error) {
	var names []string
	args := json.RawMessage(`{"type": "object"}`)
	for _, t := range tools {
		if tc.mode == "function" && t.Function.Name != tc.name {
			continue
		}
		names = append(names, t.Function.Name)
		if tc.mode == "function" && argumentsSchemaOK(t.Function.Parameters) {
			args = t.Function.Parameters
		}
	}
	if len(names) == 1 && tc.mode == "required" && argumentsSchemaOK(tools[0].Function.Parameters) {
		args = tools[0].Function.Parameters
	}
	nameJSON, err := json.Marshal(names)
	if err != nil {
		return nil, fmt.Errorf("tool names: %w", err)
	}
	raw := fmt.Sprintf(`{"type": "object", "properties": {"name": {"enum": %s}, "arguments": %s}, "required": ["name", "arguments"]}`, nameJSON, args)
	s, err := constrain.Compile([]byte(raw))
	if err != nil {
		return nil, invalid("tool_choice", "tool call schema: %v", err)
	}
	return s, nil
}

// argumentsSchemaOK reports whether params is an object schema that
// package constrain compiles.
func argumentsSchemaOK(params json.RawMessage) bool {
	if len(bytes.TrimSpace(params)) == 0 {
		return false
	}
	var probe struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(params, &probe) != nil || probe.Type != "object" {
		return false
	}
	_, err := constrain.Compile(params)
	return err == nil
}
