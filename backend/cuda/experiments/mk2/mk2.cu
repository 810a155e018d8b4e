// mk2.cu: a dataflow megakernel prototype for one decode step of the
// Qwen2.5-Coder-1.5B shapes (28 layers, hidden 1536, 12 query heads and 2
// KV heads of 128, FFN 8960), to measure how many microseconds a layer the
// step can take when one persistent kernel replaces the kernel sequence.
// Not part of apr: a standalone program (nvcc -arch=sm_90 -O3 mk2.cu), run
// on the device machine by run.sh beside it. NOTES.md (thirty-second
// session) has its design, figures and what they say.
//
// Design. One block an SM (grid = the SMs, ~220 KB of shared memory each).
// Warp NCW of a block is its producer: it walks the block's weight rows in
// the order the block uses them (q/k/v, o, gate, up, down, next layer: a
// block's rows of a matrix are one contiguous range) and copies them with
// cp.async (16 bytes a lane, L2 evict-first) into a ring of NPAGE pages of
// whole rows, waiting only for free pages (mbarriers). Warps 0..NCW-1
// consume: per layer five stages, each waiting on a counter in global
// memory that the stage before it raises once per block (release/acquire
// at gpu scope):
//   A: x ready          -> RMSNorm + Q8_K of x, q/k/v rows (+ bias)
//   B: q/k/v ready      -> blocks 0..11: RoPE, the cache row, attention
//   C: attention ready  -> Q8_K of the heads' output, o rows + residual
//   D: o ready          -> RMSNorm + Q8_K, gate and up rows, silu(g)*u
//   E: act ready        -> Q8_K of act, down rows + residual = next x
// Every block makes the activation it needs itself from floats in L2. The
// products: a lane a task of 64 (Q4_K) or 32 (Q6_K) weights, float sums a
// lane over groups of 4 rows of 1536 columns (the rows share the
// activation's loads) or one down row a warp, a transposing warp reduction
// at the end. Weights are random: Q4_K, or with the second argument 1 the
// real 1.5B Q4_K_M's mix (attn_v and every other layer's ffn_down Q6_K).
//
// Usage: mk2 [pos [mix [steps [modes]]]]; modes is a list of digits, each
// a bit set: 1 no weight copies, 2 no counter waits (timing only). Stamps
// of each stage (clock64 of thread 0, blocks 0, 66 and 131, the median over
// layers 4..23) follow each mode's step time. Compile-time knobs: NCW
// (consumer warps, 15; 11 gives 168 registers and no spills), NPAGE (12),
// NRSMALL / NRV / NRDOWN (rows a group: 4, the Q6_K v rows 2, down 1),
// KSPLIT (warps a down row, 1),
// variants measured slower (NOTES.md): GU=0, TASKS=1, NOSWIZZLE, VSPREAD,
// TRYWAIT, DOTNOINLINE; EXACT=1 (the products' sums as apr's, bit-identical
// to the CPU: +2.6-2.9 us a layer); MMA=1 (the Q4_K rows of 1536 columns by
// exact integer tensor-core products, with MMACH, MKP, MKPS and MMAQK: gate
// and up 5.7 -> 3.6 us; the layer 26.93 -> 26.63 us with NCW=11 MMACH=2
// MKP=2 MMAQK=0; NOTES.md, thirty-third session); LATT=n (every block its
// own attention up to position n; ATTLINLINE inlines it; slower); QKB=n
// (the q/k rows over blocks 0..n-1, v over the rest; 112, the default:
// -0.07..-0.3 us a layer) and NRQK (rows a q/k group).
//
// Check: every stage of every layer against a plain reference computed on
// the device from the megakernel's own inputs to that stage (so float-order
// differences do not compound over the layers): max |diff| / max |ref|.

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../common.cuh"

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;

#define NL 28
#define H 1536
#define NH 12
#define NKV 2
#define HD 128
#define FF 8960
#define NQKV (H + 2 * NKV * HD)  // 2048
#define Q4B 144                  // Q4_K super-block bytes
#define Q6B 210                  // Q6_K super-block bytes
#define MAXPOS 2048
#define EPS 1e-6f
#define ROPE_BASE 1000000.0f

#ifndef NCW
#define NCW 15  // consumer warps
#endif
#define NT ((NCW + 1) * 32)
#ifndef NPAGE
#define NPAGE 12
#endif
#define PAGE 16384
#define MAXNB (FF / 256)  // 35 activation blocks at most


// ------------------------------------------------------------ the model

// A matrix of rows x cols in one quant type (0 Q4_K, 1 Q6_K), row-major.
struct Mat {
    const u8* w;
    int rows, cols, type, rb;  // rb: bytes a row
    int nr, rpp;               // run_op's rows a group, rows a page (set by new_mat)
};

struct Layer {
    Mat qkv[2];  // [0]: q and k rows (Q4_K); [1]: v rows (Q4_K or Q6_K)
    Mat o, gate, up, down;
    const float *anorm, *fnorm, *bias;  // bias: NQKV
    __half *kc, *vc;                    // [NKV][MAXPOS][HD]
};

struct Bufs {
    float* x;     // [NL+1][H]: x[l] is layer l's input
    float* qkv;   // [NL][NQKV]
    float* attn;  // [NL][H]
    float* x2;    // [NL][H]: after the attention's residual
    float* act;   // [NL][FF]
    u32* cnt;     // [NL][5]
};

struct Params {
    Layer L[NL];
    Bufs b;
    int pos;
    int mode;  // bit 0: no weight copies; bit 1: no counter waits
    int nl;
    long long* st;  // [G][NL][40] clock64 stamps of thread 0: the stages' ends (0..15), run_op's (16..35)
};

// The step's parameters (too many for a kernel's 4 KB of arguments).
__constant__ Params cP;

// ------------------------------------------------------------ primitives

__device__ __forceinline__ u32 smem_addr(const void* p) { return (u32)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(u64* b, u32 count) {
    asm volatile("mbarrier.init.shared.b64 [%0], %1;" ::"r"(smem_addr(b)), "r"(count));
}
__device__ __forceinline__ void mbar_arrive(u64* b) {
    asm volatile("{ .reg .b64 st; mbarrier.arrive.shared.b64 st, [%0]; }" ::"r"(smem_addr(b)) : "memory");
}
// mbar_wait spins on test_wait (try_wait, -DTRYWAIT, may suspend the thread
// for a time: measured the same). watchdog traps a wait that lasts past ~2 s
// (a schedule bug), so a run fails instead of hanging the device call.
__device__ __forceinline__ void watchdog(long long t0) {
    if (clock64() - t0 > 4000000000ll) asm volatile("trap;");
}
__device__ __forceinline__ u32 mbar_test(u64* b, u32 parity) {
    u32 ok;
    asm volatile(
#ifdef TRYWAIT
        "{ .reg .pred p; mbarrier.try_wait.parity.shared.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
#else
        "{ .reg .pred p; mbarrier.test_wait.parity.shared.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
#endif
        : "=r"(ok)
        : "r"(smem_addr(b)), "r"(parity)
        : "memory");
    return ok;
}
__device__ __forceinline__ void mbar_wait(u64* b, u32 parity) {
    if (mbar_test(b, parity)) return;
    long long t0 = clock64();
    do watchdog(t0);
    while (!mbar_test(b, parity));
}
__device__ __forceinline__ void cp16(void* dst, const void* src, u64 pol) {
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src),
                 "l"(pol)
                 : "memory");
}
__device__ __forceinline__ void cp_arrive(u64* b) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];" ::"r"(smem_addr(b)) : "memory");
}
__device__ __forceinline__ u32 ld_acquire(const u32* p) {
    u32 v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void red_release(u32* p, u32 v) {
    asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
// Named barrier 1: the consumer warps only.
__device__ __forceinline__ void cbar() { asm volatile("bar.sync 1, %0;" ::"n"(NCW * 32) : "memory"); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// ------------------------------------------------------------ Q8_K activation
//
// Shared-memory layout (structure of arrays, so the quants load 16 bytes at
// a time): qs[nb][256] int8, d[nb] float, bs[nb][16] short. A block's 16
// chunks of 16 quants are swizzled (achunk): a Q4_K task (sb, j) reads chunks
// 4j + k (k = 0..3), and without the swizzle the 8 lanes of a quarter-warp
// (two super-blocks x four j) hit two of the eight 16-byte bank groups (a
// 4-way conflict on every activation load); with it, eight. -DNOSWIZZLE
// turns it off.
#ifdef NOSWIZZLE
__device__ __forceinline__ int achunk(int sb, int c) { return c; }
#else
__device__ __forceinline__ int achunk(int sb, int c) { return c ^ (((c >> 3) & 1) << 1) ^ (sb & 1); }
#endif
struct ActQ {
    signed char qs[MAXNB * 256];
    float d[MAXNB];
    short bs[MAXNB * 16];
};

// quant_block quantizes 256 values, 8 a lane (lane l: values 8l..8l+7), as
// ggml's quantize_row_q8_K: the signed value of largest magnitude (the
// first on ties) gives iscale = -127/max, q = nearest(iscale*v) <= 127.
// The maximum magnitude comes from one redux.sync on the floats' bits
// (non-negative floats order as their bits), the first lane holding it by a
// ballot (lane l's values precede lane l+1's), its signed value by a shuffle.
__device__ __forceinline__ void quant_block(const float v[8], ActQ* a, int ib, int lane) {
    float amax = 0.f, mx = 0.f;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        float ax = fabsf(v[k]);
        if (ax > amax) amax = ax, mx = v[k];
    }
    u32 bits = __float_as_uint(amax), top = __reduce_max_sync(0xffffffffu, bits);
    int src = __ffs(__ballot_sync(0xffffffffu, bits == top)) - 1;
    mx = __shfl_sync(0xffffffffu, mx, src);
    amax = __uint_as_float(top);
    int s = 0;
    u32 w0 = 0, w1 = 0;
    if (amax != 0.f) {
        float iscale = -127.f / mx;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            int q = min(127, __float2int_rn(iscale * v[k]));
            s += q;
            u32 b = (u32)(q & 0xff);
            if (k < 4)
                w0 |= b << (8 * k);
            else
                w1 |= b << (8 * (k - 4));
        }
        if (lane == 0) a->d[ib] = 1.f / iscale;
    } else if (lane == 0) {
        a->d[ib] = 0.f;
    }
    *(uint2*)&a->qs[ib * 256 + 16 * achunk(ib, lane >> 1) + 8 * (lane & 1)] = make_uint2(w0, w1);
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    if ((lane & 1) == 0) a->bs[ib * 16 + lane / 2] = (short)s;
}

// make_act builds the Q8_K activation of n floats (n/256 blocks) from src
// (global, written by other blocks: plain loads after the acquire), scaled
// by RMSNorm with weights nw when nw is set. Called by every consumer
// thread; ends with the consumers' barrier.
__device__ void make_act(const float* src, int n, const float* nw, ActQ* a, float* red, int w, int lane) {
    int nb = n / 256;
    if (nw) {  // n == H: warps 0..5 hold a block each
        float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        float ss = 0.f;
        if (w < nb) {
            float4 p = ((const float4*)(src + w * 256 + 8 * lane))[0];
            float4 q = ((const float4*)(src + w * 256 + 8 * lane))[1];
            v[0] = p.x, v[1] = p.y, v[2] = p.z, v[3] = p.w, v[4] = q.x, v[5] = q.y, v[6] = q.z, v[7] = q.w;
#pragma unroll
            for (int k = 0; k < 8; k++) ss += v[k] * v[k];
            ss = warp_sum(ss);
            if (lane == 0) red[w] = ss;
        }
        cbar();
        if (w < nb) {
            float t = 0.f;
            for (int i = 0; i < nb; i++) t += red[i];
            float sc = 1.f / sqrtf(t / n + EPS);
            float4 p = ((const float4*)(nw + w * 256 + 8 * lane))[0];
            float4 q = ((const float4*)(nw + w * 256 + 8 * lane))[1];
            v[0] = v[0] * sc * p.x, v[1] = v[1] * sc * p.y, v[2] = v[2] * sc * p.z, v[3] = v[3] * sc * p.w;
            v[4] = v[4] * sc * q.x, v[5] = v[5] * sc * q.y, v[6] = v[6] * sc * q.z, v[7] = v[7] * sc * q.w;
            quant_block(v, a, w, lane);
        }
    } else {
        // Every load of the warp's blocks first, then their quantizations.
        const int MR = (MAXNB + NCW - 1) / NCW;
        float v[MR][8];
#pragma unroll
        for (int r = 0; r < MR; r++) {
            int ib = w + r * NCW;
            if (ib < nb) {
                float4 p = ((const float4*)(src + ib * 256 + 8 * lane))[0];
                float4 q = ((const float4*)(src + ib * 256 + 8 * lane))[1];
                v[r][0] = p.x, v[r][1] = p.y, v[r][2] = p.z, v[r][3] = p.w;
                v[r][4] = q.x, v[r][5] = q.y, v[r][6] = q.z, v[r][7] = q.w;
            }
        }
#pragma unroll
        for (int r = 0; r < MR; r++)
            if (w + r * NCW < nb) quant_block(v[r], a, w + r * NCW, lane);
    }
    cbar();
}

// ------------------------------------------------------------ row dots

// k4_scales (ggml's get_scale_min_k4 for sub-blocks 2j, 2j+1) and dp4a_us
// (unsigned bytes by signed bytes) are the kernels' own.
#include "../../kernels/kscales.cuh"

// Row dots by one warp, NR rows (rb bytes apart from row) at once sharing
// the activation's loads. Each lane keeps a float sum a row over its tasks
// (no shuffles inside the loop: the float order differs from ggml's, which
// adds a super-block's integer parts first); rsum then adds the lanes.

// rsum: a transposing warp reduction of NR (1, 2 or 4) values a lane; row
// r's total ends in lanes whose bits 4..(5 - log2 NR) spell r (for NR 4:
// lane 0 row 0, 8 row 1, 16 row 2, 24 row 3). Returns lane's row.
template <int NR>
__device__ __forceinline__ int rsum(float v[NR], int lane) {
    int row = 0, off = 16;
#pragma unroll
    for (int n = NR; n > 1; n >>= 1, off >>= 1) {
        bool up = lane & off;
#pragma unroll
        for (int i = 0; i < n / 2; i++) {
            float send = up ? v[i] : v[i + n / 2], keep = up ? v[i + n / 2] : v[i];
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, off);
        }
        if (up) row += n / 2;
    }
    for (; off; off >>= 1) v[0] += __shfl_xor_sync(0xffffffffu, v[0], off);
    return row;
}

