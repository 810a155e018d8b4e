// ---------------------------------------- tensor-core products (MMQ)
//
// For passes of many rows: integer tensor-core products (mma.sync s8) of
// 32-element blocks (16-element groups for Q6_K), which are exact, so the
// per-block float terms and their sums in block order are those of
// quant.VecDot, bit for bit, as in matmul_q. A block of 4 warps computes
// 64 weight rows x 64 activation rows, a warp 32 x 32 (2 x 4 tiles of
// m16n8). Thread (g = lane/4, t = lane%4) of a tile holds the outputs of
// weight rows g and g+8 and activation rows 2t and 2t+1; its A operand is
// bytes 4t.. and 16+4t.. of rows g and g+8, its B operand the same bytes of
// activation row g.

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


// The operands of one thread: w[mt][h] is weight row rowBase+16mt+g+8h,
// a[nt] activation row colBase+8nt+g (B), ac[nt][i] activation row
// colBase+8nt+2t+i (the outputs' scales); rows past the end repeat the
// last one.
struct MMQRows {
    const u8* w[2][2];
    const u8* a[4];
    const u8* ac[4][2];
};

// B32 runs the 32-element block types (Q32<KIND>).
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
                        acc[mt][nt][i] = __fadd_rn(acc[mt][nt][i], Q::term(c[i], wd[mt][i >> 1], ad[nt][i & 1]));
                }
        }
    }
};

// byte k of three little-endian words.
__device__ __forceinline__ int byte3(const u32 s[3], int k) { return (s[k >> 2] >> (8 * (k & 3))) & 0xff; }

// Q4_K and Q5_K: a super-block is 8 steps of k32 (sub-block j: nibbles
// j%2 of bytes 32(j/2)..; Q5_K's fifth bit is bit j of the qh bytes).
template <bool Q5>
struct BK45 {
    static const int BYTES = Q5 ? 176 : 144;
    static __device__ void run(const MMQRows& R, int cols, float acc[2][4][4]) {
        int lane = threadIdx.x % WARP, t = lane % 4;
        int nb = cols / 256;
        for (int b = 0; b < nb; b++) {
            int isum[2][4][4], summs[2][4][4];
            u32 sc[2][2][3];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int h = 0; h < 2; h++)
#pragma unroll
                    for (int k = 0; k < 3; k++) sc[mt][h][k] = (u32)ld32(R.w[mt][h] + (i64)b * BYTES + 4 + 4 * k);
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) isum[mt][nt][i] = summs[mt][nt][i] = 0;
            for (int j = 0; j < 8; j++) {
                int A[2][4], Bv[4][2], scj[2][2], mj[2][2], bs[4][2];
                int qo = (Q5 ? 48 : 16) + 32 * (j / 2), sh = 4 * (j & 1);
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const u8* wb = R.w[mt][h] + (i64)b * BYTES;
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            int k = 16 * e + 4 * t;
                            int q = (ld32(wb + qo + k) >> sh) & 0x0f0f0f0f;
                            if (Q5) q |= ((ld32(wb + 16 + k) >> j) & 0x01010101) << 4;
                            A[mt][h + 2 * e] = q;
                        }
                        int s0, s1;
                        const u32* s = sc[mt][h];
                        if (j < 4) {
                            s0 = byte3(s, j) & 63;
                            s1 = byte3(s, j + 4) & 63;
                        } else {
                            s0 = (byte3(s, j + 4) & 0x0f) | ((byte3(s, j - 4) >> 6) << 4);
                            s1 = (byte3(s, j + 4) >> 4) | ((byte3(s, j) >> 6) << 4);
                        }
                        scj[mt][h] = s0;
                        mj[mt][h] = s1;
                    }
#pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    const u8* ab = R.a[nt] + (i64)b * 292 + 4 + 32 * j;
                    Bv[nt][0] = ld32(ab + 4 * t);
                    Bv[nt][1] = ld32(ab + 16 + 4 * t);
