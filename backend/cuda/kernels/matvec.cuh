// ------------------------------------------------ matrix products
//
// y[c][r] (+)= W[r,:] · act[c] (+ bias[r]) for weight rows r and activation
// rows c < m: a warp per weight row, MM_WARPS rows a block (grid.x), R
// activation rows per block (grid.y). act rows are actStride bytes apart in
// the weights' dot type (Q8_0 blocks for Q4_0/Q5_0/Q8_0, Q8_K for the
// K-quants, float32 for float weights); y rows are yStride floats apart.
//
// Quantized types: each lane takes L of a block's lanes' share (32 weights
// a lane); the block's integer dot is exact in any order, and its float
// term (the block's scales applied as quant's portable Go kernels do) goes
// to shared memory; lane c then adds the pass's terms of activation row c
// one block after the other, so every row's sum is bit-identical to
// quant.VecDot's. Float weights: lanes take strided column pairs, summed by
// a warp tree.

#define MM_WARPS 8

// ld8u reads 32 bytes at a 2-byte aligned address as 8 words: aligned
// words funnel-shifted (the ninth only when p is not 4-byte aligned, so
// nothing past the 32 bytes is read).
__device__ __forceinline__ void ld8u(const u8* p, int v[8]) {
    unsigned long long a = (unsigned long long)p;
    const u32* b = (const u32*)(a & ~3ull);
    u32 sh = (u32)(a & 3) * 8;
    u32 w[9];
#pragma unroll
    for (int k = 0; k < 8; k++) w[k] = b[k];
    w[8] = sh ? b[8] : 0u;
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = (int)__funnelshift_r(w[k], w[k + 1], sh);
}

// ld_q8_0 reads a 34-byte Q8_0 block at a 2-byte aligned address as nine
// aligned words (from the block's first 4-byte boundary at or before it):
// the 32 quants into v, funnel-shifted, and the scale, returned. d and the
// quants come from the same loads; a block at a 4-byte boundary reads the
// 2 bytes after it, as ld8u of its quants does.
__device__ __forceinline__ float ld_q8_0(const u8* p, int v[8]) {
    unsigned long long a = (unsigned long long)p;
    const u32* b = (const u32*)(a & ~3ull);
    u32 sh = (a & 3) ? 32u : 16u;  // quants at bit sh of the word pair
    u32 w[9];
#pragma unroll
    for (int k = 0; k < 9; k++) w[k] = b[k];
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = (int)__funnelshift_rc(w[k], w[k + 1], sh);
    return h2f((u16)((w[0] >> (sh - 16)) & 0xffff));
}

// ld8v reads 32 bytes at a 16-byte aligned address in two vector loads.
__device__ __forceinline__ void ld8v(const u8* p, int v[8]) {
    int4 x = ((const int4*)p)[0], y = ((const int4*)p)[1];
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w, v[4] = y.x, v[5] = y.y, v[6] = y.z, v[7] = y.w;
}

// asum4 is the sum of 4 int8 of a word.
__device__ __forceinline__ int asum4(int a, int s) { return __dp4a(0x01010101, a, s); }

// spread4 moves bits 0..3 of h to bit 4 of bytes 0..3.
__device__ __forceinline__ int spread4(u32 h) {
    return (int)(((h & 1) << 4) | ((h & 2) << 11) | ((h & 4) << 18) | ((h & 8) << 25));
}

// vsub4 subtracts bytewise, modulo 256 (SWAR, no borrow between bytes).
__device__ __forceinline__ int vsub4(int a, int b) {
    u32 x = (u32)a, y = (u32)b;
    return (int)(((x | 0x80808080u) - (y & 0x7f7f7f7fu)) ^ ((x ^ ~y) & 0x80808080u));
}

