package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// mmqTypes are the quantized weight types, whose passes of 16 rows or more
// run the tensor-core mmq kernels.
var mmqTypes = []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K}

// mmqKernel is an mmq kernel family: a weight type, and for the
// 32-element types whether the staged kernels (mmq32) or the direct ones.
type mmqKernel struct {
	dt     tensor.DType
	staged bool
}

// mmqKernels are the mmq kernel families of mmqTypes.
var mmqKernels = func() []mmqKernel {
	var ks []mmqKernel
	for _, dt := range mmqTypes {
		_, b32 := mmq32Names[dt]
		ks = append(ks, mmqKernel{dt, b32})
		if b32 {
			ks = append(ks, mmqKernel{dt, false})
		}
	}
	return ks
}()

// mmqOperands returns rows x cols random weights of type dt (a block of
// `distinct` rows repeated, when distinct is not 0) and m random
// activation rows in its activation type, with the rows' byte lengths.
func mmqOperands(t testing.TB, r *rand.Rand, dt tensor.DType, rows, cols, m, distinct int) (wq, act []byte, rb, ab int) {
	t.Helper()
	rb, err := dt.RowBytes(cols)
	if err != nil {
		t.Fatal(err)
	}
	if distinct == 0 {
		distinct = rows
	}
	block := make([]byte, distinct*rb)
	if err := quant.Quantize(dt, randn(r, distinct*cols, 1), block); err != nil {
		t.Fatal(err)
	}
	wq = make([]byte, rows*rb)
	for i := 0; i < len(wq); i += len(block) {
		copy(wq[i:], block)
	}
	vt := actType(dt)
	ab, _ = vt.RowBytes(cols)
	act = make([]byte, m*ab)
	for c := range m {
		if err := quant.QuantizeActivation(vt, randn(r, cols, 1), act[c*ab:(c+1)*ab]); err != nil {
			t.Fatal(err)
		}
	}
	return wq, act, rb, ab
}

// TestMMQTiles checks the tensor-core products at pass sizes around the
// kernels' 64 x 64 tiles (16, 63, 64, 65, 200, 512 and 779 activation
// rows; 200 weight rows: three whole tiles and a part), rows of 2 and 3
// chunks of 256 and, for the 32-element types, a row ending in a part
// chunk (11 blocks): every output must equal quant.VecDot's bit for bit
// (integer block dots, each block's float term and their sum in block
// order as quant's kernels compute them), with and without accumulation
// and a bias. The 32-element types run both the staged kernels (mmq32,
// copies of 16 bytes for rows of 8k blocks, 8 for 896 columns, 4 for 320)
// and the direct ones (mmq_T, which also take the rows of 11 blocks).
func TestMMQTiles(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(7, 8))
	const rows = 200
	defer func(on bool) { mmq32On = on }(mmq32On)
	for _, tc := range []struct{ cols, m int }{
		{512, 16}, {512, 63}, {512, 64}, {512, 65}, {768, 200}, {512, 512}, {512, 779}, {352, 65}, {352, 130},
		{896, 65}, {896, 200}, {320, 130}, {1280, 64},
	} {
		for _, k := range mmqKernels {
			if tc.cols%k.dt.BlockSize() != 0 {
				continue
			}
			mmq32On = k.staged
			checkMMQ(t, d, b, r, k.dt, rows, tc.cols, tc.m, fmt.Sprintf("%v mmq (staged %v)", k.dt, k.staged))
		}
	}
}

// checkMMQ runs matmul's product of rows x cols random weights of type dt
// by m random activation rows, plain and then accumulating with a bias,
// and fails unless every output equals quant.VecDot's bit for bit.
func checkMMQ(t *testing.T, d *Device, b *buffers, r *rand.Rand, dt tensor.DType, rows, cols, m int, what string) {
	t.Helper()
	wq, act, rb, ab := mmqOperands(t, r, dt, rows, cols, m, 0)
	want := make([]float32, rows*m)
	for c := range m {
		for i := range rows {
			want[c*rows+i] = quant.VecDot(dt, wq[i*rb:(i+1)*rb], act[c*ab:(c+1)*ab], cols)
		}
	}
	bias, y0 := randn(r, rows, 1), randn(r, rows*m, 1)
	wantAcc := make([]float32, len(want))
	for k := range want {
		wantAcc[k] = y0[k] + (want[k] + bias[k%rows])
	}
	w := &matrix{name: "w", dt: dt, rows: rows, cols: cols, rowBytes: rb, ptr: b.bytes(wq)}
	a := b.bytes(act)
	what = fmt.Sprintf("%s of %d x %d by %d rows", what, rows, cols, m)
	y := b.poisoned(4 * len(want))
	if err := d.matmul(w, a, ab, y, rows, 0, false, m); err != nil {
		t.Fatal(err)
	}
	exact(t, what, b.readFloats(y, len(want)), want)
	y = b.floats(y0)
	if err := d.matmul(w, a, ab, y, rows, b.floats(bias), true, m); err != nil {
		t.Fatal(err)
	}
	exact(t, what+" (accumulate, bias)", b.readFloats(y, len(want)), wantAcc)
}

