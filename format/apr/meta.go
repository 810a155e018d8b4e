package apr

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/apr-llm/apr/format/gguf"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/tokenizer"
)

// Metadata is the JSON metadata block of an APR file: everything needed to
// run the model without any other file.
type Metadata struct {
	Architecture string      `json:"architecture"`
	Config       Config      `json:"config"`
	Tokenizer    Tokenizer   `json:"tokenizer"`
	ChatTemplate string      `json:"chat_template,omitempty"`
	Generation   *Generation `json:"generation,omitempty"`
	Provenance   Provenance  `json:"provenance"`
	// GGUF holds metadata of a GGUF source that the fields above do not
	// carry (general.name, tokenizer.ggml.padding_token_id, ...), so that
	// GGUF -> APR -> GGUF keeps the metadata.
	GGUF []GGUFValue `json:"gguf_metadata,omitempty"`
}

// Config is the model's hyperparameters (Hugging Face config.json names).
type Config struct {
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	NumLayers         int     `json:"num_hidden_layers"`
	NumHeads          int     `json:"num_attention_heads"`
	NumKVHeads        int     `json:"num_key_value_heads"`
	HeadDim           int     `json:"head_dim"`
	VocabSize         int     `json:"vocab_size"`
	MaxPositions      int     `json:"max_position_embeddings"`
	RopeTheta         float64 `json:"rope_theta"`
	RMSNormEps        float64 `json:"rms_norm_eps"`
	TieWordEmbeddings bool    `json:"tie_word_embeddings"`
	AttentionBias     bool    `json:"attention_bias"`
	BOSTokenID        int     `json:"bos_token_id"`
	EOSTokenIDs       []int   `json:"eos_token_ids"`
}

// Tokenizer is the full byte-level BPE tokenizer (tokenizer.Spec).
type Tokenizer struct {
	Type         string       `json:"type"` // "byte_level_bpe"
	Pre          string       `json:"pre"`
	NFC          bool         `json:"nfc"`
	Tokens       []string     `json:"tokens"`
	Merges       []string     `json:"merges"`
	Added        []AddedToken `json:"added_tokens"`
	BOS          int          `json:"bos"`
	EOS          []int        `json:"eos"`
	AddBOS       bool         `json:"add_bos"`
	IgnoreMerges bool         `json:"ignore_merges"`
}

// AddedToken is tokenizer.AddedToken.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	Special    bool   `json:"special"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	SingleWord bool   `json:"single_word"`
	Normalized bool   `json:"normalized"`
}

// Generation is the model's default sampling settings (unset: absent).
type Generation struct {
	DoSample      *bool    `json:"do_sample,omitempty"`
	Temperature   *float64 `json:"temperature,omitempty"`
	TopK          *int     `json:"top_k,omitempty"`
	TopP          *float64 `json:"top_p,omitempty"`
	MinP          *float64 `json:"min_p,omitempty"`
	RepeatPenalty *float64 `json:"repetition_penalty,omitempty"`
	EOSTokenIDs   []int    `json:"eos_token_ids,omitempty"`
}

// Provenance records where the weights came from.
type Provenance struct {
	Source       string `json:"source"`        // path of the converted file or folder
	SourceFormat string `json:"source_format"` // "safetensors", "gguf" or "apr"
	SourceSHA256 string `json:"source_sha256"` // of the weight files, in order
	Origin       string `json:"origin"`        // format the weights were first read from
	Converter    string `json:"converter"`     // converter name and version
}

// GGUFValue is one GGUF metadata entry: Type is the GGUF type name
// ("uint32", "string", ...; "array" with Elem for arrays of scalars).
type GGUFValue struct {
	Key   string          `json:"key"`
	Type  string          `json:"type"`
	Elem  string          `json:"elem,omitempty"`
	Value json.RawMessage `json:"value"`
}

// NewMetadata builds the metadata of a model.
func NewMetadata(cfg *model.Config, spec *tokenizer.Spec, chatTemplate string, gen *model.Generation, prov Provenance) *Metadata {
	md := &Metadata{
		Architecture: string(cfg.Arch),
		Config: Config{
			HiddenSize: cfg.HiddenSize, IntermediateSize: cfg.IntermediateSize, NumLayers: cfg.NumLayers,
			NumHeads: cfg.NumHeads, NumKVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim, VocabSize: cfg.VocabSize,
			MaxPositions: cfg.MaxPositions, RopeTheta: cfg.RopeTheta, RMSNormEps: cfg.RMSNormEps,
			TieWordEmbeddings: cfg.TieWordEmbeddings, AttentionBias: cfg.AttentionBias,
			BOSTokenID: cfg.BOSTokenID, EOSTokenIDs: cfg.EOSTokenIDs,
		},
		Tokenizer: Tokenizer{
			Type: "byte_level_bpe", Pre: spec.Pre, NFC: spec.NFC, Tokens: spec.Tokens, Merges: spec.Merges,
			BOS: spec.BOS, EOS: spec.EOS, AddBOS: spec.AddBOS, IgnoreMerges: spec.IgnoreMerges,
			Added: make([]AddedToken, len(spec.Added)),
		},
		ChatTemplate: chatTemplate,
		Provenance:   prov,
	}
	for i, a := range spec.Added {
		md.Tokenizer.Added[i] = AddedToken(a)
	}
	if gen != nil && !isZeroGeneration(gen) {
		md.Generation = &Generation{DoSample: gen.DoSample, Temperature: gen.Temperature, TopK: gen.TopK,
			TopP: gen.TopP, MinP: gen.MinP, RepeatPenalty: gen.RepeatPenalty, EOSTokenIDs: gen.EOSTokenIDs}
	}
	return md
}

