// ---------------------------------------- tensor-core products (MMQ)
//
// For passes of many rows: integer tensor-core products (mma.sync s8) of
// 32-element blocks (16-element groups for Q6_K), which are exact, so the
// per-block float terms and their sums in block order are those of
// quant.VecDot, bit for bit, as in matmul_q. A block of 4 warps computes
// 64 weight rows x 64 activation rows, a warp 32 x 32 (2 x 4 tiles of
// m16n8). Thread (g = lane/4, t = lane%4) of a tile holds the outputs of
// weight rows g and g+8 and activation rows 2t and 2t+1. Rows past the end
// repeat the last one (their outputs are not written).
//
// The K-quants (mmq): over the row in super-blocks of 256, the block stages
// the weight tile (unpacked to signed bytes, each weight read once per
// block) and the activation tile in shared memory with their scales, and
// its warps read their operands with ldmatrix; the scales' integer sums
// stay exact until the super-block's float term. The 32-element types
// run mmq32 (mmq32.cuh: chunks of 8 blocks copied to shared memory by
// cp.async) when their rows are 4-byte aligned, else mmq_direct: a thread
// reads its operands from global memory (bytes 4t.. and 16+4t.. of rows g
// and g+8 for A, of activation row g for B), 2 bytes at a time.

// Blocks an SM that the kernels are compiled for (__launch_bounds__: the
// registers a thread gets), by family.
#ifndef MQ_MINB_K45
#define MQ_MINB_K45 3
#endif
#ifndef MQ_MINB_K6
#define MQ_MINB_K6 2
#endif
#define MQ_LD 272  // bytes a staged tile row: 256 quants + 16 (ldmatrix rows on distinct banks)

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

// ldsm4 loads four 8 x 16-byte matrices of shared memory (ldmatrix .x4):
// lanes 8i..8i+7 give the row addresses of matrix i, and each lane gets
// word t of row g of each.
__device__ __forceinline__ void ldsm4(int r[4], const u8* p) {
    u32 a = (u32)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

// mq_fill sets a thread's 2 x 4 tiles of 4 outputs (or their integer
// sums) to x.
template <class X>
__device__ __forceinline__ void mq_fill(X v[2][4][4], X x) {
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) v[mt][nt][i] = x;
}

// MQWarp is a warp's view of the staged tiles: its operand addresses and
// the rows of its outputs.
struct MQWarp {
    const u8* pa;  // this lane's ldmatrix row of the weight tile (warp rows wr..)
    const u8* pb;  // of the activation tile (warp columns wc..)
    int wr, wc, g, t;

    // frags loads the operands of k32 step s (tile bytes 32s..32s+31): A[mt]
    // of weight rows wr+16mt.., B[nt] of activation rows wc+8nt.. (for k16
    // steps: A[mt][0..1] and B[nt][0] are the first 16 bytes, A[mt][2..3] and
    // B[nt][1] the second).
    __device__ __forceinline__ void frags(int s, int A[2][4], int B[4][2]) const {
        int r[4];
        ldsm4(A[0], pa + 32 * s);
        ldsm4(A[1], pa + 16 * MQ_LD + 32 * s);
#pragma unroll
        for (int p = 0; p < 2; p++) {
            ldsm4(r, pb + 16 * p * MQ_LD + 32 * s);
            B[2 * p][0] = r[0];
            B[2 * p][1] = r[1];
            B[2 * p + 1][0] = r[2];
            B[2 * p + 1][1] = r[3];
        }
    }
    // row and col are the tile row and column of output i of tile (mt, nt).
    __device__ __forceinline__ int row(int mt, int i) const { return wr + 16 * mt + g + 8 * (i >> 1); }
    __device__ __forceinline__ int col(int nt, int i) const { return wc + 8 * nt + 2 * t + (i & 1); }
};

