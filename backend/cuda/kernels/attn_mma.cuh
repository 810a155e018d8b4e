// ---------------- prefill attention over a float32 or F16 cache on tensor cores
//
// attn_mma_DIM_BQ is attn_f32_rows' attention (causal grouped-query
// attention with transformers' numerics: float32 keys and values, softmax
// in float32) on mma.sync m16n8k16 F16 tensor-core products with split
// operands (x = hi + lo, hi = f16(x), lo = f16(x - hi): 22 of float32's 24
// bits, a*b ~ lo_a*hi_b + hi_a*lo_b + hi_a*hi_b, as 3xTF32 but with half
// the product instructions of m16n8k8 TF32), which keeps float32-level
// results. F16's range bounds the keys, values and queries (|x| < 65504),
// as llama.cpp's default F16 cache does; a lo part below F16's normal range
// loses bits only below 2^-25 of the result. attn_mma_f16_DIM_BQ is the same attention over an F16 cache (the
// CPU's Attention over one: the query rounded to F16, scores, softmax and
// sums in float32) on mma.sync m16n8k16 F16 products with float32
// accumulators: the F16 query and keys multiply exactly, and the weights
// are split into F16 hi and lo parts for the values (two products), so the
// result stays at float32 level too.
//
// A block takes BQ consecutive rows of a pass and one query head:
// grid (heads, ceil(m/BQ)), the last rows first (they take the most keys),
// AM_NT threads = 8 warps. Warp w takes 16 rows (w % (BQ/16)) and, of each
// staged tile of AM_KT keys, one slice of AM_KT/KG keys (w / (BQ/16), KG =
// 8/(BQ/16) slices): the keys of a row are spread over KG warps, which
// keep their own online softmax (maximum M, sum S, accumulator rescaled by
// exp(M_old - M_new)) and are combined at the end through shared memory.
// Key and value tiles are double-buffered in shared memory by cp.async
// and the block's queries staged there once as F16 (split into hi and lo
// over a float32 cache, rounded over an F16 one; rows of DIM+8 halves;
// float32 key rows of DIM+8 floats and value rows of DIM+4: the
// fragments' loads are free of bank conflicts). The scores' accumulators
// of keys 8j..8j+15 are the weights' A fragment of k-step j/2 as they lie
// (split into F16 hi and lo parts); the values' fragments are read as
// scalars (float32) or by ldmatrix .trans (F16). A
// warp skips the slices past its rows' last key (the causal diagonal).
// Rows of several slots in one block are taken slot by slot (the others'
// keys masked), as attn_f32_rows does.
//
// With split > 0 (a multiple of AM_KT) the keys go by ranges of split
// positions, one range a block (grid (heads, ceil(m/BQ) x ranges)), and
// each block writes its rows' unnormalised accumulators, maxima and sums
// to part as attn_f32_rows does (DIM + 4 floats a row and head), for
// attn_f32_merge to combine: a long prompt's passes (few rows, many keys)
// then fill the GPU. A block whose rows have no key in its range does
// nothing.
//
// Same parameters and rows as attn_f32_rows (info: ROW_POS, ROW_SLOT; out
// heads x DIM floats a row); DIM a multiple of 16,
// cache and query rows 16-byte aligned. Dynamic shared memory: 2 * AM_KT *
// (2 * DIM + KPAD + VPAD) elements of the cache and QPARTS * BQ * (DIM + 8)
// halves (attnMMAShared).

#define AM_KT 64
#define AM_NT 256

// Am<T> is what differs between the caches: the query's F16 parts
// (QPARTS), the padding of a staged key and value row (KPAD, VPAD
// elements). A staged query row is DIM + 8 halves.
template <class T>
struct Am;
template <>
struct Am<float> {
    static const int KPAD = 8, VPAD = 4, QPARTS = 2;
};
template <>
struct Am<u16> {
    static const int KPAD = 8, VPAD = 8, QPARTS = 1;
};

// am_split splits x into F16 hi and lo parts (float32 cache).
__device__ __forceinline__ void am_split(float x, u16& hi, u16& lo, float) {
    hi = f2h(x);
    lo = f2h(x - h2f(hi));
}

