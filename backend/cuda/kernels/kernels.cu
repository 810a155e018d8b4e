// Kernels of apr's CUDA backend: the operations of a forward pass of the
// Qwen2/LLaMA models over a pass of rows (tokens of any slots and positions;
// one row when decoding). Compiled to PTX for sm_90 (see ../cuda.go's
// go:generate line) and loaded with cuModuleLoadData; no CUDA headers are
// used, so the file also passes a host C++ syntax check.
//
// Numerics follow apr's CPU backend (backend/cpu, quant): activations are
// quantized to ggml's 8-bit blocks with the same rounding, quantized weights
// are multiplied in integers per block with the block's float scales applied
// as ggml-cpu's generic kernels do, so GPU and CPU differ only in the order
// of float sums.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

#define WARP 32
#define FULL 0xffffffffu

// ---------------------------------------------------------------- helpers

__device__ __forceinline__ float h2f(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 f2h(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float bf2f(u16 h) { return __uint_as_float(((u32)h) << 16); }

__device__ __forceinline__ u16 ld16(const u8* p) { return *(const u16*)p; }

// ld32u reads 4 bytes at a 2-byte aligned address.
__device__ __forceinline__ int ld32u(const u8* p) {
    return (int)((u32)ld16(p) | ((u32)ld16(p + 2) << 16));
}

__device__ __forceinline__ int ld32(const u8* p) { return *(const int*)p; }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}

__device__ __forceinline__ int warp_isum(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    return v;
}

// block_max reduces over a block of up to 1024 threads (a multiple of 32);
// every thread gets the maximum. red holds 32 floats of shared memory.
__device__ float block_max(float v, float* red) {
    int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -3.402823466e38f;
    return warp_max(v);
}


// A pass's rows: info holds four int32 per row (token, position, slot, 0).
#define ROW_TOKEN(info, r) ((info)[4 * (r)])
#define ROW_POS(info, r) ((info)[4 * (r) + 1])
#define ROW_SLOT(info, r) ((info)[4 * (r) + 2])

// block_excl_max returns the maximum of v over the block's threads before
// the calling one (-inf for thread 0): an exclusive scan. Every thread of
// the block must call it.
__device__ float block_excl_max(float v) {
    __shared__ float wm[32];
    const float ninf = __uint_as_float(0xff800000u);
    int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
    float incl = v;
    for (int o = 1; o < WARP; o <<= 1) {
        float t = __shfl_up_sync(FULL, incl, o);
        if (lane >= o) incl = fmaxf(incl, t);
    }
    float excl = __shfl_up_sync(FULL, incl, 1);
    if (lane == 0) excl = ninf;
    __syncthreads();
    if (lane == WARP - 1) wm[w] = incl;
    __syncthreads();
    if (w == 0) {
        float x = lane < nw ? wm[lane] : ninf;
        for (int o = 1; o < WARP; o <<= 1) {
            float t = __shfl_up_sync(FULL, x, o);
            if (lane >= o) x = fmaxf(x, t);
        }
        wm[lane] = x;  // inclusive over warps 0..lane
    }
    __syncthreads();
    return w > 0 ? fmaxf(wm[w - 1], excl) : excl;
}

// ------------------------------------------------- activation quantizers
//
// A warp quantizes a chunk of 256 floats, each lane 8 consecutive ones
// (v[0..7] = elements 8*lane..8*lane+7 of the chunk): as Q8_0 blocks (four
// lanes a block) into q80 and/or, for a whole chunk, as one Q8_K block into
// q8k (either may be null). base is the chunk's first element, n the
// elements in all; lanes past n hold zeros and write nothing.
//
// Q8_0 as ggml's x86 quantize_row_q8_0: d = amax/127, q = round-half-even(
// x * 127/amax). Q8_K as quantize_row_q8_K_ref: the element of largest
// magnitude (the first one on ties) sets iscale = -127/max.
__device__ void quant_chunk(const float v[8], i64 base, i64 n, u8* __restrict__ q80, u8* __restrict__ q8k) {
    int lane = threadIdx.x % WARP;
    i64 e0 = base + 8 * lane;
    if (q80) {
        float amax = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) amax = fmaxf(amax, fabsf(v[j]));
        amax = fmaxf(amax, __shfl_xor_sync(FULL, amax, 1));
        amax = fmaxf(amax, __shfl_xor_sync(FULL, amax, 2));
        if (e0 < n) {
            float d = amax / 127.0f;
            float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            u8* blk = q80 + (e0 / 32) * 34;
            u8* qs = blk + 2 + (lane % 4) * 8;
#pragma unroll
            for (int j = 0; j < 8; j++) qs[j] = (u8)(i8)__float2int_rn(__fmul_rn(v[j], id));
            if (lane % 4 == 0) *(u16*)blk = f2h(d);
        }
    }
    if (q8k && base + 256 <= n) {
        float amax = 0.0f, xmax = 0.0f;
        int idx = 1 << 30;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float a = fabsf(v[j]);
            if (a > amax) { amax = a; xmax = v[j]; idx = lane * 8 + j; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float a2 = __shfl_xor_sync(FULL, amax, o);
            float x2 = __shfl_xor_sync(FULL, xmax, o);
            int i2 = __shfl_xor_sync(FULL, idx, o);
            if (a2 > amax || (a2 == amax && i2 < idx)) { amax = a2; xmax = x2; idx = i2; }
        }
        u8* blk = q8k + (base / 256) * 292;
        if (amax == 0.0f) {
            // ggml clears the whole block.
#pragma unroll
            for (int j = 0; j < 8; j++) blk[4 + lane * 8 + j] = 0;
            if (lane < 16) *(short*)(blk + 260 + 2 * lane) = 0;
            if (lane == 0) *(float*)blk = 0.0f;
            return;
        }
        float iscale = -127.0f / xmax;
        int s = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int q = min(127, __float2int_rn(__fmul_rn(iscale, v[j])));
            blk[4 + lane * 8 + j] = (u8)(i8)q;
            s += q;
        }
        s += __shfl_xor_sync(FULL, s, 1);
        if ((lane & 1) == 0) *(short*)(blk + 260 + lane) = (short)s;
        if (lane == 0) *(float*)blk = 1.0f / iscale;
    }
}

// quantize encodes n floats (rows of a multiple of 32 each, so blocks never
// straddle rows) as Q8_0 into q80 and/or Q8_K into q8k: one warp per 256.
extern "C" __global__ void quantize(const float* __restrict__ x, i64 n, u8* __restrict__ q80, u8* __restrict__ q8k) {
    i64 base = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / WARP * 256;
    if (base >= n) return;  // whole warps exit together
    int lane = threadIdx.x % WARP;
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        i64 e = base + 8 * lane + j;
        v[j] = e < n ? x[e] : 0.0f;
    }
    quant_chunk(v, base, n, q80, q8k);
}

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

// ld8v reads 32 bytes at a 16-byte aligned address in two vector loads.
__device__ __forceinline__ void ld8v(const u8* p, int v[8]) {
    int4 x = ((const int4*)p)[0], y = ((const int4*)p)[1];
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w, v[4] = y.x, v[5] = y.y, v[6] = y.z, v[7] = y.w;
}

