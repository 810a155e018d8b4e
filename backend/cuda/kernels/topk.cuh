// ---------------------------------------------------------------- sampling on the device
//
// The selection of a pass's logits rows for the host sampler (topk.go,
// package sample): each row's penalties applied in place, then its K best
// candidates (top-k, or K = 1 for greedy's argmax) as 64-bit keys that
// order candidates as sample's makeKey does: the scaled logit's bits made
// monotone in the high half, the complement of the token id in the low
// half (the lower id wins a tie). Keys are distinct; 0 is no candidate.
//
// A row's parameters are PICK_INTS int32 (topk.go writes them): K, the
// temperature's bits, greedy (1: keys of the raw logits, -Inf logits are
// candidates too, a NaN logit 0 makes token 0 the answer: sample.Argmax's
// rules), the first edit and the edit count, the repeat penalty's bits, the
// offset of the row's keys in the output, and the row's index in the logits.
// An edit is 3 int32: token, the bits of the value subtracted from its
// logit (presence and frequency), and whether the repeat penalty applies.

#define PICK_INTS 8
#define PICK_THREADS 256
#define PICK_MAXK 256

// pick_key is sample.makeKey: -0 ties with +0.
__device__ __forceinline__ unsigned long long pick_key(float x, int id) {
    u32 b = __float_as_uint(x == 0.0f ? 0.0f : x);
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return ((unsigned long long)b << 32) | (unsigned long long)(~(u32)id);
}

// pick_penalize applies the row's edits to its logits in place, in the
// host's order: presence and frequency's subtraction, then the repeat
// penalty (a positive logit divided by it, another multiplied). A row's
// edits name distinct tokens. One block per row.
extern "C" __global__ void pick_penalize(float* __restrict__ logits, int vocab, const int* __restrict__ rows,
                                         const int* __restrict__ edits) {
    const int* r = rows + PICK_INTS * blockIdx.x;
    float* l = logits + (i64)r[7] * vocab;
    float pen = __int_as_float(r[5]);
    for (int e = threadIdx.x; e < r[4]; e += blockDim.x) {
        const int* ed = edits + 3 * (r[3] + e);
        int t = ed[0];
        if (t < 0 || t >= vocab) continue;
        float v = __fsub_rn(l[t], __int_as_float(ed[1]));
        if (ed[2]) v = v > 0.0f ? __fdiv_rn(v, pen) : __fmul_rn(v, pen);
        l[t] = v;
    }
}

// pick_threshold finds, for the need best of the n keys v (0 = none;
// need <= the candidates), a prefix and mask such that exactly those keys
// have (key & mask) >= prefix: a most-significant-byte-first radix select
// that stops as soon as the remaining bucket is taken whole. The block's
// threads all call it; the result is in *prefix and *mask for all.
__device__ void pick_threshold(const unsigned long long* v, int n, int need, unsigned long long* prefix,
                               unsigned long long* mask) {
    __shared__ int hist[256];
    __shared__ unsigned long long sp, sm;
    __shared__ int sneed, sdone;
    int tid = threadIdx.x;
    if (tid == 0) { sp = 0; sm = 0; sneed = need; sdone = 0; }
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int i = tid; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        unsigned long long p = sp, m = sm;
        for (int i = tid; i < n; i += blockDim.x) {
            unsigned long long x = v[i];
            if (x != 0 && (x & m) == p) atomicAdd(&hist[(int)((x >> shift) & 255)], 1);
        }
        __syncthreads();
        if (tid < WARP) {
            // Lane l holds buckets 255-8l down to 248-8l: find the bucket
            // where the count from the top reaches need.
            int c[8], s = 0;
            for (int j = 0; j < 8; j++) { c[j] = hist[255 - 8 * tid - j]; s += c[j]; }
            int incl = s;
            for (int o = 1; o < WARP; o <<= 1) {
                int y = __shfl_up_sync(FULL, incl, o);
                if (tid >= o) incl += y;
            }
            int nd = sneed;
            unsigned ball = __ballot_sync(FULL, incl >= nd);
            int lane = ball ? __ffs(ball) - 1 : WARP - 1;
            if (tid == lane) {
                int acc = incl - s, j = 0;
                while (j < 7 && acc + c[j] < nd) acc += c[j++];
                int d = 255 - 8 * tid - j;
                sneed = nd - acc;
                sp = p | ((unsigned long long)d << shift);
                sm = m | (255ull << shift);
                sdone = c[j] == nd - acc;
            }
        }
        __syncthreads();
        if (sdone) break;
    }
    *prefix = sp;
    *mask = sm;
    __syncthreads();
}