// am_split rounds x to F16 (hi), as the CPU does to a query over an F16
// cache; there is no lo part (not written).
__device__ __forceinline__ void am_split(float x, u16& hi, u16&, u16) { hi = f2h(x); }

// mma_f16 adds a*b to c (m16n8k16, F16 operands, float32 accumulators).
__device__ __forceinline__ void mma_f16(float c[4], const u32 a[4], const u32 b[2]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ldsm4t loads four 8 x 8 matrices of halves transposed (ldmatrix .x4
// .trans): lanes 8i..8i+7 give the row addresses of matrix i, and lane l
// gets rows 2(l%4) and 2(l%4)+1 of column l/4 of each.
__device__ __forceinline__ void ldsm4t(u32 r[4], const u16* p) {
    u32 a = (u32)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

// am_pack rounds a and b to F16 hi parts (a in the low half) and their
// remainders to F16 lo parts.
__device__ __forceinline__ void am_pack(float a, float b, u32& hi, u32& lo) {
    u16 ha = f2h(a), hb = f2h(b);
    hi = (u32)ha | (u32)hb << 16;
    lo = (u32)f2h(a - h2f(ha)) | (u32)f2h(b - h2f(hb)) << 16;
}

// am_copy_tile starts copying keys and values ic..ic+nkt-1 (zeros past
// nkt) into ks and vs (rows of DIM + PAD elements) with cp.async,
// consecutive threads along a row, and commits them as one group.
template <class T, int DIM>
__device__ __forceinline__ void am_copy_tile(const T* kb, const T* vb, int kvStride, int ic, int nkt, T* ks,
                                             T* vs) {
    constexpr int E = 16 / sizeof(T), C16 = DIM / E, KP = DIM + Am<T>::KPAD, VP = DIM + Am<T>::VPAD;
    constexpr int ITEMS = (AM_KT * C16 + AM_NT - 1) / AM_NT;
#pragma unroll
    for (int u = 0; u < ITEMS; u++) {
        int idx = threadIdx.x + u * AM_NT;
        if (AM_KT * C16 % AM_NT != 0 && idx >= AM_KT * C16) break;
        int key = idx / C16, c16 = idx % C16;
        i64 src = (i64)(ic + min(key, nkt - 1)) * kvStride + c16 * E;
        int n = key < nkt ? 16 : 0;
        u32 dk = (u32)__cvta_generic_to_shared(&ks[key * KP + c16 * E]);
        u32 dv = (u32)__cvta_generic_to_shared(&vs[key * VP + c16 * E]);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dk), "l"(kb + src), "r"(n) : "memory");
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dv), "l"(vb + src), "r"(n) : "memory");
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
}

// am_scores sets s[j] to the scores of the warp's 16 rows (the queries'
// F16 hi and lo parts qh, ql from their first row) and keys 8j..8j+7 of
// the warp's slice (kt from its first key): split F16 products over a
// float32 cache.
template <int DIM, int NJ>
__device__ __forceinline__ void am_scores(float s[NJ][4], const u16* qh, const u16* ql, const float* kt, int g,
                                          int c) {
    constexpr int W = (DIM + 8) / 2, KP = DIM + Am<float>::KPAD, KS = DIM / 16;
    const u32* qfh = (const u32*)(qh + g * 2 * W) + c;  // words: rows g and g + 8, halves 2c.. and 2c+8..
    const u32* qfl = (const u32*)(ql + g * 2 * W) + c;
    kt += g * KP + 2 * c;
    // hi x hi and the lo terms in separate accumulators (twice the
    // independent chains of products).
    float sl[NJ][4];
#pragma unroll
    for (int j = 0; j < NJ; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[j][e] = sl[j][e] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
        const u32 ah[4] = {qfh[8 * ks], qfh[8 * W + 8 * ks], qfh[8 * ks + 4], qfh[8 * W + 8 * ks + 4]};
        const u32 al[4] = {qfl[8 * ks], qfl[8 * W + 8 * ks], qfl[8 * ks + 4], qfl[8 * W + 8 * ks + 4]};
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            float2 x0 = *(const float2*)&kt[8 * j * KP + 16 * ks], x1 = *(const float2*)&kt[8 * j * KP + 16 * ks + 8];
            u32 bh[2], bl[2];
            am_pack(x0.x, x0.y, bh[0], bl[0]);
            am_pack(x1.x, x1.y, bh[1], bl[1]);
            mma_f16(sl[j], al, bh);
            mma_f16(sl[j], ah, bl);
            mma_f16(s[j], ah, bh);
        }
    }