// MQSrc is the block's part of the product's inputs; w(r) and a(r) are
// tile row r's weight and activation rows (clamped to the last).
struct MQSrc {
    const u8* W;
    const u8* act;
    i64 rowBytes, actStride;
    int row0, rows, col0, m, cols;
    __device__ __forceinline__ const u8* w(int r) const { return W + (i64)min(rows - 1, row0 + r) * rowBytes; }
    __device__ __forceinline__ const u8* a(int r) const { return act + (i64)min(m - 1, col0 + r) * actStride; }
};

// Each staged type T stages a chunk in two halves: T::load reads its global
// words into registers (a T::Pre, all loads in flight together), T::store
// writes them, unpacked, to the shared tiles and scales; T::compute adds
// the staged chunk's terms to a warp's outputs. (Loading the next chunk
// during compute measured slower: 255 registers, 2 blocks an SM.)

// Q8K is the activation words of a Q8_K chunk (block b): thread i's word w
// of tile row r for i = threadIdx.x + 128k, r = i/64, w = i%64.
struct Q8K {
    int q[32];
    __device__ __forceinline__ void load(const MQSrc& S, int b) {
#pragma unroll
        for (int k = 0; k < 32; k++) {
            int i = threadIdx.x + 128 * k;
            q[k] = ld32(S.a(i >> 6) + (i64)b * 292 + 4 + 4 * (i & 63));
        }
    }
    __device__ __forceinline__ void store(u8* as) const {
#pragma unroll
        for (int k = 0; k < 32; k++) {
            int i = threadIdx.x + 128 * k;
            *(int*)(as + (i >> 6) * MQ_LD + 4 * (i & 63)) = q[k];
        }
    }
};

// i2f_exact is (float)c for |c| < 2^22 in two full-rate operations (the
// conversion instruction runs at a quarter of the rate): c added to the
// mantissa of 1.5 x 2^23, minus 1.5 x 2^23, both exact.
__device__ __forceinline__ float i2f_exact(int c) { return __fsub_rn(__int_as_float(0x4B400000 + c), 12582912.0f); }

// mq_term is Q32<KIND>::term for an integer dot already converted exactly
// to float (sf).
template <int KIND>
__device__ __forceinline__ float mq_term(float sf, float wd, float ad) {
    if (KIND == 0) return __fmul_rn(sf, __fmul_rn(wd, ad));
    if (KIND == 1) return __fmul_rn(__fmul_rn(sf, wd), ad);
    return __fmul_rn(__fmul_rn(wd, ad), sf);
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

// B32 runs the 32-element block types (Q32<KIND>) with mmq_direct.
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
                        acc[mt][nt][i] = __fadd_rn(acc[mt][nt][i], mq_term<KIND>(i2f_exact(c[i]), wd[mt][i >> 1], ad[nt][i & 1]));
                }
        }
    }
};

