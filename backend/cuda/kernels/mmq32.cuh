// ------------------------- staged products of the 32-element block types (mmq32)
//
// Q8_0 (34-byte blocks), Q4_0 (18) and Q5_0 (22) against Q8_0 activations
// (34): every block size is 2 mod 4, so a block's data is only 2-byte
// aligned, but a chunk of 8 blocks (272, 144 or 176 bytes) is a multiple of
// 16. When the rows (weights and activations) start on V-byte boundaries
// (V = 16, 8 or 4: the launcher checks), a block of WM x WN warps (2 x 2:
// 64 weight rows by 64 activation rows; 4 x 2 for products of many tiles)
// copies each chunk of its rows into shared memory with cp.async (V bytes
// a copy, consecutive threads on consecutive bytes of a row; two stages:
// the next chunk is in flight while the warps work on this one), the
// blocks' F16 scales are converted to float once per chunk (in the order
// of each thread's outputs: vector loads), and the warps read their mma
// operands from shared memory: in a chunk that starts 16-byte aligned,
// block j's quants lie at 34j + 2 (18j + 2, 22j + 6), 4-byte aligned for
// odd j, 2 mod 4 for even j (two aligned words funnel-shifted). The warps'
// 32 x 32 tiles, integer dots, float terms (mq_term) and their order are
// mmq_direct's: the outputs are bit for bit the same. No copy or
// repacking of the weights is kept.

#define M32_LDA 272  // bytes a staged activation row: 8 Q8_0 blocks
#define M32_MAGIC 0x4B400000  // the bits of 1.5 x 2^23 (i2f_exact; |dot| < 32 x 128 x 128 = 2^19)