// A Q4_K task (super-block sb, lane-quarter j: the 32 bytes of nibbles of
// sub-blocks 2j (low) and 2j+1 (high)): its activation operand and its
// term for one row's super-block at wb.
struct Q4A {
    int lo[8], hi[8], b0, b1;
    float ad;
};
__device__ __forceinline__ void q4k_act(const ActQ* a, int sb, int j, Q4A& o) {
    const int4* ap = (const int4*)(a->qs + sb * 256);
    int4 a0 = ap[achunk(sb, 4 * j)], a1 = ap[achunk(sb, 4 * j + 1)], a2 = ap[achunk(sb, 4 * j + 2)],
         a3 = ap[achunk(sb, 4 * j + 3)];
    o.lo[0] = a0.x, o.lo[1] = a0.y, o.lo[2] = a0.z, o.lo[3] = a0.w;
    o.lo[4] = a1.x, o.lo[5] = a1.y, o.lo[6] = a1.z, o.lo[7] = a1.w;
    o.hi[0] = a2.x, o.hi[1] = a2.y, o.hi[2] = a2.z, o.hi[3] = a2.w;
    o.hi[4] = a3.x, o.hi[5] = a3.y, o.hi[6] = a3.z, o.hi[7] = a3.w;
    const short* bs = a->bs + sb * 16 + 4 * j;
    o.b0 = bs[0] + bs[1], o.b1 = bs[2] + bs[3];
    o.ad = a->d[sb];
}
// q4k_ints: the task's integer parts (isum: scales x dots; summs: mins x
// the activation's sums) and the super-block's d and dmin.
__device__ __forceinline__ void q4k_ints(const u8* wb, int j, const Q4A& a, int& isum, int& summs, float& wd,
                                         float& wdm) {
    uint4 hd = *(const uint4*)wb;
    int4 q0 = *(const int4*)(wb + 16 + 32 * j), q1 = *(const int4*)(wb + 32 + 32 * j);
    int sc[4];
    k4_scales(j, hd.y, hd.z, hd.w, sc);
    int wq[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
    int s0 = 0, s1 = 0;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        s0 = __dp4a(wq[k] & 0x0f0f0f0f, a.lo[k], s0);
        s1 = dp4a_us((u32)wq[k] & 0xf0f0f0f0u, a.hi[k], s1);
    }
    s1 >>= 4;
    isum = sc[0] * s0 + sc[2] * s1;
    summs = a.b0 * sc[1] + a.b1 * sc[3];
    wd = __half2float(__ushort_as_half((unsigned short)(hd.x & 0xffff)));
    wdm = __half2float(__ushort_as_half((unsigned short)(hd.x >> 16)));
}
__device__ __forceinline__ float q4k_term(const u8* wb, int j, const Q4A& a) {
    int isum, summs;
    float wd, wdm;
    q4k_ints(wb, j, a, isum, summs, wd, wdm);
    float d = wd * a.ad, dm = wdm * a.ad;
    return d * (float)isum - dm * (float)summs;
}

// ld8f reads 32 bytes at a 2-byte aligned shared address as 8 words:
// aligned words, funnel-shifted.
__device__ __forceinline__ void ld8f(const u8* p, u32 v[8]) {
    const u32* b = (const u32*)((unsigned long long)p & ~3ull);
    u32 sh = (u32)((unsigned long long)p & 3) * 8, w[9];
#pragma unroll
    for (int k = 0; k < 9; k++) w[k] = b[k];
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = __funnelshift_r(w[k], w[k + 1], sh);
}

// A Q6_K task (super-block sb, lane k: elements 32k..32k+31, i.e. half
// k/4, quarter k%4 of ggml's layout: ql byte 64*half + 32*(k&1) + i, nibble
// (k&3)>>1; qh byte 32*half + i, bits 2*(k&3); scales 8*half + 2*(k&3) and
// the next): its activation operand and its term for one row's super-block
// at wb. The quants enter unsigned (0..63); 32 x the activation's sums come
// off after.
struct Q6A {
    int av[8], m0, m1;
    float ad;
};
__device__ __forceinline__ void q6k_act(const ActQ* a, int sb, int k, Q6A& o) {
    const int4* ap = (const int4*)(a->qs + sb * 256);
    int4 a0 = ap[achunk(sb, 2 * k)], a1 = ap[achunk(sb, 2 * k + 1)];
    o.av[0] = a0.x, o.av[1] = a0.y, o.av[2] = a0.z, o.av[3] = a0.w;
    o.av[4] = a1.x, o.av[5] = a1.y, o.av[6] = a1.z, o.av[7] = a1.w;
    o.m0 = 32 * a->bs[sb * 16 + 2 * k], o.m1 = 32 * a->bs[sb * 16 + 2 * k + 1];
    o.ad = a->d[sb];
}
// q6k_ints: the task's integer part (scales x signed dots) and the
// super-block's d.
__device__ __forceinline__ void q6k_ints(const u8* wb, int k, const Q6A& a, int& isum, float& wd) {
    int hf = k >> 2, qr = k & 3;
    u32 l[8], h[8];
    ld8f(wb + 64 * hf + 32 * (qr & 1), l);
    ld8f(wb + 128 + 32 * hf, h);
    int s0 = 0, s1 = 0;
#pragma unroll
    for (int m = 0; m < 8; m++) {
        u32 lo = (qr >> 1) ? (l[m] >> 4) & 0x0f0f0f0fu : l[m] & 0x0f0f0f0fu;
        u32 hb = ((h[m] >> (2 * qr)) & 0x03030303u) << 4;
        if (m < 4)
            s0 = dp4a_us(lo | hb, a.av[m], s0);
        else
            s1 = dp4a_us(lo | hb, a.av[m], s1);
    }
    s0 -= a.m0, s1 -= a.m1;
    u32 sc2 = *(const unsigned short*)(wb + 192 + 8 * hf + 2 * qr);
    isum = (int)(signed char)(sc2 & 0xff) * s0 + (int)(signed char)(sc2 >> 8) * s1;
    wd = __half2float(*(const __half*)(wb + 208));
}
__device__ __forceinline__ float q6k_term(const u8* wb, int k, const Q6A& a) {
    int isum;
    float wd;
    q6k_ints(wb, k, a, isum, wd);
    return wd * a.ad * (float)isum;
}

// The two weight types as dot_k sees them: LANES lanes a super-block, BYTES
// a super-block, the activation operand and the term of a task.
// exact (EXACT=1 only): the super-block's term as apr's products make it
// (matvec.cuh: TQ45K::wdot + kaffine, TQ6K::wdot), in every lane of the
// block's LANES lanes: the lanes' integer parts added first, then the
// float ops in order, rounded one by one (no fused multiply-add). Every
// lane calls it; valid false gives zero integers.
struct TQ4 {
    static const int LANES = 4, BYTES = Q4B;
    typedef Q4A A;
    static __device__ __forceinline__ void act(const ActQ* a, int sb, int j, A& o) { q4k_act(a, sb, j, o); }
    static __device__ __forceinline__ float term(const u8* wb, int j, const A& a) { return q4k_term(wb, j, a); }
    static __device__ __forceinline__ float exact(const u8* wb, int j, const A& a, bool valid) {
        // Branch-free: an invalid lane (wb and a from a clamped super-block)
        // computes and then contributes zero integers.
        int isum, summs;
        float wd, wdm;
        q4k_ints(wb, j, a, isum, summs, wd, wdm);
        if (!valid) isum = 0, summs = 0;
        isum += __shfl_xor_sync(0xffffffffu, isum, 1);
        isum += __shfl_xor_sync(0xffffffffu, isum, 2);
        summs += __shfl_xor_sync(0xffffffffu, summs, 1);
        summs += __shfl_xor_sync(0xffffffffu, summs, 2);
        float d = __fmul_rn(wd, a.ad), dm = __fmul_rn(wdm, a.ad);
        return __fsub_rn(__fmul_rn(d, (float)isum), __fmul_rn(dm, (float)summs));
    }
};
struct TQ6 {
    static const int LANES = 8, BYTES = Q6B;
    typedef Q6A A;
    static __device__ __forceinline__ void act(const ActQ* a, int sb, int k, A& o) { q6k_act(a, sb, k, o); }
    static __device__ __forceinline__ float term(const u8* wb, int k, const A& a) { return q6k_term(wb, k, a); }
    static __device__ __forceinline__ float exact(const u8* wb, int k, const A& a, bool valid) {
        int isum;  // branch-free, as TQ4::exact
        float wd;
        q6k_ints(wb, k, a, isum, wd);
        if (!valid) isum = 0;
        isum += __shfl_xor_sync(0xffffffffu, isum, 1);
        isum += __shfl_xor_sync(0xffffffffu, isum, 2);
        isum += __shfl_xor_sync(0xffffffffu, isum, 4);
        return __fmul_rn(__fmul_rn(wd, a.ad), (float)isum);
    }
};

