package cuda

// PassPolicy is the pass choices a benchmark may set: below AllRows rows
// mmq takes the matrices of MinBlocks 64-row blocks or more and the
// others from SmallRows rows (SmallRowsQ6K for Q6_K), the rest _r16;
// passes of up to GraphRows rows replay graphs.
type PassPolicy struct {
	AllRows, MinBlocks, SmallRows, SmallRowsQ6K, GraphRows int
}

// SetPassPolicy sets p; restore puts the previous choices back.
func SetPassPolicy(p PassPolicy) (restore func()) {
	old := PassPolicy{mmqAllRows, mmqMinBlocks, mmqSmallRows, mmqSmallRowsQ6K, passGraphRows}
	mmqAllRows, mmqMinBlocks, mmqSmallRows, mmqSmallRowsQ6K, passGraphRows = p.AllRows, p.MinBlocks, p.SmallRows, p.SmallRowsQ6K, p.GraphRows
	return func() {
		mmqAllRows, mmqMinBlocks, mmqSmallRows, mmqSmallRowsQ6K, passGraphRows = old.AllRows, old.MinBlocks, old.SmallRows, old.SmallRowsQ6K, old.GraphRows
	}
}

// DefaultPassPolicy is the choices Forward makes.
func DefaultPassPolicy() PassPolicy {
	return PassPolicy{mmqAllRows, mmqMinBlocks, mmqSmallRows, mmqSmallRowsQ6K, passGraphRows}
}
