package cuda

// SetAttnMMA sets, for a benchmark, whether prompt passes over a float32
// cache run attn_mma (with blocks of rows rows; 0: as they are) or
// attn_f32_rows; restore puts the defaults back.
func SetAttnMMA(on bool, rows int) (restore func()) {
	o, r := attnMMA, attnMMARows
	attnMMA = on
	if rows > 0 {
		attnMMARows = rows
	}
	return func() { attnMMA, attnMMARows = o, r }
}