// MK45 runs Q4_K and Q5_K against Q8_K: a chunk is a super-block of 8
// sub-blocks of 32 (sub-block j: nibbles j%2 of bytes 32(j/2).. of the
// quants; Q5_K's fifth bit is bit j of the qh bytes), each with a 6-bit
// scale and min. Weight item i = threadIdx.x + 128k is quant word i%32 of
// tile row i/32; thread r < 64 stages row r's scales, thread 64 + r
// activation row r's.
template <bool Q5>
struct MK45 {
    static const int BYTES = Q5 ? 176 : 144;
    struct Scales {
        float d[64], dmin[64], yd[64];
        u8 sc[64][8], mn[64][8];
        int bs[64][5];  // activation sums of sub-blocks 2q and 2q+1 as int16 pairs (padded)
    };
    struct Pre {
        int q[16], h[Q5 ? 16 : 1];
        int x[9];  // thread < 64: d and dmin, 3 scale words; else the activation's scale and 8 sum words
        Q8K a;
    };
    static __device__ __forceinline__ void load(const MQSrc& S, int b, Pre& p) {
#pragma unroll
        for (int k = 0; k < 16; k++) {
            int i = threadIdx.x + 128 * k, r = i >> 5, w = i & 31;
            const u8* wb = S.w(r) + (i64)b * BYTES;
            p.q[k] = ld32(wb + (Q5 ? 48 : 16) + 4 * w);
            if (Q5) p.h[k] = ld32(wb + 16 + 4 * (w & 7));
        }
        if (threadIdx.x < 64) {
            const u8* wb = S.w(threadIdx.x) + (i64)b * BYTES;
#pragma unroll
            for (int k = 0; k < 4; k++) p.x[k] = ld32(wb + 4 * k);
        } else {
            const u8* ab = S.a(threadIdx.x - 64) + (i64)b * 292;
            p.x[0] = ld32(ab);
#pragma unroll
            for (int k = 0; k < 8; k++) p.x[1 + k] = ld32(ab + 260 + 4 * k);
        }
        p.a.load(S, b);
    }
    static __device__ __forceinline__ void store(const MQSrc&, int, const Pre& p, u8* ws, u8* as, Scales& sc) {
#pragma unroll
        for (int k = 0; k < 16; k++) {
            int i = threadIdx.x + 128 * k, r = i >> 5, w = i & 31, j = w >> 3, o = 4 * (w & 7);
            int lo = p.q[k] & 0x0f0f0f0f, hi = (p.q[k] >> 4) & 0x0f0f0f0f;
            if (Q5) {
                lo |= ((p.h[k] >> (2 * j)) & 0x01010101) << 4;
                hi |= ((p.h[k] >> (2 * j + 1)) & 0x01010101) << 4;
            }
            *(int*)(ws + r * MQ_LD + 64 * j + o) = lo;
            *(int*)(ws + r * MQ_LD + 64 * j + 32 + o) = hi;
        }
        p.a.store(as);
        if (threadIdx.x < 64) {
            int r = threadIdx.x;
            u32 s[3] = {(u32)p.x[1], (u32)p.x[2], (u32)p.x[3]};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int q[4];
                k4_scales(j, s[0], s[1], s[2], q);
                sc.sc[r][2 * j] = (u8)q[0];
                sc.mn[r][2 * j] = (u8)q[1];
                sc.sc[r][2 * j + 1] = (u8)q[2];
                sc.mn[r][2 * j + 1] = (u8)q[3];
            }
            sc.d[r] = h2f((u16)(p.x[0] & 0xffff));
            sc.dmin[r] = h2f((u16)((u32)p.x[0] >> 16));
        } else {
            int r = threadIdx.x - 64;
            sc.yd[r] = __int_as_float(p.x[0]);
#pragma unroll
            for (int q = 0; q < 4; q++) {
                int lo = p.x[1 + 2 * q], hi = p.x[2 + 2 * q];
                int s0 = (int)(short)(lo & 0xffff) + (int)(short)(lo >> 16);
                int s1 = (int)(short)(hi & 0xffff) + (int)(short)(hi >> 16);
                sc.bs[r][q] = (int)(((u32)s0 & 0xffff) | ((u32)s1 << 16));
            }
        }
    }
    static __device__ __forceinline__ void compute(const MQSrc&, int, const Scales& sc, const MQWarp& V, float sum[2][4][4]) {
        int isum[2][4][4];
        mq_fill(isum, 0);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int A[2][4], B[4][2], scj[2][2];
            V.frags(j, A, B);
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int h = 0; h < 2; h++) scj[mt][h] = sc.sc[V.row(mt, 2 * h)][j];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    int c[4] = {0, 0, 0, 0};
                    mma_k32(c, A[mt], B[nt]);