__device__ __forceinline__ void ld8(const u8* p, int v[8]) {
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = ld32(p + 4 * k);
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
    static __device__ __forceinline__ void wload(const u8* wb, int, W& o) {
        if (KIND == 0) {
            ld8u(wb + 2, o.q);
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++) o.q[k] = Q::word(wb, 4 * k);
        }
        o.d = h2f(ld16(wb));
    }
    static __device__ __forceinline__ void aload(const u8* ab, int, A& o) {
        ld8u(ab + 2, o.x);
        o.d = h2f(ld16(ab));
    }
    static __device__ __forceinline__ float wdot(const W& w, const A& a, int) {
        int s = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) s = __dp4a(w.q[k], a.x[k], s);
        return Q::term(s, w.d, a.d);
    }
};

// scale_min_k4 is ggml's get_scale_min_k4.
__device__ __forceinline__ void scale_min_k4(int j, const u8* s, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

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

// Q4_K and Q5_K: 4 lanes a super-block; lane j of a block takes the 32
// bytes of nibbles of sub-blocks 2j (low) and 2j+1 (high) and, for Q5_K,
// the 32 bytes of fifth bits (the same for every lane).
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
        scale_min_k4(2 * j, wb + 4, &o.sc[0], &o.sc[1]);
        scale_min_k4(2 * j + 1, wb + 4, &o.sc[2], &o.sc[3]);
        ld8v(wb + (Q5 ? 48 : 16) + 32 * j, o.q);
        if (Q5) ld8v(wb + 16, o.h);
        o.d = h2f(ld16(wb));
        o.dmin = h2f(ld16(wb + 2));
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
            int lo = w.q[k] & 0x0f0f0f0f, hi = (w.q[k] >> 4) & 0x0f0f0f0f;
            if (Q5) {
                lo |= ((w.h[k] >> (2 * j)) & 0x01010101) << 4;
                hi |= ((w.h[k] >> (2 * j + 1)) & 0x01010101) << 4;
            }
            s0 = __dp4a(lo, a.x[k], s0);
            s1 = __dp4a(hi, a.x[8 + k], s1);
        }
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
        int e0 = 128 * half + 32 * sub;
        o.sc0 = (int)(i8)wb[192 + e0 / 16];
        o.sc1 = (int)(i8)wb[192 + e0 / 16 + 1];
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

// passw is pass for R weight rows (nr of them real, rowBytes apart) of one
// activation row, terms into t[r*nb + block]: the activation's operands are
// loaded once, and every row's weight loads are issued before the first
// dot so that R rows' bytes are in flight together.
template <class T, int R>
__device__ __forceinline__ void passw(const u8* w, i64 rowBytes, int nr, const u8* a, int b0, int nb, float* t) {
    int lane = threadIdx.x % WARP;
    int b = b0 + lane / T::LANES, sub = lane % T::LANES;
    bool ok = b < nb;
    if (T::LANES == 1 && !ok) return;
    int bb = ok ? b : 0;
    typename T::W ws[R];
#pragma unroll
    for (int r = 0; r < R; r++) T::wload(w + (i64)min(r, nr - 1) * rowBytes + (i64)bb * T::BYTES, sub, ws[r]);
    typename T::A xa;
    T::aload(a + (i64)bb * T::ABYTES, sub, xa);
#pragma unroll
    for (int r = 0; r < R; r++) {
        float term = T::wdot(ws[r], xa, sub);
        if (ok && sub == 0 && r < nr) t[r * nb + b] = term;
    }
}

template <int R, class T>
__device__ __forceinline__ void matmul_q(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                         float* __restrict__ y, int yStride, const float* __restrict__ bias,
                                         int rows, int cols, i64 rowBytes, int acc, int m) {
    __shared__ float terms[MM_WARPS][R][33];
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int row = blockIdx.x * MM_WARPS + warp;
    int c0 = blockIdx.y * R;
    int nc = min(R, m - c0);
    if (row >= rows || nc <= 0) return;  // whole warps; only __syncwarp below
    const u8* w = W + (i64)row * rowBytes;
    const u8* a = act + (i64)c0 * actStride;
    float (*t)[33] = terms[warp];
    int nb = T::blocks(cols);
    float sum = 0.0f;
    for (int b0 = 0; b0 < nb; b0 += T::PER) {
        pass<T, R>(w, a, actStride, b0, nb, nc, t);
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
// block: the block takes rpc weight rows in groups of R, its warps the
// (group, pass) items round-robin (passw: the activation's operands are
// loaded once for the group's R rows, all of whose weight loads are in
// flight together), every block's term goes to shared memory (rpc x blocks
// floats, dynamic), and thread r then adds row r's terms in block order.
template <class T, int R>
__device__ __forceinline__ void matvec_q(const u8* __restrict__ W, const u8* __restrict__ act,
                                         float* __restrict__ y, const float* __restrict__ bias,
                                         int rows, int cols, i64 rowBytes, int acc, int rpc) {
    extern __shared__ float mvTerms[];
    int warp = threadIdx.x / WARP, nw = blockDim.x / WARP;
    int r0 = blockIdx.x * rpc;
    int nr = min(rpc, rows - r0);
    int nb = T::blocks(cols);
    int np = (nb + T::PER - 1) / T::PER;
    int ng = (nr + R - 1) / R;
    for (int it = warp; it < ng * np; it += nw) {
        int g = it / np, p = it % np;
        passw<T, R>(W + (i64)(r0 + g * R) * rowBytes, rowBytes, min(R, nr - g * R), act, p * T::PER, nb,
                    mvTerms + g * R * nb);
    }
    __syncthreads();
    for (int rr = threadIdx.x; rr < nr; rr += blockDim.x) {
        float sum = 0.0f;
        const float* t = mvTerms + rr * nb;
        for (int k = 0; k < nb; k++) sum = __fadd_rn(sum, t[k]);
        int row = r0 + rr;
        if (bias) sum += bias[row];
        float* yp = y + row;
        *yp = acc ? *yp + sum : sum;
    }
}

// The _mv kernels take rw (1, 2 or 4): the weight rows of a group.
#define MV_ARGS W, act, y, bias, rows, cols, rowBytes, acc, rpc
#define MM_Q(name, T)                                                                              \
    extern "C" __global__ void name##_mv(MM_PARAMS, int rpc, int rw) {                            \
        if (rw == 4)                                                                               \
            matvec_q<T, 4>(MV_ARGS);                                                               \
        else if (rw == 2)                                                                          \
            matvec_q<T, 2>(MV_ARGS);                                                               \
        else                                                                                       \
            matvec_q<T, 1>(MV_ARGS);                                                               \
    }                                                                                              \
    extern "C" __global__ void name##_r1(MM_PARAMS) { matmul_q<1, T>(MM_ARGS); }                  \
    extern "C" __global__ void name##_r16(MM_PARAMS) { matmul_q<16, T>(MM_ARGS); }
#define MM_F(name, KIND)                                                                           \
    extern "C" __global__ void name##_r1(MM_PARAMS) { matmul_f<1, KIND>(MM_ARGS); }               \
    extern "C" __global__ void name##_r16(MM_PARAMS) { matmul_f<16, KIND>(MM_ARGS); }

MM_Q(matmul_q8_0, TQ32<0>)
MM_Q(matmul_q4_0, TQ32<1>)
MM_Q(matmul_q5_0, TQ32<2>)
MM_Q(matmul_q4_k, TQ45K<false>)
MM_Q(matmul_q5_k, TQ45K<true>)
MM_Q(matmul_q6_k, TQ6K)
MM_F(matmul_f32, 0)
MM_F(matmul_f16, 1)
MM_F(matmul_bf16, 2)

// ---------------------------------------- tensor-core products (MMQ)
//
// For passes of many rows: integer tensor-core products (mma.sync s8) of
// 32-element blocks (16-element groups for Q6_K), which are exact, so the
// per-block float terms and their sums in block order are those of
// quant.VecDot, bit for bit, as in matmul_q. A block of 4 warps computes
// 64 weight rows x 64 activation rows, a warp 32 x 32 (2 x 4 tiles of
// m16n8). Thread (g = lane/4, t = lane%4) of a tile holds the outputs of
// weight rows g and g+8 and activation rows 2t and 2t+1; its A operand is
// bytes 4t.. and 16+4t.. of rows g and g+8, its B operand the same bytes of
// activation row g.

__device__ __forceinline__ void mma_k32(int c[4], const int a[4], const int b[2]) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_k16(int c[4], const int a[2], int b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b));
}


