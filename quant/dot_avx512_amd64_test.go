//go:build !purego

package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/apr-llm/apr/tensor"
)

// unitScaleRow returns a row of n weights of type dt made of random bytes
// whose float scales are all 1 (d, and dmin where the type has one), so
// that the row's dot product with a unit-scale activation is a sum of
// integers: exact in float32 while the sums stay below 2^24.
func unitScaleRow(t *testing.T, rng *rand.Rand, dt tensor.DType, n int) []byte {
	t.Helper()
	w := randomWeights(t, rng, dt, n, true)
	bs, _ := dt.RowBytes(dt.BlockSize())
	for off := 0; off < len(w); off += bs {
		b := w[off : off+bs]
		switch dt {
		case tensor.Q4_K, tensor.Q5_K:
			putF16(b[0:], 1)
			putF16(b[2:], 1)
		case tensor.Q6_K:
			putF16(b[208:], 1)
		default:
			putF16(b[0:], 1)
		}
	}
	return w
}

// unitScaleActivation returns an activation of n random quants in
// [-lim, lim] with scale 1, of type vt (Q8_0 or Q8_K, whose bsums it
// fills in).
func unitScaleActivation(t *testing.T, rng *rand.Rand, vt tensor.DType, n, lim int) []byte {
	t.Helper()
	nb, err := vt.RowBytes(n)
	if err != nil {
		t.Fatal(err)
	}
	a := make([]byte, nb)
	q := func() byte { return byte(int8(rng.IntN(2*lim+1) - lim)) }
	switch vt {
	case tensor.Q8_0:
		for off := 0; off < nb; off += 34 {
			putF16(a[off:], 1)
			for j := range 32 {
				a[off+2+j] = q()
			}
		}
	case tensor.Q8_K:
		for off := 0; off < nb; off += 292 {
			putF32(a[off:], 1)
			for j := range 16 {
				s := 0
				for i := range 16 {
					v := q()
					a[off+4+16*j+i] = v
					s += int(int8(v))
				}
				binary.LittleEndian.PutUint16(a[off+260+2*j:], uint16(int16(s)))
			}
		}
	default:
		t.Fatalf("no unit-scale activation of type %v", vt)
	}
	return a
}

