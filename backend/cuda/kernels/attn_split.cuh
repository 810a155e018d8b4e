// ------------------------ split-K ("flash decoding") decode attention
//
// Decode steps (and passes of few rows) over a long context: the one-block-
// a-head kernels (attention_fa's one-chunk path, attn_f32_dec) take every
// key of a head in one block, so their time grows with the position while
// most of the GPU idles. Here the keys go by chunks of `chunk` positions:
//
// attn_split_{f16,f32}_DIM: grid (kvHeads x chunks, rows), AS_NT threads.
// A block takes one KV head and one chunk of one row's keys for all the
// query heads sharing that KV head (GQA: each key and value row is read
// once for the group): it copies the chunk's keys and values into shared
// memory (cp.async, rows padded by 16 bytes), thread j computes key j's
// scores against the group's queries, warp g takes query head g's softmax
// over the chunk (maximum M, exponentials, sum S), and the threads then
// add the weighted values (P.V; element pairs x key parts, reduced in
// shared memory). It writes, for each query head h of the group, the
// unnormalised output (DIM floats), M and S at scores + ((r*heads + h)*ctx
// + c*(DIM+4)) (the host picks chunk so that the chunks' partials fit the
// ctx floats of each row and head). Blocks whose chunk starts past the
// row's position, and every block when the row has at most minKeys keys,
// exit at once: the grid is sized for the context, the position is read on
// the device (the decode graph replays the same launch at every position).
//
// attn_split_fin_{fa,f32_DIM,f16_DIM}: grid (heads, rows), AS_NT threads. A
// row of at most minKeys keys runs today's kernel unchanged (attention_fa's
// body: ggml's numerics, bit for bit as the CPU; attn_f32_dec's body, over
// a float32 cache or, f16_DIM, an F16 one without ggml's numerics), as does,
// over an F16 cache, every row of a pass of 64 rows or more (*passp: ggml
// then runs its tiled kernel; the split kernel reads passp too, null for
// the float32 cache, and skips such passes); a longer
// row combines its chunks' partials: out = sum_c e^(M_c - M) o_c / sum_c
// e^(M_c - M) S_c with M the largest M_c.
//
// Numerics above minKeys: with an F16 cache the query is rounded to F16 as
// ggml does, the keys and values are exact in float32, and scores, softmax
// and sums run in float32 (as the CPU backend's Attention over an F16
// cache); ggml's one-chunk kernel instead rounds its accumulator to F16 at
// every key, so the two differ by that rounding.

#define AS_NT 256
#define AS_GMAX 8

// as_layout is the split kernel's dynamic shared memory in bytes: the key
// rows (reused for the P.V parts' reduction), the value rows, the group's
// queries and the chunk's weights (8 floats a key); the host computes the
// same sizes (attn_split.go's splitShared).
struct as_layout {
    int kBytes, vBytes, qBytes;
};
__device__ __forceinline__ as_layout as_sizes(int dim, int elem, int chunk, int group) {
    int rs = dim * elem + 16;
    int red = (512 / dim) * group * dim * 4;
    as_layout l;
    l.kBytes = max(chunk * rs, red);
    l.vBytes = chunk * rs;
    l.qBytes = group * dim * 4;
    return l;
}

// as_copy_rows starts copying nk rows (keys j0.., head offset off in
// elements, rows kvStride elements apart; rowBytes each) of cache src into
// dst (rows of rowBytes+16) as 16-byte cp.async pieces, then commits them
// as one group.
__device__ __forceinline__ void as_copy_rows(const u8* src, u8* dst, i64 kvStride, i64 off, int j0, int nk,
                                             int rowBytes, int elem) {
    copy_rows_async(src, dst, kvStride, off, j0, nk, rowBytes, elem, rowBytes + 16, threadIdx.x, blockDim.x);
}