// The operands of one thread: w[mt][h] is weight row rowBase+16mt+g+8h,
// a[nt] activation row colBase+8nt+g (B), ac[nt][i] activation row
// colBase+8nt+2t+i (the outputs' scales); rows past the end repeat the
// last one.
struct MMQRows {
    const u8* w[2][2];
    const u8* a[4];
    const u8* ac[4][2];
};

// B32 runs the 32-element block types (Q32<KIND>).
template <int KIND>
struct B32 {
    typedef Q32<KIND> Q;
    static __device__ void run(const MMQRows& R, int cols, float acc[2][4][4]) {
        int lane = threadIdx.x % WARP, t = lane % 4;
        int nb = cols / 32;
        for (int b = 0; b < nb; b++) {
            int A[2][4], Bv[4][2];
            float wd[2][2], ad[4][2];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const u8* wb = R.w[mt][h] + (i64)b * Q::BYTES;
                    A[mt][h] = Q::word(wb, 4 * t);
                    A[mt][h + 2] = Q::word(wb, 16 + 4 * t);
                    wd[mt][h] = h2f(ld16(wb));
                }
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const u8* ab = R.a[nt] + (i64)b * 34;
                Bv[nt][0] = ld32u(ab + 2 + 4 * t);
                Bv[nt][1] = ld32u(ab + 18 + 4 * t);
                ad[nt][0] = h2f(ld16(R.ac[nt][0] + (i64)b * 34));
                ad[nt][1] = h2f(ld16(R.ac[nt][1] + (i64)b * 34));
            }
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    int c[4] = {0, 0, 0, 0};
                    mma_k32(c, A[mt], Bv[nt]);
#pragma unroll
                    for (int i = 0; i < 4; i++)
                        acc[mt][nt][i] = __fadd_rn(acc[mt][nt][i], Q::term(c[i], wd[mt][i >> 1], ad[nt][i & 1]));
                }
        }
    }
};

// byte k of three little-endian words.
__device__ __forceinline__ int byte3(const u32 s[3], int k) { return (s[k >> 2] >> (8 * (k & 3))) & 0xff; }

// Q4_K and Q5_K: a super-block is 8 steps of k32 (sub-block j: nibbles
// j%2 of bytes 32(j/2)..; Q5_K's fifth bit is bit j of the qh bytes).
template <bool Q5>
struct BK45 {
    static const int BYTES = Q5 ? 176 : 144;
    static __device__ void run(const MMQRows& R, int cols, float acc[2][4][4]) {
        int lane = threadIdx.x % WARP, t = lane % 4;
        int nb = cols / 256;
        for (int b = 0; b < nb; b++) {
            int isum[2][4][4], summs[2][4][4];
            u32 sc[2][2][3];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int h = 0; h < 2; h++)
#pragma unroll
                    for (int k = 0; k < 3; k++) sc[mt][h][k] = (u32)ld32(R.w[mt][h] + (i64)b * BYTES + 4 + 4 * k);
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) isum[mt][nt][i] = summs[mt][nt][i] = 0;
            for (int j = 0; j < 8; j++) {
                int A[2][4], Bv[4][2], scj[2][2], mj[2][2], bs[4][2];
                int qo = (Q5 ? 48 : 16) + 32 * (j / 2), sh = 4 * (j & 1);
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const u8* wb = R.w[mt][h] + (i64)b * BYTES;
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            int k = 16 * e + 4 * t;
                            int q = (ld32(wb + qo + k) >> sh) & 0x0f0f0f0f;
                            if (Q5) q |= ((ld32(wb + 16 + k) >> j) & 0x01010101) << 4;
                            A[mt][h + 2 * e] = q;
                        }
                        int s0, s1;
                        const u32* s = sc[mt][h];
                        if (j < 4) {
                            s0 = byte3(s, j) & 63;
                            s1 = byte3(s, j + 4) & 63;
                        } else {
                            s0 = (byte3(s, j + 4) & 0x0f) | ((byte3(s, j - 4) >> 6) << 4);
                            s1 = (byte3(s, j + 4) >> 4) | ((byte3(s, j) >> 6) << 4);
                        }
                        scj[mt][h] = s0;
                        mj[mt][h] = s1;
                    }
#pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    const u8* ab = R.a[nt] + (i64)b * 292 + 4 + 32 * j;
                    Bv[nt][0] = ld32(ab + 4 * t);
                    Bv[nt][1] = ld32(ab + 16 + 4 * t);
#pragma unroll
                    for (int i = 0; i < 2; i++) {
                        int w2 = ld32(R.ac[nt][i] + (i64)b * 292 + 260 + 4 * j);
                        bs[nt][i] = (int)(short)(w2 & 0xffff) + (int)(short)(w2 >> 16);
                    }
                }
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int nt = 0; nt < 4; nt++) {
                        int c[4] = {0, 0, 0, 0};
                        mma_k32(c, A[mt], Bv[nt]);
#pragma unroll
                        for (int i = 0; i < 4; i++) {
                            isum[mt][nt][i] += scj[mt][i >> 1] * c[i];
                            summs[mt][nt][i] += mj[mt][i >> 1] * bs[nt][i & 1];
                        }
                    }
            }
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const u8* wb = R.w[mt][i >> 1] + (i64)b * BYTES;
                        float yd = *(const float*)(R.ac[nt][i & 1] + (i64)b * 292);
                        float d = __fmul_rn(h2f(ld16(wb)), yd), dmin = __fmul_rn(h2f(ld16(wb + 2)), yd);
                        float term = __fsub_rn(__fmul_rn(d, (float)isum[mt][nt][i]), __fmul_rn(dmin, (float)summs[mt][nt][i]));
                        acc[mt][nt][i] = __fadd_rn(acc[mt][nt][i], term);
                    }
        }
    }
};