// A 32-element block type's operand word k (0..31 step 4) of block wb, as
// signed bytes, and its float term.
template <int KIND>  // 0 Q8_0, 1 Q4_0, 2 Q5_0
struct Q32 {
    static const int BYTES = KIND == 0 ? 34 : (KIND == 1 ? 18 : 22);
    static __device__ __forceinline__ int word(const u8* wb, int k) {
        if (KIND == 0) return ld32u(wb + 2 + k);
        if (KIND == 1) {
            int q = k < 16 ? ld32u(wb + 2 + k) : (ld32u(wb + 2 + k - 16) >> 4);
            return vsub4(q & 0x0f0f0f0f, 0x08080808);
        }
        u32 qh = (u32)ld32u(wb + 2);
        int q = k < 16 ? ld32u(wb + 6 + k) : (ld32u(wb + 6 + k - 16) >> 4);
        return vsub4((q & 0x0f0f0f0f) | spread4((qh >> k) & 0xf), 0x10101010);
    }
    static __device__ __forceinline__ float term(int s, float wd, float ad) {
        if (KIND == 0) return __fmul_rn((float)s, __fmul_rn(wd, ad));
        if (KIND == 1) return __fmul_rn(__fmul_rn((float)s, wd), ad);
        return __fmul_rn(__fmul_rn(wd, ad), (float)s);
    }
};

// Each quantized weight type T describes its pass: LANES lanes a block
// (PER = 32/LANES blocks a pass), BYTES a block, ABYTES an activation
// block; wload reads lane sub's weight operands of a block into a T::W,
// aload the activation block's into a T::A, and wdot returns the block's
// term (in every lane: the integer parts of the block's lanes are added by
// shuffles, so every lane must call it). The integer dots are exact in any
// order; the float term is computed as quant's Go kernel does.

// TQ32 is the 32-element block types: a lane a block, its 32 quants as
// signed bytes against the Q8_0 activation's.
template <int KIND>
struct TQ32 {
    typedef Q32<KIND> Q;
    static const int LANES = 1, PER = 32, BYTES = Q::BYTES, ABYTES = 34;
    struct W {
        int q[8];
        float d;
    };
    struct A {
        int x[8];
        float d;
    };
    static __device__ __forceinline__ int blocks(int cols) { return cols / 32; }
    // Q8_0 weights and their activation: d and the quants from one set of
    // loads (ld_q8_0). The activation of Q4_0/Q5_0 weights keeps the
    // 8-word read and a separate d: ld_q8_0's ninth word costs those
    // kernels 8-16 registers and 0.5B Q4_K_M's Q5_0 gate/up 1.9% of its
    // step (H100, 26th session), where Q8_0 models gain 1-1.8%.
    static __device__ __forceinline__ void wload(const u8* wb, int, W& o) {
        if (KIND == 0) {
            o.d = ld_q8_0(wb, o.q);
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++) o.q[k] = Q::word(wb, 4 * k);
            o.d = h2f(ld16(wb));
        }
    }
    static __device__ __forceinline__ void aload(const u8* ab, int, A& o) {
        if (KIND == 0) {
            o.d = ld_q8_0(ab, o.x);
        } else {
            ld8u(ab + 2, o.x);
            o.d = h2f(ld16(ab));
        }
    }
    static __device__ __forceinline__ float wdot(const W& w, const A& a, int) {
        int s = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) s = __dp4a(w.q[k], a.x[k], s);
        return Q::term(s, w.d, a.d);
    }
};

__device__ __forceinline__ int bsum(const u8* ab, int j) { return (int)*(const short*)(ab + 260 + 2 * j); }

// kaffine finishes a Q4_K/Q5_K super-block: the four lanes of a block (j =
// lane%4 held sub-blocks 2j, 2j+1) add their integer parts, and every lane
// returns d*isum - dmin*summs as quant's affineK (wd, wdmin: the weight
// block's scales, yd: the activation's).
__device__ __forceinline__ float kaffine(int isum, int summs, float wd, float wdmin, float yd) {
    isum += __shfl_xor_sync(FULL, isum, 1);
    isum += __shfl_xor_sync(FULL, isum, 2);
    summs += __shfl_xor_sync(FULL, summs, 1);
    summs += __shfl_xor_sync(FULL, summs, 2);
    float d = __fmul_rn(wd, yd);
    float dmin = __fmul_rn(wdmin, yd);
    return __fsub_rn(__fmul_rn(d, (float)isum), __fmul_rn(dmin, (float)summs));
}

#include "kscales.cuh"