#pragma unroll
                    for (int i = 0; i < 4; i++) isum[mt][nt][i] += scj[mt][i >> 1] * c[i];
                }
        }
        // The mins' sums: sum over j of min_j x the activation's sub-block
        // sum, two sub-blocks a dp2a (int16 sums x the mins' bytes).
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    int r = V.row(mt, i), cl = V.col(nt, i);
                    const int* mn = (const int*)sc.mn[r];
                    const int* bs = sc.bs[cl];
                    int summs = __dp2a_lo(bs[0], mn[0], 0);
                    summs = __dp2a_hi(bs[1], mn[0], summs);
                    summs = __dp2a_lo(bs[2], mn[1], summs);
                    summs = __dp2a_hi(bs[3], mn[1], summs);
                    float yd = sc.yd[cl];
                    float d = __fmul_rn(sc.d[r], yd), dmin = __fmul_rn(sc.dmin[r], yd);
                    float term = __fsub_rn(__fmul_rn(d, (float)isum[mt][nt][i]), __fmul_rn(dmin, (float)summs));
                    sum[mt][nt][i] = __fadd_rn(sum[mt][nt][i], term);
                }
    }
};

// MK6 runs Q6_K against Q8_K: a chunk is a super-block of 16 groups of 16
// (k16 steps), each with an int8 scale; the 6-bit quants are unpacked minus
// 32 (ql nibbles, qh bit pairs: ggml's layout of two halves of 128). Item
// i = threadIdx.x + 128k is word i%8 of half (i/8)%2 of tile row i/16.
struct MK6 {
    struct Scales {
        float d[64], yd[64];
        i8 sc[64][16];
    };
    struct Pre {
        int ql0[8], ql1[8], qh[8];
        u32 x[4];  // items threadIdx.x + 128k of the scales: a scale pair (and d)
        u32 yd;    // thread r < 64: activation row r's scale
        Q8K a;
    };
    static __device__ __forceinline__ void load(const MQSrc& S, int b, Pre& p) {
#pragma unroll
        for (int k = 0; k < 8; k++) {
            int i = threadIdx.x + 128 * k, r = i >> 4, h = (i >> 3) & 1, w = i & 7;
            const u8* wb = S.w(r) + (i64)b * 210;
            p.ql0[k] = ld32u(wb + 64 * h + 4 * w);
            p.ql1[k] = ld32u(wb + 64 * h + 32 + 4 * w);
            p.qh[k] = ld32u(wb + 128 + 32 * h + 4 * w);
        }
#pragma unroll
        for (int k = 0; k < 4; k++) {
            int i = threadIdx.x + 128 * k, r = i >> 3, e = i & 7;
            const u8* wb = S.w(r) + (i64)b * 210;
            u32 v = ld16(wb + 192 + 2 * e);
            if (e == 0) v |= (u32)ld16(wb + 208) << 16;
            p.x[k] = v;
        }
        if (threadIdx.x < 64) p.yd = (u32)ld32(S.a(threadIdx.x) + (i64)b * 292);
        p.a.load(S, b);
    }
    static __device__ __forceinline__ void store(const MQSrc& S, int b, const Pre& p, u8* ws, u8* as, Scales& sc) {
#pragma unroll
        for (int k = 0; k < 8; k++) {
            int i = threadIdx.x + 128 * k, r = i >> 4, h = (i >> 3) & 1, w = i & 7;
            int ql0 = p.ql0[k], ql1 = p.ql1[k], qh = p.qh[k];
            u8* o = ws + r * MQ_LD + 128 * h + 4 * w;
            *(int*)(o) = vsub4((ql0 & 0x0f0f0f0f) | ((qh & 0x03030303) << 4), 0x20202020);
            *(int*)(o + 32) = vsub4((ql1 & 0x0f0f0f0f) | (((qh >> 2) & 0x03030303) << 4), 0x20202020);
            *(int*)(o + 64) = vsub4(((ql0 >> 4) & 0x0f0f0f0f) | (((qh >> 4) & 0x03030303) << 4), 0x20202020);
            *(int*)(o + 96) = vsub4(((ql1 >> 4) & 0x0f0f0f0f) | (((qh >> 6) & 0x03030303) << 4), 0x20202020);
        }
        p.a.store(as);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            int i = threadIdx.x + 128 * k, r = i >> 3, e = i & 7;
            *(u16*)&sc.sc[r][2 * e] = (u16)(p.x[k] & 0xffff);
            if (e == 0) sc.d[r] = h2f((u16)(p.x[k] >> 16));
        }
        if (threadIdx.x < 64) sc.yd[threadIdx.x] = __uint_as_float(p.yd);
    }
    static __device__ __forceinline__ void compute(const MQSrc&, int, const Scales& sc, const MQWarp& V, float sum[2][4][4]) {
        int isum[2][4][4];
        mq_fill(isum, 0);
#pragma unroll
        for (int s = 0; s < 8; s++) {
            int A[2][4], B[4][2], sg[2][2][2];
            V.frags(s, A, B);
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int h = 0; h < 2; h++)
#pragma unroll
                    for (int e = 0; e < 2; e++) sg[mt][h][e] = sc.sc[V.row(mt, 2 * h)][2 * s + e];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    int c0[4] = {0, 0, 0, 0}, c1[4] = {0, 0, 0, 0};
                    mma_k16(c0, &A[mt][0], B[nt][0]);
                    mma_k16(c1, &A[mt][2], B[nt][1]);
#pragma unroll
                    for (int i = 0; i < 4; i++)
                        isum[mt][nt][i] += sg[mt][i >> 1][0] * c0[i] + sg[mt][i >> 1][1] * c1[i];
                }
        }
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    sum[mt][nt][i] = __fadd_rn(sum[mt][nt][i],
                                               __fmul_rn(__fmul_rn(sc.d[V.row(mt, i)], sc.yd[V.col(nt, i)]), (float)isum[mt][nt][i]));
    }
};