// TestVNNIIntegerDotsExact checks that the VNNI kernels compute the exact
// integer dot products: with unit scales every float in the sums is an
// integer below 2^24, so the kernel must return what the portable kernel
// returns, bit for bit, on every quant pattern (random bytes).
func TestVNNIIntegerDotsExact(t *testing.T) {
	if !hasAVX512VNNI {
		t.Skip("no AVX-512 VNNI on this CPU")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for dt, v := range vnniKernels {
		ref := portableDots[dt]
		sizes := []int{32, 64, 224, 896}
		lim := 127
		if v.block == qkK {
			// Small activations keep Q4_K's sums of 63*15*y over many
			// blocks below 2^24.
			sizes, lim = []int{256, 512, 2048}, 31
		}
		for _, n := range sizes {
			for trial := range 4 {
				w := unitScaleRow(t, rng, dt, n)
				act := unitScaleActivation(t, rng, VecDotType(dt), n, lim)
				if got, want := v.dot(w, act, n), ref(w, act, n); got != want {
					t.Errorf("%v n=%d trial %d: VNNI %v, portable %v", dt, n, trial, got, want)
				}
			}
		}
	}
}

// TestVNNIMatchesAVX2Bits pins the VNNI kernels to the AVX2 kernels bit
// for bit (same integer lanes, same float summation order), on rows
// quantized from floats and on raw random bytes: GGUF numerics (llama.cpp
// agreement, the tiled prefill kernels) do not depend on which one runs.
func TestVNNIMatchesAVX2Bits(t *testing.T) {
	if !hasAVX512VNNI {
		t.Skip("no AVX-512 VNNI on this CPU")
	}
	rng := rand.New(rand.NewPCG(27, 28))
	for dt, v := range vnniKernels {
		avx2 := fastDots[dt]
		sizes := []int{32, 96, 896, 4864}
		if v.block == qkK {
			sizes = []int{256, 1536, 4864}
		}
		for _, n := range sizes {
			for _, raw := range []bool{false, true} {
				for trial := range 3 {
					w := randomWeights(t, rng, dt, n, raw)
					act := mustQuantize(t, VecDotType(dt), randomRow(rng, n), true)
					got, want := v.dot(w, act, n), avx2(w, act, n)
					if math.Float32bits(got) != math.Float32bits(want) {
						t.Errorf("%v n=%d raw=%v trial %d: VNNI %v, AVX2 %v", dt, n, raw, trial, got, want)
					}
				}
			}
		}
	}
}

// TestVNNIRowsMatchPortable runs the VNNI kernels through DotRows on row
// ranges of every size around the four-row groups (whole groups, partial
// last groups, fewer than four rows), padded strides, and rows quantized
// from floats and raw random bytes; each row must agree with the portable
// kernel within float32 rounding of its terms, and nothing outside the
// range may be written.
func TestVNNIRowsMatchPortable(t *testing.T) {
	if !hasAVX512VNNI {
		t.Skip("no AVX-512 VNNI on this CPU")
	}
	rng := rand.New(rand.NewPCG(23, 24))
	for dt := range vnniKernels {
		ref := portableDots[dt]
		n := 768
		if dt.BlockSize() == qk {
			n = 224
		}
		need, _ := dt.RowBytes(n)
		const rows = 14
		for _, pad := range []int{0, 10} {
			stride := need + pad
			w := make([]byte, rows*stride)
			deq := make([][]float32, rows)
			for r := range rows {
				copy(w[r*stride:], randomWeights(t, rng, dt, n, r%3 == 2))
				deq[r] = make([]float32, n)
				if err := Dequantize(dt, w[r*stride:r*stride+need], deq[r]); err != nil {
					t.Fatal(err)
				}
			}
			x := randomRow(rng, n)
			act := mustQuantize(t, VecDotType(dt), x, true)
			for _, lh := range [][2]int{{0, 1}, {0, 2}, {1, 4}, {0, 4}, {2, 7}, {0, 8}, {3, 12}, {0, 14}, {5, 14}, {6, 6}} {
				t.Run(fmt.Sprintf("%v/pad%d/%d-%d", dt, pad, lh[0], lh[1]), func(t *testing.T) {
					lo, hi := lh[0], lh[1]
					out := make([]float32, hi-lo+1)
					out[hi-lo] = 42
					if err := DotRows(dt, w, stride, lo, hi, act, n, out); err != nil {
						t.Fatal(err)
					}
					if out[hi-lo] != 42 {
						t.Errorf("wrote past the output")
					}
					for r := lo; r < hi; r++ {
						want := ref(w[r*stride:r*stride+need], act, n)
						var mag float64
						for i, v := range deq[r] {
							mag += math.Abs(float64(v) * float64(x[i]))
						}
						if d := math.Abs(float64(out[r-lo] - want)); d > 1e-5*mag+1e-6 || math.IsNaN(float64(out[r-lo])) {
							t.Errorf("row %d: VNNI %v, portable %v (|diff| %g, magnitude %g)", r, out[r-lo], want, d, mag)
						}
					}
				})
			}
		}
	}
}

// BenchmarkRowKernels compares the AVX2 and VNNI kernels on one thread:
// a 256-row matrix that stays in L2, and 64 MiB of rows streamed from
// memory (as a decode step reads them). MB/s is weight bytes.
func BenchmarkRowKernels(b *testing.B) {
	if !hasAVX512VNNI {
		b.Skip("no AVX-512 VNNI on this CPU")
	}
	rng := rand.New(rand.NewPCG(25, 26))
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q5_0, tensor.Q4_0, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		n := 896
		if dt.BlockSize() == qkK {
			n = 1536
		}
		rb, _ := dt.RowBytes(n)
		const tile = 64
		pat := make([]byte, 0, tile*rb)
		for range tile {
			pat = append(pat, mustQuantize(b, dt, randomRow(rng, n), false)...)
		}
		act := mustQuantize(b, VecDotType(dt), randomRow(rng, n), true)
		avx2 := fastRows[dt]
		if avx2 == nil {
			dot := fastDots[dt]
			avx2 = func(w []byte, stride, lo, hi int, act []byte, n int, out []float32) {
				for r := lo; r < hi; r++ {
					out[r-lo] = dot(w[r*stride:], act, n)
				}
			}
		}
		for _, size := range []struct {
			name string
			rows int
		}{{"L2", 256}, {"DRAM", 64 << 20 / rb}} {
			w := make([]byte, size.rows*rb)
			for off := 0; off < len(w); off += len(pat) {
				copy(w[off:], pat)
			}
			out := make([]float32, size.rows)
			for _, k := range []struct {
				name string
				f    rowsFunc
			}{{"avx2", avx2}, {"vnni", vnniKernels[dt].rows}} {
				b.Run(fmt.Sprintf("%v/%s/%s", dt, size.name, k.name), func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					defer threadCPU(b, int64(len(w)))()
					for b.Loop() {
						k.f(w, rb, 0, size.rows, act, n, out)
					}
				})
			}
		}
	}
}