// Q4_K and Q5_K: 4 lanes a super-block; lane j of a block takes the 32
// bytes of nibbles of sub-blocks 2j (low) and 2j+1 (high) and, for Q5_K,
// the 32 bytes of fifth bits (the same for every lane). A block's first 16
// bytes (d, dmin, the scales) come in one load; Q4_K's high nibbles enter
// dp4a in place (16 times the sum, shifted back: the same integers).
template <bool Q5>
struct TQ45K {
    static const int LANES = 4, PER = 8, BYTES = Q5 ? 176 : 144, ABYTES = 292;
    struct W {
        int q[8], h[8], sc[4];  // h: Q5_K only
        float d, dmin;
    };
    struct A {
        int x[16], bs0, bs1;
        float d;
    };
    static __device__ __forceinline__ int blocks(int cols) { return cols / 256; }
    static __device__ __forceinline__ void wload(const u8* wb, int j, W& o) {
        uint4 hd = *(const uint4*)wb;
        k4_scales(j, hd.y, hd.z, hd.w, o.sc);
        ld8v(wb + (Q5 ? 48 : 16) + 32 * j, o.q);
        if (Q5) ld8v(wb + 16, o.h);
        o.d = h2f((u16)(hd.x & 0xffff));
        o.dmin = h2f((u16)(hd.x >> 16));
    }
    static __device__ __forceinline__ void aload(const u8* ab, int j, A& o) {
#pragma unroll
        for (int k = 0; k < 16; k++) o.x[k] = ld32(ab + 4 + 64 * j + 4 * k);
        o.bs0 = bsum(ab, 4 * j) + bsum(ab, 4 * j + 1);
        o.bs1 = bsum(ab, 4 * j + 2) + bsum(ab, 4 * j + 3);
        o.d = *(const float*)ab;
    }
    static __device__ __forceinline__ float wdot(const W& w, const A& a, int j) {
        int s0 = 0, s1 = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            int lo = w.q[k] & 0x0f0f0f0f;
            if (Q5) {
                int hi = (w.q[k] >> 4) & 0x0f0f0f0f;
                lo |= ((w.h[k] >> (2 * j)) & 0x01010101) << 4;
                hi |= ((w.h[k] >> (2 * j + 1)) & 0x01010101) << 4;
                s1 = __dp4a(hi, a.x[8 + k], s1);
            } else {
                s1 = dp4a_us((u32)w.q[k] & 0xf0f0f0f0u, a.x[8 + k], s1);
            }
            s0 = __dp4a(lo, a.x[k], s0);
        }
        if (!Q5) s1 >>= 4;
        int isum = w.sc[0] * s0 + w.sc[2] * s1;
        int summs = a.bs0 * w.sc[1] + a.bs1 * w.sc[3];
        return kaffine(isum, summs, w.d, w.dmin, a.d);
    }
};

// Q6_K: 8 lanes a super-block; lane k of a block takes elements
// 32k..32k+31 (half k/4, quarter k%4 of ggml's layout).
struct TQ6K {
    static const int LANES = 8, PER = 4, BYTES = 210, ABYTES = 292;
    struct W {
        int q[8], sc0, sc1;
        float d;
    };
    struct A {
        int x[8], sa0, sa1;
        float d;
    };
    static __device__ __forceinline__ int blocks(int cols) { return cols / 256; }
    static __device__ __forceinline__ void wload(const u8* wb, int k8, W& o) {
        int half = k8 / 4, sub = k8 % 4;
        int ql[8], qh[8];
        ld8u(wb + 64 * half + 32 * (sub & 1), ql);
        ld8u(wb + 128 + 32 * half, qh);
        int ns = 4 * (sub >> 1), hs = 2 * sub;
#pragma unroll
        for (int k = 0; k < 8; k++) o.q[k] = ((ql[k] >> ns) & 0x0f0f0f0f) | (((qh[k] >> hs) & 0x03030303) << 4);
        u32 sc = ld16(wb + 192 + 8 * half + 2 * sub);  // the quarter's two int8 scales
        o.sc0 = (int)(i8)(sc & 0xff);
        o.sc1 = (int)(i8)(sc >> 8);
        o.d = h2f(ld16(wb + 208));
    }
    static __device__ __forceinline__ void aload(const u8* ab, int k8, A& o) {
        const u8* a8 = ab + 4 + 128 * (k8 / 4) + 32 * (k8 % 4);
        o.sa0 = 0;
        o.sa1 = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) o.x[k] = ld32(a8 + 4 * k);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            o.sa0 = asum4(o.x[k], o.sa0);
            o.sa1 = asum4(o.x[k + 4], o.sa1);
        }
        o.d = *(const float*)ab;
    }
    static __device__ __forceinline__ float wdot(const W& w, const A& a, int) {
        int s0 = 0, s1 = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            s0 = __dp4a(w.q[k], a.x[k], s0);
            s1 = __dp4a(w.q[k + 4], a.x[k + 4], s1);
        }
        int isum = w.sc0 * (s0 - 32 * a.sa0) + w.sc1 * (s1 - 32 * a.sa1);
        isum += __shfl_xor_sync(FULL, isum, 1);
        isum += __shfl_xor_sync(FULL, isum, 2);
        isum += __shfl_xor_sync(FULL, isum, 4);
        return __fmul_rn(__fmul_rn(w.d, a.d), (float)isum);
    }
};

