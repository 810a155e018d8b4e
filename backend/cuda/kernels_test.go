package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/apr-llm/apr/backend/cpu"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/sample"
	"github.com/apr-llm/apr/tensor"
)

// testDevice returns the device, skipping the test on machines without a
// CUDA driver (CI), and binds the calling goroutine to the context.
func testDevice(t testing.TB) *Device {
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
	t testing.TB
	d *Device
}

func newBuffers(t testing.TB, d *Device) *buffers { return &buffers{t: t, d: d} }

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

func (b *buffers) readInts(p devptr, n int) []int32 {
	v := make([]int32, n)
	if err := b.d.download(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*n), p); err != nil {
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

// ints uploads int32 values.
func (b *buffers) ints(v []int32) devptr {
	return b.bytes(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
}

// rowInfo is the kernels' per-row state (token, position, slot, 0).
func rowInfo(rows ...Row) []int32 {
	v := make([]int32, 0, 4*len(rows))
	for _, r := range rows {
		v = append(v, int32(r.Token), int32(r.Pos), int32(r.Slot), 0)
	}
	return v
}

// quantTypes are the weight types with device matrix kernels.
var quantTypes = []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.F16, tensor.BF16, tensor.F32}

// TestMatMul compares every weight type's matrix product, for one
// activation row (the _mv kernels of quantized types, with groups of 1, 2
// and 4 weight rows and one or several passes a row; _r1 of float types),
// 7 and 33 (_r16 and mmq, partial tiles; with rows of 8,960 columns the
// split products of terms.go: _rt with each pass of a row its own block,
// and the K-quants' mmq_T_t with a block a super-block) and 70 (the
// tensor-core mmq kernels of quantized types, partial tiles, and the
// K-quants' split mmq), with quant.VecDot on the same quantized
// activations, accumulating with a bias and overwriting without.
func TestMatMul(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(3, 4))
	const rows = 77
	defer func(w int) { mvTargetWarps = w }(mvTargetWarps)
	defer func(on bool) { termsEnabled = on }(termsEnabled)
	if err := d.initTerms(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cols, m, targetWarps int }{
		{512, 1, 4096}, {512, 1, 1}, {2304, 1, 4096}, {2304, 1, 100}, {2304, 1, 1},
		{512, 7, 0}, {512, 70, 0}, {2304, 7, 0}, {2304, 33, 0}, {8960, 7, 0}, {8960, 33, 0},
	} {
		for _, dt := range quantTypes {
			cols, m := tc.cols, tc.m
			if tc.targetWarps > 0 {
				mvTargetWarps = tc.targetWarps
			}
			rb, err := dt.RowBytes(cols)
			if err != nil {
				t.Fatal(err)
			}
			wq := make([]byte, rows*rb)
			if err := quant.Quantize(dt, randn(r, rows*cols, 1), wq); err != nil {
				t.Fatal(err)
			}
			vt := quant.VecDotType(dt)
			if vt != actType(dt) {
				t.Fatalf("%v: actType %v, quant.VecDotType %v", dt, actType(dt), vt)
			}
			ab, _ := vt.RowBytes(cols)
			act := make([]byte, m*ab)
			for c := range m {
				if err := quant.QuantizeActivation(vt, randn(r, cols, 1), act[c*ab:(c+1)*ab]); err != nil {
					t.Fatal(err)
				}
			}
			bias, y0 := randn(r, rows, 1), randn(r, rows*m, 1)
			want := make([]float32, rows*m)
			for c := range m {
				for i := range rows {
					want[c*rows+i] = y0[c*rows+i] + (quant.VecDot(dt, wq[i*rb:(i+1)*rb], act[c*ab:(c+1)*ab], cols) + bias[i])
				}
			}
			plain := make([]float32, rows*m)
			for c := range m {
				for i := range rows {
					plain[c*rows+i] = quant.VecDot(dt, wq[i*rb:(i+1)*rb], act[c*ab:(c+1)*ab], cols)
				}
			}
			w := &matrix{name: "w", dt: dt, rows: rows, cols: cols, rowBytes: rb, ptr: b.bytes(wq)}
			a, bp := b.bytes(act), b.floats(bias)
			// Passes of several rows run with the split products on
			// (terms.go) and off (mmq or _r16).
			for _, split := range []bool{true, false} {
				if !split && m == 1 {
					continue
				}
				termsEnabled = split
				y := b.floats(y0)
				if err := d.matmul(w, a, ab, y, rows, bp, true, m); err != nil {
					t.Fatal(err)
				}
				what := fmt.Sprintf("%v matmul of %d rows, %d columns, mvTargetWarps %d, split %v", dt, m, cols, mvTargetWarps, split)
				compare(t, what+" (accumulate, bias)", b.readFloats(y, rows*m), want, 1e-5)
				y = b.poisoned(4 * rows * m)
				if err := d.matmul(w, a, ab, y, rows, 0, false, m); err != nil {
					t.Fatal(err)
				}
				compare(t, what, b.readFloats(y, rows*m), plain, 1e-5)
			}
		}
	}
}

