package cuda

import "testing"

// TestPlanMatvec checks the one-row split of the Qwen2.5-Coder-1.5B
// Q4_K_M shapes and of extreme ones: groups of 4 rows where there are
// rows enough, every warp an item, the terms within shared memory.
func TestPlanMatvec(t *testing.T) {
	defer func(u int) { mvUnits = u }(mvUnits)
	for _, tc := range []struct {
		what          string
		rows, nb, per int
		want          matvecPlan
		warpsByPass   int // the warps with mvUnits off: (group, pass) items
	}{
		{"ffn gate/up Q4_K 17920x1536", 17920, 6, 8, matvecPlan{rw: 4, rpc: 32, warps: 6}, 8},
		{"output Q6_K 151936x1536", 151936, 6, 4, matvecPlan{rw: 4, rpc: 16, warps: 6}, 8},
		{"ffn down Q6_K 1536x8960", 1536, 35, 4, matvecPlan{rw: 4, rpc: 4, warps: 9}, 9},
		{"attn q+k Q4_K 1792x1536", 1792, 6, 8, matvecPlan{rw: 1, rpc: 8, warps: 6}, 8},
		{"attn v Q6_K 256x1536", 256, 6, 4, matvecPlan{rw: 1, rpc: 4, warps: 6}, 8},
		{"ffn gate/up Q8_0 17920x1536", 17920, 48, 32, matvecPlan{rw: 4, rpc: 16, warps: 6}, 8},
		{"one row", 1, 1, 32, matvecPlan{rw: 1, rpc: 8, warps: 1}, 8},
		{"long rows Q8_0", 100000, 20000, 32, matvecPlan{rw: 1, rpc: 1, warps: 32}, 32},
		// Units would save too few items: by pass unless mvUnits is 2.
		{"0.5B ffn gate/up Q5_0 9728x896", 9728, 28, 32, matvecPlan{rw: 4, rpc: 32, warps: 7}, 8},
		{"0.5B ffn down Q6_K 896x4864", 896, 19, 4, matvecPlan{rw: 2, rpc: 4, warps: 10}, 10},
	} {
		for _, mode := range []int{2, 1, 0} {
			mvUnits = mode
			want := tc.want
			want.units = mode == 2 || mode == 1 && 4*tc.want.warps <= 3*tc.warpsByPass
			if !want.units {
				want.warps = tc.warpsByPass
			}
			units := want.units
			got := planMatvec(tc.rows, tc.nb, tc.per)
			if got != want {
				t.Errorf("%s (mvUnits %d): planMatvec = %+v, want %+v", tc.what, mode, got, want)
			}
			if 4*got.rpc*tc.nb > mvSharedBytes && got.rpc > 1 {
				t.Errorf("%s: %d bytes of terms", tc.what, 4*got.rpc*tc.nb)
			}
			if got.rpc%got.rw != 0 || got.warps > 32 {
				t.Errorf("%s: inconsistent plan %+v", tc.what, got)
			}
			if arg := got.arg(); arg&7 != got.rw || (arg&8 != 0) != units {
				t.Errorf("%s: kernel parameter %d for %+v", tc.what, arg, got)
			}
		}
	}
}
