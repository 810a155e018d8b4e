//go:build !purego

#include "textflag.h"

// Tiled AVX-512 VNNI kernels for prompt processing: a tile of 4 weight rows
// x 4 activation rows, the activations packed by pack32. Each zmm
// accumulator holds two of the AVX2 row kernels' eight-lane float sums
// (activation rows 2p and 2p+1 of one weight row), and every lane receives
// exactly the integer sum and the float operations of the row kernel, so
// the tile's results equal q8_0DotRowsAVX2's and q5_0DotRowsAVX2's bit for
// bit.

// TILE32_ARGS loads the arguments: weight rows at AX, BX, CX, DX, the
// float scales at R13, the packed groups at DI, their count in R10, the
// blocks in R14, the output at R11 and its stride in bytes in R12.
#define TILE32_ARGS \
	MOVQ w+0(FP), AX; \
	MOVQ stride+8(FP), R9; \
	LEAQ (AX)(R9*1), BX; \
	LEAQ (BX)(R9*1), CX; \
	LEAQ (CX)(R9*1), DX; \
	MOVQ wsc+16(FP), R13; \
	MOVQ act+24(FP), DI; \
	MOVQ groups+32(FP), R10; \
	MOVQ nb+40(FP), R14; \
	MOVQ out+48(FP), R11; \
	MOVQ ostride+56(FP), R12; \
	SHLQ $2, R12

// TILE32_GROUP clears the eight accumulators Z16..Z23 and rewinds the
// weights (SI) and scales (R8) for the next group.
#define TILE32_GROUP \
	VPXORD Z16, Z16, Z16; \
	VPXORD Z17, Z17, Z17; \
	VPXORD Z18, Z18, Z18; \
	VPXORD Z19, Z19, Z19; \
	VPXORD Z20, Z20, Z20; \
	VPXORD Z21, Z21, Z21; \
	VPXORD Z22, Z22, Z22; \
	VPXORD Z23, Z23, Z23; \
	XORQ SI, SI; \
	MOVQ R13, R8; \
	MOVQ R14, R9

// PAIR adds weight row W (biased bytes) times the activation rows of A
// (two rows, their bias lanes O, their scales D) to ACC, scaled by the
// row's float scale at s(R8). T and S are scratch.
#define PAIR(W, A, O, D, s, ACC, T, S) \
	VMOVDQA64 O, T; \
	VPDPBUSD A, W, T; \
	VCVTDQ2PS T, T; \
	VMULPS.BCST s(R8), D, S; \
	VFMADD231PS S, T, ACC

// TILE32_BLOCK multiplies the weight blocks in Z0..Z3 with the packed
// block at DI and moves to the next block.
#define TILE32_BLOCK(bs) \
	VMOVDQU64 (DI), Z4; \
	VMOVDQU64 64(DI), Z5; \
	VMOVDQU64 128(DI), Z10; \
	VMOVDQU64 192(DI), Z11; \
	VMOVUPS 256(DI), Z8; \
	VMOVUPS 320(DI), Z9; \
	PAIR(Z0, Z4, Z10, Z8, 0, Z16, Z12, Z13); \
	PAIR(Z0, Z5, Z11, Z9, 0, Z17, Z14, Z15); \
	PAIR(Z1, Z4, Z10, Z8, 4, Z18, Z24, Z25); \
	PAIR(Z1, Z5, Z11, Z9, 4, Z19, Z26, Z27); \
	PAIR(Z2, Z4, Z10, Z8, 8, Z20, Z12, Z13); \
	PAIR(Z2, Z5, Z11, Z9, 8, Z21, Z14, Z15); \
	PAIR(Z3, Z4, Z10, Z8, 12, Z22, Z24, Z25); \
	PAIR(Z3, Z5, Z11, Z9, 12, Z23, Z26, Z27); \
	ADDQ $bs, SI; \
	ADDQ $16, R8; \
	ADDQ $384, DI; \
	DECQ R9

