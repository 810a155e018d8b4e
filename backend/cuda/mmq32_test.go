package cuda

import (
	"os"
	"strconv"
	"testing"

	"github.com/apr-llm/apr/tensor"
)

// mmq32OffEnv, set in a test binary's environment, turns the staged
// products off (BenchmarkPrefillSynthetic before/after in one binary).
// mmq32ThreadsEnv sets mmq32Threads (for PTX compiled with -DM32_NT=2:
// 256).
const (
	mmq32OffEnv     = "APR_CUDA_MMQ32_OFF"
	mmq32ThreadsEnv = "APR_CUDA_MMQ32_THREADS"
)

func init() {
	if os.Getenv(mmq32OffEnv) != "" {
		mmq32On = false
	}
	if n, err := strconv.Atoi(os.Getenv(mmq32ThreadsEnv)); err == nil && n > 0 {
		mmq32Threads = n
	}
}

// TestMMQ32Unit checks the staged kernels' copy width: the widest of 16, 8
// and 4 bytes that divides both pointers and both row lengths (Q8_0 rows of
// 1536, 896, 320 and 352 columns: 48, 28, 10 and 11 blocks), else none.
func TestMMQ32Unit(t *testing.T) {
	row := func(dt tensor.DType, cols int) int {
		n, err := dt.RowBytes(cols)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		name       string
		dt         tensor.DType
		cols       int
		wptr, aptr devptr
		want       int
	}{
		{"q8_0 48 blocks", tensor.Q8_0, 1536, 1 << 20, 2 << 20, 16},
		{"q4_0 48 blocks", tensor.Q4_0, 1536, 1 << 20, 2 << 20, 16},
		{"q5_0 48 blocks", tensor.Q5_0, 1536, 1 << 20, 2 << 20, 16},
		{"q8_0 28 blocks", tensor.Q8_0, 896, 1 << 20, 2 << 20, 8},
		{"q5_0 28 blocks", tensor.Q5_0, 896, 1 << 20, 2 << 20, 8},
		{"q8_0 10 blocks", tensor.Q8_0, 320, 1 << 20, 2 << 20, 4},
		{"q8_0 11 blocks", tensor.Q8_0, 352, 1 << 20, 2 << 20, 0},
		{"weights 8-aligned", tensor.Q8_0, 1536, 1<<20 + 8, 2 << 20, 8},
		{"activations 2-aligned", tensor.Q4_0, 1536, 1 << 20, 2<<20 + 34, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &matrix{dt: tc.dt, rows: 64, cols: tc.cols, rowBytes: row(tc.dt, tc.cols), ptr: tc.wptr}
			if got := mmq32Unit(w, tc.aptr, row(tensor.Q8_0, tc.cols)); got != tc.want {
				t.Errorf("mmq32Unit = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestMMQ32Names checks that each 32-element weight type has a staged
// kernel of each copy width, with the shared memory its layout needs.
func TestMMQ32Names(t *testing.T) {
	for _, tc := range []struct {
		dt     tensor.DType
		shared int
	}{
		{tensor.Q8_0, 2*64*(272+272) + 4608},
		{tensor.Q4_0, 2*64*(144+272) + 4608},
		{tensor.Q5_0, 2*64*(176+272) + 4608},
	} {
		for _, v := range mmq32Units {
			if got, want := mmq32Names[tc.dt][v], kernelName("mmq32_", tc.dt)+map[int]string{16: "_v16", 8: "_v8", 4: "_v4"}[v]; got != want {
				t.Errorf("%v, %d bytes: kernel %q, want %q", tc.dt, v, got, want)
			}
		}
		if got := mmq32Shared(tc.dt.TypeSize()); got != tc.shared {
			t.Errorf("%v: shared memory %d, want %d", tc.dt, got, tc.shared)
		}
	}
	if _, ok := mmq32Names[tensor.Q4_K]; ok {
		t.Error("Q4_K has staged 32-element kernels")
	}
}