func TestGetRows(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 9, 512
	tokens := []int{7, 2, 7}
	info := make([]Row, len(tokens))
	for i, tok := range tokens {
		info[i] = Row{Token: tok}
	}
	for _, dt := range quantTypes {
		rb, _ := dt.RowBytes(cols)
		wq := make([]byte, rows*rb)
		if err := quant.Quantize(dt, randn(r, rows*cols, 1), wq); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(tokens)*cols)
		for i, tok := range tokens {
			if err := quant.Dequantize(dt, wq[tok*rb:(tok+1)*rb], want[i*cols:(i+1)*cols]); err != nil {
				t.Fatal(err)
			}
		}
		w := &matrix{dt: dt, rows: rows, cols: cols, rowBytes: rb, ptr: b.bytes(wq)}
		out := b.poisoned(4 * len(want))
		if err := d.getRows(w, out, b.ints(rowInfo(info...)), len(tokens)); err != nil {
			t.Fatal(err)
		}
		compare(t, dt.String()+" rows", b.readFloats(out, len(want)), want, 0)
	}
}

// TestRMSNorm checks both numerics on two rows read through a selection
// (reversed), and the fused quantization of the output.
func TestRMSNorm(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(7, 8))
	const n = 1536
	x, w := randn(r, 2*n, 3), randn(r, n, 1)
	swapped := append(append([]float32(nil), x[n:]...), x[:n]...)
	be := cpu.New(1)
	defer be.Close()
	want := make([]float32, 2*n)
	q80n, _ := tensor.Q8_0.RowBytes(n)
	q8kn, _ := tensor.Q8_K.RowBytes(n)
	for _, ggml := range []bool{false, true} {
		if ggml {
			be.RMSNormGGML(want, swapped, w, 2, 1e-6)
		} else {
			be.RMSNorm(want, swapped, w, 2, 1e-6)
		}
		out, q80, q8k := b.poisoned(4*2*n), b.poisoned(2*q80n), b.poisoned(2*q8kn)
		if err := d.rmsNorm(b.floats(x), b.floats(w), out, n, 2, 1e-6, ggml, b.ints([]int32{1, 0}), q80, q8k); err != nil {
			t.Fatal(err)
		}
		got := b.readFloats(out, 2*n)
		compare(t, fmt.Sprintf("rmsnorm (ggml %v)", ggml), got, want, 1e-6)
		for _, c := range []struct {
			vt  tensor.DType
			p   devptr
			per int
		}{{tensor.Q8_0, q80, q80n}, {tensor.Q8_K, q8k, q8kn}} {
			wantQ := make([]byte, 2*c.per)
			for row := range 2 {
				if err := quant.QuantizeActivation(c.vt, got[row*n:(row+1)*n], wantQ[row*c.per:(row+1)*c.per]); err != nil {
					t.Fatal(err)
				}
			}
			if gotQ := b.readBytes(c.p, 2*c.per); string(gotQ) != string(wantQ) {
				t.Errorf("rmsnorm's %v output differs from quant.QuantizeActivation of its floats", c.vt)
			}
		}
	}
}

