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

// rmsnorm_split_KIND is rmsnorm without quantization (the same scale and
// values, written to out) that also writes the outputs' hi and lo parts as
// blas_split_KIND does, for the next product's GEMMs: one block per row
// (a multiple of 32 threads), n a multiple of 8, out 16-byte aligned; each
// thread takes 8 consecutive values at a time.
template <bool BF>
__device__ __forceinline__ void rmsnorm_split(const float* __restrict__ x, const float* __restrict__ w,
                                              float* __restrict__ out, int n, float eps, int ggml,
                                              const int* __restrict__ sel, u16* __restrict__ hi,
                                              u16* __restrict__ lo) {
    int r = blockIdx.x;
    const float* xr = x + (i64)(sel ? sel[r] : r) * n;
    float scale = rms_scale(xr, n, blockDim.x, eps, ggml);
    for (int e = 8 * threadIdx.x; e < n; e += 8 * blockDim.x) {
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = rms_value(xr[e + j], scale, w[e + j], ggml);
        i64 o = (i64)r * n + e;
        *(float4*)(out + o) = make_float4(v[0], v[1], v[2], v[3]);
        *(float4*)(out + o + 4) = make_float4(v[4], v[5], v[6], v[7]);
        split_store<BF>(v, hi, lo, o);
        split_store<BF>(v + 4, hi, lo, o + 4);
    }
}

extern "C" __global__ void rmsnorm_split_bf16(const float* __restrict__ x, const float* __restrict__ w,
                                              float* __restrict__ out, int n, float eps, int ggml,
                                              const int* __restrict__ sel, u16* __restrict__ hi,
                                              u16* __restrict__ lo) {
    rmsnorm_split<true>(x, w, out, n, eps, ggml, sel, hi, lo);
}

extern "C" __global__ void rmsnorm_split_f16(const float* __restrict__ x, const float* __restrict__ w,
                                             float* __restrict__ out, int n, float eps, int ggml,
                                             const int* __restrict__ sel, u16* __restrict__ hi,
                                             u16* __restrict__ lo) {
    rmsnorm_split<false>(x, w, out, n, eps, ggml, sel, hi, lo);
}

// blas_sum finishes a product run as one GEMM of the stacked hi and lo
// parts (cublas.go's stacked products): t holds 2m packed rows of rows
// floats, W.hi for the m rows of the pass, then W.lo for the same rows
// (scaled by 1/loScale, F16's 2^11); it sets y = W.hi + loScale W.lo (+
// bias) (acc: y += ...) for m rows of rows outputs (rows yStride floats
// apart): grid (ceil(rows/256), m), 256 threads.
extern "C" __global__ void blas_sum(const float* __restrict__ t, float* __restrict__ y, int yStride,
                                    const float* __restrict__ bias, int rows, int m, float loScale, int acc) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows) return;
    i64 r = blockIdx.y;
    float v = __fadd_rn(t[r * rows + i], __fmul_rn(loScale, t[(r + m) * rows + i]));
    if (bias) v = __fadd_rn(v, bias[i]);
    float* p = y + r * yStride + i;
    *p = acc ? __fadd_rn(*p, v) : v;
}
