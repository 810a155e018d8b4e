// ----------------------------------------------------------- attention

// attention is causal grouped-query attention of one token at position
// n-1 over cache positions 0..n-1: one block per query head. scores is
// scratch of heads x ctx floats. Every sum runs in the order of the CPU
// backend's loops (four partial sums for F16 rows, eight for float32, the
// softmax denominator and each output element over positions in order), so
// that GPU and CPU round alike. With an F16 cache the query is rounded to
// F16 first, as ggml does. Grid (heads, rows): row r of the pass reads its
// query at q + r*qStride, its position and slot from info (ROW_POS,
// ROW_SLOT; the slot's cache starts slot*slotBytes into kc and vc) and
// writes heads x dim floats at out + r*heads*dim.
extern "C" __global__ void attention(const float* __restrict__ q, const u8* __restrict__ kc,
                                     const u8* __restrict__ vc, float* __restrict__ out,
                                     float* __restrict__ scores, int heads, int kvHeads, int dim,
                                     const int* __restrict__ info, int ctx, float scale, int f16,
                                     int qStride, i64 slotBytes) {
    int r = blockIdx.y;
    int n = ROW_POS(info, r) + 1;
    kc += (i64)ROW_SLOT(info, r) * slotBytes;
    vc += (i64)ROW_SLOT(info, r) * slotBytes;
    q += (i64)r * qStride;
    out += (i64)r * heads * dim;
    scores += (i64)r * heads * ctx;
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
    // j * 2^n: a float product by a power of two is exact while the
    // result stays normal (j is near 1); otherwise in double, rounded once.
    if (n >= -125.0f && n <= 127.0f) return __fmul_rn(j, __int_as_float(((int)n + 127) << 23));
    return (float)ldexp((double)j, (int)n);
}

