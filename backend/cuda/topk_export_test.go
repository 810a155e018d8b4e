package cuda

import (
	"fmt"
	"unsafe"
)

// PickRows uploads rows (whole vocabularies of logits, at most as many as
// the LM head makes at once) in place of the LM head's logits and picks
// them as ForwardPick picks a pass's: the kernels on chosen logits.
func (g *Model) PickRows(rows []float32, picks []Pick, res []Picked, logits []float32) error {
	vocab := g.Config.VocabSize
	n := len(rows) / vocab
	if n < 1 || n > g.logitRows || len(logits) < len(rows) {
		return fmt.Errorf("cuda: pick rows: %d rows, %d at most", n, g.logitRows)
	}
	unlock := g.dev.bind()
	defer unlock()
	if err := g.dev.drv.check("cuMemcpyHtoD", g.dev.drv.cuMemcpyHtoD(g.logits, unsafe.Pointer(&rows[0]), uintptr(4*n*vocab))); err != nil {
		return err
	}
	if err := g.beginPick(picks, res, n); err != nil {
		return err
	}
	defer g.endPick()
	return g.fetch(logits, 0, n)
}
