// ------------------------------------------------------ embedding rows
//
// get_rows_T writes, for every row r of the pass (grid.y), row
// ROW_TOKEN(info, r) of W (cols values) as float32 at out + r*cols, as
// quant.Dequantize does.

__device__ __forceinline__ float deq_f32(const u8* w, int i) { return ((const float*)w)[i]; }
__device__ __forceinline__ float deq_f16(const u8* w, int i) { return h2f(((const u16*)w)[i]); }
__device__ __forceinline__ float deq_bf16(const u8* w, int i) { return bf2f(((const u16*)w)[i]); }
__device__ __forceinline__ float deq_q8_0(const u8* w, int i) {
    const u8* b = w + (i / 32) * 34;
    return __fmul_rn((float)(i8)b[2 + i % 32], h2f(ld16(b)));
}
__device__ __forceinline__ float deq_q4_0(const u8* w, int i) {
    const u8* b = w + (i / 32) * 18;
    int j = i % 32;
    int q = j < 16 ? (b[2 + j] & 0x0f) : (b[2 + j - 16] >> 4);
    return __fmul_rn((float)(q - 8), h2f(ld16(b)));
}
__device__ __forceinline__ float deq_q5_0(const u8* w, int i) {
    const u8* b = w + (i / 32) * 22;
    int j = i % 32;
    u32 qh = (u32)ld32u(b + 2);
    int byte = b[6 + j % 16];
    int q = (j < 16 ? (byte & 0x0f) : (byte >> 4)) | (int)(((qh >> j) & 1) << 4);
    return __fmul_rn((float)(q - 16), h2f(ld16(b)));
}
template <bool Q5>
__device__ __forceinline__ float deq_q45k(const u8* w, int i) {
    const u8* b = w + (i / 256) * (Q5 ? 176 : 144);
    int e = i % 256, chunk = e / 64, l = e % 32;
    bool high = (e % 64) >= 32;
    int byte = b[(Q5 ? 48 : 16) + 32 * chunk + l];
    int q = high ? (byte >> 4) : (byte & 0x0f);
    if (Q5) q |= ((b[16 + l] >> (2 * chunk + (high ? 1 : 0))) & 1) << 4;
    uint4 hd = *(const uint4*)b;
    int sc4[4];
    k4_scales(e / 64, hd.y, hd.z, hd.w, sc4);
    bool odd = (e & 32) != 0;
    int sc = odd ? sc4[2] : sc4[0], m = odd ? sc4[3] : sc4[1];
    float d1 = __fmul_rn(h2f((u16)(hd.x & 0xffff)), (float)sc), m1 = __fmul_rn(h2f((u16)(hd.x >> 16)), (float)m);
    return __fsub_rn(__fmul_rn(d1, (float)q), m1);
}
__device__ __forceinline__ float deq_q6_k(const u8* w, int i) {
    const u8* b = w + (i / 256) * 210;
    int e = i % 256, half = e / 128, sub = (e % 128) / 32, l = e % 32;
    int ql = b[64 * half + 32 * (sub & 1) + l];
    int nib = sub >= 2 ? (ql >> 4) : (ql & 0x0f);
    int hb = (b[128 + 32 * half + l] >> (2 * sub)) & 3;
    int q = (nib | (hb << 4)) - 32;
    return __fmul_rn((float)q, __fmul_rn(h2f(ld16(b + 208)), (float)(i8)b[192 + e / 16]));
}

#define GET_ROWS(name, deq)                                                                        \
    extern "C" __global__ void name(const u8* __restrict__ W, float* __restrict__ out,            \
                                    const int* __restrict__ info, int cols, i64 rowBytes) {        \
        pdl_start();                                                                               \
        int r = blockIdx.y;                                                                        \
        const u8* w = W + (i64)ROW_TOKEN(info, r) * rowBytes;                                      \
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) \
            out[(i64)r * cols + i] = deq(w, i);                                                    \
    }

GET_ROWS(get_rows_f32, deq_f32)
GET_ROWS(get_rows_f16, deq_f16)
GET_ROWS(get_rows_bf16, deq_bf16)
GET_ROWS(get_rows_q8_0, deq_q8_0)
GET_ROWS(get_rows_q4_0, deq_q4_0)
GET_ROWS(get_rows_q5_0, deq_q5_0)
GET_ROWS(get_rows_q4_k, deq_q45k<false>)
GET_ROWS(get_rows_q5_k, deq_q45k<true>)
GET_ROWS(get_rows_q6_k, deq_q6_k)

// ------------------------------------------------------- normalisation

