//go:build !purego

#include "textflag.h"
#include "dot_amd64.h"

// AVX2 + FMA + F16C dot-product kernels. Each mirrors a portable Go kernel
// in dot_kernels.go; the integer parts are exact, the float sums run in
// eight lanes (as ggml's AVX2 code does), so results differ from the
// portable ones only in summation order.

// bytes_from_bits_32's shuffle: byte j of the result takes byte j/8 of qh.
DATA shufBits<>+0(SB)/8, $0x0000000000000000
DATA shufBits<>+8(SB)/8, $0x0101010101010101
DATA shufBits<>+16(SB)/8, $0x0202020202020202
DATA shufBits<>+24(SB)/8, $0x0303030303030303
GLOBL shufBits<>(SB), RODATA|NOPTR, $32

// SCALE2 sets Y (all lanes) to f16(a) * f16(b); X is Y's low half, T a
// scratch xmm.
#define SCALE2(a, b, X, Y, T) \
	MOVWLZX a, AX; \
	VMOVD AX, X; \
	VCVTPH2PS X, X; \
	MOVWLZX b, AX; \
	VMOVD AX, T; \
	VCVTPH2PS T, T; \
	VMULSS T, X, X; \
	VBROADCASTSS X, Y

// MULSUM adds S * float(Σ pairs of x*y as int32) to ACC for signed bytes x,
// y (ggml's mul_sum_i8_pairs_float); Y15 holds int16 ones. Clobbers T1, T2.
#define MULSUM(x, y, T1, T2, S, ACC) \
	VPSIGNB x, x, T1; \
	VPSIGNB x, y, T2; \
	VPMADDUBSW T2, T1, T1; \
	VPMADDWD Y15, T1, T1; \
	VCVTDQ2PS T1, T1; \
	VFMADD231PS T1, S, ACC

// FSUM4 adds Y5..Y7 into Y0 and leaves the horizontal sum in X0.
#define FSUM4 \
	VADDPS Y5, Y0, Y0; \
	VADDPS Y7, Y6, Y6; \
	VADDPS Y6, Y0, Y0; \
	HSUM(Y0, X0, X1)

// FDOT_BEGIN loads a float dot product's arguments (w, x, n: SI, DI, CX)
// and clears its four accumulators Y0, Y5, Y6, Y7.
#define FDOT_BEGIN(done) \
	MOVQ w+0(FP), SI; \
	MOVQ x+8(FP), DI; \
	MOVQ n+16(FP), CX; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7; \
	TESTQ CX, CX; \
	JEQ done

// FDOT_STEP multiplies the 32 floats widened into Y1..Y4 with the next 32
// of x, advances SI by wstep bytes and loops while elements remain.
#define FDOT_STEP(wstep, loop) \
	VFMADD231PS (DI), Y1, Y0; \
	VFMADD231PS 32(DI), Y2, Y5; \
	VFMADD231PS 64(DI), Y3, Y6; \
	VFMADD231PS 96(DI), Y4, Y7; \
	ADDQ $wstep, SI; \
	ADDQ $128, DI; \
	SUBQ $32, CX; \
	JNE  loop

// FDOT_END returns the sum of the accumulators.
#define FDOT_END \
	FSUM4; \
	VMOVSS X0, ret+24(FP); \
	VZEROUPPER; \
	RET

// AXPY_BEGIN loads an axpy's arguments: o in DI, p broadcast in Y0, v in
// SI, n in CX.
#define AXPY_BEGIN(done) \
	MOVQ o+0(FP), DI; \
	VBROADCASTSS p+8(FP), Y0; \
	MOVQ v+16(FP), SI; \
	MOVQ n+24(FP), CX; \
	TESTQ CX, CX; \
	JEQ done

