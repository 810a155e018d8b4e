package cuda

// attnArgs are the shapes of attention.
type attnArgs struct {
	heads, kvHeads, dim, ctx int
	scale                    float32
	f16, fa                  bool
	qStride, slotBytes       int
	// pass is the pass's rows when the host knows them (0 in the decode
	// graph, which reads them from passp): 64 or more picks the tiled-only
	// flash-attention kernel.
	pass int
}

// attention runs m rows' causal attention: row r's query at q +
// r*qStride attends to its slot's cached positions 0..its position (info);
// out receives heads x dim floats per row; scores is scratch of m x heads x
// ctx floats. With fa (an F16 cache only) it is ggml's flash attention as
// cpu's FlashAttentionGGML computes it, for a pass of *passp rows (ggml's
// tiled kernel from 64 rows on).
func (d *Device) attention(q, kc, vc, out, scores, info, passp devptr, a attnArgs, m int) error {
	if a.fa && a.f16 {
		name := "attention_fa"
		if a.pass >= 64 {
			name = "attention_fa_tiled"
		}
		return d.launch2(name, a.heads, m, 256, 4*(2*a.dim+64+64*(a.dim+1)), q, kc, vc, out, scores, a.heads, a.kvHeads, a.dim,
			info, a.ctx, a.scale, passp, a.qStride, int64(a.slotBytes))
	}
	return d.launch2("attention", a.heads, m, 256, 4*a.dim, q, kc, vc, out, scores, a.heads, a.kvHeads, a.dim,
		info, a.ctx, a.scale, boolInt(a.f16), a.qStride, int64(a.slotBytes))
}
