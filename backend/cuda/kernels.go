package cuda

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/apr-llm/apr/tensor"
)

// The kernels are CUDA C in kernels/kernels.cu (which includes the other kernels/*.cuh files), compiled to PTX for sm_90
// by nvcc (CUDA 13) and committed; the driver JIT-compiles the PTX when the
// module loads. Regenerate on a machine with the CUDA toolkit; the second
// step records the sources' hash in kernels/kernels.ptx.sources, which
// TestPTXBuiltFromSources checks (without a GPU) against the sources:
//
//go:generate nvcc -ptx -arch=sm_90 -O3 -o kernels/kernels.ptx kernels/kernels.cu
//go:generate go test -run TestPTXBuiltFromSources -update-ptx-sources .

//go:embed kernels/kernels.ptx
var embeddedPTX []byte

// ptxEnv names a PTX file that replaces the embedded kernels (to test
// freshly compiled kernels without rebuilding).
const ptxEnv = "APR_CUDA_PTX"

// kernelPTX returns the kernels' PTX.
func kernelPTX() ([]byte, error) {
	if p := os.Getenv(ptxEnv); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("cuda: %s: %w", ptxEnv, err)
		}
		return b, nil
	}
	if len(embeddedPTX) == 0 {
		return nil, errors.New("cuda: kernels not built (run go generate ./backend/cuda with nvcc)")
	}
	return embeddedPTX, nil
}

// Threads per block of the row-per-warp kernels (8 weight rows a block:
// MM_WARPS in kernels.cu).
const matvecThreads = 256

// mmTile is the activation rows a matrix-product block takes when a pass
// has more than one (the kernels' _r16 instances); one row uses _r1.
const mmTile = 16

// weightTypes are the weight types the device multiplies by, with the
// blocks of each quantized type a warp takes in one pass of the matrix
// kernels (TQ*::PER in kernels.cu; 0 for float types). Every type has
// kernels named after it (kernelName): matmul_T_r1, matmul_T_r16 and
// get_rows_T; quantized types also matmul_T_mv and mmq_T.
var weightTypes = map[tensor.DType]int{
	tensor.Q8_0: 32, tensor.Q4_0: 32, tensor.Q5_0: 32,
	tensor.Q4_K: 8, tensor.Q5_K: 8, tensor.Q6_K: 4,
	tensor.F32: 0, tensor.F16: 0, tensor.BF16: 0,
}

// kernelName is the kernel prefix's instance for weight type dt
// ("matmul_" and Q4_K: "matmul_q4_k").
func kernelName(prefix string, dt tensor.DType) string {
	return prefix + strings.ToLower(dt.String())
}

// mmqMinRows is the fewest activation rows that the tensor-core mmq
// kernels take (blocks of 128 threads computing 64 x 64 outputs).
const mmqMinRows = 16

// The mmq kernels give each block 64 weight rows x 64 activation rows and
// walk the whole row length in it, so a product of few activation rows
// launches few blocks: ceilDiv(rows, 64), 24 for a 1.5B model's o and
// down products, on 132 SMs. The _r16 kernels (a warp a weight row, 16
// activation rows a block row) load each weight block once per 16 rows
// and take time in proportion to the rows. BenchmarkPassProducts on an
// H200 (1.5B Q4_K_M shapes, staged K-quant mmq), us per product, mmq /
// _r16: 16 rows: q+k 15.4 / 15.9, v (Q6_K) 18.9 / 12.5, gate+up 30 / 97,
// down (Q6_K) 91 / 61, LM head (Q6_K) 230 / 564; 32 rows: q+k 15.6 / 34,
// v 18.9 / 12.7, down 91 / 81; 48 rows: down 94 / 154. So below
// mmqAllRows rows mmq takes the matrices of at least mmqMinBlocks 64-row
// blocks and the others from mmqSmallRows rows (Q6_K's from
// mmqSmallRowsQ6K). Both add each row's block terms in block order: the
// choice changes no result. Before either, K-quant products of few tiles
// or long rows run split (terms.go). Variables for the benchmarks that
// compare.
var (
	mmqAllRows   = 64
	mmqMinBlocks = 128
	// mmqSmallRows are the fewest rows from which the small matrices of a
	// type take mmq.
	mmqSmallRows, mmqSmallRowsQ6K = mmqMinRows, 48
)

