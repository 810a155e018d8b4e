package cuda

// SetPassPolicy sets, for a benchmark, the fewest activation rows that
// always take the mmq kernels, the fewest mmq blocks that take them below
// that, and the most rows of a pass replayed as a graph; restore puts the
// defaults back.
func SetPassPolicy(allRows, minBlocks, graphRows int) (restore func()) {
	a, b, c := mmqAllRows, mmqMinBlocks, passGraphRows
	mmqAllRows, mmqMinBlocks, passGraphRows = allRows, minBlocks, graphRows
	return func() { mmqAllRows, mmqMinBlocks, passGraphRows = a, b, c }
}