// dot_f16_ggml is ggml_vec_dot_f16 as the CPU backend's dotF16GGML runs
// it: for dim a multiple of 64, four 16-lane accumulators of fused
// multiply-adds, reduced (a0+a2)+(a1+a3), then halves added pairwise
// (_mm512_reduce_add_ps); otherwise one fused sum in order.
// The keys k are F16 values (u8*: in global memory) or already widened
// to float32 (exact; in shared memory).
__device__ __forceinline__ float kval(const float* k, int i) { return k[i]; }
__device__ __forceinline__ float kval(const u8* k, int i) { return h2f(((const u16*)k)[i]); }
template <class K>
__device__ __forceinline__ float dot_f16_ggml(const K* __restrict__ k, const float* __restrict__ q, int dim) {
    if (dim % 64 != 0) {
        float s = 0.0f;
        for (int i = 0; i < dim; i++) s = __fmaf_rn(kval(k, i), q[i], s);
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
                a[j][l] = __fmaf_rn(kval(k, e), q[e], a[j][l]);
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

// stage_keys widens keys ic..ic+nk-1 (F16, head offset off, rows kvStride
// apart) into ks, 64 rows of dim+1 floats (zeros past nk).
// Pairs of values (dim is even) in batches of 8 loads a thread.
__device__ void stage_keys(const u8* kc, int kvStride, int off, int ic, int nk, int dim, float* ks) {
    int half = dim / 2, total = 64 * half;
    for (int i0 = threadIdx.x; i0 < total; i0 += 8 * blockDim.x) {
        u32 v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            int idx = i0 + u * blockDim.x, key = idx / half, p = idx % half;
            v[u] = idx < total && key < nk ? ((const u32*)kc)[((i64)(ic + key) * kvStride + off) / 2 + p] : 0u;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            int idx = i0 + u * blockDim.x, key = idx / half, p = idx % half;
            if (idx < total) {
                ks[key * (dim + 1) + 2 * p] = h2f((u16)(v[u] & 0xffff));
                ks[key * (dim + 1) + 2 * p + 1] = h2f((u16)(v[u] >> 16));
            }
        }
    }
}

// attention_fa is ggml's CPU flash attention for one query row over an F16
// cache, as the CPU backend's FlashAttentionGGML computes it: grid (heads,
// rows) as attention's. ggml picks the kernel by the rows of the pass (*passp):
// below 64 rows the F16 one-chunk kernel, from 64 on the float32 tiled one.
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
// head dimension with the float32 query; per tile warp 0 takes the
// maximum, rescales, and sums ggml_expf(s - M) in 16-lane trees added in
// double; the float32 accumulator takes the tile's keys by fused
// multiply-adds in order.
//
// Both stage each tile of 64 keys in shared memory first (widened to
// float32, rows padded to dim+1 floats: no bank conflicts), as the
// threads' serial dot products would otherwise read strided rows.
//
// attention_fa_tiled is the tiled kernel alone, for passes the host knows to
// have 64 rows or more (fewer registers than both together: more blocks
// resident).
#define ATTN_FA_PARAMS                                                                             \
    const float *__restrict__ q, const u8 *__restrict__ kc, const u8 *__restrict__ vc,             \
        float *__restrict__ out, float *__restrict__ scores, int heads, int kvHeads, int dim,      \
        const int *__restrict__ info, int ctx, float scale, const int *__restrict__ passp,         \
        int qStride, i64 slotBytes
template <bool TILED_ONLY>
__device__ __forceinline__ void attention_fa_body(ATTN_FA_PARAMS) {
    int rows = TILED_ONLY ? 64 : *passp;
    int r = blockIdx.y;
    int n = ROW_POS(info, r) + 1;
    kc += (i64)ROW_SLOT(info, r) * slotBytes;
    vc += (i64)ROW_SLOT(info, r) * slotBytes;
    q += (i64)r * qStride;
    out += (i64)r * heads * dim;
    scores += (i64)r * heads * ctx;
    extern __shared__ float faShared[];  // dim floats, (tiled: dim accumulators, 64 scores), 64 x (dim+1) keys
    float* qs = faShared;
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
        float* ks = kq + 64;
        for (int ic = 0; ic < n; ic += 64) {
            int nk = min(64, n - ic);
            stage_keys(kc, kvStride, off, ic, nk, dim, ks);
            __syncthreads();
            for (int tk = threadIdx.x; tk < 64; tk += blockDim.x) {
                float s = ninf;
                if (tk < nk) {
                    const float* kr = ks + tk * (dim + 1);
                    s = 0.0f;
                    for (int d = 0; d < dim; d++) s = __fmaf_rn(qs[d], kr[d], s);
                    s = __fmul_rn(s, scale);
                }
                kq[tk] = s;
            }
            __syncthreads();
            // Warp 0: the tile's maximum (exact in any order), the
            // rescale, the 64 exponentials (two a lane) and their four
            // 16-lane trees (shuffles pair the same elements as ggml's
            // loop), the trees' sums added in double in order.
            if (threadIdx.x < WARP) {
                int lane = threadIdx.x;
                float k0 = kq[lane], k1 = kq[lane + 32];
                float tileMax = warp_max(fmaxf(k0, k1));
                float M = tms, S = total;
                int flag = 0;  // 0: skip the tile, 1: add, 2: rescale and add
                if (tileMax != ninf) {
                    flag = 1;
                    float Mnew = fmaxf(M, tileMax);
                    if (Mnew > M) {
                        float m = (float)exp((double)__fsub_rn(M, Mnew));
                        if (lane == 0) ms = m;
                        S = __fmul_rn(S, m);
                        flag = 2;
                    }
                    M = Mnew;
                    float e0 = ggml_expf(__fsub_rn(k0, M)), e1 = ggml_expf(__fsub_rn(k1, M));
                    kq[lane] = e0;
                    kq[lane + 32] = e1;
                    for (int w = 8; w >= 1; w /= 2) {
                        float t0 = __shfl_down_sync(FULL, e0, w, 16), t1 = __shfl_down_sync(FULL, e1, w, 16);
                        if ((lane % 16) < w) {
                            e0 = __fadd_rn(e0, t0);
                            e1 = __fadd_rn(e1, t1);
                        }
                    }
                    float g1 = __shfl_sync(FULL, e0, 16), g3 = __shfl_sync(FULL, e1, 16);
                    double sum = __dadd_rn(__dadd_rn(__dadd_rn(__dadd_rn(0.0, (double)e0), (double)g1), (double)e1), (double)g3);
                    S = (float)__dadd_rn((double)S, sum);
                }
                if (lane == 0) {
                    tms = M;
                    total = S;
                    tflag = flag;
                }
            }
            __syncthreads();
            int flag = tflag;
            if (flag != 0) {
                float m = ms;
                for (int i = threadIdx.x; i < dim; i += blockDim.x) {
                    float a = acc[i];
                    if (flag == 2) a = __fmul_rn(a, m);
                    const u16* vr = (const u16*)vc + (i64)ic * kvStride + off + i;
                    // Batches of 8 values loaded before their fused
                    // multiply-adds, so the loads overlap.
                    for (int t0 = 0; t0 < nk; t0 += 8) {
                        float vv[8];
#pragma unroll
                        for (int u = 0; u < 8; u++) vv[u] = t0 + u < nk ? h2f(vr[(i64)(t0 + u) * kvStride]) : 0.0f;
#pragma unroll
                        for (int u = 0; u < 8; u++)
                            if (t0 + u < nk) a = __fmaf_rn(kq[t0 + u], vv[u], a);
                    }
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
    if (TILED_ONLY) return;
    float* sc = scores + (i64)h * ctx;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) qs[i] = h2f(f2h(q[h * dim + i]));
    __syncthreads();
    if (n <= (int)blockDim.x) {
        // One key a thread, read from global memory: one round (decoding).
        if ((int)threadIdx.x < n)
            sc[threadIdx.x] = __fmul_rn(dot_f16_ggml(kc + ((i64)threadIdx.x * kvStride + off) * 2, qs, dim), scale);
    } else {
        float* ks = qs + dim;
        for (int ic = 0; ic < n; ic += 64) {
            int nk = min(64, n - ic);
            stage_keys(kc, kvStride, off, ic, nk, dim, ks);
            __syncthreads();
            if ((int)threadIdx.x < nk) sc[ic + threadIdx.x] = __fmul_rn(dot_f16_ggml(ks + threadIdx.x * (dim + 1), qs, dim), scale);
            __syncthreads();
        }
    }
    __syncthreads();
    // The online softmax's maxima are prefix maxima: each thread takes a
    // segment of keys, a block scan gives the maximum before it, and the
    // exponentials run in parallel; only the running sum S stays serial.
    {
        const float ninf = __uint_as_float(0xff800000u);
        int per = (n + blockDim.x - 1) / blockDim.x;
        int lo = min(n, (int)threadIdx.x * per), hi = min(n, lo + per);
        float seg = ninf;
        for (int j = lo; j < hi; j++) seg = fmaxf(seg, sc[j]);
        float M = block_excl_max(seg);
        for (int j = lo; j < hi; j++) {
            float s = sc[j];
            if (s > M) {
                sc[j] = -(float)exp((double)__fsub_rn(M, s));
                M = s;
            } else {
                sc[j] = (float)exp((double)__fsub_rn(s, M));
            }
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float S = 0.0f;
#pragma unroll 8
        for (int j = 0; j < n; j++) {
            float w = sc[j];
            S = (__float_as_uint(w) >> 31) ? __fadd_rn(__fmul_rn(S, -w), 1.0f) : __fadd_rn(S, w);
        }
        total = S;
    }
    __syncthreads();
    float S = total;
    float inv = S != 0.0f ? __fdiv_rn(1.0f, S) : 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const u16* vr = (const u16*)vc + off + i;
        u16 acc = 0;
        for (int j0 = 0; j0 < n; j0 += 8) {
            float vv[8];
#pragma unroll
            for (int u = 0; u < 8; u++) vv[u] = j0 + u < n ? h2f(vr[(i64)(j0 + u) * kvStride]) : 0.0f;
#pragma unroll
            for (int u = 0; u < 8; u++) {
                if (j0 + u >= n) break;
                float w = sc[j0 + u];
                float vs = w;
                if (__float_as_uint(w) >> 31) {
                    acc = f2h(__fmul_rn(h2f(acc), -w));
                    vs = 1.0f;
                }
                acc = f2h(__fmaf_rn(vv[u], vs, h2f(acc)));
            }
        }
        out[h * dim + i] = __fmul_rn(h2f(acc), inv);
    }
}

#define ATTN_FA_ARGS q, kc, vc, out, scores, heads, kvHeads, dim, info, ctx, scale, passp, qStride, slotBytes
extern "C" __global__ void attention_fa(ATTN_FA_PARAMS) { attention_fa_body<false>(ATTN_FA_ARGS); }
extern "C" __global__ void __launch_bounds__(256) attention_fa_tiled(ATTN_FA_PARAMS) { attention_fa_body<true>(ATTN_FA_ARGS); }


