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

// Programmatic dependent launch (sm_90): a kernel launched with the
// programmatic-serialization attribute (launch.go's pdlKernels) may start
// while the kernel before it in the stream still runs. pdl_wait blocks until
// that kernel has finished and its writes are visible: such a kernel calls
// it in every block before it reads or writes anything an earlier kernel
// writes or reads (only constant weights, and the pass state as rope_store
// says, may be touched before). pdl_next
// lets the next kernel in the stream launch now (its blocks then wait in
// pdl_wait for this one to finish). Both are no-ops in a kernel launched
// without the attribute.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_next() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

// A PTX built with -DAPR_TIMELINE (measurement only, never committed)
// records, in every block that calls pdl_start, the launch's grid id, the
// global timer (ns) on entering pdl_start and after its wait, and the
// launch's shape, in aprTL (4 words a block, up to APR_TL_MAX blocks;
// aprTLN counts them): a decode step's own timeline, which the device has
// no profiler to give (TestDecodeTimeline reads it).
#ifdef APR_TIMELINE
#define APR_TL_MAX (1 << 21)
__device__ unsigned long long aprTL[4 * APR_TL_MAX];
__device__ unsigned int aprTLN;
__device__ unsigned long long aprTLX[2 * APR_TL_MAX];
__device__ unsigned int aprTLXN;
__device__ unsigned long long aprTLM[3 * APR_TL_MAX];
__device__ unsigned int aprTLMN;
// gtimer reads the global timer after every memory access before it (the
// memory clobber); tl_grid is the launch's grid id.
__device__ __forceinline__ unsigned long long gtimer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)::"memory");
    return t;
}
__device__ __forceinline__ unsigned long long tl_grid() {
    unsigned long long g;
    asm volatile("mov.u64 %0, %%gridid;" : "=l"(g));
    return g;
}
#endif

// tl_mark records, with -DAPR_TIMELINE, the global timer as thread 0 of
// each block reaches phase mark (1..7) of its kernel; elsewhere it is
// nothing. rmsnorm (through rms_scale), the cluster attention and
// silu_quant mark their phases, so that the timeline can say which part of
// their chains takes the time. The marks wait in shared memory
// (aprTLMark, aprTLMask: pdl_start clears the mask) until thread 0's
// tl_exit writes them out (aprTLM: the launch's grid id, the mark and the
// time; aprTLMN counts them), so that no atomic's round trip lies on the
// chain being timed.
#ifdef APR_TIMELINE
__shared__ unsigned long long aprTLMark[8];
__shared__ unsigned int aprTLMask;
#endif
__device__ __forceinline__ void tl_mark(int mark) {
#ifdef APR_TIMELINE
    if (threadIdx.x == 0) {
        aprTLMark[mark & 7] = gtimer();
        aprTLMask |= 1u << (mark & 7);
    }
#endif
}

// tl_mark_any is tl_mark from whichever thread calls it (the caller
// picks one thread; the mask is set atomically, as marks of other threads
// may come at the same time).
__device__ __forceinline__ void tl_mark_any(int mark) {
#ifdef APR_TIMELINE
    aprTLMark[mark & 7] = gtimer();
    atomicOr(&aprTLMask, 1u << (mark & 7));
#endif
}

// tl_marks_out writes the block's marks out (thread 0, in tl_exit).
__device__ __forceinline__ void tl_marks_out() {
#ifdef APR_TIMELINE
    unsigned int m = aprTLMask;
    if (m == 0) return;
    unsigned int i = atomicAdd(&aprTLMN, (unsigned int)__popc(m));
    unsigned long long g = tl_grid();
    for (int k = 0; k < 8; k++) {
        if (!(m >> k & 1)) continue;
        if (i < APR_TL_MAX) {
            aprTLM[3 * i] = g;
            aprTLM[3 * i + 1] = (unsigned long long)k;
            aprTLM[3 * i + 2] = aprTLMark[k];
        }
        i++;
    }
#endif
}

// tl_mark_after is tl_mark after v (a value in a register) in program
// order. The empty asm orders the PTX only: ptxas may still read the timer
// before v's loads arrive (a helper's reading of the SASS found such a
// trigger issued right after the loads), so the mark is a lower bound.
__device__ __forceinline__ void tl_mark_after(int mark, double v) {
#ifdef APR_TIMELINE
    asm volatile("" ::"d"(v));
    tl_mark(mark);
#endif
}

// tl_exit records, with -DAPR_TIMELINE, the global timer as each warp of
// the block ends its work (aprTLX: the launch's grid id and the time, up
// to APR_TL_MAX warps; aprTLXN counts them). Kernels of a decode step
// call it last; elsewhere it is nothing.
__device__ __forceinline__ void tl_exit() {
#ifdef APR_TIMELINE
    __syncwarp();
    if (threadIdx.x % 32 == 0) {
        unsigned long long t = gtimer();
        unsigned int i = atomicAdd(&aprTLXN, 1u);
        if (i < APR_TL_MAX) {
            aprTLX[2 * i] = tl_grid();
            aprTLX[2 * i + 1] = t;
        }
        if (threadIdx.x == 0) tl_marks_out();
    }
#endif
}

