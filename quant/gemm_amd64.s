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
	MOVQ side+16(FP), R13; \
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

// func q8_0TileVNNI(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)
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

// func q5_0TileVNNI(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)
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

// K-quant tiles: a packed group block holds, for each 16-element group g
// of the 256, the four activation rows' 16 quants in the four 128-bit
// lanes of one zmm (64g), then (1024) per row its eight pair sums of the
// bsums, then (1088) per row its scale four times. Each int32 lane of a
// row's accumulator T_r,h (h: the group's parity) is lane 4h+i of the AVX2
// row kernel's eight for that activation row, and the float accumulators
// F_r,h and the mins' M_r follow the row kernel's lanes the same way, so
// the sums, and the horizontal sums at the end, are the row kernel's.
// The side table (sideQ4K, sideQ6K) holds the weight rows' scales as
// float32 and their sub-block scales as int16 pairs.

// KT_ARGS loads the arguments as TILE32_ARGS does (side table at R13).
#define KT_ARGS TILE32_ARGS

// KZERO8 clears Z16..Z23.
#define KZERO8 \
	VPXORD Z16, Z16, Z16; \
	VPXORD Z17, Z17, Z17; \
	VPXORD Z18, Z18, Z18; \
	VPXORD Z19, Z19, Z19; \
	VPXORD Z20, Z20, Z20; \
	VPXORD Z21, Z21, Z21; \
	VPXORD Z22, Z22, Z22; \
	VPXORD Z23, Z23, Z23

// KZEROF clears the float accumulators Z24..Z31.
#define KZEROF \
	VPXORD Z24, Z24, Z24; \
	VPXORD Z25, Z25, Z25; \
	VPXORD Z26, Z26, Z26; \
	VPXORD Z27, Z27, Z27; \
	VPXORD Z28, Z28, Z28; \
	VPXORD Z29, Z29, Z29; \
	VPXORD Z30, Z30, Z30; \
	VPXORD Z31, Z31, Z31

// Q4KROW adds the low nibbles of weight row R's 16 bytes at qo (times the
// scale pair at slo(R8)) against the activations in Z4, and the high
// nibbles (scale at shi(R8)) against Z5, to T. Z7 holds bytes 0x0f.
#define Q4KROW(R, qo, slo, shi, T) \
	VBROADCASTI32X4 qo(R)(SI*1), Z0; \
	VPSRLW $4, Z0, Z2; \
	VPANDD Z7, Z0, Z1; \
	VPANDD Z7, Z2, Z2; \
	VPMADDUBSW Z4, Z1, Z3; \
	VPDPWSSD.BCST slo(R8), Z3, T; \
	VPMADDUBSW Z5, Z2, Z6; \
	VPDPWSSD.BCST shi(R8), Z6, T

// KFLOAT adds the int32 lanes T0, T1 of row r (scale at d(R8)) times the
// activations' scales (Z8) to F0, F1.
#define KFLOAT(d, T0, T1, F0, F1) \
	VMULPS.BCST d(R8), Z8, Z10; \
	VCVTDQ2PS T0, T0; \
	VFMADD231PS Z10, T0, F0; \
	VCVTDQ2PS T1, T1; \
	VFMADD231PS Z10, T1, F1

// Q4KMINS adds row r's mins (words at m(R8), scale at dm(R8)) times the
// activations' bsum pairs (Z9) to M.
#define Q4KMINS(m, dm, M) \
	VBROADCASTI32X4 m(R8), Z0; \
	VPMADDWD Z0, Z9, Z1; \
	VCVTDQ2PS Z1, Z1; \
	VMULPS.BCST dm(R8), Z8, Z11; \
	VFMADD231PS Z11, Z1, M

// HSUM4 leaves in lane 0 of each 128-bit lane of Z the sum of its four
// floats as two VHADDPS leave it: (x0+x1)+(x2+x3). Clobbers T.
#define HSUM4(Z, T) \
	VPERMILPS $0xb1, Z, T; \
	VADDPS T, Z, Z; \
	VPERMILPS $0x4e, Z, T; \
	VADDPS T, Z, Z

// KSTORE stores lane 0 of each 128-bit lane of Z (activation rows 0..3)
// at byte offset ro of the four output columns. K1 selects those lanes.
#define KSTORE(Z, ro) \
	VCOMPRESSPS Z, K1, Z3; \
	VMOVSS X3, ro(R11); \
	VEXTRACTPS $1, X3, ro(R11)(R12*1); \
	VEXTRACTPS $2, X3, ro(SI); \
	VEXTRACTPS $3, X3, ro(SI)(R12*1)

// KROWSUM sets Z0 to row r's sums: its two float accumulators added (the
// row kernel's low and high halves), summed horizontally.
#define KROWSUM(F0, F1) \
	VADDPS F1, F0, Z0; \
	HSUM4(Z0, Z1)