// as_piece widens 16 bytes of a staged row (8 F16 values or 4 floats) to
// floats.
template <bool F16>
__device__ __forceinline__ void as_piece(const u8* p, float* v) {
    uint4 t = *(const uint4*)p;
    if (F16) {
        u32 w[4] = {t.x, t.y, t.z, t.w};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            v[2 * e] = h2f((u16)(w[e] & 0xffff));
            v[2 * e + 1] = h2f((u16)(w[e] >> 16));
        }
    } else {
        v[0] = __uint_as_float(t.x), v[1] = __uint_as_float(t.y), v[2] = __uint_as_float(t.z),
        v[3] = __uint_as_float(t.w);
    }
}

template <int DIM, bool F16>
__device__ __forceinline__ void attn_split_body(const float* __restrict__ q, const u8* __restrict__ kc,
                                                const u8* __restrict__ vc, float* __restrict__ part, int heads,
                                                int kvHeads, const int* __restrict__ info, float scale,
                                                int qStride, i64 slotBytes, int ctx, int minKeys, int chunk,
                                                const int* __restrict__ passp) {
    constexpr int ELEM = F16 ? 2 : 4, RB = DIM * ELEM, RS = RB + 16, PE = 16 / ELEM;
    constexpr int NP = 512 / DIM;  // key parts of the P.V step (element pairs x parts = AS_NT)
    const float ninf = __uint_as_float(0xff800000u);
    int r = blockIdx.y;
    int n = ROW_POS(info, r) + 1;
    int kvh = blockIdx.x % kvHeads, c = blockIdx.x / kvHeads;
    int j0 = c * chunk;
    // Today's kernel (fin) takes rows of few keys and, over an F16 cache,
    // passes of 64 rows or more (ggml's tiled kernel); no key in the chunk.
    if (n <= minKeys || j0 >= n || (passp != nullptr && *passp >= 64)) return;
    int nk = min(chunk, n - j0);
    int group = heads / kvHeads;
    extern __shared__ __align__(16) u8 asShared[];
    as_layout l = as_sizes(DIM, ELEM, chunk, group);
    u8* ks = asShared;
    u8* vs = ks + l.kBytes;
    float* qs = (float*)(vs + l.vBytes);       // group x DIM
    float* pw = (float*)((u8*)qs + l.qBytes);  // chunk x 8: scores, then weights
    __shared__ float gM[AS_GMAX], gS[AS_GMAX];
    i64 sb = (i64)ROW_SLOT(info, r) * slotBytes;
    i64 kvStride = (i64)kvHeads * DIM, off = (i64)kvh * DIM;
    as_copy_rows(kc + sb, ks, kvStride, off, j0, nk, RB, ELEM);
    as_copy_rows(vc + sb, vs, kvStride, off, j0, nk, RB, ELEM);
    const float* qr = q + (i64)r * qStride + (i64)kvh * group * DIM;
    for (int i = threadIdx.x; i < group * DIM; i += AS_NT) {
        float v = qr[i];
        qs[i] = F16 ? h2f(f2h(v)) : v;
    }
    asm volatile("cp.async.wait_group 1;" ::: "memory");  // the keys
    __syncthreads();
    int j = threadIdx.x;
    if (j < nk) {  // key j's scores against the group's queries
        float s[AS_GMAX];
#pragma unroll
        for (int g = 0; g < AS_GMAX; g++) s[g] = 0.0f;
        const u8* kr = ks + j * RS;
#pragma unroll 4
        for (int p = 0; p < RB / 16; p++) {
            float kv[PE];
            as_piece<F16>(kr + p * 16, kv);
#pragma unroll
            for (int g = 0; g < AS_GMAX; g++) {
                if (g < group) {
                    const float* qg = qs + g * DIM + p * PE;
#pragma unroll
                    for (int e = 0; e < PE; e += 4) {
                        float4 qv = *(const float4*)(qg + e);
                        s[g] = __fmaf_rn(qv.x, kv[e], s[g]);
                        s[g] = __fmaf_rn(qv.y, kv[e + 1], s[g]);
                        s[g] = __fmaf_rn(qv.z, kv[e + 2], s[g]);
                        s[g] = __fmaf_rn(qv.w, kv[e + 3], s[g]);
                    }
                }
            }
        }
#pragma unroll
        for (int g = 0; g < AS_GMAX; g++) pw[j * 8 + g] = g < group ? __fmul_rn(s[g], scale) : 0.0f;
    }
    __syncthreads();
    int w = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (w < group) {  // warp g: query head g's softmax over the chunk
        float mx = ninf;
        for (int t = lane; t < nk; t += WARP) mx = fmaxf(mx, pw[t * 8 + w]);
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int t = lane; t < nk; t += WARP) {
            float e = expf(pw[t * 8 + w] - mx);
            pw[t * 8 + w] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        if (lane == 0) gM[w] = mx, gS[w] = sum;
    }
    asm volatile("cp.async.wait_group 0;" ::: "memory");  // the values
    __syncthreads();
    // P.V: thread (kp, e) takes elements 2e, 2e+1 over keys kp, kp+NP, ...
    int e = threadIdx.x % (DIM / 2), kp = threadIdx.x / (DIM / 2);
    float acc[AS_GMAX][2];
#pragma unroll
    for (int g = 0; g < AS_GMAX; g++) acc[g][0] = acc[g][1] = 0.0f;
    for (int t = kp; t < nk; t += NP) {
        float v0, v1;
        const u8* vr = vs + t * RS + e * 2 * ELEM;
        if (F16) {
            u32 hv = *(const u32*)vr;
            v0 = h2f((u16)(hv & 0xffff)), v1 = h2f((u16)(hv >> 16));
        } else {
            float2 fv = *(const float2*)vr;
            v0 = fv.x, v1 = fv.y;
        }
        float4 pa = *(const float4*)(pw + t * 8), pb = *(const float4*)(pw + t * 8 + 4);
        const float pg[AS_GMAX] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
#pragma unroll
        for (int g = 0; g < AS_GMAX; g++) {
            if (g < group) {
                acc[g][0] = __fmaf_rn(pg[g], v0, acc[g][0]);
                acc[g][1] = __fmaf_rn(pg[g], v1, acc[g][1]);
            }
        }
    }
    __syncthreads();  // the key rows are free: the parts' reduction
    float* red = (float*)ks;  // NP x group x DIM
#pragma unroll
    for (int g = 0; g < AS_GMAX; g++)
        if (g < group) *(float2*)&red[(kp * group + g) * DIM + 2 * e] = make_float2(acc[g][0], acc[g][1]);
    __syncthreads();
    for (int i = threadIdx.x; i < group * DIM; i += AS_NT) {
        int g = i / DIM, d = i % DIM;
        float o = 0.0f;
#pragma unroll
        for (int k = 0; k < NP; k++) o += red[(k * group + g) * DIM + d];
        float* pr = part + ((i64)r * heads + kvh * group + g) * ctx + (i64)c * (DIM + 4);
        pr[d] = o;
        if (d == 0) pr[DIM] = gM[g], pr[DIM + 1] = gS[g];
    }
}

