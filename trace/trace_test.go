package trace

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/internal/breakmodel"
	"github.com/apr-llm/apr/internal/enginetest"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/model"
	"github.com/apr-llm/apr/sample"
)

func openEngine(t *testing.T, path string) (*model.Model, *engine.Engine) {
	t.Helper()
	return enginetest.Open(t, path, nil)
}

// traceGeneration generates n greedy tokens from ids with a trace
// installed and parses the trace back.
func traceGeneration(t *testing.T, m *model.Model, eng *engine.Engine, ids []int, n int) *File {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, m.Path, m.Format, "cpu")
	eng.SetProbe(w)
	_, err := eng.NewSequence(len(ids)+n+1).Generate(context.Background(), ids, engine.GenerateOptions{
		MaxTokens: n, Sampler: sample.New(sample.Params{}), Decoder: m.Tokenizer.NewDecoder(),
	}, func(string) error { return nil })
	eng.SetProbe(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTraceOfGeneration: one pass line per forward pass, every layer's
// bricks in each, and the prefill's lm_head statistics equal those of
// transformers' logits for the same prompt.
func TestTraceOfGeneration(t *testing.T) {
	m, eng := openEngine(t, testref.ModelDir(t))
	ids := testref.HFOutputs(t)[0].TokenIDs
	f := traceGeneration(t, m, eng, ids, 4)
	if f.Header.Model != m.Path || f.Header.Format != "safetensors" || f.Header.Device != "cpu" {
		t.Errorf("header %+v", f.Header)
	}
	if len(f.Passes) != 4 {
		t.Fatalf("%d passes, want 4 (the prompt and 3 generated tokens fed back)", len(f.Passes))
	}
	for i, p := range f.Passes {
		want := 1
		if i == 0 {
			want = len(ids)
		}
		if p.Pass != i || p.Rows != want || p.NaN != 0 || p.Inf != 0 || p.FirstBad != "" {
			t.Errorf("pass line %+v, want pass %d of %d rows, all finite", p, i, want)
		}
	}
	perLayer := map[[2]int]int{}
	sampling := 0
	var head *BrickLine
	for i, b := range f.Bricks {
		if b.Layer >= 0 {
			perLayer[[2]int{b.Pass, b.Layer}]++
		}
		if b.Brick == string(engine.BrickSampling) {
			sampling++
		}
		if b.Pass == 0 && b.Brick == string(engine.BrickLMHead) {
			head = &f.Bricks[i]
		}
	}
	for p := 0; p < 4; p++ {
		for l := 0; l < m.Config.NumLayers; l++ {
			if got := perLayer[[2]int{p, l}]; got != 10 {
				t.Errorf("pass %d layer %d: %d bricks, want 10", p, l, got)
			}
		}
	}
	if sampling != 4 {
		t.Errorf("%d sampling lines, want 4", sampling)
	}
	if head == nil || len(head.Outputs) != 1 {
		t.Fatal("no lm_head line in the prefill pass")
	}
	ref := Summarize(testref.HFLogitsPrompt0(t))
	got := head.Outputs[0]
	if got.N != ref.N || math.Abs(got.Max-ref.Max) > 1e-2*math.Abs(ref.Max) || math.Abs(got.Min-ref.Min) > 1e-2*math.Abs(ref.Min) ||
		math.Abs(got.Mean-ref.Mean) > 1e-2*(ref.Max-ref.Min) {
		t.Errorf("prefill logits in the trace %+v, transformers' %+v", got, ref)
	}
}

// TestTraceNamesFirstNaN: with a NaN planted in layer 1's down projection,
// the pass line names mlp_down in layer 1 as the first non-finite brick.
func TestTraceNamesFirstNaN(t *testing.T) {
	dir := t.TempDir()
	if err := breakmodel.Copy(testref.ModelDir(t), dir, breakmodel.PlantNaN(model.Layer(1, model.FFNDown), 300)); err != nil {
		t.Fatal(err)
	}
	m, eng := openEngine(t, dir)
	f := traceGeneration(t, m, eng, testref.HFOutputs(t)[0].TokenIDs, 1)
	if len(f.Passes) != 1 || f.Passes[0].FirstBad != "mlp_down@1" || f.Passes[0].NaN == 0 {
		t.Fatalf("passes %+v, want one naming mlp_down@1", f.Passes)
	}
}

// TestParseRejects: malformed traces get an error naming the line.
func TestParseRejects(t *testing.T) {
	header := `{"type":"header","version":1,"started":"2026-01-01T00:00:00Z"}` + "\n"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"no header", `{"type":"brick","pass":0,"layer":0,"brick":"rope","rows":1,"elapsed_us":1,"outputs":[]}`, "want the header"},
		{"not JSON", header + "{", "line 2"},
		{"unknown type", header + `{"type":"token"}`, "unknown line type"},
		{"unknown field", header + `{"type":"brick","pass":0,"layer":0,"brick":"rope","rows":1,"elapsed_us":1,"bogus":1}`, "unknown field"},
		{"bad stats", header + `{"type":"brick","pass":0,"layer":0,"brick":"rope","rows":1,"elapsed_us":1,"outputs":[{"n":1,"nan":2}]}`, "inconsistent"},
		{"negative layer", header + `{"type":"brick","pass":0,"layer":-2,"brick":"rope","rows":1,"elapsed_us":1}`, "layer -2"},
		{"passes out of order", header + `{"type":"pass","pass":0}` + "\n" + `{"type":"pass","pass":0}`, "after pass"},
		{"wrong version", `{"type":"header","version":9}`, "version 9"},
		{"two headers", header + header, "second header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParse: any input gives a File or an error, never a panic, and what
// parses survives a second parse of the same bytes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"type":"header","version":1,"started":"2026-01-01T00:00:00Z"}` + "\n" +
		`{"type":"brick","pass":0,"layer":-1,"brick":"token_embed","rows":2,"elapsed_us":1.5,"outputs":[{"n":256,"min":-1,"max":1,"mean":0,"nan":0,"inf":0}]}` + "\n" +
		`{"type":"pass","pass":0,"rows":2,"bricks":1,"bricks_us":1.5,"nan":0,"inf":0,"ended_unix":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		b, err := Parse(bytes.NewReader(data))
		if err != nil || len(a.Bricks) != len(b.Bricks) || len(a.Passes) != len(b.Passes) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}

// TestTraceOfDevicePasses: on the GPU each pass is one device_forward
// brick (followed by sampling), which opens and closes its pass; the
// header names the device.
func TestTraceOfDevicePasses(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, "m.gguf", "gguf", "cuda (NVIDIA H100 80GB HBM3)")
	for _, rows := range []int{7, 1, 1} {
		w.Brick(engine.BrickEvent{Brick: engine.BrickDevice, Layer: -1, Elapsed: 3000, Rows: rows})
		w.Brick(engine.BrickEvent{Brick: engine.BrickSampling, Layer: -1, Elapsed: 1000, Rows: 1, Outputs: [][]float32{{1, 2}}})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.Device != "cuda (NVIDIA H100 80GB HBM3)" {
		t.Errorf("header device %q", f.Header.Device)
	}
	if len(f.Passes) != 3 || len(f.Bricks) != 6 {
		t.Fatalf("%d passes, %d bricks; want 3 and 6", len(f.Passes), len(f.Bricks))
	}
	for i, want := range []int{7, 1, 1} {
		if p := f.Passes[i]; p.Pass != i || p.Rows != want || p.Bricks != 1 || p.BricksUS != 3 {
			t.Errorf("pass %d: %+v, want %d rows and one brick of 3 us", i, p, want)
		}
	}
}