// pdl_start is pdl_wait then pdl_next: the start of a kernel that touches
// nothing before the kernels before it are done.
__device__ __forceinline__ void pdl_start() {
#ifdef APR_TIMELINE
    unsigned long long t0 = gtimer();
#endif
    pdl_wait();
#ifdef APR_TIMELINE
    unsigned long long t1 = gtimer();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
        aprTLMask = 0;
        unsigned int i = atomicAdd(&aprTLN, 1u);
        if (i < APR_TL_MAX) {
            aprTL[4 * i] = tl_grid();
            aprTL[4 * i + 1] = t0;
            aprTL[4 * i + 2] = t1;
            aprTL[4 * i + 3] = ((unsigned long long)gridDim.x << 32) | ((unsigned long long)gridDim.y << 16) | blockDim.x;
        }
    }
#endif
    pdl_next();
}

// prefetch_l2 asks for the n bytes at p (constant weights) to be brought
// into L2, a 128-byte line per thread of the block at a time (nothing when
// compiled with -DMV_NO_PREFETCH, for comparisons).
__device__ __forceinline__ void prefetch_l2(const u8* p, i64 n) {
#ifndef MV_NO_PREFETCH
    for (i64 o = (i64)threadIdx.x * 128; o < n; o += (i64)blockDim.x * 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(p + o));
#endif
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
//
// q80_id is a Q8_0 block's 127/amax (0 for an all-zero block), q80_q a
// value's quant and q80_d the block's F16 scale: every Q8_0 encoder takes
// them, so that all write quantize's bytes.
__device__ __forceinline__ float q80_id(float amax) { return amax != 0.0f ? 127.0f / amax : 0.0f; }
__device__ __forceinline__ u32 q80_q(float x, float id) { return (u8)(i8)__float2int_rn(__fmul_rn(x, id)); }
__device__ __forceinline__ u16 q80_d(float amax) { return f2h(amax / 127.0f); }

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
            float id = q80_id(amax);
            u8* blk = q80 + (e0 / 32) * 34;
            u16* qs = (u16*)(blk + 2 + (lane % 4) * 8);  // 2-byte aligned: four u16 stores
#pragma unroll
            for (int j = 0; j < 8; j += 2) qs[j / 2] = (u16)(q80_q(v[j], id) | q80_q(v[j + 1], id) << 8);
            if (lane % 4 == 0) *(u16*)blk = q80_d(amax);
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
        // A lane's 8 quants at blk + 4 + 8*lane: 4-byte aligned (292-byte
        // blocks), two u32 stores.
        u32* qs = (u32*)(blk + 4 + lane * 8);
        if (amax == 0.0f) {
            // ggml clears the whole block.
            qs[0] = 0u;
            qs[1] = 0u;
            if (lane < 16) *(short*)(blk + 260 + 2 * lane) = 0;
            if (lane == 0) *(float*)blk = 0.0f;
            return;
        }
        float iscale = -127.0f / xmax;
        int s = 0;
        u32 packed[2] = {0u, 0u};
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int q = min(127, __float2int_rn(__fmul_rn(iscale, v[j])));
            packed[j / 4] |= (u32)(u8)(i8)q << (8 * (j % 4));
            s += q;
        }
        qs[0] = packed[0];
        qs[1] = packed[1];
        s += __shfl_xor_sync(FULL, s, 1);
        if ((lane & 1) == 0) *(short*)(blk + 260 + lane) = (short)s;
        if (lane == 0) *(float*)blk = 1.0f / iscale;
    }
}

// q80_warp encodes a warp's 32 values (x in lane l) as the Q8_0 block at
// blk: quant_chunk's arithmetic (the maximum is exact in any order), so
// quantize's bytes.
__device__ __forceinline__ void q80_warp(float x, u8* blk) {
    int lane = threadIdx.x % WARP;
    float amax = fabsf(x);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(FULL, amax, o));
    blk[2 + lane] = (u8)q80_q(x, q80_id(amax));
    if (lane == 0) *(u16*)blk = q80_d(amax);
}

// quantize encodes n floats (rows of a multiple of 32 each, so blocks never
// straddle rows) as Q8_0 into q80 and/or Q8_K into q8k: one warp per 256.
extern "C" __global__ void quantize(const float* __restrict__ x, i64 n, u8* __restrict__ q80, u8* __restrict__ q8k) {
    pdl_start();
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
    tl_exit();
}

// The kernels by family, one file each (textually included: one module).
#include "matvec.cuh"
#include "mmq.cuh"
#include "mmf.cuh"
#include "norm.cuh"
#include "attention.cuh"
#include "pointwise.cuh"
#include "fused.cuh"
#include "mvf.cuh"
#include "cublas.cuh"
#include "attn_f32.cuh"
#include "attn_mma.cuh"
#include "topk.cuh"
#include "attn_split.cuh"
