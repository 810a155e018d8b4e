package engine

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/sample"
)

// pickDevice is cpuDevice with ForwardPick for greedy rows (the argmax's
// key) and rows that ask for full logits; it records each pick's Last.
type pickDevice struct {
	*cpuDevice
	lasts []bool
}

func (d *pickDevice) ForwardPick(rows []cuda.Row, picks []cuda.Pick, res []cuda.Picked, logits []float32) error {
	if err := d.Forward(rows, logits); err != nil {
		return err
	}
	vocab := d.e.Config.VocabSize
	o := 0
	for _, r := range rows {
		if !r.Logits {
			continue
		}
		p := picks[o]
		d.lasts = append(d.lasts, p.Last)
		switch {
		case p.Greedy:
			l := logits[o*vocab : (o+1)*vocab]
			id := sample.Argmax(l)
			res[o] = cuda.Picked{Keys: []uint64{sample.Key(l[id], id)}}
		case p.K == 0:
			res[o] = cuda.Picked{Full: true}
		default:
			return fmt.Errorf("fake device: pick %d asks for %d candidates", o, p.K)
		}
		o++
	}
	return nil
}

// idDecoder writes each id as text.
type idDecoder struct{}

func (idDecoder) Add(id int) string { return fmt.Sprintf("<%d>", id) }
func (idDecoder) Flush() string     { return "" }

// TestGenerateMarksLastDraw: Generate's device draws say Last (send no
// greedy step ahead) exactly for the draw that its length limit or the
// sequence's context ends, and the greedy tokens drawn on the device are
// transformers'.
func TestGenerateMarksLastDraw(t *testing.T) {
	cpuEng := tinyEngine(t)
	p := testref.HFOutputs(t)[0]
	cases := []struct {
		max, ctx int // the length limit (0: none), the sequence's context past the prompt
		stop     string
		want     []bool // each draw's Last
	}{
		{1, 0, "length", []bool{true}},
		{2, 0, "length", []bool{false, true}},
		{5, 0, "length", []bool{false, false, false, false, true}},
		{0, 3, "context", []bool{false, false, false, true}},
		{0, 0, "context", []bool{true}},
		{3, 5, "length", []bool{false, false, true}},
		{6, 2, "context", []bool{false, false, true}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("max-%d-ctx-%d", c.max, c.ctx), func(t *testing.T) {
			fake := &pickDevice{cpuDevice: newCPUDevice(cpuEng, 1)}
			dev := newOnDevice(cpuEng.Config, cpuEng.opts, fake)
			ctx := 0
			if c.ctx > 0 || c.stop == "context" {
				ctx = len(p.TokenIDs) + c.ctx
			}
			s := dev.NewSequence(ctx)
			st, err := s.Generate(context.Background(), p.TokenIDs, GenerateOptions{
				MaxTokens: c.max, Sampler: sample.New(sample.Params{}), Decoder: idDecoder{}}, func(string) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if st.StopReason != c.stop {
				t.Fatalf("stopped by %q, want %q", st.StopReason, c.stop)
			}
			if !slices.Equal(fake.lasts, c.want) {
				t.Errorf("draws' Last %v, want %v", fake.lasts, c.want)
			}
			if want := p.Greedy32[:len(c.want)]; !slices.Equal(st.Output, want) {
				t.Errorf("output %v, transformers %v", st.Output, want)
			}
		})
	}
}
