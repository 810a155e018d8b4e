package cuda_test

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
)

// launchStamps is one launch's blocks in a decode timeline: the first
// block's entry into pdl_start, the first and last release from its wait
// (global timer, ns), its blocks and shape.
type launchStamps struct {
	entry, first, last, end uint64
	blocks                  int
	shape                   uint64
	marks                   map[uint64]uint64 // phase: its last block's time
}

// launches groups a timeline's block records by launch, in the order
// their first blocks were released, with their warps' last end (0 for a
// kernel without tl_exit).
func launches(tl cuda.Timeline) []launchStamps {
	by := map[uint64]*launchStamps{}
	for _, r := range tl.Blocks {
		l := by[r.Grid]
		if l == nil {
			l = &launchStamps{entry: r.Entry, first: r.Release, last: r.Release, shape: r.Shape}
			by[r.Grid] = l
		}
		l.entry, l.first, l.last = min(l.entry, r.Entry), min(l.first, r.Release), max(l.last, r.Release)
		l.blocks++
	}
	for _, x := range tl.Exits {
		if l := by[x.Grid]; l != nil {
			l.end = max(l.end, x.Time)
		}
	}
	for _, m := range tl.Marks {
		if l := by[m.Grid]; l != nil {
			if l.marks == nil {
				l.marks = map[uint64]uint64{}
			}
			l.marks[m.Mark] = max(l.marks[m.Mark], m.Time)
		}
	}
	out := make([]launchStamps, 0, len(by))
	for _, l := range by {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b launchStamps) int { return cmp.Compare(a.first, b.first) })
	return out
}

// shapeString is a launch shape as grid x, grid y and block threads.
func shapeString(s uint64) string {
	return fmt.Sprintf("%dx%d/%d", s>>32, (s>>16)&0xffff, s&0xffff)
}