// func q4KTileVNNI(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)
// Side table per block: (d, dmin) float32 per row (0), eight scale pairs
// per row (32), eight mins as words per row (160); 224 bytes.
TEXT ·q4KTileVNNI(SB), NOSPLIT, $0-64
	KT_ARGS
	MOVL $0x0f0f0f0f, R9
	VPBROADCASTD R9, Z7
	MOVL $0x1111, R9
	KMOVW R9, K1

q4kgroup:
	KZEROF
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	XORQ SI, SI
	MOVQ R13, R8
	MOVQ R14, R9

q4kblock:
	KZERO8
	VMOVDQU64 0(DI), Z4
	VMOVDQU64 128(DI), Z5
	Q4KROW(AX, 16, 32, 36, Z16)
	Q4KROW(BX, 16, 64, 68, Z18)
	Q4KROW(CX, 16, 96, 100, Z20)
	Q4KROW(DX, 16, 128, 132, Z22)
	VMOVDQU64 64(DI), Z4
	VMOVDQU64 192(DI), Z5
	Q4KROW(AX, 32, 32, 36, Z17)
	Q4KROW(BX, 32, 64, 68, Z19)
	Q4KROW(CX, 32, 96, 100, Z21)
	Q4KROW(DX, 32, 128, 132, Z23)
	VMOVDQU64 256(DI), Z4
	VMOVDQU64 384(DI), Z5
	Q4KROW(AX, 48, 40, 44, Z16)
	Q4KROW(BX, 48, 72, 76, Z18)
	Q4KROW(CX, 48, 104, 108, Z20)
	Q4KROW(DX, 48, 136, 140, Z22)
	VMOVDQU64 320(DI), Z4
	VMOVDQU64 448(DI), Z5
	Q4KROW(AX, 64, 40, 44, Z17)
	Q4KROW(BX, 64, 72, 76, Z19)
	Q4KROW(CX, 64, 104, 108, Z21)
	Q4KROW(DX, 64, 136, 140, Z23)
	VMOVDQU64 512(DI), Z4
	VMOVDQU64 640(DI), Z5
	Q4KROW(AX, 80, 48, 52, Z16)
	Q4KROW(BX, 80, 80, 84, Z18)
	Q4KROW(CX, 80, 112, 116, Z20)
	Q4KROW(DX, 80, 144, 148, Z22)
	VMOVDQU64 576(DI), Z4
	VMOVDQU64 704(DI), Z5
	Q4KROW(AX, 96, 48, 52, Z17)
	Q4KROW(BX, 96, 80, 84, Z19)
	Q4KROW(CX, 96, 112, 116, Z21)
	Q4KROW(DX, 96, 144, 148, Z23)
	VMOVDQU64 768(DI), Z4
	VMOVDQU64 896(DI), Z5
	Q4KROW(AX, 112, 56, 60, Z16)
	Q4KROW(BX, 112, 88, 92, Z18)
	Q4KROW(CX, 112, 120, 124, Z20)
	Q4KROW(DX, 112, 152, 156, Z22)
	VMOVDQU64 832(DI), Z4
	VMOVDQU64 960(DI), Z5
	Q4KROW(AX, 128, 56, 60, Z17)
	Q4KROW(BX, 128, 88, 92, Z19)
	Q4KROW(CX, 128, 120, 124, Z21)
	Q4KROW(DX, 128, 152, 156, Z23)
	VMOVUPS 1088(DI), Z8
	VMOVDQU64 1024(DI), Z9
	KFLOAT(0, Z16, Z17, Z24, Z25)
	Q4KMINS(160, 4, Z12)
	KFLOAT(8, Z18, Z19, Z26, Z27)
	Q4KMINS(176, 12, Z13)
	KFLOAT(16, Z20, Z21, Z28, Z29)
	Q4KMINS(192, 20, Z14)
	KFLOAT(24, Z22, Z23, Z30, Z31)
	Q4KMINS(208, 28, Z15)
	ADDQ $144, SI
	ADDQ $224, R8
	ADDQ $1152, DI
	DECQ R9
	JNE  q4kblock

	LEAQ (R11)(R12*2), SI
	KROWSUM(Z24, Z25)
	HSUM4(Z12, Z1)
	VSUBPS Z12, Z0, Z0
	KSTORE(Z0, 0)
	KROWSUM(Z26, Z27)
	HSUM4(Z13, Z1)
	VSUBPS Z13, Z0, Z0
	KSTORE(Z0, 4)
	KROWSUM(Z28, Z29)
	HSUM4(Z14, Z1)
	VSUBPS Z14, Z0, Z0
	KSTORE(Z0, 8)
	KROWSUM(Z30, Z31)
	HSUM4(Z15, Z1)
	VSUBPS Z15, Z0, Z0
	KSTORE(Z0, 12)
	LEAQ (R11)(R12*4), R11
	DECQ R10
	JNE  q4kgroup
	VZEROUPPER
	RET

