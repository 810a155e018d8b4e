package server

import (
	"bytes"

	"github.com/apr-llm/apr/constrain"
)

// responseFilter builds the constrained decoder for response_format:
// json_object allows any JSON object, json_schema the documents of its
// schema; text (or no type) needs none.
func (s *Server) responseFilter(rf *responseFormat) (TokenFilter, error) {
	var schema *constrain.Schema
	switch rf.Type {
	case "", "text":
		return nil, nil
	case "json_object":
		schema = constrain.AnyObject()
	case "json_schema":
		if rf.JSONSchema == nil {
			return nil, invalid("response_format.json_schema", "response_format json_schema needs a json_schema object")
		}
		var err error
		if schema, err = constrain.Compile(rf.JSONSchema.Schema); err != nil {
			return nil, invalid("response_format.json_schema.schema", "%v", err)
		}
	default:
		return nil, invalid("response_format.type", "response_format type %q is not supported (want text, json_object or json_schema)", rf.Type)
	}
	return constrain.NewFilter(schema, s.vocab(), s.model.EOS()), nil
}

// vocab is every token's bytes, built once, leaving out special tokens and
// control markers (<|fim_middle|>, <tool_call>) that the tokenizer does not
// mark special but that would never belong in a JSON answer.
func (s *Server) vocab() constrain.Vocab {
	s.vocabOnce.Do(func() {
		tok := s.model.Tokenizer
		v := make(constrain.Vocab, s.model.Config.VocabSize)
		for id := range v {
			b := tok.TokenBytes(id)
			if tok.IsSpecial(id) || bytes.Contains(b, []byte("<|")) || bytes.Contains(b, []byte("tool_call>")) {
				continue
			}
			v[id] = b
		}
		s.vocabBytes = v
	})
	return s.vocabBytes
}