// useMMQ reports whether the product of a rows-row matrix of quantized
// type dt by m activation rows runs the mmq kernels.
func useMMQ(dt tensor.DType, rows, m int) bool {
	small := mmqSmallRows
	if dt == tensor.Q6_K {
		small = mmqSmallRowsQ6K
	}
	switch {
	case m < mmqMinRows:
		return false
	case m >= mmqAllRows, m >= small, ceilDiv(rows, 64) >= mmqMinBlocks:
		return true
	}
	return false
}

// mmqFewRows is the fewest activation rows from which a product of many
// 64-row blocks (mmqMinBlocks or more: gate/up, the LM head) and long rows
// (mmqFewRowsCols columns or more) takes mmq below mmqMinRows
// (fewRowsMMQ); a variable for the benchmarks that compare.
// BenchmarkPassProducts (H100, 1.5B shapes, 8 rows, us, _r16 / mmq):
// gate+up Q8_0 38.3 / 28.2 (K-split 27.7), gate+up Q4_K 48.2 / 30.2, LM
// head Q6_K 307.5 / 224.9; but qkv Q8_0 8.6 / 15.2, o Q4_K 8.6 / 15.6,
// down Q6_K 36.7 / 89.1 (split 30.4), down Q8_0 27.7 / 71.4 (K-split
// 40.7). At 2 and 4 rows _r16 wins on every shape (gate+up Q8_0 16.2 /
// 27.2 K-split, 23.3 / 27.4). BenchmarkStreamsSynthetic, 8 streams, ms a
// pass, _r16 -> mmq for gate/up and the head: 1.5B Q4_K_M 4.112 -> 3.445,
// 1.5B Q8_0 3.487 -> 3.093, but 0.5B Q4_K_M (896 columns) 1.710 -> 1.940,
// hence mmqFewRowsCols.
var mmqFewRows = 8

// mmqFewRowsCols is the fewest columns of a matrix that fewRowsMMQ sends
// to mmq (see mmqFewRows).
const mmqFewRowsCols = 1536

// fewRowsMMQ reports whether a product of m < mmqMinRows activation rows,
// which useMMQ leaves to _r16, runs mmq instead: from mmqFewRows rows,
// for a matrix of at least mmqMinBlocks 64-row blocks and mmqFewRowsCols
// columns of a K-quant (staged mmq) or of a 32-element type whose rows
// allow mmq32's copies.
func (d *Device) fewRowsMMQ(w *matrix, act devptr, actStride, m int) bool {
	if m < mmqFewRows || m >= mmqMinRows || ceilDiv(w.rows, 64) < mmqMinBlocks || w.cols < mmqFewRowsCols {
		return false
	}
	if _, ok := mmq32Names[w.dt]; ok {
		return mmq32On && mmq32Unit(w, act, actStride) != 0
	}
	return splitType(w.dt)
}

// actType is the activation encoding a weight type's matrix product reads:
// Q8_0 or Q8_K blocks for quantized weights, float32 otherwise (as
// quant.VecDotType).
func actType(dt tensor.DType) tensor.DType {
	switch dt {
	case tensor.Q8_0, tensor.Q4_0, tensor.Q5_0:
		return tensor.Q8_0
	case tensor.Q4_K, tensor.Q5_K, tensor.Q6_K:
		return tensor.Q8_K
	}
	return tensor.F32
}

// matrix is a weight matrix [rows, cols] resident on the device in its
// stored encoding.
type matrix struct {
	name       string
	dt         tensor.DType
	rows, cols int
	rowBytes   int
	ptr        devptr
}

