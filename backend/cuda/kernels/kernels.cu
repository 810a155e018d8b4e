// Kernels of apr's CUDA backend: the operations of one decode step of the
// Qwen2/LLaMA forward pass. Compiled to PTX for sm_90 (see ../cuda.go's
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

// ------------------------------------------------- activation quantizers

// quantize_q8_0 encodes n floats (a multiple of 32) as Q8_0 blocks (f16 d,
// 32 int8), as ggml's x86 quantize_row_q8_0: d = amax/127, q = round-half-
// even(x * 127/amax). One warp per block.
extern "C" __global__ void quantize_q8_0(const float* __restrict__ x, u8* __restrict__ out, int n) {
    int b = (blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    int lane = threadIdx.x % WARP;
    if (b * 32 >= n) return;  // whole warps exit together
    float v = x[b * 32 + lane];
    float amax = warp_max(fabsf(v));
    float d = amax / 127.0f;
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    u8* blk = out + (i64)b * 34;
    blk[2 + lane] = (u8)(i8)__float2int_rn(__fmul_rn(v, id));
    if (lane == 0) *(u16*)blk = f2h(d);
}

// quantize_q8_k encodes n floats (a multiple of 256) as Q8_K blocks (f32 d,
// 256 int8, 16 int16 sums), as quantize_row_q8_K_ref: the element of largest
// magnitude (the first one on ties) sets iscale = -127/max. One warp per
// block, each lane 8 consecutive elements.
extern "C" __global__ void quantize_q8_k(const float* __restrict__ x, u8* __restrict__ out, int n) {
    int b = (blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    int lane = threadIdx.x % WARP;
    if (b * 256 >= n) return;
    const float* xb = x + (i64)b * 256 + lane * 8;
    float v[8];
    float amax = 0.0f, xmax = 0.0f;
    int idx = 1 << 30;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        v[j] = xb[j];
        float a = fabsf(v[j]);
        if (a > amax) { amax = a; xmax = v[j]; idx = lane * 8 + j; }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float a2 = __shfl_xor_sync(FULL, amax, o);
        float x2 = __shfl_xor_sync(FULL, xmax, o);
        int i2 = __shfl_xor_sync(FULL, idx, o);
        if (a2 > amax || (a2 == amax && i2 < idx)) { amax = a2; xmax = x2; idx = i2; }
    }
    u8* blk = out + (i64)b * 292;
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

// ------------------------------------------------ matrix-vector products
//
// Every matvec kernel has one signature: y[r] (+)= W[r,:] · act (+ bias[r])
// for rows r, one warp per row, blockDim.x a multiple of 32. act is the
// activation in the weights' dot type: Q8_0 blocks for Q8_0/Q5_0, Q8_K for
// Q4_K/Q6_K, float32 for F32/F16/BF16. acc != 0 adds into y (a residual).

#define MATVEC_PROLOGUE                                                         \
    int row = (blockIdx.x * blockDim.x + threadIdx.x) / WARP;                   \
    int lane = threadIdx.x % WARP;                                              \
    if (row >= rows) return;                                                    \
    const u8* w = W + (i64)row * rowBytes;

#define MATVEC_EPILOGUE                                                         \
    sum = warp_sum(sum);                                                        \
    if (lane == 0) {                                                            \
        if (bias) sum += bias[row];                                             \
        y[row] = acc ? y[row] + sum : sum;                                      \
    }

// ordered_add adds the per-block terms of one pass of a 32-element-block
// matvec (held by lanes 0, 4, ..., 28 for blocks base/4 ...) to lane 0's
// sum one block after the other, as the CPU's scalar kernels do: the result
// is bit-identical to quant.VecDot.
__device__ __forceinline__ float ordered_add(float sum, float term, int base, int units) {
    int lane = threadIdx.x % WARP;
#pragma unroll
    for (int g = 0; g < 8; g++) {
        float t = __shfl_sync(FULL, term, 4 * g);
        if (lane == 0 && base + 4 * g < units) sum = __fadd_rn(sum, t);
    }
    return sum;
}

// Q8_0 weights: 34-byte blocks; four lanes share a block, 8 quants each.
extern "C" __global__ void matvec_q8_0(const u8* __restrict__ W, const u8* __restrict__ act,
                                       float* __restrict__ y, const float* __restrict__ bias,
                                       int rows, int cols, i64 rowBytes, int acc) {
    MATVEC_PROLOGUE
    int units = cols / 32 * 4;
    float sum = 0.0f;
    for (int base = 0; base < units; base += WARP) {
        int u = base + lane;
        int s = 0;
        int b = u >> 2, p = u & 3;
        if (u < units) {
            const u8* wb = w + b * 34 + 2 + 8 * p;
            const u8* ab = act + b * 34 + 2 + 8 * p;
            s = __dp4a(ld32u(wb), ld32u(ab), s);
            s = __dp4a(ld32u(wb + 4), ld32u(ab + 4), s);
        }
        s += __shfl_xor_sync(FULL, s, 1);
        s += __shfl_xor_sync(FULL, s, 2);
        float term = 0.0f;
        if (u < units && p == 0) {
            float d = __fmul_rn(h2f(ld16(w + b * 34)), h2f(ld16(act + b * 34)));
            term = __fmul_rn((float)s, d);
        }
        sum = ordered_add(sum, term, base, units);
    }
    MATVEC_EPILOGUE
}

// Q5_0 weights: 22-byte blocks (f16 d, u32 high bits, 16 bytes of nibbles);
// four lanes share a block, each 4 bytes of nibbles = 8 quants.
extern "C" __global__ void matvec_q5_0(const u8* __restrict__ W, const u8* __restrict__ act,
                                       float* __restrict__ y, const float* __restrict__ bias,
                                       int rows, int cols, i64 rowBytes, int acc) {
    MATVEC_PROLOGUE
    int units = cols / 32 * 4;
    float sum = 0.0f;
    for (int base = 0; base < units; base += WARP) {
        int u = base + lane;
        int s = 0;
        int b = u >> 2, p = u & 3;
        if (u < units) {
            const u8* wb = w + b * 22;
            u32 qh = (u32)ld32u(wb + 2);
            u32 qs = (u32)ld32u(wb + 6 + 4 * p);
            u32 lo = 0, hi = 0;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                int j = 4 * p + k;
                u32 byte = (qs >> (8 * k)) & 0xff;
                int q0 = (int)((byte & 0x0f) | (((qh >> j) & 1) << 4)) - 16;
                int q1 = (int)((byte >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
                lo |= ((u32)(u8)(i8)q0) << (8 * k);
                hi |= ((u32)(u8)(i8)q1) << (8 * k);
            }
            const u8* ab = act + b * 34 + 2;
            s = __dp4a((int)lo, ld32u(ab + 4 * p), s);
            s = __dp4a((int)hi, ld32u(ab + 16 + 4 * p), s);
        }
        s += __shfl_xor_sync(FULL, s, 1);
        s += __shfl_xor_sync(FULL, s, 2);
        float term = 0.0f;
        if (u < units && p == 0) {
            float d = __fmul_rn(h2f(ld16(w + b * 22)), h2f(ld16(act + b * 34)));
            term = __fmul_rn(d, (float)s);
        }
        sum = ordered_add(sum, term, base, units);
    }
    MATVEC_EPILOGUE
}

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

// Q4_K weights: 144-byte super-blocks of 256 (f16 d, f16 dmin, 12 bytes of
// 6-bit scales and mins, 128 bytes of nibbles). The whole warp takes one
// super-block: lane = 8*j + part reads 4 bytes of chunk j (low nibbles are
// elements 64j+4part.., high nibbles 64j+32+4part..).
extern "C" __global__ void matvec_q4_k(const u8* __restrict__ W, const u8* __restrict__ act,
                                       float* __restrict__ y, const float* __restrict__ bias,
                                       int rows, int cols, i64 rowBytes, int acc) {
    MATVEC_PROLOGUE
    int nb = cols / 256;
    int j = lane >> 3, part = lane & 7;
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        const u8* wb = w + b * 144;
        const u8* ab = act + (i64)b * 292;
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * j, wb + 4, &sc0, &m0);
        scale_min_k4(2 * j + 1, wb + 4, &sc1, &m1);
        u32 q = (u32)ld32(wb + 16 + 32 * j + 4 * part);
        int s0 = __dp4a((int)(q & 0x0f0f0f0f), ld32(ab + 4 + 64 * j + 4 * part), 0);
        int s1 = __dp4a((int)((q >> 4) & 0x0f0f0f0f), ld32(ab + 4 + 64 * j + 32 + 4 * part), 0);
        int isum = sc0 * s0 + sc1 * s1;
        int summs = 0;
        if (lane < 16) {
            int sc, m;
            scale_min_k4(lane / 2, wb + 4, &sc, &m);
            summs = (int)*(const short*)(ab + 260 + 2 * lane) * m;
        }
        isum = warp_isum(isum);
        summs = warp_isum(summs);
        if (lane == 0) {
            float yd = *(const float*)ab;
            float d = __fmul_rn(h2f(ld16(wb)), yd);
            float dmin = __fmul_rn(h2f(ld16(wb + 2)), yd);
            sum += __fsub_rn(__fmul_rn(d, (float)isum), __fmul_rn(dmin, (float)summs));
        }
    }
    MATVEC_EPILOGUE
}

// Q6_K weights: 210-byte super-blocks (128 bytes low 4 bits, 64 bytes high
// 2 bits, 16 int8 scales, f16 d). Lane = 16*half + i handles l = 2i, 2i+1
// of its half: elements l, l+32, l+64, l+96 of the half's 128.
extern "C" __global__ void matvec_q6_k(const u8* __restrict__ W, const u8* __restrict__ act,
                                       float* __restrict__ y, const float* __restrict__ bias,
                                       int rows, int cols, i64 rowBytes, int acc) {
    MATVEC_PROLOGUE
    int nb = cols / 256;
    int half = lane >> 4, l0 = (lane & 15) * 2;
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        const u8* wb = w + b * 210;
        const u8* ql = wb + 64 * half;
        const u8* qh = wb + 128 + 32 * half;
        const i8* scales = (const i8*)(wb + 192);
        const i8* a8 = (const i8*)(act + (i64)b * 292 + 4) + 128 * half;
        int isum = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            int s = 0;
#pragma unroll
            for (int t = 0; t < 2; t++) {
                int l = l0 + t;
                int hb = qh[l];
                int q;
                switch (k) {
                    case 0: q = (ql[l] & 0x0f) | (((hb >> 0) & 3) << 4); break;
                    case 1: q = (ql[l + 32] & 0x0f) | (((hb >> 2) & 3) << 4); break;
                    case 2: q = (ql[l] >> 4) | (((hb >> 4) & 3) << 4); break;
                    default: q = (ql[l + 32] >> 4) | (((hb >> 6) & 3) << 4); break;
                }
                s += (q - 32) * (int)a8[l + 32 * k];
            }
            isum += (int)scales[(128 * half + 32 * k + l0) / 16] * s;
        }
        isum = warp_isum(isum);
        if (lane == 0) {
            float yd = *(const float*)(act + (i64)b * 292);
            sum += __fmul_rn(__fmul_rn(h2f(ld16(wb + 208)), yd), (float)isum);
        }
    }
    MATVEC_EPILOGUE
}

