// ------------------------------------------ operands of the cuBLAS products
//
// cublas.go multiplies float weights by passes of many float32 activation
// rows with cuBLAS GEMMs of 16-bit operands (BF16 or F16, as the weights):
// the activation x is split into hi = r(x) and lo = r(x - hi) (x - hi is
// exact in float32), so W.hi + W.lo misses only x's bits past the 16th
// significant one (BF16) or 22nd (F16), instead of the 9th or 12th that
// one rounding keeps. F16's range is narrow: lo is stored scaled by 2^11
// (its GEMM's alpha is 2^-11), which keeps it out of the subnormals for x
// down to ~2^-14.

__device__ __forceinline__ u16 f2bf(float f) {
    u16 h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// split_store writes the hi and lo parts of a[0..3] at hi + o and lo + o.
template <bool BF>
__device__ __forceinline__ void split_store(const float a[4], u16* __restrict__ hi, u16* __restrict__ lo, i64 o) {
    u16 h[4], l[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (BF) {
            h[i] = f2bf(a[i]);
            l[i] = f2bf(a[i] - bf2f(h[i]));
        } else {
            h[i] = f2h(a[i]);
            l[i] = f2h((a[i] - h2f(h[i])) * 2048.0f);
        }
    }
    *(uint2*)(hi + o) = make_uint2((u32)h[0] | ((u32)h[1] << 16), (u32)h[2] | ((u32)h[3] << 16));
    *(uint2*)(lo + o) = make_uint2((u32)l[0] | ((u32)l[1] << 16), (u32)l[2] | ((u32)l[3] << 16));
}

// blas_split_KIND writes the hi and lo parts of m rows of cols float32
// values (rows xStride floats apart; cols a multiple of 4, x and xStride
// 16-byte aligned) as m packed rows of cols 16-bit values each: grid
// (ceil(cols/1024), m), 256 threads, 4 values a thread.
template <bool BF>
__device__ __forceinline__ void blas_split(const float* __restrict__ x, i64 xStride, int cols,
                                           u16* __restrict__ hi, u16* __restrict__ lo) {
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (c >= cols) return;
    i64 r = blockIdx.y;
    float4 v = *(const float4*)(x + r * xStride + c);
    const float a[4] = {v.x, v.y, v.z, v.w};
    split_store<BF>(a, hi, lo, r * cols + c);
}

extern "C" __global__ void blas_split_bf16(const float* __restrict__ x, i64 xStride, int cols,
                                           u16* __restrict__ hi, u16* __restrict__ lo) {
    blas_split<true>(x, xStride, cols, hi, lo);
}

extern "C" __global__ void blas_split_f16(const float* __restrict__ x, i64 xStride, int cols,
                                          u16* __restrict__ hi, u16* __restrict__ lo) {
    blas_split<false>(x, xStride, cols, hi, lo);
}

// blas_silu_split_KIND is silu_quant without quantization (the same
// silu_mul of each gate and up value, written to out: m rows of n) that
// also writes the outputs' hi and lo parts as blas_split_KIND does, for
// the down product's GEMMs: grid (ceil(n/1024), m), 256 threads, 4 values
// a thread (n a multiple of 4; gu rows of 2n values).
template <bool BF>
__device__ __forceinline__ void blas_silu_split(const float* __restrict__ gu, float* __restrict__ out, int n,
                                                int ggml, u16* __restrict__ hi, u16* __restrict__ lo) {
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (c >= n) return;
    i64 r = blockIdx.y;
    float4 g = *(const float4*)(gu + r * 2 * n + c), u = *(const float4*)(gu + r * 2 * n + n + c);
    const float a[4] = {silu_mul(g.x, u.x, ggml), silu_mul(g.y, u.y, ggml), silu_mul(g.z, u.z, ggml),
                        silu_mul(g.w, u.w, ggml)};
    *(float4*)(out + r * n + c) = make_float4(a[0], a[1], a[2], a[3]);
    split_store<BF>(a, hi, lo, r * n + c);
}

extern "C" __global__ void blas_silu_split_bf16(const float* __restrict__ gu, float* __restrict__ out, int n,
                                                int ggml, u16* __restrict__ hi, u16* __restrict__ lo) {
    blas_silu_split<true>(gu, out, n, ggml, hi, lo);
}

extern "C" __global__ void blas_silu_split_f16(const float* __restrict__ gu, float* __restrict__ out, int n,
                                               int ggml, u16* __restrict__ hi, u16* __restrict__ lo) {
    blas_silu_split<false>(gu, out, n, ggml, hi, lo);
}

// blas_bias sets y = bias (acc: y += bias) for m rows of rows outputs (rows
// yStride floats apart), before the GEMMs add the products: grid
// (ceil(rows/256), m), 256 threads.
extern "C" __global__ void blas_bias(float* __restrict__ y, int yStride, const float* __restrict__ bias,
                                     int rows, int acc) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows) return;
    float* p = y + (i64)blockIdx.y * yStride + i;
    *p = acc ? *p + bias[i] : bias[i];
}