// pass computes the terms of blocks b0.. (a pass: PER of them) of one
// weight row w against activation rows c < nc (R at most, as bytes apart)
// into t[c][block - b0]: the weight operands are loaded once.
template <class T, int R>
__device__ __forceinline__ void pass(const u8* w, const u8* a, i64 as, int b0, int nb, int nc, float (*t)[33]) {
    int lane = threadIdx.x % WARP;
    int b = b0 + lane / T::LANES, sub = lane % T::LANES;
    bool ok = b < nb;
    if (T::LANES == 1 && !ok) return;  // no shuffles in a one-lane block
    int bb = ok ? b : 0;
    typename T::W ws;
    T::wload(w + (i64)bb * T::BYTES, sub, ws);
#pragma unroll
    for (int c = 0; c < R; c++) {
        if (c >= nc) break;
        typename T::A xa;
        T::aload(a + c * as + (i64)bb * T::ABYTES, sub, xa);
        float term = T::wdot(ws, xa, sub);
        if (ok && sub == 0) t[c][lane / T::LANES] = term;
    }
}

// unit_terms is the work of a lane group on R weight rows (nr of them
// real, rowBytes apart, the first at w) at one block of theirs: every
// row's weight loads issued before the first dot, so that R rows' bytes
// are in flight together, and the activation's operands (at a) loaded
// once; row r's term goes to t[r*nb] where ok.
template <class T, int R>
__device__ __forceinline__ void unit_terms(const u8* w, i64 rowBytes, int nr, const u8* a, bool ok, int sub,
                                           float* t, int nb) {
    typename T::W ws[R];
#pragma unroll
    for (int r = 0; r < R; r++) T::wload(w + (i64)min(r, nr - 1) * rowBytes, sub, ws[r]);
    typename T::A xa;
    T::aload(a, sub, xa);
#pragma unroll
    for (int r = 0; r < R; r++) {
        float term = T::wdot(ws[r], xa, sub);
        if (ok && sub == 0 && r < nr) t[r * nb] = term;
    }
}

// passw is pass for R weight rows (nr of them real, rowBytes apart) of one
// activation row, terms into t[r*nb + block] (unit_terms at each lane
// group's block).
template <class T, int R>
__device__ __forceinline__ void passw(const u8* w, i64 rowBytes, int nr, const u8* a, int b0, int nb, float* t) {
    int lane = threadIdx.x % WARP;
    int b = b0 + lane / T::LANES, sub = lane % T::LANES;
    bool ok = b < nb;
    if (T::LANES == 1 && !ok) return;
    int bb = ok ? b : 0;
    unit_terms<T, R>(w + (i64)bb * T::BYTES, rowBytes, nr, a + (i64)bb * T::ABYTES, ok, sub, t + bb, nb);
}

// passu is passw over units: a unit is the R rows of a group at one block,
// unit u being group u / nb's rows at block u % nb, and lane group k of
// item it takes unit it*PER + k (of units). So a row of nb blocks that is
// not a multiple of PER leaves no lanes idle, as passw's last pass of a
// row does (a 1,536-column row of Q4_K or Q6_K: 6 blocks, a quarter of
// the lanes). Terms go to t[(group*R + r)*nb + block], as passw's; nr of
// the block's rows are real.
template <class T, int R>
__device__ __forceinline__ void passu(const u8* w, i64 rowBytes, int nr, const u8* a, int it, int nb, int units,
                                      float* t) {
    int lane = threadIdx.x % WARP;
    int u = it * T::PER + lane / T::LANES, sub = lane % T::LANES;
    bool ok = u < units;
    if (T::LANES == 1 && !ok) return;
    int uu = ok ? u : 0;
    int g = uu / nb, b = uu - g * nb;
    unit_terms<T, R>(w + (i64)(g * R) * rowBytes + (i64)b * T::BYTES, rowBytes, min(R, nr - g * R),
                     a + (i64)b * T::ABYTES, ok, sub, t + (g * R) * nb + b, nb);
}

