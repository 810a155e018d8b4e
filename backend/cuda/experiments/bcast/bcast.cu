// bcast.cu: how long 132 blocks take to read the same small buffer from L2
// at once (as mk2's blocks read each stage's activation and the attention's
// inputs), against reading R replicas (block b reads replica b % R). Not part
// of apr: a standalone program (nvcc -arch=sm_90 -O3 bcast.cu), run on the
// device machine; NOTES.md (thirty-third session) has its figures.
//
// Each block reads the buffer (n floats, 16 bytes a thread a load, every load
// in flight, L2 only: ld.global.cg) once a round, rounds separated by a block
// barrier and a grid-wide counter so every block reads in the same window;
// block 0's clock64 gives the median round in us.
#include <algorithm>
#include <vector>

#include "../common.cuh"


__device__ unsigned int gcount;

__global__ void __launch_bounds__(512, 1) rd(const float4* buf, int n4, int R, int rounds, long long* st, float* sink) {
    int b = blockIdx.x, G = gridDim.x;
    const float4* p = buf + (size_t)(b % R) * n4;
    float acc = 0.f;
    for (int r = 0; r < rounds; r++) {
        // Grid-wide start of the round.
        __syncthreads();
        if (threadIdx.x == 0) {
            atomicAdd(&gcount, 1);
            unsigned int target = (unsigned int)G * (r + 1);
            while (*(volatile unsigned int*)&gcount < target) {
            }
        }
        __syncthreads();
        long long t0 = clock64();
        float4 v[5];
        int k = 0;
#pragma unroll
        for (int i = 0; i < 5; i++) {
            int j = threadIdx.x + 512 * i;
            if (j < n4) v[i] = __ldcg(p + j), k++;
        }
#pragma unroll
        for (int i = 0; i < 5; i++)
            if (i < k) acc += v[i].x + v[i].y + v[i].z + v[i].w;
        __syncthreads();
        if (b == 0 && threadIdx.x == 0) st[r] = clock64() - t0;
    }
    if (acc == 123.456f) sink[0] = acc;
}

int main() {
    int G, clk, rounds = 200;
    device_info(G, clk);
    float4* buf;
    long long* st;
    float* sink;
    CK(cudaMalloc(&buf, (size_t)G * 8960 * 4));
    CK(cudaMemset(buf, 0, (size_t)G * 8960 * 4));
    CK(cudaMalloc(&st, rounds * sizeof(long long)));
    CK(cudaMalloc(&sink, 4));
    for (int n : {1536, 8960})
        for (int R : {1, 2, 4, 8, 16, 33, 66, 132}) {
            unsigned int z = 0;
            CK(cudaMemcpyToSymbol(gcount, &z, 4));
            rd<<<G, 512>>>(buf, n / 4, R, rounds, st, sink);
            CK(cudaDeviceSynchronize());
            std::vector<long long> t(rounds);
            CK(cudaMemcpy(t.data(), st, rounds * sizeof(long long), cudaMemcpyDeviceToHost));
            std::sort(t.begin() + 10, t.end());
            long long med = t[10 + (rounds - 10) / 2];
            printf("n %5d floats (%5.1f KB), replicas %3d: median round %6lld cycles = %5.2f us\n", n, n * 4 / 1024.0, R,
                   med, med / (clk / 1e3));
        }
    return 0;
}