// Q6_K: 16 steps of k16 (group g16 of 16 elements, its own int8 scale).
struct BK6 {
    static __device__ void run(const MMQRows& R, int cols, float acc[2][4][4]) {
        int lane = threadIdx.x % WARP, t = lane % 4;
        int nb = cols / 256;
        for (int b = 0; b < nb; b++) {
            int isum[2][4][4];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) isum[mt][nt][i] = 0;
            for (int g16 = 0; g16 < 16; g16++) {
                int half = g16 / 8, sub = (g16 % 8) / 2, l = 16 * (g16 % 2) + 4 * t;
                int A[2][2], Bv[4], scg[2][2];
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const u8* wb = R.w[mt][h] + (i64)b * 210;
                        int ql = ld32u(wb + 64 * half + 32 * (sub & 1) + l);
                        int qh = ld32u(wb + 128 + 32 * half + l);
                        int q = ((ql >> (4 * (sub >> 1))) & 0x0f0f0f0f) | (((qh >> (2 * sub)) & 0x03030303) << 4);
                        A[mt][h] = vsub4(q, 0x20202020);
                        scg[mt][h] = (int)(i8)wb[192 + g16];
                    }
#pragma unroll
                for (int nt = 0; nt < 4; nt++) Bv[nt] = ld32(R.a[nt] + (i64)b * 292 + 4 + 16 * g16 + 4 * t);
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int nt = 0; nt < 4; nt++) {
                        int c[4] = {0, 0, 0, 0};
                        mma_k16(c, A[mt], Bv[nt]);
#pragma unroll
                        for (int i = 0; i < 4; i++) isum[mt][nt][i] += scg[mt][i >> 1] * c[i];
                    }
            }
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const u8* wb = R.w[mt][i >> 1] + (i64)b * 210;
                        float yd = *(const float*)(R.ac[nt][i & 1] + (i64)b * 292);
                        acc[mt][nt][i] = __fadd_rn(acc[mt][nt][i], __fmul_rn(__fmul_rn(h2f(ld16(wb + 208)), yd), (float)isum[mt][nt][i]));
                    }
        }
    }
};

// mmq is matmul's contract (MM_PARAMS) for a grid of (rows/64, m/64)
// blocks of 128 threads.
template <class T>
__device__ __forceinline__ void mmq(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                    float* __restrict__ y, int yStride, const float* __restrict__ bias,
                                    int rows, int cols, i64 rowBytes, int acc, int m) {
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int g = lane / 4, t = lane % 4;
    int rowBase = blockIdx.x * 64 + (warp & 1) * 32, colBase = blockIdx.y * 64 + (warp >> 1) * 32;
    if (rowBase >= rows || colBase >= m) return;
    MMQRows R;
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) R.w[mt][h] = W + (i64)min(rows - 1, rowBase + 16 * mt + g + 8 * h) * rowBytes;
#pragma unroll
    for (int nt = 0; nt < 4; nt++) {
        R.a[nt] = act + (i64)min(m - 1, colBase + 8 * nt + g) * actStride;
#pragma unroll
        for (int i = 0; i < 2; i++) R.ac[nt][i] = act + (i64)min(m - 1, colBase + 8 * nt + 2 * t + i) * actStride;
    }
    float sum[2][4][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) sum[mt][nt][i] = 0.0f;
    T::run(R, cols, sum);
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int row = rowBase + 16 * mt + g + 8 * (i >> 1), col = colBase + 8 * nt + 2 * t + (i & 1);
                if (row >= rows || col >= m) continue;
                float s = sum[mt][nt][i];
                if (bias) s += bias[row];
                float* yp = y + (i64)col * yStride + row;
                *yp = acc ? *yp + s : s;
            }
}

extern "C" __global__ void mmq_q8_0(MM_PARAMS) { mmq<B32<0> >(MM_ARGS); }
extern "C" __global__ void mmq_q4_0(MM_PARAMS) { mmq<B32<1> >(MM_ARGS); }
extern "C" __global__ void mmq_q5_0(MM_PARAMS) { mmq<B32<2> >(MM_ARGS); }
extern "C" __global__ void mmq_q4_k(MM_PARAMS) { mmq<BK45<false> >(MM_ARGS); }
extern "C" __global__ void mmq_q5_k(MM_PARAMS) { mmq<BK45<true> >(MM_ARGS); }
extern "C" __global__ void mmq_q6_k(MM_PARAMS) { mmq<BK6>(MM_ARGS); }

// ------------------------------------------------------ embedding rows
//
// get_rows_T writes, for every row r of the pass (grid.y), row
// ROW_TOKEN(info, r) of W (cols values) as float32 at out + r*cols, as
// quant.Dequantize does.

__device__ __forceinline__ float deq_f32(const u8* w, int i) { return ((const float*)w)[i]; }
__device__ __forceinline__ float deq_f16(const u8* w, int i) { return h2f(((const u16*)w)[i]); }
__device__ __forceinline__ float deq_bf16(const u8* w, int i) { return bf2f(((const u16*)w)[i]); }
__device__ __forceinline__ float deq_q8_0(const u8* w, int i) {
    const u8* b = w + (i / 32) * 34;
    return __fmul_rn((float)(i8)b[2 + i % 32], h2f(ld16(b)));
}
__device__ __forceinline__ float deq_q4_0(const u8* w, int i) {
    const u8* b = w + (i / 32) * 18;
    int j = i % 32;
    int q = j < 16 ? (b[2 + j] & 0x0f) : (b[2 + j - 16] >> 4);
    return __fmul_rn((float)(q - 8), h2f(ld16(b)));
}
__device__ __forceinline__ float deq_q5_0(const u8* w, int i) {
    const u8* b = w + (i / 32) * 22;
    int j = i % 32;
    u32 qh = (u32)ld32u(b + 2);
    int byte = b[6 + j % 16];
    int q = (j < 16 ? (byte & 0x0f) : (byte >> 4)) | (int)(((qh >> j) & 1) << 4);
    return __fmul_rn((float)(q - 16), h2f(ld16(b)));
}
template <bool Q5>
__device__ __forceinline__ float deq_q45k(const u8* w, int i) {
    const u8* b = w + (i / 256) * (Q5 ? 176 : 144);
    int e = i % 256, chunk = e / 64, l = e % 32;
    bool high = (e % 64) >= 32;
    int byte = b[(Q5 ? 48 : 16) + 32 * chunk + l];
    int q = high ? (byte >> 4) : (byte & 0x0f);
    if (Q5) q |= ((b[16 + l] >> (2 * chunk + (high ? 1 : 0))) & 1) << 4;
    int sc, m;
    scale_min_k4(e / 32, b + 4, &sc, &m);
    float d1 = __fmul_rn(h2f(ld16(b)), (float)sc), m1 = __fmul_rn(h2f(ld16(b + 2)), (float)m);
    return __fsub_rn(__fmul_rn(d1, (float)q), m1);
}
__device__ __forceinline__ float deq_q6_k(const u8* w, int i) {
    const u8* b = w + (i / 256) * 210;
    int e = i % 256, half = e / 128, sub = (e % 128) / 32, l = e % 32;
    int ql = b[64 * half + 32 * (sub & 1) + l];
    int nib = sub >= 2 ? (ql >> 4) : (ql & 0x0f);
    int hb = (b[128 + 32 * half + l] >> (2 * sub)) & 3;
    int q = (nib | (hb << 4)) - 32;
    return __fmul_rn((float)q, __fmul_rn(h2f(ld16(b + 208)), (float)(i8)b[192 + e / 16]));
}

#define GET_ROWS(name, deq)                                                                        \
    extern "C" __global__ void name(const u8* __restrict__ W, float* __restrict__ out,            \
                                    const int* __restrict__ info, int cols, i64 rowBytes) {        \
        int r = blockIdx.y;                                                                        \
        const u8* w = W + (i64)ROW_TOKEN(info, r) * rowBytes;                                      \
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) \
            out[(i64)r * cols + i] = deq(w, i);                                                    \
    }

