package trace

import (
	"math"
	"testing"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/internal/testref"
)

// probes fans one engine's events out to several recorders.
type probes []*Recorder

func (p probes) Brick(ev engine.BrickEvent) {
	for _, r := range p {
		r.Brick(ev)
	}
}

// bricksOf returns a recorder's brick lines.
func bricksOf(t *testing.T, r *Recorder) []BrickLine {
	t.Helper()
	var out []BrickLine
	for _, l := range r.Lines() {
		if b, ok := l.(BrickLine); ok {
			out = append(out, b)
		}
	}
	return out
}

func sameStats(a, b Stats) bool {
	close := func(x, y float64) bool { return math.Abs(x-y) <= 1e-4*(1+math.Abs(x)) }
	return a.N == b.N && a.NaN == b.NaN && a.Inf == b.Inf && close(a.Min, b.Min) && close(a.Max, b.Max) && close(a.Mean, b.Mean)
}

// TestRecorderAttributesBatchRows runs a prompt alone and then batched
// behind another sequence's prompt: the recorder of the batched sequence
// must see exactly its own rows, with the statistics of the solo run, and
// the other sequence's recorder only the other's rows.
func TestRecorderAttributesBatchRows(t *testing.T) {
	_, eng := openEngine(t, testref.ModelDir(t))
	prompts := testref.HFOutputs(t)
	a, b := prompts[0].TokenIDs, prompts[1].TokenIDs

	solo := eng.NewSequence(len(a) + 1)
	soloRec := NewRecorder(solo, LevelBrick)
	eng.SetProbe(soloRec)
	if _, err := eng.ForwardBatch([]engine.BatchEntry{{Seq: solo, Tokens: a}}); err != nil {
		t.Fatal(err)
	}

	seqA, seqB := eng.NewSequence(len(a)+1), eng.NewSequence(len(b)+1)
	recA, recB := NewRecorder(seqA, LevelBrick), NewRecorder(seqB, LevelBrick)
	layerA := NewRecorder(seqA, LevelLayer)
	eng.SetProbe(probes{recA, recB, layerA})
	_, err := eng.ForwardBatch([]engine.BatchEntry{{Seq: seqB, Tokens: b}, {Seq: seqA, Tokens: a}})
	eng.SetProbe(nil)
	if err != nil {
		t.Fatal(err)
	}

	want, got := bricksOf(t, soloRec), bricksOf(t, recA)
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("batched recorder kept %d bricks, solo run %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Brick != w.Brick || g.Layer != w.Layer || g.Rows != w.Rows || len(g.Outputs) != len(w.Outputs) {
			t.Fatalf("brick %d: %s@%d rows %d, solo %s@%d rows %d", i, g.Brick, g.Layer, g.Rows, w.Brick, w.Layer, w.Rows)
		}
		for k := range w.Outputs {
			if !sameStats(g.Outputs[k], w.Outputs[k]) {
				t.Fatalf("%s@%d output %d: batched %+v, solo %+v", g.Brick, g.Layer, k, g.Outputs[k], w.Outputs[k])
			}
		}
	}
	for _, l := range bricksOf(t, recB) {
		wantRows := len(b)
		if l.Brick == string(engine.BrickLMHead) || (l.Layer < 0 && l.Brick == string(engine.BrickNorm)) {
			wantRows = 1
		}
		if l.Rows != wantRows {
			t.Fatalf("other sequence's %s@%d has %d rows, want %d", l.Brick, l.Layer, l.Rows, wantRows)
		}
	}

	// Level layer: one line per decoder layer whose output is that layer's
	// last residual, then the final norm and lm_head bricks and the pass.
	layers := 0
	var lastResidual = map[int]Stats{}
	for _, l := range got {
		if l.Brick == string(engine.BrickResidual) {
			lastResidual[l.Layer] = l.Outputs[0]
		}
	}
	var pass *PassLine
	for _, l := range layerA.Lines() {
		switch l := l.(type) {
		case LayerLine:
			if l.Layer != layers || l.Bricks != 10 || l.Rows != len(a) || l.BatchRows != len(a)+len(b) || !sameStats(l.Output, lastResidual[l.Layer]) {
				t.Fatalf("layer line %+v, want layer %d of 10 bricks, %d rows, output %+v", l, layers, len(a), lastResidual[l.Layer])
			}
			layers++
		case PassLine:
			pass = &l
		}
	}
	if layers != len(lastResidual) || layers == 0 {
		t.Fatalf("%d layer lines, want %d", layers, len(lastResidual))
	}
	if pass == nil || pass.Rows != len(a) || pass.Pass != 0 {
		t.Fatalf("pass line %+v, want pass 0 of %d rows", pass, len(a))
	}
}

// TestParseLevel lists the accepted X-Trace-Level values.
func TestParseLevel(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Level
		wantErr bool
	}{
		{"", LevelNone, false}, {"none", LevelNone, false}, {"layer", LevelLayer, false},
		{"brick", LevelBrick, false}, {"token", LevelNone, true}, {"LAYER", LevelNone, true},
	} {
		got, err := ParseLevel(c.in)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("ParseLevel(%q) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.wantErr)
		}
	}
}
