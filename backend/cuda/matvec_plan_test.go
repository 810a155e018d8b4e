package cuda

import "testing"

// TestPlanMatvec checks the one-row split of the Qwen2.5-Coder-1.5B
// Q4_K_M shapes and of extreme ones: groups of 4 rows where there are
// rows enough, every warp an item, the terms within shared memory.
func TestPlanMatvec(t *testing.T) {
	for _, tc := range []struct {
		what          string
		rows, nb, per int
		want          matvecPlan
	}{
		{"ffn gate/up Q4_K 17920x1536", 17920, 6, 8, matvecPlan{rw: 4, rpc: 32, warps: 8}},
		{"output Q6_K 151936x1536", 151936, 6, 4, matvecPlan{rw: 4, rpc: 16, warps: 8}},
		{"ffn down Q6_K 1536x8960", 1536, 35, 4, matvecPlan{rw: 4, rpc: 4, warps: 9}},
		{"attn q+k Q4_K 1792x1536", 1792, 6, 8, matvecPlan{rw: 1, rpc: 8, warps: 8}},
		{"attn v Q6_K 256x1536", 256, 6, 4, matvecPlan{rw: 1, rpc: 4, warps: 8}},
		{"one row", 1, 1, 32, matvecPlan{rw: 1, rpc: 8, warps: 8}},
		{"long rows Q8_0", 100000, 20000, 32, matvecPlan{rw: 1, rpc: 1, warps: 32}},
	} {
		got := planMatvec(tc.rows, tc.nb, tc.per)
		if got != tc.want {
			t.Errorf("%s: planMatvec = %+v, want %+v", tc.what, got, tc.want)
		}
		if 4*got.rpc*tc.nb > mvSharedBytes && got.rpc > 1 {
			t.Errorf("%s: %d bytes of terms", tc.what, 4*got.rpc*tc.nb)
		}
		if got.rpc%got.rw != 0 || 32*got.warps < got.rpc || got.warps > 32 {
			t.Errorf("%s: inconsistent plan %+v", tc.what, got)
		}
	}
}