GET_ROWS(get_rows_f32, deq_f32)
GET_ROWS(get_rows_f16, deq_f16)
GET_ROWS(get_rows_bf16, deq_bf16)
GET_ROWS(get_rows_q8_0, deq_q8_0)
GET_ROWS(get_rows_q4_0, deq_q4_0)
GET_ROWS(get_rows_q5_0, deq_q5_0)
GET_ROWS(get_rows_q4_k, deq_q45k<false>)
GET_ROWS(get_rows_q5_k, deq_q45k<true>)
GET_ROWS(get_rows_q6_k, deq_q6_k)

// ------------------------------------------------------- normalisation

// rmsnorm writes w * x/rms(x) for rows of n values, one block (a multiple
// of 32 threads, at most 1024) per row: output row r reads input row
// sel[r] (r when sel is null). The squares (float32) are summed in double
// by a block tree; ggml != 0 follows RMSNormGGML (mean and scale float32,
// y = x*scale*w), otherwise RMSNorm (sum rounded to float, y = w*(x*scale)).
// The output rows are then quantized as quantize does into q80 / q8k
// (either may be null).
extern "C" __global__ void rmsnorm(const float* __restrict__ x, const float* __restrict__ w,
                                   float* __restrict__ out, int n, float eps, int ggml,
                                   const int* __restrict__ sel, u8* __restrict__ q80, u8* __restrict__ q8k) {
    __shared__ double red[32];
    __shared__ float scl;
    int r = blockIdx.x;
    const float* xr = x + (i64)(sel ? sel[r] : r) * n;
    float* o = out + (i64)r * n;
    double s = 0.0;
    for (int i = threadIdx.x * 8; i < n; i += blockDim.x * 8)
#pragma unroll
        for (int j = 0; j < 8; j++)
            if (i + j < n) s += (double)__fmul_rn(xr[i + j], xr[i + j]);
    for (int k = 16; k > 0; k >>= 1) s += __shfl_xor_sync(FULL, s, k);
    int lane = threadIdx.x % WARP, wi = threadIdx.x / WARP, nw = blockDim.x / WARP;
    if (lane == 0) red[wi] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double sum = 0.0;
        for (int k = 0; k < nw; k++) sum += red[k];
        if (ggml) {
            float mean = (float)__ddiv_rn(sum, (double)n);
            scl = __fdiv_rn(1.0f, (float)sqrt((double)__fadd_rn(mean, eps)));
        } else {
            float ss = (float)sum;
            scl = (float)(1.0 / sqrt((double)(ss / (float)n + eps)));
        }
    }
    __syncthreads();
    float scale = scl;
    // Each warp takes chunks of 256 outputs, quantized from registers.
    u8* q80r = q80 ? q80 + (i64)r * (n / 32) * 34 : 0;
    u8* q8kr = q8k ? q8k + (i64)r * (n / 256) * 292 : 0;
    for (int base = wi * 256; base < n; base += nw * 256) {
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int e = base + 8 * lane + j;
            v[j] = 0.0f;
            if (e < n) {
                v[j] = ggml ? __fmul_rn(__fmul_rn(xr[e], scale), w[e]) : __fmul_rn(w[e], __fmul_rn(xr[e], scale));
                o[e] = v[j];
            }
        }
        if (q80r || q8kr) quant_chunk(v, base, n, q80r, q8kr);
    }
}

// ---------------------------------------------------------------- RoPE

// rope_angle is the rotation of pair i at position pos. style 0
// (transformers): pos * invFreq[i]; style 1 (ggml): pos * thetaScale^i by
// repeated float32 products.
__device__ __forceinline__ float rope_angle(int pos, int i, const float* invFreq, float thetaScale, int style) {
    if (style == 0) return __fmul_rn((float)pos, invFreq[i]);
    float ang = (float)pos;
    for (int k = 0; k < i; k++) ang = __fmul_rn(ang, thetaScale);
    return ang;
}

