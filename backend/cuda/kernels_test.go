package cuda

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// testDevice returns the device, skipping the test on machines without a
// CUDA driver (CI), and binds the calling goroutine to the context.
func testDevice(t *testing.T) *Device {
	t.Helper()
	if ok, why := Available(); !ok {
		t.Skipf("skipping CUDA test: %s", why)
	}
	d, _ := Open()
	unlock := d.bind()
	t.Cleanup(unlock)
	return d
}

// buffers tracks device allocations of one test.
type buffers struct {
	t *testing.T
	d *Device
}

func newBuffers(t *testing.T, d *Device) *buffers { return &buffers{t: t, d: d} }

func (b *buffers) bytes(v []byte) devptr {
	p, err := b.d.upload(v)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { b.d.free(p) })
	return p
}

func (b *buffers) floats(v []float32) devptr {
	return b.bytes(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
}

// poisoned allocates n bytes filled with 0xff (NaN as float32), so that
// an unwritten output shows.
func (b *buffers) poisoned(n int) devptr {
	v := make([]byte, n)
	for i := range v {
		v[i] = 0xff
	}
	return b.bytes(v)
}

func (b *buffers) readBytes(p devptr, n int) []byte {
	v := make([]byte, n)
	if err := b.d.download(v, p); err != nil {
		b.t.Fatal(err)
	}
	return v
}

func (b *buffers) readFloats(p devptr, n int) []float32 {
	v := make([]float32, n)
	if err := b.d.downloadF32(v, p); err != nil {
		b.t.Fatal(err)
	}
	return v
}

func randn(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

// compare fails when any |got-want| exceeds tol*(1+max|want|) or got is
// not finite.
func compare(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	limit := tol * (1 + maxAbs(want))
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) || math.IsInf(d, 0) {
			t.Fatalf("%s: element %d is %v (want %v)", what, i, got[i], want[i])
		}
		if d > worst {
			worst, at = d, i
		}
	}
	if worst > limit {
		t.Fatalf("%s: element %d: got %v, want %v (|diff| %.3g > %.3g)", what, at, got[at], want[at], worst, limit)
	}
	t.Logf("%s: max |diff| %.3g (limit %.3g)", what, worst, limit)
}

func TestQuantizeActivation(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(1, 2))
	const n = 1024
	x := randn(r, n, 1)
	for i := 256; i < 512; i++ { // an all-zero Q8_K block, a zero Q8_0 block
		x[i] = 0
	}
	x[600], x[601] = 5, -5 // equal magnitudes: the first sets the sign
	for _, vt := range []tensor.DType{tensor.Q8_0, tensor.Q8_K} {
		nb, _ := vt.RowBytes(n)
		want := make([]byte, nb)
		if err := quant.QuantizeActivation(vt, x, want); err != nil {
			t.Fatal(err)
		}
		out := b.poisoned(nb)
		if err := d.quantizeAct(vt, b.floats(x), out, n); err != nil {
			t.Fatal(err)
		}
		got := b.readBytes(out, nb)
		bad := 0
		for i := range want {
			if got[i] != want[i] {
				if bad == 0 {
					t.Errorf("%v: byte %d: got %#x, want %#x", vt, i, got[i], want[i])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%v: %d of %d bytes differ from quant.QuantizeActivation", vt, bad, nb)
		}
	}
}

func TestMatVec(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 77, 512
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q5_0, tensor.Q4_K, tensor.Q6_K, tensor.F16, tensor.BF16, tensor.F32} {
		func() {
			rb, err := dt.RowBytes(cols)
			if err != nil {
				t.Fatal(err)
			}
			wf := randn(r, rows*cols, 1)
			wq := make([]byte, rows*rb)
			for i := 0; i < rows; i++ {
				if err := quant.Quantize(dt, wf[i*cols:(i+1)*cols], wq[i*rb:(i+1)*rb]); err != nil {
					t.Fatal(err)
				}
			}
			x := randn(r, cols, 1)
			bias := randn(r, rows, 1)
			y0 := randn(r, rows, 1)
			vt := quant.VecDotType(dt)
			ab, _ := vt.RowBytes(cols)
			act := make([]byte, ab)
			if err := quant.QuantizeActivation(vt, x, act); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, rows)
			for i := range want {
				want[i] = y0[i] + (quant.VecDot(dt, wq[i*rb:(i+1)*rb], act, cols) + bias[i])
			}
			w := &matrix{name: "w", dt: dt, rows: rows, cols: cols, rowBytes: rb, ptr: b.bytes(wq)}
			xd := b.floats(x)
			a := xd
			if at := actType(dt); at != tensor.F32 {
				a = b.poisoned(ab)
				if err := d.quantizeAct(at, xd, a, cols); err != nil {
					t.Fatal(err)
				}
			}
			y := b.floats(y0)
			if err := d.matvec(w, a, y, b.floats(bias), true); err != nil {
				t.Fatal(err)
			}
			compare(t, dt.String()+" matvec (accumulate, bias)", b.readFloats(y, rows), want, 1e-5)
			// Overwrite, no bias.
			for i := range want {
				want[i] = quant.VecDot(dt, wq[i*rb:(i+1)*rb], act, cols)
			}
			y = b.poisoned(4 * rows)
			if err := d.matvec(w, a, y, 0, false); err != nil {
				t.Fatal(err)
			}
			compare(t, dt.String()+" matvec", b.readFloats(y, rows), want, 1e-5)
		}()
	}
}