// MMRow is a warp's share of matmul_q's grid: weight row row (its bytes
// at w) against activation rows c0..c0+nc-1 (at a).
struct MMRow {
    int row, c0, nc;
    const u8* w;
    const u8* a;
};

// mm_row finds this warp's MMRow for R activation rows a block row; false
// when the warp has none (whole warps: only __syncwarp after it).
template <int R>
__device__ __forceinline__ bool mm_row(const u8* W, const u8* act, i64 actStride, int rows, i64 rowBytes, int m,
                                       MMRow& r) {
    r.row = blockIdx.x * MM_WARPS + threadIdx.x / WARP;
    r.c0 = blockIdx.y * R;
    r.nc = min(R, m - r.c0);
    if (r.row >= rows || r.nc <= 0) return false;
    r.w = W + (i64)r.row * rowBytes;
    r.a = act + (i64)r.c0 * actStride;
    return true;
}

template <int R, class T>
__device__ __forceinline__ void matmul_q(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                         float* __restrict__ y, int yStride, const float* __restrict__ bias,
                                         int rows, int cols, i64 rowBytes, int acc, int m) {
    __shared__ float terms[MM_WARPS][R][33];
    int lane = threadIdx.x % WARP;
    MMRow mr;
    if (!mm_row<R>(W, act, actStride, rows, rowBytes, m, mr)) return;
    int row = mr.row, c0 = mr.c0, nc = mr.nc;
    float (*t)[33] = terms[threadIdx.x / WARP];
    int nb = T::blocks(cols);
    float sum = 0.0f;
    for (int b0 = 0; b0 < nb; b0 += T::PER) {
        pass<T, R>(mr.w, mr.a, actStride, b0, nb, nc, t);
        __syncwarp();
        if (lane < nc) {
            int kn = min(T::PER, nb - b0);
            for (int k = 0; k < kn; k++) sum = __fadd_rn(sum, t[lane][k]);
        }
        __syncwarp();
    }
    if (lane < nc) {
        if (bias) sum += bias[row];
        float* yp = y + (i64)(c0 + lane) * yStride + row;
        *yp = acc ? *yp + sum : sum;
    }
}

// matmul_terms is matmul_q's passes p0.. (pps of them; grid.z) without the
// sums: each block term of weight row r and activation row c goes to
// terms[(c*rows + r)*nb + block], for term_sum to add in block order (the
// same sums, bit for bit). Splitting a row's passes over blocks gives a
// product of few weight rows and long rows enough warps.
template <int R, class T>
__device__ __forceinline__ void matmul_terms(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                             float* __restrict__ terms, int rows, int cols, i64 rowBytes, int m,
                                             int pps) {
    __shared__ float tt[MM_WARPS][R][33];
    MMRow mr;
    if (!mm_row<R>(W, act, actStride, rows, rowBytes, m, mr)) return;
    float (*t)[33] = tt[threadIdx.x / WARP];
    int nb = T::blocks(cols);
    int np = (nb + T::PER - 1) / T::PER;
    for (int p = blockIdx.z * pps; p < min(np, (blockIdx.z + 1) * pps); p++) {
        int b0 = p * T::PER, kn = min(T::PER, nb - b0);
        pass<T, R>(mr.w, mr.a, actStride, b0, nb, mr.nc, t);
        __syncwarp();
        for (int e = threadIdx.x % WARP; e < mr.nc * kn; e += WARP) {
            int c = e / kn, k = e % kn;
            terms[((i64)(mr.c0 + c) * rows + mr.row) * nb + b0 + k] = t[c][k];
        }
        __syncwarp();
    }
}

