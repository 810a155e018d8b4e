package cuda

import (
	"slices"
	"testing"
)

// TestPlanMatvec checks the one-row split of the Qwen2.5-Coder-1.5B
// Q4_K_M shapes and of extreme ones under each mvUnits mode: groups of 4
// rows where there are rows enough (2 for one-pass rows by pass), items
// by unit where they save a quarter of the items (blocks of about mvItems
// items), the terms within shared memory.
func TestPlanMatvec(t *testing.T) {
	defer func(u, n, r int) { mvUnits, mvItems, mvOnePassRW = u, n, r }(mvUnits, mvItems, mvOnePassRW)
	mvItems, mvOnePassRW = 3, 2
	p := func(rw, rpc, warps int) matvecPlan { return matvecPlan{rw: rw, rpc: rpc, warps: warps} }
	for _, tc := range []struct {
		what          string
		rows, nb, per int
		// the plans of mvUnits 0 (by pass), 1 (by unit where it saves
		// a quarter of the items) and 2 (by unit)
		plans [3]matvecPlan
	}{
		{"ffn gate/up Q4_K 17920x1536", 17920, 6, 8, [3]matvecPlan{p(2, 16, 8), p(4, 16, 3), p(4, 16, 3)}},
		{"output Q6_K 151936x1536", 151936, 6, 4, [3]matvecPlan{p(4, 16, 8), p(4, 8, 3), p(4, 8, 3)}},
		{"ffn down Q6_K 1536x8960", 1536, 35, 4, [3]matvecPlan{p(4, 4, 9), p(4, 4, 9), p(4, 4, 9)}},
		{"attn q+k Q4_K 1792x1536", 1792, 6, 8, [3]matvecPlan{p(1, 8, 8), p(1, 4, 3), p(1, 4, 3)}},
		{"attn v Q6_K 256x1536", 256, 6, 4, [3]matvecPlan{p(1, 4, 8), p(1, 2, 3), p(1, 2, 3)}},
		{"ffn gate/up Q8_0 17920x1536", 17920, 48, 32, [3]matvecPlan{p(4, 16, 8), p(4, 8, 3), p(4, 8, 3)}},
		{"one row", 1, 1, 32, [3]matvecPlan{p(1, 8, 8), p(1, 1, 1), p(1, 1, 1)}},
		{"long rows Q8_0", 100000, 20000, 32, [3]matvecPlan{p(1, 1, 32), p(1, 1, 32), p(1, 1, 32)}},
		{"0.5B ffn gate/up Q5_0 9728x896", 9728, 28, 32, [3]matvecPlan{p(2, 16, 8), p(2, 16, 8), p(4, 16, 4)}},
		{"0.5B output Q8_0 151936x896", 151936, 28, 32, [3]matvecPlan{p(2, 16, 8), p(2, 16, 8), p(4, 16, 4)}},
		{"0.5B ffn down Q6_K 896x4864", 896, 19, 4, [3]matvecPlan{p(2, 4, 10), p(2, 4, 10), p(2, 2, 5)}},
	} {
		byPass := tc.plans[0]
		for mode, want := range tc.plans {
			mvUnits = mode
			want.units = mode == 2 || mode == 1 && want != byPass
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
			if arg := got.arg(); arg&7 != got.rw || (arg&8 != 0) != got.units {
				t.Errorf("%s: kernel parameter %d for %+v", tc.what, arg, got)
			}
		}
	}
}

// TestSetTune checks that APR_CUDA_TUNE's syntax sets the one-row product
// choices the benchmarks compare, and that restore puts them back.
func TestSetTune(t *testing.T) {
	before := []int{mvItems, mvPassItems, mvOnePassRW, mvTargetWarps, mvUnits, mvSpread}
	restore := SetTune("mvitems=5,passitems=2,onepassrw=1,mvtarget=512,allunits,spread=3,nopipe")
	got := []int{mvItems, mvPassItems, mvOnePassRW, mvTargetWarps, mvUnits, mvSpread}
	if want := []int{5, 2, 1, 512, 2, 3}; !slices.Equal(got, want) || pipeline {
		t.Errorf("after SetTune: %v, pipeline %v; want %v, false", got, pipeline, want)
	}
	restore()
	if got := []int{mvItems, mvPassItems, mvOnePassRW, mvTargetWarps, mvUnits, mvSpread}; !slices.Equal(got, before) || !pipeline {
		t.Errorf("after restore: %v, pipeline %v; want %v, true", got, pipeline, before)
	}
}