// HSUM leaves the sum of the eight floats of Y (low half X) in X, as the
// row kernels' HSUM does.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS T, X, X; \
	VHADDPS X, X, X; \
	VHADDPS X, X, X

// STORE2 stores accumulator Z (weight row r: byte offset ro) for the
// activation rows whose outputs start at B (low half) and B+R12 (high
// half).
#define STORE2(Z, ro, B) \
	VMOVAPS Z, Z0; \
	VEXTRACTF64X4 $1, Z0, Y1; \
	HSUM(Y0, X0, X2); \
	HSUM(Y1, X1, X2); \
	VMOVSS X0, ro(B); \
	VMOVSS X1, ro(B)(R12*1)

// TILE32_STORE writes the group's sixteen sums and moves to the next
// group's columns.
#define TILE32_STORE \
	LEAQ (R11)(R12*2), SI; \
	STORE2(Z16, 0, R11); \
	STORE2(Z17, 0, SI); \
	STORE2(Z18, 4, R11); \
	STORE2(Z19, 4, SI); \
	STORE2(Z20, 8, R11); \
	STORE2(Z21, 8, SI); \
	STORE2(Z22, 12, R11); \
	STORE2(Z23, 12, SI); \
	LEAQ (R11)(R12*4), R11

// func q8_0TileVNNI(w *byte, stride int, wsc *float32, act *byte, groups, nb int, out *float32, ostride int)
TEXT ·q8_0TileVNNI(SB), NOSPLIT, $0-64
	TILE32_ARGS
	MOVL $0x80808080, R9
	VPBROADCASTD R9, Z31

q80group:
	TILE32_GROUP

q80block:
	// Q8_0 quants + 128 as unsigned bytes, each block in both halves.
	VBROADCASTI64X4 2(AX)(SI*1), Z0
	VPXORD Z31, Z0, Z0
	VBROADCASTI64X4 2(BX)(SI*1), Z1
	VPXORD Z31, Z1, Z1
	VBROADCASTI64X4 2(CX)(SI*1), Z2
	VPXORD Z31, Z2, Z2
	VBROADCASTI64X4 2(DX)(SI*1), Z3
	VPXORD Z31, Z3, Z3
	TILE32_BLOCK(34)
	JNE q80block

	TILE32_STORE
	DECQ R10
	JNE  q80group
	VZEROUPPER
	RET

// Q5W sets Z to the 32 quants + 16 (0..31) of the Q5_0 block at SI(R), in
// both halves: low nibbles, high nibbles, plus 16 where qh has the bit.
// Z31 holds bytes 0x0f, Z30 bytes 0x10, K2 the words of the odd 128-bit
// lanes.
#define Q5W(R, Z) \
	VBROADCASTI32X4 6(R)(SI*1), Z; \
	VPSRLW $4, Z, K2, Z; \
	VPANDD Z31, Z, Z; \
	KMOVD 2(R)(SI*1), K3; \
	KUNPCKDQ K3, K3, K3; \
	VPADDB Z30, Z, K3, Z

// func q5_0TileVNNI(w *byte, stride int, wsc *float32, act *byte, groups, nb int, out *float32, ostride int)
TEXT ·q5_0TileVNNI(SB), NOSPLIT, $0-64
	TILE32_ARGS
	MOVL $0x0f0f0f0f, R9
	VPBROADCASTD R9, Z31
	MOVL $0x10101010, R9
	VPBROADCASTD R9, Z30
	MOVL $0xff00ff00, R9
	KMOVD R9, K2

q50group:
	TILE32_GROUP

q50block:
	Q5W(AX, Z0)
	Q5W(BX, Z1)
	Q5W(CX, Z2)
	Q5W(DX, Z3)
	TILE32_BLOCK(22)
	JNE q50block

	TILE32_STORE
	DECQ R10
	JNE  q50group
	VZEROUPPER
	RET