// sum_terms adds the n terms at t in order (0 + t[0] + t[1] + ...), as
// quant.VecDot adds its blocks' terms.
__device__ __forceinline__ float sum_terms(const float* t, int n) {
    float sum = 0.0f;
    for (int k = 0; k < n; k++) sum = __fadd_rn(sum, t[k]);
    return sum;
}

// term_sum adds matmul_terms' block terms of each (activation row c,
// weight row r) in block order, then the bias, into y[c*yStride + r] (or
// onto it with acc), as matmul_q does.
extern "C" __global__ void term_sum(const float* __restrict__ terms, float* __restrict__ y, int yStride,
                                    const float* __restrict__ bias, int rows, int nb, int acc, int m) {
    pdl_start();
    i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (i64)rows * m) return;
    int c = (int)(i / rows), row = (int)(i % rows);
    float sum = sum_terms(terms + i * nb, nb);
    if (bias) sum += bias[row];
    float* yp = y + (i64)c * yStride + row;
    *yp = acc ? *yp + sum : sum;
}

// Float weights with float32 activations: each lane takes pairs of columns
// (cols is even; rows start 4-byte aligned).
template <int KIND>  // 0 f32, 1 f16, 2 bf16
__device__ __forceinline__ float2 wpair(const u8* w, int i) {
    if (KIND == 0) return ((const float2*)w)[i];
    u32 p = ((const u32*)w)[i];
    if (KIND == 1) return make_float2(h2f((u16)(p & 0xffff)), h2f((u16)(p >> 16)));
    return make_float2(__uint_as_float(p << 16), __uint_as_float(p & 0xffff0000u));
}

template <int R, int KIND>
__device__ __forceinline__ void matmul_f(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                         float* __restrict__ y, int yStride, const float* __restrict__ bias,
                                         int rows, int cols, i64 rowBytes, int acc, int m) {
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int row = blockIdx.x * MM_WARPS + warp;
    int c0 = blockIdx.y * R;
    int nc = min(R, m - c0);
    if (row >= rows || nc <= 0) return;
    const u8* w = W + (i64)row * rowBytes;
    float sum[R];
#pragma unroll
    for (int c = 0; c < R; c++) sum[c] = 0.0f;
    for (int i = lane; i < cols / 2; i += WARP) {
        float2 wv = wpair<KIND>(w, i);
#pragma unroll
        for (int c = 0; c < R; c++) {
            if (c >= nc) break;
            float2 xv = ((const float2*)(act + (i64)(c0 + c) * actStride))[i];
            sum[c] += wv.x * xv.x + wv.y * xv.y;
        }
    }
#pragma unroll
    for (int c = 0; c < R; c++) {
        if (c >= nc) break;
        float s = warp_sum(sum[c]);
        if (lane == 0) {
            if (bias) s += bias[row];
            float* yp = y + (i64)(c0 + c) * yStride + row;
            *yp = acc ? *yp + s : s;
        }
    }
}

#define MM_PARAMS                                                                                  \
    const u8 *__restrict__ W, const u8 *__restrict__ act, i64 actStride, float *__restrict__ y,    \
        int yStride, const float *__restrict__ bias, int rows, int cols, i64 rowBytes, int acc, int m
#define MM_ARGS W, act, actStride, y, yStride, bias, rows, cols, rowBytes, acc, m

