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
    pdl_start();
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

// dot_reduce adds dot_f16_ggml's four 16-lane accumulators:
// (a0+a2)+(a1+a3), then halves pairwise.
__device__ __forceinline__ float dot_reduce(float (&a)[4][16]) {
    float v[16];
#pragma unroll
    for (int l = 0; l < 16; l++) v[l] = __fadd_rn(__fadd_rn(a[0][l], a[2][l]), __fadd_rn(a[1][l], a[3][l]));
#pragma unroll
    for (int l = 0; l < 8; l++) v[l] = __fadd_rn(v[l], v[l + 8]);
#pragma unroll
    for (int l = 0; l < 4; l++) v[l] = __fadd_rn(v[l], v[l + 4]);
#pragma unroll
    for (int l = 0; l < 2; l++) v[l] = __fadd_rn(v[l], v[l + 2]);
    return __fadd_rn(v[0], v[1]);
}

template <class K>
__device__ __forceinline__ float dot_f16_ggml(const K* __restrict__ k, const float* __restrict__ q, int dim) {
    if (dim % 64 != 0) {
        float s = 0.0f;
        for (int i = 0; i < dim; i++) s = __fmaf_rn(kval(k, i), q[i], s);
        return s;
    }
    float a[4][16] = {};  // dot_reduce's four 16-lane accumulators
    for (int i = 0; i < dim; i += 64) {
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int l = 0; l < 16; l++) {
                int e = i + 16 * j + l;
                a[j][l] = __fmaf_rn(kval(k, e), q[e], a[j][l]);
            }
    }
    return dot_reduce(a);
}

// unpack8 widens 8 F16 values (16 bytes) to float32.
__device__ __forceinline__ void unpack8(uint4 p, float* k) {
    u32 w[4] = {p.x, p.y, p.z, p.w};
#pragma unroll
    for (int u = 0; u < 4; u++) k[2 * u] = h2f((u16)(w[u] & 0xffff)), k[2 * u + 1] = h2f((u16)(w[u] >> 16));
}

// dot_f16_swz is dot_f16_ggml over key row k of dim F16 values in shared
// memory whose 16-byte chunks are swizzled (chunk c at c ^ (key & swz), as
// fa_copy places them: 16-byte loads from 8 rows meet no bank twice) and
// the float32 query q (shared, 16-byte aligned): the same sums.
__device__ __forceinline__ float dot_f16_swz(const u16* __restrict__ k, int key, int swz, const float* __restrict__ q,
                                             int dim) {
    int x = key & swz;
    if (dim % 64 != 0) {
        float s = 0.0f;
        for (int c = 0; c < dim / 8; c++) {
            float kv[8];
            unpack8(*(const uint4*)(k + (c ^ x) * 8), kv);
#pragma unroll
            for (int u = 0; u < 8; u++) s = __fmaf_rn(kv[u], q[8 * c + u], s);
        }
        return s;
    }
    float a[4][16] = {};  // dot_reduce's four 16-lane accumulators
    for (int i = 0; i < dim; i += 64) {
#pragma unroll
        for (int cc = 0; cc < 8; cc++) {
            int c = i / 8 + cc;
            float kv[8];
            unpack8(*(const uint4*)(k + (c ^ x) * 8), kv);
            float4 q0 = *(const float4*)(q + 8 * c), q1 = *(const float4*)(q + 8 * c + 4);
            float qv[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
#pragma unroll
            for (int u = 0; u < 8; u++) {
                int e = 8 * cc + u;
                a[e / 16][e % 16] = __fmaf_rn(kv[u], qv[u], a[e / 16][e % 16]);
            }
        }
    }
    return dot_reduce(a);
}

// dot_f16_swz_p is dot_f16_swz (head dimension a multiple of 64) over P
// consecutive lanes (P = 2 or 4, sub = the lane's place among them): each
// takes the 16/P accumulator lanes l = sub*16/P.. of dot_reduce's four
// rows, and dot_reduce's halving steps cross lanes by shuffles (segments of
// P lanes) where the partner lane holds l + w: the same products, sums and
// order, so the same float. Every lane of the warp calls it; lane sub 0
// gets the dot product. For rows of few keys, where one thread a key
// leaves most producers idle and the chain waits on the dot's latency.
template <int P>
__device__ __forceinline__ float dot_f16_swz_p(const u16* __restrict__ k, int key, int swz,
                                               const float* __restrict__ q, int dim, int sub) {
    constexpr int L = 16 / P;  // accumulator lanes a thread: 8 or 4 values, one 16-byte chunk or half of one
    int x = key & swz;
    float a[4][L] = {};
    for (int i = 0; i < dim; i += 64) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int e0 = i + 16 * j + sub * L, c = e0 / 8;
            float kv[8];
            if (L == 8) {
                unpack8(*(const uint4*)(k + (c ^ x) * 8), kv);
            } else {
                uint2 h = *(const uint2*)(k + (c ^ x) * 8 + e0 % 8);
                unpack8(make_uint4(h.x, h.y, 0u, 0u), kv);
            }
#pragma unroll
            for (int u = 0; u < L; u++) a[j][u] = __fmaf_rn(kv[u], q[e0 + u], a[j][u]);
        }
    }
    float v[L];
#pragma unroll
    for (int u = 0; u < L; u++) v[u] = __fadd_rn(__fadd_rn(a[0][u], a[2][u]), __fadd_rn(a[1][u], a[3][u]));
#pragma unroll
    for (int w = 8; w >= 1; w /= 2) {
        if (w >= L) {
#pragma unroll
            for (int u = 0; u < L; u++) v[u] = __fadd_rn(v[u], __shfl_down_sync(FULL, v[u], w / L, P));
        } else {
#pragma unroll
            for (int u = 0; u < L; u++)
                if (u < w) v[u] = __fadd_rn(v[u], v[u + w]);
        }
    }
    return v[0];
}

// fa_tile_max takes a key tile's maximum tileMax (not -inf) into a row's
// running maximum M: where M grows, the running sum S is scaled by ms (the
// exponential of the old maximum less the new, in double, rounded to
// float) and 2 is returned, else 1.
__device__ __forceinline__ int fa_tile_max(float tileMax, float& M, float& S, float& ms) {
    int flag = 1;
    float Mnew = fmaxf(M, tileMax);
    if (Mnew > M) {
        ms = (float)exp((double)__fsub_rn(M, Mnew));
        S = __fmul_rn(S, ms);
        flag = 2;
    }
    M = Mnew;
    return flag;
}

// fa_tile_softmax is one key tile's online-softmax step of ggml's tiled
// kernel for one query row (ggml_vec_soft_max_f32 after the rescale), run
// by a whole warp: lane l holds the scores of keys l and l+32 (-inf where
// masked) in k0 and k1 and gets their exponentials ggml_expf(s - M) back.
// It returns 0 when every key is masked (the tile is skipped; nothing
// changes), 1 when the row's maximum M stays, 2 when it grows: then the
// accumulator and the running sum S are scaled by ms (S here). The tile's
// maximum is exact in any order; its four 16-lane trees pair the elements
// as ggml's loop (shuffles), and their sums are added in double in order.
__device__ __forceinline__ int fa_tile_softmax(float& k0, float& k1, float& M, float& S, float& ms) {
    const float ninf = __uint_as_float(0xff800000u);
    int lane = threadIdx.x % WARP;
    float tileMax = warp_max(fmaxf(k0, k1));
    if (tileMax == ninf) return 0;
    int flag = fa_tile_max(tileMax, M, S, ms);
    float e0 = ggml_expf(__fsub_rn(k0, M)), e1 = ggml_expf(__fsub_rn(k1, M));
    k0 = e0;
    k1 = e1;
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
    return flag;
}