// AXPY_STEP sets o[0:8] += p * Y2, advances by 8 elements (vstep bytes of
// v) and loops while elements remain.
#define AXPY_STEP(vstep, loop) \
	VMOVUPS (DI), Y1; \
	VFMADD231PS Y2, Y0, Y1; \
	VMOVUPS Y1, (DI); \
	ADDQ $vstep, SI; \
	ADDQ $32, DI; \
	SUBQ $8, CX; \
	JNE  loop

// ROWS_BEGIN loads the arguments of a row kernel
// func(w *byte, stride int, act *byte, nb int, out *float32, rows int)
// and opens the loop over rows: SI the weight row, DI the activation, CX
// the block count, Y0 the accumulator.
#define ROWS_BEGIN(rowloop, rowdone) \
	MOVQ w+0(FP), R8; \
	MOVQ stride+8(FP), R9; \
	MOVQ act+16(FP), R10; \
	MOVQ nb+24(FP), R11; \
	MOVQ out+32(FP), R12; \
	MOVQ rows+40(FP), R13; \
	BCAST32(0x00010001, X15, Y15)

#define ROW_START(rowdone) \
	MOVQ R8, SI; \
	MOVQ R10, DI; \
	MOVQ R11, CX; \
	VXORPS Y0, Y0, Y0; \
	TESTQ CX, CX; \
	JEQ rowdone

// ROW_END stores the row's sum and moves to the next row.
#define ROW_END(rowloop) \
	HSUM(Y0, X0, X1); \
	VMOVSS X0, (R12); \
	ADDQ $4, R12; \
	ADDQ R9, R8; \
	DECQ R13; \
	JNE rowloop

// Q5UNPACK sets Q (low half XQ) to the 32 signed quants (-16..15) of the
// Q5_0 block at P. Clobbers T and Y4; Y10..Y14 hold its constants.
#define Q5UNPACK(P, Q, XQ, T) \
	VPBROADCASTD 2(P), T; \
	VPSHUFB Y12, T, T; \
	VPOR Y11, T, T; \
	VPCMPEQB Y10, T, T; \
	VPANDN Y13, T, T; \
	VMOVDQU 6(P), XQ; \
	VPSRLW $4, XQ, X4; \
	VINSERTI128 $1, X4, Q, Q; \
	VPAND Y14, Q, Q; \
	VPOR T, Q, Q

// WSCALE sets Y1 (all lanes) to f16(the weight block at P) times X8.
#define WSCALE(P) \
	MOVWLZX (P), AX; \
	VMOVD AX, X1; \
	VCVTPH2PS X1, X1; \
	VMULSS X8, X1, X1; \
	VBROADCASTSS X1, Y1

// func q8_0DotRowsAVX2(w *byte, stride int, act *byte, nb int, out *float32, rows int)
// Rows go in pairs that share the activation's loads and scales.
TEXT ·q8_0DotRowsAVX2(SB), NOSPLIT, $0-48
	ROWS_BEGIN(q80row, q80rowdone)

q80pair:
	CMPQ R13, $2
	JLT  q80single
	MOVQ R8, SI
	LEAQ (R8)(R9*1), BX
	MOVQ R10, DI
	MOVQ R11, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y9, Y9, Y9
	TESTQ CX, CX
	JEQ q80pairdone

q80ploop:
	MOVWLZX (DI), AX
	VMOVD AX, X8
	VCVTPH2PS X8, X8
	VMOVDQU 2(DI), Y3
	VMOVDQU 2(SI), Y2
	VMOVDQU 2(BX), Y7
	WSCALE(SI)
	MULSUM(Y2, Y3, Y4, Y5, Y1, Y0)
	WSCALE(BX)
	MULSUM(Y7, Y3, Y4, Y5, Y1, Y9)
	ADDQ $34, SI
	ADDQ $34, BX
	ADDQ $34, DI
	DECQ CX
	JNE  q80ploop

q80pairdone:
	HSUM(Y0, X0, X1)
	VMOVSS X0, (R12)
	HSUM(Y9, X9, X1)
	VMOVSS X9, 4(R12)
	ADDQ $8, R12
	LEAQ (R8)(R9*2), R8
	SUBQ $2, R13
	JMP  q80pair