// Q6KQUANTS sets W to 16 quants (0..63) of a weight row, in each 128-bit
// lane: the low four bits of L, bits 4-5 of H. Z7 holds bytes 0x0f, Z9
// bytes 0x30.
#define Q6KQUANTS(L, H, W) \
	VPANDD Z7, L, W; \
	VPTERNLOGD $0xf8, Z9, H, W

// Q6KDOT adds (W - 32) times the activations A (A32: their products with
// 32, as the row kernel forms them), times the scale pair at s(R8), to T.
#define Q6KDOT(W, A, A32, s, T) \
	VPMADDUBSW A, W, W; \
	VPSUBW A32, W, W; \
	VPDPWSSD.BCST s(R8), W, T

// func q6KTileVNNI(w *byte, stride int, side *byte, act *byte, groups, nb int, out *float32, ostride int)
// Side table per block: d float32 per row (0), sixteen scale pairs per
// row (16); 272 bytes.
TEXT ·q6KTileVNNI(SB), NOSPLIT, $0-64
	KT_ARGS
	MOVL $0x0f0f0f0f, R9
	VPBROADCASTD R9, Z7
	MOVL $0x30303030, R9
	VPBROADCASTD R9, Z9
	MOVL $0x20202020, R9
	VPBROADCASTD R9, Z11
	MOVL $0x1111, R9
	KMOVW R9, K1

q6kgroup:
	KZEROF
	XORQ SI, SI
	MOVQ R13, R8
	MOVQ R14, R9

