// ------------------------------- tensor-core products of float weights (MMF)
//
// For passes of 16 rows or more with F32, F16 or BF16 weights and float32
// activations: TF32 tensor-core products (mma.sync m16n8k8) with the
// accuracy of FP32 FMAs, not of TF32. BF16 and F16 values are exact in TF32
// (8 or 11 significant bits, TF32 has 11), so a weight is one operand, and
// the activation x is split into hi = tf32(x) and lo = tf32(x - hi) (x - hi
// is exact): W·hi + W·lo misses only x's last ~2 bits ("2xTF32"). F32
// weights are split the same way and multiplied as Wh·xh + Wh·xl + Wl·xh
// ("3xTF32"). The tensor cores accumulate in FP32 but truncate, an error of
// one sign that would grow with the row's length (~1e-4 of the output's
// scale at 4864 columns), so each 128 columns' products go to a fresh
// accumulator that is then added, rounding to nearest, to the output's sum
// (~1e-6 of the scale at any length: FP32's accuracy). The order of the sum
// differs from matmul_f's, so results differ from it (and from quant's float
// dots) by rounding only, not bit for bit.
//
// A block of 4 warps (2 x 2) computes 64 weight rows x BN = 16*WN activation
// rows, a warp 32 x 8*WN (2 x WN tiles of m16n8). Each step of 32 columns
// is copied from global memory to shared memory (weights in their stored
// encoding, activations as float32) with 16-byte loads, double-buffered:
// the next step's loads are in flight while the tensor cores work on this
// one. Shared memory holds each 16-column half of a step as [rows][16], so
// that thread (g = lane/4, t = lane%4) reads the four consecutive columns
// 4t..4t+3 of its rows in one load, bank-conflict free. The columns of an
// mma's k8 are permuted alike for both operands (k slot t is column 4t+2s,
// slot t+4 is 4t+2s+1, for k8 step s = 0, 1 of the half), which leaves the
// products unchanged.
//
// Contract (MM_PARAMS, as matmul_f): cols a multiple of 32; weight rows
// (rowBytes apart), the activation rows (actStride bytes apart) and both
// base pointers 16-byte aligned. Rows past the end of either operand read
// the last one and write nothing.

#define MMF_BK 32
#define MMF_FLUSH 4  // steps of MMF_BK columns between adds of the mma accumulators