q80single:
	TESTQ R13, R13
	JEQ q80end

q80row:
	ROW_START(q80rowdone)

q80loop:
	SCALE2((SI), (DI), X1, Y1, X2)
	VMOVDQU 2(SI), Y2
	VMOVDQU 2(DI), Y3
	MULSUM(Y2, Y3, Y4, Y5, Y1, Y0)
	ADDQ $34, SI
	ADDQ $34, DI
	DECQ CX
	JNE  q80loop

q80rowdone:
	ROW_END(q80row)

q80end:
	VZEROUPPER
	RET

// func q4_0DotRowsAVX2(w *byte, stride int, act *byte, nb int, out *float32, rows int)
TEXT ·q4_0DotRowsAVX2(SB), NOSPLIT, $0-48
	ROWS_BEGIN(q40row, q40rowdone)
	BCAST32(0x0f0f0f0f, X14, Y14)
	BCAST32(0x08080808, X13, Y13)
	TESTQ R13, R13
	JEQ q40end

q40row:
	ROW_START(q40rowdone)

q40loop:
	SCALE2((SI), (DI), X1, Y1, X2)
	VMOVDQU 2(SI), X2
	VPSRLW $4, X2, X3
	VINSERTI128 $1, X3, Y2, Y2
	VPAND Y14, Y2, Y2
	VPSUBB Y13, Y2, Y2
	VMOVDQU 2(DI), Y3
	MULSUM(Y2, Y3, Y4, Y5, Y1, Y0)
	ADDQ $18, SI
	ADDQ $34, DI
	DECQ CX
	JNE  q40loop

q40rowdone:
	ROW_END(q40row)

q40end:
	VZEROUPPER
	RET

// func q5_0DotRowsAVX2(w *byte, stride int, act *byte, nb int, out *float32, rows int)
// Rows go in pairs that share the activation's loads and scales.
TEXT ·q5_0DotRowsAVX2(SB), NOSPLIT, $0-48
	ROWS_BEGIN(q50row, q50rowdone)
	BCAST32(0x0f0f0f0f, X14, Y14)
	BCAST32(0xf0f0f0f0, X13, Y13)
	VMOVDQU shufBits<>(SB), Y12
	// bytes_from_bits_32's mask 0x7fbfdfeff7fbfdfe, and all ones.
	MOVQ $0x7fbfdfeff7fbfdfe, AX
	VMOVQ AX, X11
	VPBROADCASTQ X11, Y11
	VPCMPEQB Y10, Y10, Y10

q50pair:
	CMPQ R13, $2
	JLT  q50single
	MOVQ R8, SI
	LEAQ (R8)(R9*1), BX
	MOVQ R10, DI
	MOVQ R11, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y9, Y9, Y9
	TESTQ CX, CX
	JEQ q50pairdone

q50ploop:
	MOVWLZX (DI), AX
	VMOVD AX, X8
	VCVTPH2PS X8, X8
	VMOVDQU 2(DI), Y3
	Q5UNPACK(SI, Y2, X2, Y6)
	WSCALE(SI)
	MULSUM(Y2, Y3, Y4, Y5, Y1, Y0)
	Q5UNPACK(BX, Y7, X7, Y6)
	WSCALE(BX)
	MULSUM(Y7, Y3, Y4, Y5, Y1, Y9)
	ADDQ $22, SI
	ADDQ $22, BX
	ADDQ $34, DI
	DECQ CX
	JNE  q50ploop

q50pairdone:
	HSUM(Y0, X0, X1)
	VMOVSS X0, (R12)
	HSUM(Y9, X9, X1)
	VMOVSS X9, 4(R12)
	ADDQ $8, R12
	LEAQ (R8)(R9*2), R8
	SUBQ $2, R13
	JMP  q50pair

q50single:
	TESTQ R13, R13
	JEQ q50end