// pick_count returns the number of keys of v that are candidates (not 0),
// to every thread of the block.
__device__ int pick_count(const unsigned long long* v, int n) {
    __shared__ int total;
    if (threadIdx.x == 0) total = 0;
    __syncthreads();
    int c = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) c += v[i] != 0;
    for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(FULL, c, o);
    if (threadIdx.x % WARP == 0) atomicAdd(&total, c);
    __syncthreads();
    int t = total;
    __syncthreads();
    return t;
}

// pick_select writes the best min(k, candidates) keys of v to out (in no
// particular order) and returns their number, to every thread.
__device__ int pick_select(const unsigned long long* v, int n, int k, unsigned long long* out) {
    __shared__ int slot;
    int cand = pick_count(v, n), need = min(k, cand);
    unsigned long long p = 0, m = 0;
    if (need > 0 && need < cand) pick_threshold(v, n, need, &p, &m);
    if (threadIdx.x == 0) slot = 0;
    __syncthreads();
    if (need > 0)
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            unsigned long long x = v[i];
            if (x != 0 && (x & m) >= p) out[atomicAdd(&slot, 1)] = x;
        }
    __syncthreads();
    return need;
}

// pick_part takes the keys of its block's share of a row's logits (grid:
// parts x rows; each share at most part logits, held in dynamic shared
// memory) and writes its best K to parts (PICK_MAXK x parts keys a row,
// K a share), 0 past the candidates.
extern "C" __global__ void pick_part(const float* __restrict__ logits, int vocab, int part,
                                     const int* __restrict__ rows, unsigned long long* __restrict__ parts) {
    extern __shared__ unsigned long long keys[];
    const int* r = rows + PICK_INTS * blockIdx.y;
    int k = r[0], greedy = r[2];
    float temp = __int_as_float(r[1]);
    const float* l = logits + (i64)r[7] * vocab;
    int lo = blockIdx.x * part, n = max(0, min(part, vocab - lo));
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float x = l[lo + i];
        bool ok;
        if (greedy) {
            ok = x == x;
        } else {
            if (temp != 1.0f) x = __fdiv_rn(x, temp);
            ok = x >= -3.402823466e38f;  // neither NaN nor -Inf
        }
        keys[i] = ok ? pick_key(x, lo + i) : 0ull;
    }
    __syncthreads();
    unsigned long long* out = parts + (i64)blockIdx.y * gridDim.x * PICK_MAXK + (i64)blockIdx.x * k;
    int got = pick_select(keys, n, k, out);
    for (int i = got + threadIdx.x; i < k; i += blockDim.x) out[i] = 0;
}

// pick_merge merges a row's parts (one block of PICK_THREADS per row) into
// its best K keys, sorted best first, at out + the row's offset, and their
// number at out[row]. A greedy row whose logit 0 is NaN answers token 0.
extern "C" __global__ void pick_merge(const unsigned long long* __restrict__ parts, int nparts,
                                      const int* __restrict__ rows, const float* __restrict__ logits, int vocab,
                                      unsigned long long* __restrict__ out) {
    __shared__ unsigned long long best[PICK_MAXK];
    const int* r = rows + PICK_INTS * blockIdx.x;
    int k = r[0];
    for (int i = threadIdx.x; i < PICK_MAXK; i += blockDim.x) best[i] = 0;
    __syncthreads();
    int got = pick_select(parts + (i64)blockIdx.x * nparts * PICK_MAXK, nparts * k, k, best);
    // Bitonic sort of PICK_MAXK keys, largest first (the zeros last).
    for (int size = 2; size <= PICK_MAXK; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < PICK_MAXK; i += blockDim.x) {
                int j = i ^ stride;
                if (j > i) {
                    bool desc = (i & size) == 0;
                    unsigned long long a = best[i], b = best[j];
                    if (desc ? a < b : a > b) { best[i] = b; best[j] = a; }
                }
            }
            __syncthreads();
        }
    }
    unsigned long long* o = out + r[6];
    if (r[2] && logits[(i64)r[7] * vocab] != logits[(i64)r[7] * vocab]) {
        if (threadIdx.x == 0) { o[0] = 0xffffffffull; out[blockIdx.x] = 1; }
        return;
    }
    for (int i = threadIdx.x; i < got; i += blockDim.x) o[i] = best[i];
    if (threadIdx.x == 0) out[blockIdx.x] = (unsigned long long)got;
}
