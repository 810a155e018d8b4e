// ------------------------- staged products of the 32-element block types (mmq32)
//
// Q8_0 (34-byte blocks), Q4_0 (18) and Q5_0 (22) against Q8_0 activations
// (34): every block size is 2 mod 4, so a block's data is only 2-byte
// aligned, but a chunk of 8 blocks (272, 144 or 176 bytes) is a multiple of
// 16. When the rows (weights and activations) start on V-byte boundaries
// (V = 16, 8 or 4: the launcher checks), a block of 128 threads copies
// each chunk of its 64 weight rows and 64 activation rows into shared
// memory with cp.async (V bytes a copy, two stages: the next chunk is in
// flight while the warps work on this one), the blocks' F16 scales are
// converted to float once per chunk, and the warps read their mma operands
// from shared memory: in a chunk that starts 16-byte aligned, block j's
// quants lie at 34j + 2 (18j + 2, 22j + 6), 4-byte aligned for odd j, 2
// mod 4 for even j (two aligned words funnel-shifted). The warps, tiles,
// integer dots, float terms (mq_term) and their order are mmq_direct's:
// the outputs are bit for bit the same. No copy or repacking of the
// weights is kept.

#define M32_LDA 272  // bytes a staged activation row: 8 Q8_0 blocks
#define M32_LDS 9    // floats a staged row of scales (8 blocks + 1: distinct banks)
// M32_NT is the 8-column tiles of a warp: 4 (warps of 32 x 32 outputs, 4
// a block) or 2 (32 x 16, 8 warps a block); M32_THREADS a block's threads.
#ifndef M32_NT
#define M32_NT 4
#endif
#define M32_THREADS (64 * 64 / (32 * 8 * M32_NT) * WARP)
#define M32_MAGIC 0x4B400000  // the bits of 1.5 x 2^23 (i2f_exact; |dot| < 32 x 128 x 128 = 2^19)

// M32 is the staged layout of Q32<KIND>: CB bytes a chunk row (also the
// staged row pitch: CB/4 is 4 mod 8, so the 8 rows x 4 words of an
// operand load fall on distinct banks) and the dynamic shared memory of a
// block, two stages of weight and activation rows and the scales.
template <int KIND>
struct M32 {
    static const int BYTES = Q32<KIND>::BYTES;
    static const int CB = 8 * BYTES;
    static const int STAGE = 64 * CB + 64 * M32_LDA;
    static const int SHARED = 2 * STAGE + 2 * 64 * M32_LDS * 4;
};

// m32_lds returns the 4 bytes at p of shared memory; A2: p is 2 mod 4
// (two aligned words funnel-shifted), else 4-byte aligned.
template <bool A2>
__device__ __forceinline__ int m32_lds(const u8* p) {
    if (!A2) return *(const int*)p;
    const u32* b = (const u32*)(p - 2);
    return (int)__funnelshift_r(b[0], b[1], 16);
}

// m32_cp copies V bytes (16, 8 or 4; both addresses V-aligned) from global
// to shared memory without waiting (cp.async).
template <int V>
__device__ __forceinline__ void m32_cp(u8* dst, const u8* src) {
    u32 d = (u32)__cvta_generic_to_shared(dst);
    if (V == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2;" ::"r"(d), "l"(src), "n"(V) : "memory");
}

__device__ __forceinline__ void m32_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

template <int N>
__device__ __forceinline__ void m32_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

// m32_wfrag returns, for the staged block at wb (A2 as m32_lds for its
// data), lane t's A words: lo = quants 4t..4t+3, hi = 16+4t.. (Q32::word).
template <int KIND, bool A2>
__device__ __forceinline__ void m32_wfrag(const u8* wb, int t, int& lo, int& hi) {
    if (KIND == 0) {
        lo = m32_lds<A2>(wb + 2 + 4 * t);
        hi = m32_lds<A2>(wb + 18 + 4 * t);
    } else if (KIND == 1) {
        int q = m32_lds<A2>(wb + 2 + 4 * t);
        lo = vsub4(q & 0x0f0f0f0f, 0x08080808);
        hi = vsub4((q >> 4) & 0x0f0f0f0f, 0x08080808);
    } else {
        u32 qh = (u32)m32_lds<A2>(wb + 2);
        int q = m32_lds<A2>(wb + 6 + 4 * t);
        lo = vsub4((q & 0x0f0f0f0f) | spread4((qh >> (4 * t)) & 0xf), 0x10101010);
        hi = vsub4(((q >> 4) & 0x0f0f0f0f) | spread4((qh >> (16 + 4 * t)) & 0xf), 0x10101010);
    }
}

// m32_step adds staged block j's terms to a warp's outputs (A2: j is even).
template <int KIND, bool A2>
__device__ __forceinline__ void m32_step(const u8* ws, const u8* as, const float* wsc, const float* asc, int j, int wr,
                                         int wc, float sum[2][M32_NT][4]) {
    const int CB = M32<KIND>::CB, BYTES = M32<KIND>::BYTES;
    int lane = threadIdx.x % WARP, g = lane / 4, t = lane % 4;
    int A[2][4], Bv[M32_NT][2];
    float wd[2][2], ad[M32_NT][2];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int r = wr + 16 * mt + g + 8 * h;
            m32_wfrag<KIND, A2>(ws + r * CB + j * BYTES, t, A[mt][h], A[mt][h + 2]);
            wd[mt][h] = wsc[r * M32_LDS + j];
        }
#pragma unroll
    for (int nt = 0; nt < M32_NT; nt++) {
        const u8* ab = as + (wc + 8 * nt + g) * M32_LDA + j * 34;
        Bv[nt][0] = m32_lds<A2>(ab + 2 + 4 * t);
        Bv[nt][1] = m32_lds<A2>(ab + 18 + 4 * t);
#pragma unroll
        for (int i = 0; i < 2; i++) ad[nt][i] = asc[(wc + 8 * nt + 2 * t + i) * M32_LDS + j];
    }
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < M32_NT; nt++) {
            // The dots start from i2f_exact's magic number, so the
            // integer add is the mma's own: (float)dot is one subtraction.
            int c[4] = {M32_MAGIC, M32_MAGIC, M32_MAGIC, M32_MAGIC};
            mma_k32(c, A[mt], Bv[nt]);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float sf = __fsub_rn(__int_as_float(c[i]), 12582912.0f);
                sum[mt][nt][i] = __fadd_rn(sum[mt][nt][i], mq_term<KIND>(sf, wd[mt][i >> 1], ad[nt][i & 1]));
            }
        }
}

