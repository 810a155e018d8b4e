// ------------------------------------- one-row products of float weights
//
// y[r] (+)= W[r,:] · act (+ bias[r]) for one float32 activation row and
// F32, F16 or BF16 weights, at memory speed: a warp takes R (1, 2 or 4)
// weight rows that share its activation loads, MVF_WARPS warps a block;
// each lane reads 16-byte chunks of weights (8 f16/bf16 or 4 f32 elements:
// chunks lane, lane+32, ...) with MVF_UNROLL chunks of each row loaded
// before the first multiply, so that R x MVF_UNROLL 16-byte loads a lane
// are in flight; the activation is read as float4 (from L1). Each lane sums
// its chunks in order, then the warp's lanes by a tree (warp_sum). Rows,
// act and rowBytes are 16-byte aligned and cols a multiple of the chunk's
// elements (mvf.go checks); cols need not be a multiple of 32 chunks, nor
// rows of R. The kernels prefetch their block's weights into L2 and then
// pdl_start, as the quantized _mv kernels.

#define MVF_WARPS 4
#define MVF_UNROLL 4

// ldw16 reads 16 bytes of weights through the read-only path without
// keeping them in L1 (each weight byte is read once; L1 is left to act).
__device__ __forceinline__ uint4 ldw16(const u8* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

// fdot2 adds the two 16-bit floats of word p (KIND 1 f16, 2 bf16) times
// x0, x1 to s.
template <int KIND>
__device__ __forceinline__ float fdot2(u32 p, float x0, float x1, float s) {
    float w0, w1;
    if (KIND == 1) {
        w0 = h2f((u16)(p & 0xffff));
        w1 = h2f((u16)(p >> 16));
    } else {
        w0 = __uint_as_float(p << 16);
        w1 = __uint_as_float(p & 0xffff0000u);
    }
    return fmaf(w1, x1, fmaf(w0, x0, s));
}

// fdot16 adds the dot of a 16-byte weight chunk w (KIND 0 f32, 1 f16, 2
// bf16) with its activation elements x (4 or 8 floats) to s.
template <int KIND>
__device__ __forceinline__ float fdot16(uint4 w, const float4* x, float s) {
    if (KIND == 0) {
        float4 a = x[0];
        s = fmaf(__uint_as_float(w.x), a.x, s);
        s = fmaf(__uint_as_float(w.y), a.y, s);
        s = fmaf(__uint_as_float(w.z), a.z, s);
        return fmaf(__uint_as_float(w.w), a.w, s);
    }
    float4 a = x[0], b = x[1];
    s = fdot2<KIND>(w.x, a.x, a.y, s);
    s = fdot2<KIND>(w.y, a.z, a.w, s);
    s = fdot2<KIND>(w.z, b.x, b.y, s);
    return fdot2<KIND>(w.w, b.z, b.w, s);
}

template <int KIND, int R>
__device__ __forceinline__ void matvec_f(const u8* __restrict__ W, const float* __restrict__ act,
                                         float* __restrict__ y, const float* __restrict__ bias, int rows,
                                         int cols, i64 rowBytes, int acc) {
    const int E = KIND == 0 ? 4 : 8;  // elements a chunk
    int lane = threadIdx.x % WARP;
    int r0 = (blockIdx.x * MVF_WARPS + threadIdx.x / WARP) * R;
    if (r0 >= rows) return;  // whole warps
    int nr = min(R, rows - r0);
    int nch = cols / E;
    const u8* w[R];
#pragma unroll
    for (int r = 0; r < R; r++) w[r] = W + (i64)(r0 + min(r, nr - 1)) * rowBytes;
    const float4* x = (const float4*)act;
    float s[R];
#pragma unroll
    for (int r = 0; r < R; r++) s[r] = 0.0f;
    for (int k0 = lane; k0 < nch; k0 += MVF_UNROLL * WARP) {
        uint4 wv[MVF_UNROLL][R];
#pragma unroll
        for (int u = 0; u < MVF_UNROLL; u++) {
            int k = k0 + u * WARP;
            if (k < nch) {
#pragma unroll
                for (int r = 0; r < R; r++) wv[u][r] = ldw16(w[r] + (i64)k * 16);
            }
        }
#pragma unroll
        for (int u = 0; u < MVF_UNROLL; u++) {
            int k = k0 + u * WARP;
            if (k < nch) {
                const float4* xk = x + k * (E / 4);
#pragma unroll
                for (int r = 0; r < R; r++) s[r] = fdot16<KIND>(wv[u][r], xk, s[r]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        float v = warp_sum(s[r]);
        if (lane == 0 && r < nr) {
            int row = r0 + r;
            if (bias) v += bias[row];
            y[row] = acc ? y[row] + v : v;
        }
    }
}

// The mvf_T kernels take rw (1, 2 or 4): the weight rows a warp.
#define MVF(name, KIND)                                                                            \
    extern "C" __global__ void name(const u8* __restrict__ W, const float* __restrict__ act,      \
                                    float* __restrict__ y, const float* __restrict__ bias, int rows, \
                                    int cols, i64 rowBytes, int acc, int rw) {                     \
        int rpb = MVF_WARPS * rw;                                                                  \
        prefetch_rows(W, rows, rowBytes, rpb, blockIdx.x);                                         \
        pdl_start();                                                                               \
        if (rw == 4)                                                                               \
            matvec_f<KIND, 4>(W, act, y, bias, rows, cols, rowBytes, acc);                         \
        else if (rw == 2)                                                                          \
            matvec_f<KIND, 2>(W, act, y, bias, rows, cols, rowBytes, acc);                         \
        else                                                                                       \
            matvec_f<KIND, 1>(W, act, y, bias, rows, cols, rowBytes, acc);                         \
    }

MVF(mvf_f32, 0)
MVF(mvf_f16, 1)
MVF(mvf_bf16, 2)