// M32 is the staged layout of Q32<KIND>: CB bytes a chunk row (also the
// staged row pitch: CB/4 is 4 mod 8, so the 8 rows x 4 words of an
// operand load fall on distinct banks). A block's dynamic shared memory is
// two stages of its weight and activation rows and their scales (mmq32).
template <int KIND>
struct M32 {
    static const int BYTES = Q32<KIND>::BYTES;
    static const int CB = 8 * BYTES;
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
// memory to shared memory address d (a 32-bit shared-window address)
// without waiting (cp.async), if p.
template <int V>
__device__ __forceinline__ void m32_cp(u32 d, const u8* src, bool p) {
    if (V == 16)
        asm volatile("{ .reg .pred p; setp.ne.b32 p, %2, 0; @p cp.async.cg.shared.global [%0], [%1], 16; }" ::"r"(d),
                     "l"(src), "r"((int)p)
                     : "memory");
    else
        asm volatile("{ .reg .pred p; setp.ne.b32 p, %2, 0; @p cp.async.ca.shared.global [%0], [%1], %3; }" ::"r"(d),
                     "l"(src), "r"((int)p), "n"(V)
                     : "memory");
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

// The scales of a chunk are staged as floats, block-major (8 rows of BM
// weight scales, 8 of BN activation scales), each warp tile's 32 in the
// order of its threads' outputs: weight row 16mt + 8h + g of a tile at
// 4g + 2mt + h, activation row 8nt + 2t + i at 8t + 2nt + i, so a thread
// reads its 4 weight scales as one float4 and its 8 activation scales as
// two (lanes of one g or t read the same address: no bank conflicts).
__device__ __forceinline__ int m32_wperm(int r) {
    int q = r & 31;
    return (r & ~31) | (4 * (q & 7) + 2 * (q >> 4) + ((q >> 3) & 1));
}
__device__ __forceinline__ int m32_aperm(int c) {
    int q = c & 31;
    return (c & ~31) | (8 * ((q >> 1) & 3) + 2 * (q >> 3) + (q & 1));
}

// m32_step adds staged block j's terms to a warp's outputs (A2: j is even;
// wsc and asc: block j's permuted scales of the block's weight and
// activation rows).
template <int KIND, bool A2, int MT>
__device__ __forceinline__ void m32_step(const u8* ws, const u8* as, const float* wsc, const float* asc, int j, int wr,
                                         int wc, float sum[MT][4][4]) {
    const int CB = M32<KIND>::CB, BYTES = M32<KIND>::BYTES;
    int lane = threadIdx.x % WARP, g = lane / 4, t = lane % 4;
    int A[MT][4], Bv[4][2];
    float4 w4 = *(const float4*)(wsc + wr + 4 * g);
    float4 a4[2] = {*(const float4*)(asc + wc + 8 * t), *(const float4*)(asc + wc + 8 * t + 4)};
    float wd[2][2] = {{w4.x, w4.y}, {w4.z, w4.w}};
    float ad[4][2] = {{a4[0].x, a4[0].y}, {a4[0].z, a4[0].w}, {a4[1].x, a4[1].y}, {a4[1].z, a4[1].w}};
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int r = wr + 16 * mt + g + 8 * h;
            m32_wfrag<KIND, A2>(ws + r * CB + j * BYTES, t, A[mt][h], A[mt][h + 2]);
        }
#pragma unroll
    for (int nt = 0; nt < 4; nt++) {
        const u8* ab = as + (wc + 8 * nt + g) * M32_LDA + j * 34;
        Bv[nt][0] = m32_lds<A2>(ab + 2 + 4 * t);
        Bv[nt][1] = m32_lds<A2>(ab + 18 + 4 * t);
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
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

// m32_copy starts the copies of a chunk of NR staged rows of U units (V
// bytes each) by T threads: unit u of row r (flat index i = U r + u, the
// threads taking consecutive units: coalesced) from src + r stride + V u
// to shared address dst + V i. Rows past last and units at or past limit
// bytes of a row (a part chunk at the end of the rows) are not copied:
// their outputs are not stored.
template <int U, int NR, int T, int V>
__device__ __forceinline__ void m32_copy(u32 dst, const u8* src, int stride, int last, int limit) {
    int r0 = threadIdx.x / U, u0 = threadIdx.x % U;
    src += r0 * stride + V * u0;
    dst += V * threadIdx.x;
#pragma unroll
    for (int k = 0; k < (NR * U + T - 1) / T; k++) {
        const int c = (T * k) % U, q = (T * k) / U;
        bool carry = u0 >= U - c;
        int r = r0 + q + (carry ? 1 : 0), u = u0 + c - (carry ? U : 0);
        int off = (q + (carry ? 1 : 0)) * stride + V * (c - (carry ? U : 0));
        bool in = (NR * U % T == 0 || threadIdx.x + T * k < NR * U) && r <= last && V * u < limit;
        m32_cp<V>(dst + V * T * k, src + off, in);
    }
}

// M32Block is a staged block's chunks: BM weight rows from row0 and BN
// activation rows from col0, copied by its T threads V bytes a copy into
// two stages of dynamic shared memory, and each chunk's scales as floats
// after them (wsc: 8 x WS, asc: 8 x BN, permuted as m32_step reads them;
// WS = BM, or 32 for a tile of 16 rows, whose permuted places spread over
// 30).
template <int KIND, int V, int BM, int BN, int T>
struct M32Block {
    typedef M32<KIND> L;
    static const int STAGE = BM * L::CB + BN * M32_LDA;
    static const int WS = BM < 32 ? 32 : BM;
    const u8* smem;
    const u8* wsrc;
    const u8* asrc;
    float* wsc;
    float* asc;
    int rowBytes, actStride, lastRow, lastCol, nb, nch;
    u32 sbase;

    __device__ __forceinline__ M32Block(u8* sm, const u8* W, const u8* act, i64 astride, int rows, int cols,
                                        i64 rbytes, int m, int row0, int col0)
        : smem(sm), wsrc(W + (i64)row0 * rbytes), asrc(act + (i64)col0 * astride), wsc((float*)(sm + 2 * STAGE)),
          asc((float*)(sm + 2 * STAGE) + 8 * WS), rowBytes((int)rbytes), actStride((int)astride),
          lastRow(rows - 1 - row0), lastCol(m - 1 - col0), nb(cols / 32), nch((cols / 32 + 7) / 8),
          sbase((u32)__cvta_generic_to_shared(sm)) {}

    // load starts the copies of chunk ch into stage s.
    __device__ __forceinline__ void load(int ch, int s) const {
        u32 ws = sbase + s * STAGE;
        int left = nb - 8 * ch;
        m32_copy<L::CB / V, BM, T, V>(ws, wsrc + ch * L::CB, rowBytes, lastRow, left * L::BYTES);
        m32_copy<M32_LDA / V, BN, T, V>(ws + BM * L::CB, asrc + ch * M32_LDA, actStride, lastCol, left * 34);
        m32_commit();
    }

    // stage waits for chunk ch (load(0, 0) started the first; each asks
    // for the next before it waits), converts its scales and returns its
    // blocks (up to 8), its staged weight rows at ws and activation rows at
    // as. Every thread calls it; it ends with a barrier.
    __device__ __forceinline__ int stage(int ch, const u8*& ws, const u8*& as) const {
        if (ch + 1 < nch) {
            load(ch + 1, (ch + 1) & 1);
            m32_wait<1>();
        } else {
            m32_wait<0>();
        }
        __syncthreads();
        ws = smem + (ch & 1) * STAGE;
        as = ws + BM * L::CB;
        int nbc = min(8, nb - 8 * ch);
#pragma unroll
        for (int k = 0; k < (8 * BM + T - 1) / T; k++) {  // j < nbc <= 8: i < 8 BM
            int i = threadIdx.x + T * k, r = i % BM, j = i / BM;
            if (j < nbc) wsc[j * WS + m32_wperm(r)] = h2f(ld16(ws + r * L::CB + j * L::BYTES));
        }
#pragma unroll
        for (int k = 0; k < (8 * BN + T - 1) / T; k++) {
            int i = threadIdx.x + T * k, r = i % BN, j = i / BN;
            if (j < nbc) asc[j * BN + m32_aperm(r)] = h2f(ld16(as + r * M32_LDA + j * 34));
        }
        __syncthreads();
        return nbc;
    }
};

// mmq32 is matmul's contract (MM_PARAMS) for a grid of (rows/BM, m/BN)
// blocks of WM x WN warps (BM = 32 WM weight rows, BN = 32 WN activation
// rows; a warp 32 x 32 outputs) with 2 (BM M32<KIND>::CB + BN M32_LDA) +
// 32 (BM + BN) bytes of dynamic shared memory; W, rowBytes, act and
// actStride are multiples of V.
template <int KIND, int V, int WM, int WN>
__device__ __forceinline__ void mmq32(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                      float* __restrict__ y, int yStride, const float* __restrict__ bias, int rows,
                                      int cols, i64 rowBytes, int acc, int m) {
    const int BM = 32 * WM, BN = 32 * WN;
    extern __shared__ __align__(16) u8 m32_smem[];
    int warp = threadIdx.x / WARP;
    int wr = (warp % WM) * 32, wc = (warp / WM) * 32;
    int row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;
    const M32Block<KIND, V, BM, BN, WM * WN * WARP> blk(m32_smem, W, act, actStride, rows, cols, rowBytes, m, row0,
                                                         col0);
    float sum[2][4][4];
    mq_fill(sum, 0.0f);
    blk.load(0, 0);
    for (int ch = 0; ch < blk.nch; ch++) {
        const u8 *ws, *as;
        int nbc = blk.stage(ch, ws, as);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            if (j >= nbc) break;
            if (j & 1)
                m32_step<KIND, false, 2>(ws, as, blk.wsc + j * BM, blk.asc + j * BN, j, wr, wc, sum);
            else
                m32_step<KIND, true, 2>(ws, as, blk.wsc + j * BM, blk.asc + j * BN, j, wr, wc, sum);
        }
        __syncthreads();  // this stage and the scales are read before they are written again
    }
    mq_store<4>(sum, row0 + wr, col0 + wc, y, yStride, bias, rows, acc, m);
}

// mmq32ks is mmq32 for products of few tiles (passes of few rows: 24
// tiles of 64 x 64 for a 1.5B model's o and down at 32 rows, each walking
// the whole row): a block of 8 warps takes BM = 16 MT weight rows x 32
// activation rows (grid (rows/BM, m/32)), and warp w the terms of block w
// of each staged chunk of 8 (m32_step from zero: 0 + term, the term's own
// bits but -0 as +0, which no sum from +0 tells apart), which it leaves in
// shared memory; thread (warp p, lane l) then adds terms Qp..Qp+Q-1 (Q =
// 2 MT) of lane l's outputs in block order to its sums. The same sums as
// mmq32's, bit for bit. Dynamic shared memory: two stages of BM weight
// rows and 32 activation rows, the chunk's scales (8 x 64 floats) and the
// terms (8 x 512 MT floats).
template <int KIND, int V, int MT>
__device__ __forceinline__ void mmq32ks(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                        float* __restrict__ y, int yStride, const float* __restrict__ bias, int rows,
                                        int cols, i64 rowBytes, int acc, int m) {
    const int BM = 16 * MT, BN = 32, F = 16 * MT, Q = F / 8;
    extern __shared__ __align__(16) u8 m32_smem[];
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;
    typedef M32Block<KIND, V, BM, BN, 8 * WARP> Blk;
    const Blk blk(m32_smem, W, act, actStride, rows, cols, rowBytes, m, row0, col0);
    float* terms = blk.asc + 8 * BN;
    float run[Q];
#pragma unroll
    for (int q = 0; q < Q; q++) run[q] = 0.0f;
    blk.load(0, 0);
    for (int ch = 0; ch < blk.nch; ch++) {
        const u8 *ws, *as;
        int nbc = blk.stage(ch, ws, as);  // its first barrier: the last chunk's terms are added
        if (warp < nbc) {
            float sum[MT][4][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) sum[mt][nt][i] = 0.0f;
            if (warp & 1)
                m32_step<KIND, false, MT>(ws, as, blk.wsc + warp * Blk::WS, blk.asc + warp * BN, warp, 0, 0, sum);
            else
                m32_step<KIND, true, MT>(ws, as, blk.wsc + warp * Blk::WS, blk.asc + warp * BN, warp, 0, 0, sum);
            float* tw = terms + warp * 32 * F + lane;
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) tw[32 * (16 * mt + 4 * nt + i)] = sum[mt][nt][i];
        }
        __syncthreads();  // the terms are in; the stage and the scales are read
        const float* tr = terms + 32 * Q * warp + lane;
        for (int j = 0; j < nbc; j++)
#pragma unroll
            for (int q = 0; q < Q; q++) run[q] = __fadd_rn(run[q], tr[32 * F * j + 32 * q]);
    }
    // Thread (p, l) holds lane l's outputs Qp..Qp+Q-1 of its fragment
    // (index 16 mt + 4 nt + i).
    int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int q = 0; q < Q; q++) {
        int idx = Q * warp + q, mt = idx / 16, nt = (idx / 4) % 4, i = idx % 4;
        int row = row0 + 16 * mt + g + 8 * (i >> 1), col = col0 + 8 * nt + 2 * t + (i & 1);
        if (row >= rows || col >= m) continue;
        float s = run[q];
        if (bias) s += bias[row];
        float* yp = y + (i64)col * yStride + row;
        *yp = acc ? *yp + s : s;
    }
}

