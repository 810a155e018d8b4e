// ------------------------------- prefill attention over a float32 cache
//
// attn_f32_rows_DIM is causal grouped-query attention (transformers'
// numerics: float32 keys and values, softmax in float32) for AF_BQ
// consecutive rows of a pass and one query head a block: grid (heads,
// ceil(m/AF_BQ)), AF_NT threads, the last rows first (they take the most
// keys). Each key tile (AF_KT keys, transposed) and value tile is staged
// in shared memory once for the block's rows: the next tile's keys are
// loaded into registers during a step, its values copied by cp.async
// during its scores. Thread (ty, tx) holds 2 rows (2ty, 2ty+1)
// x 4 keys (4tx..) of a tile's scores and the same 2 rows x DIM/16 output
// elements (tx*4 + 64c + e); a row's 16 threads are one half-warp, so the
// online softmax (running maximum M, sum S, the accumulator rescaled by
// exp(M_old - M_new)) runs in registers with shuffles. Rows of several
// slots in one block are taken slot by slot (the others' keys masked).
// Results differ from the plain attention kernel by float32 rounding only
// (it sums exp in double, then normalises).
//
// Same parameters and rows as attention (info: ROW_POS, ROW_SLOT; out
// heads x DIM floats a row); DIM a multiple of 64, q rows 16-byte aligned.
//
// With split > 0 (a multiple of AF_KT) the keys go by ranges of split
// positions, one range a block (grid (heads, ceil(m/AF_BQ) x ranges): the
// causal tail's blocks no longer take all keys), and each block writes its
// rows' unnormalised accumulators, maxima and sums (DIM + 4 floats a row
// and head: 16-byte aligned, the last two unused) to part; attn_f32_merge then combines a row's ranges
// 0..pos/split. A block whose rows have no key in its range does nothing.

#define AF_BQ 32
#define AF_KT 64
#define AF_NT 256