// Float weights with a float32 activation: each lane takes pairs of columns
// (cols is even; rows start 4-byte aligned).
extern "C" __global__ void matvec_f32(const u8* __restrict__ W, const u8* __restrict__ act,
                                      float* __restrict__ y, const float* __restrict__ bias,
                                      int rows, int cols, i64 rowBytes, int acc) {
    MATVEC_PROLOGUE
    const float* x = (const float*)act;
    const float* wr = (const float*)w;
    float sum = 0.0f;
    for (int i = lane; i < cols; i += WARP) sum += wr[i] * x[i];
    MATVEC_EPILOGUE
}

extern "C" __global__ void matvec_f16(const u8* __restrict__ W, const u8* __restrict__ act,
                                      float* __restrict__ y, const float* __restrict__ bias,
                                      int rows, int cols, i64 rowBytes, int acc) {
    MATVEC_PROLOGUE
    const float2* x = (const float2*)act;
    const u32* wr = (const u32*)w;
    float sum = 0.0f;
    for (int i = lane; i < cols / 2; i += WARP) {
        u32 p = wr[i];
        float2 xv = x[i];
        sum += h2f((u16)(p & 0xffff)) * xv.x + h2f((u16)(p >> 16)) * xv.y;
    }
    MATVEC_EPILOGUE
}

