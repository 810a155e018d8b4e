package cuda

// SetAttnSplitMin sets the keys above which decode attention runs split
// (attnSplitMin; negative: never) for a test or benchmark; restore puts the
// old value back. Graphs captured before keep the value they were
// captured with.
func SetAttnSplitMin(n int) (restore func()) {
	old, oldGGML := attnSplitMin, attnSplitMinGGML
	attnSplitMin, attnSplitMinGGML = n, n
	return func() { attnSplitMin, attnSplitMinGGML = old, oldGGML }
}