// rotate turns pair (p[i], p[i+half]) by ang (sine and cosine in double,
// rounded, as the CPU backend does).
__device__ __forceinline__ void rotate(float* p, int i, int half, float ang) {
    float c = (float)cos((double)ang), s = (float)sin((double)ang);
    float a = p[i], b = p[i + half];
    p[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    p[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

// rope_store rotates the queries (heads x dim at qkv + r*stride) and keys
// (kvHeads x dim after them) of every row r of the pass (grid.y) at the
// row's position, and stores the keys and the values (after the keys) in
// the row's slot of the caches (F16 when f16, else float32; a slot is
// slotBytes, a position kvHeads*dim elements).
extern "C" __global__ void rope_store(float* __restrict__ qkv, int stride, const float* __restrict__ invFreq,
                                      int heads, int kvHeads, int dim, const int* __restrict__ info,
                                      float thetaScale, int style, u8* __restrict__ kc, u8* __restrict__ vc,
                                      int f16, i64 slotBytes) {
    int r = blockIdx.y;
    int pos = ROW_POS(info, r);
    int half = dim / 2, kvDim = kvHeads * dim;
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    float* row = qkv + (i64)r * stride;
    i64 at = (i64)ROW_SLOT(info, r) * slotBytes + (i64)pos * kvDim * (f16 ? 2 : 4);
    int nq = heads * half, nk = kvHeads * half;
    if (t < nq) {
        int h = t / half, i = t % half;
        rotate(row + h * dim, i, half, rope_angle(pos, i, invFreq, thetaScale, style));
        return;
    }
    t -= nq;
    float* k = row + heads * dim;
    if (t < nk) {
        int h = t / half, i = t % half;
        float* p = k + h * dim;
        rotate(p, i, half, rope_angle(pos, i, invFreq, thetaScale, style));
        int e0 = h * dim + i, e1 = e0 + half;
        if (f16) {
            ((u16*)(kc + at))[e0] = f2h(p[i]);
            ((u16*)(kc + at))[e1] = f2h(p[i + half]);
        } else {
            ((float*)(kc + at))[e0] = p[i];
            ((float*)(kc + at))[e1] = p[i + half];
        }
        return;
    }
    t -= nk;
    if (t < kvDim) {
        float v = k[kvDim + t];
        if (f16) ((u16*)(vc + at))[t] = f2h(v);
        else ((float*)(vc + at))[t] = v;
    }
}

// ----------------------------------------------------------- attention

// attention is causal grouped-query attention of one token at position
// n-1 over cache positions 0..n-1: one block per query head. scores is
// scratch of heads x ctx floats. Every sum runs in the order of the CPU
// backend's loops (four partial sums for F16 rows, eight for float32, the
// softmax denominator and each output element over positions in order), so
// that GPU and CPU round alike. With an F16 cache the query is rounded to
// F16 first, as ggml does. Grid (heads, rows): row r of the pass reads its
// query at q + r*qStride, its position and slot from info (ROW_POS,
// ROW_SLOT; the slot's cache starts slot*slotBytes into kc and vc) and
// writes heads x dim floats at out + r*heads*dim.
extern "C" __global__ void attention(const float* __restrict__ q, const u8* __restrict__ kc,
                                     const u8* __restrict__ vc, float* __restrict__ out,
                                     float* __restrict__ scores, int heads, int kvHeads, int dim,
                                     const int* __restrict__ info, int ctx, float scale, int f16,
                                     int qStride, i64 slotBytes) {
    int r = blockIdx.y;
    int n = ROW_POS(info, r) + 1;
    kc += (i64)ROW_SLOT(info, r) * slotBytes;
    vc += (i64)ROW_SLOT(info, r) * slotBytes;
    q += (i64)r * qStride;
    out += (i64)r * heads * dim;
    scores += (i64)r * heads * ctx;
    extern __shared__ float qs[];  // dim floats
    __shared__ float red[32];
    __shared__ float total;
    int h = blockIdx.x;
    int group = heads / kvHeads;
    int kvStride = kvHeads * dim;
    int off = (h / group) * dim;
    float* sc = scores + (i64)h * ctx;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = q[h * dim + i];
        qs[i] = f16 ? h2f(f2h(v)) : v;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        i64 r = (i64)j * kvStride + off;
        float dot;
        int i = 0;
        if (f16) {
            const u16* kr = (const u16*)kc + r;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            for (; i + 4 <= dim; i += 4) {
                s0 = __fadd_rn(s0, __fmul_rn(h2f(kr[i]), qs[i]));
                s1 = __fadd_rn(s1, __fmul_rn(h2f(kr[i + 1]), qs[i + 1]));
                s2 = __fadd_rn(s2, __fmul_rn(h2f(kr[i + 2]), qs[i + 2]));
                s3 = __fadd_rn(s3, __fmul_rn(h2f(kr[i + 3]), qs[i + 3]));
            }
            for (; i < dim; i++) s0 = __fadd_rn(s0, __fmul_rn(h2f(kr[i]), qs[i]));
            dot = __fadd_rn(__fadd_rn(s0, s1), __fadd_rn(s2, s3));
        } else {
            const float* kr = (const float*)kc + r;
            float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            for (; i + 8 <= dim; i += 8) {
#pragma unroll
                for (int k = 0; k < 8; k++) s[k] = __fadd_rn(s[k], __fmul_rn(qs[i + k], kr[i + k]));
            }
            for (; i < dim; i++) s[0] = __fadd_rn(s[0], __fmul_rn(qs[i], kr[i]));
            dot = __fadd_rn(__fadd_rn(__fadd_rn(s[0], s[1]), __fadd_rn(s[2], s[3])),
                            __fadd_rn(__fadd_rn(s[4], s[5]), __fadd_rn(s[6], s[7])));
        }
        sc[j] = __fmul_rn(dot, scale);
    }
    __syncthreads();
    float m = -3.402823466e38f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, sc[j]);
    m = block_max(m, red);
    for (int j = threadIdx.x; j < n; j += blockDim.x) sc[j] = (float)exp((double)(sc[j] - m));
    __syncthreads();
    if (threadIdx.x == 0) {
        float sum = 0.0f;
        for (int j = 0; j < n; j++) sum = __fadd_rn(sum, sc[j]);
        total = sum;
    }
    __syncthreads();
    float inv = 1.0f / total;
    for (int j = threadIdx.x; j < n; j += blockDim.x) sc[j] = __fmul_rn(sc[j], inv);
    __syncthreads();
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float o = 0.0f;
        if (f16) {
            const u16* vr = (const u16*)vc + off + i;
            for (int j = 0; j < n; j++) o = __fadd_rn(o, __fmul_rn(sc[j], h2f(vr[(i64)j * kvStride])));
        } else {
            const float* vr = (const float*)vc + off + i;
            for (int j = 0; j < n; j++) o = __fadd_rn(o, __fmul_rn(sc[j], vr[(i64)j * kvStride]));
        }
        out[h * dim + i] = o;
    }
}

