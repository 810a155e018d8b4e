//go:build !purego

#include "textflag.h"

// Flash-attention primitives (AVX2, FMA, F16C); see flashattn.go for what
// each computes. Every value is rounded exactly as in the portable code:
// F16 conversions round to nearest even (VCVTPS2PH $0), multiply-adds are
// fused, and sums run in the same order.

// 8-lane constants of the tile softmax's exponential.
DATA faconst<>+0(SB)/4, $0x3f800000 // 1
DATA faconst<>+4(SB)/4, $0x3f800000
DATA faconst<>+8(SB)/4, $0x3f800000
DATA faconst<>+12(SB)/4, $0x3f800000
DATA faconst<>+16(SB)/4, $0x3f800000
DATA faconst<>+20(SB)/4, $0x3f800000
DATA faconst<>+24(SB)/4, $0x3f800000
DATA faconst<>+28(SB)/4, $0x3f800000
DATA faconst<>+32(SB)/4, $0xffffff82 // -126
DATA faconst<>+36(SB)/4, $0xffffff82
DATA faconst<>+40(SB)/4, $0xffffff82
DATA faconst<>+44(SB)/4, $0xffffff82
DATA faconst<>+48(SB)/4, $0xffffff82
DATA faconst<>+52(SB)/4, $0xffffff82
DATA faconst<>+56(SB)/4, $0xffffff82
DATA faconst<>+60(SB)/4, $0xffffff82
DATA faconst<>+64(SB)/4, $127
DATA faconst<>+68(SB)/4, $127
DATA faconst<>+72(SB)/4, $127
DATA faconst<>+76(SB)/4, $127
DATA faconst<>+80(SB)/4, $127
DATA faconst<>+84(SB)/4, $127
DATA faconst<>+88(SB)/4, $127
DATA faconst<>+92(SB)/4, $127
DATA faconst<>+96(SB)/4, $0x7fffffff // |x| mask
DATA faconst<>+100(SB)/4, $0x7fffffff
DATA faconst<>+104(SB)/4, $0x7fffffff
DATA faconst<>+108(SB)/4, $0x7fffffff
DATA faconst<>+112(SB)/4, $0x7fffffff
DATA faconst<>+116(SB)/4, $0x7fffffff
DATA faconst<>+120(SB)/4, $0x7fffffff
DATA faconst<>+124(SB)/4, $0x7fffffff
DATA faconst<>+128(SB)/4, $0x43400000 // 192
DATA faconst<>+132(SB)/4, $0x43400000
DATA faconst<>+136(SB)/4, $0x43400000
DATA faconst<>+140(SB)/4, $0x43400000
DATA faconst<>+144(SB)/4, $0x43400000
DATA faconst<>+148(SB)/4, $0x43400000
DATA faconst<>+152(SB)/4, $0x43400000
DATA faconst<>+156(SB)/4, $0x43400000
DATA faconst<>+160(SB)/4, $0x7f800000 // +Inf
DATA faconst<>+164(SB)/4, $0x7f800000
DATA faconst<>+168(SB)/4, $0x7f800000
DATA faconst<>+172(SB)/4, $0x7f800000
DATA faconst<>+176(SB)/4, $0x7f800000
DATA faconst<>+180(SB)/4, $0x7f800000
DATA faconst<>+184(SB)/4, $0x7f800000
DATA faconst<>+188(SB)/4, $0x7f800000
// Scalars, broadcast where used.
DATA faconst<>+192(SB)/4, $0x4b400000 // 0x1.8p23
DATA faconst<>+196(SB)/4, $0x3fb8aa3b // log2(e)
DATA faconst<>+200(SB)/4, $0x3f317200 // ln 2, high part
DATA faconst<>+204(SB)/4, $0x35bfbe8e // ln 2, low part
DATA faconst<>+208(SB)/4, $0x3c072010 // polynomial coefficients
DATA faconst<>+212(SB)/4, $0x3d2b9f17
DATA faconst<>+216(SB)/4, $0x3e2aaf33
DATA faconst<>+220(SB)/4, $0x3efffedb
DATA faconst<>+224(SB)/4, $0x3f7ffff6
GLOBL faconst<>(SB), RODATA|NOPTR, $228

#define FA_ONES faconst<>+0(SB)
#define FA_M126 faconst<>+32(SB)
#define FA_P127 faconst<>+64(SB)
#define FA_ABS faconst<>+96(SB)
#define FA_192 faconst<>+128(SB)
#define FA_INF faconst<>+160(SB)

// func faRoundF16AVX2(dst, src *float32, n int)  (n a multiple of 8)
TEXT ·faRoundF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JEQ  rounddone

