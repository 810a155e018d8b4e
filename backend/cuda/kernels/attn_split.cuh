// ------------------------ split-K ("flash decoding") decode attention
//
// Decode steps (and passes of few rows) over a long context: the one-block-
// a-head kernels (attention_fa's one-chunk path, attn_f32_dec) take every
// key of a head in one block, so their time grows with the position while
// most of the GPU idles. Here a row's keys go by `splits` ranges of equal
// length, fixed by the host for the launch (about two blocks an SM), so
// that every position keeps the GPU busy:
//
// attn_split_{f16,f32}_DIM: grid (kvHeads x splits, rows), AS_NT threads.
// A block takes one KV head and one range of one row's keys (as_per: the
// row's keys over splits, rounded up to 32) for all the query heads
// sharing that KV head (GQA: each key and value row is read once for the
// group). It streams the range through shared memory in tiles of
// as_tile keys, double-buffered by cp.async (the next tile lands while
// this one is used). Of a tile, AS_NT / KT threads take each key's scores
// against the group's queries (interleaved 16-byte pieces, summed by
// shuffles); warp g keeps query head g's online softmax (maximum M, sum
// S, the accumulators rescaled by e^(M_old - M_new) where it moved); and
// the threads add the weighted values (P.V; element pairs x key parts,
// reduced in shared memory at the end). It writes, for each query head h
// of the group, the unnormalised output (DIM floats), M and S at part +
// ((r*heads + h)*splits + c)*(DIM+4) (the host sizes splits so that they
// fit the scratch). Blocks whose range starts past the row's position,
// and every block when the row has at most minKeys keys, exit at once:
// the grid does not depend on the position, which is read on the device
// (the decode graph replays the same launch at every position).
//
// attn_split_fin_{fa,f32_DIM,f16_DIM}: grid (heads, rows), AS_NT threads. A
// row of at most minKeys keys runs today's kernel unchanged (attention_fa's
// body: ggml's numerics, bit for bit as the CPU; attn_f32_dec's body, over
// a float32 cache or, f16_DIM, an F16 one without ggml's numerics), as does,
// over an F16 cache, every row of a pass of 64 rows or more (*passp: ggml
// then runs its tiled kernel; the split kernel reads passp too, null for
// the float32 cache, and skips such passes); a longer
// row combines its ranges' partials: out = sum_c e^(M_c - M) o_c / sum_c
// e^(M_c - M) S_c with M the largest M_c.
//
// Numerics above minKeys: with an F16 cache the query is rounded to F16 as
// ggml does, the keys and values are exact in float32, and scores, softmax
// and sums run in float32 (as the CPU backend's Attention over an F16
// cache); ggml's one-chunk kernel instead rounds its accumulator to F16 at
// every key, so the two differ by that rounding.

#define AS_NT 256
#define AS_GMAX 8
#define AS_MINKEYS 32

// as_tile is the keys of a staged tile: 64 over an F16 cache, 32 over a
// float32 one (the same bytes).
__host__ __device__ constexpr int as_tile(int elem) { return elem == 2 ? 64 : 32; }

// as_per is the keys of a range for a row of n keys over splits ranges:
// n / splits rounded up to a multiple of 32, at least AS_MINKEYS. The fin
// kernels take ceil(n / as_per) ranges.
__device__ __forceinline__ int as_per(int n, int splits) {
    int per = (n + splits - 1) / splits;
    return max(AS_MINKEYS, (per + 31) / 32 * 32);
}