// ggml_expf is ggml_v_expf (ggml-cpu's vec.h), as the CPU backend's
// GGMLExpf computes it: the same float32 polynomial, fused where ggml fuses.
__device__ __forceinline__ float ggml_expf(float x) {
    const float r = 0x1.8p23f;
    float z = __fmaf_rn(x, 0x1.715476p+0f, r);
    float n = __fsub_rn(z, r);
    float b = __fmaf_rn(-n, 0x1.7f7d1cp-20f, __fmaf_rn(-n, 0x1.62e4p-1f, x));
    float u = __fmul_rn(b, b);
    float j = __fmaf_rn(
        __fmaf_rn(__fmaf_rn(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, __fmaf_rn(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
        u, __fmaf_rn(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : __uint_as_float(0x7f800000u);
    // j * 2^n: a float product by a power of two is exact while the
    // result stays normal (j is near 1); otherwise in double, rounded once.
    if (n >= -125.0f && n <= 127.0f) return __fmul_rn(j, __int_as_float(((int)n + 127) << 23));
    return (float)ldexp((double)j, (int)n);
}

// dot_f16_ggml is ggml_vec_dot_f16 as the CPU backend's dotF16GGML runs
// it: for dim a multiple of 64, four 16-lane accumulators of fused
// multiply-adds, reduced (a0+a2)+(a1+a3), then halves added pairwise
// (_mm512_reduce_add_ps); otherwise one fused sum in order.
// The keys k are F16 values (u8*: in global memory) or already widened
// to float32 (exact; in shared memory).
__device__ __forceinline__ float kval(const float* k, int i) { return k[i]; }
__device__ __forceinline__ float kval(const u8* k, int i) { return h2f(((const u16*)k)[i]); }
template <class K>
__device__ __forceinline__ float dot_f16_ggml(const K* __restrict__ k, const float* __restrict__ q, int dim) {
    if (dim % 64 != 0) {
        float s = 0.0f;
        for (int i = 0; i < dim; i++) s = __fmaf_rn(kval(k, i), q[i], s);
        return s;
    }
    float a[4][16];
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int l = 0; l < 16; l++) a[j][l] = 0.0f;
    for (int i = 0; i < dim; i += 64) {
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int l = 0; l < 16; l++) {
                int e = i + 16 * j + l;
                a[j][l] = __fmaf_rn(kval(k, e), q[e], a[j][l]);
            }
    }
    float v[16];
#pragma unroll
    for (int l = 0; l < 16; l++) v[l] = __fadd_rn(__fadd_rn(a[0][l], a[2][l]), __fadd_rn(a[1][l], a[3][l]));
#pragma unroll
    for (int w = 8; w >= 1; w /= 2)
#pragma unroll
        for (int l = 0; l < w; l++) v[l] = __fadd_rn(v[l], v[l + w]);
    return v[0];
}

// stage_keys widens keys ic..ic+nk-1 (F16, head offset off, rows kvStride
// apart) into ks, 64 rows of dim+1 floats (zeros past nk).
// Pairs of values (dim is even) in batches of 8 loads a thread.
__device__ void stage_keys(const u8* kc, int kvStride, int off, int ic, int nk, int dim, float* ks) {
    int half = dim / 2, total = 64 * half;
    for (int i0 = threadIdx.x; i0 < total; i0 += 8 * blockDim.x) {
        u32 v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            int idx = i0 + u * blockDim.x, key = idx / half, p = idx % half;
            v[u] = idx < total && key < nk ? ((const u32*)kc)[((i64)(ic + key) * kvStride + off) / 2 + p] : 0u;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            int idx = i0 + u * blockDim.x, key = idx / half, p = idx % half;
            if (idx < total) {
                ks[key * (dim + 1) + 2 * p] = h2f((u16)(v[u] & 0xffff));
                ks[key * (dim + 1) + 2 * p + 1] = h2f((u16)(v[u] >> 16));
            }
        }
    }
}

// attention_fa is ggml's CPU flash attention for one query row over an F16
// cache, as the CPU backend's FlashAttentionGGML computes it: grid (heads,
// rows) as attention's. ggml picks the kernel by the rows of the pass (*passp):
// below 64 rows the F16 one-chunk kernel, from 64 on the float32 tiled one.
//
// One chunk (faOneChunkRow): the query is rounded to F16; each key's score
// is dot_f16_ggml * scale (one thread per key); one thread then runs the
// online softmax over the keys in order (expf as exp in double, rounded),
// leaving per key in scores either -ms (a new maximum: the accumulator is
// scaled by ms, the value added with weight 1) or vs (the value's weight);
// finally each thread owns output elements whose F16 accumulator takes the
// keys in order, rounded to F16 after every scale and fused multiply-add,
// as ggml_vec_scale_f16 and ggml_vec_mad_f16 do.
//
// Tiled (faTiledRow): key tiles of 64; scores as fused chains over the
// head dimension with the float32 query; per tile warp 0 takes the
// maximum, rescales, and sums ggml_expf(s - M) in 16-lane trees added in
// double; the float32 accumulator takes the tile's keys by fused
// multiply-adds in order.
//
// Both stage each tile of 64 keys in shared memory first (widened to
// float32, rows padded to dim+1 floats: no bank conflicts), as the
// threads' serial dot products would otherwise read strided rows.
//
// attention_fa_tiled is the tiled kernel alone, for passes the host knows to
// have 64 rows or more (fewer registers than both together: more blocks
// resident).
#define ATTN_FA_PARAMS                                                                             \
    const float *__restrict__ q, const u8 *__restrict__ kc, const u8 *__restrict__ vc,             \
        float *__restrict__ out, float *__restrict__ scores, int heads, int kvHeads, int dim,      \
        const int *__restrict__ info, int ctx, float scale, const int *__restrict__ passp,         \
        int qStride, i64 slotBytes
template <bool TILED_ONLY>
__device__ __forceinline__ void attention_fa_body(ATTN_FA_PARAMS) {
    int rows = TILED_ONLY ? 64 : *passp;
    int r = blockIdx.y;
    int n = ROW_POS(info, r) + 1;
    kc += (i64)ROW_SLOT(info, r) * slotBytes;
    vc += (i64)ROW_SLOT(info, r) * slotBytes;
    q += (i64)r * qStride;
    out += (i64)r * heads * dim;
    scores += (i64)r * heads * ctx;
    extern __shared__ float faShared[];  // dim floats, (tiled: dim accumulators, 64 scores), 64 x (dim+1) keys
    float* qs = faShared;
    __shared__ float total, tms, ms;
    __shared__ int tflag;
    int h = blockIdx.x;
    int group = heads / kvHeads;
    int kvStride = kvHeads * dim;
    int off = (h / group) * dim;
    if (rows >= 64) {
        float* acc = qs + dim;
        float* kq = acc + dim;
        const float ninf = __uint_as_float(0xff800000u);
        for (int i = threadIdx.x; i < dim; i += blockDim.x) {
            qs[i] = q[h * dim + i];
            acc[i] = 0.0f;
        }
        if (threadIdx.x == 0) {
            total = 0.0f;
            tms = ninf;  // M while no tile runs
        }
        __syncthreads();
        float* ks = kq + 64;
        for (int ic = 0; ic < n; ic += 64) {
            int nk = min(64, n - ic);
            stage_keys(kc, kvStride, off, ic, nk, dim, ks);
            __syncthreads();
            for (int tk = threadIdx.x; tk < 64; tk += blockDim.x) {
                float s = ninf;
                if (tk < nk) {
                    const float* kr = ks + tk * (dim + 1);
                    s = 0.0f;
                    for (int d = 0; d < dim; d++) s = __fmaf_rn(qs[d], kr[d], s);
                    s = __fmul_rn(s, scale);
                }
                kq[tk] = s;
            }
            __syncthreads();
            // Warp 0: the tile's maximum (exact in any order), the
            // rescale, the 64 exponentials (two a lane) and their four
            // 16-lane trees (shuffles pair the same elements as ggml's
            // loop), the trees' sums added in double in order.
            if (threadIdx.x < WARP) {
                int lane = threadIdx.x;
                float k0 = kq[lane], k1 = kq[lane + 32];
                float tileMax = warp_max(fmaxf(k0, k1));
                float M = tms, S = total;
                int flag = 0;  // 0: skip the tile, 1: add, 2: rescale and add
                if (tileMax != ninf) {
                    flag = 1;
                    float Mnew = fmaxf(M, tileMax);
                    if (Mnew > M) {
                        float m = (float)exp((double)__fsub_rn(M, Mnew));
                        if (lane == 0) ms = m;
                        S = __fmul_rn(S, m);
                        flag = 2;
                    }
                    M = Mnew;
                    float e0 = ggml_expf(__fsub_rn(k0, M)), e1 = ggml_expf(__fsub_rn(k1, M));
                    kq[lane] = e0;
                    kq[lane + 32] = e1;
                    for (int w = 8; w >= 1; w /= 2) {
                        float t0 = __shfl_down_sync(FULL, e0, w, 16), t1 = __shfl_down_sync(FULL, e1, w, 16);
                        if ((lane % 16) < w) {
                            e0 = __fadd_rn(e0, t0);
                            e1 = __fadd_rn(e1, t1);
                        }
                    }
                    float g1 = __shfl_sync(FULL, e0, 16), g3 = __shfl_sync(FULL, e1, 16);
                    double sum = __dadd_rn(__dadd_rn(__dadd_rn(__dadd_rn(0.0, (double)e0), (double)g1), (double)e1), (double)g3);
                    S = (float)__dadd_rn((double)S, sum);
                }
                if (lane == 0) {
                    tms = M;
                    total = S;
                    tflag = flag;
                }
            }
            __syncthreads();
            int flag = tflag;
            if (flag != 0) {
                float m = ms;
                for (int i = threadIdx.x; i < dim; i += blockDim.x) {
                    float a = acc[i];
                    if (flag == 2) a = __fmul_rn(a, m);
                    const u16* vr = (const u16*)vc + (i64)ic * kvStride + off + i;
                    // Batches of 8 values loaded before their fused
                    // multiply-adds, so the loads overlap.
                    for (int t0 = 0; t0 < nk; t0 += 8) {
                        float vv[8];
#pragma unroll
                        for (int u = 0; u < 8; u++) vv[u] = t0 + u < nk ? h2f(vr[(i64)(t0 + u) * kvStride]) : 0.0f;
#pragma unroll
                        for (int u = 0; u < 8; u++)
                            if (t0 + u < nk) a = __fmaf_rn(kq[t0 + u], vv[u], a);
                    }
                    acc[i] = a;
                }
            }
            __syncthreads();
        }
        float S = total;
        float inv = S != 0.0f ? __fdiv_rn(1.0f, S) : 0.0f;
        for (int i = threadIdx.x; i < dim; i += blockDim.x) out[h * dim + i] = __fmul_rn(acc[i], inv);
        return;
    }
    if (TILED_ONLY) return;
    float* sc = scores + (i64)h * ctx;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) qs[i] = h2f(f2h(q[h * dim + i]));
    __syncthreads();
    if (n <= (int)blockDim.x) {
        // One key a thread, read from global memory: one round (decoding).
        if ((int)threadIdx.x < n)
            sc[threadIdx.x] = __fmul_rn(dot_f16_ggml(kc + ((i64)threadIdx.x * kvStride + off) * 2, qs, dim), scale);
    } else {
        float* ks = qs + dim;
        for (int ic = 0; ic < n; ic += 64) {
            int nk = min(64, n - ic);
            stage_keys(kc, kvStride, off, ic, nk, dim, ks);
            __syncthreads();
            if ((int)threadIdx.x < nk) sc[ic + threadIdx.x] = __fmul_rn(dot_f16_ggml(ks + threadIdx.x * (dim + 1), qs, dim), scale);
            __syncthreads();
        }
    }
    __syncthreads();
    // The online softmax's maxima are prefix maxima: each thread takes a
    // segment of keys, a block scan gives the maximum before it, and the
    // exponentials run in parallel; only the running sum S stays serial.
    {
        const float ninf = __uint_as_float(0xff800000u);
        int per = (n + blockDim.x - 1) / blockDim.x;
        int lo = min(n, (int)threadIdx.x * per), hi = min(n, lo + per);
        float seg = ninf;
        for (int j = lo; j < hi; j++) seg = fmaxf(seg, sc[j]);
        float M = block_excl_max(seg);
        for (int j = lo; j < hi; j++) {
            float s = sc[j];
            if (s > M) {
                sc[j] = -(float)exp((double)__fsub_rn(M, s));
                M = s;
            } else {
                sc[j] = (float)exp((double)__fsub_rn(s, M));
            }
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float S = 0.0f;
#pragma unroll 8
        for (int j = 0; j < n; j++) {
            float w = sc[j];
            S = (__float_as_uint(w) >> 31) ? __fadd_rn(__fmul_rn(S, -w), 1.0f) : __fadd_rn(S, w);
        }
        total = S;
    }
    __syncthreads();
    float S = total;
    float inv = S != 0.0f ? __fdiv_rn(1.0f, S) : 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const u16* vr = (const u16*)vc + off + i;
        u16 acc = 0;
        for (int j0 = 0; j0 < n; j0 += 8) {
            float vv[8];
#pragma unroll
            for (int u = 0; u < 8; u++) vv[u] = j0 + u < n ? h2f(vr[(i64)(j0 + u) * kvStride]) : 0.0f;
#pragma unroll
            for (int u = 0; u < 8; u++) {
                if (j0 + u >= n) break;
                float w = sc[j0 + u];
                float vs = w;
                if (__float_as_uint(w) >> 31) {
                    acc = f2h(__fmul_rn(h2f(acc), -w));
                    vs = 1.0f;
                }
                acc = f2h(__fmaf_rn(vv[u], vs, h2f(acc)));
            }
        }
        out[h * dim + i] = __fmul_rn(h2f(acc), inv);
    }
}

#define ATTN_FA_ARGS q, kc, vc, out, scores, heads, kvHeads, dim, info, ctx, scale, passp, qStride, slotBytes
extern "C" __global__ void attention_fa(ATTN_FA_PARAMS) { attention_fa_body<false>(ATTN_FA_ARGS); }
extern "C" __global__ void __launch_bounds__(256) attention_fa_tiled(ATTN_FA_PARAMS) { attention_fa_body<true>(ATTN_FA_ARGS); }


// ------------------------------------------------------ pointwise ops

// silu_quant sets out[r][i] = silu(g) * u for the gate g = gu[r][i] and up
// u = gu[r][n+i] of rows of 2n values, over all rows' m*n outputs (the
// flat index e = r*n + i); with ggml != 0 as ggml_vec_swiglu_f32 (the CPU
// backend's SiLUMulGGML: g / (1 + ggml_expf(-g)) * u), otherwise as
// SiLUMul (exp in double). It then quantizes the outputs as quantize does
// (q80 / q8k may be null): one warp per 256 outputs.
extern "C" __global__ void silu_quant(const float* __restrict__ gu, float* __restrict__ out, int n, i64 total,
                                      int ggml, u8* __restrict__ q80, u8* __restrict__ q8k) {
    i64 base = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / WARP * 256;
    if (base >= total) return;
    int lane = threadIdx.x % WARP;
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        i64 e = base + 8 * lane + j;
        float r = 0.0f;
        if (e < total) {
            i64 row = e / n, i = e % n;
            float x = gu[row * 2 * n + i], u = gu[row * 2 * n + n + i];
            if (ggml) {
                r = __fmul_rn(__fdiv_rn(x, __fadd_rn(1.0f, ggml_expf(-x))), u);
            } else {
                float ex = (float)exp((double)-x);
                r = __fmul_rn(x / (1.0f + ex), u);
            }
            out[e] = r;
        }
        v[j] = r;
    }
    if (q80 || q8k) quant_chunk(v, base, total, q80, q8k);
}