// EXACT=1: the products' sums as apr's (bit-identical to the CPU's portable
// kernels): each super-block's term made by its lanes (T::exact), the
// row's terms added in block order from 0 (sum_terms), every lane holding
// every row's sum (the terms reach it by broadcast shuffles). Not measured
// yet (NOTES.md, thirty-second session: the first thing to measure).
#ifndef EXACT
#define EXACT 0
#endif
template <class T, int NR>
__device__ __forceinline__ void dot_k_exact(const u8* row, int rb, int sb0, int sb1, const ActQ* a, int lane,
                                            float acc[NR]) {
    int part = lane & (T::LANES - 1);
    for (int tb = T::LANES * sb0; tb < T::LANES * sb1; tb += 32) {  // warp-uniform
        int t = tb + lane;
        bool valid = t < T::LANES * sb1;
        int sb = valid ? t / T::LANES : sb1 - 1;  // invalid lanes read the last super-block
        typename T::A av;
        T::act(a, sb, part, av);
#pragma unroll
        for (int r = 0; r < NR; r++) {
            float term = T::exact(row + r * rb + sb * T::BYTES, part, av, valid);
#pragma unroll
            for (int q = 0; q < 32 / T::LANES; q++) {
                float tq = __shfl_sync(0xffffffffu, term, q * T::LANES);
                if (tb / T::LANES + q < sb1) acc[r] = __fadd_rn(acc[r], tq);
            }
        }
    }
}

// dot_k: NR rows over super-blocks [sb0, sb1), task t = (super-block
// t/LANES, lane part t%LANES), the rows sharing each task's activation.
template <class T, int NR>
__device__ __forceinline__ void dot_k(const u8* row, int rb, int sb0, int sb1, const ActQ* a, int lane,
                                      float acc[NR]) {
    int part = lane & (T::LANES - 1);
    for (int t = T::LANES * sb0 + lane; t < T::LANES * sb1; t += 32) {
        int sb = t / T::LANES;
        typename T::A av;
        T::act(a, sb, part, av);
#pragma unroll
        for (int r = 0; r < NR; r++) acc[r] += T::term(row + r * rb + sb * T::BYTES, part, av);
    }
}

// dot_rows: NR rows' sums over super-blocks [sb0, sb1); returns the row
// (0..NR-1) whose total this lane holds in *v (rsum's lanes).
#ifdef DOTNOINLINE
#define DOTINL __noinline__
#else
#define DOTINL __forceinline__
#endif
template <int NR>
__device__ DOTINL int dot_rows(const Mat& m, const u8* row, const ActQ* a, int lane, float* v, int sb0,
                                        int sb1) {
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) acc[r] = 0.f;
    if (EXACT) {
        if (m.type == 0)
            dot_k_exact<TQ4, NR>(row, m.rb, sb0, sb1, a, lane, acc);
        else
            dot_k_exact<TQ6, NR>(row, m.rb, sb0, sb1, a, lane, acc);
        // Every lane holds every row's sum: hand lane the row rsum would.
        int r = NR == 4 ? (lane >> 3) : (NR == 2 ? (lane >> 4) : 0);
        float o = acc[0];
#pragma unroll
        for (int i = 1; i < NR; i++)
            if (r == i) o = acc[i];
        *v = o;
        return r;
    }
    if (m.type == 0)
        dot_k<TQ4, NR>(row, m.rb, sb0, sb1, a, lane, acc);
    else
        dot_k<TQ6, NR>(row, m.rb, sb0, sb1, a, lane, acc);
    int r = rsum<NR>(acc, lane);
    *v = acc[0];
    return r;
}