#define ATTN_SPLIT_PARAMS                                                                                   \
    const float *__restrict__ q, const u8 *__restrict__ kc, const u8 *__restrict__ vc,                      \
        float *__restrict__ part, int heads, int kvHeads, const int *__restrict__ info, float scale,        \
        int qStride, i64 slotBytes, int ctx, int minKeys, int chunk, const int *__restrict__ passp
#define ATTN_SPLIT(NAME, DIM, F16)                                                                          \
    extern "C" __global__ void __launch_bounds__(AS_NT) NAME(ATTN_SPLIT_PARAMS) {                           \
        pdl_start(); /* the query and the cache rows come from the kernels before */                        \
        attn_split_body<DIM, F16>(q, kc, vc, part, heads, kvHeads, info, scale, qStride, slotBytes, ctx,    \
                                  minKeys, chunk, passp);                                                   \
    }
ATTN_SPLIT(attn_split_f16_64, 64, true)
ATTN_SPLIT(attn_split_f16_128, 128, true)
ATTN_SPLIT(attn_split_f32_64, 64, false)
ATTN_SPLIT(attn_split_f32_128, 128, false)

// attn_split_merge is the fin kernels' combination of row r's chunk
// partials (n keys) for head blockIdx.x into out (see above). Dynamic
// shared memory: ceil(n/chunk) floats.
__device__ __forceinline__ void attn_split_merge(const float* __restrict__ part, float* __restrict__ out, int heads,
                                                 int dim, int ctx, int chunk, int r, int n) {
    extern __shared__ float asW[];  // the chunks' weights e^(M_c - M)
    __shared__ float red[32], wsum[32];
    __shared__ float acc[AS_NT];
    const float ninf = __uint_as_float(0xff800000u);
    int h = blockIdx.x, ns = (n + chunk - 1) / chunk;
    const float* p = part + ((i64)r * heads + h) * ctx;
    float mx = ninf;
    for (int c = threadIdx.x; c < ns; c += AS_NT) mx = fmaxf(mx, p[(i64)c * (dim + 4) + dim]);
    mx = block_max(mx, red);
    float s = 0.0f;
    for (int c = threadIdx.x; c < ns; c += AS_NT) {
        const float* pc = p + (i64)c * (dim + 4);
        float w = expf(pc[dim] - mx);
        asW[c] = w;
        s = __fmaf_rn(w, pc[dim + 1], s);
    }
    s = warp_sum(s);
    if (threadIdx.x % WARP == 0) wsum[threadIdx.x / WARP] = s;
    __syncthreads();
    float tot = 0.0f;
    for (int k = 0; k < AS_NT / WARP; k++) tot += wsum[k];
    // Thread (kp, d): element d over chunks kp, kp+parts, ...
    int parts = AS_NT / dim, d = threadIdx.x % dim, kp = threadIdx.x / dim;
    float o = 0.0f;
    if (kp < parts) {
#pragma unroll 4
        for (int c = kp; c < ns; c += parts) o = __fmaf_rn(asW[c], p[(i64)c * (dim + 4) + d], o);
    }
    acc[threadIdx.x] = o;
    __syncthreads();
    if (threadIdx.x < dim) {
        for (int k = 1; k < parts; k++) o += acc[k * dim + threadIdx.x];
        out[(i64)r * heads * dim + h * dim + threadIdx.x] = o / tot;
    }
}