// exact fails unless got and want are the same floats bit for bit.
func exact(t *testing.T, what string, got, want []float32) {
	t.Helper()
	bad := 0
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			if bad == 0 {
				t.Errorf("%s: element %d: got %v, want %v", what, i, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d outputs differ", what, bad, len(want))
	}
}

// BenchmarkMMQ times the tensor-core products of a 512-row prefill pass of
// Qwen2.5-Coder-1.5B (its Q4_K_M file's shapes and types, and the Q8_0
// file's; weights a random block of 64 rows repeated) with CUDA events
// around b.N back-to-back launches, in TOPS (2 x rows x cols x 512 integer
// operations a launch).
func BenchmarkMMQ(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(9, 10))
	const m = 512
	// The 1.5B Q4_K_M pass's layer products (shapes15B without the LM
	// head), then the Q8_0 file's and other 32-element types'.
	shapes := append(shapes15B[:5:5], []productShape{
		{"qkv", tensor.Q8_0, 2048, 1536},
		{"gate+up", tensor.Q8_0, 17920, 1536},
		{"down", tensor.Q8_0, 1536, 8960},
		{"gate+up", tensor.Q5_0, 17920, 1536},
		{"gate+up", tensor.Q4_0, 17920, 1536},
		{"gate+up-0.5B", tensor.Q8_0, 9728, 896},
		{"down-0.5B", tensor.Q8_0, 896, 4864},
	}...)
	for _, s := range shapes {
		wq, act, rb, ab := mmqOperands(b, r, s.dt, s.rows, s.cols, m, 64)
		w := &matrix{name: s.name, dt: s.dt, rows: s.rows, cols: s.cols, rowBytes: rb, ptr: bufs.bytes(wq)}
		a, y := bufs.bytes(act), bufs.poisoned(4*s.rows*m)
		for _, k := range mmqKernels {
			if k.dt != s.dt {
				continue
			}
			name := fmt.Sprintf("%s-%v-%dx%d", s.name, s.dt, s.rows, s.cols)
			if _, b32 := mmq32Names[s.dt]; b32 && !k.staged {
				name += "-direct"
			}
			b.Run(name, func(b *testing.B) {
				defer func(on bool) { mmq32On = on }(mmq32On)
				mmq32On = k.staged
				reportProduct(b, d, s, m, func() error { return d.matmul(w, a, ab, y, s.rows, 0, false, m) })
			})
		}
	}
}

// reportProduct reports the device time of one launch of a product of
// shape s by m activation rows (launchTime) and its rate in TOPS (2 x rows
// x cols x m operations).
func reportProduct(b *testing.B, d *Device, s productShape, m int, launch func() error) {
	us := launchTime(b, d, launch)
	b.ReportMetric(us, "us/launch")
	b.ReportMetric(2*float64(s.rows)*float64(s.cols)*float64(m)/us/1e6, "TOPS")
}

// launchTime returns the device microseconds of one launch, timed with
// CUDA events around b.N back-to-back launches after 3 warm-up ones. A
// sub-benchmark runs on its own goroutine: the context goes current on its
// thread for the time.
func launchTime(b *testing.B, d *Device, launch func() error) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d.drv.cuCtxSetCurrent(d.ctx)
	run := func(n int) {
		for range n {
			if err := launch(); err != nil {
				b.Fatal(err)
			}
		}
	}
	run(3)
	ms := eventTime(b, d, func() { run(b.N) })
	return 1000 * float64(ms) / float64(b.N)
}
