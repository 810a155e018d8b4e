package cuda

// SetAttentionLegacy makes, for a benchmark, attention_fa_tiled run ggml's
// tiled flash attention (passes of 64 rows and more) instead of the
// row-tiled kernels; restore puts the default back.
func SetAttentionLegacy(legacy bool) (restore func()) {
	l := attnLegacy
	attnLegacy = legacy
	return func() { attnLegacy = l }
}
