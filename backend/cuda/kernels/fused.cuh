// ----------------------------------------- fused one-row products (decode)
//
// mvx_q8_0 and mvx_q8_k run up to MVX_PARTS one-row products whose weight
// types share an activation encoding (Q8_0: Q8_0, Q4_0, Q5_0 weights; Q8_K:
// Q4_K, Q5_K, Q6_K) in one launch: the first p[0].blocks blocks take part
// 0, the next p[1].blocks part 1, and so on, each block split as a _mv
// kernel's (matvec_q with the part's rw and rpc). Every block first makes
// the activation itself into shared memory, so that no launch comes between
// the kernel that writes x and the product:
//   MVX_GLOBAL: x already holds the quantized activation (nothing to do);
//   MVX_QUANT:  x holds n floats, quantized as the quantize kernel does;
//   MVX_NORM:   x holds n floats, RMS-normalised with normW as rmsnorm does
//               with normThreads threads (rms_scale: the same bits in every
//               block), then quantized;
//   MVX_SILU:   x holds a gate row of n floats and the up row after it:
//               silu(gate) * up (silu_mul, as silu_quant), then quantized.
// Before that, a block asks for its weight rows in L2 and waits for the
// kernel before it (pdl_wait): the weights stream in meanwhile.

#define MVX_PARTS 3
#define MVX_GLOBAL 0
#define MVX_QUANT 1
#define MVX_NORM 2
#define MVX_SILU 3

// MVPart is one product: y[row] (+)= W[row,:] · act (+ bias[row]). type is
// the weight type's index in its family (see mvx_q8_0, mvx_q8_k). All
// fields are 8 or 4 bytes, in an order without padding (launch.go's mvPart
// mirrors it).
struct MVPart {
    const u8* W;
    float* y;
    const float* bias;
    i64 rowBytes;
    int rows, cols, type, rw, rpc, blocks, acc, pad;
};

// MVX is the launch's parameter (kernels.go's mvxArgs mirrors it).
struct MVX {
    MVPart p[MVX_PARTS];
    const float* x;
    const float* normW;
    float eps;
    int ggml, mode, n, nparts, normThreads, termFloats, pad;
};

// mvx_act makes the block's activation (n values from a.x, mode
// MVX_QUANT, MVX_NORM or MVX_SILU) in shared memory at act as Q8_K (qk)
// or Q8_0 blocks, a warp a chunk of 256 values.
template <bool QK>
__device__ __forceinline__ void mvx_act(const MVX& a, u8* act) {
    int lane = threadIdx.x % WARP, wi = threadIdx.x / WARP, nw = blockDim.x / WARP;
    const float* x = a.x;
    float scale = 1.0f;
    if (a.mode == MVX_NORM) scale = rms_scale(x, a.n, a.normThreads, a.eps, a.ggml);
    for (int base = wi * 256; base < a.n; base += nw * 256) {
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int e = base + 8 * lane + j;
            v[j] = 0.0f;
            if (e >= a.n) continue;
            if (a.mode == MVX_NORM) v[j] = rms_value(x[e], scale, a.normW[e], a.ggml);
            else if (a.mode == MVX_SILU) v[j] = silu_mul(x[e], x[a.n + e], a.ggml);
            else v[j] = x[e];
        }
        quant_chunk(v, base, a.n, QK ? 0 : act, QK ? act : 0);
    }
    __syncthreads();
}

template <class T0, class T1, class T2, bool QK>
__device__ __forceinline__ void mvx(const MVX& a) {
    int blk = blockIdx.x;
    MVPart p = a.p[0];
    if (a.nparts > 1 && blk >= p.blocks) {
        blk -= p.blocks;
        p = a.p[1];
        if (a.nparts > 2 && blk >= p.blocks) {
            blk -= p.blocks;
            p = a.p[2];
        }
    }
    prefetch_rows(p.W, p.rows, p.rowBytes, p.rpc, blk);
    pdl_start();
    const u8* act = (const u8*)a.x;
    if (a.mode != MVX_GLOBAL) {
        u8* sact = (u8*)(mvTerms + a.termFloats);
        mvx_act<QK>(a, sact);
        act = sact;
    }
    if (p.type == 0)
        matvec_rw<T0>(p.rw, p.W, act, p.y, p.bias, p.rows, p.cols, p.rowBytes, p.acc, p.rpc, blk, mvTerms);
    else if (p.type == 1)
        matvec_rw<T1>(p.rw, p.W, act, p.y, p.bias, p.rows, p.cols, p.rowBytes, p.acc, p.rpc, blk, mvTerms);
    else
        matvec_rw<T2>(p.rw, p.W, act, p.y, p.bias, p.rows, p.cols, p.rowBytes, p.acc, p.rpc, blk, mvTerms);
    tl_exit();
}

// Types 0, 1, 2: Q8_0, Q4_0, Q5_0 (Q8_0 activation).
extern "C" __global__ void mvx_q8_0(const MVX a) { mvx<TQ32<0>, TQ32<1>, TQ32<2>, false>(a); }

// Types 0, 1, 2: Q4_K, Q5_K, Q6_K (Q8_K activation).
extern "C" __global__ void mvx_q8_k(const MVX a) { mvx<TQ45K<false>, TQ45K<true>, TQ6K, true>(a); }
