package cuda

// DecodeNoRead enqueues the decode step of token at position pos of slot 0
// as DecodeArgmax does, without reading its token back: a benchmark's way
// to time steps with no host round trip between them.
func (g *Model) DecodeNoRead(token, pos int) error {
	unlock := g.dev.bind()
	defer unlock()
	_, err := g.step(Row{Token: token, Pos: pos}, g.rows)
	return err
}

// StepAhead says whether a decode step was sent ahead and not yet asked
// for (ahead.go).
func (g *Model) StepAhead() bool { return g.ahead.on }