// TestRoPEStore rotates two rows' queries and keys (at positions of two
// slots) and checks the rotated queries and the cached keys and values.
func TestRoPEStore(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(9, 10))
	const heads, kvHeads, dim, theta, ctx = 3, 2, 64, 1e6, 1300
	const kvDim = kvHeads * dim
	const stride = (heads+2*kvHeads)*dim + 5
	rows := []Row{{Slot: 1, Pos: 1234}, {Slot: 0, Pos: 17}}
	inv := make([]float32, dim/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(theta, float64(float32(2*i)/float32(dim))))
	}
	for style, rs := range []cpu.RopeStyle{cpu.RopeHF, cpu.RopeGGML} {
		for _, f16 := range []bool{false, true} {
			elem := kvElem(f16)
			slotBytes := ctx * kvDim * elem
			qkv := randn(r, len(rows)*stride, 1)
			want := append([]float32(nil), qkv...)
			rope := cpu.NewRope(dim, theta, rs)
			for i, row := range rows {
				w := want[i*stride:]
				rope.Apply(w[:heads*dim], heads, row.Pos)
				rope.Apply(w[heads*dim:(heads+kvHeads)*dim], kvHeads, row.Pos)
			}
			qd := b.floats(qkv)
			kc, vc := b.poisoned(2*slotBytes), b.poisoned(2*slotBytes)
			err := d.ropeStore(qd, stride, b.floats(inv), heads, kvHeads, dim, b.ints(rowInfo(rows...)),
				float32(math.Pow(theta, -2.0/dim)), style, kc, vc, f16, slotBytes, len(rows))
			if err != nil {
				t.Fatal(err)
			}
			got := b.readFloats(qd, len(qkv))
			for i := range rows {
				compare(t, "rope queries", got[i*stride:i*stride+heads*dim], want[i*stride:i*stride+heads*dim], 1e-6)
			}
			kb, vb := b.readBytes(kc, 2*slotBytes), b.readBytes(vc, 2*slotBytes)
			for i, row := range rows {
				at := row.Slot*slotBytes + row.Pos*kvDim*elem
				w := want[i*stride+heads*dim:]
				wk, wv := encodeKV(w[:kvDim], f16), encodeKV(w[kvDim:2*kvDim], f16)
				if string(kb[at:at+kvDim*elem]) != string(wk) || string(vb[at:at+kvDim*elem]) != string(wv) {
					t.Errorf("style %d f16 %v: slot %d position %d: cached keys or values differ from cpu's", style, f16, row.Slot, row.Pos)
				}
			}
		}
	}
}

// encodeKV returns cache values as the device stores them.
func encodeKV(v []float32, f16 bool) []byte {
	if !f16 {
		return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))...)
	}
	out := make([]byte, 0, 2*len(v))
	for _, x := range v {
		h := tensor.F32ToF16(x)
		out = append(out, byte(h), byte(h>>8))
	}
	return out
}