__device__ __forceinline__ void mma_tf32(float c[4], const u32 a[4], const u32 b[2]) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// tf32 rounds x to TF32 (to nearest, ties away: cvt.rna), as the bits of a
// float32 whose low 13 bits are zero.
__device__ __forceinline__ u32 tf32(float x) {
    u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

// split4 splits four floats into TF32 hi and lo parts.
__device__ __forceinline__ void split4(const float4& x, u32 hi[4], u32 lo[4]) {
    const float v[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        hi[i] = tf32(v[i]);
        lo[i] = tf32(v[i] - __uint_as_float(hi[i]));
    }
}

// MMFW describes a float weight encoding KIND (0 f32, 1 f16, 2 bf16): ES
// bytes an element; load4 reads four consecutive elements from shared
// memory as float32 (exact).
template <int KIND>
struct MMFW {
    static const int ES = KIND == 0 ? 4 : 2;
    static __device__ __forceinline__ void load4(const u8* p, float v[4]) {
        if (KIND == 0) {
            float4 x = *(const float4*)p;
            v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
            return;
        }
        uint2 x = *(const uint2*)p;
        if (KIND == 1) {
            v[0] = h2f((u16)(x.x & 0xffff)), v[1] = h2f((u16)(x.x >> 16));
            v[2] = h2f((u16)(x.y & 0xffff)), v[3] = h2f((u16)(x.y >> 16));
            return;
        }
        v[0] = __uint_as_float(x.x << 16), v[1] = __uint_as_float(x.x & 0xffff0000u);
        v[2] = __uint_as_float(x.y << 16), v[3] = __uint_as_float(x.y & 0xffff0000u);
    }
};

// MMFTile is one block's shape and shared-memory layout: BM = 64 weight
// rows of ES-byte elements, BN = 16*WN activation rows of floats, per stage.
template <int KIND, int WN>
struct MMFTile {
    static const int ES = MMFW<KIND>::ES;
    static const int WM = 2, BM = 32 * WM, BN = 16 * WN;
    static const int WBYTES = BM * MMF_BK * ES, XBYTES = BN * MMF_BK * 4, STAGE = WBYTES + XBYTES;
    static const int WCHUNKS = WBYTES / 16 / 128, XCHUNKS = XBYTES / 16 / 128;  // 16-byte loads a thread
    // off is the byte offset in a stage's part of element k (0..31) of row
    // r, for rows of es bytes an element and nrows rows.
    static __device__ __forceinline__ int off(int r, int k, int es, int nrows) {
        return ((k / 16) * nrows + r) * 16 * es + (k % 16) * es;
    }
};

// mmf is matmul's contract (MM_PARAMS) for a grid of (rows/64, m/BN)
// blocks of 128 threads.
template <int KIND, int WN>
__device__ __forceinline__ void mmf(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                    float* __restrict__ y, int yStride, const float* __restrict__ bias,
                                    int rows, int cols, i64 rowBytes, int acc, int m) {
    typedef MMFTile<KIND, WN> T;
    const int WM = T::WM;
    typedef MMFW<KIND> E;
    __shared__ __align__(16) u8 sm[2][T::STAGE];
    int tid = threadIdx.x, warp = tid / WARP, lane = tid % WARP;
    int g = lane / 4, t = lane % 4;
    int m0 = blockIdx.x * T::BM, n0 = blockIdx.y * T::BN;
    int wm0 = (warp & 1) * 16 * WM, wn0 = (warp >> 1) * 8 * WN;

    // This thread's 16-byte chunks of a step: source rows and shared offsets.
    const u8* wsrc[T::WCHUNKS];
    int wdst[T::WCHUNKS];
    const int wper = MMF_BK * T::ES / 16;  // chunks a weight row
#pragma unroll
    for (int i = 0; i < T::WCHUNKS; i++) {
        int c = tid + 128 * i, r = c / wper, k = (c % wper) * (16 / T::ES);
        wsrc[i] = W + (i64)min(rows - 1, m0 + r) * rowBytes + (i64)k * T::ES;
        wdst[i] = T::off(r, k, T::ES, T::BM);
    }
    const u8* xsrc[T::XCHUNKS];
    int xdst[T::XCHUNKS];
#pragma unroll
    for (int i = 0; i < T::XCHUNKS; i++) {
        int c = tid + 128 * i, r = c / 8, k = (c % 8) * 4;  // 8 chunks a row
        xsrc[i] = act + (i64)min(m - 1, n0 + r) * actStride + (i64)k * 4;
        xdst[i] = T::WBYTES + T::off(r, k, 4, T::BN);
    }

    float sum[WM][WN][4], part[WM][WN][4];  // sum: rounded adds of part, the mma accumulators
#pragma unroll
    for (int mt = 0; mt < WM; mt++)
#pragma unroll
        for (int nt = 0; nt < WN; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) sum[mt][nt][i] = part[mt][nt][i] = 0.0f;

    int4 wr[T::WCHUNKS], xr[T::XCHUNKS];
    int nk = cols / MMF_BK;
#pragma unroll
    for (int i = 0; i < T::WCHUNKS; i++) wr[i] = *(const int4*)wsrc[i];
#pragma unroll
    for (int i = 0; i < T::XCHUNKS; i++) xr[i] = *(const int4*)xsrc[i];
#pragma unroll
    for (int i = 0; i < T::WCHUNKS; i++) *(int4*)(sm[0] + wdst[i]) = wr[i];
#pragma unroll
    for (int i = 0; i < T::XCHUNKS; i++) *(int4*)(sm[0] + xdst[i]) = xr[i];
    __syncthreads();

    for (int kt = 0; kt < nk; kt++) {
        bool more = kt + 1 < nk;
        if (more) {
            i64 kb = (i64)(kt + 1) * MMF_BK;
#pragma unroll
            for (int i = 0; i < T::WCHUNKS; i++) wr[i] = *(const int4*)(wsrc[i] + kb * T::ES);
#pragma unroll
            for (int i = 0; i < T::XCHUNKS; i++) xr[i] = *(const int4*)(xsrc[i] + kb * 4);
        }
        const u8* s = sm[kt & 1];
#pragma unroll
        for (int half = 0; half < 2; half++) {
            int k = 16 * half + 4 * t;
            u32 xh[WN][4], xl[WN][4];
#pragma unroll
            for (int nt = 0; nt < WN; nt++)
                split4(*(const float4*)(s + T::WBYTES + T::off(wn0 + 8 * nt + g, k, 4, T::BN)), xh[nt], xl[nt]);
#pragma unroll
            for (int mt = 0; mt < WM; mt++) {
                float wv[2][4];
#pragma unroll
                for (int h = 0; h < 2; h++) E::load4(s + T::off(wm0 + 16 * mt + g + 8 * h, k, T::ES, T::BM), wv[h]);
#pragma unroll
                for (int st = 0; st < 2; st++) {
                    u32 a[4], al[4];
                    const float av[4] = {wv[0][2 * st], wv[1][2 * st], wv[0][2 * st + 1], wv[1][2 * st + 1]};
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        if (KIND == 0) {
                            a[i] = tf32(av[i]);
                            al[i] = tf32(av[i] - __uint_as_float(a[i]));
                        } else {
                            a[i] = __float_as_uint(av[i]);
                        }
                    }
#pragma unroll
                    for (int nt = 0; nt < WN; nt++) {
                        const u32 bh[2] = {xh[nt][2 * st], xh[nt][2 * st + 1]};
                        const u32 bl[2] = {xl[nt][2 * st], xl[nt][2 * st + 1]};
                        if (KIND == 0) mma_tf32(part[mt][nt], al, bh);
                        mma_tf32(part[mt][nt], a, bl);
                        mma_tf32(part[mt][nt], a, bh);
                    }
                }
            }
        }
        if (kt % MMF_FLUSH == MMF_FLUSH - 1 || !more) {
#pragma unroll
            for (int mt = 0; mt < WM; mt++)
#pragma unroll
                for (int nt = 0; nt < WN; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        sum[mt][nt][i] = __fadd_rn(sum[mt][nt][i], part[mt][nt][i]);
                        part[mt][nt][i] = 0.0f;
                    }
        }
        if (more) {
            u8* d = sm[(kt + 1) & 1];
#pragma unroll
            for (int i = 0; i < T::WCHUNKS; i++) *(int4*)(d + wdst[i]) = wr[i];
#pragma unroll
            for (int i = 0; i < T::XCHUNKS; i++) *(int4*)(d + xdst[i]) = xr[i];
        }
        __syncthreads();
    }

#pragma unroll
    for (int mt = 0; mt < WM; mt++)
#pragma unroll
        for (int nt = 0; nt < WN; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int row = m0 + wm0 + 16 * mt + g + 8 * (i >> 1), col = n0 + wn0 + 8 * nt + 2 * t + (i & 1);
                if (row >= rows || col >= m) continue;
                float v = sum[mt][nt][i];
                if (bias) v += bias[row];
                float* yp = y + (i64)col * yStride + row;
                *yp = acc ? *yp + v : v;
            }
}

// mmf_T_n64 and mmf_T_n32 take 64 or 32 activation rows a block (the Go
// side picks 32 when 64 would leave SMs idle).
#define MMF(name, KIND)                                                                            \
    extern "C" __global__ void __launch_bounds__(128) name##_n64(MM_PARAMS) { mmf<KIND, 4>(MM_ARGS); } \
    extern "C" __global__ void __launch_bounds__(128) name##_n32(MM_PARAMS) { mmf<KIND, 2>(MM_ARGS); }

MMF(mmf_f32, 0)
MMF(mmf_f16, 1)
MMF(mmf_bf16, 2)