extern "C" __global__ void matvec_bf16(const u8* __restrict__ W, const u8* __restrict__ act,
                                       float* __restrict__ y, const float* __restrict__ bias,
                                       int rows, int cols, i64 rowBytes, int acc) {
    MATVEC_PROLOGUE
    const float2* x = (const float2*)act;
    const u32* wr = (const u32*)w;
    float sum = 0.0f;
    for (int i = lane; i < cols / 2; i += WARP) {
        u32 p = wr[i];
        float2 xv = x[i];
        sum += __uint_as_float(p << 16) * xv.x + __uint_as_float(p & 0xffff0000u) * xv.y;
    }
    MATVEC_EPILOGUE
}

// ------------------------------------------------------ embedding rows

// Every get_row kernel writes row `row` of W (cols values) as float32; a
// non-null rowp holds the row instead (the token id of a captured graph).

extern "C" __global__ void get_row_f32(const u8* __restrict__ W, float* __restrict__ out, const int* __restrict__ rowp, int row, int cols, i64 rowBytes) {
    if (rowp) row = *rowp;
    const float* w = (const float*)(W + (i64)row * rowBytes);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) out[i] = w[i];
}

extern "C" __global__ void get_row_f16(const u8* __restrict__ W, float* __restrict__ out, const int* __restrict__ rowp, int row, int cols, i64 rowBytes) {
    if (rowp) row = *rowp;
    const u16* w = (const u16*)(W + (i64)row * rowBytes);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) out[i] = h2f(w[i]);
}