// af_load_keys loads keys ic..ic+nkt-1 (zeros past nkt) into registers,
// consecutive threads taking consecutive keys (for conflict-free
// transposed stores).
template <int DIM>
__device__ __forceinline__ void af_load_keys(const float* kb, int kvStride, int ic, int nkt, float4* kr) {
    constexpr int ITEMS = AF_KT * (DIM / 4) / AF_NT;
#pragma unroll
    for (int u = 0; u < ITEMS; u++) {
        int idx = threadIdx.x + u * AF_NT;
        int key = idx % AF_KT, c4 = idx / AF_KT;
        kr[u] = key < nkt ? *(const float4*)(kb + (i64)(ic + key) * kvStride + c4 * 4)
                          : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
}

// af_copy_values starts copying values ic..ic+nkt-1 into vs (rows of VP
// floats; zeros past nkt) with cp.async, consecutive threads along a row;
// cp.async.wait_all completes it.
template <int DIM, int VP>
__device__ __forceinline__ void af_copy_values(const float* vb, int kvStride, int ic, int nkt, float* vs) {
    constexpr int C4 = DIM / 4, ITEMS = AF_KT * C4 / AF_NT;
#pragma unroll
    for (int u = 0; u < ITEMS; u++) {
        int idx = threadIdx.x + u * AF_NT;
        int vkey = idx / C4, vc4 = idx % C4;
        u32 d = (u32)__cvta_generic_to_shared(&vs[vkey * VP + vc4 * 4]);
        const float* src = vb + (i64)(ic + min(vkey, nkt - 1)) * kvStride + vc4 * 4;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(vkey < nkt ? 16 : 0)
                     : "memory");
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
}

template <int DIM>
__device__ __forceinline__ void attn_f32_rows(const float* __restrict__ q, const u8* __restrict__ kc,
                                              const u8* __restrict__ vc, float* __restrict__ out, int heads,
                                              int kvHeads, const int* __restrict__ info, int m, float scale,
                                              int qStride, i64 slotBytes, float* __restrict__ part, int split) {
    constexpr int QP = AF_BQ + 4, KP = AF_KT + 4, VP = DIM + 4, NC = DIM / 16, C4 = DIM / 4;
    constexpr int ITEMS = AF_KT * C4 / AF_NT;
    extern __shared__ float afShared[];
    float* qt = afShared;        // DIM x QP: qt[d*QP + row]
    float* kt = qt + DIM * QP;   // DIM x KP: kt[d*KP + key]
    float* vs = kt + DIM * KP;   // AF_KT x VP: vs[key*VP + d]
    float* pt = vs + AF_KT * VP;  // AF_KT x QP: pt[key*QP + row], the tile's weights
    __shared__ int rowPos[AF_BQ], rowSlot[AF_BQ];
    __shared__ int sCur, sEnd;
    const float ninf = __uint_as_float(0xff800000u);
    const int none = 0x7fffffff;
    int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    int h = blockIdx.x;
    int tiles = (m + AF_BQ - 1) / AF_BQ, z = blockIdx.y / tiles;
    int r0 = (tiles - 1 - blockIdx.y % tiles) * AF_BQ;
    int kBeg = split > 0 ? z * split : 0, kEnd = split > 0 ? kBeg + split : 0x7fffffff;
    int kvStride = kvHeads * DIM;
    int off = (h / (heads / kvHeads)) * DIM;
    for (int i = tid; i < AF_BQ; i += AF_NT) {
        bool ok = r0 + i < m;
        rowPos[i] = ok ? ROW_POS(info, r0 + i) : -1;
        rowSlot[i] = ok ? ROW_SLOT(info, r0 + i) : -1;
    }
    if (!__syncthreads_or(tid < AF_BQ && rowPos[tid] >= kBeg)) return;  // no key in the range
    for (int i = tid; i < AF_BQ * C4; i += AF_NT) {
        int row = i / C4, d = (i % C4) * 4;
        float4 v = r0 + row < m ? *(const float4*)(q + (i64)(r0 + row) * qStride + h * DIM + d)
                                : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        qt[d * QP + row] = v.x, qt[(d + 1) * QP + row] = v.y, qt[(d + 2) * QP + row] = v.z,
                      qt[(d + 3) * QP + row] = v.w;
    }
    float acc[2][NC], M[2] = {ninf, ninf}, S[2] = {0.0f, 0.0f};
#pragma unroll
    for (int a = 0; a < 2; a++)
#pragma unroll
        for (int c = 0; c < NC; c++) acc[a][c] = 0.0f;
    float4 kr[ITEMS];
    for (int prev = -1;;) {
        __syncthreads();
        if (tid == 0) {  // the next slot of the block's rows, and its keys
            int cur = none, end = 0;
            for (int i = 0; i < AF_BQ; i++)
                if (rowSlot[i] > prev && rowSlot[i] < cur) cur = rowSlot[i];
            for (int i = 0; i < AF_BQ; i++)
                if (rowSlot[i] == cur) end = max(end, rowPos[i] + 1);
            sCur = cur;
            sEnd = end;
        }
        __syncthreads();
        int cur = sCur, end = min(sEnd, kEnd);
        if (cur == none) break;
        prev = cur;
        if (end <= kBeg) continue;
        // The positions this thread's rows see in this slot (-1: none).
        int lim[2];
#pragma unroll
        for (int a = 0; a < 2; a++) lim[a] = rowSlot[2 * ty + a] == cur ? rowPos[2 * ty + a] : -1;
        const float* kb = (const float*)(kc + (i64)cur * slotBytes) + off;
        const float* vb = (const float*)(vc + (i64)cur * slotBytes) + off;
        af_load_keys<DIM>(kb, kvStride, kBeg, min(AF_KT, end - kBeg), kr);
        for (int ic = kBeg; ic < end; ic += AF_KT) {
            __syncthreads();  // the previous tile's weights and values are used
#pragma unroll
            for (int u = 0; u < ITEMS; u++) {
                int idx = tid + u * AF_NT;
                int key = idx % AF_KT, c4 = idx / AF_KT;
                kt[(c4 * 4) * KP + key] = kr[u].x;
                kt[(c4 * 4 + 1) * KP + key] = kr[u].y;
                kt[(c4 * 4 + 2) * KP + key] = kr[u].z;
                kt[(c4 * 4 + 3) * KP + key] = kr[u].w;
            }
            // This tile's values land during the scores, the next tile's
            // keys during the whole step.
            af_copy_values<DIM, VP>(vb, kvStride, ic, min(AF_KT, end - ic), vs);
            if (ic + AF_KT < end) af_load_keys<DIM>(kb, kvStride, ic + AF_KT, min(AF_KT, end - ic - AF_KT), kr);
            __syncthreads();
            float s[2][4];
#pragma unroll
            for (int a = 0; a < 2; a++)
#pragma unroll
                for (int b = 0; b < 4; b++) s[a][b] = 0.0f;
#pragma unroll 8
            for (int d = 0; d < DIM; d++) {
                float2 qa = *(const float2*)&qt[d * QP + ty * 2];
                float4 ka = *(const float4*)&kt[d * KP + tx * 4];
                const float kk[4] = {ka.x, ka.y, ka.z, ka.w};
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    s[0][b] = __fmaf_rn(qa.x, kk[b], s[0][b]);
                    s[1][b] = __fmaf_rn(qa.y, kk[b], s[1][b]);
                }
            }
            // The online softmax step of each row (a half-warp's shuffles).
            float p[2][4], alpha[2];
#pragma unroll
            for (int a = 0; a < 2; a++) {
                float mt = ninf;
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    s[a][b] = ic + tx * 4 + b <= lim[a] ? s[a][b] * scale : ninf;
                    mt = fmaxf(mt, s[a][b]);
                }
#pragma unroll
                for (int o = 8; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(FULL, mt, o));
                float mn = fmaxf(M[a], mt), sum = 0.0f;
                if (mn == ninf) {  // no key of this row yet
                    alpha[a] = 1.0f;
#pragma unroll
                    for (int b = 0; b < 4; b++) p[a][b] = 0.0f;
                } else {
                    alpha[a] = expf(M[a] - mn);  // 0 for the first keys (M = -inf)
#pragma unroll
                    for (int b = 0; b < 4; b++) {
                        p[a][b] = expf(s[a][b] - mn);  // 0 where masked
                        sum += p[a][b];
                    }
                }
#pragma unroll
                for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(FULL, sum, o);
                S[a] = S[a] * alpha[a] + sum;
                M[a] = mn;
            }
#pragma unroll
            for (int b = 0; b < 4; b++) *(float2*)&pt[(tx * 4 + b) * QP + ty * 2] = make_float2(p[0][b], p[1][b]);
#pragma unroll
            for (int a = 0; a < 2; a++)
#pragma unroll
                for (int c = 0; c < NC; c++) acc[a][c] *= alpha[a];
            asm volatile("cp.async.wait_all;" ::: "memory");
            __syncthreads();
            int nk = min(AF_KT, end - ic);
            for (int tk = 0; tk < nk; tk++) {
                float2 pa = *(const float2*)&pt[tk * QP + ty * 2];
#pragma unroll
                for (int c4 = 0; c4 < NC / 4; c4++) {
                    float4 va = *(const float4*)&vs[tk * VP + c4 * 64 + tx * 4];
                    const float vv[4] = {va.x, va.y, va.z, va.w};
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        acc[0][c4 * 4 + e] = __fmaf_rn(pa.x, vv[e], acc[0][c4 * 4 + e]);
                        acc[1][c4 * 4 + e] = __fmaf_rn(pa.y, vv[e], acc[1][c4 * 4 + e]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int a = 0; a < 2; a++) {
        int row = ty * 2 + a;
        if (r0 + row >= m) continue;
        if (split > 0) {  // the range's partial result
            float* p = part + (((i64)z * m + r0 + row) * heads + h) * (DIM + 4);
#pragma unroll
            for (int c4 = 0; c4 < NC / 4; c4++)
                *(float4*)&p[c4 * 64 + tx * 4] =
                    make_float4(acc[a][c4 * 4], acc[a][c4 * 4 + 1], acc[a][c4 * 4 + 2], acc[a][c4 * 4 + 3]);
            if (tx == 0) p[DIM] = M[a], p[DIM + 1] = S[a];
            continue;
        }
        float inv = S[a] != 0.0f ? 1.0f / S[a] : 0.0f;
        float* o = out + (i64)(r0 + row) * heads * DIM + h * DIM;
#pragma unroll
        for (int c4 = 0; c4 < NC / 4; c4++)
            *(float4*)&o[c4 * 64 + tx * 4] = make_float4(acc[a][c4 * 4] * inv, acc[a][c4 * 4 + 1] * inv,
                                                          acc[a][c4 * 4 + 2] * inv, acc[a][c4 * 4 + 3] * inv);
    }
}

#define ATTN_F32_ROWS(DIM)                                                                                   \
    extern "C" __global__ void __launch_bounds__(AF_NT, 2) attn_f32_rows_##DIM(                                 \
        const float* __restrict__ q, const u8* __restrict__ kc, const u8* __restrict__ vc,                   \
        float* __restrict__ out, int heads, int kvHeads, const int* __restrict__ info, int m, float scale,  \
        int qStride, i64 slotBytes, float* __restrict__ part, int split) {                                   \
        pdl_start(); /* the query and the cache rows come from the kernels before */                         \
        attn_f32_rows<DIM>(q, kc, vc, out, heads, kvHeads, info, m, scale, qStride, slotBytes, part, split); \
    }
ATTN_F32_ROWS(64)
ATTN_F32_ROWS(128)

// attn_f32_merge combines attn_f32_rows' partial results of key ranges
// 0..pos/split of each row and head into out (heads x dim floats a row):
// grid (heads, m), dim threads, one output element a thread.
extern "C" __global__ void attn_f32_merge(const float* __restrict__ part, float* __restrict__ out, int heads,
                                          int dim, const int* __restrict__ info, int m, int split) {
    int h = blockIdx.x, r = blockIdx.y, d = threadIdx.x;
    int ns = ROW_POS(info, r) / split + 1;
    const float ninf = __uint_as_float(0xff800000u);
    float M = ninf;
    for (int s = 0; s < ns; s++) M = fmaxf(M, part[(((i64)s * m + r) * heads + h) * (dim + 4) + dim]);
    float S = 0.0f, o = 0.0f;
    for (int s = 0; s < ns; s++) {
        const float* p = part + (((i64)s * m + r) * heads + h) * (dim + 4);
        float ms = p[dim];
        if (ms == ninf) continue;  // a range without keys for this row
        float w = expf(ms - M);
        S += w * p[dim + 1];
        o += w * p[d];
    }
    out[(i64)r * heads * dim + h * dim + d] = S != 0.0f ? o / S : 0.0f;
}

// ------------------------- attention of few rows over a float32 cache
//
// attn_f32_dec_DIM is attention_f32_rows' attention (transformers'
// numerics: float32 keys and values, softmax in float32) for passes of
// fewer rows than the row-tiled kernel takes (decode steps, also in the
// captured decode graph, and small passes of several slots): one block a
// (head, row), grid (heads, m), AD_NW warps. Warp w takes keys 4w..4w+3,
// then 4(w+AD_NW).., four at a time with all their key and value loads in
// flight, and keeps its own online softmax (maximum M, sum S, the
// accumulator rescaled by exp(M_old - M_new)); a lane holds DIM/32
// consecutive elements of the query, of each key and value, and of the
// accumulator. The warps' results are combined at the end. Same
// parameters and rows as attention (info: ROW_POS, ROW_SLOT; out heads x
// DIM floats a row); q rows 16-byte aligned.
//
// attn_f16_dec_DIM is the same over an F16 cache without ggml's flash
// attention (a SafeTensors model with --cache-type-k f16): the CPU
// backend's Attention over such a cache, whose query is rounded to F16 for
// the Q.K products and whose keys and values are exact in float32.

#define AD_NW 8

// ad_load reads E consecutive cache elements (float32, or F16 when F16)
// at p as float32.
template <int E, bool F16>
__device__ __forceinline__ void ad_load(const u8* p, float* x) {
    if constexpr (F16) {
        if constexpr (E == 4) {
            uint2 h = *(const uint2*)p;
            x[0] = h2f((u16)(h.x & 0xffff)), x[1] = h2f((u16)(h.x >> 16));
            x[2] = h2f((u16)(h.y & 0xffff)), x[3] = h2f((u16)(h.y >> 16));
        } else {
            u32 h = *(const u32*)p;
            x[0] = h2f((u16)(h & 0xffff)), x[1] = h2f((u16)(h >> 16));
        }
    } else if constexpr (E == 4) {
        float4 a = *(const float4*)p;
        x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w;
    } else {
        float2 a = *(const float2*)p;
        x[0] = a.x, x[1] = a.y;
    }
}

template <int DIM, bool F16>
__device__ __forceinline__ void attn_f32_dec(const float* __restrict__ q, const u8* __restrict__ kc,
                                             const u8* __restrict__ vc, float* __restrict__ out, int heads,
                                             int kvHeads, const int* __restrict__ info, float scale, int qStride,
                                             i64 slotBytes) {
    constexpr int E = DIM / WARP;  // 2 or 4
    constexpr int ELEM = F16 ? 2 : 4;
    __shared__ float wM[AD_NW], wS[AD_NW];
    __shared__ float wAcc[AD_NW][DIM];
    const float ninf = __uint_as_float(0xff800000u);
    int h = blockIdx.x, r = blockIdx.y;
    int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
    int n = ROW_POS(info, r) + 1;
    i64 sb = (i64)ROW_SLOT(info, r) * slotBytes;
    int kvStride = kvHeads * DIM;
    int off = (h / (heads / kvHeads)) * DIM + lane * E;
    const u8* kb = kc + sb + (i64)off * ELEM;
    const u8* vb = vc + sb + (i64)off * ELEM;
    const float* qr = q + (i64)r * qStride + h * DIM + lane * E;
    float qv[E], acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) qv[e] = F16 ? h2f(f2h(qr[e])) : qr[e], acc[e] = 0.0f;
    float M = ninf, S = 0.0f;
    for (int j0 = 4 * w; j0 < n; j0 += 4 * AD_NW) {
        float kv[4][E], vv[4][E], s[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int j = min(j0 + u, n - 1);  // past n: a valid row, masked below
            ad_load<E, F16>(kb + (i64)j * kvStride * ELEM, kv[u]);
            ad_load<E, F16>(vb + (i64)j * kvStride * ELEM, vv[u]);
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float d = 0.0f;
#pragma unroll
            for (int e = 0; e < E; e++) d = fmaf(qv[e], kv[u][e], d);
            s[u] = d;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
#pragma unroll
            for (int u = 0; u < 4; u++) s[u] += __shfl_xor_sync(FULL, s[u], o);
        float mx = M;
#pragma unroll
        for (int u = 0; u < 4; u++) {
            s[u] = j0 + u < n ? s[u] * scale : ninf;
            mx = fmaxf(mx, s[u]);
        }
        float corr = expf(M - mx);  // M = -inf at the first keys: 0
        S *= corr;
#pragma unroll
        for (int e = 0; e < E; e++) acc[e] *= corr;
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float p = expf(s[u] - mx);  // masked keys: 0
            S += p;
#pragma unroll
            for (int e = 0; e < E; e++) acc[e] = fmaf(p, vv[u][e], acc[e]);
        }
        M = mx;
    }
    if (lane == 0) wM[w] = M, wS[w] = S;
#pragma unroll
    for (int e = 0; e < E; e++) wAcc[w][lane * E + e] = acc[e];
    __syncthreads();
    for (int d = threadIdx.x; d < DIM; d += blockDim.x) {
        float mx = ninf;
#pragma unroll
        for (int k = 0; k < AD_NW; k++) mx = fmaxf(mx, wM[k]);
        float tot = 0.0f, o = 0.0f;
#pragma unroll
        for (int k = 0; k < AD_NW; k++) {
            if (wM[k] == ninf) continue;  // a warp without keys
            float c = expf(wM[k] - mx);
            tot = fmaf(wS[k], c, tot);
            o = fmaf(wAcc[k][d], c, o);
        }
        out[(i64)r * heads * DIM + h * DIM + d] = o / tot;
    }
}

#define ATTN_F32_DEC(NAME, DIM, F16)                                                                          \
    extern "C" __global__ void __launch_bounds__(AD_NW * WARP) NAME(                                          \
        const float* __restrict__ q, const u8* __restrict__ kc, const u8* __restrict__ vc,                    \
        float* __restrict__ out, int heads, int kvHeads, const int* __restrict__ info, float scale,          \
        int qStride, i64 slotBytes) {                                                                         \
        pdl_start(); /* the query and the cache rows come from the kernels before */                          \
        attn_f32_dec<DIM, F16>(q, kc, vc, out, heads, kvHeads, info, scale, qStride, slotBytes);              \
    }
ATTN_F32_DEC(attn_f32_dec_64, 64, false)
ATTN_F32_DEC(attn_f32_dec_128, 128, false)
ATTN_F32_DEC(attn_f16_dec_64, 64, true)
ATTN_F32_DEC(attn_f16_dec_128, 128, true)
