//go:build !purego

#include "textflag.h"

// BC32 broadcasts the 32-bit constant c into Y (low half X) via AX.
#define BC32(c, X, Y) \
	MOVL $c, AX; \
	VMOVD AX, X; \
	VPBROADCASTD X, Y

// func siluMulAVX2(gate, up *float32, n int)  (n a multiple of 8)
// g[i] = g[i] / (1 + exp(-g[i])) * u[i], with ggml's AVX2 expf
// (ggml_v_expf: 2^n by the exponent bits, a degree-5 polynomial for the
// rest) on -g clamped to [-87, 88], where 2^n stays a normal float.
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-24
	MOVQ gate+0(FP), DI
	MOVQ up+8(FP), SI
	MOVQ n+16(FP), CX
	// 0x1.8p23 (rounds to integer), log2(e), ln 2 in two parts, 1, and
	// the polynomial's coefficients.
	BC32(0x4b400000, X15, Y15)
	BC32(0x3fb8aa3b, X14, Y14)
	BC32(0x3f317200, X13, Y13)
	BC32(0x35bfbe8e, X12, Y12)
	BC32(0x3f800000, X11, Y11)
	BC32(0x3c072010, X10, Y10)
	BC32(0x3d2b9f17, X9, Y9)
	BC32(0x3e2aaf33, X8, Y8)
	BC32(0x3efffedb, X7, Y7)
	BC32(0x3f7ffff6, X6, Y6)
	TESTQ CX, CX
	JEQ silusdone

siluloop:
	VMOVUPS (DI), Y0
	VXORPS Y1, Y1, Y1
	VSUBPS Y0, Y1, Y1 // x = -g
	BC32(0xc2ae0000, X2, Y2)
	VMAXPS Y2, Y1, Y1
	BC32(0x42b00000, X2, Y2)
	VMINPS Y2, Y1, Y1
	VMOVAPS Y15, Y2
	VFMADD231PS Y14, Y1, Y2 // z = x*log2e + 0x1.8p23
	VSUBPS Y15, Y2, Y3      // n = round(x*log2e)
	VMOVAPS Y1, Y4
	VFNMADD231PS Y13, Y3, Y4 // b = x - n*ln2hi
	VFNMADD231PS Y12, Y3, Y4 //   - n*ln2lo
	VPSLLD $23, Y2, Y2
	VPADDD Y11, Y2, Y2 // k = 2^n
	VMULPS Y4, Y4, Y5  // u = b*b
	VMOVAPS Y9, Y1
	VFMADD231PS Y10, Y4, Y1 // c10*b + c9
	VMOVAPS Y7, Y3
	VFMADD231PS Y8, Y4, Y3  // c8*b + c7
	VFMADD231PS Y5, Y1, Y3  // (c10*b + c9)*u + c8*b + c7
	VMULPS Y6, Y4, Y4       // c6*b
	VFMADD231PS Y5, Y3, Y4  // j
	VFMADD231PS Y4, Y2, Y2  // exp(x) = k*j + k
	VADDPS Y11, Y2, Y2
	VDIVPS Y2, Y0, Y0
	VMULPS (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, CX
	JNE  siluloop

silusdone:
	VZEROUPPER
	RET
