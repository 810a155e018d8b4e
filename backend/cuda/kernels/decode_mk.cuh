// ------------------------------------- one-kernel decode step (megakernel)
//
// decode_mk runs every decoder layer of a one-row decode step and the LM
// head as one kernel of co-resident blocks (a cooperative launch: mk.go),
// the phases separated by grid barriers instead of kernel boundaries, so
// that the ~10 launches a layer and their drain and ramp cost one barrier
// each and the small operations (RMSNorm, quantization, RoPE and the KV
// store, silu(gate)*up) run inside the phases:
//   1. q/k/v: every block makes the RMS-normalised, quantized activation
//      in shared memory (act_make, as rmsnorm does) and takes its share of
//      the rows of each matrix (matvec_rw, as the _mv kernels: the same
//      per-row sums);
//   2. attention: block h < heads turns query head h and its group's key
//      (as rope_store: the key out of place, so that the group's blocks
//      all write the same bits to the cache), stores the key and value and
//      runs attention_fa_body for head h; the other blocks ask for their
//      rows of the next products in L2;
//   3. o: the attention output quantized in every block, the rows added to
//      x (the residual);
//   4. gate/up: normalised as 1; a block takes the same rows of gate and
//      up and writes silu(gate)*up for them (silu_mul, as silu_quant);
//   5. down: that product quantized in every block, rows added to x;
// then the LM head after the output norm. Data that another block wrote in
// the kernel is read at L2 (ld.global.cg) after a barrier; before each
// barrier a block asks for its rows of the next product in L2.

#define MK_PARTS 3

// MKPart is one matrix of a product phase: y[row] (+)= W[row,:]·act (+
// bias[row]) for rows blk*rpc.. of block blk. type: 0 Q8_0, 1 Q4_0, 2
// Q5_0 (Q8_0 activation), 3 Q4_K, 5 Q6_K (Q8_K activation); not Q5_K,
// whose operands (with the kernel's other paths) would spill registers
// under the two-blocks-an-SM bound. mk.go's mkPart mirrors it.
struct MKPart {
    const u8* W;
    float* y;
    const float* bias;
    i64 rowBytes;
    int rows, cols, type, rw, rpc, acc;
};

// MKProd is a product phase: its activation (n floats at x, RMS-normalised
// with normW when it is not null, quantized as Q8_K when qk, else Q8_0),
// its parts, and with silu set the silu(gate)*up of parts 0 (gate) and 1
// (up) for the block's rows, written to act.
struct MKProd {
    MKPart p[MK_PARTS];
    const float* x;
    const float* normW;
    float* act;
    int nparts, n, qk, silu;
};

// MKLayer is a decoder layer's phases and KV caches.
struct MKLayer {
    MKProd qkv, o, gu, down;
    u8* kc;
    u8* vc;
};

// MK is the kernel's parameter (mk.go's mkArgs mirrors it).
struct MK {
    const MKLayer* layers;
    MKProd head;
    float* qkv;
    float* attn;
    float* scores;
    const float* invFreq;
    const int* info;
    const int* passp;
    unsigned* bar;       // the barrier's words (mk_barrier)
    unsigned* barOther;  // the other step's counter (barMode 2), cleared here
    unsigned long long* trace;  // when not null: block 0's phase times (mk_mark)
    i64 slotBytes;
    int nlayers, heads, kvHeads, dim, ctx, qStride, style, f16, ggml, normThreads, actFloats;
    int barMode, sleepNs, pad;
    float scale, thetaScale, eps, pad2;
};

// mk_act_bytes is the shared memory of a quantized activation of n values
// (Q8_K blocks, the larger encoding), a multiple of 16.
__device__ __forceinline__ int mk_act_bytes(int n) { return ((n + 255) / 256 * 292 + 15) & ~15; }

