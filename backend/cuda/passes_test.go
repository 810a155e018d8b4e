package cuda

import "testing"

// TestUseMMQ checks the product kernel choice for passes of a few rows
// against the block counts it is about (132 SMs on an H100/H200).
func TestUseMMQ(t *testing.T) {
	for _, c := range []struct {
		name    string
		rows, m int
		want    bool
	}{
		{"one row", 151936, 1, false},
		{"under mmq's 16 rows", 151936, 15, false},
		{"down, 32 rows: 24 blocks", 1536, 32, false},
		{"gate+up, 32 rows: 280 blocks", 17920, 32, true},
		{"gate+up, 16 rows", 17920, 16, true},
		{"q+k, 63 rows: 28 blocks", 1792, 63, false},
		{"LM head, 32 rows", 151936, 32, true},
		{"o, 64 rows", 1536, 64, true},
		{"o, a prompt of 512 rows", 1536, 512, true},
	} {
		if got := useMMQ(c.rows, c.m); got != c.want {
			t.Errorf("%s: useMMQ(%d, %d) = %v, want %v", c.name, c.rows, c.m, got, c.want)
		}
	}
}