q50row:
	ROW_START(q50rowdone)

q50loop:
	MOVWLZX (DI), AX
	VMOVD AX, X8
	VCVTPH2PS X8, X8
	Q5UNPACK(SI, Y2, X2, Y6)
	WSCALE(SI)
	VMOVDQU 2(DI), Y3
	MULSUM(Y2, Y3, Y4, Y5, Y1, Y0)
	ADDQ $22, SI
	ADDQ $34, DI
	DECQ CX
	JNE  q50loop

q50rowdone:
	ROW_END(q50row)

q50end:
	VZEROUPPER
	RET

// KMINS sets AX to Σ_j m[j] * (bsums[2j] + bsums[2j+1]) for the Q8_K block
// at DI and the eight mins at M (bytes). Clobbers Y7, Y8, Y9.
#define KMINS(M) \
	VMOVDQU 256(DI), Y7; \
	VEXTRACTI128 $1, Y7, X8; \
	VPHADDW X8, X7, X7; \
	VPMOVZXBW M, X9; \
	VPMADDWD X9, X7, X7; \
	VPHADDD X7, X7, X7; \
	VPHADDD X7, X7, X7; \
	VMOVD X7, AX

// BSCALE broadcasts the unsigned byte at m as an int16 into Y (low half X).
#define BSCALE(m, X, Y) \
	MOVBLZX m, AX; \
	VMOVD AX, X; \
	VPBROADCASTW X, Y

// KSUB adds sc * (q · q8) for 32 unsigned quants Q and 32 Q8_K quants at
// q8 into the int32 lanes of Y0; sc is a byte. Clobbers Q, Y5, Y6.
#define KSUB(Q, q8, sc) \
	VPMADDUBSW q8, Q, Q; \
	BSCALE(sc, X6, Y6); \
	VPMADDWD Y6, Q, Q; \
	VPADDD Q, Y0, Y0

// func q5KBlockAVX2(qh, qs, q8, sm *byte) (isum, summs int32)
// As q4KBlockAVX2, with qh the 32 bytes of fifth bits.
TEXT ·q5KBlockAVX2(SB), NOSPLIT, $0-40
	MOVQ qh+0(FP), BX
	MOVQ qs+8(FP), SI
	MOVQ q8+16(FP), DI
	MOVQ sm+24(FP), DX
	VPXOR Y0, Y0, Y0
	BCAST32(0x0f0f0f0f, X14, Y14)
	BCAST32(0x01010101, X13, Y13)
	VMOVDQU (BX), Y12
	XORQ CX, CX

q5kloop:
	VMOVDQU (SI), Y1
	VPSRLW $4, Y1, Y2
	VPAND Y14, Y1, Y1
	VPAND Y14, Y2, Y2
	// fifth bits: bit 2j of qh for the low nibbles, 2j+1 for the high.
	VPAND Y13, Y12, Y3
	VPSLLW $4, Y3, Y3
	VPOR Y3, Y1, Y1
	VPSRLW $1, Y12, Y12
	VPAND Y13, Y12, Y3
	VPSLLW $4, Y3, Y3
	VPOR Y3, Y2, Y2
	VPSRLW $1, Y12, Y12
	KSUB(Y1, (DI), (DX))
	KSUB(Y2, 32(DI), 1(DX))
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $2, DX
	INCQ CX
	CMPQ CX, $4
	JNE  q5kloop

	HSUMI(Y0, X0, X1)
	VMOVD X0, AX
	MOVL AX, isum+32(FP)
	SUBQ $256, DI
	KMINS((DX))
	MOVL AX, summs+36(FP)
	VZEROUPPER
	RET

// SSCALE sets Y to int16 lanes: the signed byte at a in the low 128 bits,
// the one at b in the high 128 bits. Clobbers T (xmm).
#define SSCALE(a, b, X, Y, T) \
	MOVBLSX a, AX; \
	VMOVD AX, X; \
	VPBROADCASTW X, X; \
	MOVBLSX b, AX; \
	VMOVD AX, T; \
	VPBROADCASTW T, T; \
	VINSERTI128 $1, T, Y, Y