// TestDecodeTimeline prints where a decode step's time goes on the device:
// for every launch of a graph step of the synthetic GGUF models
// (medians of 8 steps, each timed alone), how long after its first block's
// release from pdl_start's wait (the kernel before it done) the next
// launch's first block was released (its share of the step), how early its
// first block had entered pdl_start (launched before the kernel before it
// ended), how far apart its blocks' releases were (waves), and, for the
// kernels that call tl_exit, from its first release to its last warp's end
// (work) and from there to the next launch's release (the boundary), and
// for the kernels that mark their phases (tl_mark, tl_mark_any: rmsnorm,
// the cluster and pipelined attentions, silu_quant) when the last block
// reached each. It needs a PTX built with
// -DAPR_TIMELINE (APR_CUDA_PTX) and APR_CUDA_TIMELINE set, else it skips;
// APR_TIMELINE_OUT names a folder for every launch as CSV. A measurement,
// not a check: the stamps perturb the step slightly (one atomic and four
// stores a block).
func TestDecodeTimeline(t *testing.T) {
	skipWithoutGPU(t)
	if os.Getenv("APR_CUDA_TIMELINE") == "" {
		t.Skip("APR_CUDA_TIMELINE not set (a measurement: needs a PTX built with -DAPR_TIMELINE)")
	}
	// APR_TIMELINE_POS moves the timed steps from position 64 to a later
	// one (e.g. 896, where the one-row attention's F16 chains dominate):
	// a prompt fills the cache up to it.
	at := 64
	if v := os.Getenv("APR_TIMELINE_POS"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 {
			t.Fatalf("APR_TIMELINE_POS=%q: want a position", v)
		}
		at = p
	}
	for _, i := range []int{3, 2, 1, 0} {
		s := synthCases[i]
		t.Run(s.name, func(t *testing.T) {
			g, cfg := loadSynth(t, i, max(512, at+64))
			defer g.Close()
			if at > 64 {
				rows := make([]cuda.Row, at)
				for p := range rows {
					rows[p] = cuda.Row{Token: (p * 7919) % cfg.VocabSize, Pos: p, Logits: p == at-1}
				}
				if err := g.Forward(rows, make([]float32, cfg.VocabSize)); err != nil {
					t.Fatal(err)
				}
			}
			for p := range 32 {
				if err := g.DecodeNoRead(9707, p+max(0, at-64)); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			// One step a timeline: a graph's launches keep their grid ids
			// from one replay to the next.
			const steps = 8
			var runs [][]launchStamps
			for p := at; p < at+steps; p++ {
				tl, ok, err := g.Timeline(func() error { return g.DecodeNoRead(9707, p) })
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					t.Skip("the loaded PTX has no timeline (build it with -DAPR_TIMELINE)")
				}
				runs = append(runs, launches(tl))
			}
			per := len(runs[0])
			for _, ls := range runs {
				if len(ls) != per {
					t.Fatalf("steps of %d and %d launches", per, len(ls))
				}
			}
			if dir := os.Getenv("APR_TIMELINE_OUT"); dir != "" {
				var b strings.Builder
				b.WriteString("launch,shape,blocks,entry_ns,first_ns,last_ns,end_ns\n")
				ls := runs[0]
				for k, l := range ls {
					end := int64(0)
					if l.end != 0 {
						end = int64(l.end - ls[0].first)
					}
					fmt.Fprintf(&b, "%d,%s,%d,%d,%d,%d,%d\n", k, shapeString(l.shape), l.blocks, int64(l.entry-ls[0].first),
						l.first-ls[0].first, l.last-ls[0].first, end)
				}
				if err := os.WriteFile(filepath.Join(dir, "timeline-"+s.name+".csv"), []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// A layer's launches repeat with period (per - extra) /
			// layers after the first (the embedding row); the extra ones
			// are that and the output norm, the LM head and the argmax's.
			layers := cfg.NumLayers
			extra := max(1, per%layers)
			for extra < per && (per-extra)%layers != 0 {
				extra++
			}
			period := (per - extra) / layers
			type acc struct {
				shape            string
				cost, lead, skew []float64
				work, gap        []float64
				marks            map[uint64][]float64
				blocks           int
			}
			pos := make([]acc, per)
			var span []float64
			for _, ls := range runs {
				span = append(span, float64(ls[per-1].first-ls[0].first)/1e3)
				for k, l := range ls {
					pos[k].shape, pos[k].blocks = shapeString(l.shape), l.blocks
					if k+1 < per {
						pos[k].cost = append(pos[k].cost, float64(ls[k+1].first-l.first)/1e3)
					}
					pos[k].lead = append(pos[k].lead, float64(int64(l.first-l.entry))/1e3)
					pos[k].skew = append(pos[k].skew, float64(l.last-l.first)/1e3)
					for m, at := range l.marks {
						if pos[k].marks == nil {
							pos[k].marks = map[uint64][]float64{}
						}
						pos[k].marks[m] = append(pos[k].marks[m], float64(int64(at-l.first))/1e3)
					}
					if l.end != 0 {
						pos[k].work = append(pos[k].work, float64(int64(l.end-l.first))/1e3)
						if k+1 < per {
							pos[k].gap = append(pos[k].gap, float64(int64(ls[k+1].first-l.end))/1e3)
						}
					}
				}
			}
			med := func(v []float64) float64 {
				if len(v) == 0 {
					return 0
				}
				w := slices.Clone(v)
				slices.Sort(w)
				return w[len(w)/2]
			}
			t.Logf("%s: %d launches a step, the first to the last released in %.1f us (median of %d steps), a layer every %d launches",
				s.name, per, med(span), steps, period)
			t.Logf("%-4s %-14s %6s %9s %9s %9s %9s %9s", "pos", "shape", "blocks", "share us", "lead us", "skew us",
				"work us", "gap us")
			// Layer positions: medians over the middle layers' launches.
			const first = 1
			for p := 0; p < period; p++ {
				var cost, lead, skew, work, gap []float64
				for l := 1; l < layers-1; l++ {
					a := pos[first+l*period+p]
					cost, lead, skew = append(cost, a.cost...), append(lead, a.lead...), append(skew, a.skew...)
					work, gap = append(work, a.work...), append(gap, a.gap...)
				}
				a := pos[first+period+p]
				t.Logf("L%-3d %-14s %6d %9.2f %9.2f %9.2f %9.2f %9.2f", p, a.shape, a.blocks, med(cost), med(lead), med(skew),
					med(work), med(gap))
				// Its phases (tl_mark), us after its first release, the
				// last block to reach each.
				marks := map[uint64][]float64{}
				for l := 1; l < layers-1; l++ {
					for m, v := range pos[first+l*period+p].marks {
						marks[m] = append(marks[m], v...)
					}
				}
				if len(marks) > 0 {
					ids := slices.Sorted(maps.Keys(marks))
					var b strings.Builder
					for _, m := range ids {
						fmt.Fprintf(&b, " %d: %.2f", m, med(marks[m]))
					}
					t.Logf("     phases (us after its release, last block):%s", b.String())
				}
			}
			for k := range per {
				if k >= first && k < first+period*layers {
					continue
				}
				a := pos[k]
				t.Logf("%-4d %-14s %6d %9.2f %9.2f %9.2f %9.2f %9.2f", k, a.shape, a.blocks, med(a.cost), med(a.lead),
					med(a.skew), med(a.work), med(a.gap))
			}
		})
	}
}
