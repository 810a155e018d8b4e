package cuda

import (
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// TestUseMMQ checks the product kernel choice for passes of a few rows
// for the shapes BenchmarkPassProducts timed (1.5B Q4_K_M, an H200).
func TestUseMMQ(t *testing.T) {
	for _, c := range []struct {
		name    string
		dt      tensor.DType
		rows, m int
		want    bool
	}{
		{"one row", tensor.Q6_K, 151936, 1, false},
		{"under mmq's 16 rows", tensor.Q6_K, 151936, 15, false},
		{"LM head, 16 rows: 2374 blocks", tensor.Q6_K, 151936, 16, true},
		{"gate+up, 16 rows: 280 blocks", tensor.Q4_K, 17920, 16, true},
		{"down, 48 rows: 24 blocks", tensor.Q6_K, 1536, 48, false},
		{"o, 32 rows", tensor.Q4_K, 1536, 32, false},
		{"o, 33 rows", tensor.Q4_K, 1536, 33, true},
		{"v, 63 rows", tensor.Q6_K, 256, 63, false},
		{"down, 64 rows", tensor.Q6_K, 1536, 64, true},
		{"o, a prompt of 512 rows", tensor.Q4_K, 1536, 512, true},
	} {
		if got := useMMQ(c.dt, c.rows, c.m); got != c.want {
			t.Errorf("%s: useMMQ(%v, %d, %d) = %v, want %v", c.name, c.dt, c.rows, c.m, got, c.want)
		}
	}
}
