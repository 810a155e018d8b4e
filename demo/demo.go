// Package demo carries apr's built-in demo model: the tiny Qwen2 coder from
// ../shared, quantized by llama.cpp to Q4_K_M, embedded in the binary so that
// `apr run PROMPT` works on a fresh clone with no download.
package demo

import _ "embed"

// Name is how commands refer to the built-in model.
const Name = "builtin:qwen2-tiny-coder-q4_k_m"

// GGUF is the model file's bytes.
//
//go:embed qwen2-tiny-coder-q4_k_m.gguf
var GGUF []byte