// matvec_q is matmul_q for one activation row, split over the warps of a
// block: block blk takes rpc weight rows in groups of R, its warps the
// (group, pass) items round-robin (passw: the activation's operands are
// loaded once for the group's R rows, all of whose weight loads are in
// flight together), every block's term goes to shared memory at terms
// (rpc x blocks floats), and thread r then adds row r's terms in block
// order. With UNITS the items are passu's units instead (PER blocks of
// the block's (group, block) pairs in order): the same terms. act may be
// in global or shared memory.
template <class T, int R, bool UNITS>
__device__ __forceinline__ void matvec_q(const u8* __restrict__ W, const u8* __restrict__ act,
                                         float* __restrict__ y, const float* __restrict__ bias,
                                         int rows, int cols, i64 rowBytes, int acc, int rpc, int blk, float* terms) {
    int warp = threadIdx.x / WARP, nw = blockDim.x / WARP;
    int r0 = blk * rpc;
    int nr = min(rpc, rows - r0);
    int nb = T::blocks(cols);
    int np = (nb + T::PER - 1) / T::PER;
    int ng = (nr + R - 1) / R;
    // Thread r's row's bias and (acc) the output it adds to, read before
    // the items so that their loads are not the block's last wait: the same
    // values (only this block writes its rows), the same adds.
    float pb = 0.0f, py = 0.0f;
    if ((int)threadIdx.x < nr) {
        if (bias) pb = bias[r0 + threadIdx.x];
        if (acc) py = y[r0 + threadIdx.x];
    }
    if (UNITS) {
        int units = ng * nb;
        for (int it = warp; it * T::PER < units; it += nw)
            passu<T, R>(W + (i64)r0 * rowBytes, rowBytes, nr, act, it, nb, units, terms);
    } else {
        for (int it = warp; it < ng * np; it += nw) {
            int g = it / np, p = it % np;
            passw<T, R>(W + (i64)(r0 + g * R) * rowBytes, rowBytes, min(R, nr - g * R), act, p * T::PER, nb,
                        terms + g * R * nb);
        }
    }
    __syncthreads();
    for (int rr = threadIdx.x; rr < nr; rr += blockDim.x) {
        float sum = sum_terms(terms + rr * nb, nb);
        int row = r0 + rr;
        bool first = rr == (int)threadIdx.x;
        if (bias) sum += first ? pb : bias[row];
        float* yp = y + row;
        *yp = acc ? (first ? py : *yp) + sum : sum;
    }
}

// matvec_rw is matvec_q for rw & 7 (1, 2 or 4) weight rows a group, its
// items units (passu) when rw has bit 8.
template <class T, bool UNITS>
__device__ __forceinline__ void matvec_r(int rw, const u8* __restrict__ W, const u8* __restrict__ act,
                                         float* __restrict__ y, const float* __restrict__ bias, int rows, int cols,
                                         i64 rowBytes, int acc, int rpc, int blk, float* terms) {
    if (rw == 4)
        matvec_q<T, 4, UNITS>(W, act, y, bias, rows, cols, rowBytes, acc, rpc, blk, terms);
    else if (rw == 2)
        matvec_q<T, 2, UNITS>(W, act, y, bias, rows, cols, rowBytes, acc, rpc, blk, terms);
    else
        matvec_q<T, 1, UNITS>(W, act, y, bias, rows, cols, rowBytes, acc, rpc, blk, terms);
}
template <class T>
__device__ __forceinline__ void matvec_rw(int rw, const u8* __restrict__ W, const u8* __restrict__ act,
                                          float* __restrict__ y, const float* __restrict__ bias, int rows,
                                          int cols, i64 rowBytes, int acc, int rpc, int blk, float* terms) {
    if (rw & 8)
        matvec_r<T, true>(rw & 7, W, act, y, bias, rows, cols, rowBytes, acc, rpc, blk, terms);
    else
        matvec_r<T, false>(rw, W, act, y, bias, rows, cols, rowBytes, acc, rpc, blk, terms);
}

// prefetch_rows brings block blk's rpc weight rows (of rows) into L2: the
// _mv kernels call it before pdl_wait, so that their weights stream in
// while the kernel before them finishes. A block whose rows are more than
// MV_PF_OVER bytes asks for only their first MV_PF_CAP bytes: a large
// request queues ahead of the loads of the kernel still running (the down
// products' blocks of 20-38 KB delay silu_quant's loads). Bit-identical
// by construction. H100, BenchmarkDecodeSynthetic, tok/s, two rounds, one
// call (24th session), no cap -> 16 KB over 32 KB (the default): 1.5B
// Q8_0 805.5, 805.2 -> 815.9, 815.8; 1.5B Q4_K_M 853.4, 854.0 -> 857.8,
// 857.4; 0.5B Q8_0 1463, 1464 -> 1467, 1466; 0.5B Q4_K_M 1407, 1407 ->
// 1404, 1404. A cap of 16 KB on every block (23rd session) cost the 0.5B
// models 0.2-0.5%, one of 4 KB 3.5%. -DMV_PF_CAP=0 turns the cap off.
#ifndef MV_PF_CAP
#define MV_PF_CAP 16384
#endif
#ifndef MV_PF_OVER
#define MV_PF_OVER 32768
#endif
#if MV_PF_CAP > 0
#define MV_PF_BYTES(n) ((n) > (i64)MV_PF_OVER ? min((n), (i64)MV_PF_CAP) : (n))
#else
#define MV_PF_BYTES(n) (n)
#endif
__device__ __forceinline__ void prefetch_rows(const u8* W, int rows, i64 rowBytes, int rpc, int blk) {
    int r0 = blk * rpc;
    prefetch_l2(W + (i64)r0 * rowBytes, MV_PF_BYTES((i64)min(rpc, rows - r0) * rowBytes));
}