// as_layout is the split kernel's dynamic shared memory in bytes: two
// tiles of key rows (reused for the P.V parts' reduction), two of value
// rows, the group's queries and a tile's weights (8 floats a key); the host
// computes the same sizes (attn_split.go's splitShared).
struct as_layout {
    int kBytes, vBytes, qBytes;
};
__device__ __forceinline__ as_layout as_sizes(int dim, int elem, int group) {
    int rs = dim * elem + 16, kt = as_tile(elem);
    int red = (512 / dim) * group * dim * 4;
    as_layout l;
    l.kBytes = max(2 * kt * rs, red);
    l.vBytes = 2 * kt * rs;
    l.qBytes = group * dim * 4;
    return l;
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
                                                int qStride, i64 slotBytes, int minKeys, int splits,
                                                const int* __restrict__ passp) {
    constexpr int ELEM = F16 ? 2 : 4, RB = DIM * ELEM, RS = RB + 16, PE = 16 / ELEM;
    constexpr int KT = as_tile(ELEM), TPK = AS_NT / KT, PR = RB / 16;  // threads a key, pieces a row
    constexpr int NP = 512 / DIM;  // key parts of the P.V step (element pairs x parts = AS_NT)
    static_assert(PR % TPK == 0 && KT % NP == 0 && KT <= 2 * WARP, "attn_split: tile shapes");
    const float ninf = __uint_as_float(0xff800000u);
    int r = blockIdx.y;
    int n = ROW_POS(info, r) + 1;
    int kvh = blockIdx.x % kvHeads, c = blockIdx.x / kvHeads;
    int per = as_per(n, splits), j0 = c * per;
    // Today's kernel (fin) takes rows of few keys and, over an F16 cache,
    // passes of 64 rows or more (ggml's tiled kernel); no key in the range.
    if (n <= minKeys || j0 >= n || (passp != nullptr && *passp >= 64)) return;
    int nk = min(per, n - j0);
    int group = heads / kvHeads;
    extern __shared__ __align__(16) u8 asShared[];
    as_layout l = as_sizes(DIM, ELEM, group);
    u8* ks = asShared;
    u8* vs = ks + l.kBytes;
    float* qs = (float*)(vs + l.vBytes);       // group x DIM
    float* pw = (float*)((u8*)qs + l.qBytes);  // KT x 8: scores, then weights
    __shared__ float gM[AS_GMAX], gS[AS_GMAX], gA[AS_GMAX];
    i64 sb = (i64)ROW_SLOT(info, r) * slotBytes;
    i64 kvStride = (i64)kvHeads * DIM, off = (i64)kvh * DIM;
    int tiles = (nk + KT - 1) / KT;
    auto stage = [&](int t) {  // tile t's keys and values, one cp.async group
        int b = (t & 1) * KT * RS, k0 = j0 + t * KT, m = min(KT, nk - t * KT);
        copy_rows_async<true>(kc + sb, ks + b, kvStride, off, k0, m, RB, ELEM, RS, threadIdx.x, AS_NT, 0, false);
        copy_rows_async<true>(vc + sb, vs + b, kvStride, off, k0, m, RB, ELEM, RS, threadIdx.x, AS_NT, 0, false);
        asm volatile("cp.async.commit_group;" ::: "memory");
    };
    stage(0);
    if (tiles > 1) stage(1);  // both buffers fill at once
    const float* qr = q + (i64)r * qStride + (i64)kvh * group * DIM;
    for (int i = threadIdx.x; i < group * DIM; i += AS_NT) {
        float v = qr[i];
        qs[i] = F16 ? h2f(f2h(v)) : v;
    }
    int w = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int kj = threadIdx.x / TPK, kp4 = threadIdx.x % TPK;       // scores: key kj, pieces kp4, kp4 + TPK, ...
    int e = threadIdx.x % (DIM / 2), kp = threadIdx.x / (DIM / 2);  // P.V: elements 2e, 2e+1, keys kp, kp+NP, ...
    float M = ninf, S = 0.0f;  // warp w < group: head w's running maximum and sum
    float acc[AS_GMAX][2];
#pragma unroll
    for (int g = 0; g < AS_GMAX; g++) acc[g][0] = acc[g][1] = 0.0f;
    for (int t = 0; t < tiles; t++) {
        if (t == 0 && tiles > 1) {
            asm volatile("cp.async.wait_group 1;" ::: "memory");  // tile 0 (tile 1 may still land)
        } else {
            asm volatile("cp.async.wait_group 0;" ::: "memory");  // tile t
        }
        __syncthreads();  // tile t and the queries are in; tile t-1's P.V is done
        if (t > 0 && t + 1 < tiles) stage(t + 1);  // into tile t-1's buffers
        const u8* kt = ks + (t & 1) * KT * RS;
        const u8* vt = vs + (t & 1) * KT * RS;
        int m = min(KT, nk - t * KT);
        {  // key kj's scores against the group's queries
            float s[AS_GMAX];
#pragma unroll
            for (int g = 0; g < AS_GMAX; g++) s[g] = 0.0f;
            const u8* kr = kt + kj * RS;
#pragma unroll
            for (int i = 0; i < PR / TPK; i++) {
                int pc = kp4 + i * TPK;
                float kv[PE];
                as_piece<F16>(kr + pc * 16, kv);
#pragma unroll
                for (int g = 0; g < AS_GMAX; g++) {
                    if (g < group) {
                        const float* qg = qs + g * DIM + pc * PE;
#pragma unroll
                        for (int x = 0; x < PE; x += 4) {
                            float4 qv = *(const float4*)(qg + x);
                            s[g] = __fmaf_rn(qv.x, kv[x], s[g]);
                            s[g] = __fmaf_rn(qv.y, kv[x + 1], s[g]);
                            s[g] = __fmaf_rn(qv.z, kv[x + 2], s[g]);
                            s[g] = __fmaf_rn(qv.w, kv[x + 3], s[g]);
                        }
                    }
                }
            }
#pragma unroll
            for (int g = 0; g < AS_GMAX; g++) {
#pragma unroll
                for (int o = 1; o < TPK; o <<= 1) s[g] += __shfl_xor_sync(FULL, s[g], o);
            }
            if (kp4 == 0) {
#pragma unroll
                for (int g = 0; g < AS_GMAX; g++) pw[kj * 8 + g] = g < group && kj < m ? __fmul_rn(s[g], scale) : ninf;
            }
        }
        __syncthreads();
        if (w < group) {  // warp w: head w's online softmax over the tile
            float mt = ninf;
            for (int k = lane; k < KT; k += WARP) mt = fmaxf(mt, pw[k * 8 + w]);
            mt = warp_max(mt);
            float mn = fmaxf(M, mt), sum = 0.0f;
            for (int k = lane; k < KT; k += WARP) {
                float p = expf(pw[k * 8 + w] - mn);  // 0 past the tile's keys
                pw[k * 8 + w] = p;
                sum += p;
            }
            sum = warp_sum(sum);
            float alpha = expf(M - mn);  // 0 for the first tile (M = -inf)
            S = S * alpha + sum;
            M = mn;
            if (lane == 0) gA[w] = alpha;
        }
        __syncthreads();
        // P.V over the tile's keys, the accumulators rescaled first.
#pragma unroll
        for (int g = 0; g < AS_GMAX; g++) {
            if (g < group) {
                float a = gA[g];
                acc[g][0] *= a, acc[g][1] *= a;
            }
        }
        for (int k = kp; k < m; k += NP) {
            float v0, v1;
            const u8* vr = vt + k * RS + e * 2 * ELEM;
            if (F16) {
                u32 hv = *(const u32*)vr;
                v0 = h2f((u16)(hv & 0xffff)), v1 = h2f((u16)(hv >> 16));
            } else {
                float2 fv = *(const float2*)vr;
                v0 = fv.x, v1 = fv.y;
            }
            float4 pa = *(const float4*)(pw + k * 8), pb = *(const float4*)(pw + k * 8 + 4);
            const float pg[AS_GMAX] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
#pragma unroll
            for (int g = 0; g < AS_GMAX; g++) {
                if (g < group) {
                    acc[g][0] = __fmaf_rn(pg[g], v0, acc[g][0]);
                    acc[g][1] = __fmaf_rn(pg[g], v1, acc[g][1]);
                }
            }
        }
    }
    if (w < group && lane == 0) gM[w] = M, gS[w] = S;
    __syncthreads();          // every tile is used: the key rows hold the parts' reduction
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
        float* pr = part + (((i64)r * heads + kvh * group + g) * splits + c) * (DIM + 4);
        pr[d] = o;
        if (d == 0) pr[DIM] = gM[g], pr[DIM + 1] = gS[g];
    }
}