func TestGetRow(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 9, 256
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.F16, tensor.BF16, tensor.F32} {
		rb, _ := dt.RowBytes(cols)
		wq := make([]byte, rows*rb)
		if err := quant.Quantize(dt, randn(r, rows*cols, 1), wq); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, cols)
		if err := quant.Dequantize(dt, wq[7*rb:8*rb], want); err != nil {
			t.Fatal(err)
		}
		w := &matrix{dt: dt, rows: rows, cols: cols, rowBytes: rb, ptr: b.bytes(wq)}
		out := b.poisoned(4 * cols)
		if err := d.getRow(w, out, 0, 7); err != nil {
			t.Fatal(err)
		}
		compare(t, dt.String()+" row", b.readFloats(out, cols), want, 0)
	}
}

func TestRMSNorm(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(7, 8))
	const n = 896
	x, w := randn(r, n, 3), randn(r, n, 1)
	want := make([]float32, n)
	be := cpu.New(1)
	defer be.Close()
	be.RMSNorm(want, x, w, 1, 1e-6)
	out := b.poisoned(4 * n)
	if err := d.rmsNorm(b.floats(x), b.floats(w), out, n, 1e-6, false); err != nil {
		t.Fatal(err)
	}
	compare(t, "rmsnorm", b.readFloats(out, n), want, 1e-6)

	be.RMSNormGGML(want, x, w, 1, 1e-6)
	if err := d.rmsNorm(b.floats(x), b.floats(w), out, n, 1e-6, true); err != nil {
		t.Fatal(err)
	}
	compare(t, "rmsnorm_ggml", b.readFloats(out, n), want, 0)
}

func TestRoPE(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(9, 10))
	const heads, dim, theta = 3, 64, 1e6
	for style, rs := range []cpu.RopeStyle{cpu.RopeHF, cpu.RopeGGML} {
		for _, pos := range []int{0, 1, 17, 1234} {
			v := randn(r, heads*dim, 1)
			want := append([]float32(nil), v...)
			cpu.NewRope(dim, theta, rs).Apply(want, heads, pos)
			inv := make([]float32, dim/2)
			for i := range inv {
				inv[i] = float32(1 / math.Pow(theta, float64(float32(2*i)/float32(dim))))
			}
			vd := b.floats(v)
			if err := d.rope(vd, b.floats(inv), heads, dim, 0, pos, float32(math.Pow(theta, -2.0/dim)), style); err != nil {
				t.Fatal(err)
			}
			compare(t, "rope", b.readFloats(vd, heads*dim), want, 1e-6)
		}
	}
}