// mq_warp is this thread's warp's view of the block's weight and activation
// tiles ws and as (2 x 2 warps of 32 x 32 outputs).
__device__ __forceinline__ MQWarp mq_warp(const u8* ws, const u8* as) {
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    MQWarp V;
    V.g = lane / 4;
    V.t = lane % 4;
    V.wr = (warp & 1) * 32;
    V.wc = (warp >> 1) * 32;
    V.pa = ws + (V.wr + (lane & 7) + 8 * ((lane >> 3) & 1)) * MQ_LD + 16 * (lane >> 4);
    V.pb = as + (V.wc + (lane & 7) + 8 * (lane >> 4)) * MQ_LD + 16 * ((lane >> 3) & 1);
    return V;
}

// mq_stage loads chunk ch's operands and stages them in ws, as and sc,
// after the block is done with the tiles before when again is set.
template <class T>
__device__ __forceinline__ void mq_stage(const MQSrc& S, int ch, bool again, u8* ws, u8* as, typename T::Scales& sc) {
    typename T::Pre p;
    T::load(S, ch, p);
    if (again) __syncthreads();  // the last chunk's tiles are read
    T::store(S, ch, p, ws, as, sc);
    __syncthreads();
}

// mmq is matmul's contract (MM_PARAMS) for a grid of (rows/64, m/64)
// blocks of 128 threads, over the row in chunks of CHUNK elements. With
// TERMS (the mmq_T_t kernels, terms.go) it takes one chunk a block, blockIdx.z (CHUNK = one
// super-block: one term a chunk), without the sums: the term of chunk ch
// for weight row r and activation row c goes to y[(c*rows + r)*nch + ch]
// (the term scratch), for term_sum to add in chunk order (the same bits as
// mmq: a term alone is 0 + term, and a sum that starts at +0 never becomes
// -0, so -0 and +0 terms add alike). A product of few 64-row tiles then
// fills the GPU.
template <class T, int CHUNK, bool TERMS = false>
__device__ __forceinline__ void mmq(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
                                    float* __restrict__ y, int yStride, const float* __restrict__ bias,
                                    int rows, int cols, i64 rowBytes, int acc, int m) {
    __shared__ __align__(16) u8 ws[64 * MQ_LD];
    __shared__ __align__(16) u8 as[64 * MQ_LD];
    __shared__ __align__(16) typename T::Scales sc;
    MQWarp V = mq_warp(ws, as);
    MQSrc S = {W, act, rowBytes, actStride, (int)blockIdx.x * 64, rows, (int)blockIdx.y * 64, m, cols};
    float sum[2][4][4];
    mq_fill(sum, 0.0f);
    int nch = (cols + CHUNK - 1) / CHUNK;
    int ch0 = TERMS ? blockIdx.z : 0, ch1 = TERMS ? ch0 + 1 : nch;
    for (int ch = ch0; ch < ch1; ch++) {
        mq_stage<T>(S, ch, ch > ch0, ws, as, sc);
        T::compute(S, ch, sc, V, sum);
    }
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int row = S.row0 + V.row(mt, i), col = S.col0 + V.col(nt, i);
                if (row >= rows || col >= m) continue;
                float s = sum[mt][nt][i];
                if (TERMS) {
                    y[((i64)col * rows + row) * nch + ch0] = s;
                    continue;
                }
                if (bias) s += bias[row];
                float* yp = y + (i64)col * yStride + row;
                *yp = acc ? *yp + s : s;
            }
}