// mk_barrier waits until every block of the grid has arrived (the j-th
// barrier of the kernel, from 0). Thread 0 publishes the block's writes
// (fence) and counts itself in, then waits (polling every sleepNs
// nanoseconds when > 0), and the block goes on together. barMode 0/1: the
// last block to arrive resets the count and starts the next generation
// (bar[1]) that the others wait for; barMode 2: a count that only grows
// within the kernel (to (j+1) x blocks; mk.go alternates two counters
// between steps, each kernel clearing the other one).
__device__ __forceinline__ void mk_barrier(const MK& k, int j) {
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned* bar = k.bar;
        if (k.barMode == 2) {
            __threadfence();
            atomicAdd(bar, 1u);
            unsigned target = (unsigned)(j + 1) * gridDim.x, c;
            for (;;) {
                asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(c) : "l"(bar) : "memory");
                if (c >= target) break;
                if (k.sleepNs > 0) __nanosleep(k.sleepNs);
            }
        } else {
            volatile unsigned* gen = bar + 1;
            unsigned g = *gen;
            __threadfence();
            if (atomicAdd(bar, 1u) == gridDim.x - 1) {
                atomicExch(bar, 0u);
                __threadfence();
                atomicAdd(bar + 1, 1u);
            } else {
                while (*gen == g) {
                    if (k.barMode == 1) __nanosleep(k.sleepNs);
                }
            }
        }
        __threadfence();
    }
    __syncthreads();
}

// mk_mark records the global timer at trace slot i (block 0, thread 0).
__device__ __forceinline__ void mk_mark(const MK& k, int i) {
    if (k.trace && blockIdx.x == 0 && threadIdx.x == 0) {
        unsigned long long t;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
        k.trace[i] = t;
    }
}

// mk_prefetch asks for block blk's rows of the phase's parts in L2.
__device__ __forceinline__ void mk_prefetch(const MKProd& ph, int blk) {
    for (int i = 0; i < ph.nparts; i++) {
        const MKPart& p = ph.p[i];
        prefetch_rows(p.W, p.rows, p.rowBytes, p.rpc, blk);
    }
}

// mk_rows runs part p's rows of virtual block blk against act (shared
// memory).
__device__ __forceinline__ void mk_rows(const MKPart& p, const u8* act, int blk, float* terms) {
    switch (p.type) {
    case 0: matvec_rw<TQ32<0>>(p.rw, p.W, act, p.y, p.bias, p.rows, p.cols, p.rowBytes, p.acc, p.rpc, blk, terms); break;
    case 1: matvec_rw<TQ32<1>>(p.rw, p.W, act, p.y, p.bias, p.rows, p.cols, p.rowBytes, p.acc, p.rpc, blk, terms); break;
    case 2: matvec_rw<TQ32<2>>(p.rw, p.W, act, p.y, p.bias, p.rows, p.cols, p.rowBytes, p.acc, p.rpc, blk, terms); break;
    case 3: matvec_rw<TQ45K<false>>(p.rw, p.W, act, p.y, p.bias, p.rows, p.cols, p.rowBytes, p.acc, p.rpc, blk, terms); break;
    default: matvec_rw<TQ6K>(p.rw, p.W, act, p.y, p.bias, p.rows, p.cols, p.rowBytes, p.acc, p.rpc, blk, terms); break;
    }
}

// mk_product runs a product phase in this block: the activation (x read at
// L2 into shared memory first), then virtual blocks blockIdx.x,
// blockIdx.x + gridDim.x, ... of rpc rows of each part (the parts' rows
// bound the terms in shared memory), with silu(gate)*up for a virtual
// block's rows after its gate and up rows.
__device__ void mk_product(const MK& k, const MKProd& ph, float* sh) {
    float* xf = sh;
    u8* act = (u8*)(sh + k.actFloats);
    float* terms = (float*)(act + mk_act_bytes(k.actFloats));
    for (int i = threadIdx.x; i < ph.n; i += blockDim.x) xf[i] = __ldcg(ph.x + i);
    __syncthreads();
    int mode = ph.normW ? MVX_NORM : MVX_QUANT;
    if (ph.qk)
        act_make<true>(mode, xf, ph.n, ph.normW, k.eps, k.ggml, k.normThreads, act);
    else
        act_make<false>(mode, xf, ph.n, ph.normW, k.eps, k.ggml, k.normThreads, act);
    for (int vb = blockIdx.x;; vb += gridDim.x) {
        bool any = false;
        for (int i = 0; i < ph.nparts; i++) {
            const MKPart& p = ph.p[i];
            if (vb * p.rpc >= p.rows) continue;
            any = true;
            mk_rows(p, act, vb, terms);
            __syncthreads();  // terms are reused; the rows' sums are written
        }
        if (!any) break;
        if (ph.silu) {
            const MKPart& g = ph.p[0];
            int r0 = vb * g.rpc, nr = min(g.rpc, g.rows - r0);
            for (int rr = threadIdx.x; rr < nr; rr += blockDim.x)
                ph.act[r0 + rr] = silu_mul(g.y[r0 + rr], ph.p[1].y[r0 + rr], k.ggml);
        }
    }
}