// mmq32 is matmul's contract (MM_PARAMS) for a grid of (rows/64, m/64)
// blocks of M32_THREADS threads with M32<KIND>::SHARED bytes of dynamic shared
// memory; W, rowBytes, act and actStride are multiples of V.
template <int KIND, int V>
__device__ __forceinline__ void mmq32(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                      float* __restrict__ y, int yStride, const float* __restrict__ bias, int rows,
                                      int cols, i64 rowBytes, int acc, int m) {
    typedef M32<KIND> L;
    extern __shared__ __align__(16) u8 m32_smem[];
    float* wsc = (float*)(m32_smem + 2 * L::STAGE);
    float* asc = wsc + 64 * M32_LDS;
    int warp = threadIdx.x / WARP;
    int wr = (warp & 1) * 32, wc = (warp >> 1) * 8 * M32_NT;
    int row0 = blockIdx.x * 64, col0 = blockIdx.y * 64;
    int nb = cols / 32, nch = (nb + 7) / 8;
    // load starts the copies of chunk ch into stage s.
    auto load = [&](int ch, int s) {
        u8* ws = m32_smem + s * L::STAGE;
        u8* as = ws + 64 * L::CB;
        int left = nb - 8 * ch;
        int lw = min(L::CB, left * L::BYTES), la = min(M32_LDA, left * 34);
        const int UW = L::CB / V, UA = M32_LDA / V;
        for (int i = threadIdx.x; i < 64 * UW; i += M32_THREADS) {
            int r = i / UW, o = (i - r * UW) * V;
            if (o < lw) m32_cp<V>(ws + r * L::CB + o, W + (i64)min(rows - 1, row0 + r) * rowBytes + (i64)ch * L::CB + o);
        }
        for (int i = threadIdx.x; i < 64 * UA; i += M32_THREADS) {
            int r = i / UA, o = (i - r * UA) * V;
            if (o < la) m32_cp<V>(as + r * M32_LDA + o, act + (i64)min(m - 1, col0 + r) * actStride + (i64)ch * M32_LDA + o);
        }
        m32_commit();
    };
    float sum[2][M32_NT][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < M32_NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) sum[mt][nt][i] = 0.0f;
    load(0, 0);
    for (int ch = 0; ch < nch; ch++) {
        if (ch + 1 < nch) {
            load(ch + 1, (ch + 1) & 1);
            m32_wait<1>();
        } else {
            m32_wait<0>();
        }
        __syncthreads();
        const u8* ws = m32_smem + (ch & 1) * L::STAGE;
        const u8* as = ws + 64 * L::CB;
        int nbc = min(8, nb - 8 * ch);
#pragma unroll
        for (int k = 0; k < 512 / M32_THREADS; k++) {
            int i = threadIdx.x + M32_THREADS * k, r = i >> 3, j = i & 7;
            if (j < nbc) {
                wsc[r * M32_LDS + j] = h2f(ld16(ws + r * L::CB + j * L::BYTES));
                asc[r * M32_LDS + j] = h2f(ld16(as + r * M32_LDA + j * 34));
            }
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < 8; j++) {
            if (j >= nbc) break;
            if (j & 1)
                m32_step<KIND, false>(ws, as, wsc, asc, j, wr, wc, sum);
            else
                m32_step<KIND, true>(ws, as, wsc, asc, j, wr, wc, sum);
        }
        __syncthreads();  // this stage and the scales are read before they are written again
    }
    mq_store<M32_NT>(sum, row0 + wr, col0 + wc, y, yStride, bias, rows, acc, m);
}

#define MMQ32(T, KIND)                                                                                                   \
    extern "C" __global__ void __launch_bounds__(M32_THREADS, 3) mmq32_##T##_v16(MM_PARAMS) { mmq32<KIND, 16>(MM_ARGS); } \
    extern "C" __global__ void __launch_bounds__(M32_THREADS, 3) mmq32_##T##_v8(MM_PARAMS) { mmq32<KIND, 8>(MM_ARGS); }   \
    extern "C" __global__ void __launch_bounds__(M32_THREADS, 3) mmq32_##T##_v4(MM_PARAMS) { mmq32<KIND, 4>(MM_ARGS); }
MMQ32(q8_0, 0)
MMQ32(q4_0, 1)
MMQ32(q5_0, 2)
