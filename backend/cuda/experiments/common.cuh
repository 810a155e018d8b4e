// common.cuh: what the standalone experiment programs (mk2, bcast, hop)
// share: CK(call), which prints a failing CUDA runtime call and exits with
// status 1, and device_info.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define CK(x)                                                                           \
    do {                                                                                \
        cudaError_t e = (x);                                                            \
        if (e != cudaSuccess) {                                                         \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e)); \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

// device_info sets sms (the SM count) and clk (the max SM clock, kHz) of
// device 0 and prints them with its name.
static void device_info(int& sms, int& clk) {
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    CK(cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, 0));
    sms = pr.multiProcessorCount;
    printf("device %s, %d SMs, max SM clock %.0f MHz (clock64 converts to us at it)\n", pr.name, sms, clk / 1e3);
}