extern "C" __global__ void get_row_bf16(const u8* __restrict__ W, float* __restrict__ out, const int* __restrict__ rowp, int row, int cols, i64 rowBytes) {
    if (rowp) row = *rowp;
    const u16* w = (const u16*)(W + (i64)row * rowBytes);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) out[i] = bf2f(w[i]);
}

extern "C" __global__ void get_row_q8_0(const u8* __restrict__ W, float* __restrict__ out, const int* __restrict__ rowp, int row, int cols, i64 rowBytes) {
    if (rowp) row = *rowp;
    const u8* w = W + (i64)row * rowBytes;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) {
        const u8* b = w + (i / 32) * 34;
        out[i] = (float)(i8)b[2 + i % 32] * h2f(ld16(b));
    }
}

// ------------------------------------------------------- normalisation

// rmsnorm writes w * (x / rms(x)) for one row of n values: one block.
extern "C" __global__ void rmsnorm(const float* __restrict__ x, const float* __restrict__ w,
                                   float* __restrict__ out, int n, float eps) {
    // The sum of squares runs in one thread in element order, as the CPU
    // backend's loop does, so that both round alike (activation
    // quantization turns one-ulp differences into different quants).
    __shared__ float total;
    if (threadIdx.x == 0) {
        float ss = 0.0f;
        for (int i = 0; i < n; i++) ss = __fadd_rn(ss, __fmul_rn(x[i], x[i]));
        total = ss;
    }
    __syncthreads();
    float ss = total;
    float scale = (float)(1.0 / sqrt((double)(ss / (float)n + eps)));
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = __fmul_rn(w[i], __fmul_rn(x[i], scale));
}