// fa_tile_softmax8 is fa_tile_softmax for four rows a warp at once: the
// eight lanes 8g..8g+7 take one row, lane j of them keys j, j+8, .., j+56
// in e[0..7]. Every sum pairs the same elements as fa_tile_softmax's
// shuffles: lane j's e[0]+e[1] is the first step of the tree over keys
// 0-15 (e[2]+e[3] of 16-31, and so on), and three width-8 shuffle steps
// finish the four trees, whose sums lane 8g adds in double in order. It
// returns fa_tile_softmax's flag; every lane runs the shuffles (a row whose
// keys are all masked, 0 returned and nothing changed, computes with the
// others).
__device__ __forceinline__ int fa_tile_softmax8(float* e, float& M, float& S, float& ms) {
    const float ninf = __uint_as_float(0xff800000u);
    int j = threadIdx.x % 8;
    float mx = fmaxf(fmaxf(fmaxf(e[0], e[1]), fmaxf(e[2], e[3])), fmaxf(fmaxf(e[4], e[5]), fmaxf(e[6], e[7])));
#pragma unroll
    for (int w = 4; w >= 1; w /= 2) mx = fmaxf(mx, __shfl_xor_sync(FULL, mx, w, 8));
    int flag = mx != ninf ? fa_tile_max(mx, M, S, ms) : 0;
#pragma unroll
    for (int t = 0; t < 8; t++) e[t] = ggml_expf(__fsub_rn(e[t], M));
    float tr[4];
#pragma unroll
    for (int t = 0; t < 4; t++) tr[t] = __fadd_rn(e[2 * t], e[2 * t + 1]);
#pragma unroll
    for (int w = 4; w >= 1; w /= 2) {
#pragma unroll
        for (int t = 0; t < 4; t++) {
            float o = __shfl_down_sync(FULL, tr[t], w, 8);
            if (j < w) tr[t] = __fadd_rn(tr[t], o);
        }
    }
    if (flag) {
        double sum = __dadd_rn(__dadd_rn(__dadd_rn(__dadd_rn(0.0, (double)tr[0]), (double)tr[1]), (double)tr[2]), (double)tr[3]);
        S = (float)__dadd_rn((double)S, sum);
    }
    return flag;
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

// The one-chunk kernel's staged tiles (attention_fa): FA_DEC_KT keys, for
// head dims up to FA_DEC_DIM; blocks of FA_DEC_KT threads (attention_fa_m:
// smaller tiles).
#define FA_DEC_KT 256
#define FA_DEC_DIM 128
#define FA_DEC_SC 1024

// copy_rows_async starts copying nk rows (keys j0.., head offset off in
// elements, rows kvStride elements apart; rowBytes each, a multiple of 16)
// of cache src into dst (rows dstStride bytes apart) as 16-byte cp.async
// pieces issued by threads tid of nthr, then commits them as one group
// unless commit is false (the caller commits several copies as one);
// cp.async.wait_all (or wait_group) completes them. Where swz is not 0,
// piece p of row k lands at piece p ^ (k & swz) of its row. EVICT gives
// the pieces an L2 evict-first policy: the split decode attention reads
// each key and value once, and the weights the next products asked for in
// L2 should stay there (BenchmarkDecodeLong, H100: 1.5B Q4_K_M at 16,384
// positions 567 -> 611 tok/s).
template <bool EVICT = false>
__device__ __forceinline__ void copy_rows_async(const u8* src, u8* dst, i64 kvStride, i64 off, int j0, int nk,
                                                int rowBytes, int elem, int dstStride, int tid, int nthr,
                                                int swz = 0, bool commit = true) {
    int pr = rowBytes / 16;
    unsigned long long pol = 0;
    if (EVICT) asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    auto piece = [&](int key, int p) {
        const u8* s = src + (((i64)(j0 + key) * kvStride + off) * elem) + p * 16;
        u32 d = (u32)__cvta_generic_to_shared(dst + key * dstStride + (p ^ (key & swz)) * 16);
        if (EVICT) {
            asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;" ::"r"(d), "l"(s), "l"(pol)
                         : "memory");
        } else {
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(s) : "memory");
        }
    };
    if (nthr % pr == 0) {
        // A thread's pieces are the same piece of every (nthr/pr)-th row:
        // no division a piece.
        for (int key = tid / pr, p = tid % pr; key < nk; key += nthr / pr) piece(key, p);
    } else {
        for (int i = tid; i < nk * pr; i += nthr) piece(i / pr, i % pr);
    }
    if (commit) asm volatile("cp.async.commit_group;" ::: "memory");
}

// fa_acc is one output element's F16 accumulator in ggml's one-chunk
// kernel: its values v (F16, rows S halves apart, or dim where S is 0);
// each step rounds to F16 as ggml_vec_scale_f16 and ggml_vec_mad_f16 do. A
// constant S makes a group's value loads independent of each other.
template <int S>
struct fa_acc {
    u16 acc;
    const u16* v;
    int dim;
    __device__ __forceinline__ u32 load(int t) const { return v[t * (S ? S : dim)]; }  // u32: packing would wait
    __device__ __forceinline__ void add(u32 x, float w) { acc = f2h(__fmaf_rn(h2f((u16)x), w, h2f(acc))); }
    __device__ __forceinline__ void scale(float ms) { acc = f2h(__fmul_rn(h2f(acc), ms)); }
};

// fa_sum is the one-chunk kernel's running sum of the weights.
struct fa_sum {
    float S;
    __device__ __forceinline__ u32 load(int) const { return 0; }
    __device__ __forceinline__ void add(u32, float w) { S = __fadd_rn(S, w); }
    __device__ __forceinline__ void scale(float ms) { S = __fmul_rn(S, ms); }
};

// fa_key takes one key (value v; weight x, -ms where the key is a new
// maximum: the chain is scaled by ms, then the key added with weight 1)
// into chain c.
template <class C>
__device__ __forceinline__ void fa_key(C& c, u32 v, float x) {
    if (__float_as_uint(x) >> 31) {
        c.scale(-x);
        x = 1.0f;
    }
    c.add(v, x);
}

// fa_add8 takes group g of 8 keys, none a new maximum, into chain c: only
// the additions, the weights and values loaded first.
template <class C>
__device__ __forceinline__ void fa_add8(C& c, const float* __restrict__ w, int g) {
    float ww[8];
    u32 vv[8];
#pragma unroll
    for (int u = 0; u < 8; u++) ww[u] = w[8 * g + u], vv[u] = c.load(8 * g + u);
#pragma unroll
    for (int u = 0; u < 8; u++) c.add(vv[u], ww[u]);
}

// FA_RUNS_MIN is the fewest keys for which fa_run goes by runs of groups
// without a new maximum: shorter rows (and a pipelined row's last tile)
// take the groups one by one, where a row's first groups hold most of its
// maxima (BenchmarkDecodeLong 1.5B Q4_K_M at positions 0-127, H100: runs
// for every row 1.1% below the one-group-ahead loop, runs from 256 keys
// 0.6%).
#ifndef FA_RUNS_MIN
#define FA_RUNS_MIN 256
#endif

// fa_run takes nk keys into chain c (fa_acc, fa_acc_sum or fa_sum) in
// order: w the keys' weights, -ms where a key is a new maximum (fa_key).
// With FLAGS, flags is fa_flags' bit mask of the groups of 8 keys that
// hold a new maximum, group g of w at bit g0 + g. From FA_RUNS_MIN keys
// on, the groups between two flagged ones go through a loop of additions
// only (fa_add8: no branch a group, which the compiler pipelines; an H100
// runs the F16 chain at ~18 cycles a key there against ~28 with a branch
// a group, and a decode step's one-row attention at 896 keys at ~31
// cycles a key against ~37), a flagged group key by key. Otherwise groups
// of 8 load their weights, values and flag (without FLAGS: the weights'
// sign bits) one group ahead, and a group without a new maximum (the same
// for every thread: a uniform branch) runs only the additions.
template <bool FLAGS, class C>
__device__ __forceinline__ void fa_run(C& c, const float* __restrict__ w, const u32* __restrict__ flags, int g0,
                                       int nk) {
    int ng = nk / 8;
    if (FLAGS && nk >= FA_RUNS_MIN) {
        for (int g = 0; g < ng;) {
            // e: the next flagged group at or after g (ng: none).
            int b = g0 + g, k = b >> 5, end = g0 + ng;
            u32 m = flags[k] & (~0u << (b & 31));
            while (m == 0 && (++k) * 32 < end) m = flags[k];
            int e = m ? min(ng, k * 32 + __ffs(m) - 1 - g0) : ng;
            for (; g < e; g++) fa_add8(c, w, g);
            if (e < ng) {
#pragma unroll
                for (int u = 0; u < 8; u++) fa_key(c, c.load(8 * e + u), w[8 * e + u]);
            }
            g = e + 1;
        }
    } else {
        auto flag = [&](int g) { return flags[(g0 + g) >> 5] >> ((g0 + g) & 31) & 1u; };
        float wn[8];
        u32 vn[8], fn = 0;
        if (ng > 0) {
#pragma unroll
            for (int u = 0; u < 8; u++) wn[u] = w[u], vn[u] = c.load(u);
            if (FLAGS) fn = flag(0);
        }
#pragma unroll 2
        for (int g = 0; g < ng; g++) {
            float ww[8];
            u32 vv[8], neg = fn;
#pragma unroll
            for (int u = 0; u < 8; u++) ww[u] = wn[u], vv[u] = vn[u];
            if (!FLAGS) {
                u32 o[4];
#pragma unroll
                for (int u = 0; u < 4; u++) o[u] = __float_as_uint(wn[2 * u]) | __float_as_uint(wn[2 * u + 1]);
                neg = ((o[0] | o[1]) | (o[2] | o[3])) >> 31;
            }
            if (g + 1 < ng) {
                int t = (g + 1) * 8;
#pragma unroll
                for (int u = 0; u < 8; u++) wn[u] = w[t + u], vn[u] = c.load(t + u);
                if (FLAGS) fn = flag(g + 1);
            }
            if (neg == 0) {
#pragma unroll
                for (int u = 0; u < 8; u++) c.add(vv[u], ww[u]);
            } else {
#pragma unroll
                for (int u = 0; u < 8; u++) fa_key(c, vv[u], ww[u]);
            }
        }
    }
    for (int t = ng * 8; t < nk; t++) fa_key(c, c.load(t), w[t]);
}

