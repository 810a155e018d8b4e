// hop.cu: the floor of one of mk2's stage hops on this GPU: every block (one
// an SM, 512 threads) waits until a global counter reaches G x s (thread 0
// polling with ld.acquire.gpu), passes a block barrier, and raises the
// counter once (red.release.gpu), S times in a row with no work between.
// Block 0's clock64 gives the median hop. Not part of apr: a standalone
// program (nvcc -arch=sm_90 -O3 hop.cu), run on the device machine;
// NOTES.md (thirty-third session) has its figures.
#include <algorithm>
#include <vector>

#include "../common.cuh"


__device__ __forceinline__ unsigned int ld_acquire(const unsigned int* p) {
    unsigned int v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void red_release(unsigned int* p, unsigned int v) {
    asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// mode 0: one counter for all hops; mode 1: a counter a hop (as mk2's five
// a layer); mode 2: K counters, block b raising counter b % K and threads
// 0..K-1 each polling one (fewer atomics on each address).
__global__ void __launch_bounds__(512, 1) hops(unsigned int* cnt, int S, int mode, int K, long long* st) {
    int G = gridDim.x;
    for (int s = 0; s < S; s++) {
        if (mode == 2) {
            int t = threadIdx.x;
            if (t < K) {
                unsigned int nb = (G - t + K - 1) / K;
                while (ld_acquire(cnt + t) < nb * s) {
                }
            }
            if (t == 0 && blockIdx.x == 0) st[s] = clock64();
            __syncthreads();
            if (t == 0) red_release(cnt + blockIdx.x % K, 1);
            continue;
        }
        if (threadIdx.x == 0) {
            if (mode == 0) {
                while (ld_acquire(cnt) < (unsigned int)G * s) {
                }
            } else if (s > 0) {
                while (ld_acquire(cnt + s - 1) < (unsigned int)G) {
                }
            }
            if (blockIdx.x == 0) st[s] = clock64();
        }
        __syncthreads();
        if (threadIdx.x == 0) red_release(mode == 0 ? cnt : cnt + s, 1);
    }
}

int main() {
    int G, clk, S = 2000;
    device_info(G, clk);
    unsigned int* cnt;
    long long* st;
    CK(cudaMalloc(&cnt, S * sizeof(unsigned int)));
    CK(cudaMalloc(&st, S * sizeof(long long)));
    for (int mode = 0; mode < 3; mode++)
        for (int K : {1, 4, 12, 33, 132}) {
            if (mode < 2 && K > 1) continue;
            if (K > G) continue;
            CK(cudaMemset(cnt, 0, S * sizeof(unsigned int)));
            hops<<<G, 512>>>(cnt, S, mode, K, st);
            CK(cudaDeviceSynchronize());
            std::vector<long long> t(S);
            CK(cudaMemcpy(t.data(), st, S * sizeof(long long), cudaMemcpyDeviceToHost));
            std::vector<long long> d;
            for (int s = 100; s < S; s++) d.push_back(t[s] - t[s - 1]);
            std::sort(d.begin(), d.end());
            printf("%s K %3d: hop median %lld cycles = %.2f us (p10 %.2f, p90 %.2f)\n",
                   mode == 0 ? "one counter    " : mode == 1 ? "a counter a hop" : "K counters     ", K, d[d.size() / 2],
                   d[d.size() / 2] / (clk / 1e3),
                   d[d.size() / 10] / (clk / 1e3), d[d.size() * 9 / 10] / (clk / 1e3));
        }
    return 0;
}
