package gguf

import (
	"strconv"
	"strings"

	"github.com/apr-llm/apr/model"
)

// globalNames maps GGML names of model-wide tensors to canonical names.
var globalNames = [][2]string{
	{"token_embd.weight", model.TokenEmbd},
	{"output_norm.weight", model.OutputNorm},
	{"output.weight", model.Output},
}

// layerNames maps the part after "blk.N." to the part after "model.layers.N.".
var layerNames = [][2]string{
	{"attn_norm.weight", model.AttnNorm},
	{"attn_q.weight", model.AttnQ},
	{"attn_k.weight", model.AttnK},
	{"attn_v.weight", model.AttnV},
	{"attn_q.bias", model.AttnQB},
	{"attn_k.bias", model.AttnKB},
	{"attn_v.bias", model.AttnVB},
	{"attn_output.weight", model.AttnO},
	{"ffn_norm.weight", model.FFNNorm},
	{"ffn_gate.weight", model.FFNGate},
	{"ffn_up.weight", model.FFNUp},
	{"ffn_down.weight", model.FFNDown},
}

const (
	ggmlLayerPrefix = "blk."
	hfLayerPrefix   = "model.layers."
)

// CanonicalName maps a GGML tensor name to apr's canonical (Hugging Face)
// name. Names outside the table are returned unchanged with ok false.
func CanonicalName(ggml string) (name string, ok bool) {
	return mapName(ggml, ggmlLayerPrefix, hfLayerPrefix, 0)
}

// GGMLName maps a canonical tensor name back to its GGML name. Names outside
// the table are returned unchanged with ok false.
func GGMLName(canonical string) (name string, ok bool) {
	return mapName(canonical, hfLayerPrefix, ggmlLayerPrefix, 1)
}

// mapName looks name up in column from of the tables and returns column 1-from.
func mapName(name, fromPrefix, toPrefix string, from int) (string, bool) {
	to := 1 - from
	for _, p := range globalNames {
		if p[from] == name {
			return p[to], true
		}
	}
	rest, found := strings.CutPrefix(name, fromPrefix)
	if !found {
		return name, false
	}
	num, suffix, found := strings.Cut(rest, ".")
	if !found || !isLayerNumber(num) {
		return name, false
	}
	for _, p := range layerNames {
		if p[from] == suffix {
			return toPrefix + num + "." + p[to], true
		}
	}
	return name, false
}

// isLayerNumber accepts a canonical decimal layer index (no sign, no leading zeros).
func isLayerNumber(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 31)
	return err == nil
}

// canonicalShape translates GGML dimensions (ne[0] is the row length) into
// apr's row-major shape by reversing them. This and ggmlDims are the only
// places where the dimension order changes.
func canonicalShape(ne []int) []int {
	shape := make([]int, len(ne))
	for i, d := range ne {
		shape[len(ne)-1-i] = d
	}
	return shape
}

// ggmlDims is the inverse of canonicalShape.
func ggmlDims(shape []int) []int { return canonicalShape(shape) }