// rms_scale returns, in every thread of the block, the scale 1/rms(x) of
// the n values at xr as rmsnorm computes it with nt threads (a multiple of
// 32): thread t sums the squares (float32) of elements 8t..8t+7, 8(t+nt)..
// in double, the warps add their threads' sums by a shuffle tree and thread
// 0 adds the warps' in order. The block's own threads (a multiple of 32)
// play the nt threads' parts, so every block size gets the same bits.
// ggml != 0 follows RMSNormGGML (mean and scale float32), otherwise
// RMSNorm (sum rounded to float).
__device__ float rms_scale(const float* __restrict__ xr, int n, int nt, float eps, int ggml) {
    __shared__ double red[32];
    __shared__ float scl;
    int lane = threadIdx.x % WARP;
    for (int t = threadIdx.x; t - lane < nt; t += blockDim.x) {  // whole warps
        double s = 0.0;
        for (int i = t * 8; i < n; i += nt * 8)
#pragma unroll
            for (int j = 0; j < 8; j++)
                if (i + j < n) s += (double)__fmul_rn(xr[i + j], xr[i + j]);
        tl_mark_after(1, s);  // thread 0's loads and sum
        for (int k = 16; k > 0; k >>= 1) s += __shfl_xor_sync(FULL, s, k);
        if (lane == 0) red[t / WARP] = s;
    }
    __syncthreads();
    tl_mark(2);  // the warps' sums
    if (threadIdx.x == 0) {
        double sum = 0.0;
        for (int k = 0; k < nt / WARP; k++) sum += red[k];
        if (ggml) {
            float mean = (float)__ddiv_rn(sum, (double)n);
            // sqrt in double rounded to float is the float sqrt (double
            // rounding is innocuous for sqrt from 2 x 24 + 2 bits).
            scl = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, eps)));
        } else {
            float ss = (float)sum;
            scl = (float)(1.0 / sqrt((double)(ss / (float)n + eps)));
        }
    }
    tl_mark(3);  // the scale
    __syncthreads();
    return scl;
}

// rms_value is element x of a row normalised by scale, with weight w.
__device__ __forceinline__ float rms_value(float x, float scale, float w, int ggml) {
    return ggml ? __fmul_rn(__fmul_rn(x, scale), w) : __fmul_rn(w, __fmul_rn(x, scale));
}

// rmsnorm writes w * x/rms(x) for rows of n values, one block (a multiple
// of 32 threads, at most 1024) per row: output row r reads input row
// sel[r] (r when sel is null); out may be null where only the quantized
// rows are wanted. The scale is rms_scale's with the block's threads. The
// output rows are then quantized as quantize does into q80 / q8k (either
// may be null). The weights of a thread's first outputs
// (constants) are asked for before the wait for the kernel before, so
// that they arrive while it runs.
//
// With pk (a one-row pass's attention norm), it also asks, before the
// wait, for the layer's cache rows that the attention after it will read
// to be brought into L2: the keys and values (pk, pv: the layer's caches,
// slotBytes a slot, rowBytes a position) of the row's slot at the last
// FA_PRE positions before its own (the pass state read at L2 early, as
// rope_store says). The step's weights evict them from L2 between steps,
// and the attention (a cluster kernel) starts only once the q/k/v product
// has ended, too late to ask for them early itself: TestDecodeTimeline
// shows it so with any registers, shared memory or carveout.
#define FA_PRE 1024
extern "C" __global__ void rmsnorm(const float* __restrict__ x, const float* __restrict__ w,
                                   float* __restrict__ out, int n, float eps, int ggml,
                                   const int* __restrict__ sel, u8* __restrict__ q80, u8* __restrict__ q8k,
                                   const u8* __restrict__ pk, const u8* __restrict__ pv,
                                   const int* __restrict__ info, i64 slotBytes, int rowBytes) {
    int lane = threadIdx.x % WARP, wi = threadIdx.x / WARP, nw = blockDim.x / WARP;
    if (pk) {
        int pos = __ldcg(&ROW_POS(info, 0)), slot = __ldcg(&ROW_SLOT(info, 0));
        int p0 = max(0, pos - FA_PRE);
        i64 at = (i64)slot * slotBytes + (i64)p0 * rowBytes, bytes = (i64)(pos - p0) * rowBytes;
        prefetch_l2(pk + at, bytes);
        prefetch_l2(pv + at, bytes);
    }
    float w0[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int e = wi * 256 + 8 * lane + j;
        w0[j] = e < n ? __ldg(w + e) : 0.0f;
    }
    pdl_start();
    int r = blockIdx.x;
    const float* xr = x + (i64)(sel ? sel[r] : r) * n;
    float* o = out ? out + (i64)r * n : nullptr;  // none: only the quantized rows are wanted
    float scale = rms_scale(xr, n, blockDim.x, eps, ggml);
    // Each warp takes chunks of 256 outputs, quantized from registers.
    u8* q80r = q80 ? q80 + (i64)r * (n / 32) * 34 : 0;
    u8* q8kr = q8k ? q8k + (i64)r * (n / 256) * 292 : 0;
    for (int base = wi * 256; base < n; base += nw * 256) {
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int e = base + 8 * lane + j;
            v[j] = 0.0f;
            if (e < n) {
                v[j] = rms_value(xr[e], scale, base == wi * 256 ? w0[j] : w[e], ggml);
                if (o) o[e] = v[j];
            }
        }
        if (q80r || q8kr) quant_chunk(v, base, n, q80r, q8kr);
    }
    tl_exit();
}

