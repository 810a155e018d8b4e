// ------------------------------------------------------ pointwise ops

// silu_mul is silu(x) * u: with ggml != 0 as ggml_vec_swiglu_f32 (the CPU
// backend's SiLUMulGGML: x / (1 + ggml_expf(-x)) * u), otherwise as
// SiLUMul (exp in double).
__device__ __forceinline__ float silu_mul(float x, float u, int ggml) {
    if (ggml) return __fmul_rn(__fdiv_rn(x, __fadd_rn(1.0f, ggml_expf(-x))), u);
    float ex = (float)exp((double)-x);
    return __fmul_rn(x / (1.0f + ex), u);
}

// silu_quant sets out[r][i] = silu(g) * u for the gate g = gu[r][i] and up
// u = gu[r][n+i] of rows of 2n values, over all rows' m*n outputs (the
// flat index e = r*n + i); with ggml != 0 as ggml_vec_swiglu_f32 (the CPU
// backend's SiLUMulGGML: g / (1 + ggml_expf(-g)) * u), otherwise as
// SiLUMul (exp in double). It then quantizes the outputs as quantize does
// (q80 / q8k may be null): one warp per 256 outputs.
extern "C" __global__ void silu_quant(const float* __restrict__ gu, float* __restrict__ out, int n, i64 total,
                                      int ggml, u8* __restrict__ q80, u8* __restrict__ q8k) {
    pdl_start();
    i64 base = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / WARP * 256;
    if (base >= total) return;
    int lane = threadIdx.x % WARP;
    float v[8];
    i64 e0 = base + 8 * lane;
    if ((n & 7) == 0 && e0 + 8 <= total) {
        // A lane's 8 outputs lie in one row (rows are multiples of 8
        // long): one index division and 16-byte loads and stores.
        i64 row = e0 / n;
        const float* g = gu + row * 2 * n + (e0 - row * n);
        float4 ga = *(const float4*)g, gb = *(const float4*)(g + 4);
        float4 ua = *(const float4*)(g + n), ub = *(const float4*)(g + n + 4);
        float gs[8] = {ga.x, ga.y, ga.z, ga.w, gb.x, gb.y, gb.z, gb.w};
        float us[8] = {ua.x, ua.y, ua.z, ua.w, ub.x, ub.y, ub.z, ub.w};
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = silu_mul(gs[j], us[j], ggml);
        *(float4*)(out + e0) = make_float4(v[0], v[1], v[2], v[3]);
        *(float4*)(out + e0 + 4) = make_float4(v[4], v[5], v[6], v[7]);
    } else {
#pragma unroll
        for (int j = 0; j < 8; j++) {
            i64 e = e0 + j;
            float r = 0.0f;
            if (e < total) {
                i64 row = e / n, i = e % n;
                r = silu_mul(gu[row * 2 * n + i], gu[row * 2 * n + n + i], ggml);
                out[e] = r;
            }
            v[j] = r;
        }
    }
    tl_mark_after(1, (double)v[7]);  // thread 0's loads and products
    if (q80 || q8k) quant_chunk(v, base, total, q80, q8k);
    tl_exit();
}

// add sets x += y.
extern "C" __global__ void add(float* __restrict__ x, const float* __restrict__ y, int n) {
    pdl_start();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

// argmax_merge keeps the larger value, the lower index on ties.
__device__ __forceinline__ void argmax_merge(float* best, int* idx, float v2, int i2) {
    if (v2 > *best || (v2 == *best && i2 < *idx)) { *best = v2; *idx = i2; }
}

// argmax_block reduces (best, idx) over a block; thread 0 gets the result.
__device__ void argmax_block(float* best, int* idx) {
    __shared__ float bv[32];
    __shared__ int bi[32];
    for (int o = 16; o > 0; o >>= 1)
        argmax_merge(best, idx, __shfl_xor_sync(FULL, *best, o), __shfl_xor_sync(FULL, *idx, o));
    int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
    if (lane == 0) { bv[w] = *best; bi[w] = *idx; }
    __syncthreads();
    if (w == 0) {
        *best = lane < nw ? bv[lane] : __uint_as_float(0xff800000u);
        *idx = lane < nw ? bi[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1)
            argmax_merge(best, idx, __shfl_xor_sync(FULL, *best, o), __shfl_xor_sync(FULL, *idx, o));
    }
}

// argmax_part writes the largest of its block's share of n values (the
// first on ties) and its index to pv[blockIdx.x], pi[blockIdx.x].
extern "C" __global__ void argmax_part(const float* __restrict__ x, int n, float* __restrict__ pv, int* __restrict__ pi) {
    pdl_start();
    float best = __uint_as_float(0xff800000u);  // -Inf logits are candidates, NaN ones never
    int idx = 0x7fffffff;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        argmax_merge(&best, &idx, x[i], i);
    argmax_block(&best, &idx);
    if (threadIdx.x == 0) { pv[blockIdx.x] = best; pi[blockIdx.x] = idx; }
}

// argmax_final merges parts partial results (one block) into out[0] as
// sample.Argmax chooses: the largest logit that is not NaN, the first on
// ties, -Inf included; token 0 when x[0] (the logits) is NaN or every
// logit is. With st (the pass state, whose row 0 is the decode step's) it
// readies the step after this one on the device: row 0's token becomes the
// answer and its position one more, and the step count st[1] goes up by
// one; the answer and its logit's bits go to ring[2*(st[1]&1)] (host
// memory the device maps; may be null), so that a step sent before the
// host has read the one before it finds its token there.
extern "C" __global__ void argmax_final(const float* __restrict__ pv, const int* __restrict__ pi, int parts,
                                        int* __restrict__ out, const float* __restrict__ x, int* __restrict__ st,
                                        u32* __restrict__ ring) {
    pdl_start();
    float best = __uint_as_float(0xff800000u);
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < parts; i += blockDim.x) argmax_merge(&best, &idx, pv[i], pi[i]);
    argmax_block(&best, &idx);
    if (threadIdx.x == 0) {
        float x0 = x[0];
        if (x0 != x0 || idx == 0x7fffffff) {
            idx = 0;
            best = x0;
        }
        out[0] = idx;
        if (st) {
            u32 seq = (u32)st[1];
            st[1] = (int)(seq + 1);
            st[4] = idx;
            st[5] += 1;
            if (ring) {
                ring[2 * (seq & 1)] = (u32)idx;
                ring[2 * (seq & 1) + 1] = __float_as_uint(best);  // the host reads it after the step's event
            }
        }
    }
}