// add sets x += y.
extern "C" __global__ void add(float* __restrict__ x, const float* __restrict__ y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

// argmax_merge keeps the larger value, the lower index on ties.
__device__ __forceinline__ void argmax_merge(float* best, int* idx, float v2, int i2) {
    if (v2 > *best || (v2 == *best && i2 < *idx)) { *best = v2; *idx = i2; }
}

// argmax_block reduces (best, idx) over a block; thread 0 gets the result.
__device__ void argmax_block(float* best, int* idx) {
    __shared__ float bv[32];
    __shared__ int bi[32];
    for (int o = 16; o > 0; o >>= 1)
        argmax_merge(best, idx, __shfl_xor_sync(FULL, *best, o), __shfl_xor_sync(FULL, *idx, o));
    int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
    if (lane == 0) { bv[w] = *best; bi[w] = *idx; }
    __syncthreads();
    if (w == 0) {
        *best = lane < nw ? bv[lane] : -3.402823466e38f;
        *idx = lane < nw ? bi[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1)
            argmax_merge(best, idx, __shfl_xor_sync(FULL, *best, o), __shfl_xor_sync(FULL, *idx, o));
    }
}

// argmax_part writes the largest of its block's share of n values (the
// first on ties) and its index to pv[blockIdx.x], pi[blockIdx.x].
extern "C" __global__ void argmax_part(const float* __restrict__ x, int n, float* __restrict__ pv, int* __restrict__ pi) {
    float best = -3.402823466e38f;
    int idx = 0x7fffffff;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        argmax_merge(&best, &idx, x[i], i);
    argmax_block(&best, &idx);
    if (threadIdx.x == 0) { pv[blockIdx.x] = best; pi[blockIdx.x] = idx; }
}

// argmax_final merges parts partial results (one block) into out[0].
extern "C" __global__ void argmax_final(const float* __restrict__ pv, const int* __restrict__ pi, int parts, int* __restrict__ out) {
    float best = -3.402823466e38f;
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < parts; i += blockDim.x) argmax_merge(&best, &idx, pv[i], pi[i]);
    argmax_block(&best, &idx);
    if (threadIdx.x == 0) out[0] = idx;
}
