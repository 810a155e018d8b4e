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
// greedy step ahead) exactly for the draw that its length limit ends,
// and the greedy tokens drawn on the device are transformers'.
func TestGenerateMarksLastDraw(t *testing.T) {
	cpuEng := tinyEngine(t)
	p := testref.HFOutputs(t)[0]
	cases := []struct {
		max  int
		want []bool // each draw's Last
	}{
		{1, []bool{true}},
		{2, []bool{false, true}},
		{5, []bool{false, false, false, false, true}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("max-%d", c.max), func(t *testing.T) {
			fake := &pickDevice{cpuDevice: newCPUDevice(cpuEng, 1)}
			dev := newOnDevice(cpuEng.Config, cpuEng.opts, fake)
			s := dev.NewSequence(0)
			st, err := s.Generate(context.Background(), p.TokenIDs, GenerateOptions{
				MaxTokens: c.max, Sampler: sample.New(sample.Params{}), Decoder: idDecoder{}}, func(string) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if st.StopReason != "length" {
				t.Fatalf("stopped by %q, want the length limit", st.StopReason)
			}
			if !slices.Equal(fake.lasts, c.want) {
				t.Errorf("draws' Last %v, want %v", fake.lasts, c.want)
			}
			if want := p.Greedy32[:c.max]; !slices.Equal(st.Output, want) {
				t.Errorf("output %v, transformers %v", st.Output, want)
			}
		})
	}
}