#pragma unroll
    for (int j = 0; j < NJ; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[j][e] += sl[j][e];
}

// am_scores over an F16 cache: the F16 queries times the keys, exact
// products in float32 accumulators.
template <int DIM, int NJ>
__device__ __forceinline__ void am_scores(float s[NJ][4], const u16* qh, const u16*, const u16* kt, int g, int c) {
    constexpr int P = DIM + Am<u16>::KPAD, W = P / 2, KS = DIM / 16;
    const u32* qf = (const u32*)(qh + g * P) + c;  // words: rows g and g + 8, halves 2c.. and 2c+8..
    const u32* kf = (const u32*)(kt + g * P) + c;
#pragma unroll
    for (int j = 0; j < NJ; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[j][e] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
        const u32 a[4] = {qf[8 * ks], qf[8 * W + 8 * ks], qf[8 * ks + 4], qf[8 * W + 8 * ks + 4]};
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            const u32 b[2] = {kf[8 * j * W + 8 * ks], kf[8 * j * W + 8 * ks + 4]};
            mma_f16(s[j], a, b);
        }
    }
}

// am_pack4 splits the weights of keys 16t..16t+15 (the accumulators of
// s[2t] and s[2t+1], as they lie the A fragment of an m16n8k16 k-step)
// into F16 hi and lo parts.
template <int NJ>
__device__ __forceinline__ void am_pack4(const float s[NJ][4], int t, u32 ph[4], u32 pl[4]) {
    am_pack(s[2 * t][0], s[2 * t][1], ph[0], pl[0]);
    am_pack(s[2 * t][2], s[2 * t][3], ph[1], pl[1]);
    am_pack(s[2 * t + 1][0], s[2 * t + 1][1], ph[2], pl[2]);
    am_pack(s[2 * t + 1][2], s[2 * t + 1][3], ph[3], pl[3]);
}

// am_values adds the weights s (the scores' layout) times the values of
// the warp's key slice (vt from its first key) to o over a float32 cache:
// k-step t takes keys 16t..16t+15, weights and values split into F16 hi
// and lo parts (three products).
template <int DIM, int NJ>
__device__ __forceinline__ void am_values(float o[DIM / 8][4], const float s[NJ][4], const float* vt, int lane) {
    constexpr int P = DIM + Am<float>::VPAD;
    vt += 2 * (lane & 3) * P + (lane >> 2);  // keys 2c and 2c + 1, element g of each column tile
#pragma unroll
    for (int t = 0; t < NJ / 2; t++) {
        u32 ph[4], pl[4];
        am_pack4<NJ>(s, t, ph, pl);
#pragma unroll
        for (int n = 0; n < DIM / 8; n++) {
            const float* v = vt + 16 * t * P + 8 * n;
            u32 bh[2], bl[2];
            am_pack(v[0], v[P], bh[0], bl[0]);
            am_pack(v[8 * P], v[9 * P], bh[1], bl[1]);
            mma_f16(o[n], pl, bh);
            mma_f16(o[n], ph, bl);
            mma_f16(o[n], ph, bh);
        }
    }
}

// am_values over an F16 cache: k-step t takes keys 16t..16t+15 (the
// accumulators of s[2t] and s[2t+1] as the A fragment), the weights split
// into F16 hi and lo parts, the values' fragments by ldmatrix .trans (two
// 8-element column tiles a load).
template <int DIM, int NJ>
__device__ __forceinline__ void am_values(float o[DIM / 8][4], const float s[NJ][4], const u16* vt, int lane) {
    constexpr int P = DIM + Am<u16>::VPAD;
    vt += (lane & 15) * P + 8 * (lane >> 4);
#pragma unroll
    for (int t = 0; t < NJ / 2; t++) {
        u32 ph[4], pl[4];
        am_pack4<NJ>(s, t, ph, pl);
#pragma unroll
        for (int n = 0; n < DIM / 16; n++) {
            u32 b[4];
            ldsm4t(b, vt + 16 * t * P + 16 * n);
            mma_f16(o[2 * n], pl, b);
            mma_f16(o[2 * n + 1], pl, b + 2);
            mma_f16(o[2 * n], ph, b);
            mma_f16(o[2 * n + 1], ph, b + 2);
        }
    }
}