// TestAttention runs three rows of two slots (one row at a position below
// another row's) through the device attention, with a strided query as in
// the fused q/k/v buffer, and compares with the CPU backend's: Attention
// within 1e-5, ggml's flash attention bit for bit (one-chunk and, for a
// pass of 64 rows, tiled).
func TestAttention(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(11, 12))
	const heads, kvHeads, dim, n, ctx = 4, 2, 64, 37, 64
	const kvDim = kvHeads * dim
	const qStride = heads*dim + 2*kvDim
	be := cpu.New(1)
	defer be.Close()
	defer save(&attnMMAF16)()
	attnMMAF16 = false // ggml's tiled kernel for the 64-row pass
	rows := []Row{{Slot: 1, Pos: n - 1}, {Slot: 0, Pos: n - 1}, {Slot: 1, Pos: n - 9}}
	for _, f16 := range []bool{true, false} {
		elem := kvElem(f16)
		slotBytes := ctx * kvDim * elem
		caches := []*cpu.KVCache{cpu.NewKVCache(ctx, kvDim, f16), cpu.NewKVCache(ctx, kvDim, f16)}
		kh, vh := make([]byte, 2*slotBytes), make([]byte, 2*slotBytes)
		for s, c := range caches {
			for p := 0; p < n; p++ {
				k, v := randn(r, kvDim, 1), randn(r, kvDim, 1)
				c.Store(p, k, v)
				at := s*slotBytes + p*kvDim*elem
				copy(kh[at:], encodeKV(k, f16))
				copy(vh[at:], encodeKV(v, f16))
			}
		}
		kc, vc := b.bytes(kh), b.bytes(vh)
		q := randn(r, len(rows)*heads*dim, 2)
		qs := make([]float32, len(rows)*qStride)
		rc, rp := make([]*cpu.KVCache, len(rows)), make([]int, len(rows))
		for i, row := range rows {
			copy(qs[i*qStride:], q[i*heads*dim:(i+1)*heads*dim])
			rc[i], rp[i] = caches[row.Slot], row.Pos
		}
		info := b.ints(rowInfo(rows...))
		want := make([]float32, len(q))
		// run runs the rows as a pass of pass rows, which the host tells
		// the launch when hostPass (the tiled-only kernel from 64 rows).
		run := func(what string, fa bool, pass int, hostPass bool, tol float64) {
			a := attnArgs{heads: heads, kvHeads: kvHeads, dim: dim, ctx: ctx, scale: float32(1 / math.Sqrt(dim)),
				f16: f16, fa: fa, qStride: qStride, slotBytes: slotBytes, long: true}
			if hostPass {
				a.pass = pass
			}
			out := b.poisoned(4 * len(q))
			if err := d.attention(b.floats(qs), kc, vc, out, b.poisoned(4*len(rows)*heads*ctx), info, b.ints([]int32{int32(pass)}), a, len(rows)); err != nil {
				t.Fatal(err)
			}
			compare(t, what, b.readFloats(out, len(q)), want, tol)
		}
		be.Attention(want, q, rc, rp, len(rows), heads, kvHeads, dim)
		run("attention", false, len(rows), false, 1e-5)
		if !f16 {
			continue
		}
		be.FlashAttentionGGML(want, q, rc, rp, len(rows), heads, kvHeads, dim)
		run("attention_fa", true, len(rows), false, 0)
		// The tiled kernel, as ggml runs passes of 64 rows and more: the
		// CPU pass repeats the three rows.
		const pass = 64
		qp := make([]float32, 0, pass*heads*dim)
		cp, pp := make([]*cpu.KVCache, pass), make([]int, pass)
		for i := range pass {
			j := i % len(rows)
			qp, cp[i], pp[i] = append(qp, q[j*heads*dim:(j+1)*heads*dim]...), rc[j], rp[j]
		}
		wantPass := make([]float32, pass*heads*dim)
		be.FlashAttentionGGML(wantPass, qp, cp, pp, pass, heads, kvHeads, dim)
		copy(want, wantPass)
		run("attention_fa tiled", true, pass, false, 0)
		run("attention_fa_tiled", true, pass, true, 0)
	}
}