func isZeroGeneration(g *model.Generation) bool {
	return g.DoSample == nil && g.Temperature == nil && g.TopK == nil && g.TopP == nil && g.MinP == nil &&
		g.RepeatPenalty == nil && len(g.EOSTokenIDs) == 0
}

// ModelConfig returns the hyperparameters, validated.
func (md *Metadata) ModelConfig() (*model.Config, error) {
	c := md.Config
	cfg := &model.Config{
		HiddenSize: c.HiddenSize, IntermediateSize: c.IntermediateSize, NumLayers: c.NumLayers,
		NumHeads: c.NumHeads, NumKVHeads: c.NumKVHeads, HeadDim: c.HeadDim, VocabSize: c.VocabSize,
		MaxPositions: c.MaxPositions, RopeTheta: c.RopeTheta, RMSNormEps: c.RMSNormEps,
		TieWordEmbeddings: c.TieWordEmbeddings, AttentionBias: c.AttentionBias,
		BOSTokenID: c.BOSTokenID, EOSTokenIDs: c.EOSTokenIDs,
	}
	switch md.Architecture {
	case string(model.ArchQwen2):
		cfg.Arch = model.ArchQwen2
	case string(model.ArchLlama):
		cfg.Arch = model.ArchLlama
	default:
		return nil, fmt.Errorf("architecture %q is not supported (qwen2, llama)", md.Architecture)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// TokenizerSpec returns the tokenizer.
func (md *Metadata) TokenizerSpec() (tokenizer.Spec, error) {
	t := md.Tokenizer
	if t.Type != "byte_level_bpe" {
		return tokenizer.Spec{}, fmt.Errorf("tokenizer type %q is not byte_level_bpe", t.Type)
	}
	spec := tokenizer.Spec{Tokens: t.Tokens, Merges: t.Merges, Pre: t.Pre, NFC: t.NFC, BOS: t.BOS, EOS: t.EOS,
		AddBOS: t.AddBOS, IgnoreMerges: t.IgnoreMerges, Added: make([]tokenizer.AddedToken, len(t.Added))}
	for i, a := range t.Added {
		spec.Added[i] = tokenizer.AddedToken(a)
	}
	return spec, nil
}

// ModelGeneration returns the sampling defaults (zero when none).
func (md *Metadata) ModelGeneration() model.Generation {
	g := md.Generation
	if g == nil {
		return model.Generation{}
	}
	return model.Generation{DoSample: g.DoSample, Temperature: g.Temperature, TopK: g.TopK, TopP: g.TopP,
		MinP: g.MinP, RepeatPenalty: g.RepeatPenalty, EOSTokenIDs: g.EOSTokenIDs}
}

// EncodeGGUF stores GGUF metadata entries; nested arrays are not kept.
func EncodeGGUF(kvs []gguf.KV) ([]GGUFValue, error) {
	var out []GGUFValue
	for _, kv := range kvs {
		v := GGUFValue{Key: kv.Key}
		val := kv.Value
		if a, ok := kv.Value.(gguf.Array); ok {
			if a.Type == gguf.TypeArray {
				continue
			}
			v.Type, v.Elem, val = "array", a.Type.String(), a.Values
		} else {
			v.Type = typeName(kv.Value)
		}
		raw, err := json.Marshal(val)
		if err != nil {
			return nil, fmt.Errorf("gguf metadata %s: %w", kv.Key, err)
		}
		v.Value = raw
		out = append(out, v)
	}
	return out, nil
}

func typeName(v any) string {
	switch v.(type) {
	case uint8:
		return "uint8"
	case int8:
		return "int8"
	case uint16:
		return "uint16"
	case int16:
		return "int16"
	case uint32:
		return "uint32"
	case int32:
		return "int32"
	case float32:
		return "float32"
	case bool:
		return "bool"
	case string:
		return "string"
	case uint64:
		return "uint64"
	case int64:
		return "int64"
	case float64:
		return "float64"
	}
	return fmt.Sprintf("%T", v)
}

// decodeScalar reads one JSON value as the GGUF type named typ.
func decodeScalar(typ string, raw json.RawMessage) (any, error) {
	var f float64
	var err error
	num := func(lo, hi float64) (float64, error) {
		if err := json.Unmarshal(raw, &f); err != nil {
			return 0, err
		}
		if f != math.Trunc(f) || f < lo || f > hi {
			return 0, fmt.Errorf("%v out of range for %s", f, typ)
		}
		return f, nil
	}
	switch typ {
	case "uint8":
		f, err = num(0, math.MaxUint8)
		return uint8(f), err
	case "int8":
		f, err = num(math.MinInt8, math.MaxInt8)
		return int8(f), err
	case "uint16":
		f, err = num(0, math.MaxUint16)
		return uint16(f), err
	case "int16":
		f, err = num(math.MinInt16, math.MaxInt16)
		return int16(f), err
	case "uint32":
		f, err = num(0, math.MaxUint32)
		return uint32(f), err
	case "int32":
		f, err = num(math.MinInt32, math.MaxInt32)
		return int32(f), err
	case "uint64":
		var u uint64
		err = json.Unmarshal(raw, &u)
		return u, err
	case "int64":
		var i int64
		err = json.Unmarshal(raw, &i)
		return i, err
	case "float32":
		err = json.Unmarshal(raw, &f)
		return float32(f), err
	case "float64":
		err = json.Unmarshal(raw, &f)
		return f, err
	case "bool":
		var b bool
		err = json.Unmarshal(raw, &b)
		return b, err
	case "string":
		var s string
		err = json.Unmarshal(raw, &s)
		return s, err
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}

// DecodeGGUF turns stored entries back into GGUF metadata.
func DecodeGGUF(vs []GGUFValue) ([]gguf.KV, error) {
	out := make([]gguf.KV, 0, len(vs))
	for _, v := range vs {
		if v.Type != "array" {
			x, err := decodeScalar(v.Type, v.Value)
			if err != nil {
				return nil, fmt.Errorf("gguf metadata %s: %w", v.Key, err)
			}
			out = append(out, gguf.KV{Key: v.Key, Value: x})
			continue
		}
		var items []json.RawMessage
		if err := json.Unmarshal(v.Value, &items); err != nil {
			return nil, fmt.Errorf("gguf metadata %s: %w", v.Key, err)
		}
		a, err := decodeArray(v.Elem, items)
		if err != nil {
			return nil, fmt.Errorf("gguf metadata %s: %w", v.Key, err)
		}
		out = append(out, gguf.KV{Key: v.Key, Value: a})
	}
	return out, nil
}

// decodeArray builds a typed gguf.Array from JSON items.
func decodeArray(elem string, items []json.RawMessage) (gguf.Array, error) {
	vals := make([]any, len(items))
	for i, it := range items {
		x, err := decodeScalar(elem, it)
		if err != nil {
			return gguf.Array{}, fmt.Errorf("element %d: %w", i, err)
		}
		vals[i] = x
	}
	switch elem {
	case "uint8":
		return gguf.Array{Type: gguf.TypeUint8, Values: typed[uint8](vals)}, nil
	case "int8":
		return gguf.Array{Type: gguf.TypeInt8, Values: typed[int8](vals)}, nil
	case "uint16":
		return gguf.Array{Type: gguf.TypeUint16, Values: typed[uint16](vals)}, nil
	case "int16":
		return gguf.Array{Type: gguf.TypeInt16, Values: typed[int16](vals)}, nil
	case "uint32":
		return gguf.Array{Type: gguf.TypeUint32, Values: typed[uint32](vals)}, nil
	case "int32":
		return gguf.Array{Type: gguf.TypeInt32, Values: typed[int32](vals)}, nil
	case "uint64":
		return gguf.Array{Type: gguf.TypeUint64, Values: typed[uint64](vals)}, nil
	case "int64":
		return gguf.Array{Type: gguf.TypeInt64, Values: typed[int64](vals)}, nil
	case "float32":
		return gguf.Array{Type: gguf.TypeFloat32, Values: typed[float32](vals)}, nil
	case "float64":
		return gguf.Array{Type: gguf.TypeFloat64, Values: typed[float64](vals)}, nil
	case "bool":
		return gguf.Array{Type: gguf.TypeBool, Values: typed[bool](vals)}, nil
	case "string":
		return gguf.Array{Type: gguf.TypeString, Values: typed[string](vals)}, nil
	}
	return gguf.Array{}, fmt.Errorf("unknown array element type %q", elem)
}

func typed[T any](vals []any) []T {
	out := make([]T, len(vals))
	for i, v := range vals {
		out[i] = v.(T)
	}
	return out
}