// ------------------------------------------------------------ tensor-core row dots (MMA=1)
//
// MMA=1: the Q4_K pages of 1536 columns (q/k, o, gate+up: 16 rows a page)
// by integer tensor-core products, mma.sync m16n8k32 (u8 weights, s8
// activation), one 16-row page = one tile. Thread (g = lane/4, t = lane%4)
// holds A's bytes 8t..8t+7 of each 32-byte chunk of rows g and g+8 (the k
// order within an mma is free as long as B's matches). The 8 columns of B
// are the 8 sub-blocks of the super-block: column j holds sub-block j's
// activation only in the mma of its chunk (j/2), zeros in the others, so
// C[row][j] ends as sub-block j's integer dot, and thread t holds
// sub-blocks 2t and 2t+1 of rows g and g+8: exactly the sub-blocks whose
// scales k4_scales(t) gives it. Two mmas a chunk: the raw bytes (lo + 16 hi)
// against column 2j+1's activation, and the low nibbles against column 2j's
// and minus column 2j+1's, leaving 16 x the high nibbles' dot in column
// 2j+1: one mask a word instead of two. The integer parts are then summed
// over the 4 threads of a row and the super-block's float term made as
// apr's products make it (TQ4::exact), so the row sums (mma_row: terms
// added in block order from 0) are exact. A page's 6 super-blocks are
// MKP (or MKPS for ops of one page) groups, a warp a group; the terms meet
// in shared memory (s->sc: 96 floats a page, at most 9 pages an op, the
// q/k/v stage's second op at 1024) and the op's final pass adds them.
// Needs pages of at most 16 rows (new_mat checks).
#ifndef MMA
#define MMA 0
#endif
#ifndef MKP
#define MKP 3
#endif
#ifndef MKPS
#define MKPS 6
#endif
#ifndef MMACH
#define MMACH 1
#endif
__device__ __forceinline__ void mma_us(int c[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
// mma_q4k: the float terms of the 16 rows of tile (rb bytes apart) over
// super-blocks [sb0, sb1) into terms[i * 6 + sb] for rows i < pn.
__device__ __forceinline__ void mma_q4k(const u8* tile, int rb, int sb0, int sb1, const ActQ* a, int lane, int pn,
                                        float* terms) {
    const u32 M = 0x0f0f0f0fu;
    int g = lane >> 2, t = lane & 3, cg = g >> 1;
    bool odd = g & 1;
    for (int sb = sb0; sb < sb1; sb++) {
        const u8* w0 = tile + g * rb + sb * Q4B;
        const u8* w1 = w0 + 8 * rb;
        uint2 av = *(const uint2*)(a->qs + sb * 256 + 16 * achunk(sb, 2 * g + (t >> 1)) + 8 * (t & 1));
        u32 nx = __vneg4(av.x), ny = __vneg4(av.y);
        int acc[4] = {0, 0, 0, 0};
#if MMACH > 1
        int acc2[4] = {0, 0, 0, 0};  // the low nibbles' chain (MMACH=2: two independent mma chains)
#else
        int* acc2 = acc;
#endif
#pragma unroll
        for (int c = 0; c < 4; c++) {
            uint2 x0 = *(const uint2*)(w0 + 16 + 32 * c + 8 * t), x1 = *(const uint2*)(w1 + 16 + 32 * c + 8 * t);
            bool mine = c == cg;
            u32 b1x = mine && odd ? av.x : 0u, b1y = mine && odd ? av.y : 0u;
            u32 b2x = mine ? (odd ? nx : av.x) : 0u, b2y = mine ? (odd ? ny : av.y) : 0u;
            mma_us(acc, x0.x, x1.x, x0.y, x1.y, b1x, b1y);
            mma_us(acc2, x0.x & M, x1.x & M, x0.y & M, x1.y & M, b2x, b2y);
        }
#if MMACH > 1
#pragma unroll
        for (int i = 0; i < 4; i++) acc[i] += acc2[i];
#endif
        uint4 h0 = *(const uint4*)w0, h1 = *(const uint4*)w1;
        int s0[4], s1[4];
        k4_scales(t, h0.y, h0.z, h0.w, s0);
        k4_scales(t, h1.y, h1.z, h1.w, s1);
        const short* bs = a->bs + sb * 16 + 4 * t;
        int bb0 = bs[0] + bs[1], bb1 = bs[2] + bs[3];
        int i0 = s0[0] * acc[0] + s0[2] * (acc[1] >> 4), m0 = bb0 * s0[1] + bb1 * s0[3];
        int i1 = s1[0] * acc[2] + s1[2] * (acc[3] >> 4), m1 = bb0 * s1[1] + bb1 * s1[3];
#pragma unroll
        for (int o = 1; o < 4; o <<= 1) {
            i0 += __shfl_xor_sync(0xffffffffu, i0, o);
            m0 += __shfl_xor_sync(0xffffffffu, m0, o);
            i1 += __shfl_xor_sync(0xffffffffu, i1, o);
            m1 += __shfl_xor_sync(0xffffffffu, m1, o);
        }
        // Thread t 0 makes row g's term, t 1 row g+8's.
        u32 hx = t == 0 ? h0.x : h1.x;
        int is = t == 0 ? i0 : i1, ms = t == 0 ? m0 : m1, row = g + 8 * t;
        float ad = a->d[sb];
        float wd = __half2float(__ushort_as_half((unsigned short)(hx & 0xffff)));
        float wdm = __half2float(__ushort_as_half((unsigned short)(hx >> 16)));
        float d = __fmul_rn(wd, ad), dm = __fmul_rn(wdm, ad);
        float term = __fsub_rn(__fmul_rn(d, (float)is), __fmul_rn(dm, (float)ms));
        if (t < 2 && row < pn) terms[row * 6 + sb] = term;
    }
}

// ------------------------------------------------------------ the schedule

// A block's share of a matrix of n rows: [r0, r1).
__device__ __forceinline__ void share(int n, int b, int g, int& r0, int& r1) {
    r0 = n * b / g;  // n * g < 2^31 for these shapes
    r1 = n * (b + 1) / g;
}

// The ops of a layer in the order the block streams them: q/k rows, v
// rows, o, gate, up, down. The q/k/v share of a block is over NQKV rows;
// its part in [0, H+NKV*HD) is op 0, the rest op 1.
struct Op {
    Mat m;
    int r0, r1;     // rows of m
    const u8* up;  // GU: the up matrix, whose rows r0..r1 interleave with m's (gate) in the pages
};

// GU (default; GU=0 off): gate and up as one op: each page holds GUR gate
// rows and the same GUR up rows (Q4_K rows, 16-byte multiples), so the op's
// 34 groups spread over the warps as one list (at most 3 rounds a warp
// against 2 + 2 as two ops: 28.41 -> 27.28 us a layer); silu(gate)*up is
// taken after the op.
#ifndef GU
#define GU 1
#endif
#define GUR 8

// NRQK: rows a group for the q/k rows (0: NRSMALL); QKB: blocks the q/k
// rows go to (0: the q/k/v rows shared as one range).
#ifndef NRQK
#define NRQK 0
#endif
// QKB=112 (default; used when the grid has more blocks): 16 q/k rows a
// block, the v rows on the last 20; -0.07..-0.23 us a layer at positions
// 0..127 (H100, two calls).
#ifndef QKB
#define QKB 112
#endif
__device__ __forceinline__ Op layer_op(const Layer& L, int op, int b, int g) {
    Op o;
    o.up = nullptr;
    int r0, r1;
    switch (op) {
        case 0:
        case 1: {
#ifndef VSPREAD
            // Shares of the q/k/v rows as one range: the v rows (Q6_K in the
            // real mix) fall to the last ~16 blocks, which end ~2 us late.
            // -DVSPREAD (every block a share of both) evens that out but costs
            // every block a second page and a Q6_K group: 2 us more, measured.
            int kv = H + NKV * HD;  // first v row
            if (QKB && QKB < g) {  // QKB blocks share the q/k rows, the rest the v rows
                if (b < QKB) {
                    share(kv, b, QKB, r0, r1);
                } else {
                    share(NKV * HD, b - QKB, g - QKB, r0, r1);
                    r0 += kv, r1 += kv;
                }
            } else {
                share(NQKV, b, g, r0, r1);
            }
            if (op == 0) {
                o.m = L.qkv[0];
                o.r0 = min(r0, kv), o.r1 = min(r1, kv);
            } else {
                o.m = L.qkv[1];
                o.r0 = max(r0, kv) - kv, o.r1 = max(r1, kv) - kv;
            }
#else
            // Every block takes its share of the q/k rows and of the v rows.
            o.m = L.qkv[op];
            share(o.m.rows, b, g, o.r0, o.r1);
#endif
            return o;
        }
        case 2: o.m = L.o; share(H, b, g, o.r0, o.r1); return o;
        case 3: o.m = L.gate; share(FF, b, g, o.r0, o.r1); o.up = GU ? L.up.w : nullptr; return o;
        case 4: o.m = L.up; share(FF, b, g, o.r0, o.r1); if (GU) o.r1 = o.r0; return o;
        default: o.m = L.down; share(H, b, g, o.r0, o.r1); return o;
    }
}
#define NOPS 6

// Rows a page holds (Mat.rpp: a multiple of run_op's group of rows, Mat.nr),
// and where a page's rows start: rows of types whose row bytes are not a
// multiple of 16 (Q6_K) are copied from the 16-byte boundary at or before
// their first byte, pre bytes ahead of it.
#ifndef NRDOWN
#define NRDOWN 1
#endif
#ifndef NRSMALL
#define NRSMALL 4
#endif
// KSPLIT: warps a row of more than 2048 columns is split over (its parts'
// sums meet in shared memory; the last part stores the row).
#ifndef KSPLIT
#define KSPLIT 1
#endif
// TASKS=1: run_tasks instead of run_op (pages of whole rows, no groups).
#ifndef TASKS
#define TASKS 0
#endif
// NRV: rows a group for the Q6_K rows of <= 2048 columns (the v rows of the
// real mix), whose blocks end the q/k/v stage last: 2 (8 groups on 8 warps
// instead of 4 on 4) cut those blocks' q/k/v 2.65 -> 2.27 us and the layer
// 27.56 -> 26.93 us (H100, same lease; 1: 26.97).
#ifndef NRV
#define NRV 2
#endif
static int group_rows(int cols, int type) { return TASKS ? 1 : cols <= 2048 ? (type == 1 ? NRV : NRSMALL) : NRDOWN; }
static int page_rows(int rb, int cols, int type) {
    int n = (rb % 16 ? PAGE - 16 : PAGE) / rb, g = group_rows(cols, type);
    return n >= g ? n / g * g : n;
}
struct Span {
    const u8* src;   // 16-byte aligned
    int pre, bytes;  // bytes: a multiple of 16
};
__device__ __forceinline__ Span page_span(const Op& o, int p0, int n) {
    const u8* a = o.m.w + (size_t)(o.r0 + p0) * o.m.rb;
    Span sp;
    sp.pre = (int)((unsigned long long)a & 15);
    sp.src = a - sp.pre;
    sp.bytes = (sp.pre + n * o.m.rb + 15) & ~15;
    return sp;
}

// ------------------------------------------------------------ the kernel

struct Smem {
    u8 pages[NPAGE][PAGE];
    ActQ a;
    float g[80];          // the block's gate rows (FF/132 <= 68)
    float sc[MAXPOS] __attribute__((aligned(16)));  // attention scores (LATT: the output, read as float4)
    float part[NCW][HD];  // attention P.V partials
    float q[HD], k[HD], v[HD];
    float red[32];
    float acc[160];  // run_tasks' row sums (q/k 0.., v 32..; o, down 0..; gate 0.., up 80..)
    float kacc[16];  // KSPLIT's sums of the down rows
    int kcnt[16];
    int pcnt[NPAGE];
    u64 full[NPAGE], empty[NPAGE];
};

// Consumer-side page walker: the same sequence the producer issues.
// A page is free when the warps with rows in it (involved) have left it:
// they count in pcnt, and the last one arrives on the page's empty barrier
// (count 1); warps without rows in a page skip it.
struct Walk {
    u32 k;  // pages passed so far
    __device__ __forceinline__ u8* enter(Smem* s) {
        int slot = k % NPAGE;
        mbar_wait(&s->full[slot], (k / NPAGE) & 1);
        return s->pages[slot];
    }
    __device__ __forceinline__ void leave(Smem* s, int lane, int involved) {
        __syncwarp();
        if (lane == 0) {
            int slot = k % NPAGE;
            if (atomicAdd(&s->pcnt[slot], 1) == involved - 1) {
                s->pcnt[slot] = 0;
                mbar_arrive(&s->empty[slot]);
            }
        }
        k++;
    }
    __device__ __forceinline__ void skip() { k++; }
};

__device__ __forceinline__ void wait_count(const u32* c, u32 target, int mode) {
    long long t0 = clock64();
    if (!(mode & 2))
        while (ld_acquire(c) < target) watchdog(t0);
}

// Where run_op puts row i's result v (i from the op's first row).
struct Out {
    int kind;        // 0: y[i] = add[i] + v; 1: the gate, s->g[i] = v; 2: y[i] = silu(s->g[i]) * v;
                     // 3 (GU): gate row i to s->acc[i], up row i to s->acc[80 + i]
    float* y;        // from the op's first row
    const float* add;
    long long* st;  // warp 0's first group's stamps (4: entry, page entered, dot done, stored), or null
    long long* st2;  // the dot of warp 0's first group past the first page (2 stamps), or null
};

// run_op: the block's rows of op o, page by page, in groups of NR
// consecutive rows of a page (group_rows: 4 for rows of <= 2048 columns,
// else 2; the rows of a group share the activation's loads; a group may run
// past the op's last row, whose results are dropped); groups are numbered
// through the op and warp w takes those whose number % NCW == w.
__device__ __forceinline__ void run_op(Smem* s, Walk& wk, const Op& o, Out d, int w, int lane) {
    int n = o.r1 - o.r0;
    if (n <= 0) return;
    int rpp = o.up ? GUR : o.m.rpp, gg = 0, NR = o.m.nr, ks = o.m.cols > 2048 ? KSPLIT : 1, nsb = o.m.cols / 256;
    bool tl = d.st && threadIdx.x == 0;
    if (tl) d.st[0] = clock64();
    for (int p0 = 0; p0 < n; p0 += rpp) {
        int an = min(rpp, n - p0), pn = o.up ? 2 * an : an, ng = (pn + NR - 1) / NR * ks;
        int first = (w - gg % NCW + NCW) % NCW;
        if (first >= ng) {
            gg += ng;
            wk.skip();
            continue;
        }
        u8* pg = wk.enter(s) + page_span(o, p0, an).pre;
        if (tl && p0 == 0) d.st[1] = clock64();
        for (int gi = first; gi < ng; gi += NCW) {
            int i = NR * (gi / ks), part = gi % ks;  // i: in the page
            int sb0 = nsb * part / ks, sb1 = nsb * (part + 1) / ks;
            // The lane's row after rsum (the lanes that own a row: (lane & (32/NR - 1)) == 0),
            // and its add operand, loaded before the dot.
            int lr = NR == 4 ? (lane >> 3) : (NR == 2 ? (lane >> 4) : 0);
            bool mine = (lane & (32 / NR - 1)) == 0 && i + lr < pn;
            float av = 0.f;
            if (mine && d.kind == 0 && ks == 1) av = d.add[p0 + i + lr];
            float v;
            const u8* rw = pg + (size_t)i * o.m.rb;
            bool tl2 = tl && p0 > 0 && d.st2;
            if (tl2) d.st2[0] = clock64();
            int r;
            if (NRSMALL == 4 && NR == 4)
                r = dot_rows<4>(o.m, rw, &s->a, lane, &v, sb0, sb1);
            else if ((NRSMALL == 2 || NRDOWN == 2 || NRV == 2 || NRQK == 2) && NR == 2)
                r = dot_rows<2>(o.m, rw, &s->a, lane, &v, sb0, sb1);
            else
                r = dot_rows<1>(o.m, rw, &s->a, lane, &v, sb0, sb1);
            if (tl && p0 == 0 && gi == 0) d.st[2] = clock64();
            if (tl2) d.st2[1] = clock64(), d.st2 = nullptr;
            if (mine && ks > 1) {
                int ri = p0 + i + r;
                atomicAdd(&s->kacc[ri], v);
                __threadfence_block();
                if (atomicAdd(&s->kcnt[ri], 1) == ks - 1) {
                    __threadfence_block();
                    d.y[ri] = d.add[ri] + atomicAdd(&s->kacc[ri], 0.f);
                }
            } else if (mine && d.kind == 3) {  // GU: gate rows, then up rows
                int pi = i + r;
                s->acc[pi < an ? p0 + pi : 80 + p0 + pi - an] = v;
            } else if (mine) {
                int ri = p0 + i + r;
                if (d.kind == 0) {
                    d.y[ri] = av + v;
                } else if (d.kind == 1) {
                    s->g[ri] = v;
                } else {
                    float gv = s->g[ri];
                    d.y[ri] = gv / (1.f + __expf(-gv)) * v;
                }
            }
            if (tl && p0 == 0 && gi == 0) {
                __threadfence_block();
                d.st[3] = clock64();
            }
        }
        gg += ng;
        wk.leave(s, lane, min(ng, NCW));
    }
}

// mma_ok: the ops run_op_mma takes (Q4_K rows of 1536 columns, 16 a page).
// MMAQK=0 leaves the q/k rows to run_op (MMA for o and gate+up only).
#ifndef MMAQK
#define MMAQK 1
#endif
__device__ __forceinline__ bool mma_ok(const Op& o) { return MMA && o.m.type == 0 && o.m.cols == 1536 && (MMAQK || o.m.rows != H + NKV * HD); }

// run_op_mma: op o's pages by mma_q4k, the terms of page p at terms + 96p;
// groups are numbered through the op as run_op's.
__device__ __forceinline__ void run_op_mma(Smem* s, Walk& wk, const Op& o, float* terms, int w, int lane,
                                           long long* st) {
    int n = o.r1 - o.r0;
    if (n <= 0) return;
    int rpp = o.up ? GUR : o.m.rpp, gg = 0, ng = n > rpp ? MKP : MKPS;
    bool tl = st && threadIdx.x == 0;
    if (tl) st[0] = clock64();
    for (int p0 = 0, p = 0; p0 < n; p0 += rpp, p++) {
        int an = min(rpp, n - p0), pn = o.up ? 2 * an : an;
        int first = (w - gg % NCW + NCW) % NCW;
        if (first >= ng) {
            gg += ng;
            wk.skip();
            continue;
        }
        u8* pg = wk.enter(s);
        if (tl && p0 == 0) st[1] = clock64();
        for (int gi = first; gi < ng; gi += NCW) {
            // Constant divisors: a division by the runtime ng cost ~50 instructions a group.
            int sb0 = ng == MKP ? 6 * gi / MKP : 6 * gi / MKPS, sb1 = ng == MKP ? 6 * (gi + 1) / MKP : 6 * (gi + 1) / MKPS;
            mma_q4k(pg, o.m.rb, sb0, sb1, &s->a, lane, pn, terms + 96 * p);
            if (tl && p0 == 0 && gi == 0) st[2] = st[3] = clock64();
        }
        gg += ng;
        wk.leave(s, lane, min(ng, NCW));
    }
}

// mma_row: row i of op o's sum (i from the op's first row; up: the up row
// of a gate+up op), its terms added in block order from 0.
__device__ __forceinline__ float mma_row(const Op& o, const float* terms, int i, bool up) {
    int rpp = o.up ? GUR : o.m.rpp, p = i / rpp, p0 = p * rpp, an = min(rpp, o.r1 - o.r0 - p0);
    const float* tr = terms + 96 * p + 6 * (i - p0 + (up ? an : 0));
    float v = 0.f;
#pragma unroll
    for (int k = 0; k < 6; k++) v = __fadd_rn(v, tr[k]);
    return v;
}

// rope_angle: thread t < HD/2's RoPE cosine and sine at pos (computed
// before the attention's wait).
__device__ __forceinline__ void rope_angle(int pos, int t, float& cs, float& sn) {
    cs = 1.f, sn = 0.f;
    if (t < HD / 2) {
        float inv = powf(ROPE_BASE, -2.f * t / HD);
        sincosf(pos * inv, &sn, &cs);
    }
}

// run_tasks: the block's rows of op o, page by page; a page's tasks (row,
// super-block, lane part: rows x 4 x super-blocks for Q4_K, x 8 for Q6_K)
// go to the consumer threads in order, thread c taking tasks c, c + 32 NCW,
// ..., so each page is one round over every warp (warps past its tasks skip
// it). A warp adds its lanes' terms per row with a segmented shuffle
// reduction (a row's tasks are consecutive lanes) and the first lane of
// each row's run adds the sum into acc[row] (shared memory, zeroed before;
// the order of these float adds varies).
__device__ __forceinline__ void run_tasks(Smem* s, Walk& wk, const Op& o, float* acc, int w, int lane) {
    int n = o.r1 - o.r0;
    if (n <= 0) return;
    const int NC = NCW * 32;
    int q6 = o.m.type, tpr = (q6 ? 8 : 4) * (o.m.cols / 256), rpp = o.m.rpp;
    for (int p0 = 0; p0 < n; p0 += rpp) {
        int pn = min(rpp, n - p0), T = pn * tpr, involved = min(NCW, (T + 31) / 32);
        if (w >= involved) {
            wk.skip();
            continue;
        }
        const u8* pg = wk.enter(s) + page_span(o, p0, pn).pre;
        for (int tb = 32 * w; tb < T; tb += NC) {
            int t = tb + lane, row = t / tpr, sub = t - row * tpr;
            float v = 0.f;
            if (t < T) {
                const u8* rw = pg + (size_t)row * o.m.rb;
                if (q6)
                    dot_k<TQ6, 1>(rw, 0, sub >> 3, (sub >> 3) + 1, &s->a, sub & 7, &v);
                else
                    dot_k<TQ4, 1>(rw, 0, sub >> 2, (sub >> 2) + 1, &s->a, sub & 3, &v);
            }
#pragma unroll
            for (int off = 1; off < 32; off <<= 1) {
                float u = __shfl_down_sync(0xffffffffu, v, off);
                if (lane + off < 32 && sub + off < tpr) v += u;
            }
            if (t < T && (lane == 0 || sub == 0)) atomicAdd(&acc[p0 + row], v);
        }
        wk.leave(s, lane, involved);
    }
}

__device__ void attention(Smem* s, const Params& P, int l, int h, int w, int lane, float cs, float sn) {
    const Layer& L = P.L[l];
    int pos = P.pos, kvh = h / (NH / NKV), t = threadIdx.x;
    const float* qkv = P.b.qkv + (size_t)l * NQKV;
    // RoPE (NeoX halves) of q and the new k; the new k and v rounded to f16
    // as the cache holds them.
    if (t < HD / 2) {
        float q0 = qkv[h * HD + t], q1 = qkv[h * HD + t + HD / 2];
        s->q[t] = q0 * cs - q1 * sn, s->q[t + HD / 2] = q1 * cs + q0 * sn;
        float k0 = qkv[H + kvh * HD + t], k1 = qkv[H + kvh * HD + t + HD / 2];
        s->k[t] = __half2float(__float2half(k0 * cs - k1 * sn));
        s->k[t + HD / 2] = __half2float(__float2half(k1 * cs + k0 * sn));
    } else if (t < HD / 2 + HD) {
        int d = t - HD / 2;
        s->v[d] = __half2float(__float2half(qkv[H + NKV * HD + kvh * HD + d]));
    }
    cbar();
    __half* kc = L.kc + (size_t)kvh * MAXPOS * HD;
    __half* vc = L.vc + (size_t)kvh * MAXPOS * HD;
    if (h % (NH / NKV) == 0 && t < HD) {
        kc[(size_t)pos * HD + t] = __float2half(s->k[t]);
        vc[(size_t)pos * HD + t] = __float2half(s->v[t]);
    }
    float scale = rsqrtf((float)HD);
    // Scores: a thread a key (its row's 16 loads in flight together).
    for (int j = t; j <= pos; j += NCW * 32) {
        float dd = 0.f;
        if (j < pos) {
            const uint4* kr = (const uint4*)(kc + (size_t)j * HD);
#pragma unroll
            for (int h2 = 0; h2 < 2; h2++) {
                uint4 r[8];
#pragma unroll
                for (int c = 0; c < 8; c++) r[c] = kr[8 * h2 + c];
#pragma unroll
                for (int c = 0; c < 8; c++) {
                    const __half2* hp = (const __half2*)&r[c];
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float2 f = __half22float2(hp[e]);
                        int d = 64 * h2 + 8 * c + 2 * e;
                        dd += s->q[d] * f.x + s->q[d + 1] * f.y;
                    }
                }
            }
        } else {
            for (int d = 0; d < HD; d++) dd += s->q[d] * s->k[d];
        }
        s->sc[j] = dd * scale;
    }
    cbar();
    float m = -INFINITY;
    for (int j = t; j <= pos; j += NCW * 32) m = fmaxf(m, s->sc[j]);
    m = warp_max(m);
    if (lane == 0) s->red[w] = m;
    cbar();
    m = s->red[0];
    for (int i = 1; i < NCW; i++) m = fmaxf(m, s->red[i]);
    cbar();
    float sum = 0.f;
    for (int j = t; j <= pos; j += NCW * 32) {
        float e = __expf(s->sc[j] - m);
        s->sc[j] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    if (lane == 0) s->red[w] = sum;
    cbar();
    sum = 0.f;
    for (int i = 0; i < NCW; i++) sum += s->red[i];
    // P.V: warp w takes keys w, w+NCW, ..., a lane 4 dims. (Measured slower,
    // 3.8 us against 2.9 at position 64: threads of 2 dims and a key group
    // each, all loads in flight.)
    float acc[4] = {0, 0, 0, 0};
#pragma unroll 4
    for (int j = w; j <= pos; j += NCW) {
        float p = s->sc[j], vv[4];
        if (j < pos) {
            uint2 r = *(const uint2*)(vc + (size_t)j * HD + 4 * lane);
            float2 a = __half22float2(*(__half2*)&r.x), b = __half22float2(*(__half2*)&r.y);
            vv[0] = a.x, vv[1] = a.y, vv[2] = b.x, vv[3] = b.y;
        } else {
#pragma unroll
            for (int d = 0; d < 4; d++) vv[d] = s->v[4 * lane + d];
        }
#pragma unroll
        for (int d = 0; d < 4; d++) acc[d] += p * vv[d];
    }
#pragma unroll
    for (int d = 0; d < 4; d++) s->part[w][4 * lane + d] = acc[d];
    cbar();
    if (t < HD) {
        float o = 0.f;
        for (int i = 0; i < NCW; i++) o += s->part[i][t];
        P.b.attn[(size_t)l * H + h * HD + t] = o / sum;
    }
}

// LATT > 0: at positions up to LATT every block computes all 12 heads'
// attention itself (attention_local), right after the q/k/v stage, into its
// own shared memory: no attention hop, no 12-block bottleneck, at the price
// of every block reading the layer's whole cache (2 KV heads x pos rows) from
// L2. Past LATT the 12-block attention as before. 12 x (pos+1) scores must
// fit s->sc: LATT <= 169. Measured slower (NOTES.md, thirty-third session):
// 4.3-4.5 us at position 0 and 11.8-15.8 at 64 against 1.4-1.7 and 2.7 for
// the 12 blocks (+0.9 us of hop), ~0.15-0.2 us more a position. Not L2
// contention (experiments/bcast: 132 blocks reading the same 35 KB take
// 0.47 us, less than distinct copies): its chains of dependent L2 loads
// (a round ~0.3-0.5 us) are the likelier cost.
#ifndef LATT
#define LATT 0
#endif
// attention_local: the attention of every head for this block, its output
// (H floats) left in s->sc; block 0 also writes it to P.b.attn (the check)
// and the new cache rows. Scratch: the activation's quants (free between
// the q/k/v products and stage C's activation): q roped [0, H), the new k
// (f16-rounded) [H, H+256), the new v [H+256, H+512), cos/sin [2048, 2176).
// A real call by default (inlined, the kernel spilled 632 B; -DATTLINLINE
// inlines it), so it takes plain pointers: a reference into __constant__
// memory has no generic address.
#ifdef ATTLINLINE
#define ATTLINL __forceinline__
#else
#define ATTLINL __noinline__
#endif
__device__ ATTLINL void attention_local(Smem* s, const float* qkv, __half* kc, __half* vc, float* attn, int pos,
                                             int w, int lane, float cs, float sn) {
    const int NC = NCW * 32, G6 = NH / NKV;
    int np = pos + 1, t = threadIdx.x;
    float* qa = (float*)s->a.qs;
    if (t < HD / 2) qa[2048 + t] = cs, qa[2048 + HD / 2 + t] = sn;
    cbar();
    // RoPE of the 12 query heads and the 2 new keys (heads 12, 13 of qkv).
    for (int i = t; i < (NH + NKV) * HD / 2; i += NC) {
        int hh = i / (HD / 2), d = i % (HD / 2);
        float c = qa[2048 + d], sg = qa[2048 + HD / 2 + d];
        float x0 = qkv[hh * HD + d], x1 = qkv[hh * HD + d + HD / 2];
        float r0 = x0 * c - x1 * sg, r1 = x1 * c + x0 * sg;
        if (hh >= NH) r0 = __half2float(__float2half(r0)), r1 = __half2float(__float2half(r1));
        qa[hh * HD + d] = r0, qa[hh * HD + d + HD / 2] = r1;
    }
    for (int i = t; i < NKV * HD; i += NC) qa[H + NKV * HD + i] = __half2float(__float2half(qkv[H + NKV * HD + i]));
    cbar();
    if (blockIdx.x == 0)
        for (int i = t; i < NKV * HD; i += NC) {
            int kvh = i / HD, d = i % HD;
            kc[((size_t)kvh * MAXPOS + pos) * HD + d] = __float2half(qa[H + i]);
            vc[((size_t)kvh * MAXPOS + pos) * HD + d] = __float2half(qa[H + NKV * HD + i]);
        }
    // Scores: a warp a (KV head, key), a lane 4 dims of the key and of its 6
    // query heads (the queries in registers per KV head), the 6 sums by
    // shuffles. (A thread a (KV head, key), 768 serial products with their
    // shared-memory loads, took 4.9 us at position 0 against 4.3-4.5.)
    float scale = rsqrtf((float)HD);
    for (int kvh = 0; kvh < NKV; kvh++) {
        float qr[G6][4];
#pragma unroll
        for (int e = 0; e < G6; e++) {
            float4 v = *(const float4*)(qa + (kvh * G6 + e) * HD + 4 * lane);
            qr[e][0] = v.x, qr[e][1] = v.y, qr[e][2] = v.z, qr[e][3] = v.w;
        }
#pragma unroll 2
        for (int j = w; j < np; j += NCW) {
            float k4[4];
            if (j < pos) {
                uint2 r = *(const uint2*)(kc + ((size_t)kvh * MAXPOS + j) * HD + 4 * lane);
                float2 x = __half22float2(*(__half2*)&r.x), y = __half22float2(*(__half2*)&r.y);
                k4[0] = x.x, k4[1] = x.y, k4[2] = y.x, k4[3] = y.y;
            } else {
                float4 v = *(const float4*)(qa + H + kvh * HD + 4 * lane);
                k4[0] = v.x, k4[1] = v.y, k4[2] = v.z, k4[3] = v.w;
            }
            float dd[G6];
#pragma unroll
            for (int e = 0; e < G6; e++) {
                dd[e] = qr[e][0] * k4[0] + qr[e][1] * k4[1] + qr[e][2] * k4[2] + qr[e][3] * k4[3];
                dd[e] = warp_sum(dd[e]);
            }
            if (lane < G6) {
                float v = dd[0];
#pragma unroll
                for (int e = 1; e < G6; e++)
                    if (lane == e) v = dd[e];
                s->sc[(kvh * G6 + lane) * np + j] = v * scale;
            }
        }
    }
    cbar();
    // Softmax: a warp a head.
    for (int h = w; h < NH; h += NCW) {
        float* sc = s->sc + h * np;
        float m = -INFINITY;
        for (int j = lane; j < np; j += 32) m = fmaxf(m, sc[j]);
        m = warp_max(m);
        float sum = 0.f;
        for (int j = lane; j < np; j += 32) {
            float e = __expf(sc[j] - m);
            sc[j] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        if (lane == 0) s->red[h] = sum;
    }
    cbar();
    // P.V: a warp 16 dims of one KV head, lane = (dim pair, key group of 4):
    // each lane sums its keys for the 6 query heads (a value load serves 12
    // products), the key groups meet by shuffles.
    const int NDW = HD / 16;  // warps a KV head
    for (int wt = w; wt < NKV * NDW; wt += NCW) {
        int kvh = wt / NDW, dp = (wt % NDW) * 8 + (lane & 7), jg = lane >> 3;
        float acc[G6][2];
#pragma unroll
        for (int e = 0; e < G6; e++) acc[e][0] = acc[e][1] = 0.f;
        const __half2* vr = (const __half2*)(vc + (size_t)kvh * MAXPOS * HD) + dp;
        const float* p = s->sc + kvh * G6 * np;
#pragma unroll 4
        for (int j = jg; j < np; j += 4) {
            float2 v;
            if (j < pos)
                v = __half22float2(vr[(size_t)j * (HD / 2)]);
            else
                v = make_float2(qa[H + NKV * HD + kvh * HD + 2 * dp], qa[H + NKV * HD + kvh * HD + 2 * dp + 1]);
#pragma unroll
            for (int e = 0; e < G6; e++) {
                float pe = p[e * np + j];
                acc[e][0] += pe * v.x, acc[e][1] += pe * v.y;
            }
        }
#pragma unroll
        for (int e = 0; e < G6; e++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                acc[e][c] += __shfl_xor_sync(0xffffffffu, acc[e][c], 8);
                acc[e][c] += __shfl_xor_sync(0xffffffffu, acc[e][c], 16);
            }
        // Lanes of key group 0 hold the sums; stored after every warp has read the scores.
        if (jg == 0)
#pragma unroll
            for (int e = 0; e < G6; e++) {
                int h = kvh * G6 + e;
                qa[h * HD + 2 * dp] = acc[e][0] / s->red[h];
                qa[h * HD + 2 * dp + 1] = acc[e][1] / s->red[h];
            }
    }
    cbar();
    // The output (in the q region, free since the scores) to s->sc for make_act.
    for (int o = t; o < H; o += NC) {
        float v = qa[o];
        s->sc[o] = v;
        if (blockIdx.x == 0) attn[o] = v;
    }
    cbar();
}

extern "C" __global__ void __launch_bounds__(NT, 1) mk_step() {
    const Params& P = cP;
    extern __shared__ __align__(128) u8 smraw[];
    Smem* s = (Smem*)smraw;
    int w = threadIdx.x / 32, lane = threadIdx.x & 31, b = blockIdx.x, g = gridDim.x;
    if (threadIdx.x == 0) {
        for (int i = 0; i < NPAGE; i++) mbar_init(&s->full[i], 32), mbar_init(&s->empty[i], 1), s->pcnt[i] = 0;
#if __CUDACC_VER_MAJOR__ >= 12
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
    }
    __syncthreads();
    const int nl = P.nl;
    if (w == NCW) {  // producer
        u64 pol;
        asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
        u32 k = 0;
        for (int l = 0; l < nl; l++)
            for (int op = 0; op < NOPS; op++) {
                Op o = layer_op(P.L[l], op, b, g);
                int n = o.r1 - o.r0;
                if (n <= 0) continue;
                int rpp = o.up ? GUR : o.m.rpp;
                for (int p0 = 0; p0 < n; p0 += rpp, k++) {
                    int slot = k % NPAGE, pn = min(rpp, n - p0);
                    if (k >= NPAGE) mbar_wait(&s->empty[slot], ((k / NPAGE) - 1) & 1);
                    Span sp = page_span(o, p0, pn);
                    if (!(P.mode & 1)) {
                        for (int off = 16 * lane; off < sp.bytes; off += 512)
                            cp16(s->pages[slot] + off, sp.src + off, pol);
                        if (o.up) {  // the up rows after the gate rows (Q4_K: no pre)
                            const u8* src = o.up + (size_t)(o.r0 + p0) * o.m.rb;
                            u8* dst = s->pages[slot] + pn * o.m.rb;
                            for (int off = 16 * lane; off < pn * o.m.rb; off += 512) cp16(dst + off, src + off, pol);
                        }
                    }
                    cp_arrive(&s->full[slot]);
                }
            }
        asm volatile("cp.async.wait_all;" ::: "memory");
        return;
    }
    Walk wk{0};
    const Bufs& B = P.b;
    for (int l = 0; l < nl; l++) {
        const Layer& L = P.L[l];
        u32* cnt = B.cnt + l * 5;
        long long* st = P.st + ((size_t)b * NL + l) * 40;
#define STAMP(k) \
    if (threadIdx.x == 0) st[k] = clock64();
        STAMP(0);
        // A: q/k/v
        if (TASKS && threadIdx.x < 64) s->acc[threadIdx.x] = 0.f;
        if (l > 0 && threadIdx.x == 0) wait_count(cnt - 1, g, P.mode);
        cbar();
        STAMP(1);
        make_act(B.x + (size_t)l * H, H, L.anorm, &s->a, s->red, w, lane);
        STAMP(2);
        float* qkv = B.qkv + (size_t)l * NQKV;
        for (int op = 0; op < 2; op++) {
            Op o = layer_op(L, op, b, g);
            int base = (op == 0 ? 0 : H + NKV * HD) + o.r0;
            if (TASKS)
                run_tasks(s, wk, o, s->acc + 32 * op, w, lane);
            else if (mma_ok(o))
                run_op_mma(s, wk, o, s->sc + 1024 * op, w, lane, op == 0 ? st + 16 : nullptr);
            else
                run_op(s, wk, o, Out{0, qkv + base, L.bias + base, op == 0 ? st + 16 : nullptr, nullptr}, w, lane);
        }
        if (mma_ok(layer_op(L, 0, b, g)) || mma_ok(layer_op(L, 1, b, g))) {
            cbar();
            for (int op = 0; op < 2; op++) {
                Op o = layer_op(L, op, b, g);
                int base = (op == 0 ? 0 : H + NKV * HD) + o.r0, t = threadIdx.x;
                if (mma_ok(o) && t < o.r1 - o.r0) qkv[base + t] = L.bias[base + t] + mma_row(o, s->sc + 1024 * op, t, false);
            }
        }
        if (TASKS) {
            cbar();
            for (int op = 0; op < 2; op++) {
                Op o = layer_op(L, op, b, g);
                int base = (op == 0 ? 0 : H + NKV * HD) + o.r0, t = threadIdx.x;
                if (t < o.r1 - o.r0) qkv[base + t] = L.bias[base + t] + s->acc[32 * op + t];
            }
        }
        // One release a block after the consumers' barrier: a release a warp
        // (15x the atomics on one counter) made the waits 1-2 us longer.
        cbar();
        STAMP(3);
        if (threadIdx.x == 0) red_release(cnt + 0, 1);
        // B: attention
        bool local = LATT > 0 && P.pos <= LATT;
        if (local) {
            float cs, sn;
            rope_angle(P.pos, threadIdx.x, cs, sn);
            if (threadIdx.x == 0) wait_count(cnt + 0, g, P.mode);
            cbar();
            STAMP(4);
            attention_local(s, B.qkv + (size_t)l * NQKV, L.kc, L.vc, B.attn + (size_t)l * H, P.pos, w, lane, cs, sn);
            STAMP(5);
        } else if (b < NH) {
            float cs, sn;
            rope_angle(P.pos, threadIdx.x, cs, sn);
            if (threadIdx.x == 0) wait_count(cnt + 0, g, P.mode);
            cbar();
            STAMP(4);
            attention(s, P, l, b, w, lane, cs, sn);
            cbar();
            STAMP(5);
            if (threadIdx.x == 0) red_release(cnt + 1, 1);
        }
        // C: o + residual
        if (TASKS && threadIdx.x < 16) s->acc[threadIdx.x] = 0.f;
        if (!local && threadIdx.x == 0) wait_count(cnt + 1, NH, P.mode);
        cbar();
        STAMP(6);
        make_act(local ? s->sc : B.attn + (size_t)l * H, H, nullptr, &s->a, s->red, w, lane);
        STAMP(7);
        {
            Op o = layer_op(L, 2, b, g);
            const float* x = B.x + (size_t)l * H;
            float* x2 = B.x2 + (size_t)l * H;
            if (TASKS) {
                run_tasks(s, wk, o, s->acc, w, lane);
                cbar();
                int t = threadIdx.x;
                if (t < o.r1 - o.r0) x2[o.r0 + t] = x[o.r0 + t] + s->acc[t];
            } else if (mma_ok(o)) {
                run_op_mma(s, wk, o, s->sc, w, lane, st + 20);
                cbar();
                int t = threadIdx.x;
                if (t < o.r1 - o.r0) x2[o.r0 + t] = x[o.r0 + t] + mma_row(o, s->sc, t, false);
            } else {
                run_op(s, wk, o, Out{0, x2 + o.r0, x + o.r0, st + 20, nullptr}, w, lane);
            }
        }
        cbar();
        STAMP(8);
        if (threadIdx.x == 0) red_release(cnt + 2, 1);
        // D: gate, up, act
        if (TASKS && threadIdx.x < 160) s->acc[threadIdx.x] = 0.f;
        if (threadIdx.x == 0) wait_count(cnt + 2, g, P.mode);
        cbar();
        STAMP(9);
        make_act(B.x2 + (size_t)l * H, H, L.fnorm, &s->a, s->red, w, lane);
        STAMP(10);
        {
            Op og = layer_op(L, 3, b, g), ou = layer_op(L, 4, b, g);
            float* act = B.act + (size_t)l * FF;
            if (TASKS) {
                run_tasks(s, wk, og, s->acc, w, lane);
                STAMP(11);
                run_tasks(s, wk, ou, s->acc + 80, w, lane);
                cbar();
                int t = threadIdx.x;
                if (t < ou.r1 - ou.r0) {
                    float gv = s->acc[t];
                    act[ou.r0 + t] = gv / (1.f + __expf(-gv)) * s->acc[80 + t];
                }
            } else if (GU && mma_ok(og)) {
                run_op_mma(s, wk, og, s->sc, w, lane, st + 24);
                STAMP(11);
                cbar();
                for (int t = threadIdx.x; t < og.r1 - og.r0; t += NCW * 32) {
                    float gv = mma_row(og, s->sc, t, false), uv = mma_row(og, s->sc, t, true);
                    act[og.r0 + t] = gv / (1.f + __expf(-gv)) * uv;
                }
            } else if (GU) {
                run_op(s, wk, og, Out{3, nullptr, nullptr, st + 24, st + 32}, w, lane);
                STAMP(11);
                cbar();
                int t = threadIdx.x;
                if (t < og.r1 - og.r0) {
                    float gv = s->acc[t];
                    act[og.r0 + t] = gv / (1.f + __expf(-gv)) * s->acc[80 + t];
                }
            } else {
                run_op(s, wk, og, Out{1, nullptr, nullptr, st + 24, st + 32}, w, lane);
                STAMP(11);
                run_op(s, wk, ou, Out{2, act + ou.r0, nullptr, nullptr, nullptr}, w, lane);
            }
        }
        cbar();
        STAMP(12);
        if (threadIdx.x == 0) red_release(cnt + 3, 1);
        // E: down + residual
        if (threadIdx.x < 16) s->kacc[threadIdx.x] = 0.f, s->kcnt[threadIdx.x] = 0, s->acc[threadIdx.x] = 0.f;
        if (threadIdx.x == 0) wait_count(cnt + 3, g, P.mode);
        cbar();
        STAMP(13);
        make_act(B.act + (size_t)l * FF, FF, nullptr, &s->a, s->red, w, lane);
        STAMP(14);
        {
            Op o = layer_op(L, 5, b, g);
            const float* x2 = B.x2 + (size_t)l * H;
            float* xn = B.x + (size_t)(l + 1) * H;
            if (TASKS) {
                run_tasks(s, wk, o, s->acc, w, lane);
                cbar();
                int t = threadIdx.x;
                if (t < o.r1 - o.r0) xn[o.r0 + t] = x2[o.r0 + t] + s->acc[t];
            } else {
                run_op(s, wk, o, Out{0, xn + o.r0, x2 + o.r0, st + 28, st + 34}, w, lane);
            }
        }
        cbar();
        STAMP(15);
        if (threadIdx.x == 0) red_release(cnt + 4, 1);
    }
}

// ------------------------------------------------------------ reference
//
// Plain kernels, written from ggml's formulas with byte-level decoding (not
// the megakernel's word tricks): quantize_row_q8_K, vec_dot_q4_K_q8_K and
// vec_dot_q6_K_q8_K per super-block, one thread a row.

struct RefQ {
    signed char qs[MAXNB * 256];
    float d[MAXNB];
    int bs[MAXNB * 16];
};

__global__ void ref_quant(const float* src, int n, const float* nw, RefQ* q) {
    if (threadIdx.x || blockIdx.x) return;
    float sc = 1.f;
    if (nw) {
        double t = 0;
        for (int i = 0; i < n; i++) t += (double)src[i] * src[i];
        sc = 1.f / sqrtf((float)(t / n) + EPS);
    }
    for (int ib = 0; ib < n / 256; ib++) {
        float v[256], amax = 0.f, mx = 0.f;
        for (int i = 0; i < 256; i++) {
            v[i] = src[ib * 256 + i];
            if (nw) v[i] = v[i] * sc * nw[ib * 256 + i];
            if (fabsf(v[i]) > amax) amax = fabsf(v[i]), mx = v[i];
        }
        if (amax == 0.f) {
            q->d[ib] = 0.f;
            for (int i = 0; i < 256; i++) q->qs[ib * 256 + i] = 0;
            for (int i = 0; i < 16; i++) q->bs[ib * 16 + i] = 0;
            continue;
        }
        float is = -127.f / mx;
        for (int i = 0; i < 256; i++) q->qs[ib * 256 + i] = (signed char)min(127, (int)rintf(is * v[i]));
        for (int i = 0; i < 16; i++) {
            int s = 0;
            for (int k = 0; k < 16; k++) s += q->qs[ib * 256 + 16 * i + k];
            q->bs[ib * 16 + i] = s;
        }
        q->d[ib] = 1.f / is;
    }
}

__device__ void scale_min_k4(int j, const u8* q, int& d, int& m) {
    if (j < 4) {
        d = q[j] & 63, m = q[j + 4] & 63;
    } else {
        d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

__global__ void ref_mv(Mat m, const RefQ* a, const float* add, float* y) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= m.rows) return;
    const u8* row = m.w + (size_t)r * m.rb;
    float sum = 0.f;
    for (int sb = 0; sb < m.cols / 256; sb++) {
        const signed char* aq = a->qs + sb * 256;
        if (m.type == 0) {
            const u8* wb = row + sb * Q4B;
            float d = __half2float(*(const __half*)wb), dmin = __half2float(*(const __half*)(wb + 2));
            int isum = 0, summs = 0;
            for (int j = 0; j < 8; j++) {
                int sc, mn;
                scale_min_k4(j, wb + 4, sc, mn);
                int s = 0;
                for (int i = 0; i < 32; i++) {
                    u8 byte = wb[16 + 32 * (j / 2) + i];
                    int qv = (j & 1) ? (byte >> 4) : (byte & 15);
                    s += qv * aq[32 * j + i];
                }
                isum += sc * s;
                summs += mn * (a->bs[sb * 16 + 2 * j] + a->bs[sb * 16 + 2 * j + 1]);
            }
            sum += a->d[sb] * d * isum - a->d[sb] * dmin * summs;
        } else {
            const u8* wb = row + sb * Q6B;
            float d = __half2float(*(const __half*)(wb + 208));
            const signed char* scs = (const signed char*)(wb + 192);
            int isum = 0;
            for (int e = 0; e < 256; e++) {
                int hf = e / 128, r2 = e % 128, qr = r2 / 32, i = r2 % 32;
                u8 l = wb[64 * hf + 32 * (qr & 1) + i];
                int lo = (qr >> 1) ? (l >> 4) : (l & 15);
                int hb = (wb[128 + 32 * hf + i] >> (2 * qr)) & 3;
                int qv = (lo | (hb << 4)) - 32;
                isum += scs[e / 16] * qv * aq[e];
            }
            sum += a->d[sb] * d * isum;
        }
    }
    y[r] = sum + (add ? add[r] : 0.f);
}

__global__ void ref_attn(const float* qkv, const __half* kc0, const __half* vc0, int pos, float* out) {
    int h = blockIdx.x, kvh = h / (NH / NKV);
    if (threadIdx.x) return;
    const __half* kc = kc0 + (size_t)kvh * MAXPOS * HD;
    const __half* vc = vc0 + (size_t)kvh * MAXPOS * HD;
    float q[HD], k[HD], v[HD];
    for (int t = 0; t < HD / 2; t++) {
        float inv = powf(ROPE_BASE, -2.f * t / HD), cs, sn;
        sincosf(pos * inv, &sn, &cs);
        float q0 = qkv[h * HD + t], q1 = qkv[h * HD + t + HD / 2];
        q[t] = q0 * cs - q1 * sn, q[t + HD / 2] = q1 * cs + q0 * sn;
        float k0 = qkv[H + kvh * HD + t], k1 = qkv[H + kvh * HD + t + HD / 2];
        k[t] = __half2float(__float2half(k0 * cs - k1 * sn));
        k[t + HD / 2] = __half2float(__float2half(k1 * cs + k0 * sn));
    }
    for (int d = 0; d < HD; d++) v[d] = __half2float(__float2half(qkv[H + NKV * HD + kvh * HD + d]));
    float m = -INFINITY;
    float* sc = (float*)malloc(sizeof(float) * (pos + 1));
    for (int j = 0; j <= pos; j++) {
        float s = 0;
        for (int d = 0; d < HD; d++) s += q[d] * (j < pos ? __half2float(kc[(size_t)j * HD + d]) : k[d]);
        sc[j] = s / sqrtf((float)HD);
        m = fmaxf(m, sc[j]);
    }
    float sum = 0;
    for (int j = 0; j <= pos; j++) sc[j] = expf(sc[j] - m), sum += sc[j];
    for (int d = 0; d < HD; d++) {
        float o = 0;
        for (int j = 0; j <= pos; j++) o += sc[j] * (j < pos ? __half2float(vc[(size_t)j * HD + d]) : v[d]);
        out[h * HD + d] = o / sum;
    }
    free(sc);
}

__global__ void ref_act(const float* g, const float* u, float* act) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < FF) act[i] = g[i] / (1.f + expf(-g[i])) * u[i];
}

// ------------------------------------------------------------ random model

__device__ __forceinline__ u32 hash(u64 x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (u32)x;
}

// Random super-blocks: random quants and scales, d and dmin small enough
// that the weights are ~0.02 in size.
__global__ void init_mat(u8* w, size_t nblocks, int type, u64 seed) {
    for (size_t bi = blockIdx.x * (size_t)blockDim.x + threadIdx.x; bi < nblocks; bi += (size_t)gridDim.x * blockDim.x) {
        int bytes = type == 0 ? Q4B : Q6B;
        u8* p = w + bi * bytes;
        for (int i = 0; i < bytes; i += 4) {
            u32 r = hash(seed * 0x9e3779b97f4a7c15ull + bi * 64 + i);
            for (int k = 0; k < 4 && i + k < bytes; k++) p[i + k] = (u8)(r >> (8 * k));
        }
        u32 r = hash(seed + bi * 7 + 3);
        if (type == 0) {
            *(__half*)p = __float2half(1.5e-4f * (1.f + (r & 255) / 256.f));
            *(__half*)(p + 2) = __float2half(1.0e-4f * (1.f + ((r >> 8) & 255) / 256.f));
        } else {
            for (int i = 0; i < 16; i++) p[192 + i] = (u8)(signed char)((int)((r >> i) & 31) - 15);
            *(__half*)(p + 208) = __float2half(1.5e-4f * (1.f + ((r >> 16) & 255) / 256.f));
        }
    }
}

__global__ void init_f32(float* x, size_t n, float lo, float hi, u64 seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = lo + (hi - lo) * (hash(seed * 1315423911ull + i) / 4294967296.f);
}
__global__ void init_f16(__half* x, size_t n, u64 seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __float2half(-1.f + 2.f * (hash(seed * 2654435761ull + i) / 4294967296.f));
}

static Mat new_mat(int rows, int cols, int type, u64 seed, size_t& bytes) {
    Mat m;
    m.rows = rows, m.cols = cols, m.type = type;
    m.rb = cols / 256 * (type == 0 ? Q4B : Q6B);
    m.nr = group_rows(cols, type), m.rpp = page_rows(m.rb, cols, type);
    if (MMA && type == 0 && cols == 1536 && m.rpp > 16) {  // run_op_mma: a page is one 16-row tile
        fprintf(stderr, "MMA=1 needs pages of <= 16 rows of 1536 columns, got %d\n", m.rpp);
        exit(1);
    }
    u8* w;
    CK(cudaMalloc(&w, (size_t)rows * m.rb + 16));  // + 16: a page's copy may round up past the end
    init_mat<<<1024, 256>>>(w, (size_t)rows * cols / 256, type, seed);
    m.w = w;
    bytes += (size_t)rows * m.rb;
    return m;
}

static float* dalloc(size_t n) {
    float* p;
    CK(cudaMalloc(&p, n * sizeof(float)));
    CK(cudaMemset(p, 0, n * sizeof(float)));
    return p;
}

static std::vector<float> dget(const float* p, size_t n) {
    std::vector<float> v(n);
    CK(cudaMemcpy(v.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return v;
}

// rel: max |a-b| / max |b|.
static double rel(const float* a, const float* b, size_t n) {
    std::vector<float> x = dget(a, n), y = dget(b, n);
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        if (!std::isfinite(x[i])) return INFINITY;
        md = std::max(md, (double)fabsf(x[i] - y[i]));
        mr = std::max(mr, (double)fabsf(y[i]));
    }
    return md / (mr > 0 ? mr : 1);
}

int main(int argc, char** argv) {
    int pos = argc > 1 ? atoi(argv[1]) : 64;
    int mix = argc > 2 ? atoi(argv[2]) : 0;
    int steps = argc > 3 ? atoi(argv[3]) : 200;
    const char* modes = argc > 4 ? argv[4] : "0";
    if (pos < 0 || pos >= MAXPOS) return fprintf(stderr, "pos out of range\n"), 1;
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    int G = pr.multiProcessorCount;
    printf("device %s, %d SMs; NCW %d, NPAGE %d, pos %d, mix %d, smem %zu\n", pr.name, G, NCW, NPAGE, pos, mix,
           sizeof(Smem));
    static Params P;
    size_t wbytes = 0;
    for (int l = 0; l < NL; l++) {
        Layer& L = P.L[l];
        u64 s = 1000 * (l + 1);
        L.qkv[0] = new_mat(H + NKV * HD, H, 0, s + 1, wbytes);
#if NRQK
        if (MMA && MMAQK) {  // run_op_mma's pages are 16-row tiles
            fprintf(stderr, "NRQK needs MMAQK=0 with MMA=1\n");
            exit(1);
        }
        L.qkv[0].nr = NRQK, L.qkv[0].rpp = (PAGE / L.qkv[0].rb) / NRQK * NRQK;
#endif
        L.qkv[1] = new_mat(NKV * HD, H, mix ? 1 : 0, s + 2, wbytes);
        L.o = new_mat(H, H, 0, s + 3, wbytes);
        L.gate = new_mat(FF, H, 0, s + 4, wbytes);
        L.up = new_mat(FF, H, 0, s + 5, wbytes);
        L.down = new_mat(H, FF, (mix && l % 2 == 0) ? 1 : 0, s + 6, wbytes);
        float* nw = dalloc(2 * H + NQKV);
        init_f32<<<64, 256>>>(nw, 2 * H, 0.8f, 1.2f, s + 7);
        init_f32<<<64, 256>>>(nw + 2 * H, NQKV, -0.1f, 0.1f, s + 8);
        L.anorm = nw, L.fnorm = nw + H, L.bias = nw + 2 * H;
        CK(cudaMalloc(&L.kc, sizeof(__half) * NKV * MAXPOS * HD));
        CK(cudaMalloc(&L.vc, sizeof(__half) * NKV * MAXPOS * HD));
        init_f16<<<256, 256>>>(L.kc, (size_t)NKV * MAXPOS * HD, s + 9);
        init_f16<<<256, 256>>>(L.vc, (size_t)NKV * MAXPOS * HD, s + 10);
    }
    printf("layer weights %.1f MB (%.2f MB a layer)\n", wbytes / 1e6, wbytes / 1e6 / NL);
    Bufs& B = P.b;
    B.x = dalloc((size_t)(NL + 1) * H);
    B.qkv = dalloc((size_t)NL * NQKV);
    B.attn = dalloc((size_t)NL * H);
    B.x2 = dalloc((size_t)NL * H);
    B.act = dalloc((size_t)NL * FF);
    CK(cudaMalloc(&B.cnt, sizeof(u32) * NL * 5));
    CK(cudaMalloc(&P.st, sizeof(long long) * G * NL * 40));
    CK(cudaMemset(P.st, 0, sizeof(long long) * G * NL * 40));
    init_f32<<<64, 256>>>(B.x, H, -1.f, 1.f, 42);
    P.pos = pos, P.nl = NL;
    if (FF / G + 1 > 80 || H / G + 1 > 16 || NQKV / G + 1 > 32) return fprintf(stderr, "too few SMs for Smem.g or kacc\n"), 1;
    size_t smem = sizeof(Smem);
    CK(cudaFuncSetAttribute(mk_step, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int occ = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, mk_step, NT, smem));
    if (occ < 1) return fprintf(stderr, "mk_step does not fit an SM\n"), 1;
    CK(cudaDeviceSynchronize());

    // Check (mode 0), one step, every stage of every layer.
    P.mode = 0;
    CK(cudaMemcpyToSymbol(cP, &P, sizeof(P)));
    CK(cudaMemset(B.cnt, 0, sizeof(u32) * NL * 5));
    mk_step<<<G, NT, smem>>>();
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    {
        RefQ* rq;
        CK(cudaMalloc(&rq, sizeof(RefQ)));
        float *r = dalloc(FF), *r2 = dalloc(FF), *r3 = dalloc(FF);
        double worst[5] = {0, 0, 0, 0, 0};
        for (int l = 0; l < NL; l++) {
            Layer& L = P.L[l];
            // A
            ref_quant<<<1, 1>>>(B.x + (size_t)l * H, H, L.anorm, rq);
            ref_mv<<<(H + NKV * HD + 127) / 128, 128>>>(L.qkv[0], rq, L.bias, r);
            ref_mv<<<(NKV * HD + 127) / 128, 128>>>(L.qkv[1], rq, L.bias + H + NKV * HD, r + H + NKV * HD);
            worst[0] = std::max(worst[0], rel(B.qkv + (size_t)l * NQKV, r, NQKV));
            // B: the cache row at pos was written by the megakernel; the reference uses the
            // rows below pos and its own new row.
            ref_attn<<<NH, 32>>>(B.qkv + (size_t)l * NQKV, L.kc, L.vc, pos, r);
            worst[1] = std::max(worst[1], rel(B.attn + (size_t)l * H, r, H));
            // C
            ref_quant<<<1, 1>>>(B.attn + (size_t)l * H, H, nullptr, rq);
            ref_mv<<<(H + 127) / 128, 128>>>(L.o, rq, B.x + (size_t)l * H, r);
            worst[2] = std::max(worst[2], rel(B.x2 + (size_t)l * H, r, H));
            // D
            ref_quant<<<1, 1>>>(B.x2 + (size_t)l * H, H, L.fnorm, rq);
            ref_mv<<<(FF + 127) / 128, 128>>>(L.gate, rq, nullptr, r2);
            ref_mv<<<(FF + 127) / 128, 128>>>(L.up, rq, nullptr, r3);
            ref_act<<<(FF + 255) / 256, 256>>>(r2, r3, r);
            worst[3] = std::max(worst[3], rel(B.act + (size_t)l * FF, r, FF));
            // E
            ref_quant<<<1, 1>>>(B.act + (size_t)l * FF, FF, nullptr, rq);
            ref_mv<<<(H + 127) / 128, 128>>>(L.down, rq, B.x2 + (size_t)l * H, r);
            worst[4] = std::max(worst[4], rel(B.x + (size_t)(l + 1) * H, r, H));
        }
        CK(cudaDeviceSynchronize());
        printf("check (max |mk - ref| / max |ref|, worst layer): qkv %.2e attn %.2e o %.2e act %.2e down %.2e\n",
               worst[0], worst[1], worst[2], worst[3], worst[4]);
        std::vector<float> xl = dget(B.x + (size_t)NL * H, H);
        double mx = 0;
        for (float v : xl) mx = std::max(mx, (double)fabsf(v));
        printf("final x max |x| %.3f\n", mx);
        bool ok = true;
        for (double v : worst) ok = ok && v < 2e-3;
        printf("check %s\n", ok ? "PASSED" : "FAILED");
    }

    // Timing: each mode in the list, steps launches (counters zeroed before
    // each), per-step times from events, median.
    for (const char* m = modes; *m; m++) {
        if (*m == ',') continue;
        P.mode = *m - '0';
        CK(cudaMemcpyToSymbol(cP, &P, sizeof(P)));
        cudaEvent_t ev[2];
        CK(cudaEventCreate(&ev[0]));
        CK(cudaEventCreate(&ev[1]));
        std::vector<float> t;
        for (int i = 0; i < steps + 5; i++) {
            CK(cudaMemsetAsync(B.cnt, 0, sizeof(u32) * NL * 5));
            CK(cudaEventRecord(ev[0]));
            mk_step<<<G, NT, smem>>>();
            CK(cudaEventRecord(ev[1]));
            CK(cudaEventSynchronize(ev[1]));
            float ms;
            CK(cudaEventElapsedTime(&ms, ev[0], ev[1]));
            if (i >= 5) t.push_back(ms * 1000.f);
        }
        CK(cudaGetLastError());
        std::sort(t.begin(), t.end());
        float med = t[t.size() / 2];
        printf("mode %d: step median %.1f us (min %.1f, p90 %.1f): %.2f us a layer, %.0f GB/s of layer weights\n",
               P.mode, med, t[0], t[t.size() * 9 / 10], med / NL, wbytes / (med * 1e3));
        // The last step's stamps: per stage, the median over layers 4..23 of
        // blocks 0 (attention) and 66, in us (clock64 at the SM clock the
        // first block's whole step implies against the median step).
        std::vector<long long> st((size_t)G * NL * 40);
        CK(cudaMemcpy(st.data(), P.st, st.size() * sizeof(long long), cudaMemcpyDeviceToHost));
        double cyc_us = (st[(size_t)(NL - 1) * 40 + 15] - st[0]) / (double)med;
        static const char* nm[15] = {"waitA", "actA", "qkv", "waitB", "attn", "waitC", "actC", "o",
                                     "waitD", "actD", "gate", "up", "waitE", "actE", "down"};
        static const int from[15] = {0, 1, 2, 3, 4, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14};
        static const int to[15] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
        for (int bb : {0, 66, 131}) {
            if (bb >= G) continue;
            printf("  block %2d (%.0f cycles/us):", bb, cyc_us);
            double tot = 0;
            for (int k = 0; k < 15; k++) {
                if (bb != 0 && (k == 3 || k == 4)) continue;
                std::vector<double> d;
                for (int l = 4; l < 24; l++) {
                    const long long* q = &st[((size_t)bb * NL + l) * 40];
                    int f = from[k];
                    if (bb == 0 && k == 5) f = 5;  // attention blocks wait for C after their attention
                    d.push_back((q[to[k]] - q[f]) / cyc_us);
                }
                std::sort(d.begin(), d.end());
                printf(" %s %.2f", nm[k], d[d.size() / 2]);
                tot += d[d.size() / 2];
            }
            const long long* q0 = &st[((size_t)bb * NL + 4) * 40];
            const long long* q1 = &st[((size_t)bb * NL + 24) * 40];
            printf(" | sum %.2f, layer %.2f\n", tot, (q1[0] - q0[0]) / cyc_us / 20);
            // run_op's first group of warp 0, cycles: page entered, dot, store; then to the stage's end.
            static const char* on[4] = {"qkv", "o", "gate", "down"};
            static const int end[4] = {3, 8, 11, 15};
            printf("  block %2d first group (cycles: enter dot store rest):", bb);
            for (int k = 0; k < 4; k++) {
                std::vector<long long> e, dd, sto, rest;
                for (int l = 4; l < 24; l++) {
                    const long long* q = &st[((size_t)bb * NL + l) * 40];
                    const long long* u = q + 16 + 4 * k;
                    e.push_back(u[1] - u[0]), dd.push_back(u[2] - u[1]), sto.push_back(u[3] - u[2]);
                    rest.push_back(q[end[k]] - u[3]);
                }
                for (auto* v : {&e, &dd, &sto, &rest}) std::sort(v->begin(), v->end());
                printf(" %s %lld %lld %lld %lld;", on[k], e[10], dd[10], sto[10], rest[10]);
            }
            for (int k = 0; k < 2; k++) {
                std::vector<long long> e;
                for (int l = 4; l < 24; l++) {
                    const long long* q = &st[((size_t)bb * NL + l) * 40] + 32 + 2 * k;
                    e.push_back(q[1] - q[0]);
                }
                std::sort(e.begin(), e.end());
                printf(" %s later group's dot %lld;", k ? "down" : "gate", e[10]);
            }
            printf("\n");
        }
    }
    return 0;
}