// mvTerms is the _mv and mvx kernels' dynamic shared memory.
extern __shared__ float mvTerms[];

// MV_LIMIT_Q4K, MV_LIMIT_Q6K and MV_LIMIT_Q80 are attributes of the Q4_K,
// Q6_K and Q8_0 _mv kernels (empty, or a register limit such as
// __maxnreg__(80), which needs nvcc 12.4 or later): fewer registers let
// more blocks share an SM.
#ifndef MV_LIMIT_Q4K
#define MV_LIMIT_Q4K
#endif
#ifndef MV_LIMIT_Q6K
#define MV_LIMIT_Q6K
#endif
#ifndef MV_LIMIT_Q80
#define MV_LIMIT_Q80
#endif

// The _mv kernels take rw (1, 2 or 4): the weight rows of a group; LIMIT
// is an attribute of the _mv kernel. The _r1/_r16 kernels start with
// pdl_start.
#define MM_Q(name, T, LIMIT)                                                                       \
    extern "C" __global__ void LIMIT name##_mv(MM_PARAMS, int rpc, int rw) {                      \
        prefetch_rows(W, rows, rowBytes, rpc, blockIdx.x);                                         \
        pdl_start();                                                                               \
        matvec_rw<T>(rw, W, act, y, bias, rows, cols, rowBytes, acc, rpc, blockIdx.x, mvTerms);    \
        tl_exit();                                                                                 \
    }                                                                                              \
    extern "C" __global__ void name##_r1(MM_PARAMS) {                                             \
        pdl_start();                                                                               \
        matmul_q<1, T>(MM_ARGS);                                                                   \
    }                                                                                              \
    extern "C" __global__ void name##_r16(MM_PARAMS) {                                            \
        pdl_start();                                                                               \
        matmul_q<16, T>(MM_ARGS);                                                                  \
    }
// MM_RT is the split _rt kernel of a K-quant (terms.go): a block term a
// 256-element super-block (the 32-element types' terms would be 8 times
// as many to store, and measured slower than _r16).
#define MM_RT(name, T)                                                                             \
    extern "C" __global__ void name##_rt(const u8* __restrict__ W, const u8* __restrict__ act,    \
                                         i64 actStride, float* __restrict__ terms, int rows,       \
                                         int cols, i64 rowBytes, int m, int pps) {                 \
        pdl_start();                                                                               \
        matmul_terms<16, T>(W, act, actStride, terms, rows, cols, rowBytes, m, pps);               \
    }
#define MM_F(name, KIND)                                                                           \
    extern "C" __global__ void name##_r1(MM_PARAMS) {                                             \
        pdl_start();                                                                               \
        matmul_f<1, KIND>(MM_ARGS);                                                                \
    }                                                                                              \
    extern "C" __global__ void name##_r16(MM_PARAMS) {                                            \
        pdl_start();                                                                               \
        matmul_f<16, KIND>(MM_ARGS);                                                               \
    }

MM_Q(matmul_q8_0, TQ32<0>, MV_LIMIT_Q80)
MM_Q(matmul_q4_0, TQ32<1>, )
MM_Q(matmul_q5_0, TQ32<2>, )
MM_Q(matmul_q4_k, TQ45K<false>, MV_LIMIT_Q4K)
MM_Q(matmul_q5_k, TQ45K<true>, )
MM_Q(matmul_q6_k, TQ6K, MV_LIMIT_Q6K)
MM_RT(matmul_q4_k, TQ45K<false>)
MM_RT(matmul_q5_k, TQ45K<true>)
MM_RT(matmul_q6_k, TQ6K)
MM_F(matmul_f32, 0)
MM_F(matmul_f16, 1)
MM_F(matmul_bf16, 2)