// checkMatrix reports whether the device can multiply by t.
func checkMatrix(t *tensor.Tensor) error {
	if len(t.Shape) != 2 {
		return fmt.Errorf("tensor %s: want a matrix, shape is %v", t.Name, t.Shape)
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	if _, ok := weightTypes[t.DType]; !ok {
		return fmt.Errorf("tensor %s: the CUDA backend has no kernel for %v weights", t.Name, t.DType)
	}
	if (t.DType == tensor.F16 || t.DType == tensor.BF16) && t.Shape[1]%2 != 0 {
		return fmt.Errorf("tensor %s: %v rows of odd length %d", t.Name, t.DType, t.Shape[1])
	}
	if t.DType == tensor.F32 && t.Shape[1]%2 != 0 {
		return fmt.Errorf("tensor %s: F32 rows of odd length %d", t.Name, t.Shape[1])
	}
	return nil
}

// uploadMatrix copies a weight matrix to the device.
func (d *Device) uploadMatrix(t *tensor.Tensor) (*matrix, error) {
	if err := checkMatrix(t); err != nil {
		return nil, err
	}
	p, err := d.upload(t.Data[:t.Shape[0]*t.RowBytes()])
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	return &matrix{name: t.Name, dt: t.DType, rows: t.Shape[0], cols: t.Shape[1], rowBytes: t.RowBytes(), ptr: p}, nil
}

// uploadStacked copies matrices of one type and width stacked row-wise
// ([a; b; ...]) to the device as one matrix, so that one launch multiplies
// by all of them. It returns nil when their types or widths differ.
func (d *Device) uploadStacked(name string, ts ...*tensor.Tensor) (*matrix, error) {
	var data []byte
	rows := 0
	for _, t := range ts {
		if err := checkMatrix(t); err != nil {
			return nil, err
		}
		if t.DType != ts[0].DType || t.Shape[1] != ts[0].Shape[1] {
			return nil, nil
		}
		data = append(data, t.Data[:t.Shape[0]*t.RowBytes()]...)
		rows += t.Shape[0]
	}
	p, err := d.upload(data)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	t := ts[0]
	return &matrix{name: name, dt: t.DType, rows: rows, cols: t.Shape[1], rowBytes: t.RowBytes(), ptr: p}, nil
}

// quantize encodes n floats at x (rows of a multiple of 32) as Q8_0 blocks
// into q80 and/or Q8_K blocks into q8k (0: not wanted).
func (d *Device) quantize(x devptr, n int, q80, q8k devptr) error {
	if q80 == 0 && q8k == 0 {
		return nil
	}
	return d.launch("quantize", ceilDiv(ceilDiv(n, 256)*32, matvecThreads), matvecThreads, 0, x, int64(n), q80, q8k)
}

// quantizeAct encodes n floats at x as vt (Q8_0 or Q8_K) into out.
func (d *Device) quantizeAct(vt tensor.DType, x, out devptr, n int) error {
	switch vt {
	case tensor.Q8_0:
		return d.quantize(x, n, out, 0)
	case tensor.Q8_K:
		return d.quantize(x, n, 0, out)
	}
	return fmt.Errorf("cuda: no activation quantizer for %v", vt)
}

// matmul computes y[c] (+)= W·act[c] + bias for m activation rows; act is
// in actType(w.dt) with rows actStride bytes apart, y rows are yStride
// floats apart; bias may be 0.
func (d *Device) matmul(w *matrix, act devptr, actStride int, y devptr, yStride int, bias devptr, accumulate bool, m int) error {
	per := weightTypes[w.dt]
	if ran, err := d.blasMatmul(w, act, actStride, y, yStride, bias, accumulate, m); ran {
		return err
	}
	if ran, err := d.mmf(w, act, actStride, y, yStride, bias, accumulate, m); ran {
		return err
	}
	mmq := per > 0 && (useMMQ(w.dt, w.rows, m) || d.fewRowsMMQ(w, act, actStride, m))
	if per > 0 && m > 1 {
		if ran, err := d.matmulSplit(w, act, actStride, y, yStride, bias, accumulate, m, mmq); ran {
			return err
		}
	}
	if mmq {
		if ran, err := d.mmq32(w, act, actStride, y, yStride, bias, accumulate, m); ran {
			return err
		}
		return d.launch2(kernelName("mmq_", w.dt), ceilDiv(w.rows, 64), ceilDiv(m, 64), 128, 0,
			mmArgs(w, act, actStride, y, yStride, bias, accumulate, m)...)
	}
	if per == 0 && m == 1 {
		if ran, err := d.mvf(w, act, y, bias, accumulate); ran {
			return err
		}
	}
	if per > 0 && m == 1 {
		nb := w.cols / w.dt.BlockSize()
		name := kernelName("matmul_", w.dt) + "_mv"
		g := d.planRows(w.rows, nb, per)
		g = d.capPlan(name, g, ceilDiv(w.rows, g.rpc), nb)
		return d.launch2(name, ceilDiv(w.rows, g.rpc), 1, 32*g.warps, 4*g.rpc*nb,
			append(mmArgs(w, act, actStride, y, yStride, bias, accumulate, m), g.rpc, g.arg())...)
	}
	name, tile := kernelName("matmul_", w.dt)+"_r1", 1
	if m > 1 {
		name, tile = kernelName("matmul_", w.dt)+"_r16", mmTile
	}
	return d.launch2(name, ceilDiv(w.rows*32, matvecThreads), ceilDiv(m, tile), matvecThreads, 0,
		mmArgs(w, act, actStride, y, yStride, bias, accumulate, m)...)
}

// mmArgs are the parameters every matrix-product kernel starts with
// (MM_PARAMS in kernels/matvec.cuh), in their order.
func mmArgs(w *matrix, act devptr, actStride int, y devptr, yStride int, bias devptr, accumulate bool, m int) []any {
	return []any{w.ptr, act, int64(actStride), y, yStride, bias, w.rows, w.cols, int64(w.rowBytes), boolInt(accumulate), m}
}

// mvTargetWarps is the fewest (group, pass) items for which a one-row
// product takes groups of 4 (else 2, else 1) weight rows a warp: fewer
// items would leave SMs idle. BenchmarkMatVec on an H200 (1.5B Q4_K_M
// shapes): groups of 4 take ffn_down (3456 items) in 6.8 us, 2 in 7.6 us;
// gate+up 8.7 us (1.78 TB/s) against 12.9 us a row at a time; the small
// q/k/v/o products are ~4-6 us either way. With blocks of 3 items by unit
// (mvItems) and groups of 2 rows for one-pass rows (mvOnePassRW) 2048
// still wins (BenchmarkDecodeVariants, H100, tok/s for 256 / 512 / 1024 /
// 2048 / 4096: 1.5B Q4_K_M 756.2, 768.0, 767.1, 766.2, 748.9; 1.5B Q8_0
// 709.8, 709.7, 717.3, 724.2, 694.1; 0.5B Q4_K_M 1195, 1198, 1218, 1227,
// 1167; 0.5B Q8_0 1222, 1234, 1249, 1247, 1226). A variable for the tests
// of the smaller splits and the benchmarks (APR_CUDA_TUNE "mvtarget=N").
var mvTargetWarps = 2048

// mvSharedBytes bounds a _mv block's terms in shared memory.
const mvSharedBytes = 48 << 10

// mvUnits says when the _mv and mvx kernels' warp items are units
// (matvec_q's passu: per blocks of a block's rows in (group, block) order,
// no idle lanes where a row's blocks are not a multiple of per) instead of
// (group, pass) pairs: 0 never, 1 where units take at most three quarters
// of the items (a 1,536-column row of Q4_K, Q6_K or Q8_0 blocks: 6 of 8),
// 2 always. A variable for the tests' comparisons and the benchmarks
// (APR_CUDA_TUNE "nounits", "allunits"). H100, BenchmarkMatVec (us, by
// pass / by unit): 1.5B gate+up Q4_K 8.38-8.41 / 6.98-7.02, LM head Q6_K
// 87.3-87.5 / 79.9-80.3; BenchmarkDecodeVariants (tok/s, never / this rule
// / always): 1.5B Q4_K_M 727.5 / 735.6 / 735.5, 1.5B Q8_0 699.1 / 705.5 /
// 703.4, 0.5B Q4_K_M 1205 / 1205 / 1195 (its 896-column Q5_0 rows: 8
// items to 7, not taken).
var mvUnits = 1

// mvItems, when > 0, sizes the blocks of a plan by units to about mvItems
// items (warps) each: ceil(mvItems*per/nb) groups of rows. Small blocks
// whose items are whole (no idle lanes) won: BenchmarkDecodeVariants
// (H100, tok/s, two rounds each within 0.2) for 1, 2, 3, 4, 5, 6 (the
// items of planMatvec's 8 groups) and 8: 1.5B Q4_K_M 735.2, 733.1,
// 767.5, 758.9, 728.9, 738.3, 707.3; 1.5B Q8_0 719.9, 723.9, 723.7,
// 712.4, 704.9, 705.0, 692.5; 0.5B Q4_K_M (no unit plans) 1207 for all.
// A variable for the benchmarks (APR_CUDA_TUNE "mvitems=N").
var mvItems = 3

// mvOnePassRW, when > 0, caps the weight rows of a group of a plan by
// pass whose rows take one pass (0.5B's 896-column Q5_0 and Q8_0 rows:
// ffn gate/up and the LM head). BenchmarkDecodeVariants (H100, tok/s, two
// rounds; groups of at most 4 / 2 / 1 rows in every plan by pass): 0.5B
// Q4_K_M 1203 / 1223 / 1176, 0.5B Q8_0 1232 / 1242 / 1217, but 1.5B Q4_K_M
// 766.6 / 746.7 / 712.4 and 1.5B Q8_0 722.3 / 690.6 / 676.8 (their ffn
// down: 8,960 columns, 9 passes), so only one-pass rows take 2. At most 2
// rows in every plan, by unit too, lost on 1.5B (757.8, 682.6). A variable
// for the benchmarks (APR_CUDA_TUNE "onepassrw=N").
var mvOnePassRW = 2

// mvPassItems, when > 0, sizes the blocks of a plan by pass to about
// mvPassItems items each instead of 8. Smaller blocks by pass lost where
// they are taken (BenchmarkDecodeVariants, H100, 0.5B Q4_K_M, tok/s: 8
// items 1205, 2 1186, 3 1179, 4 1196; by unit everywhere with 3 items
// 1169): not used. A variable for the benchmarks (APR_CUDA_TUNE
// "passitems=N").
var mvPassItems = 0

// matvecPlan is how a _mv kernel splits a one-row product: rw weight rows
// a warp item (sharing the activation's loads), rpc rows a block, warps a
// block (one per item, at most 32), items units when units.
type matvecPlan struct {
	rw, rpc, warps int
	units          bool
}

// arg is the plan's rw kernel parameter (matvec_rw's): rw, plus 8 for
// units.
func (p matvecPlan) arg() int {
	if p.units {
		return p.rw + 8
	}
	return p.rw
}

// planMatvec picks the _mv split of a rows x nb-block matrix whose passes
// take per blocks each.
func planMatvec(rows, nb, per int) matvecPlan {
	passes := ceilDiv(nb, per)
	rw := 4
	for rw > 1 && (ceilDiv(rows, rw)*passes < mvTargetWarps || 4*rw*nb > mvSharedBytes) {
		rw /= 2
	}
	// By pass, groups of about 8 items a block (mvPassItems).
	groups := max(1, min(8, ceilDiv(8, passes)))
	if mvPassItems > 0 {
		groups = min(max(1, ceilDiv(mvPassItems, passes)), ceilDiv(rows, rw))
	}
	fit := func(g int) int {
		for g > 1 && 4*g*rw*nb > mvSharedBytes {
			g--
		}
		return g
	}
	groups = fit(groups)
	items := groups * passes
	units := mvUnits == 2 || mvUnits == 1 && 4*ceilDiv(groups*nb, per) <= 3*items
	if !units && passes == 1 && mvOnePassRW > 0 && rw > mvOnePassRW {
		rw = mvOnePassRW
		groups = fit(groups)
	}
	if units {
		if mvItems > 0 {
			groups = fit(min(max(1, ceilDiv(mvItems*per, nb)), ceilDiv(rows, rw)))
		}
		items = ceilDiv(groups*nb, per)
	}
	return matvecPlan{rw: rw, rpc: groups * rw, warps: min(32, items), units: units}
}

// getRows decodes, for each of the m rows of a pass, the row of w that the
// row's token (info) names to float32, m rows of w.cols at out.
func (d *Device) getRows(w *matrix, out, info devptr, m int) error {
	if _, ok := weightTypes[w.dt]; !ok {
		return fmt.Errorf("cuda: no row kernel for %v", w.dt)
	}
	return d.launch2(kernelName("get_rows_", w.dt), ceilDiv(w.cols, 256), m, 256, 0, w.ptr, out, info, w.cols, int64(w.rowBytes))
}

// rmsNorm writes w * x/rms(x) for m rows of n values to out, with ggml's
// numerics (cpu's RMSNormGGML) when ggml is set, else transformers'
// (RMSNorm); output row r reads row sel[r] of x when sel is not 0. The
// output is also quantized into q80 and/or q8k when not 0.
func (d *Device) rmsNorm(x, w, out devptr, n, m int, eps float32, ggml bool, sel, q80, q8k devptr) error {
	return d.rmsNormPre(x, w, out, n, m, eps, ggml, sel, q80, q8k, kvRows{})
}

// kvRows names the cache rows a one-row pass's attention will read
// (rmsnorm's pk, pv, info, slotBytes, rowBytes): the layer's key and
// value caches, the pass state, a slot's and a position's bytes. The zero
// value asks for none.
type kvRows struct {
	kc, vc, info        devptr
	slotBytes, rowBytes int
}

// kvPrefetch makes a one-row pass's attention norm ask for the layer's
// cache rows in L2 before its wait (kvRows). A variable for the tests'
// comparisons (APR_CUDA_TUNE "nokvpre").
var kvPrefetch = true

// rmsNormPre is rmsNorm that also asks for the cache rows kv in L2.
func (d *Device) rmsNormPre(x, w, out devptr, n, m int, eps float32, ggml bool, sel, q80, q8k devptr, kv kvRows) error {
	return d.launch("rmsnorm", m, rmsThreads(n), 0, x, w, out, n, eps, boolInt(ggml), sel, q80, q8k,
		kv.kc, kv.vc, kv.info, int64(kv.slotBytes), kv.rowBytes)
}

// rmsThreads is the block size of the rmsnorm kernels for rows of n values:
// a thread for every rmsPerThread values. rms_scale's thread t sums
// elements 8t..8t+7 whenever the block has n/8 threads or more, and the
// threads past them add zeros, so every rmsPerThread up to 8 gives the
// same bits; the fewer warps, the shorter the block's barriers and its
// first thread's sum of the warps' sums.
func rmsThreads(n int) int {
	return min(1024, max(32, ceilDiv(ceilDiv(n, rmsPerThread), 32)*32))
}

// rmsPerThread is the values of a row a thread of rmsnorm takes (rmsThreads:
// more than 8 would change the bits). A variable for the tests'
// comparisons (APR_CUDA_TUNE "rmsdiv=N").
var rmsPerThread = 8

// ropeStore rotates the queries and keys of m rows of qkv (each stride
// floats: heads x dim queries, then kvHeads x dim keys and as many values)
// at their positions (info) and stores keys and values in the rows' slots
// of the caches kc and vc (slotBytes each).
func (d *Device) ropeStore(qkv devptr, stride int, invFreq devptr, heads, kvHeads, dim int, info devptr, thetaScale float32, style int, kc, vc devptr, f16 bool, slotBytes, m int) error {
	n := (heads+kvHeads)*dim/2 + kvHeads*dim
	return d.launch2("rope_store", ceilDiv(n, 256), m, 256, 0, qkv, stride, invFreq, heads, kvHeads, dim, info,
		thetaScale, style, kc, vc, boolInt(f16), int64(slotBytes))
}

// siluQuant writes silu(gate) * up for m rows of gu (gate then up, n
// floats each) to out (m x n), with ggml's exponential (cpu's SiLUMulGGML)
// when ggml is set, and quantizes the result into q80 and/or q8k when not 0.
func (d *Device) siluQuant(gu, out devptr, n, m int, ggml bool, q80, q8k devptr) error {
	if q80 == 0 && q8k == 0 {
		if ran, err := d.blasSiluSplit(gu, out, n, m, ggml); ran {
			return err
		}
	}
	total := n * m
	return d.launch("silu_quant", ceilDiv(ceilDiv(total, 256)*32, matvecThreads), matvecThreads, 0,
		gu, out, n, int64(total), boolInt(ggml), q80, q8k)
}

// add sets x += y over n values.
func (d *Device) add(x, y devptr, n int) error {
	return d.launch("add", ceilDiv(n, 256), 256, 0, x, y, n)
}

// argmaxParts is the number of blocks of argmax's first stage; its
// scratch holds argmaxParts floats and as many int32.
const argmaxParts = 64

// argmax writes sample.Argmax's answer for n values (the first of the
// largest that are not NaN; 0 when x[0] is NaN) to out (an int32), using
// scratch (8*argmaxParts bytes). With state (a pass state, not 0) it also
// readies the next decode step there and writes the answer to ring
// (argmax_final in kernels/pointwise.cuh).
func (d *Device) argmax(x devptr, n int, scratch, out, state, ring devptr) error {
	pv, pi := scratch, scratch+4*argmaxParts
	if err := d.launch("argmax_part", argmaxParts, 1024, 0, x, n, pv, pi); err != nil {
		return err
	}
	return d.launch("argmax_final", 1, 64, 0, pv, pi, argmaxParts, out, x, state, ring)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