// MMQ32_KS defines the K-split kernels mmq32_T_vV_ks (32-row tiles) and
// mmq32_T_vV_ks16 (16-row tiles), at least 2 blocks an SM.
#define MMQ32_KS1(T, KIND, V, MT, suffix)                                                          \
    extern "C" __global__ void __launch_bounds__(8 * WARP, 2) mmq32_##T##_v##V##_ks##suffix(MM_PARAMS) { \
        mmq32ks<KIND, V, MT>(MM_ARGS);                                                             \
    }
#define MMQ32_KS(T, KIND)            \
    MMQ32_KS1(T, KIND, 16, 2, )      \
    MMQ32_KS1(T, KIND, 8, 2, )       \
    MMQ32_KS1(T, KIND, 4, 2, )       \
    MMQ32_KS1(T, KIND, 16, 1, 16)    \
    MMQ32_KS1(T, KIND, 8, 1, 16)     \
    MMQ32_KS1(T, KIND, 4, 1, 16)

// MMQ32_TILE defines the kernels of one tile shape, mmq32_T_vV<suffix>:
// WM x WN warps, at least MINB blocks an SM (the registers a thread gets).
#define MMQ32_TILE(T, KIND, WM, WN, MINB, suffix)                                                  \
    extern "C" __global__ void __launch_bounds__(WM * WN * WARP, MINB) mmq32_##T##_v16##suffix(MM_PARAMS) { \
        mmq32<KIND, 16, WM, WN>(MM_ARGS);                                                          \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(WM * WN * WARP, MINB) mmq32_##T##_v8##suffix(MM_PARAMS) {  \
        mmq32<KIND, 8, WM, WN>(MM_ARGS);                                                           \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(WM * WN * WARP, MINB) mmq32_##T##_v4##suffix(MM_PARAMS) {  \
        mmq32<KIND, 4, WM, WN>(MM_ARGS);                                                           \
    }
#define MMQ32(T, KIND)                 \
    MMQ32_TILE(T, KIND, 2, 2, 3, )     \
    MMQ32_TILE(T, KIND, 4, 2, 2, _t42) \
    MMQ32_KS(T, KIND)
MMQ32(q8_0, 0)
MMQ32(q4_0, 1)
MMQ32(q5_0, 2)
