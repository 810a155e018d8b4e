package cuda

import "testing"

// TestTermsSplit checks the split of a row's passes over blocks: every
// pass in exactly one block, no block without passes, and enough warps
// for the 1.5B ffn_down shape (1,536 rows, 9 passes of Q6_K) while a
// product with warps enough stays whole.
func TestTermsSplit(t *testing.T) {
	for _, tc := range []struct {
		rows, m, np, want int
	}{
		{1536, 8, 9, 9}, {1536, 32, 9, 5}, {896, 8, 5, 5}, {17920, 8, 1, 1}, {17920, 8, 5, 1}, {1, 2, 7, 7},
	} {
		splits, pps := termsSplit(tc.rows, tc.m, tc.np)
		if splits != tc.want {
			t.Errorf("termsSplit(%d, %d, %d) = %d splits, want %d", tc.rows, tc.m, tc.np, splits, tc.want)
		}
		if pps < 1 || splits*pps < tc.np || (splits-1)*pps >= tc.np {
			t.Errorf("termsSplit(%d, %d, %d) = %d splits of %d passes: not a cover of %d passes", tc.rows, tc.m, tc.np, splits, pps, tc.np)
		}
	}
}