// mq_store writes a warp's 2 x NT tiles of outputs (rows rowBase.., columns
// colBase..) to y as matmul's contract says (bias, accumulate; rows and
// columns past the end are not written).
template <int NT>
__device__ __forceinline__ void mq_store(const float sum[2][NT][4], int rowBase, int colBase, float* __restrict__ y,
                                         int yStride, const float* __restrict__ bias, int rows, int acc, int m) {
    int lane = threadIdx.x % WARP, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
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

// mmq_direct is matmul's contract (MM_PARAMS) for a grid of (rows/64,
// m/64) blocks of 128 threads, each thread loading its own operands.
template <class T>
__device__ __forceinline__ void mmq_direct(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
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
    mq_fill(sum, 0.0f);
    T::run(R, cols, sum);
    mq_store<4>(sum, rowBase, colBase, y, yStride, bias, rows, acc, m);
}

extern "C" __global__ void mmq_q8_0(MM_PARAMS) { mmq_direct<B32<0> >(MM_ARGS); }
extern "C" __global__ void mmq_q4_0(MM_PARAMS) { mmq_direct<B32<1> >(MM_ARGS); }
extern "C" __global__ void mmq_q5_0(MM_PARAMS) { mmq_direct<B32<2> >(MM_ARGS); }
extern "C" __global__ void __launch_bounds__(128, MQ_MINB_K45) mmq_q4_k(MM_PARAMS) { mmq<MK45<false>, 256>(MM_ARGS); }
extern "C" __global__ void __launch_bounds__(128, MQ_MINB_K45) mmq_q5_k(MM_PARAMS) { mmq<MK45<true>, 256>(MM_ARGS); }
extern "C" __global__ void __launch_bounds__(128, MQ_MINB_K6) mmq_q6_k(MM_PARAMS) { mmq<MK6, 256>(MM_ARGS); }

#define MMQ_T_PARAMS                                                                               \
    const u8 *__restrict__ W, const u8 *__restrict__ act, i64 actStride, float *__restrict__ terms, \
        int rows, int cols, i64 rowBytes, int m
#define MMQ_T_ARGS W, act, actStride, terms, 0, nullptr, rows, cols, rowBytes, 0, m
extern "C" __global__ void __launch_bounds__(128, MQ_MINB_K45) mmq_q4_k_t(MMQ_T_PARAMS) {
    mmq<MK45<false>, 256, true>(MMQ_T_ARGS);
}
extern "C" __global__ void __launch_bounds__(128, MQ_MINB_K45) mmq_q5_k_t(MMQ_T_PARAMS) {
    mmq<MK45<true>, 256, true>(MMQ_T_ARGS);
}
extern "C" __global__ void __launch_bounds__(128, MQ_MINB_K6) mmq_q6_k_t(MMQ_T_PARAMS) { mmq<MK6, 256, true>(MMQ_T_ARGS); }

#include "mmq32.cuh"