// fa_elem runs an output element's chain (fa_acc from acc) over nk keys:
// v its values, rows s halves apart, a constant where s is S0 or S1 (the
// strides a kernel meets: one instance each, and one for any other);
// flags and g0 as fa_run takes them.
template <bool FLAGS, int S0, int S1>
__device__ __forceinline__ u16 fa_elem(u16 acc, const u16* v, int s, const float* w, const u32* flags, int g0,
                                       int nk) {
    if (s == S0) {
        fa_acc<S0> c{acc, v, s};
        fa_run<FLAGS>(c, w, flags, g0, nk);
        return c.acc;
    }
    if (s == S1) {
        fa_acc<S1> c{acc, v, s};
        fa_run<FLAGS>(c, w, flags, g0, nk);
        return c.acc;
    }
    fa_acc<0> c{acc, v, s};
    fa_run<FLAGS>(c, w, flags, g0, nk);
    return c.acc;
}

// FA_FLAG_WORDS is the words of fa_flags' mask for a row of up to
// FA_DEC_SC keys.
#define FA_FLAG_WORDS (FA_DEC_SC / 256)

// fa_flags sets bit g of flags for each whole group g of 8 of the n
// weights w that holds a new maximum (a sign bit), the other bits (up to
// the word of the last group) to 0: a warp's ballot for 32 groups. Every
// thread of the block calls it (blocks of whole warps); the flags are
// read after a barrier.
__device__ __forceinline__ void fa_flags(const float* w, u32* flags, int n) {
    int ng = n / 8, lane = threadIdx.x % WARP;
    for (int g0 = threadIdx.x - lane; g0 < ng; g0 += blockDim.x) {
        int g = g0 + lane;
        u32 o = 0;
        if (g < ng) {
#pragma unroll
            for (int u = 0; u < 8; u++) o |= __float_as_uint(w[8 * g + u]);
        }
        u32 m = __ballot_sync(FULL, o >> 31);
        if (lane == 0) flags[g0 / WARP] = m;
    }
}