func TestAttention(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(11, 12))
	const heads, kvHeads, dim, n, ctx = 4, 2, 64, 37, 64
	kvDim := kvHeads * dim
	be := cpu.New(1)
	defer be.Close()
	for _, f16 := range []bool{true, false} {
		c := cpu.NewKVCache(ctx, kvDim, f16)
		elem := 4
		if f16 {
			elem = 2
		}
		kc, vc := b.poisoned(ctx*kvDim*elem), b.poisoned(ctx*kvDim*elem)
		for p := 0; p < n; p++ {
			k, v := randn(r, kvDim, 1), randn(r, kvDim, 1)
			c.Store(p, k, v)
			if err := d.kvStore(b.floats(k), b.floats(v), kc, vc, 0, p, kvDim, f16); err != nil {
				t.Fatal(err)
			}
		}
		q := randn(r, heads*dim, 2)
		want := make([]float32, heads*dim)
		be.Attention(want, q, []*cpu.KVCache{c}, []int{n - 1}, 1, heads, kvHeads, dim)
		out := b.poisoned(4 * heads * dim)
		scale := float32(1 / math.Sqrt(dim))
		if err := d.attention(b.floats(q), kc, vc, out, b.poisoned(4*heads*ctx), heads, kvHeads, dim, 0, n, ctx, scale, f16, false, 0, 1); err != nil {
			t.Fatal(err)
		}
		compare(t, "attention", b.readFloats(out, heads*dim), want, 1e-5)
		if !f16 {
			continue
		}
		// ggml's flash attention, bit for bit.
		be.FlashAttentionGGML(want, q, []*cpu.KVCache{c}, []int{n - 1}, 1, heads, kvHeads, dim)
		if err := d.attention(b.floats(q), kc, vc, out, b.poisoned(4*heads*ctx), heads, kvHeads, dim, 0, n, ctx, scale, f16, true, 0, 1); err != nil {
			t.Fatal(err)
		}
		compare(t, "attention_fa", b.readFloats(out, heads*dim), want, 0)
		// The tiled kernel, as ggml runs passes of 64 rows and more.
		const rows = 64
		qs := make([]float32, 0, rows*heads*dim)
		cs, ps := make([]*cpu.KVCache, rows), make([]int, rows)
		for i := range rows {
			qs, cs[i], ps[i] = append(qs, q...), c, n-1
		}
		wantRows := make([]float32, rows*heads*dim)
		be.FlashAttentionGGML(wantRows, qs, cs, ps, rows, heads, kvHeads, dim)
		if err := d.attention(b.floats(q), kc, vc, out, b.poisoned(4*heads*ctx), heads, kvHeads, dim, 0, n, ctx, scale, f16, true, 0, rows); err != nil {
			t.Fatal(err)
		}
		compare(t, "attention_fa tiled", b.readFloats(out, heads*dim), wantRows[:heads*dim], 0)
	}
}

func TestPointwise(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(13, 14))
	const n = 1000
	g, u := randn(r, n, 3), randn(r, n, 1)
	want := append([]float32(nil), g...)
	cpu.SiLUMul(want, u)
	gd := b.floats(g)
	if err := d.siluMul(gd, b.floats(u), n, false); err != nil {
		t.Fatal(err)
	}
	compare(t, "silu_mul", b.readFloats(gd, n), want, 1e-6)

	g[0], g[1], g[2] = 100, -100, -200 // ggml_expf's range limits
	want = append(want[:0], g...)
	cpu.SiLUMulGGML(want, u)
	gd = b.floats(g)
	if err := d.siluMul(gd, b.floats(u), n, true); err != nil {
		t.Fatal(err)
	}
	compare(t, "silu_mul_ggml", b.readFloats(gd, n), want, 0)

	x, y := randn(r, n, 1), randn(r, n, 1)
	want = append([]float32(nil), x...)
	cpu.Add(want, y)
	xd := b.floats(x)
	if err := d.add(xd, b.floats(y), n); err != nil {
		t.Fatal(err)
	}
	compare(t, "add", b.readFloats(xd, n), want, 0)

	const vocab = 151936
	logits := randn(r, vocab, 1)
	logits[100000], logits[120000] = 9, 9 // a tie: the first wins
	out := b.poisoned(4)
	if err := d.argmax(b.floats(logits), vocab, out); err != nil {
		t.Fatal(err)
	}
	raw := b.readBytes(out, 4)
	if got := int(int32(uint32(raw[0]) | uint32(raw[1])<<8 | uint32(raw[2])<<16 | uint32(raw[3])<<24)); got != 100000 {
		t.Fatalf("argmax = %d, want 100000", got)
	}
}
