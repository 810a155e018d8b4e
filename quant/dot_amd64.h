// Macros shared by the AVX2 (dot_amd64.s) and AVX-512 VNNI
// (dot_avx512_amd64.s) kernels.

// BCAST32 broadcasts the 32-bit constant c into the ymm register Y via AX.
#define BCAST32(c, X, Y) \
	MOVL $c, AX; \
	VMOVD AX, X; \
	VPBROADCASTD X, Y

// KSCALESR unpacks the twelve scale bytes at 4(R8) of a Q4_K/Q5_K block
// (ggml's utmp shuffle) into registers: the eight scales in AX, the eight
// mins in BX (one byte each). Clobbers DX, SI, R9.
#define KSCALESR \
	MOVL 4(R8), AX; \
	MOVL 8(R8), BX; \
	MOVL 12(R8), DX; \
	MOVL AX, R9; \
	ANDL $0x3f3f3f3f, R9; \
	SHRL $6, AX; \
	ANDL $0x03030303, AX; \
	SHLL $4, AX; \
	MOVL DX, SI; \
	ANDL $0x0f0f0f0f, SI; \
	ORL SI, AX; \
	SHLQ $32, AX; \
	ORQ R9, AX; \
	MOVL BX, R9; \
	ANDL $0x3f3f3f3f, R9; \
	SHRL $6, BX; \
	ANDL $0x03030303, BX; \
	SHLL $4, BX; \
	SHRL $4, DX; \
	ANDL $0x0f0f0f0f, DX; \
	ORL DX, BX; \
	SHLQ $32, BX; \
	ORQ R9, BX

// KSCALES stores KSCALESR's scales at 0(SP) and mins at 8(SP).
#define KSCALES \
	KSCALESR; \
	MOVQ AX, 0(SP); \
	MOVQ BX, 8(SP)

// KFINISH adds the block's d*yd*isum (int32 lanes of Y0) to Y11 and
// dmin*yd*Σ m·bsums (int32 lanes of X7 from KMINSV) to X10.
#define KFINISH \
	MOVL (R8), AX; \
	VMOVD AX, X1; \
	VCVTPH2PS X1, X1; \
	VBROADCASTSS (R10), X2; \
	VMULPS X2, X1, X1; \
	VBROADCASTSS X1, Y2; \
	VCVTDQ2PS Y0, Y0; \
	VFMADD231PS Y0, Y2, Y11; \
	VMOVSHDUP X1, X3; \
	VBROADCASTSS X3, X3; \
	VCVTDQ2PS X7, X7; \
	VFMADD231PS X7, X3, X10

// KMINSV leaves m[j] * (bsums[2j] + bsums[2j+1]) summed in pairs in the
// four int32 lanes of X7, for the Q8_K block at R10 and the mins at 8(SP).
#define KMINSV \
	VMOVDQU 260(R10), Y7; \
	VEXTRACTI128 $1, Y7, X8; \
	VPHADDW X8, X7, X7; \
	VPMOVZXBW 8(SP), X9; \
	VPMADDWD X9, X7, X7

// HSUM leaves the sum of the eight floats of Y (low half X) in X.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS T, X, X; \
	VHADDPS X, X, X; \
	VHADDPS X, X, X

// HSUMI leaves the sum of the eight int32 of Y (low half X) in X.
#define HSUMI(Y, X, T) \
	VEXTRACTI128 $1, Y, T; \
	VPADDD T, X, X; \
	VPHADDD X, X, X; \
	VPHADDD X, X, X

// Q6FINISH adds f16(d) * yd * float(the int32 lanes of Y0) to Y11 for the
// Q6_K block at R8 and the Q8_K block at R10. Clobbers X1/Y1.
#define Q6FINISH \
	MOVWLZX 208(R8), AX; \
	VMOVD AX, X1; \
	VCVTPH2PS X1, X1; \
	VMULSS (R10), X1, X1; \
	VBROADCASTSS X1, Y1; \
	VCVTDQ2PS Y0, Y0; \
	VFMADD231PS Y0, Y1, Y11