// fa_softmax turns the scores sc[0..n) of one query row into ggml's
// one-chunk weights in place: -ms where a key is a new maximum, else vs
// (expf as exp in double, rounded). The online softmax's maxima are prefix
// maxima: each thread takes a segment of keys, a block scan gives the
// maximum before it, and the exponentials run in parallel; only the
// running sum S (fa_run) stays serial. Every thread of the block calls it.
__device__ __forceinline__ void fa_softmax(float* sc, int n) {
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
// as ggml_vec_scale_f16 and ggml_vec_mad_f16 do. For head dims up to 128
// (multiples of 8) keys, then values, go by tiles of 256 through two
// buffers in shared memory, copied by cp.async while the block works on
// the tile before; the element chains (fa_run) run a value tile while the
// warps past the output elements copy the next one, and the running sum,
// serial too, is taken meanwhile by the block's last thread. Up to 1,024
// keys the scores and weights stay in shared memory. attention_fa_cl
// (below) spreads a head over a cluster of blocks.
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
// resident); attention_fa_rows_* (below) replace it for head dims 64 and 128.
#define ATTN_FA_PARAMS                                                                             \
    const float *__restrict__ q, const u8 *__restrict__ kc, const u8 *__restrict__ vc,             \
        float *__restrict__ out, float *__restrict__ scores, int heads, int kvHeads, int dim,      \
        const int *__restrict__ info, int ctx, float scale, const int *__restrict__ passp,         \
        int qStride, i64 slotBytes
// attention_fa_body is the kernels' work for query head h of row r; the
// one-chunk kernel stages its key and value tiles of KT keys where the
// block (at least KT threads, more than dim) and head sizes allow. The
// query is read at L2 (ld.global.cg): attention_fa_rope calls it on a query
// it wrote itself.
template <bool TILED_ONLY, int KT>
__device__ __forceinline__ void attention_fa_body(ATTN_FA_PARAMS, int h, int r) {
    pdl_start();  // everything below reads what the kernels before wrote (rope_store's cache rows, the query)
    int rows = TILED_ONLY ? 64 : *passp;
    int n = ROW_POS(info, r) + 1;
    kc += (i64)ROW_SLOT(info, r) * slotBytes;
    vc += (i64)ROW_SLOT(info, r) * slotBytes;
    q += (i64)r * qStride;
    out += (i64)r * heads * dim;
    scores += (i64)r * heads * ctx;
    extern __shared__ __align__(16) float faShared[];  // dim floats, (tiled: dim accumulators, 64 scores), 64 x (dim+1) keys
    float* qs = faShared;
    __shared__ float total, tms, ms;
    __shared__ int tflag;
    __shared__ u32 faFlags[FA_FLAG_WORDS];  // (staged, up to FA_DEC_SC keys) fa_flags
    int group = heads / kvHeads;
    int kvStride = kvHeads * dim;
    int off = (h / group) * dim;
    if (rows >= 64) {
        float* acc = qs + dim;
        float* kq = acc + dim;
        const float ninf = __uint_as_float(0xff800000u);
        for (int i = threadIdx.x; i < dim; i += blockDim.x) {
            qs[i] = __ldcg(q + h * dim + i);
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
            // Warp 0: the tile's online-softmax step.
            if (threadIdx.x < WARP) {
                int lane = threadIdx.x;
                float k0 = kq[lane], k1 = kq[lane + 32];
                float M = tms, S = total, m = 1.0f;
                int flag = fa_tile_softmax(k0, k1, M, S, m);
                kq[lane] = k0;
                kq[lane + 32] = k1;
                if (lane == 0) {
                    tms = M;
                    total = S;
                    tflag = flag;
                    ms = m;
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
    // Staged (head dims up to 128, multiples of 8, a warp past the output
    // elements): the row's key tiles of KT keys, then its value tiles, go
    // through two buffers in shared memory (tile s in buffer s % 2), each
    // copied by cp.async while the block works on the tile before it.
    // Rows of up to FA_DEC_SC keys keep their scores in shared memory.
    int pw = (dim + WARP - 1) / WARP * WARP;  // the warps of the output elements' chains
    bool staged = dim % 8 == 0 && dim <= FA_DEC_DIM && (int)blockDim.x >= KT && (int)blockDim.x >= pw + WARP;
    float* wsh = qs + dim;  // (staged) the scores, then weights, of up to FA_DEC_SC keys
    u16* buf = (u16*)(wsh + FA_DEC_SC);
    bool local = staged && n <= FA_DEC_SC;
    float* sc = local ? wsh : scores + (i64)h * ctx;
    int nt = (n + KT - 1) / KT, cs = dim / 8;
    // Key rows' 16-byte chunks swizzled (dot_f16_swz); value rows plain.
    int swz = cs % 8 == 0 ? 7 : cs % 4 == 0 ? 3 : cs % 2 == 0 ? 1 : 0;
    // tile(s, tid, nthr) starts tile s's copy by threads tid of nthr (one
    // commit group each).
    auto tile = [&](int s, int tid, int nthr) {
        int j0 = (s % nt) * KT;
        copy_rows_async(s < nt ? kc : vc, (u8*)(buf + (s % 2) * KT * dim), kvStride, off, j0, min(KT, n - j0),
                        dim * 2, 2, dim * 2, tid, nthr, s < nt ? swz : 0);
    };
    if (staged) tile(0, threadIdx.x, blockDim.x), tile(1, threadIdx.x, blockDim.x);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) qs[i] = h2f(f2h(__ldcg(q + h * dim + i)));
    __syncthreads();
    if (staged) {
        // The key tiles, the block a key a thread; the next tile (and after
        // the last key tile the first value tile) copied meanwhile.
        for (int s = 0; s < nt; s++) {
            int j0 = s * KT, nk = min(KT, n - j0), k = threadIdx.x;
            asm volatile("cp.async.wait_group 1;" ::: "memory");  // tile s + 1 <= nt may still come
            __syncthreads();
            if (k < nk) sc[j0 + k] = __fmul_rn(dot_f16_swz(buf + (s % 2) * KT * dim + k * dim, k, swz, qs, dim), scale);
            __syncthreads();  // the buffer is free
            if (s + 2 <= nt) tile(s + 2, threadIdx.x, blockDim.x);
        }
        asm volatile("cp.async.wait_group 0;" ::: "memory");  // the first value tile
    } else if (n <= (int)blockDim.x) {
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
    fa_softmax(sc, n);
    __syncthreads();
    if (staged) {
        // Thread i < dim runs output element i's chain over each value
        // tile's keys (fa_run) while the warps past the elements copy the
        // next tile, and the block's last thread adds the running sum S.
        int i = threadIdx.x, last = blockDim.x - 1;
        u16 acc = 0;
        fa_sum f{0.0f};
        if (local) fa_flags(sc, faFlags, n);
        __syncthreads();
        for (int t = 0; t < nt; t++) {
            int s = nt + t, j0 = t * KT, nk = min(KT, n - j0);
            if (i < dim) {
                const u16* v = buf + (s % 2) * KT * dim + i;
                if (local) {
                    acc = fa_elem<true, 64, 128>(acc, v, dim, sc + j0, faFlags, j0 / 8, nk);
                } else {
                    fa_acc<0> c{acc, v, dim};
                    fa_run<false>(c, sc + j0, nullptr, 0, nk);
                    acc = c.acc;
                }
            } else if (i >= pw) {
                if (t + 1 < nt) tile(s + 1, i - pw, blockDim.x - pw);
                if (i == last) {
                    if (local)
                        fa_run<true>(f, sc + j0, faFlags, j0 / 8, nk);
                    else
                        fa_run<false>(f, sc + j0, nullptr, 0, nk);
                }
                asm volatile("cp.async.wait_group 0;" ::: "memory");
            }
            __syncthreads();  // the tile is used; the next one is here
        }
        if (i == last) total = f.S;
        __syncthreads();
        float S = total;
        if (i < dim) out[h * dim + i] = __fmul_rn(h2f(acc), S != 0.0f ? __fdiv_rn(1.0f, S) : 0.0f);
        return;
    }
    if (threadIdx.x == 0) {
        fa_sum f{0.0f};
        fa_run<false>(f, sc, nullptr, 0, n);
        total = f.S;
    }
    __syncthreads();
    float S = total;
    float inv = S != 0.0f ? __fdiv_rn(1.0f, S) : 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        fa_acc<0> c{0, (const u16*)vc + off + i, kvStride};
        fa_run<false>(c, sc, nullptr, 0, n);
        out[h * dim + i] = __fmul_rn(h2f(c.acc), inv);
    }
}

#define ATTN_FA_ARGS q, kc, vc, out, scores, heads, kvHeads, dim, info, ctx, scale, passp, qStride, slotBytes
extern "C" __global__ void __launch_bounds__(256, 2) attention_fa(ATTN_FA_PARAMS) {
    attention_fa_body<false, FA_DEC_KT>(ATTN_FA_ARGS, blockIdx.x, blockIdx.y);
}
extern "C" __global__ void __launch_bounds__(256) attention_fa_tiled(ATTN_FA_PARAMS) {
    attention_fa_body<true, FA_DEC_KT>(ATTN_FA_ARGS, blockIdx.x, blockIdx.y);
}

// attention_fa_m is attention_fa for passes of many rows (many slots'
// decode steps: a block per head and row): tiles of FA_M_KT keys and
// FA_M_THREADS threads, so that FA_M_BLOCKS blocks share a multiprocessor
// (attention_fa's 256-key tiles hold 134 KB of shared memory: one block a
// multiprocessor, and 32 rows of 12 heads ran in three waves). The same
// bits: only the tiles' size changes, not the order of any sum.
#define FA_M_KT 128
#define FA_M_THREADS 160
#define FA_M_BLOCKS 3
extern "C" __global__ void __launch_bounds__(FA_M_THREADS, FA_M_BLOCKS) attention_fa_m(ATTN_FA_PARAMS) {
    attention_fa_body<false, FA_M_KT>(ATTN_FA_ARGS, blockIdx.x, blockIdx.y);
}

// attention_fa_cl is attention_fa for rows of up to FA_DEC_SC keys (one
// decode row a head for several blocks: grid (heads x FA_CL, rows), a
// cluster of FA_CL blocks a head), the same bits: a block's copies and
// dot products run on one multiprocessor, whose memory requests in flight
// bound a one-block head (the key and value bytes of 1,024 keys, 512 KiB
// at dim 128, take most of attention_fa's time there). Block b of the
// cluster takes the scores of the b-th quarter of the keys, reads the
// others' from their shared memory (distributed shared memory), runs the
// softmax of all of them as attention_fa does, and the F16 chains of
// output elements b*dim/FA_CL.. over the values of its elements only.
// Rows of more keys, or passes of ggml's tiled kernel, run attention_fa's
// body in the cluster's first block.
#define FA_CL 4
// cluster_arrive and cluster_wait: the cluster's barrier, split (arrive
// releases this thread's writes, wait acquires the others').
__device__ __forceinline__ void cluster_arrive() { asm volatile("barrier.cluster.arrive;" ::: "memory"); }
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait;" ::: "memory"); }
// cluster_load reads the float at p (shared memory) of the cluster's block
// rank.
__device__ __forceinline__ float cluster_load(const float* p, int rank) {
    u32 a = (u32)__cvta_generic_to_shared(p), ra;
    float v;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"(a), "r"(rank));
    asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(ra) : "memory");
    return v;
}
// fa_store_v stores the row's value v (float32, as the product left it)
// in the F16 cache row vd, the block's threads striding over dim.
__device__ __forceinline__ void fa_store_v(u16* vd, const float* v, int dim) {
    for (int j = threadIdx.x; j < dim; j += blockDim.x) vd[j] = f2h(__ldcg(v + j));
}

// fa_rope_row does rope_store's work for row r's query head h and key and
// value head kvh in a one-row attention kernel: query head h turned in
// place, the key turned out of place (the key in q stays as it is) and
// both it and the value stored in the F16 cache at byte at, with cs the
// rotation of pair threadIdx.x (rope_cs; the block has at least dim/2
// threads). Blocks of the same group store the same bits.
__device__ __forceinline__ void fa_rope_row(float* row, u8* kc, u8* vc, int heads, int kvHeads, int dim, int h,
                                            int kvh, i64 at, float2 cs) {
    int half = dim / 2, kvDim = kvHeads * dim;
    u16* kd = (u16*)(kc + at) + kvh * dim;
    u16* vd = (u16*)(vc + at) + kvh * dim;
    float* qh = row + h * dim;
    const float* kh = row + heads * dim + kvh * dim;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        rot_cs(__ldcg(qh + i), __ldcg(qh + i + half), cs, qh + i, qh + i + half);
        float ra, rb;
        rot_cs(__ldcg(kh + i), __ldcg(kh + i + half), cs, &ra, &rb);
        kd[i] = f2h(ra);
        kd[i + half] = f2h(rb);
    }
    fa_store_v(vd, kh + kvDim, dim);
}

// fa_rope_qk turns pair i (< dim/2) of query head h into qs (rounded to
// F16, as the one-row kernels read the query) and of the row's key (kh:
// the group's key as the product left it) into ka, kb (F16, as the cache
// holds them), and stores the key in the cache row kd where store (one
// block a group). cs is the pair's rotation (rope_cs).
__device__ __forceinline__ void fa_rope_qk(const float* row, const float* kh, int h, int dim, int i, float2 cs,
                                           float* qs, u16* kd, bool store, u16& ka, u16& kb) {
    int half = dim / 2;
    float ra, rb;
    rot_cs(__ldcg(row + h * dim + i), __ldcg(row + h * dim + i + half), cs, &ra, &rb);
    qs[i] = h2f(f2h(ra));
    qs[i + half] = h2f(f2h(rb));
    rot_cs(__ldcg(kh + i), __ldcg(kh + i + half), cs, &ra, &rb);
    ka = f2h(ra);
    kb = f2h(rb);
    if (store) {
        kd[i] = ka;
        kd[i + half] = kb;
    }
}

// fa_one_block is the one-row kernels' work for a row they do not spread
// over their blocks (past FA_DEC_SC keys, or a pass of ggml's tiled
// kernel): in the head's first block (first), rope_store's (ROPE) and
// attention_fa's body, then the o product's Q8_0 blocks where q80 is set.
template <bool ROPE>
__device__ __forceinline__ void fa_one_block(ATTN_FA_PARAMS, int h, int r, int kvh, i64 at, float2 cs, u8* q80,
                                             bool first) {
    pdl_start();
    if (!first) return;
    if (ROPE) {
        fa_rope_row((float*)q + (i64)r * qStride, (u8*)kc, (u8*)vc, heads, kvHeads, dim, h, kvh, at, cs);
        __threadfence();
        __syncthreads();
    }
    attention_fa_body<false, FA_DEC_KT>(ATTN_FA_ARGS, h, r);
    if (q80 && dim % WARP == 0) {
        __syncthreads();  // the head's output (row 0) is in out
        int w = threadIdx.x / WARP;
        if (w < dim / WARP) q80_warp(out[h * dim + WARP * w + threadIdx.x % WARP], q80 + (h * dim / WARP + w) * 34);
    }
}

// fa_cl is attention_fa_cl's work. With ROPE (attention_fa_cl_rope, one
// row: grid (heads x FA_CL, 1)) it does rope_store's too, one launch less a
// layer of a decode step: the rotations (rope_cs, before the wait) of the
// query head, and of the group's key in the block that holds the row's
// last key, go straight into the block's shared memory, as does the
// value's last row in every block; the cache row is stored by one block a
// group (the first head's block 0), and read by none here. The same bits
// as rope_store then attention_fa_cl: the query as rope_store leaves it
// (float32, then F16 as this kernel reads it), the key and value rounded
// to F16 as the cache holds them. Rows of more keys (or passes of ggml's
// tiled kernel) take fa_rope_row, then attention_fa's body, in block 0.
template <bool ROPE>
__device__ __forceinline__ void fa_cl(ATTN_FA_PARAMS, const float* __restrict__ invFreq, float thetaScale,
                                      int style, u8* __restrict__ q80) {
    int b = blockIdx.x % FA_CL, h = blockIdx.x / FA_CL, r = blockIdx.y;
    // The pass state before the wait, at L2, as rope_store reads it: the
    // first copies' addresses need no round trip after it.
    int n = __ldcg(&ROW_POS(info, r)) + 1, slot = __ldcg(&ROW_SLOT(info, r)), rows = __ldcg(passp);
    int half = dim / 2;
    float2 cs = make_float2(0.0f, 0.0f);
    if (ROPE && (int)threadIdx.x < half) cs = rope_cs(n - 1, threadIdx.x, invFreq, thetaScale, style);
    int kvStride = kvHeads * dim, kvh = h / (heads / kvHeads), off = kvh * dim;
    float* row = (float*)q + (i64)r * qStride;  // ROPE: q, k and v as the product left them
    i64 at = (i64)slot * slotBytes + (i64)(n - 1) * kvStride * 2;
    if (n > FA_DEC_SC || rows >= 64) {
        fa_one_block<ROPE>(ATTN_FA_ARGS, h, r, kvh, at, cs, q80, b == 0);
        return;
    }
    kc += (i64)slot * slotBytes;
    vc += (i64)slot * slotBytes;
    out += (i64)r * heads * dim;
    extern __shared__ __align__(16) float faClShared[];
    __shared__ float total;
    __shared__ u32 flags[FA_FLAG_WORDS];  // fa_flags
    // Output elements a block: a quarter of the head, or where the block
    // encodes them as the o product's Q8_0 blocks (q80) and a quarter is
    // less than one, 32 in each of the first dim/32 blocks (eo: this
    // block's; the others take only their keys' scores). Each element's
    // chain is the same whichever block runs it.
    int e = q80 && dim < FA_CL * WARP ? min(dim, WARP) : dim / FA_CL;
    int eo = b * e < dim ? e : 0;
    float* qs = faClShared;              // dim
    float* sc = qs + dim;                // the row's scores, then weights
    float* mine = sc + FA_DEC_SC;        // this block's scores (FA_DEC_KT)
    u16* kt = (u16*)(mine + FA_DEC_KT);  // its keys: FA_DEC_KT rows of dim
    u16* vs = kt + FA_DEC_KT * dim;      // the row's values of its elements: n rows of e
    int chunk = (n + FA_CL - 1) / FA_CL, j0 = min(n, b * chunk), nk = min(chunk, n - j0);
    int cs8 = dim / 8, swz = cs8 % 8 == 0 ? 7 : cs8 % 4 == 0 ? 3 : cs8 % 2 == 0 ? 1 : 0;
    // With ROPE the row's own key (in the block whose keys end the row) and
    // value come from this kernel's rotation and q, not the cache.
    bool last = ROPE && nk > 0 && j0 + nk == n;
    pdl_start();
    copy_rows_async(kc, (u8*)kt, kvStride, off, j0, nk - (last ? 1 : 0), dim * 2, 2, dim * 2, threadIdx.x, blockDim.x,
                    swz);
    copy_rows_async(vc, (u8*)vs, kvStride, off + b * e, 0, eo ? n - (ROPE ? 1 : 0) : 0, e * 2, 2, e * 2, threadIdx.x,
                    blockDim.x);
    if (ROPE) {
        const float* kh = row + heads * dim + off;
        bool writer = b == 0 && h % (heads / kvHeads) == 0;  // the group's block that stores the cache row
        int i = threadIdx.x;
        if (i < half) {
            u16 ka, kb;
            fa_rope_qk(row, kh, h, dim, i, cs, qs, (u16*)(kc + (i64)(n - 1) * kvStride * 2) + off, writer, ka, kb);
            if (last) {
                int k = nk - 1, ib = i + half;
                kt[k * dim + ((i / 8) ^ (k & swz)) * 8 + i % 8] = ka;
                kt[k * dim + ((ib / 8) ^ (k & swz)) * 8 + ib % 8] = kb;
            }
        }
        if (i < eo) vs[(n - 1) * e + i] = f2h(__ldcg(kh + kvStride + b * e + i));
        if (writer) fa_store_v((u16*)(vc + (i64)(n - 1) * kvStride * 2) + off, kh + kvStride, dim);
    } else {
        for (int i = threadIdx.x; i < dim; i += blockDim.x) qs[i] = h2f(f2h(__ldcg(row + h * dim + i)));
    }
    asm volatile("cp.async.wait_group 1;" ::: "memory");  // the keys
    __syncthreads();
    tl_mark(1);  // the keys and the query in shared memory
    int k = threadIdx.x;
    if (k < nk) mine[k] = __fmul_rn(dot_f16_swz(kt + k * dim, k, swz, qs, dim), scale);
    cluster_arrive();
    cluster_wait();  // every block's scores are there
    for (int j = threadIdx.x; j < n; j += blockDim.x) sc[j] = cluster_load(mine + j % chunk, j / chunk);
    cluster_arrive();  // this block is done with the others' shared memory (waited for at the end)
    __syncthreads();
    tl_mark(2);  // every score of the row
    fa_softmax(sc, n);
    asm volatile("cp.async.wait_group 0;" ::: "memory");  // the values
    __syncthreads();
    tl_mark(3);  // the weights and the values
    fa_flags(sc, flags, n);
    __syncthreads();
    int i = threadIdx.x, lastT = blockDim.x - 1;
    u16 acc = 0;
    if (i < eo) {
        acc = fa_elem<true, 16, 32>(0, vs + i, e, sc, flags, 0, n);
    } else if (i == lastT) {
        fa_sum f{0.0f};
        fa_run<true>(f, sc, flags, 0, n);
        total = f.S;
    }
    __syncthreads();
    tl_mark(4);  // the element chains and the sum
    float S = total, val = 0.0f;
    if (i < eo) {
        val = __fmul_rn(h2f(acc), S != 0.0f ? __fdiv_rn(1.0f, S) : 0.0f);
        out[h * dim + b * e + i] = val;
    }
    if (q80 && eo == WARP && i < WARP) q80_warp(val, q80 + (h * dim / WARP + b) * 34);
    cluster_wait();  // no block leaves while another reads its scores
    tl_exit();
}
extern "C" __global__ void __cluster_dims__(FA_CL, 1, 1) __launch_bounds__(256, 1) attention_fa_cl(ATTN_FA_PARAMS) {
    fa_cl<false>(ATTN_FA_ARGS, nullptr, 0.0f, 0, nullptr);
}
// attention_fa_cl_rope takes the o product's activation buffer q80 (or
// null; head dimensions of whole Q8_0 blocks): each block's 32 output
// values are one Q8_0 block (fa_cl's e), which its first warp encodes as
// quantize would (q80_warp), so that no quantize launch runs between the
// attention and the o product.
extern "C" __global__ void __cluster_dims__(FA_CL, 1, 1)
    __launch_bounds__(256, 1) attention_fa_cl_rope(ATTN_FA_PARAMS, const float* __restrict__ invFreq,
                                                   float thetaScale, int style, u8* __restrict__ q80) {
    fa_cl<true>(ATTN_FA_ARGS, invFreq, thetaScale, style, q80);
}

// attention_fa_pl_rope is attention_fa_cl_rope's work (rope_store's, then
// ggml's one-chunk kernel for a decode row of up to FA_DEC_SC keys, the
// same bits) without a cluster, its element chains started on the first
// keys' weights while the later keys are scored. Grid (heads x P, 1), P =
// dim/32: block b of head h owns output elements 32b..32b+31, and every
// block scores all of the row's keys itself (the cluster's exchange and
// its two barriers gone; the keys are read from L2 P times). Eight producer
// warps take the keys by tiles of FA_PL_KT, a key a thread (rows of up to
// FA_PL_KT / 2 keys: 2 or 4 threads a key, dot_f16_swz_p): the score
// (dot_f16_swz), the row's running maximum before it (a scan over the tile,
// carried from tile to tile), its weight as fa_softmax leaves it and
// fa_flags' flag, then release the tile's count (st.release.cta). The chain
// warp waits for each count (ld.acquire.cta) and runs its 32
// elements' F16 chains over the released keys (fa_run), each lane also
// carrying the running sum S (fa_acc_sum: the same chain as fa_sum's). The
// cache rows of earlier steps (keys and values 0..n-2, final before this
// launch) are asked for before the PDL wait, the row's own key and value
// come from the rotation and q. Which warps take which role depends on the
// launch's layout (FA_PL_THREADS or FA_PL_ISO_THREADS, in the kernel).
// Rows of more keys, or passes of ggml's tiled kernel, run attention_fa's
// body in block 0, as fa_cl does.
#define FA_PL_KT 256
#define FA_PL_THREADS (FA_PL_KT + WARP)
#define FA_PL_ISO_THREADS (FA_PL_KT + 4 * WARP)

// fa_acc_sum is fa_acc<S> and fa_sum in one chain: the element's F16
// accumulator and the running sum of the weights, each updated as its own
// struct does.
template <int S>
struct fa_acc_sum {
    u16 acc;
    float sum;
    const u16* v;
    __device__ __forceinline__ u32 load(int t) const { return v[t * S]; }
    __device__ __forceinline__ void add(u32 x, float w) {
        acc = f2h(__fmaf_rn(h2f((u16)x), w, h2f(acc)));
        sum = __fadd_rn(sum, w);
    }
    __device__ __forceinline__ void scale(float ms) {
        acc = f2h(__fmul_rn(h2f(acc), ms));
        sum = __fmul_rn(sum, ms);
    }
};

__device__ __forceinline__ void st_release_cta(u32* p, u32 v) {
    asm volatile("st.release.cta.shared.u32 [%0], %1;" ::"r"((u32)__cvta_generic_to_shared(p)), "r"(v) : "memory");
}
__device__ __forceinline__ u32 ld_acquire_cta(const u32* p) {
    u32 v;
    asm volatile("ld.acquire.cta.shared.u32 %0, [%1];" : "=r"(v) : "r"((u32)__cvta_generic_to_shared(p)) : "memory");
    return v;
}
// bar_producers is a barrier of the FA_PL_KT producer threads only.
__device__ __forceinline__ void bar_producers() { asm volatile("bar.sync 1, %0;" ::"n"(FA_PL_KT) : "memory"); }

extern "C" __global__ void __launch_bounds__(FA_PL_ISO_THREADS, 1)
    attention_fa_pl_rope(ATTN_FA_PARAMS, const float* __restrict__ invFreq, float thetaScale, int style,
                         u8* __restrict__ q80) {
    const int E = WARP;  // output elements a block
    int P = dim / E, b = blockIdx.x % P, h = blockIdx.x / P, r = blockIdx.y;
    int n = __ldcg(&ROW_POS(info, r)) + 1, slot = __ldcg(&ROW_SLOT(info, r)), rows = __ldcg(passp);
    int half = dim / 2, tid = threadIdx.x;
    float2 cs = make_float2(0.0f, 0.0f);
    if (tid < half) cs = rope_cs(n - 1, tid, invFreq, thetaScale, style);
    int kvStride = kvHeads * dim, kvh = h / (heads / kvHeads), off = kvh * dim;
    float* row = (float*)q + (i64)r * qStride;  // q, k and v as the product left them
    i64 at = (i64)slot * slotBytes + (i64)(n - 1) * kvStride * 2;
    if (n > FA_DEC_SC || rows >= 64) {
        fa_one_block<true>(ATTN_FA_ARGS, h, r, kvh, at, cs, q80, b == 0);
        return;
    }
    kc += (i64)slot * slotBytes;
    vc += (i64)slot * slotBytes;
    out += (i64)r * heads * dim;
    extern __shared__ __align__(16) float faPlShared[];
    __shared__ u32 flags[FA_FLAG_WORDS];  // fa_flags' mask, a word a tile
    __shared__ float wmax[FA_PL_KT / WARP];
    __shared__ u32 ready;
    float* qs = faPlShared;                    // dim: the query, rounded to F16
    float* sc = qs + dim;                      // FA_DEC_SC: the weights
    u16* kown = (u16*)(sc + FA_DEC_SC);        // dim: the row's own key
    u16* kt = kown + dim;                      // 2 x FA_PL_KT key rows of dim
    u16* vs = kt + 2 * FA_PL_KT * dim;         // n rows of E: this block's values
    int cs8 = dim / 8, swz = cs8 % 8 == 0 ? 7 : cs8 % 4 == 0 ? 3 : cs8 % 2 == 0 ? 1 : 0;
    int nt = (n + FA_PL_KT - 1) / FA_PL_KT, nc = n - 1;  // tiles; cache rows (the row's own comes from q)
    // Roles: FA_PL_ISO_THREADS threads (the launch's default) give the
    // chain warp 0 a scheduler of its own (warps 4, 8 and 11 idle; warp w
    // is on scheduler w % 4): producers 1-3, 5-7, 9 and 10. FA_PL_THREADS
    // threads run 8 producer warps (0-7) and the chain warp (8), which then
    // shares its scheduler with producers 0 and 4 (the chain at 896 keys:
    // ~34 cycles a key there, ~29 alone on its scheduler; H100 timeline).
    // A row of one tile takes the FA_PL_THREADS roles in either launch
    // (warps 9-11 idle): its chain starts only after the producers are
    // done, so a scheduler of its own buys it nothing (-DFA_PL_ISO_ALL:
    // the ISO roles at every length).
    int lane = tid % WARP, wr = tid / WARP;
#ifdef FA_PL_ISO_ALL
    bool iso = blockDim.x == FA_PL_ISO_THREADS;
#else
    bool iso = blockDim.x == FA_PL_ISO_THREADS && nt > 1;
#endif
    bool chain = iso ? wr == 0 : wr == FA_PL_KT / WARP;
    bool prod = iso ? wr % 4 != 0 && wr != 11 : wr < FA_PL_KT / WARP;
    int w = iso ? wr - 1 - wr / 4 : wr, ptid = w * WARP + lane;  // a producer's warp and thread among the producers
    // tile(t) asks for tile t's cache keys (a commit group, empty past them).
    auto tile = [&](int t) {
        int j0 = t * FA_PL_KT, nk = max(0, min(FA_PL_KT, nc - j0));
        copy_rows_async(kc, (u8*)(kt + (t % 2) * FA_PL_KT * dim), kvStride, off, j0, nk, dim * 2, 2, dim * 2, ptid,
                        FA_PL_KT, swz);
    };
    if (prod) {
        tile(0);
        tile(1);
    } else if (chain) {
        copy_rows_async(vc, (u8*)vs, kvStride, off + b * E, 0, nc, E * 2, 2, E * 2, lane, WARP);
    }
    if (tid == 0) ready = 0;
    if (tid < FA_FLAG_WORDS) flags[tid] = 0;
    pdl_start();
    {
        const float* kh = row + heads * dim + off;
        bool writer = b == 0 && h % (heads / kvHeads) == 0;  // the group's block that stores the cache row
        if (tid < half) {
            u16 ka, kb;
            fa_rope_qk(row, kh, h, dim, tid, cs, qs, (u16*)(kc + (i64)(n - 1) * kvStride * 2) + off, writer, ka,
                       kb);
            kown[tid] = ka;
            kown[tid + half] = kb;
        }
        if (chain) vs[nc * E + lane] = f2h(__ldcg(kh + kvStride + b * E + lane));
        if (writer) fa_store_v((u16*)(vc + (i64)(n - 1) * kvStride * 2) + off, kh + kvStride, dim);
    }
    __syncthreads();  // the query, the own key and value, ready = 0
    if (tid == 0) tl_mark_any(1);  // the query rotated, the cache row stored
    if (prod) {
        const float ninf = __uint_as_float(0xff800000u);
        float carry = ninf;  // the row's maximum over the tiles before
        // Threads a key for the scores of a row of few keys (one tile).
        int parts = dim % 64 != 0 || n > FA_PL_KT / 2 ? 1 : n > FA_PL_KT / 4 ? 2 : 4;
        for (int t = 0; t < nt; t++) {
            asm volatile("cp.async.wait_group 1;" ::: "memory");  // tile t (t + 1 may still come)
            bar_producers();
            if (t == 0 && ptid == 0) tl_mark_any(6);  // the first tile's keys in shared memory
            int j = t * FA_PL_KT + ptid;
            float s = ninf;
            if (parts > 1) {
                // A row of one tile and at most FA_PL_KT / parts keys: parts
                // threads a key (dot_f16_swz_p), the scores through sc
                // (each thread later writes only its own key's weight).
                int key = ptid / parts, sub = ptid % parts, kk = min(key, nc);
                const u16* kr = kk < nc ? kt + kk * dim : kown;
                int kx = kk < nc ? kk : 0, ks = kk < nc ? swz : 0;
                float d = parts == 4 ? dot_f16_swz_p<4>(kr, kx, ks, qs, dim, sub)
                                     : dot_f16_swz_p<2>(kr, kx, ks, qs, dim, sub);
                if (sub == 0 && key <= nc) sc[key] = __fmul_rn(d, scale);
                bar_producers();
                if (j <= nc) s = sc[j];
            } else if (j < nc) {
                s = __fmul_rn(dot_f16_swz(kt + (t % 2) * FA_PL_KT * dim + ptid * dim, ptid, swz, qs, dim), scale);
            } else if (j == nc) {
                s = __fmul_rn(dot_f16_swz(kown, 0, 0, qs, dim), scale);
            }
            float incl = s;
#pragma unroll
            for (int o = 1; o < WARP; o <<= 1) {
                float y = __shfl_up_sync(FULL, incl, o);
                if (lane >= o) incl = fmaxf(incl, y);
            }
            float excl = __shfl_up_sync(FULL, incl, 1);
            if (lane == 0) excl = ninf;
            if (lane == WARP - 1) wmax[w] = incl;
            bar_producers();  // the tile's keys are scored: its buffer is free; wmax is complete
            if (t == 0 && ptid == 0) tl_mark_any(7);  // the first tile scored
            float M = carry, tmax = carry;
#pragma unroll
            for (int u = 0; u < FA_PL_KT / WARP; u++) {
                if (u < w) M = fmaxf(M, wmax[u]);
                tmax = fmaxf(tmax, wmax[u]);
            }
            M = fmaxf(M, excl);
            carry = tmax;
            float x = 0.0f;
            if (j < n) {
                x = s > M ? -(float)exp((double)__fsub_rn(M, s)) : (float)exp((double)__fsub_rn(s, M));
                sc[j] = x;
            }
            u32 neg = __ballot_sync(FULL, j < n && (__float_as_uint(x) >> 31));
            if (lane == 0) {
                // The warp's four groups of 8 keys (whole ones only) in
                // fa_flags' mask: word t, bits 4w..4w+3.
                u32 nib = 0;
#pragma unroll
                for (int u = 0; u < 4; u++)
                    if (j + 8 * u + 8 <= n && (neg >> (8 * u)) & 0xffu) nib |= 1u << u;
                if (nib) atomicOr(&flags[t], nib << (4 * w));
            }
            bar_producers();  // the tile's weights and flags are written; wmax is read
            if (ptid == 0) st_release_cta(&ready, (u32)min(n, (t + 1) * FA_PL_KT));
            if (t == 0 && ptid == 0) tl_mark_any(2);  // the first tile released
            // Tile t + 2's keys into the buffer scored above, once the chains
            // have tile t: issuing its 4,096 pieces took ~1 us, which delayed
            // the release (a commit group each tile, empty past the row).
            if (t + 2 < nt) {
                tile(t + 2);
            } else {
                asm volatile("cp.async.commit_group;" ::: "memory");
            }
        }
        if (ptid == 0) tl_mark_any(3);  // every tile released
        asm volatile("cp.async.wait_group 0;" ::: "memory");
    } else if (chain) {
        asm volatile("cp.async.wait_group 0;" ::: "memory");  // this lane's values
        __syncwarp();
        fa_acc_sum<E> c{0, 0.0f, vs + lane};
        for (int done = 0; done < n;) {
            int rdy;
            while ((rdy = (int)ld_acquire_cta(&ready)) <= done) {
            }
            if (done == 0 && lane == 0) tl_mark_any(4);  // the chains start
            c.v = vs + lane + done * E;
            fa_run<true>(c, sc + done, flags, done / 8, rdy - done);
            done = rdy;
        }
        if (lane == 0) tl_mark_any(5);  // the chains end
        float val = __fmul_rn(h2f(c.acc), c.sum != 0.0f ? __fdiv_rn(1.0f, c.sum) : 0.0f);
        out[h * dim + b * E + lane] = val;
        if (q80) q80_warp(val, q80 + (h * dim / WARP + b) * 34);
    }
#ifdef APR_TIMELINE
    __syncthreads();
    tl_exit();
#endif
}

// attention_fa_rope is attention_fa for a pass of one row (grid (heads,
// 1)) with rope_store's work done in it, one launch less a layer of a
// decode step: block h turns query head h in place and its group's key out
// of place (each block of the group stores the same bits of the key and the
// value in the F16 cache, and no block changes the key in q), then runs the
// attention for head h. Parameters: attention_fa's, then rope_store's
// invFreq, thetaScale and style.
extern "C" __global__ void __launch_bounds__(256, 2) attention_fa_rope(ATTN_FA_PARAMS, const float* __restrict__ invFreq, float thetaScale,
                                             int style) {
    int h = blockIdx.x, r = blockIdx.y;
    int pos = __ldcg(&ROW_POS(info, r));  // the pass state before the wait, as rope_store reads it
    float2 cs = make_float2(0.0f, 0.0f);
    if ((int)threadIdx.x < dim / 2) cs = rope_cs(pos, threadIdx.x, invFreq, thetaScale, style);
    pdl_start();  // q, k and v come from the product before
    fa_rope_row((float*)q + (i64)r * qStride, (u8*)kc, (u8*)vc, heads, kvHeads, dim, h, h / (heads / kvHeads),
                (i64)ROW_SLOT(info, r) * slotBytes + (i64)pos * kvHeads * dim * 2, cs);
    __threadfence();
    __syncthreads();
    attention_fa_body<false, FA_DEC_KT>(ATTN_FA_ARGS, h, r);
}



// ------------------------------------ prefill: tiles of query rows a block
//
// attention_fa_rows_DIM_BQ is attention_fa_tiled (ggml's tiled kernel, each
// row's result bit for bit) for BQ consecutive rows of the pass and one
// query head a block: grid (heads, ceil(m/BQ)), 256 threads. Each key and
// value tile is loaded once for the block's rows (widened to float32 in
// shared memory: keys transposed, dim x 64; values 64 x dim; the next
// tile's loads in flight meanwhile), and the work is spread over (row,
// key) and (row, output element) pairs, never inside one sum: every score
// is its own chain of fused multiply-adds over the head dimension in order,
// every output element its own chain over the tile's keys in order, and one
// warp per row takes the tile's softmax step (fa_tile_softmax). A thread
// holds RA = BQ/16 rows x 4 keys of the scores and RA rows x DIM/16
// elements of the accumulators. Rows may belong to different slots: the
// block takes its rows' slots one after the other, each row seeing only
// its own slot's tiles (in order, as the CPU does); within a slot, keys
// past a row's position are masked and tiles past it skipped. Blocks of
// the last rows (the most keys) are scheduled first.
#define FA_KT 64
#define FA_NT 256
#ifndef FA_PV
#define FA_PV 8  // keys a step of the products of weights and values
#endif
#ifndef FA_QK
#define FA_QK 2  // steps of the scores' operands in registers (1: loaded where used)
#endif

// ldf / stf move RA consecutive floats between registers and shared memory
// (aligned to RA floats) in one access.
template <int RA>
__device__ __forceinline__ void ldf(const float* p, float* v) {
    if (RA == 4) {
        float4 t = *(const float4*)p;
        v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
    } else if (RA == 2) {
        float2 t = *(const float2*)p;
        v[0] = t.x, v[1] = t.y;
    } else {
        v[0] = p[0];
    }
}
template <int RA>
__device__ __forceinline__ void stf(float* p, const float* v) {
    if (RA == 4) {
        *(float4*)p = make_float4(v[0], v[1], v[2], v[3]);
    } else if (RA == 2) {
        *(float2*)p = make_float2(v[0], v[1]);
    } else {
        p[0] = v[0];
    }
}

// fa_rows_load issues the 16-byte loads of a key and a value tile (keys
// ic.., nkt of them; zeros past) into registers.
template <int DIM>
__device__ __forceinline__ void fa_rows_load(const u16* kb, const u16* vb, int kvStride, int ic, int nkt,
                                             uint4* kr, uint4* vr) {
    constexpr int C8 = DIM / 8, ITEMS = FA_KT * C8 / FA_NT;
#pragma unroll
    for (int u = 0; u < ITEMS; u++) {
        int idx = threadIdx.x + u * FA_NT;
        int key = idx % FA_KT, c8 = idx / FA_KT;  // keys: consecutive threads, consecutive keys
        int vkey = idx / C8, vc8 = idx % C8;      // values: consecutive threads along a row
        kr[u] = key < nkt ? *(const uint4*)(kb + (i64)(ic + key) * kvStride + c8 * 8) : make_uint4(0, 0, 0, 0);
        vr[u] = vkey < nkt ? *(const uint4*)(vb + (i64)(ic + vkey) * kvStride + vc8 * 8) : make_uint4(0, 0, 0, 0);
    }
}

template <int DIM, int BQ>
__device__ __forceinline__ void fa_rows_body(const float* __restrict__ q, const u8* __restrict__ kc,
                                             const u8* __restrict__ vc, float* __restrict__ out, int heads,
                                             int kvHeads, const int* __restrict__ info, int m, float scale,
                                             int qStride, i64 slotBytes) {
    constexpr int RA = BQ / 16, QP = BQ + 4, KP = FA_KT + 4, VP = DIM + 4, NC = DIM / 16, C8 = DIM / 8;
    constexpr int ITEMS = FA_KT * C8 / FA_NT, NW = FA_NT / WARP, RPW = BQ / NW;
    static_assert(RPW % 4 == 0, "the softmax step takes four rows a warp at once");
    extern __shared__ __align__(16) float faShared[];
    float* qt = faShared;         // DIM x QP: qt[d*QP + row]
    float* kt = qt + DIM * QP;    // DIM x KP: kt[d*KP + key]
    float* vs = kt + DIM * KP;    // FA_KT x VP: vs[key*VP + d]
    float* pt = vs + FA_KT * VP;  // FA_KT x QP: pt[key*QP + row], scores then weights
    __shared__ float rowM[BQ], rowS[BQ], rowMs[BQ];
    __shared__ int rowNk[BQ], rowFlag[BQ], rowPos[BQ], rowSlot[BQ];
    __shared__ int sCur, sEnd;
    const float ninf = __uint_as_float(0xff800000u);
    const int none = 0x7fffffff;
    int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    int h = blockIdx.x;
    int r0 = (gridDim.y - 1 - blockIdx.y) * BQ;
    int kvStride = kvHeads * DIM;
    int off = (h / (heads / kvHeads)) * DIM;
    for (int i = tid; i < BQ; i += FA_NT) {
        bool ok = r0 + i < m;
        rowPos[i] = ok ? ROW_POS(info, r0 + i) : -1;
        rowSlot[i] = ok ? ROW_SLOT(info, r0 + i) : -1;
        rowM[i] = ninf;
        rowS[i] = 0.0f;
    }
    for (int i = tid; i < BQ * DIM; i += FA_NT) {
        int row = i / DIM, d = i % DIM;
        qt[d * QP + row] = r0 + row < m ? q[(i64)(r0 + row) * qStride + h * DIM + d] : 0.0f;
    }
    float acc[RA][NC];
#pragma unroll
    for (int a = 0; a < RA; a++)
#pragma unroll
        for (int c = 0; c < NC; c++) acc[a][c] = 0.0f;
    uint4 kr[ITEMS], vr[ITEMS];
    for (int prev = -1;;) {
        __syncthreads();
        if (tid == 0) {  // the next slot of the block's rows, and its keys
            int cur = none, end = 0;
            for (int i = 0; i < BQ; i++)
                if (rowSlot[i] > prev && rowSlot[i] < cur) cur = rowSlot[i];
            for (int i = 0; i < BQ; i++)
                if (rowSlot[i] == cur) end = max(end, rowPos[i] + 1);
            sCur = cur;
            sEnd = end;
        }
        __syncthreads();
        int cur = sCur, end = sEnd;
        if (cur == none) break;
        prev = cur;
        const u16* kb = (const u16*)(kc + (i64)cur * slotBytes) + off;
        const u16* vb = (const u16*)(vc + (i64)cur * slotBytes) + off;
        fa_rows_load<DIM>(kb, vb, kvStride, 0, min(FA_KT, end), kr, vr);
        for (int ic = 0; ic < end; ic += FA_KT) {
            __syncthreads();  // the previous tile's weights and values are used
            for (int i = tid; i < BQ; i += FA_NT) rowNk[i] = rowSlot[i] == cur ? max(0, min(FA_KT, rowPos[i] + 1 - ic)) : 0;
#pragma unroll
            for (int u = 0; u < ITEMS; u++) {
                int idx = tid + u * FA_NT;
                int key = idx % FA_KT, c8 = idx / FA_KT;
                int vkey = idx / C8, vc8 = idx % C8;
                u32 kw[4] = {kr[u].x, kr[u].y, kr[u].z, kr[u].w}, vw[4] = {vr[u].x, vr[u].y, vr[u].z, vr[u].w};
                float vf[8];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    kt[(c8 * 8 + 2 * e) * KP + key] = h2f((u16)(kw[e] & 0xffff));
                    kt[(c8 * 8 + 2 * e + 1) * KP + key] = h2f((u16)(kw[e] >> 16));
                    vf[2 * e] = h2f((u16)(vw[e] & 0xffff));
                    vf[2 * e + 1] = h2f((u16)(vw[e] >> 16));
                }
                stf<4>(&vs[vkey * VP + vc8 * 8], vf);
                stf<4>(&vs[vkey * VP + vc8 * 8 + 4], vf + 4);
            }
            __syncthreads();
            {  // scores: rows ty*RA.., keys tx*4..
                float s[RA][4];
#pragma unroll
                for (int a = 0; a < RA; a++)
#pragma unroll
                    for (int b = 0; b < 4; b++) s[a][b] = 0.0f;
                // Each step's operands are loaded FA_QK - 1 steps ahead.
                float qa[FA_QK][RA], ka[FA_QK][4];
#pragma unroll
                for (int u = 0; u < FA_QK - 1; u++) {
                    ldf<RA>(&qt[u * QP + ty * RA], qa[u]);
                    ldf<4>(&kt[u * KP + tx * 4], ka[u]);
                }
#pragma unroll 8
                for (int d = 0; d < DIM; d++) {
                    int cur = d % FA_QK, nx = d + FA_QK - 1;
                    if (nx < DIM) {
                        ldf<RA>(&qt[nx * QP + ty * RA], qa[nx % FA_QK]);
                        ldf<4>(&kt[nx * KP + tx * 4], ka[nx % FA_QK]);
                    }
#pragma unroll
                    for (int a = 0; a < RA; a++)
#pragma unroll
                        for (int b = 0; b < 4; b++) s[a][b] = __fmaf_rn(qa[cur][a], ka[cur][b], s[a][b]);
                }
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    float w[RA];
#pragma unroll
                    for (int a = 0; a < RA; a++) w[a] = tx * 4 + b < rowNk[ty * RA + a] ? __fmul_rn(s[a][b], scale) : ninf;
                    stf<RA>(&pt[(tx * 4 + b) * QP + ty * RA], w);
                }
            }
            // The next tile's loads, in flight during the softmax and the
            // products (not during the scores, whose operands take the
            // registers).
            if (ic + FA_KT < end) fa_rows_load<DIM>(kb, vb, kvStride, ic + FA_KT, min(FA_KT, end - ic - FA_KT), kr, vr);
            __syncthreads();
#pragma unroll
            for (int k = 0; k < RPW / 4; k++) {  // eight lanes a row: the softmax step
                int lane = tid % WARP, j = lane % 8, i = (tid / WARP) * RPW + k * 4 + lane / 8;
                float e[8];
#pragma unroll
                for (int t = 0; t < 8; t++) e[t] = pt[(j + 8 * t) * QP + i];
                float M = rowM[i], S = rowS[i], ms = 1.0f;
                int flag = fa_tile_softmax8(e, M, S, ms);  // 0 where rowNk[i] is 0: every score is -inf
                if (flag) {
#pragma unroll
                    for (int t = 0; t < 8; t++) pt[(j + 8 * t) * QP + i] = e[t];
                }
                if (j == 0) {
                    rowM[i] = M;
                    rowS[i] = S;
                    rowMs[i] = ms;
                    rowFlag[i] = flag;
                }
            }
            __syncthreads();
            {  // acc = acc*ms + P.V: rows ty*RA.., elements c4*64 + tx*4..
                int nk[RA], lo = FA_KT, hi = 0;
#pragma unroll
                for (int a = 0; a < RA; a++) {
                    int row = ty * RA + a, flag = rowFlag[row];
                    nk[a] = flag ? rowNk[row] : 0;
                    lo = min(lo, nk[a]);
                    hi = max(hi, nk[a]);
                    if (flag == 2) {
                        float msa = rowMs[row];
#pragma unroll
                        for (int c = 0; c < NC; c++) acc[a][c] = __fmul_rn(acc[a][c], msa);
                    }
                }
                // Keys every row of the thread takes, FA_PV at a time (their
                // weights and values loaded before the first product), then
                // those of the diagonal tile that only some take.
                int tk = 0;
                for (; tk + FA_PV <= lo; tk += FA_PV) {
                    float pa[FA_PV][RA], va[FA_PV][NC];
#pragma unroll
                    for (int u = 0; u < FA_PV; u++) {
                        ldf<RA>(&pt[(tk + u) * QP + ty * RA], pa[u]);
#pragma unroll
                        for (int c4 = 0; c4 < NC / 4; c4++) ldf<4>(&vs[(tk + u) * VP + c4 * 64 + tx * 4], &va[u][c4 * 4]);
                    }
#pragma unroll
                    for (int u = 0; u < FA_PV; u++)
#pragma unroll
                        for (int a = 0; a < RA; a++)
#pragma unroll
                            for (int c = 0; c < NC; c++) acc[a][c] = __fmaf_rn(pa[u][a], va[u][c], acc[a][c]);
                }
                for (; tk < hi; tk++) {
                    float pa[RA];
                    ldf<RA>(&pt[tk * QP + ty * RA], pa);
                    bool all = tk < lo;
#pragma unroll
                    for (int c4 = 0; c4 < NC / 4; c4++) {
                        float va[4];
                        ldf<4>(&vs[tk * VP + c4 * 64 + tx * 4], va);
#pragma unroll
                        for (int a = 0; a < RA; a++)
#pragma unroll
                            for (int e = 0; e < 4; e++)
                                if (all || tk < nk[a]) acc[a][c4 * 4 + e] = __fmaf_rn(pa[a], va[e], acc[a][c4 * 4 + e]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int a = 0; a < RA; a++) {
        int row = ty * RA + a;
        if (r0 + row >= m) continue;
        float S = rowS[row];
        float inv = S != 0.0f ? __fdiv_rn(1.0f, S) : 0.0f;
        float* o = out + (i64)(r0 + row) * heads * DIM + h * DIM;
#pragma unroll
        for (int c4 = 0; c4 < NC / 4; c4++)
#pragma unroll
            for (int e = 0; e < 4; e++) o[c4 * 64 + tx * 4 + e] = __fmul_rn(acc[a][c4 * 4 + e], inv);
    }
}

#define ATTN_FA_ROWS_PARAMS                                                                        \
    const float *__restrict__ q, const u8 *__restrict__ kc, const u8 *__restrict__ vc,             \
        float *__restrict__ out, int heads, int kvHeads, const int *__restrict__ info, int m, float scale, \
        int qStride, i64 slotBytes
#define ATTN_FA_ROWS(DIM, BQ)                                                                      \
    extern "C" __global__ void __launch_bounds__(FA_NT, 2) attention_fa_rows_##DIM##_##BQ(ATTN_FA_ROWS_PARAMS) { \
        fa_rows_body<DIM, BQ>(q, kc, vc, out, heads, kvHeads, info, m, scale, qStride, slotBytes); \
    }
// 32 rows a block of 256 threads: of 16, 32 and 64 rows the fastest at
// pp512 (H200: 1.5B 103/105/120 us a layer, 0.5B 82/67/88 us); 32 rows of
// 512 threads took 109.5 and 68.2 us.
ATTN_FA_ROWS(64, 32)
ATTN_FA_ROWS(128, 32)