// Q6SUB adds Σ scale * ((q - 32) · q8) for 32 quants Q (0..63) and the
// Q8_K quants at q8, scales at sa (first 16) and sb (last 16), into Y0.
// Y13 holds bytes of 32, Y15 int16 ones. Clobbers Q, Y5, Y6, Y7.
#define Q6SUB(Q, q8, sa, sb) \
	VMOVDQU q8, Y5; \
	VPMADDUBSW Y5, Y13, Y7; \
	VPMADDUBSW Y5, Q, Q; \
	VPSUBW Y7, Q, Q; \
	SSCALE(sa, sb, X6, Y6, X7); \
	VPMADDWD Y6, Q, Q; \
	VPADDD Q, Y0, Y0

// func f16DotAVX2(w *byte, x *float32, n int) float32  (n a multiple of 32)
TEXT ·f16DotAVX2(SB), NOSPLIT, $0-28
	FDOT_BEGIN(f16done)

f16loop:
	VCVTPH2PS (SI), Y1
	VCVTPH2PS 16(SI), Y2
	VCVTPH2PS 32(SI), Y3
	VCVTPH2PS 48(SI), Y4
	FDOT_STEP(64, f16loop)

f16done:
	FDOT_END

// func bf16DotAVX2(w *byte, x *float32, n int) float32  (n a multiple of 32)
TEXT ·bf16DotAVX2(SB), NOSPLIT, $0-28
	FDOT_BEGIN(bf16done)

bf16loop:
	VPMOVZXWD (SI), Y1
	VPMOVZXWD 16(SI), Y2
	VPMOVZXWD 32(SI), Y3
	VPMOVZXWD 48(SI), Y4
	VPSLLD $16, Y1, Y1
	VPSLLD $16, Y2, Y2
	VPSLLD $16, Y3, Y3
	VPSLLD $16, Y4, Y4
	FDOT_STEP(64, bf16loop)

bf16done:
	FDOT_END

// func f32DotAVX2(w, x *float32, n int) float32  (n a multiple of 32)
TEXT ·f32DotAVX2(SB), NOSPLIT, $0-28
	FDOT_BEGIN(f32done)

f32loop:
	VMOVUPS (SI), Y1
	VMOVUPS 32(SI), Y2
	VMOVUPS 64(SI), Y3
	VMOVUPS 96(SI), Y4
	FDOT_STEP(128, f32loop)

f32done:
	FDOT_END

// func f32AxpyAVX2(o *float32, p float32, v *float32, n int)  (n a multiple of 8)
TEXT ·f32AxpyAVX2(SB), NOSPLIT, $0-32
	AXPY_BEGIN(axdone)

axloop:
	VMOVUPS (SI), Y2
	AXPY_STEP(32, axloop)

axdone:
	VZEROUPPER
	RET

// func f16AxpyAVX2(o *float32, p float32, v *byte, n int)  (n a multiple of 8)
TEXT ·f16AxpyAVX2(SB), NOSPLIT, $0-32
	AXPY_BEGIN(ahdone)

ahloop:
	VCVTPH2PS (SI), Y2
	AXPY_STEP(16, ahloop)

ahdone:
	VZEROUPPER
	RET

// Q6INNER adds Σ scale * ((q - 32) · q8) over the Q6_K block at R8 and the
// Q8_K quants at R10+4 into the int32 lanes of Y0 (cleared first).
#define Q6INNER(loop) \
	MOVQ R8, SI; \
	LEAQ 4(R10), DI; \
	LEAQ 128(R8), BX; \
	LEAQ 192(R8), DX; \
	VPXOR Y0, Y0, Y0; \
	XORQ CX, CX