template <class T, int DIM, int BQ>
__device__ __forceinline__ void attn_mma(const float* __restrict__ q, const u8* __restrict__ kc,
                                         const u8* __restrict__ vc, float* __restrict__ out, int heads, int kvHeads,
                                         const int* __restrict__ info, int m, float scale, int qStride,
                                         i64 slotBytes, float* __restrict__ part, int split) {
    constexpr int RG = BQ / 16, KG = 8 / RG, NKW = AM_KT / KG, NJ = NKW / 8, OP = DIM + 4;
    constexpr int KP = DIM + Am<T>::KPAD, VP = DIM + Am<T>::VPAD, QP = DIM + 8;
    static_assert(RG * KG == AM_NT / WARP && NJ >= 2 && NJ % 2 == 0, "attn_mma: 8 warps of 16 rows x a key slice");
    extern __shared__ __align__(16) u8 amBytes[];
    T* ksm = (T*)amBytes;                    // 2 x AM_KT x KP: key tiles
    T* vsm = ksm + 2 * AM_KT * KP;           // 2 x AM_KT x VP: value tiles
    u16* qh = (u16*)(vsm + 2 * AM_KT * VP);  // BQ x QP: the queries (float32 cache: their hi parts)
    u16* ql = qh + BQ * QP;                  // BQ x QP: float32 cache: their lo parts (QPARTS 2)
    __shared__ int rowPos[BQ], rowSlot[BQ];
    __shared__ float wM[KG][BQ], wS[KG][BQ];
    __shared__ int sCur, sEnd;
    const float ninf = __uint_as_float(0xff800000u);
    const int none = 0x7fffffff;
    const float scale2 = scale * 1.44269504088896341f;  // log2(e)
    int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, rg = w % RG, kg = w / RG;
    int g = lane >> 2, c = lane & 3;
    int h = blockIdx.x;
    int tiles = (m + BQ - 1) / BQ, z = blockIdx.y / tiles;
    int r0 = (tiles - 1 - blockIdx.y % tiles) * BQ;
    int kBeg = split > 0 ? z * split : 0, kEnd = split > 0 ? kBeg + split : 0x7fffffff;
    int kvStride = kvHeads * DIM;
    int off = (h / (heads / kvHeads)) * DIM;
    for (int i = tid; i < BQ; i += AM_NT) {
        bool ok = r0 + i < m;
        rowPos[i] = ok ? ROW_POS(info, r0 + i) : -1;
        rowSlot[i] = ok ? ROW_SLOT(info, r0 + i) : -1;
    }
    if (!__syncthreads_or(tid < BQ && rowPos[tid] >= kBeg)) return;  // no key in the range
    for (int i = tid; i < BQ * (DIM / 4); i += AM_NT) {
        int row = i / (DIM / 4), d = (i % (DIM / 4)) * 4;
        float4 v = r0 + row < m ? *(const float4*)(q + (i64)(r0 + row) * qStride + h * DIM + d)
                                : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        const float x[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int e = 0; e < 4; e++) am_split(x[e], qh[row * QP + d + e], ql[row * QP + d + e], T());
    }
    float o[DIM / 8][4], M[2] = {ninf, ninf}, S[2] = {0.0f, 0.0f};
#pragma unroll
    for (int n = 0; n < DIM / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[n][e] = 0.0f;
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
        int cur = sCur, end = min(sEnd, kEnd);
        if (cur == none) break;
        prev = cur;
        if (end <= kBeg) continue;  // none of this slot's keys in the range
        // The positions this thread's rows see in this slot (-1: none),
        // and the last one of the warp's rows.
        int lim[2];
#pragma unroll
        for (int a = 0; a < 2; a++) {
            int i = 16 * rg + g + 8 * a;
            lim[a] = rowSlot[i] == cur ? rowPos[i] : -1;
        }
        int wl = __reduce_max_sync(FULL, max(lim[0], lim[1]));
        int wf = (int)__reduce_min_sync(FULL, (unsigned)min(lim[0], lim[1]) + 1u) - 1;  // -1: a row without keys here
        const T* kb = (const T*)(kc + (i64)cur * slotBytes) + off;
        const T* vb = (const T*)(vc + (i64)cur * slotBytes) + off;
        am_copy_tile<T, DIM>(kb, vb, kvStride, kBeg, min(AM_KT, end - kBeg), ksm, vsm);
        for (int t = 0, ic = kBeg; ic < end; t++, ic += AM_KT) {
            if (ic + AM_KT < end) {  // the next tile lands during this one
                int nb = (t + 1) & 1;
                am_copy_tile<T, DIM>(kb, vb, kvStride, ic + AM_KT, min(AM_KT, end - ic - AM_KT), ksm + nb * AM_KT * KP,
                                     vsm + nb * AM_KT * VP);
                asm volatile("cp.async.wait_group 1;" ::: "memory");
            } else {
                asm volatile("cp.async.wait_group 0;" ::: "memory");
            }
            __syncthreads();
            int k0 = ic + kg * NKW;  // the warp's first key
            if (k0 <= wl) {
                const T* tk = ksm + ((t & 1) * AM_KT + kg * NKW) * KP;
                const T* tv = vsm + ((t & 1) * AM_KT + kg * NKW) * VP;
                float s[NJ][4];
                am_scores<DIM, NJ>(s, qh + 16 * rg * QP, ql + 16 * rg * QP, tk, g, c);
                // The online softmax step of rows g (a = 0) and g + 8 (a =
                // 1): element (j, 2a + e) is key k0 + 8j + 2c + e. Scores,
                // maxima and sums in base 2 (scale2 = scale x log2(e)): an
                // exp2 a weight. Keys past a row's position are masked only
                // where the slice reaches past the warp's first row
                // (wf), and the accumulators rescaled only where a row's
                // maximum moved.
                bool whole = k0 + NKW - 1 <= wf;
                float alpha[2];
#pragma unroll
                for (int a = 0; a < 2; a++) {
                    float mt = ninf;
#pragma unroll
                    for (int j = 0; j < NJ; j++)
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            float v = s[j][2 * a + e] * scale2;
                            if (!whole && k0 + 8 * j + 2 * c + e > lim[a]) v = ninf;
                            s[j][2 * a + e] = v;
                            mt = fmaxf(mt, v);
                        }
                    mt = fmaxf(mt, __shfl_xor_sync(FULL, mt, 1));
                    mt = fmaxf(mt, __shfl_xor_sync(FULL, mt, 2));
                    float mn = fmaxf(M[a], mt), sum = 0.0f;
                    alpha[a] = 1.0f;
                    if (mn == ninf) {  // no key of this row yet
#pragma unroll
                        for (int j = 0; j < NJ; j++) s[j][2 * a] = s[j][2 * a + 1] = 0.0f;
                    } else {
                        alpha[a] = exp2f(M[a] - mn);  // 0 for the first keys (M = -inf)
#pragma unroll
                        for (int j = 0; j < NJ; j++)
#pragma unroll
                            for (int e = 0; e < 2; e++) {
                                float p = exp2f(s[j][2 * a + e] - mn);  // 0 where masked
                                s[j][2 * a + e] = p;
                                sum += p;
                            }
                    }
                    S[a] = S[a] * alpha[a] + sum;  // this lane's keys; the quad's added at the end
                    M[a] = mn;
                }
                if (__any_sync(FULL, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
                    for (int n = 0; n < DIM / 8; n++) {
                        o[n][0] *= alpha[0], o[n][1] *= alpha[0];
                        o[n][2] *= alpha[1], o[n][3] *= alpha[1];
                    }
                }
                am_values<DIM, NJ>(o, s, tv, lane);
            }
            __syncthreads();  // the tile is used: the next copy may overwrite it
        }
    }
    // Combine the KG key slices of each row: weights exp(M_k - max) / sum
    // (with split: exp(M_k - max), the range's maximum and sum kept).
#pragma unroll
    for (int a = 0; a < 2; a++) {
        S[a] += __shfl_xor_sync(FULL, S[a], 1);
        S[a] += __shfl_xor_sync(FULL, S[a], 2);
        if (c == 0) wM[kg][16 * rg + g + 8 * a] = M[a], wS[kg][16 * rg + g + 8 * a] = S[a];
    }
    __syncthreads();
    float wt[2], rowM[2], rowS[2];
#pragma unroll
    for (int a = 0; a < 2; a++) {
        int row = 16 * rg + g + 8 * a;
        float mx = ninf, tot = 0.0f;
#pragma unroll
        for (int k = 0; k < KG; k++) mx = fmaxf(mx, wM[k][row]);
#pragma unroll
        for (int k = 0; k < KG; k++)
            if (wM[k][row] != ninf) tot += wS[k][row] * exp2f(wM[k][row] - mx);
        wt[a] = tot > 0.0f && M[a] != ninf ? exp2f(M[a] - mx) : 0.0f;
        if (split == 0 && wt[a] != 0.0f) wt[a] /= tot;
        rowM[a] = mx * 0.693147180559945309f, rowS[a] = tot;  // the maximum in base e, as attn_f32_merge takes it
    }
    float* ob = (float*)amBytes;  // BQ x OP: the rows' outputs (the tiles are used)
#pragma unroll
    for (int k = 0; k < KG; k++) {
        if (kg == k) {
#pragma unroll
            for (int a = 0; a < 2; a++) {
                float* r = ob + (16 * rg + g + 8 * a) * OP + 2 * c;
#pragma unroll
                for (int n = 0; n < DIM / 8; n++) {
                    float2 v = make_float2(o[n][2 * a] * wt[a], o[n][2 * a + 1] * wt[a]);
                    if (k > 0) {
                        float2 u = *(const float2*)&r[8 * n];
                        v.x += u.x, v.y += u.y;
                    }
                    *(float2*)&r[8 * n] = v;
                }
            }
        }
        __syncthreads();
    }
    if (split > 0) {  // the range's partial results
        if (kg == 0 && c == 0) {
#pragma unroll
            for (int a = 0; a < 2; a++) {
                int row = 16 * rg + g + 8 * a;
                if (r0 + row < m) {
                    float* p = part + (((i64)z * m + r0 + row) * heads + h) * (DIM + 4);
                    p[DIM] = rowM[a], p[DIM + 1] = rowS[a];
                }
            }
        }
        for (int i = tid; i < BQ * (DIM / 4); i += AM_NT) {
            int row = i / (DIM / 4), c4 = (i % (DIM / 4)) * 4;
            if (r0 + row < m)
                *(float4*)&part[(((i64)z * m + r0 + row) * heads + h) * (DIM + 4) + c4] = *(const float4*)&ob[row * OP + c4];
        }
        return;
    }
    for (int i = tid; i < BQ * (DIM / 4); i += AM_NT) {
        int row = i / (DIM / 4), c4 = (i % (DIM / 4)) * 4;
        if (r0 + row < m)
            *(float4*)&out[(i64)(r0 + row) * heads * DIM + h * DIM + c4] = *(const float4*)&ob[row * OP + c4];
    }
}