#define ATTN_SPLIT_PARAMS                                                                                   \
    const float *__restrict__ q, const u8 *__restrict__ kc, const u8 *__restrict__ vc,                      \
        float *__restrict__ part, int heads, int kvHeads, const int *__restrict__ info, float scale,        \
        int qStride, i64 slotBytes, int minKeys, int splits, const int *__restrict__ passp
#define ATTN_SPLIT(NAME, DIM, F16)                                                                          \
    extern "C" __global__ void __launch_bounds__(AS_NT) NAME(ATTN_SPLIT_PARAMS) {                           \
        pdl_start(); /* the query and the cache rows come from the kernels before */                        \
        attn_split_body<DIM, F16>(q, kc, vc, part, heads, kvHeads, info, scale, qStride, slotBytes,         \
                                  minKeys, splits, passp);                                                  \
    }
ATTN_SPLIT(attn_split_f16_64, 64, true)
ATTN_SPLIT(attn_split_f16_128, 128, true)
ATTN_SPLIT(attn_split_f32_64, 64, false)
ATTN_SPLIT(attn_split_f32_128, 128, false)

// attn_split_merge is the fin kernels' combination of row r's range
// partials (n keys over splits ranges) for head blockIdx.x into out (see
// above): thread (k, d4) adds elements 4d4..4d4+3 of ranges k, k + parts,
// ... (each range's row read by dim/4 consecutive threads, several loads
// in flight), and the parts are summed in shared memory. Dynamic shared
// memory: splits floats.
__device__ __forceinline__ void attn_split_merge(const float* __restrict__ part, float* __restrict__ out, int heads,
                                                 int dim, int splits, int r, int n) {
    extern __shared__ float asW[];  // the ranges' weights e^(M_c - M)
    __shared__ float red[32], wsum[32];
    __shared__ float4 acc[AS_NT];
    const float ninf = __uint_as_float(0xff800000u);
    int h = blockIdx.x, per = as_per(n, splits), ns = (n + per - 1) / per;
    const float* p = part + ((i64)r * heads + h) * splits * (dim + 4);
    float mx = ninf;
    for (int c = threadIdx.x; c < ns; c += AS_NT) mx = fmaxf(mx, p[(i64)c * (dim + 4) + dim]);
    mx = block_max(mx, red);
    float s = 0.0f;
    for (int c = threadIdx.x; c < ns; c += AS_NT) {
        float2 ms = *(const float2*)&p[(i64)c * (dim + 4) + dim];
        float w = expf(ms.x - mx);
        asW[c] = w;
        s = __fmaf_rn(w, ms.y, s);
    }
    s = warp_sum(s);
    if (threadIdx.x % WARP == 0) wsum[threadIdx.x / WARP] = s;
    __syncthreads();
    float tot = 0.0f;
    for (int k = 0; k < AS_NT / WARP; k++) tot += wsum[k];
    int tpr = dim / 4, parts = AS_NT / tpr, d4 = threadIdx.x % tpr, k = threadIdx.x / tpr;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
    for (int c = k; c < ns; c += parts) {
        float w = asW[c];
        float4 v = *(const float4*)&p[(i64)c * (dim + 4) + 4 * d4];
        o.x = __fmaf_rn(w, v.x, o.x), o.y = __fmaf_rn(w, v.y, o.y);
        o.z = __fmaf_rn(w, v.z, o.z), o.w = __fmaf_rn(w, v.w, o.w);
    }
    acc[threadIdx.x] = o;
    __syncthreads();
    if (threadIdx.x < tpr) {
        for (int j = 1; j < parts; j++) {
            float4 u = acc[j * tpr + threadIdx.x];
            o.x += u.x, o.y += u.y, o.z += u.z, o.w += u.w;
        }
        *(float4*)&out[(i64)r * heads * dim + h * dim + 4 * threadIdx.x] =
            make_float4(o.x / tot, o.y / tot, o.z / tot, o.w / tot);
    }
}