#pragma unroll
                    for (int i = 0; i < 2; i++) {
                        int w2 = ld32(R.ac[nt][i] + (i64)b * 292 + 260 + 4 * j);
                        bs[nt][i] = (int)(short)(w2 & 0xffff) + (int)(short)(w2 >> 16);
                    }
                }
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int nt = 0; nt < 4; nt++) {
                        int c[4] = {0, 0, 0, 0};
                        mma_k32(c, A[mt], Bv[nt]);
#pragma unroll
                        for (int i = 0; i < 4; i++) {
                            isum[mt][nt][i] += scj[mt][i >> 1] * c[i];
                            summs[mt][nt][i] += mj[mt][i >> 1] * bs[nt][i & 1];
                        }
                    }
            }
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const u8* wb = R.w[mt][i >> 1] + (i64)b * BYTES;
                        float yd = *(const float*)(R.ac[nt][i & 1] + (i64)b * 292);
                        float d = __fmul_rn(h2f(ld16(wb)), yd), dmin = __fmul_rn(h2f(ld16(wb + 2)), yd);
                        float term = __fsub_rn(__fmul_rn(d, (float)isum[mt][nt][i]), __fmul_rn(dmin, (float)summs[mt][nt][i]));
                        acc[mt][nt][i] = __fadd_rn(acc[mt][nt][i], term);
                    }
        }
    }
};

// Q6_K: 16 steps of k16 (group g16 of 16 elements, its own int8 scale).
struct BK6 {
    static __device__ void run(const MMQRows& R, int cols, float acc[2][4][4]) {
        int lane = threadIdx.x % WARP, t = lane % 4;
        int nb = cols / 256;
        for (int b = 0; b < nb; b++) {
            int isum[2][4][4];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) isum[mt][nt][i] = 0;
            for (int g16 = 0; g16 < 16; g16++) {
                int half = g16 / 8, sub = (g16 % 8) / 2, l = 16 * (g16 % 2) + 4 * t;
                int A[2][2], Bv[4], scg[2][2];
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const u8* wb = R.w[mt][h] + (i64)b * 210;
                        int ql = ld32u(wb + 64 * half + 32 * (sub & 1) + l);
                        int qh = ld32u(wb + 128 + 32 * half + l);
                        int q = ((ql >> (4 * (sub >> 1))) & 0x0f0f0f0f) | (((qh >> (2 * sub)) & 0x03030303) << 4);
                        A[mt][h] = vsub4(q, 0x20202020);
                        scg[mt][h] = (int)(i8)wb[192 + g16];
                    }
#pragma unroll
                for (int nt = 0; nt < 4; nt++) Bv[nt] = ld32(R.a[nt] + (i64)b * 292 + 4 + 16 * g16 + 4 * t);
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int nt = 0; nt < 4; nt++) {
                        int c[4] = {0, 0, 0, 0};
                        mma_k16(c, A[mt], Bv[nt]);
#pragma unroll
                        for (int i = 0; i < 4; i++) isum[mt][nt][i] += scg[mt][i >> 1] * c[i];
                    }
            }
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const u8* wb = R.w[mt][i >> 1] + (i64)b * 210;
                        float yd = *(const float*)(R.ac[nt][i & 1] + (i64)b * 292);
                        acc[mt][nt][i] = __fadd_rn(acc[mt][nt][i], __fmul_rn(__fmul_rn(h2f(ld16(wb + 208)), yd), (float)isum[mt][nt][i]));
                    }
        }
    }
};

// mmq is matmul's contract (MM_PARAMS) for a grid of (rows/64, m/64)
// blocks of 128 threads.
template <class T>
__device__ __forceinline__ void mmq(const u8* __restrict__ W, const u8* __restrict__ act, i64 actStride,
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
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) sum[mt][nt][i] = 0.0f;
    T::run(R, cols, sum);
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
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

extern "C" __global__ void mmq_q8_0(MM_PARAMS) { mmq<B32<0> >(MM_ARGS); }
extern "C" __global__ void mmq_q4_0(MM_PARAMS) { mmq<B32<1> >(MM_ARGS); }
extern "C" __global__ void mmq_q5_0(MM_PARAMS) { mmq<B32<2> >(MM_ARGS); }
extern "C" __global__ void mmq_q4_k(MM_PARAMS) { mmq<BK45<false> >(MM_ARGS); }
extern "C" __global__ void mmq_q5_k(MM_PARAMS) { mmq<BK45<true> >(MM_ARGS); }
extern "C" __global__ void mmq_q6_k(MM_PARAMS) { mmq<BK6>(MM_ARGS); }