func TestPointwise(t *testing.T) {
	d := testDevice(t)
	b := newBuffers(t, d)
	r := rand.New(rand.NewPCG(13, 14))
	// Rows of 8-multiples run silu_quant's vector path (96: a warp's 256
	// outputs span rows), others its per-element path (36: no Q8_0 rows).
	for _, sh := range []struct{ n, m int }{{1024, 2}, {96, 3}, {36, 3}} {
		testSiluQuant(t, d, b, r, sh.n, sh.m)
	}
	const n = 1024
	x, y := randn(r, n, 1), randn(r, n, 1)
	want := append([]float32(nil), x...)
	cpu.Add(want, y)
	xd := b.floats(x)
	if err := d.add(xd, b.floats(y), n); err != nil {
		t.Fatal(err)
	}
	compare(t, "add", b.readFloats(xd, n), want, 0)

	const vocab = 151936
	logits := randn(r, vocab, 1)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		name string
		edit func(l []float32)
	}{
		{"tie", func(l []float32) { l[100000], l[120000] = 9, 9 }}, // the first wins
		{"tie at 5", func(l []float32) { l[5], l[151935] = 9, 9 }},
		{"tie at the end", func(l []float32) { l[151935], l[151934] = 9, 9 }},
		{"NaN elsewhere", func(l []float32) { l[77], l[100] = nan, 9 }}, // never a candidate
		{"NaN first", func(l []float32) { l[0], l[100] = nan, 9 }},      // token 0
		{"all -Inf", func(l []float32) { fill(l, -inf) }},
		{"-Inf and NaN", func(l []float32) { fill(l, -inf); l[3], l[0] = nan, -inf }},
		{"+Inf", func(l []float32) { l[7], l[9] = inf, inf }},
	} {
		l := append([]float32(nil), logits...)
		c.edit(l)
		want := sample.Argmax(l)
		out := b.poisoned(4)
		if err := d.argmax(b.floats(l), vocab, b.poisoned(8*argmaxParts), out, 0, 0); err != nil {
			t.Fatal(err)
		}
		if got := int(b.readInts(out, 1)[0]); got != want {
			t.Fatalf("argmax %s = %d, want sample.Argmax's %d", c.name, got, want)
		}
		// With a pass state: the next step's row 0 and the ring.
		st := b.ints([]int32{1, 41, 0, 0, 17, 300, 2, 0})
		ring := b.ints([]int32{-1, -1, -1, -1})
		if err := d.argmax(b.floats(l), vocab, b.poisoned(8*argmaxParts), out, st, ring); err != nil {
			t.Fatal(err)
		}
		gotSt, gotRing := b.readInts(st, 8), b.readInts(ring, 4)
		wantSt := []int32{1, 42, 0, 0, int32(want), 301, 2, 0}
		if !slices.Equal(gotSt, wantSt) {
			t.Fatalf("argmax %s: state %v, want %v", c.name, gotSt, wantSt)
		}
		// Step 41 writes the odd pair: the answer and its logit's bits.
		if gotRing[0] != -1 || gotRing[1] != -1 || int(gotRing[2]) != want || uint32(gotRing[3]) != math.Float32bits(l[want]) {
			t.Fatalf("argmax %s: ring %v, want [-1 -1 %d %#x]", c.name, gotRing, want, math.Float32bits(l[want]))
		}
	}
}

func fill(l []float32, v float32) {
	for i := range l {
		l[i] = v
	}
}

// testSiluQuant checks silu_quant on m rows of n outputs against cpu's
// SiLUMul / SiLUMulGGML and, where n is a multiple of 32, its Q8_0 output
// against quant's quantizer.
func testSiluQuant(t *testing.T, d *Device, b *buffers, r *rand.Rand, n, m int) {
	t.Helper()
	gu := randn(r, m*2*n, 3)
	gu[0], gu[1], gu[2] = 100, -100, -200 // ggml_expf's range limits
	for _, ggml := range []bool{false, true} {
		want := make([]float32, 0, m*n)
		for row := range m {
			g := append([]float32(nil), gu[row*2*n:row*2*n+n]...)
			if ggml {
				cpu.SiLUMulGGML(g, gu[row*2*n+n:(row+1)*2*n])
			} else {
				cpu.SiLUMul(g, gu[row*2*n+n:(row+1)*2*n])
			}
			want = append(want, g...)
		}
		q80n, err := tensor.Q8_0.RowBytes(n)
		out, q80 := b.poisoned(4*m*n), devptr(0)
		if err == nil {
			q80 = b.poisoned(m * q80n)
		}
		if err := d.siluQuant(b.floats(gu), out, n, m, ggml, q80, 0); err != nil {
			t.Fatal(err)
		}
		tol := 1e-6
		if ggml {
			tol = 0
		}
		got := b.readFloats(out, m*n)
		compare(t, fmt.Sprintf("silu_quant %dx%d (ggml %v)", m, n, ggml), got, want, tol)
		if q80 == 0 {
			continue
		}
		wantQ := make([]byte, m*q80n)
		if err := quant.QuantizeActivation(tensor.Q8_0, got, wantQ); err != nil {
			t.Fatal(err)
		}
		if gotQ := b.readBytes(q80, m*q80n); string(gotQ) != string(wantQ) {
			t.Errorf("silu_quant's Q8_0 output differs from quant.QuantizeActivation of its floats")
		}
	}
}