// func q6KDotAVX2(w, act *byte, nb int) float32
// A whole Q6_K row of nb blocks against a Q8_K activation.
TEXT ·q6KDotAVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), R8
	MOVQ act+8(FP), R10
	MOVQ nb+16(FP), R11
	VXORPS Y11, Y11, Y11
	BCAST32(0x0f0f0f0f, X14, Y14)
	BCAST32(0x20202020, X13, Y13)
	BCAST32(0x03030303, X12, Y12)
	TESTQ R11, R11
	JEQ q6rdone

q6rblock:
	Q6INNER(q6rloop)

q6rloop:
	VMOVDQU (SI), Y1
	VMOVDQU 32(SI), Y2
	VMOVDQU (BX), Y8
	VPSRLW $4, Y1, Y3
	VPSRLW $4, Y2, Y4
	VPAND Y14, Y1, Y1
	VPAND Y14, Y2, Y2
	VPAND Y14, Y3, Y3
	VPAND Y14, Y4, Y4
	VPAND Y12, Y8, Y9
	VPSLLW $4, Y9, Y9
	VPOR Y9, Y1, Y1
	VPSRLW $2, Y8, Y8
	VPAND Y12, Y8, Y9
	VPSLLW $4, Y9, Y9
	VPOR Y9, Y2, Y2
	VPSRLW $2, Y8, Y8
	VPAND Y12, Y8, Y9
	VPSLLW $4, Y9, Y9
	VPOR Y9, Y3, Y3
	VPSRLW $2, Y8, Y8
	VPAND Y12, Y8, Y9
	VPSLLW $4, Y9, Y9
	VPOR Y9, Y4, Y4
	Q6SUB(Y1, (DI), (DX), 1(DX))
	Q6SUB(Y2, 32(DI), 2(DX), 3(DX))
	Q6SUB(Y3, 64(DI), 4(DX), 5(DX))
	Q6SUB(Y4, 96(DI), 6(DX), 7(DX))
	ADDQ $64, SI
	ADDQ $32, BX
	ADDQ $128, DI
	ADDQ $8, DX
	INCQ CX
	CMPQ CX, $2
	JNE  q6rloop

	Q6FINISH
	ADDQ $210, R8
	ADDQ $292, R10
	DECQ R11
	JNE  q6rblock

q6rdone:
	HSUM(Y11, X11, X1)
	VMOVSS X11, ret+24(FP)
	VZEROUPPER
	RET

// func q4KDotAVX2(w, act *byte, nb int) float32
// A whole Q4_K row of nb blocks against a Q8_K activation.
TEXT ·q4KDotAVX2(SB), NOSPLIT, $16-28
	MOVQ w+0(FP), R8
	MOVQ act+8(FP), R10
	MOVQ nb+16(FP), R11
	VXORPS Y11, Y11, Y11
	VXORPS X10, X10, X10
	BCAST32(0x0f0f0f0f, X14, Y14)
	TESTQ R11, R11
	JEQ q4rdone

q4rblock:
	KSCALES
	LEAQ 16(R8), SI
	LEAQ 4(R10), DI
	MOVQ SP, DX
	VPXOR Y0, Y0, Y0
	XORQ CX, CX

q4rloop:
	VMOVDQU (SI), Y1
	VPSRLW $4, Y1, Y2
	VPAND Y14, Y1, Y1
	VPAND Y14, Y2, Y2
	KSUB(Y1, (DI), (DX))
	KSUB(Y2, 32(DI), 1(DX))
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $2, DX
	INCQ CX
	CMPQ CX, $4
	JNE  q4rloop

	KMINSV
	KFINISH
	ADDQ $144, R8
	ADDQ $292, R10
	DECQ R11
	JNE  q4rblock

q4rdone:
	HSUM(Y11, X11, X1)
	VHADDPS X10, X10, X10
	VHADDPS X10, X10, X10
	VSUBSS X10, X11, X11
	VMOVSS X11, ret+24(FP)
	VZEROUPPER
	RET