roundloop:
	VMOVUPS   (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VCVTPH2PS X1, Y1
	VMOVUPS   Y1, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	DECQ      CX
	JNE       roundloop

rounddone:
	VZEROUPPER
	RET

// func faToF16AVX2(dst *uint16, src *float32, n int)  (n a multiple of 8)
TEXT ·faToF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JEQ  tof16done

tof16loop:
	VMOVUPS   (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VMOVDQU   X1, (DI)
	ADDQ      $32, SI
	ADDQ      $16, DI
	DECQ      CX
	JNE       tof16loop

tof16done:
	VZEROUPPER
	RET

// func faScaleAVX2(dst, src *float32, n int, s float32)  (n a multiple of 8)
TEXT ·faScaleAVX2(SB), NOSPLIT, $0-28
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS s+24(FP), Y2
	SHRQ         $3, CX
	JEQ          scaledone

scaleloop:
	VMULPS  (SI), Y2, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNE     scaleloop

scaledone:
	VZEROUPPER
	RET

// func faScoresF16AVX2(s *float32, k *uint16, stride int, q *float32, dim, n int, scale float32)
// s[j] = dot(k[j*stride:][:dim], q) * scale for j < n, dim a multiple of 64:
// ggml_vec_dot_f16's four 16-lane accumulators are Y0-Y1, Y2-Y3, Y4-Y5 and
// Y6-Y7 (elements i+16a+l, l < 16), summed (0+2)+(1+3), then halved.
TEXT ·faScoresF16AVX2(SB), NOSPLIT, $0-52
	MOVQ   s+0(FP), DI
	MOVQ   k+8(FP), SI
	MOVQ   stride+16(FP), R8
	SHLQ   $1, R8
	MOVQ   q+24(FP), DX
	MOVQ   dim+32(FP), R9
	MOVQ   n+40(FP), CX
	VMOVSS scale+48(FP), X15
	TESTQ  CX, CX
	JEQ    scoresdone

scoreskey:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   SI, AX
	MOVQ   DX, BX
	MOVQ   R9, R10

scoresstep:
	VCVTPH2PS   0(AX), Y8
	VFMADD231PS 0(BX), Y8, Y0
	VCVTPH2PS   16(AX), Y9
	VFMADD231PS 32(BX), Y9, Y1
	VCVTPH2PS   32(AX), Y10
	VFMADD231PS 64(BX), Y10, Y2
	VCVTPH2PS   48(AX), Y11
	VFMADD231PS 96(BX), Y11, Y3
	VCVTPH2PS   64(AX), Y12
	VFMADD231PS 128(BX), Y12, Y4
	VCVTPH2PS   80(AX), Y13
	VFMADD231PS 160(BX), Y13, Y5
	VCVTPH2PS   96(AX), Y14
	VFMADD231PS 192(BX), Y14, Y6
	VCVTPH2PS   112(AX), Y8
	VFMADD231PS 224(BX), Y8, Y7
	ADDQ        $128, AX
	ADDQ        $256, BX
	SUBQ        $64, R10
	JNE         scoresstep

	VADDPS       Y4, Y0, Y0 // lanes 0-7: (a0 + a2) + (a1 + a3)
	VADDPS       Y6, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VADDPS       Y5, Y1, Y1 // lanes 8-15
	VADDPS       Y7, Y3, Y3
	VADDPS       Y3, Y1, Y1
	VADDPS       Y1, Y0, Y0 // v[l] += v[l+8]
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0 // v[l] += v[l+4]
	VMOVHLPS     X0, X0, X1
	VADDPS       X1, X0, X0 // v[l] += v[l+2]
	VMOVSHDUP    X0, X1
	VADDSS       X1, X0, X0 // v[0] += v[1]
	VMULSS       X15, X0, X0
	VMOVSS       X0, (DI)
	ADDQ         $4, DI
	ADDQ         R8, SI
	DECQ         CX
	JNE          scoreskey

scoresdone:
	VZEROUPPER
	RET

// ROUND16(Y, X) rounds the 8 floats of Y to F16 and back.
#define ROUND16(Y, X) \
	VCVTPS2PH $0, Y, X; \
	VCVTPH2PS X, Y

// MAD16(off, Y) is ggml_vec_mad_f16 on 8 values: Y = f16(v[off:]*Y15 + Y).
#define MAD16(off, Y) \
	VCVTPH2PS   off(AX), Y8; \
	VFMADD231PS Y15, Y8, Y; \
	ROUND16(Y, X8)

// SCALE16(Y) is ggml_vec_scale_f16 on 8 values: Y = f16(Y*Y15).
#define SCALE16(Y) \
	VMULPS Y15, Y, Y; \
	ROUND16(Y, X9)

// func faMadF16AVX2(acc *float32, v *uint16, stride int, ms, vs *float32, n, dim int)
// For 64 columns at a time (Y0-Y7) and each key j < n: acc = f16(acc*ms[j])
// when ms[j] != 1, then acc = f16(v_j*vs[j] + acc).
TEXT ·faMadF16AVX2(SB), NOSPLIT, $0-56
	MOVQ  acc+0(FP), DI
	MOVQ  v+8(FP), SI
	MOVQ  stride+16(FP), R8
	SHLQ  $1, R8
	MOVQ  ms+24(FP), R11
	MOVQ  vs+32(FP), R12
	MOVQ  n+40(FP), R13
	MOVQ  dim+48(FP), R9
	MOVL  $0x3f800000, AX
	VMOVD AX, X14
	TESTQ R13, R13
	JEQ   maddone

madcols:
	VMOVUPS 0(DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS 128(DI), Y4
	VMOVUPS 160(DI), Y5
	VMOVUPS 192(DI), Y6
	VMOVUPS 224(DI), Y7
	MOVQ    SI, AX
	XORQ    BX, BX

madkey:
	VMOVSS   (R11)(BX*4), X15
	VUCOMISS X14, X15
	JNE      madscale
	JPS      madscale

madadd:
	VBROADCASTSS (R12)(BX*4), Y15
	MAD16(0, Y0)
	MAD16(16, Y1)
	MAD16(32, Y2)
	MAD16(48, Y3)
	MAD16(64, Y4)
	MAD16(80, Y5)
	MAD16(96, Y6)
	MAD16(112, Y7)
	ADDQ         R8, AX
	INCQ         BX
	CMPQ         BX, R13
	JLT          madkey

	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ    $256, DI
	ADDQ    $128, SI
	SUBQ    $64, R9
	JGT     madcols

maddone:
	VZEROUPPER
	RET

madscale:
	VBROADCASTSS X15, Y15
	SCALE16(Y0)
	SCALE16(Y1)
	SCALE16(Y2)
	SCALE16(Y3)
	SCALE16(Y4)
	SCALE16(Y5)
	SCALE16(Y6)
	SCALE16(Y7)
	JMP          madadd

// func faTransposeKAVX2(kt *float32, k *uint16, stride, nk8, dim int)
// kt[d*64+j] = k[j*stride+d] for j < nk8 (a multiple of 8), d < dim (a
// multiple of 8): 8x8 blocks widened, then transposed in registers.
TEXT ·faTransposeKAVX2(SB), NOSPLIT, $0-40
	MOVQ kt+0(FP), DI
	MOVQ k+8(FP), SI
	MOVQ stride+16(FP), R8
	SHLQ $1, R8
	MOVQ nk8+24(FP), CX
	MOVQ dim+32(FP), R9
	SHRQ $3, CX
	JEQ  trdone

trkeys:
	MOVQ SI, AX  // row 0 of this group of 8 keys, at column d
	MOVQ DI, DX  // kt + 32*group, at row d
	MOVQ R9, R10

trcols:
	MOVQ      AX, BX
	VCVTPH2PS (BX), Y0
	ADDQ      R8, BX
	VCVTPH2PS (BX), Y1
	ADDQ      R8, BX
	VCVTPH2PS (BX), Y2
	ADDQ      R8, BX
	VCVTPH2PS (BX), Y3
	ADDQ      R8, BX
	VCVTPH2PS (BX), Y4
	ADDQ      R8, BX
	VCVTPH2PS (BX), Y5
	ADDQ      R8, BX
	VCVTPH2PS (BX), Y6
	ADDQ      R8, BX
	VCVTPH2PS (BX), Y7

	VUNPCKLPS Y1, Y0, Y8 // r0[0] r1[0] r0[1] r1[1] | [4] [5]
	VUNPCKHPS Y1, Y0, Y9 // [2] [3] | [6] [7]
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0  // r0..r3 [0] | [4]
	VSHUFPS $0xee, Y10, Y8, Y1  // [1] | [5]
	VSHUFPS $0x44, Y11, Y9, Y2  // [2] | [6]
	VSHUFPS $0xee, Y11, Y9, Y3  // [3] | [7]
	VSHUFPS $0x44, Y14, Y12, Y4 // r4..r7
	VSHUFPS $0xee, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xee, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	VMOVUPS Y8, 0(DX)
	VMOVUPS Y9, 256(DX)
	VMOVUPS Y10, 512(DX)
	VMOVUPS Y11, 768(DX)
	VMOVUPS Y12, 1024(DX)
	VMOVUPS Y13, 1280(DX)
	VMOVUPS Y14, 1536(DX)
	VMOVUPS Y15, 1792(DX)

	ADDQ $16, AX
	ADDQ $2048, DX
	SUBQ $8, R10
	JNE  trcols

	LEAQ (SI)(R8*8), SI
	ADDQ $32, DI
	DECQ CX
	JNE  trkeys

trdone:
	VZEROUPPER
	RET

// func faConvertRowsAVX2(dst *float32, v *uint16, stride, rows, dim int)
// dst[r*dim+d] = v[r*stride+d] for r < rows, d < dim (a multiple of 8).
TEXT ·faConvertRowsAVX2(SB), NOSPLIT, $0-40
	MOVQ  dst+0(FP), DI
	MOVQ  v+8(FP), SI
	MOVQ  stride+16(FP), R8
	SHLQ  $1, R8
	MOVQ  rows+24(FP), CX
	MOVQ  dim+32(FP), R9
	TESTQ CX, CX
	JEQ   cvdone

cvrow:
	MOVQ SI, AX
	MOVQ R9, R10

cvcol:
	VCVTPH2PS (AX), Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, AX
	ADDQ      $32, DI
	SUBQ      $8, R10
	JNE       cvcol

	ADDQ R8, SI
	DECQ CX
	JNE  cvrow

cvdone:
	VZEROUPPER
	RET

// func faTileScoresAVX2(kq, q, kt *float32, dim int, scale float32)
// kq[j] = (Σ_d q[d]*kt[d*64+j], fused in order d) * scale for the 64 keys.
TEXT ·faTileScoresAVX2(SB), NOSPLIT, $0-36
	MOVQ         kq+0(FP), DI
	MOVQ         q+8(FP), SI
	MOVQ         kt+16(FP), DX
	MOVQ         dim+24(FP), CX
	VBROADCASTSS scale+32(FP), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	VXORPS       Y4, Y4, Y4
	VXORPS       Y5, Y5, Y5
	VXORPS       Y6, Y6, Y6
	VXORPS       Y7, Y7, Y7

tsloop:
	VBROADCASTSS (SI), Y8
	VFMADD231PS  0(DX), Y8, Y0
	VFMADD231PS  32(DX), Y8, Y1
	VFMADD231PS  64(DX), Y8, Y2
	VFMADD231PS  96(DX), Y8, Y3
	VFMADD231PS  128(DX), Y8, Y4
	VFMADD231PS  160(DX), Y8, Y5
	VFMADD231PS  192(DX), Y8, Y6
	VFMADD231PS  224(DX), Y8, Y7
	ADDQ         $4, SI
	ADDQ         $256, DX
	DECQ         CX
	JNE          tsloop

	VMULPS  Y15, Y0, Y0
	VMULPS  Y15, Y1, Y1
	VMULPS  Y15, Y2, Y2
	VMULPS  Y15, Y3, Y3
	VMULPS  Y15, Y4, Y4
	VMULPS  Y15, Y5, Y5
	VMULPS  Y15, Y6, Y6
	VMULPS  Y15, Y7, Y7
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	VZEROUPPER
	RET

// EXPF(off) replaces the 8 floats at off(DI) by GGMLExpf(x - M), M in Y15,
// and leaves them in Y1 too: z = x*log2e + 0x1.8p23, n = z - 0x1.8p23,
// b = x - n*ln2 (two parts), j = polynomial(b) (fused as GGMLExpf), then
// j*2^n as (j*2^(n-n1))*2^n1 with n1 = clamp(n, -126, 127), exact but for
// the one rounding of the result; |n| > 192 gives 0 or +Inf.
// Constants: Y5 0x1.8p23, Y6 log2e, Y7 ln2hi, Y8 ln2lo, Y9-Y13 the
// coefficients; temporaries Y0-Y4.
#define EXPF(off) \
	VMOVUPS      off(DI), Y0; \
	VSUBPS       Y15, Y0, Y0; \
	VMOVAPS      Y5, Y1; \
	VFMADD231PS  Y6, Y0, Y1; \
	VSUBPS       Y5, Y1, Y2; \
	VFNMADD231PS Y7, Y2, Y0; \
	VFNMADD231PS Y8, Y2, Y0; \
	VMULPS       Y0, Y0, Y4; \
	VMOVAPS      Y10, Y1; \
	VFMADD231PS  Y9, Y0, Y1; \
	VMOVAPS      Y12, Y3; \
	VFMADD231PS  Y11, Y0, Y3; \
	VFMADD231PS  Y4, Y1, Y3; \
	VMOVUPS      FA_ONES, Y1; \
	VFMADD231PS  Y13, Y0, Y1; \
	VFMADD231PS  Y4, Y3, Y1; \
	VCVTTPS2DQ   Y2, Y3; \
	VPMAXSD      FA_M126, Y3, Y4; \
	VPMINSD      FA_P127, Y4, Y4; \
	VPSUBD       Y4, Y3, Y3; \
	VPADDD       FA_P127, Y4, Y4; \
	VPSLLD       $23, Y4, Y4; \
	VPADDD       FA_P127, Y3, Y3; \
	VPSLLD       $23, Y3, Y3; \
	VMULPS       Y3, Y1, Y1; \
	VMULPS       Y4, Y1, Y1; \
	VANDPS       FA_ABS, Y2, Y3; \
	VCMPPS       $0x1e, FA_192, Y3, Y3; \
	VXORPS       Y4, Y4, Y4; \
	VCMPPS       $0x1e, Y4, Y2, Y4; \
	VANDPS       FA_INF, Y4, Y4; \
	VBLENDVPS    Y3, Y4, Y1, Y1; \
	VMOVUPS      Y1, off(DI)

// SUM16(off) adds the 16 exponentials at off(DI) (the high 8 still in Y1)
// as _mm512_reduce_add_ps does, widened to double, to X14.
#define SUM16(off) \
	VADDPS       off(DI), Y1, Y1; \
	VEXTRACTF128 $1, Y1, X0; \
	VADDPS       X0, X1, X1; \
	VMOVHLPS     X1, X1, X0; \
	VADDPS       X0, X1, X1; \
	VMOVSHDUP    X1, X0; \
	VADDSS       X0, X1, X1; \
	VCVTSS2SD    X1, X1, X0; \
	VADDSD       X0, X14, X14

// func faTileSoftmaxAVX2(kq *float32, m float32) float64
TEXT ·faTileSoftmaxAVX2(SB), NOSPLIT, $0-24
	MOVQ         kq+0(FP), DI
	VBROADCASTSS m+8(FP), Y15
	VBROADCASTSS faconst<>+192(SB), Y5
	VBROADCASTSS faconst<>+196(SB), Y6
	VBROADCASTSS faconst<>+200(SB), Y7
	VBROADCASTSS faconst<>+204(SB), Y8
	VBROADCASTSS faconst<>+208(SB), Y9
	VBROADCASTSS faconst<>+212(SB), Y10
	VBROADCASTSS faconst<>+216(SB), Y11
	VBROADCASTSS faconst<>+220(SB), Y12
	VBROADCASTSS faconst<>+224(SB), Y13
	VXORPS       Y14, Y14, Y14
	EXPF(0)
	EXPF(32)
	SUM16(0)
	EXPF(64)
	EXPF(96)
	SUM16(64)
	EXPF(128)
	EXPF(160)
	SUM16(128)
	EXPF(192)
	EXPF(224)
	SUM16(192)
	VMOVSD       X14, ret+16(FP)
	VZEROUPPER
	RET

// func faTilePVAVX2(acc, p, vt *float32, stride, nk, dim int, ms float32)
// For 64 columns at a time: acc = acc*ms, then acc = p[j]*vt[j*stride:] +
// acc for j < nk in order.
TEXT ·faTilePVAVX2(SB), NOSPLIT, $0-52
	MOVQ         acc+0(FP), DI
	MOVQ         p+8(FP), SI
	MOVQ         vt+16(FP), DX
	MOVQ         stride+24(FP), R8
	SHLQ         $2, R8 // bytes per value row
	MOVQ         nk+32(FP), CX
	MOVQ         dim+40(FP), R9
	VBROADCASTSS ms+48(FP), Y15

pvcols:
	VMULPS (DI), Y15, Y0
	VMULPS 32(DI), Y15, Y1
	VMULPS 64(DI), Y15, Y2
	VMULPS 96(DI), Y15, Y3
	VMULPS 128(DI), Y15, Y4
	VMULPS 160(DI), Y15, Y5
	VMULPS 192(DI), Y15, Y6
	VMULPS 224(DI), Y15, Y7
	MOVQ   DX, AX
	XORQ   BX, BX

pvkey:
	VBROADCASTSS (SI)(BX*4), Y8
	VFMADD231PS  0(AX), Y8, Y0
	VFMADD231PS  32(AX), Y8, Y1
	VFMADD231PS  64(AX), Y8, Y2
	VFMADD231PS  96(AX), Y8, Y3
	VFMADD231PS  128(AX), Y8, Y4
	VFMADD231PS  160(AX), Y8, Y5
	VFMADD231PS  192(AX), Y8, Y6
	VFMADD231PS  224(AX), Y8, Y7
	ADDQ         R8, AX
	INCQ         BX
	CMPQ         BX, CX
	JLT          pvkey

	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ    $256, DI
	ADDQ    $256, DX
	SUBQ    $64, R9
	JGT     pvcols

	VZEROUPPER
	RET

// Constants of Go's math.Exp on amd64 with FMA (math/exp_amd64.s, the
// avxfma path), as float64.
DATA faexp<>+0(SB)/8, $0x3ff71547652b82fe  // log2(e)
DATA faexp<>+8(SB)/8, $0x3fe62e42fefa3000  // ln 2, upper part
DATA faexp<>+16(SB)/8, $0x3d53de6af278ece6 // ln 2, lower part
DATA faexp<>+24(SB)/8, $0x3fb0000000000000 // 1/16
DATA faexp<>+32(SB)/8, $0x3efa01a01a01a01a // Taylor coefficients 1/8! ... 1/3!
DATA faexp<>+40(SB)/8, $0x3f2a01a01a01a01a
DATA faexp<>+48(SB)/8, $0x3f56c16c16c16c17
DATA faexp<>+56(SB)/8, $0x3f81111111111111
DATA faexp<>+64(SB)/8, $0x3fa5555555555555
DATA faexp<>+72(SB)/8, $0x3fc5555555555555
DATA faexp<>+80(SB)/8, $0x3fe0000000000000 // 1/2
DATA faexp<>+88(SB)/8, $0x3ff0000000000000 // 1
DATA faexp<>+96(SB)/8, $0x4000000000000000 // 2
DATA faexp<>+104(SB)/8, $0x00000000000003ff // exponent bias
DATA faexp<>+112(SB)/4, $0xc2d00000 // -104 (float32): below, the result rounds to 0
DATA faexp<>+116(SB)/4, $0x42b20000 // 89 (float32): above, it rounds to +Inf
GLOBL faexp<>(SB), RODATA|NOPTR, $120

// EXPSETUP loads the constants of EXPSTEP: double-precision vectors in
// C8-C14, the float32 -104 in F15.
#define EXPSETUP(C8, C9, C10, C11, C12, C13, C14, F15) \
	VBROADCASTSD faexp<>+0(SB), C8; \
	VBROADCASTSD faexp<>+8(SB), C9; \
	VBROADCASTSD faexp<>+16(SB), C10; \
	VBROADCASTSD faexp<>+24(SB), C11; \
	VBROADCASTSD faexp<>+96(SB), C12; \
	VBROADCASTSD faexp<>+88(SB), C13; \
	VBROADCASTSD faexp<>+104(SB), C14; \
	VBROADCASTSS faexp<>+112(SB), F15

// EXPSTEP replaces the floats at (DI) (as many as the double-precision
// registers D0-D4 hold; F0, F2, F5-F7 and F15 are the float32 / int32
// registers of half their width) by float32(math.Exp(x)): k = round(x*log2e),
// r = (x - k*ln2)/16 (fused, ln 2 in two parts), p = r*Taylor(r) (fused
// Horner), four times p = p*(p+2) (the last fused with +1), times 2^k; 0
// below -104 and +Inf above 89, where math.Exp takes its other paths.
// CVTDQ and CVTPS are the width's double-to-int32 and double-to-float
// conversions.
#define EXPSTEP(CVTDQ, CVTPS, D0, D1, D3, D4, C8, C9, C10, C11, C12, C13, C14, F0, F2, F5, F6, F7, F15) \
	VCVTPS2PD    (DI), D0; \
	VMULPD       C8, D0, D1; \
	CVTDQ        D1, F2; \
	VCVTDQ2PD    F2, D1; \
	VFNMADD231PD C9, D1, D0; \
	VFNMADD231PD C10, D1, D0; \
	VMULPD       C11, D0, D0; \
	VBROADCASTSD faexp<>+32(SB), D3; \
	VBROADCASTSD faexp<>+40(SB), D4; \
	VFMADD213PD  D4, D0, D3; \
	VBROADCASTSD faexp<>+48(SB), D4; \
	VFMADD213PD  D4, D0, D3; \
	VBROADCASTSD faexp<>+56(SB), D4; \
	VFMADD213PD  D4, D0, D3; \
	VBROADCASTSD faexp<>+64(SB), D4; \
	VFMADD213PD  D4, D0, D3; \
	VBROADCASTSD faexp<>+72(SB), D4; \
	VFMADD213PD  D4, D0, D3; \
	VBROADCASTSD faexp<>+80(SB), D4; \
	VFMADD213PD  D4, D0, D3; \
	VFMADD213PD  C13, D0, D3; \
	VMULPD       D3, D0, D0; \
	VADDPD       C12, D0, D3; \
	VMULPD       D3, D0, D0; \
	VADDPD       C12, D0, D3; \
	VMULPD       D3, D0, D0; \
	VADDPD       C12, D0, D3; \
	VMULPD       D3, D0, D0; \
	VADDPD       C12, D0, D3; \
	VFMADD213PD  C13, D3, D0; \
	VPMOVSXDQ    F2, D4; \
	VPADDQ       C14, D4, D4; \
	VPSLLQ       $52, D4, D4; \
	VMULPD       D4, D0, D0; \
	CVTPS        D0, F0; \
	VMOVUPS      (DI), F5; \
	VCMPPS       $1, F15, F5, F6; \
	VANDNPS      F0, F6, F0; \
	VBROADCASTSS faexp<>+116(SB), F7; \
	VCMPPS       $0x1e, F7, F5, F6; \
	VBROADCASTSS faconst<>+160(SB), F7; \
	VBLENDVPS    F6, F7, F0, F0; \
	VMOVUPS      F0, (DI)

// func faExpAVX2(x *float32, n int)  (n a multiple of 4)
// x[i] = float32(math.Exp(float64(x[i]))), four at a time in double
// precision with math.Exp's own steps (math/exp_amd64.s, the path with FMA).
TEXT ·faExpAVX2(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	EXPSETUP(Y8, Y9, Y10, Y11, Y12, Y13, Y14, X15)
	SHRQ $2, CX
	JEQ  expdone

exploop:
	EXPSTEP(VCVTPD2DQY, VCVTPD2PSY, Y0, Y1, Y3, Y4, Y8, Y9, Y10, Y11, Y12, Y13, Y14, X0, X2, X5, X6, X7, X15)
	ADDQ $16, DI
	DECQ CX
	JNE  exploop

expdone:
	VZEROUPPER
	RET

// AVX-512 versions of faScoresF16AVX2 and faMadF16AVX2 for two query heads
// of one KV head at once: each key or value row is widened once for both,
// and the two heads' accumulators make twice as many independent chains.
// ggml_vec_dot_f16's 16-lane accumulators are one register each here.

// DOT16(Q, A0, A1, A2, A3) accumulates the widened key chunk Z8-Z11 times
// the query at Q into A0-A3.
#define DOT16(Q, A0, A1, A2, A3) \
	VFMADD231PS 0(Q), Z8, A0; \
	VFMADD231PS 64(Q), Z9, A1; \
	VFMADD231PS 128(Q), Z10, A2; \
	VFMADD231PS 192(Q), Z11, A3

// REDUCE2 stores ((Z0+Z2) + (Z1+Z3)) and ((Z4+Z6) + (Z5+Z7)), each
// reduced as _mm512_reduce_add_ps (v[l] += v[l+w] for w = 8, 4, 2, 1),
// times Z15, at (DI) and (R11). The two heads share every shuffle: after
// the first step Z1 holds the first head's 8 partial sums in lanes 0-7 and
// the second's in lanes 8-15.
#define REDUCE2 \
	VADDPS     Z2, Z0, Z0; \
	VADDPS     Z3, Z1, Z1; \
	VADDPS     Z1, Z0, Z0; \
	VADDPS     Z6, Z4, Z4; \
	VADDPS     Z7, Z5, Z5; \
	VADDPS     Z5, Z4, Z4; \
	VSHUFF32X4 $0x44, Z4, Z0, Z1; \
	VSHUFF32X4 $0xee, Z4, Z0, Z2; \
	VADDPS     Z2, Z1, Z1; \
	VSHUFF32X4 $0xb1, Z1, Z1, Z2; \
	VADDPS     Z2, Z1, Z1; \
	VPERMILPS  $0x4e, Z1, Z2; \
	VADDPS     Z2, Z1, Z1; \
	VMOVSHDUP  Z1, Z2; \
	VADDPS     Z2, Z1, Z1; \
	VMULPS     Z15, Z1, Z1; \
	VMOVSS     X1, (DI); \
	VEXTRACTF32X4 $2, Z1, X2; \
	VMOVSS     X2, (R11)

// func faScores2F16AVX512(s0, s1 *float32, k *uint16, stride int, q0, q1 *float32, dim, n int, scale float32)
TEXT ·faScores2F16AVX512(SB), NOSPLIT, $0-68
	MOVQ         s0+0(FP), DI
	MOVQ         s1+8(FP), R11
	MOVQ         k+16(FP), SI
	MOVQ         stride+24(FP), R8
	SHLQ         $1, R8
	MOVQ         q0+32(FP), DX
	MOVQ         q1+40(FP), R12
	MOVQ         dim+48(FP), R9
	MOVQ         n+56(FP), CX
	VBROADCASTSS scale+64(FP), Z15
	TESTQ        CX, CX
	JEQ          s2done

s2key:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	MOVQ   SI, AX
	MOVQ   DX, BX
	MOVQ   R12, R13
	MOVQ   R9, R10

s2step:
	VCVTPH2PS 0(AX), Z8
	VCVTPH2PS 32(AX), Z9
	VCVTPH2PS 64(AX), Z10
	VCVTPH2PS 96(AX), Z11
	DOT16(BX, Z0, Z1, Z2, Z3)
	DOT16(R13, Z4, Z5, Z6, Z7)
	ADDQ      $128, AX
	ADDQ      $256, BX
	ADDQ      $256, R13
	SUBQ      $64, R10
	JNE       s2step

	REDUCE2
	ADDQ R8, SI
	ADDQ $4, DI
	ADDQ $4, R11
	DECQ CX
	JNE  s2key

s2done:
	VZEROUPPER
	RET

// ROUND16Z(Z, Y) rounds the 16 floats of Z to F16 and back.
#define ROUND16Z(Z, Y) \
	VCVTPS2PH $0, Z, Y; \
	VCVTPH2PS Y, Z

// MAD2(V, Z0, Z1) is ggml_vec_mad_f16 of the widened values V for both
// heads: Z0 = f16(V*Z12 + Z0), Z1 = f16(V*Z13 + Z1).
#define MAD2(V, Z0, Z1) \
	VFMADD231PS Z12, V, Z0; \
	VFMADD231PS Z13, V, Z1; \
	ROUND16Z(Z0, Y14); \
	ROUND16Z(Z1, Y15)

// SCALE4(A0, A1, A2, A3) is ggml_vec_scale_f16 by Z12 on 64 values.
#define SCALE4(A0, A1, A2, A3) \
	VMULPS Z12, A0, A0; \
	VMULPS Z12, A1, A1; \
	VMULPS Z12, A2, A2; \
	VMULPS Z12, A3, A3; \
	ROUND16Z(A0, Y14); \
	ROUND16Z(A1, Y15); \
	ROUND16Z(A2, Y14); \
	ROUND16Z(A3, Y15)

// func faMad2F16AVX512(acc0, acc1 *float32, v *uint16, stride int, ms0, vs0, ms1, vs1 *float32, n, dim int)
TEXT ·faMad2F16AVX512(SB), NOSPLIT, $0-80
	MOVQ  acc0+0(FP), DI
	MOVQ  acc1+8(FP), R15
	MOVQ  v+16(FP), SI
	MOVQ  stride+24(FP), R8
	SHLQ  $1, R8
	MOVQ  ms0+32(FP), R11
	MOVQ  vs0+40(FP), R12
	MOVQ  ms1+48(FP), R14
	MOVQ  vs1+56(FP), DX
	MOVQ  n+64(FP), R13
	MOVQ  dim+72(FP), R9
	TESTQ R13, R13
	JEQ   m2done

m2cols:
	VMOVUPS 0(DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	VMOVUPS 0(R15), Z4
	VMOVUPS 64(R15), Z5
	VMOVUPS 128(R15), Z6
	VMOVUPS 192(R15), Z7
	MOVQ    SI, AX
	XORQ    BX, BX

m2key:
	VCVTPH2PS 0(AX), Z8
	VCVTPH2PS 32(AX), Z9
	VCVTPH2PS 64(AX), Z10
	VCVTPH2PS 96(AX), Z11
	VMOVSS    (R11)(BX*4), X12
	VUCOMISS  faconst<>+0(SB), X12
	JNE       m2scale0
	JPS       m2scale0

m2check1:
	VMOVSS   (R14)(BX*4), X12
	VUCOMISS faconst<>+0(SB), X12
	JNE      m2scale1
	JPS      m2scale1

m2add:
	VBROADCASTSS (R12)(BX*4), Z12
	VBROADCASTSS (DX)(BX*4), Z13
	MAD2(Z8, Z0, Z4)
	MAD2(Z9, Z1, Z5)
	MAD2(Z10, Z2, Z6)
	MAD2(Z11, Z3, Z7)
	ADDQ         R8, AX
	INCQ         BX
	CMPQ         BX, R13
	JLT          m2key

	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 0(R15)
	VMOVUPS Z5, 64(R15)
	VMOVUPS Z6, 128(R15)
	VMOVUPS Z7, 192(R15)
	ADDQ    $256, DI
	ADDQ    $256, R15
	ADDQ    $128, SI
	SUBQ    $64, R9
	JGT     m2cols

m2done:
	VZEROUPPER
	RET

m2scale0:
	VBROADCASTSS X12, Z12
	SCALE4(Z0, Z1, Z2, Z3)
	JMP          m2check1

m2scale1:
	VBROADCASTSS X12, Z12
	SCALE4(Z4, Z5, Z6, Z7)
	JMP          m2add

// func faTileMaxAVX2(kq *float32, nk int) float32
// Sets kq[j] = -Inf for j >= nk (masked keys) and returns the maximum of
// kq[:nk], NaN if one of them is NaN (as Go's max).
TEXT ·faTileMaxAVX2(SB), NOSPLIT, $0-20
	MOVQ         kq+0(FP), DI
	MOVQ         nk+8(FP), AX
	VMOVD        AX, X0
	VPBROADCASTD X0, Y15              // nk in every lane
	VBROADCASTSS FA_INF, Y14
	VXORPS       Y13, Y13, Y13
	VSUBPS       Y14, Y13, Y13        // -Inf
	VMOVDQU      faidx<>+0(SB), Y12   // lane indices 0..7
	VPBROADCASTD faidx<>+32(SB), Y11  // 8
	VMOVAPS      Y13, Y10             // running maximum
	VXORPS       Y9, Y9, Y9           // NaN lanes
	MOVQ         $8, CX

tmloop:
	VPCMPGTD  Y12, Y15, Y1   // index < nk
	VMOVUPS   (DI), Y0
	VBLENDVPS Y1, Y0, Y13, Y0 // masked lanes -Inf
	VMOVUPS   Y0, (DI)
	VCMPPS    $3, Y0, Y0, Y2  // unordered
	VORPS     Y2, Y9, Y9
	VMAXPS    Y0, Y10, Y10
	VPADDD    Y11, Y12, Y12
	ADDQ      $32, DI
	DECQ      CX
	JNE       tmloop

	VEXTRACTF128 $1, Y10, X0
	VMAXPS       X0, X10, X10
	VMOVHLPS     X10, X10, X0
	VMAXPS       X0, X10, X10
	VMOVSHDUP    X10, X0
	VMAXSS       X0, X10, X10
	VMOVMSKPS    Y9, AX
	TESTL        AX, AX
	JEQ          tmdone
	VPCMPEQD     X10, X10, X10 // all ones: a NaN

tmdone:
	VMOVSS X10, ret+16(FP)
	VZEROUPPER
	RET

DATA faidx<>+0(SB)/4, $0
DATA faidx<>+4(SB)/4, $1
DATA faidx<>+8(SB)/4, $2
DATA faidx<>+12(SB)/4, $3
DATA faidx<>+16(SB)/4, $4
DATA faidx<>+20(SB)/4, $5
DATA faidx<>+24(SB)/4, $6
DATA faidx<>+28(SB)/4, $7
DATA faidx<>+32(SB)/4, $8
GLOBL faidx<>(SB), RODATA|NOPTR, $36

// func faExpAVX512(x *float32, n int)  (n a multiple of 8)
// faExpAVX2 eight at a time.
TEXT ·faExpAVX512(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	EXPSETUP(Z8, Z9, Z10, Z11, Z12, Z13, Z14, Y15)
	SHRQ $3, CX
	JEQ  exp8done

exp8loop:
	EXPSTEP(VCVTPD2DQ, VCVTPD2PS, Z0, Z1, Z3, Z4, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Y0, Y2, Y5, Y6, Y7, Y15)
	ADDQ $32, DI
	DECQ CX
	JNE  exp8loop

exp8done:
	VZEROUPPER
	RET

// func faSoftmaxArgsAsm(s, ms, vs *float32, n int)
// faSoftmaxArgs: for each score x (running maximum M in X0): a new maximum
// (x > M) stores vs = M - x, ms = 0 and sets M = x; any other stores
// vs = x - M, ms = 1.
TEXT ·faSoftmaxArgsAsm(SB), NOSPLIT, $0-32
	MOVQ  s+0(FP), SI
	MOVQ  ms+8(FP), DI
	MOVQ  vs+16(FP), DX
	MOVQ  n+24(FP), CX
	MOVL  $0xff800000, AX
	VMOVD AX, X0
	MOVL  $0x3f800000, R8
	XORQ  BX, BX
	TESTQ CX, CX
	JEQ   argsdone

argsloop:
	VMOVSS   (SI)(BX*4), X1
	VUCOMISS X0, X1
	JA       argsnew
	VSUBSS   X0, X1, X2
	VMOVSS   X2, (DX)(BX*4)
	MOVL     R8, (DI)(BX*4)
	INCQ     BX
	CMPQ     BX, CX
	JLT      argsloop
	RET

argsnew:
	VSUBSS  X1, X0, X2
	VMOVSS  X2, (DX)(BX*4)
	MOVL    $0, (DI)(BX*4)
	VMOVAPS X1, X0
	INCQ    BX
	CMPQ    BX, CX
	JLT     argsloop

argsdone:
	RET

// SUMSTEP(ms, vs, S, next) is one key of faSoftmaxSum2 for one head:
// S += vs[j] where ms[j] != 0, else ms[j] = vs[j], vs[j] = 1,
// S = S*ms[j] + 1 (X7 holds 1, X6 zero).
#define SUMSTEP(ms, vs, S, newmax, next) \
	VMOVSS   (ms)(BX*4), X2; \
	VUCOMISS X6, X2; \
	JEQ      newmax; \
	VADDSS   (vs)(BX*4), S, S; \
	JMP      next; \
newmax: \
	VMOVSS   (vs)(BX*4), X3; \
	VMOVSS   X3, (ms)(BX*4); \
	VMOVSS   X7, (vs)(BX*4); \
	VMULSS   X3, S, S; \
	VADDSS   X7, S, S; \
next:

// func faSoftmaxSum2Asm(ms0, ms1, vs0, vs1 *float32, n int) (s0, s1 float32)
TEXT ·faSoftmaxSum2Asm(SB), NOSPLIT, $0-48
	MOVQ   ms0+0(FP), R8
	MOVQ   ms1+8(FP), R9
	MOVQ   vs0+16(FP), R10
	MOVQ   vs1+24(FP), R11
	MOVQ   n+32(FP), CX
	VXORPS X0, X0, X0
	VXORPS X1, X1, X1
	VXORPS X6, X6, X6
	MOVL   $0x3f800000, AX
	VMOVD  AX, X7
	XORQ   BX, BX
	TESTQ  CX, CX
	JEQ    sumdone

sumloop:
	SUMSTEP(R8, R10, X0, sumnew0, sumnext0)
	SUMSTEP(R9, R11, X1, sumnew1, sumnext1)
	INCQ BX
	CMPQ BX, CX
	JLT  sumloop

sumdone:
	VMOVSS X0, s0+40(FP)
	VMOVSS X1, s1+44(FP)
	RET

// func faTileScores2AVX512(kq0, kq1, q0, q1, kt *float32, dim int, scale float32)
// faTileScoresAVX2 for two queries at once: kq0 in Z0-Z3, kq1 in Z4-Z7,
// each row of the widened key tile loaded once for both.
TEXT ·faTileScores2AVX512(SB), NOSPLIT, $0-52
	MOVQ         kq0+0(FP), DI
	MOVQ         kq1+8(FP), R11
	MOVQ         q0+16(FP), SI
	MOVQ         q1+24(FP), R12
	MOVQ         kt+32(FP), DX
	MOVQ         dim+40(FP), CX
	VBROADCASTSS scale+48(FP), Z15
	VPXORD       Z0, Z0, Z0
	VPXORD       Z1, Z1, Z1
	VPXORD       Z2, Z2, Z2
	VPXORD       Z3, Z3, Z3
	VPXORD       Z4, Z4, Z4
	VPXORD       Z5, Z5, Z5
	VPXORD       Z6, Z6, Z6
	VPXORD       Z7, Z7, Z7

ts2loop:
	VMOVUPS      0(DX), Z10
	VMOVUPS      64(DX), Z11
	VMOVUPS      128(DX), Z12
	VMOVUPS      192(DX), Z13
	VBROADCASTSS (SI), Z8
	VBROADCASTSS (R12), Z9
	VFMADD231PS  Z10, Z8, Z0
	VFMADD231PS  Z11, Z8, Z1
	VFMADD231PS  Z12, Z8, Z2
	VFMADD231PS  Z13, Z8, Z3
	VFMADD231PS  Z10, Z9, Z4
	VFMADD231PS  Z11, Z9, Z5
	VFMADD231PS  Z12, Z9, Z6
	VFMADD231PS  Z13, Z9, Z7
	ADDQ         $4, SI
	ADDQ         $4, R12
	ADDQ         $256, DX
	DECQ         CX
	JNE          ts2loop

	VMULPS  Z15, Z0, Z0
	VMULPS  Z15, Z1, Z1
	VMULPS  Z15, Z2, Z2
	VMULPS  Z15, Z3, Z3
	VMULPS  Z15, Z4, Z4
	VMULPS  Z15, Z5, Z5
	VMULPS  Z15, Z6, Z6
	VMULPS  Z15, Z7, Z7
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 0(R11)
	VMOVUPS Z5, 64(R11)
	VMOVUPS Z6, 128(R11)
	VMOVUPS Z7, 192(R11)
	VZEROUPPER
	RET
