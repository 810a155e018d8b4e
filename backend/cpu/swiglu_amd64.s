//go:build !purego

#include "textflag.h"

// SWC broadcasts the 32-bit constant c into Y (low half X) via AX.
#define SWC(c, X, Y) \
	MOVL $c, AX; \
	VMOVD AX, X; \
	VPBROADCASTD X, Y

// swc: -126, 127 (the exponent clamp) and 192 (the saturation bound).
DATA swc<>+0(SB)/4, $-126
DATA swc<>+4(SB)/4, $127
DATA swc<>+8(SB)/4, $0x43400000
DATA swc<>+12(SB)/4, $0x7fffffff
DATA swc<>+16(SB)/4, $0x7f800000
GLOBL swc<>(SB), RODATA|NOPTR, $20

// func siluMulGGMLAVX2(gate, up *float32, n int)  (n a positive multiple of 8)
// g[i] = g[i] / (1 + e) * u[i] with e = GGMLExpf(-g[i]), exactly as the Go
// code computes it (ggml's AVX-512 ggml_v_expf and ggml_vec_swiglu_f32):
// z = x*log2e + 0x1.8p23, n = z - 0x1.8p23, b = x - n*ln2 (two parts),
// j = the polynomial in b, then j*2^n as (j*2^(n-n1))*2^n1 with
// n1 = clamp(n, -126, 127) (exact but for one rounding, as VSCALEFPS and
// math.Ldexp round); |n| > 192 gives 0 (n <= 0) or +Inf.
TEXT ·siluMulGGMLAVX2(SB), NOSPLIT, $0-24
	MOVQ gate+0(FP), DI
	MOVQ up+8(FP), SI
	MOVQ n+16(FP), CX
	SWC(0x4b400000, X15, Y15) // 0x1.8p23
	SWC(0x3fb8aa3b, X14, Y14) // log2(e)
	SWC(0x3f317200, X13, Y13) // ln 2, high part
	SWC(0x35bfbe8e, X12, Y12) // ln 2, low part
	SWC(0x3c072010, X11, Y11) // 0x1.0e4020p-7
	SWC(0x3d2b9f17, X10, Y10) // 0x1.573e2ep-5
	SWC(0x3e2aaf33, X9, Y9)   // 0x1.555e66p-3
	SWC(0x3efffedb, X8, Y8)   // 0x1.fffdb6p-2
	SWC(0x3f7ffff6, X7, Y7)   // 0x1.ffffecp-1
	SWC(0x3f800000, X6, Y6)   // 1

swloop:
	VMOVUPS (DI), Y0
	VXORPS Y1, Y1, Y1
	VSUBPS Y0, Y1, Y1         // x = -g
	VMOVAPS Y15, Y2
	VFMADD231PS Y14, Y1, Y2   // z
	VSUBPS Y15, Y2, Y3        // n
	VFNMADD231PS Y13, Y3, Y1
	VFNMADD231PS Y12, Y3, Y1  // b
	VMULPS Y1, Y1, Y4         // u = b*b
	VMOVAPS Y10, Y5
	VFMADD231PS Y11, Y1, Y5   // c5*b + c4
	VMOVAPS Y8, Y2
	VFMADD231PS Y9, Y1, Y2    // c3*b + c2
	VFMADD231PS Y4, Y5, Y2    // (c5*b + c4)*u + c3*b + c2
	VMOVAPS Y6, Y5
	VFMADD231PS Y7, Y1, Y5    // c1*b + 1
	VFMADD231PS Y4, Y2, Y5    // j
	VCVTTPS2DQ Y3, Y2
	VPBROADCASTD swc<>+0(SB), Y4
	VPMAXSD Y4, Y2, Y4
	VPBROADCASTD swc<>+4(SB), Y1
	VPMINSD Y1, Y4, Y4        // n1
	VPSUBD Y4, Y2, Y2         // n - n1
	VPADDD Y1, Y4, Y4
	VPSLLD $23, Y4, Y4        // 2^n1
	VPADDD Y1, Y2, Y2
	VPSLLD $23, Y2, Y2        // 2^(n-n1)
	VMULPS Y2, Y5, Y5
	VMULPS Y4, Y5, Y5         // e = j*2^n
	VPBROADCASTD swc<>+12(SB), Y1
	VANDPS Y1, Y3, Y1         // |n|
	VPBROADCASTD swc<>+8(SB), Y2
	VCMPPS $0x1e, Y2, Y1, Y1  // |n| > 192
	VXORPS Y2, Y2, Y2
	VCMPPS $0x1e, Y2, Y3, Y2  // n > 0
	VPBROADCASTD swc<>+16(SB), Y4
	VANDPS Y4, Y2, Y2         // +Inf where n > 0, else 0
	VBLENDVPS Y1, Y2, Y5, Y5
	VADDPS Y6, Y5, Y5         // 1 + e
	VDIVPS Y5, Y0, Y0
	VMULPS (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, CX
	JNE  swloop
	VZEROUPPER
	RET