// attn_split_fin_fa: attention_fa's parameters, then minKeys and splits.
extern "C" __global__ void __launch_bounds__(256, 2) attn_split_fin_fa(ATTN_FA_PARAMS, int minKeys, int splits) {
    pdl_start();
    int r = blockIdx.y, n = ROW_POS(info, r) + 1;
    if (n <= minKeys || *passp >= 64) {
        attention_fa_body<false, FA_DEC_KT>(ATTN_FA_ARGS, blockIdx.x, blockIdx.y);
        return;
    }
    attn_split_merge(scores, out, heads, dim, splits, r, n);
}

#define ATTN_SPLIT_FIN_DEC(NAME, DIM, F16)                                                                  \
    extern "C" __global__ void __launch_bounds__(AS_NT) NAME(                                               \
        const float* __restrict__ q, const u8* __restrict__ kc, const u8* __restrict__ vc,                  \
        float* __restrict__ out, float* __restrict__ part, int heads, int kvHeads,                          \
        const int* __restrict__ info, float scale, int qStride, i64 slotBytes, int minKeys, int splits) {   \
        pdl_start();                                                                                        \
        int r = blockIdx.y, n = ROW_POS(info, r) + 1;                                                       \
        if (n <= minKeys) {                                                                                 \
            attn_f32_dec<DIM, F16>(q, kc, vc, out, heads, kvHeads, info, scale, qStride, slotBytes);        \
            return;                                                                                         \
        }                                                                                                   \
        attn_split_merge(part, out, heads, DIM, splits, r, n);                                              \
    }
ATTN_SPLIT_FIN_DEC(attn_split_fin_f32_64, 64, false)
ATTN_SPLIT_FIN_DEC(attn_split_fin_f32_128, 128, false)
ATTN_SPLIT_FIN_DEC(attn_split_fin_f16_64, 64, true)
ATTN_SPLIT_FIN_DEC(attn_split_fin_f16_128, 128, true)