// mk_attention is phase 2 for query head h (row 0 of the pass).
__device__ void mk_attention(const MK& k, const MKLayer& l, int h) {
    int r = 0, dim = k.dim, half = dim / 2;
    int pos = ROW_POS(k.info, r);
    int group = k.heads / k.kvHeads, kvh = h / group, kvDim = k.kvHeads * dim;
    float* row = k.qkv + (i64)r * k.qStride;
    i64 at = (i64)ROW_SLOT(k.info, r) * k.slotBytes + (i64)pos * kvDim * (k.f16 ? 2 : 4);
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float ang = rope_angle(pos, i, k.invFreq, k.thetaScale, k.style);
        float* q = row + h * dim;
        float a = __ldcg(q + i), b = __ldcg(q + i + half);
        rot_pair(a, b, ang, q + i, q + i + half);
        const float* kk = row + k.heads * dim + kvh * dim;
        float ra, rb;
        rot_pair(__ldcg(kk + i), __ldcg(kk + i + half), ang, &ra, &rb);
        int e0 = kvh * dim + i, e1 = e0 + half;
        if (k.f16) {
            ((u16*)(l.kc + at))[e0] = f2h(ra);
            ((u16*)(l.kc + at))[e1] = f2h(rb);
        } else {
            ((float*)(l.kc + at))[e0] = ra;
            ((float*)(l.kc + at))[e1] = rb;
        }
    }
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = __ldcg(row + k.heads * dim + kvDim + kvh * dim + i);
        int e = kvh * dim + i;
        if (k.f16) ((u16*)(l.vc + at))[e] = f2h(v);
        else ((float*)(l.vc + at))[e] = v;
    }
    __threadfence();
    __syncthreads();
    attention_fa_body<false>(k.qkv, l.kc, l.vc, k.attn, k.scores, k.heads, k.kvHeads, dim, k.info, k.ctx, k.scale,
                             k.passp, k.qStride, k.slotBytes, h, r, false);
}

extern "C" __global__ void __launch_bounds__(256, 2) decode_mk(const MK k) {
    extern __shared__ float mkShared[];
    if (blockIdx.x == 0 && threadIdx.x == 0 && k.barOther) *k.barOther = 0;
    mk_mark(k, 0);
    int nb = 0;  // barriers passed
    if (k.nlayers < 0) {  // barriers alone, -nlayers x 5 (mk.go's barrier benchmark)
        for (int i = 0; i < -5 * k.nlayers; i++) mk_barrier(k, nb++);
        mk_mark(k, 1);
        return;
    }
    for (int li = 0; li < k.nlayers; li++) {
        const MKLayer& l = k.layers[li];
        int t = 1 + 10 * li;
        mk_product(k, l.qkv, mkShared);
        mk_prefetch(l.o, blockIdx.x);
        mk_mark(k, t);
        mk_barrier(k, nb++);
        mk_mark(k, t + 1);
        if ((int)blockIdx.x < k.heads) {
            mk_attention(k, l, blockIdx.x);
            __syncthreads();
        } else {
            mk_prefetch(l.gu, blockIdx.x);
        }
        mk_mark(k, t + 2);
        mk_barrier(k, nb++);
        mk_mark(k, t + 3);
        mk_product(k, l.o, mkShared);
        mk_prefetch(l.gu, blockIdx.x);
        mk_mark(k, t + 4);
        mk_barrier(k, nb++);
        mk_mark(k, t + 5);
        mk_product(k, l.gu, mkShared);
        mk_prefetch(l.down, blockIdx.x);
        mk_mark(k, t + 6);
        mk_barrier(k, nb++);
        mk_mark(k, t + 7);
        mk_product(k, l.down, mkShared);
        if (li + 1 < k.nlayers) mk_prefetch(k.layers[li + 1].qkv, blockIdx.x);
        else mk_prefetch(k.head, blockIdx.x);
        mk_mark(k, t + 8);
        mk_barrier(k, nb++);
        mk_mark(k, t + 9);
    }
    mk_product(k, k.head, mkShared);
    mk_mark(k, 1 + 10 * k.nlayers);
}