// MINB: blocks an SM should hold (head dim 64: two, within 128 registers
// a thread and half the shared memory).
#define ATTN_MMA(NAME, T, DIM, BQ, MINB)                                                                     \
    extern "C" __global__ void __launch_bounds__(AM_NT, MINB) NAME##_##DIM##_##BQ(                            \
        const float* __restrict__ q, const u8* __restrict__ kc, const u8* __restrict__ vc,                   \
        float* __restrict__ out, int heads, int kvHeads, const int* __restrict__ info, int m, float scale,  \
        int qStride, i64 slotBytes, float* __restrict__ part, int split) {                                   \
        pdl_start(); /* the query and the cache rows come from the kernels before */                         \
        attn_mma<T, DIM, BQ>(q, kc, vc, out, heads, kvHeads, info, m, scale, qStride, slotBytes, part, split); \
    }
ATTN_MMA(attn_mma, float, 64, 64, 2)
ATTN_MMA(attn_mma, float, 64, 32, 2)
ATTN_MMA(attn_mma, float, 128, 64, 1)
ATTN_MMA(attn_mma, float, 128, 32, 1)
ATTN_MMA(attn_mma_f16, u16, 64, 64, 2)
ATTN_MMA(attn_mma_f16, u16, 64, 32, 2)
ATTN_MMA(attn_mma_f16, u16, 128, 64, 2)
ATTN_MMA(attn_mma_f16, u16, 128, 32, 2)