// attn_split_fin_fa: attention_fa's parameters, then minKeys and chunk.
extern "C" __global__ void __launch_bounds__(256, 2) attn_split_fin_fa(ATTN_FA_PARAMS, int minKeys, int chunk) {
    pdl_start();
    int r = blockIdx.y, n = ROW_POS(info, r) + 1;
    if (n <= minKeys || *passp >= 64) {
        attention_fa_body<false, FA_DEC_KT>(ATTN_FA_ARGS, blockIdx.x, blockIdx.y);
        return;
    }
    attn_split_merge(scores, out, heads, dim, ctx, chunk, r, n);
}

#define ATTN_SPLIT_FIN_DEC(NAME, DIM, F16)                                                                  \
    extern "C" __global__ void __launch_bounds__(AS_NT) NAME(                                               \
        const float* __restrict__ q, const u8* __restrict__ kc, const u8* __restrict__ vc,                  \
        float* __restrict__ out, float* __restrict__ part, int heads, int kvHeads,                          \
        const int* __restrict__ info, float scale, int qStride, i64 slotBytes, int ctx, int minKeys,        \
        int chunk) {                                                                                        \
        pdl_start();                                                                                        \
        int r = blockIdx.y, n = ROW_POS(info, r) + 1;                                                       \
        if (n <= minKeys) {                                                                                 \
            attn_f32_dec<DIM, F16>(q, kc, vc, out, heads, kvHeads, info, scale, qStride, slotBytes);        \
            return;                                                                                         \
        }                                                                                                   \
        attn_split_merge(part, out, heads, DIM, ctx, chunk, r, n);                                          \
    }
ATTN_SPLIT_FIN_DEC(attn_split_fin_f32_64, 64, false)
ATTN_SPLIT_FIN_DEC(attn_split_fin_f32_128, 128, false)
ATTN_SPLIT_FIN_DEC(attn_split_fin_f16_64, 64, true)
ATTN_SPLIT_FIN_DEC(attn_split_fin_f16_128, 128, true)
