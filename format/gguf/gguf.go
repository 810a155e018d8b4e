// Package gguf reads and writes GGUF files (versions 2 and 3, little-endian),
// the format of llama.cpp.
//
// A File is mmapped read-only and validated completely before anything is
// trusted: every count, length and offset is checked against the bytes that
// are really there, so a damaged or hostile file gives one error naming the
// file and the problem, never a panic or a huge allocation.
//
// Two translations happen here and nowhere else in apr:
//
//   - GGML's dimension order (ne[0] is the row length) becomes apr's
//     canonical row-major shape by reversing the ne list (canonicalShape and
//     ggmlDims).
//   - GGML tensor names (blk.3.attn_q.weight) become Hugging Face names
//     (model.layers.3.self_attn.q_proj.weight) through one table (names.go),
//     used in both directions.
//
// For the llama architecture, llama.cpp's convert_hf_to_gguf.py permutes the
// rows of the Q and K projections (weights and biases) so that RoPE can rotate
// adjacent pairs; Tensors undoes that permutation (a copy of those tensors
// only) and the writer applies it again, so apr always sees the Hugging Face
// row order. Qwen2 files are not permuted.
//
// Open reads a file (and the siblings of a split model); Config,
// TokenizerSpec and ChatTemplate read the model from the metadata, never from
// the file name. Write produces GGUF v3 (Metadata builds the keys llama.cpp
// expects from a Config and a tokenizer Spec); writing what Open read gives
// back llama.cpp's bytes exactly.
package gguf

import (
	"errors"
	"fmt"
)

// Magic is the four bytes every GGUF file starts with.
const Magic = "GGUF"

// DefaultAlignment is the data alignment used when general.alignment is absent.
const DefaultAlignment = 32

// MaxDims is the largest number of dimensions a GGUF tensor may have.
const MaxDims = 4

// Well-known metadata keys.
const (
	KeyArchitecture = "general.architecture"
	KeyAlignment    = "general.alignment"
	KeySplitNo      = "split.no"
	KeySplitCount   = "split.count"
	KeySplitTensors = "split.tensors.count"
	KeyChatTemplate = "tokenizer.chat_template"
)

// ErrInvalid is wrapped by every error about a malformed or unsupported file.
var ErrInvalid = errors.New("invalid GGUF")

// ErrNotFound is wrapped by accessor errors for a missing metadata key.
var ErrNotFound = errors.New("metadata key not found")

// Type is the type tag of a GGUF metadata value.
type Type uint32

// The GGUF metadata value types.
const (
	TypeUint8   Type = 0
	TypeInt8    Type = 1
	TypeUint16  Type = 2
	TypeInt16   Type = 3
	TypeUint32  Type = 4
	TypeInt32   Type = 5
	TypeFloat32 Type = 6
	TypeBool    Type = 7
	TypeString  Type = 8
	TypeArray   Type = 9
	TypeUint64  Type = 10
	TypeInt64   Type = 11
	TypeFloat64 Type = 12
)

var typeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

// String returns the GGUF spelling of the type.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// size is the encoded size of a fixed-size type, 0 for string and array.
func (t Type) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// KV is one metadata entry. Value holds a Go value of the matching type:
// uint8, int8, uint16, int16, uint32, int32, float32, bool, string, uint64,
// int64, float64 or Array.
type KV struct {
	Key   string
	Value any
}

// Array is a metadata array. Values is a typed slice matching Type: []uint8,
// []int8, []uint16, []int16, []uint32, []int32, []float32, []bool, []string,
// []uint64, []int64, []float64, or []Array for arrays of arrays.
type Array struct {
	Type   Type
	Values any
}

// Len returns the number of elements.
func (a Array) Len() int {
	switch v := a.Values.(type) {
	case []uint8:
		return len(v)
	case []int8:
		return len(v)
	case []uint16:
		return len(v)
	case []int16:
		return len(v)
	case []uint32:
		return len(v)
	case []int32:
		return len(v)
	case []float32:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	case []uint64:
		return len(v)
	case []int64:
		return len(v)
	case []float64:
		return len(v)
	case []Array:
		return len(v)
	}
	return 0
}

// typeOf returns the GGUF type of a Go metadata value.
func typeOf(v any) (Type, bool) {
	switch v.(type) {
	case uint8:
		return TypeUint8, true
	case int8:
		return TypeInt8, true
	case uint16:
		return TypeUint16, true
	case int16:
		return TypeInt16, true
	case uint32:
		return TypeUint32, true
	case int32:
		return TypeInt32, true
	case float32:
		return TypeFloat32, true
	case bool:
		return TypeBool, true
	case string:
		return TypeString, true
	case Array:
		return TypeArray, true
	case uint64:
		return TypeUint64, true
	case int64:
		return TypeInt64, true
	case float64:
		return TypeFloat64, true
	}
	return 0, false
}