// ---------------------------------------------------------------- RoPE

// rope_angle is the rotation of pair i at position pos. style 0
// (transformers): pos * invFreq[i]; style 1 (ggml): pos * thetaScale^i by
// repeated float32 products.
__device__ __forceinline__ float rope_angle(int pos, int i, const float* invFreq, float thetaScale, int style) {
    if (style == 0) return __fmul_rn((float)pos, invFreq[i]);
    float ang = (float)pos;
    for (int k = 0; k < i; k++) ang = __fmul_rn(ang, thetaScale);
    return ang;
}

// rope_cs is the cosine and sine of pair i's rotation at position pos (in
// double, rounded, as the CPU backend does).
__device__ __forceinline__ float2 rope_cs(int pos, int i, const float* invFreq, float thetaScale, int style) {
    float ang = rope_angle(pos, i, invFreq, thetaScale, style);
    return make_float2((float)cos((double)ang), (float)sin((double)ang));
}

// rot_cs writes pair (a, b) turned by cs (cosine, sine) to *ra, *rb.
__device__ __forceinline__ void rot_cs(float a, float b, float2 cs, float* ra, float* rb) {
    *ra = __fsub_rn(__fmul_rn(a, cs.x), __fmul_rn(b, cs.y));
    *rb = __fadd_rn(__fmul_rn(b, cs.x), __fmul_rn(a, cs.y));
}

// rope_store rotates the queries (heads x dim at qkv + r*stride) and keys
// (kvHeads x dim after them) of every row r of the pass (grid.y) at the
// row's position, and stores the keys and the values (after the keys) in
// the row's slot of the caches (F16 when f16, else float32; a slot is
// slotBytes, a position kvHeads*dim elements).
//
// The row's position, and from it the rotation of the thread's pair, are
// taken before the wait for the kernel before, so that the double sine and
// cosine are off the step's critical path. That reads the pass state
// (info) early, which is safe: only the host (ordered before the pass) and
// a decode step's last kernel (argmax_final, for the step after it) write
// it, and a kernel's blocks start only after the kernel two before it has
// finished (every kernel calls pdl_next after its pdl_wait; kernels
// without the launch attribute start after the one before them ends). Read
// at L2 (ld.global.cg).
extern "C" __global__ void rope_store(float* __restrict__ qkv, int stride, const float* __restrict__ invFreq,
                                      int heads, int kvHeads, int dim, const int* __restrict__ info,
                                      float thetaScale, int style, u8* __restrict__ kc, u8* __restrict__ vc,
                                      int f16, i64 slotBytes) {
    int r = blockIdx.y;
    int pos = __ldcg(&ROW_POS(info, r));
    int half = dim / 2, kvDim = kvHeads * dim;
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    int nq = heads * half, nk = kvHeads * half;
    float2 cs = make_float2(0.0f, 0.0f);
    if (t < nq + nk) cs = rope_cs(pos, (t < nq ? t : t - nq) % half, invFreq, thetaScale, style);
    pdl_start();
    float* row = qkv + (i64)r * stride;
    i64 at = (i64)ROW_SLOT(info, r) * slotBytes + (i64)pos * kvDim * (f16 ? 2 : 4);
    if (t < nq) {
        float* p = row + (t / half) * dim + t % half;
        rot_cs(p[0], p[half], cs, p, p + half);
        return;
    }
    t -= nq;
    float* k = row + heads * dim;
    if (t < nk) {
        int h = t / half, i = t % half;
        float* p = k + h * dim + i;
        rot_cs(p[0], p[half], cs, p, p + half);
        int e0 = h * dim + i, e1 = e0 + half;
        if (f16) {
            ((u16*)(kc + at))[e0] = f2h(p[0]);
            ((u16*)(kc + at))[e1] = f2h(p[half]);
        } else {
            ((float*)(kc + at))[e0] = p[0];
            ((float*)(kc + at))[e1] = p[half];
        }
        return;
    }
    t -= nk;
    if (t < kvDim) {
        float v = k[kvDim + t];
        if (f16) ((u16*)(vc + at))[t] = f2h(v);
        else ((float*)(vc + at))[t] = v;
    }
}