// rmsnorm_ggml is ggml_compute_forward_rms_norm_f32 fused with the weight
// multiply, as the CPU backend's RMSNormGGML runs it (GGUF models): the
// squares are float32, summed in double in element order (one thread);
// mean and scale are float32; y = x*scale*w.
extern "C" __global__ void rmsnorm_ggml(const float* __restrict__ x, const float* __restrict__ w,
                                        float* __restrict__ out, int n, float eps) {
    __shared__ float scl;
    if (threadIdx.x == 0) {
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum = __dadd_rn(sum, (double)__fmul_rn(x[i], x[i]));
        float mean = (float)__ddiv_rn(sum, (double)n);
        scl = __fdiv_rn(1.0f, (float)sqrt((double)__fadd_rn(mean, eps)));
    }
    __syncthreads();
    float scale = scl;
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = __fmul_rn(__fmul_rn(x[i], scale), w[i]);
}

// ---------------------------------------------------------------- RoPE

// rope rotates pairs (i, i+dim/2) of every head of v (heads x dim) at
// position pos. style 0 (transformers): angle = pos * invFreq[i]; style 1
// (ggml): angle = pos * thetaScale^i by repeated float32 products. Sine and
// cosine in double, rounded, as the CPU backend does. A non-null posp holds
// the position instead of pos.
extern "C" __global__ void rope(float* __restrict__ v, const float* __restrict__ invFreq, int heads, int dim,
                                const int* __restrict__ posp, int pos, float thetaScale, int style) {
    if (posp) pos = *posp;
    int half = dim / 2;
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= heads * half) return;
    int h = t / half, i = t % half;
    float ang;
    if (style == 0) {
        ang = __fmul_rn((float)pos, invFreq[i]);
    } else {
        ang = (float)pos;
        for (int k = 0; k < i; k++) ang = __fmul_rn(ang, thetaScale);
    }
    float c = (float)cos((double)ang), s = (float)sin((double)ang);
    float* p = v + h * dim;
    float a = p[i], b = p[i + half];
    p[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    p[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

// ------------------------------------------------------------ KV cache

// kv_store writes keys and values (dim floats each) at position pos of a
// layer's cache, as F16 (f16 != 0) or float32; a non-null posp holds the
// position.
extern "C" __global__ void kv_store(const float* __restrict__ k, const float* __restrict__ v,
                                    u8* __restrict__ kc, u8* __restrict__ vc, const int* __restrict__ posp, int pos,
                                    int dim, int f16) {
    if (posp) pos = *posp;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= dim) return;
    i64 off = (i64)pos * dim + i;
    if (f16) {
        ((u16*)kc)[off] = f2h(k[i]);
        ((u16*)vc)[off] = f2h(v[i]);
    } else {
        ((float*)kc)[off] = k[i];
        ((float*)vc)[off] = v[i];
    }
}

// ----------------------------------------------------------- attention

// attention is causal grouped-query attention of one token at position
// n-1 over cache positions 0..n-1: one block per query head. scores is
// scratch of heads x ctx floats. Every sum runs in the order of the CPU
// backend's loops (four partial sums for F16 rows, eight for float32, the
// softmax denominator and each output element over positions in order), so
// that GPU and CPU round alike. With an F16 cache the query is rounded to
// F16 first, as ggml does. A non-null posp holds the token's position
// (n = *posp + 1).
extern "C" __global__ void attention(const float* __restrict__ q, const u8* __restrict__ kc,
                                     const u8* __restrict__ vc, float* __restrict__ out,
                                     float* __restrict__ scores, int heads, int kvHeads, int dim,
                                     const int* __restrict__ posp, int n, int ctx, float scale, int f16) {
    if (posp) n = *posp + 1;
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
    return (float)ldexp((double)j, (int)n);
}

// dot_f16_ggml is ggml_vec_dot_f16 as the CPU backend's dotF16GGML runs
// it: for dim a multiple of 64, four 16-lane accumulators of fused
// multiply-adds, reduced (a0+a2)+(a1+a3), then halves added pairwise
// (_mm512_reduce_add_ps); otherwise one fused sum in order.
__device__ __forceinline__ float dot_f16_ggml(const u16* __restrict__ k, const float* __restrict__ q, int dim) {
    if (dim % 64 != 0) {
        float s = 0.0f;
        for (int i = 0; i < dim; i++) s = __fmaf_rn(h2f(k[i]), q[i], s);
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
                a[j][l] = __fmaf_rn(h2f(k[e]), q[e], a[j][l]);
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

// attention_fa is ggml's CPU flash attention for one query row over an F16
// cache, as the CPU backend's FlashAttentionGGML computes it: one block per
// query head. ggml picks the kernel by the rows of the pass: below 64 rows
// (rows, or *rowsp when not null) the F16 one-chunk kernel, from 64 on the
// float32 tiled one. A non-null posp holds the token's position.
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
// head dimension with the float32 query; per tile thread 0 takes the
// maximum, rescales, and sums ggml_expf(s - M) in 16-lane trees added in
// double; the float32 accumulator takes the tile's keys by fused
// multiply-adds in order.
extern "C" __global__ void attention_fa(const float* __restrict__ q, const u8* __restrict__ kc,
                                        const u8* __restrict__ vc, float* __restrict__ out,
                                        float* __restrict__ scores, int heads, int kvHeads, int dim,
                                        const int* __restrict__ posp, int n, int ctx, float scale,
                                        const int* __restrict__ rowsp, int rows) {
    if (posp) n = *posp + 1;
    if (rowsp) rows = *rowsp;
    extern __shared__ float qs[];  // dim floats (+ dim accumulators and 64 scores when tiled)
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
        for (int ic = 0; ic < n; ic += 64) {
            int nk = min(64, n - ic);
            for (int tk = threadIdx.x; tk < 64; tk += blockDim.x) {
                float s = ninf;
                if (tk < nk) {
                    const u16* kr = (const u16*)kc + (i64)(ic + tk) * kvStride + off;
                    s = 0.0f;
                    for (int d = 0; d < dim; d++) s = __fmaf_rn(qs[d], h2f(kr[d]), s);
                    s = __fmul_rn(s, scale);
                }
                kq[tk] = s;
            }
            __syncthreads();
            if (threadIdx.x == 0) {
                float M = tms, S = total;
                float tileMax = ninf;
                for (int tk = 0; tk < 64; tk++) tileMax = fmaxf(tileMax, kq[tk]);
                int flag = 0;  // 0: skip the tile, 1: add, 2: rescale and add
                if (tileMax != ninf) {
                    flag = 1;
                    float Mnew = fmaxf(M, tileMax);
                    if (Mnew > M) {
                        ms = (float)exp((double)__fsub_rn(M, Mnew));
                        S = __fmul_rn(S, ms);
                        flag = 2;
                    }
                    M = Mnew;
                    double sum = 0.0;
                    for (int l0 = 0; l0 < 64; l0 += 16) {
                        float v[16];
                        for (int l = 0; l < 16; l++) {
                            float e = ggml_expf(__fsub_rn(kq[l0 + l], M));
                            kq[l0 + l] = e;
                            v[l] = e;
                        }
                        for (int w = 8; w >= 1; w /= 2)
                            for (int l = 0; l < w; l++) v[l] = __fadd_rn(v[l], v[l + w]);
                        sum = __dadd_rn(sum, (double)v[0]);
                    }
                    S = (float)__dadd_rn((double)S, sum);
                }
                tms = M;
                total = S;
                tflag = flag;
            }
            __syncthreads();
            int flag = tflag;
            if (flag != 0) {
                float m = ms;
                for (int i = threadIdx.x; i < dim; i += blockDim.x) {
                    float a = acc[i];
                    if (flag == 2) a = __fmul_rn(a, m);
                    const u16* vr = (const u16*)vc + (i64)ic * kvStride + off + i;
                    for (int tk = 0; tk < nk; tk++) a = __fmaf_rn(kq[tk], h2f(vr[(i64)tk * kvStride]), a);
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
    float* sc = scores + (i64)h * ctx;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) qs[i] = h2f(f2h(q[h * dim + i]));
    __syncthreads();
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const u16* kr = (const u16*)kc + (i64)j * kvStride + off;
        sc[j] = __fmul_rn(dot_f16_ggml(kr, qs, dim), scale);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float S = 0.0f, M = __uint_as_float(0xff800000u);
        for (int j = 0; j < n; j++) {
            float s = sc[j];
            float ms = 1.0f, vs = 1.0f;
            if (s > M) {
                float Mold = M;
                M = s;
                ms = (float)exp((double)__fsub_rn(Mold, M));
                sc[j] = -ms;
            } else {
                vs = (float)exp((double)__fsub_rn(s, M));
                sc[j] = vs;
            }
            S = __fadd_rn(__fmul_rn(S, ms), vs);
        }
        total = S;
    }
    __syncthreads();
    float S = total;
    float inv = S != 0.0f ? __fdiv_rn(1.0f, S) : 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const u16* vr = (const u16*)vc + off + i;
        u16 acc = 0;
        for (int j = 0; j < n; j++) {
            float w = sc[j];
            float vs = w;
            if (__float_as_uint(w) >> 31) {
                acc = f2h(__fmul_rn(h2f(acc), -w));
                vs = 1.0f;
            }
            acc = f2h(__fmaf_rn(h2f(vr[(i64)j * kvStride]), vs, h2f(acc)));
        }
        out[h * dim + i] = __fmul_rn(h2f(acc), inv);
    }
}

// ------------------------------------------------------ pointwise ops

// silu_mul sets g = silu(g) * u.
extern "C" __global__ void silu_mul(float* __restrict__ g, const float* __restrict__ u, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = g[i];
    float e = (float)exp((double)-x);
    g[i] = __fmul_rn(x / (1.0f + e), u[i]);
}

// silu_mul_ggml sets g = silu(g) * u as ggml_vec_swiglu_f32 (the CPU
// backend's SiLUMulGGML): g / (1 + ggml_expf(-g)) * u.
extern "C" __global__ void silu_mul_ggml(float* __restrict__ g, const float* __restrict__ u, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = g[i];
    g[i] = __fmul_rn(__fdiv_rn(x, __fadd_rn(1.0f, ggml_expf(-x))), u[i]);
}

// add sets x += y.
extern "C" __global__ void add(float* __restrict__ x, const float* __restrict__ y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

// argmax writes the index of the largest of n values (the first on ties)
// to out[0]: one block.
extern "C" __global__ void argmax(const float* __restrict__ x, int n, int* __restrict__ out) {
    __shared__ float bv[32];
    __shared__ int bi[32];
    float best = -3.402823466e38f;
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = x[i];
        if (v > best) { best = v; idx = i; }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(FULL, best, o);
        int i2 = __shfl_xor_sync(FULL, idx, o);
        if (v2 > best || (v2 == best && i2 < idx)) { best = v2; idx = i2; }
    }
    int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
    if (lane == 0) { bv[w] = best; bi[w] = idx; }
    __syncthreads();
    if (w == 0) {
        best = lane < nw ? bv[lane] : -3.402823466e38f;
        idx = lane < nw ? bi[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            float v2 = __shfl_xor_sync(FULL, best, o);
            int i2 = __shfl_xor_sync(FULL, idx, o);
            if (v2 > best || (v2 == best && i2 < idx)) { best = v2; idx = i2; }
        }
        if (lane == 0) out[0] = idx;
    }
}
