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
		{"under mmq's 16 rows", tensor.Q4_K, 17920, 15, false},
		{"LM head, 16 rows: 2374 blocks", tensor.Q6_K, 151936, 16, true},
		{"q+k, 16 rows", tensor.Q4_K, 1792, 16, true},
		{"v, 32 rows", tensor.Q6_K, 256, 32, false},
		{"down, 47 rows", tensor.Q6_K, 1536, 47, false},
		{"down, 48 rows", tensor.Q6_K, 1536, 48, true},
		{"o, a prompt of 512 rows", tensor.Q4_K, 1536, 512, true},
		{"down, a prompt of 512 rows", tensor.Q6_K, 1536, 512, true},
	} {
		if got := useMMQ(c.dt, c.rows, c.m); got != c.want {
			t.Errorf("%s: useMMQ(%v, %d, %d) = %v, want %v", c.name, c.dt, c.rows, c.m, got, c.want)
		}
	}
}
