package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apr-llm/apr/quant"
)

// BenchmarkMatVec times the one-row matrix products of the
// Qwen2.5-Coder-1.5B and 0.5B Q4_K_M decode steps (a quantized block of 64 rows
// repeated to the full shape) with CUDA events around b.N back-to-back
// launches, for the planned split (and its items by pass or by unit:
// mvUnits) and for groups of 1, 2 and 4 rows forced.
func BenchmarkMatVec(b *testing.B) {
	d := testDevice(b)
	bufs := newBuffers(b, d)
	r := rand.New(rand.NewPCG(5, 6))
	for _, s := range append(shapes15B, shapes05B...) {
		w, wq := repeatedWeights(b, bufs, r, s)
		vt := actType(s.dt)
		ab, _ := vt.RowBytes(s.cols)
		act := make([]byte, ab)
		if err := quant.QuantizeActivation(vt, randn(r, s.cols, 1), act); err != nil {
			b.Fatal(err)
		}
		a, y := bufs.bytes(act), bufs.poisoned(4*s.rows)
		nb, per := s.cols/s.dt.BlockSize(), weightTypes[s.dt]
		passes := ceilDiv(nb, per)
		for _, v := range []struct {
			name   string
			target int
			units  int
		}{
			{"plan", mvTargetWarps, mvUnits}, {"plan-bypass", mvTargetWarps, 0}, {"plan-byunit", mvTargetWarps, 2},
			{"rw1", 1 << 30, mvUnits}, {"rw2", ceilDiv(s.rows, 2) * passes, mvUnits}, {"rw4", 1, mvUnits},
		} {
			b.Run(fmt.Sprintf("%s-%v-%dx%d/%s", s.name, s.dt, s.rows, s.cols, v.name), func(b *testing.B) {
				defer func(t, u int) { mvTargetWarps, mvUnits = t, u }(mvTargetWarps, mvUnits)
				mvTargetWarps, mvUnits = v.target, v.units
				benchMatmul(b, d, w, a, ab, y, s.rows, 1, len(wq))
			})
		}
	}
}

// benchMatmul times b.N launches of d.matmul(w, a, actStride, y,
// yStride, 0, false, m) after 3 untimed ones, with CUDA events, and reports
// microseconds a launch and the weights' bytes read a second.
func benchMatmul(b *testing.B, d *Device, w *matrix, a devptr, actStride int, y devptr, yStride, m, weightBytes int) {
	us := launchTime(b, d, func() error { return d.matmul(w, a, actStride, y, yStride, 0, false, m) })
	b.ReportMetric(us, "us/launch")
	b.ReportMetric(float64(weightBytes)/us/1e3, "GB/s")
}

// eventTime returns the device milliseconds that the work f enqueues
// takes, between two CUDA events on the device's stream.
func eventTime(b *testing.B, d *Device, f func()) float32 {
	var ev [2]uintptr
	for i := range ev {
		if err := d.drv.check("cuEventCreate", d.drv.cuEventCreate(&ev[i], 0)); err != nil {
			b.Fatal(err)
		}
		defer d.drv.cuEventDestroy(ev[i])
	}
	b.ResetTimer()
	if err := d.drv.check("cuEventRecord", d.drv.cuEventRecord(ev[0], d.stream)); err != nil {
		b.Fatal(err)
	}
	f()
	if err := d.drv.check("cuEventRecord", d.drv.cuEventRecord(ev[1], d.stream)); err != nil {
		b.Fatal(err)
	}
	if err := d.drv.check("cuEventSynchronize", d.drv.cuEventSynchronize(ev[1])); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	var ms float32
	if err := d.drv.check("cuEventElapsedTime", d.drv.cuEventElapsedTime(&ms, ev[0], ev[1])); err != nil {
		b.Fatal(err)
	}
	return ms
}
