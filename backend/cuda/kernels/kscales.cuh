// kscales.cuh: the K-quant helpers the products share, kept apart so that
// code outside kernels.cu (experiments/mk2) uses them without the kernels.
// Needs the u32 typedef.

// k4_scales is ggml's get_scale_min_k4 for sub-blocks 2j and 2j+1 of a
// Q4_K/Q5_K super-block whose 12 scale bytes are the words A, B, C,
// decoded without branches on j: sc = {scale 2j, min 2j, scale 2j+1,
// min 2j+1}. The products, mmq's staging and get_rows all use it.
__device__ __forceinline__ void k4_scales(int j, u32 A, u32 B, u32 C, int sc[4]) {
    int sh = 16 * (j & 1);
    bool hi = j >= 2;
    u32 a = A >> sh, b = B >> sh, c = C >> sh;
    u32 x = hi ? c : a, y = hi ? (a >> 2) : a, xm = hi ? (c >> 4) : b, ym = hi ? (b >> 2) : b;
    sc[0] = (int)((x & 0xF) | (y & 0x30));
    sc[1] = (int)((xm & 0xF) | (ym & 0x30));
    sc[2] = (int)(((x >> 8) & 0xF) | ((y >> 8) & 0x30));
    sc[3] = (int)(((xm >> 8) & 0xF) | ((ym >> 8) & 0x30));
}

// dp4a_us is dp4a of unsigned bytes a by signed bytes b.
__device__ __forceinline__ int dp4a_us(u32 a, int b, int c) {
    int d;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