// threadCPU locks the benchmark to its OS thread and returns a function
// that reports the thread's own CPU time per operation (cpu-ns/op) and the
// bytes per CPU second (cpu-MB/s): on a shared machine, where other
// processes take the core for a while, these vary far less than wall time.
func threadCPU(b *testing.B, bytes int64) func() {
	runtime.LockOSThread()
	start := threadTime(b)
	return func() {
		d := threadTime(b) - start
		runtime.UnlockOSThread()
		if b.N > 0 && d > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(bytes)*float64(b.N)/d.Seconds()/1e6, "cpu-MB/s")
		}
	}
}

// threadTime is the calling thread's user and system CPU time.
func threadTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vnniTypes lists the weight types with VNNI kernels, in a fixed order.
var vnniTypes = []tensor.DType{tensor.Q8_0, tensor.Q5_0, tensor.Q4_0, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K}

// FuzzVNNIMatchesAVX2 gives the VNNI kernels arbitrary weight bytes
// (scales of every half, NaN and Inf included) in 1 to 9 rows of 1 to 8
// blocks, with an activation quantized from floats, through DotRows: each
// row must equal the AVX2 kernel's result bit for bit (any NaN for NaN).
func FuzzVNNIMatchesAVX2(f *testing.F) {
	f.Add(uint8(0), uint8(5), uint8(3), uint64(1), []byte{1, 2, 3})
	f.Add(uint8(3), uint8(1), uint8(1), uint64(2), []byte{0xff, 0x7c, 0, 0x80})
	f.Add(uint8(5), uint8(8), uint8(2), uint64(3), []byte{0x3c, 0x00, 0x55})
	f.Fuzz(func(t *testing.T, typ, rows, blocks uint8, seed uint64, data []byte) {
		if !hasAVX512VNNI || len(data) == 0 {
			return
		}
		dt := vnniTypes[int(typ)%len(vnniTypes)]
		nr, n := 1+int(rows)%9, (1+int(blocks)%8)*dt.BlockSize()
		rb, _ := dt.RowBytes(n)
		w := make([]byte, nr*rb)
		for i := range w {
			w[i] = data[i%len(data)] ^ byte(i/len(data))
		}
		act := mustQuantize(t, VecDotType(dt), randomRow(rand.New(rand.NewPCG(seed, 7)), n), true)
		out := make([]float32, nr)
		if err := DotRows(dt, w, rb, 0, nr, act, n, out); err != nil {
			t.Fatal(err)
		}
		for r := range nr {
			want := fastDots[dt](w[r*rb:(r+1)*rb], act, n)
			if math.Float32bits(out[r]) != math.Float32bits(want) && !(out[r] != out[r] && want != want) {
				t.Fatalf("%v row %d of %d, n=%d: VNNI %v, AVX2 %v", dt, r, nr, n, out[r], want)
			}
		}
	})
}