q6kblock:
	KZERO8
	// half 0, quants 0..15 of each 32: groups 0, 2, 4, 6
	VMOVDQU64 0(DI), Z4
	VPMADDUBSW Z4, Z11, Z5
	VMOVDQU64 128(DI), Z8
	VPMADDUBSW Z8, Z11, Z10
	VMOVDQU64 256(DI), Z12
	VPMADDUBSW Z12, Z11, Z13
	VMOVDQU64 384(DI), Z14
	VPMADDUBSW Z14, Z11, Z15
	VBROADCASTI32X4 0(AX)(SI*1), Z0
	VBROADCASTI32X4 32(AX)(SI*1), Z1
	VBROADCASTI32X4 128(AX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 16, Z16)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 24, Z16)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 32, Z16)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 40, Z16)
	VBROADCASTI32X4 0(BX)(SI*1), Z0
	VBROADCASTI32X4 32(BX)(SI*1), Z1
	VBROADCASTI32X4 128(BX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 80, Z18)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 88, Z18)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 96, Z18)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 104, Z18)
	VBROADCASTI32X4 0(CX)(SI*1), Z0
	VBROADCASTI32X4 32(CX)(SI*1), Z1
	VBROADCASTI32X4 128(CX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 144, Z20)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 152, Z20)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 160, Z20)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 168, Z20)
	VBROADCASTI32X4 0(DX)(SI*1), Z0
	VBROADCASTI32X4 32(DX)(SI*1), Z1
	VBROADCASTI32X4 128(DX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 208, Z22)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 216, Z22)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 224, Z22)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 232, Z22)
	// half 0, quants 16..31 of each 32: groups 1, 3, 5, 7
	VMOVDQU64 64(DI), Z4
	VPMADDUBSW Z4, Z11, Z5
	VMOVDQU64 192(DI), Z8
	VPMADDUBSW Z8, Z11, Z10
	VMOVDQU64 320(DI), Z12
	VPMADDUBSW Z12, Z11, Z13
	VMOVDQU64 448(DI), Z14
	VPMADDUBSW Z14, Z11, Z15
	VBROADCASTI32X4 16(AX)(SI*1), Z0
	VBROADCASTI32X4 48(AX)(SI*1), Z1
	VBROADCASTI32X4 144(AX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 20, Z17)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 28, Z17)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 36, Z17)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 44, Z17)
	VBROADCASTI32X4 16(BX)(SI*1), Z0
	VBROADCASTI32X4 48(BX)(SI*1), Z1
	VBROADCASTI32X4 144(BX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 84, Z19)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 92, Z19)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 100, Z19)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 108, Z19)
	VBROADCASTI32X4 16(CX)(SI*1), Z0
	VBROADCASTI32X4 48(CX)(SI*1), Z1
	VBROADCASTI32X4 144(CX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 148, Z21)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 156, Z21)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 164, Z21)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 172, Z21)
	VBROADCASTI32X4 16(DX)(SI*1), Z0
	VBROADCASTI32X4 48(DX)(SI*1), Z1
	VBROADCASTI32X4 144(DX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 212, Z23)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 220, Z23)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 228, Z23)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 236, Z23)
	// half 1, quants 0..15 of each 32: groups 8, 10, 12, 14
	VMOVDQU64 512(DI), Z4
	VPMADDUBSW Z4, Z11, Z5
	VMOVDQU64 640(DI), Z8
	VPMADDUBSW Z8, Z11, Z10
	VMOVDQU64 768(DI), Z12
	VPMADDUBSW Z12, Z11, Z13
	VMOVDQU64 896(DI), Z14
	VPMADDUBSW Z14, Z11, Z15
	VBROADCASTI32X4 64(AX)(SI*1), Z0
	VBROADCASTI32X4 96(AX)(SI*1), Z1
	VBROADCASTI32X4 160(AX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 48, Z16)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 56, Z16)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 64, Z16)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 72, Z16)
	VBROADCASTI32X4 64(BX)(SI*1), Z0
	VBROADCASTI32X4 96(BX)(SI*1), Z1
	VBROADCASTI32X4 160(BX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 112, Z18)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 120, Z18)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 128, Z18)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 136, Z18)
	VBROADCASTI32X4 64(CX)(SI*1), Z0
	VBROADCASTI32X4 96(CX)(SI*1), Z1
	VBROADCASTI32X4 160(CX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 176, Z20)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 184, Z20)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 192, Z20)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 200, Z20)
	VBROADCASTI32X4 64(DX)(SI*1), Z0
	VBROADCASTI32X4 96(DX)(SI*1), Z1
	VBROADCASTI32X4 160(DX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 240, Z22)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 248, Z22)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 256, Z22)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 264, Z22)
	// half 1, quants 16..31 of each 32: groups 9, 11, 13, 15
	VMOVDQU64 576(DI), Z4
	VPMADDUBSW Z4, Z11, Z5
	VMOVDQU64 704(DI), Z8
	VPMADDUBSW Z8, Z11, Z10
	VMOVDQU64 832(DI), Z12
	VPMADDUBSW Z12, Z11, Z13
	VMOVDQU64 960(DI), Z14
	VPMADDUBSW Z14, Z11, Z15
	VBROADCASTI32X4 80(AX)(SI*1), Z0
	VBROADCASTI32X4 112(AX)(SI*1), Z1
	VBROADCASTI32X4 176(AX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 52, Z17)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 60, Z17)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 68, Z17)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 76, Z17)
	VBROADCASTI32X4 80(BX)(SI*1), Z0
	VBROADCASTI32X4 112(BX)(SI*1), Z1
	VBROADCASTI32X4 176(BX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 116, Z19)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 124, Z19)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 132, Z19)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 140, Z19)
	VBROADCASTI32X4 80(CX)(SI*1), Z0
	VBROADCASTI32X4 112(CX)(SI*1), Z1
	VBROADCASTI32X4 176(CX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 180, Z21)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 188, Z21)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 196, Z21)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 204, Z21)
	VBROADCASTI32X4 80(DX)(SI*1), Z0
	VBROADCASTI32X4 112(DX)(SI*1), Z1
	VBROADCASTI32X4 176(DX)(SI*1), Z2
	VPSLLW $4, Z2, Z3
	Q6KQUANTS(Z0, Z3, Z6)
	Q6KDOT(Z6, Z4, Z5, 244, Z23)
	VPSLLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z8, Z10, 252, Z23)
	VPSRLW $4, Z0, Z0
	VPSRLW $4, Z1, Z1
	Q6KQUANTS(Z0, Z2, Z6)
	Q6KDOT(Z6, Z12, Z13, 260, Z23)
	VPSRLW $2, Z2, Z3
	Q6KQUANTS(Z1, Z3, Z6)
	Q6KDOT(Z6, Z14, Z15, 268, Z23)
	VMOVUPS 1088(DI), Z8
	KFLOAT(0, Z16, Z17, Z24, Z25)
	KFLOAT(4, Z18, Z19, Z26, Z27)
	KFLOAT(8, Z20, Z21, Z28, Z29)
	KFLOAT(12, Z22, Z23, Z30, Z31)
	ADDQ $210, SI
	ADDQ $272, R8
	ADDQ $1152, DI
	DECQ R9
	JNE  q6kblock

	LEAQ (R11)(R12*2), SI
	KROWSUM(Z24, Z25)
	KSTORE(Z0, 0)
	KROWSUM(Z26, Z27)
	KSTORE(Z0, 4)
	KROWSUM(Z28, Z29)
	KSTORE(Z0, 8)
	KROWSUM(Z30, Z31)
	KSTORE(Z0, 12)
	LEAQ (R11)(R12*4), R11
	DECQ R10
	JNE  q6kgroup
	VZEROUPPER
	RET

