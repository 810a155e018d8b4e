package quant

import "encoding/binary"

// The K-quant reference quantizers (quantize_row_qN_K_ref) and their search
// helpers, ported from ggml-quants.c statement by statement.

// groupMaxEps is GROUP_MAX_EPS: a group whose largest |x| is below it is zero.
const groupMaxEps = 1e-15

// makeQXQuants is make_qx_quants with qw == NULL and rmse_type 1 (weights
// x²), the only form the reference quantizers use (Q6_K). It writes L in
// 0..2*nmax-1 and returns the scale.
func makeQXQuants(x []float32, nmax int, L []int8) float32 {
	amax, xmax := absMax(x)
	if amax < groupMaxEps {
		clear(L[:len(x)])
		return 0
	}
	// quantize returns the sums of w*x*l and w*l*l for one trial scale.
	quantize := func(iscale float32, write bool) (sumlx, suml2 float32) {
		for i, v := range x {
			l := max(-nmax, min(nmax-1, nearestInt(iscale*v)))
			if write {
				L[i] = int8(l + nmax)
			}
			w := v * v
			fl := float32(l)
			sumlx += float32(float32(w*v) * fl)
			suml2 += float32(float32(w*fl) * fl)
		}
		return sumlx, suml2
	}
	sumlx, suml2 := quantize(-float32(nmax)/xmax, true)
	var scale float32
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	best := scale * sumlx
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale := -(float32(nmax) + float32(0.1*float32(is))) / xmax
		sumlx, suml2 := quantize(iscale, false)
		if suml2 > 0 && sumlx*sumlx > best*suml2 {
			quantize(iscale, true)
			scale = sumlx / suml2
			best = scale * sumlx
		}
	}
	return scale
}

// makeQ3Quants is make_q3_quants with do_rmse (Q3_K): an iterative
// refinement of the signed quants, written to L in 0..2*nmax-1.
func makeQ3Quants(x []float32, nmax int, L []int8) float32 {
	n := len(x)
	L = L[:n]
	amax, xmax := absMax(x)
	if amax < groupMaxEps {
		clear(L)
		return 0
	}
	iscale := -float32(nmax) / xmax
	var sumlx, suml2 float32
	for i, v := range x {
		l := max(-nmax, min(nmax-1, nearestInt(iscale*v)))
		L[i] = int8(l)
		w := v * v
		sumlx += float32(float32(w*v) * float32(l))
		suml2 += float32(float32(w*float32(l)) * float32(l))
	}
	for range 5 {
		changed := 0
		for i, v := range x {
			w := v * v
			li := float32(L[i])
			slx := sumlx - float32(float32(w*v)*li)
			if slx <= 0 {
				continue
			}
			sl2 := suml2 - float32(float32(w*li)*li)
			newL := max(-nmax, min(nmax-1, nearestInt(v*sl2/slx)))
			if newL == int(L[i]) {
				continue
			}
			fl := float32(newL)
			slx += float32(float32(w*v) * fl)
			sl2 += float32(float32(w*fl) * fl)
			if sl2 > 0 && slx*slx*suml2 > sumlx*sumlx*sl2 {
				L[i] = int8(newL)
				sumlx, suml2 = slx, sl2
				changed++
			}
		}
		if changed == 0 {
			break
		}
	}
	for i := range L {
		L[i] += int8(nmax)
	}
	if suml2 > 0 {
		return sumlx / suml2
	}
	return 0
}

// makeQKX2Quants is make_qkx2_quants: an affine (scale, min) fit of x to
// 0..nmax under weights w, searching nstep+1 trial scales. It returns the
// scale and the (positive) min to subtract; laux is scratch of len(x).
func makeQKX2Quants(x, weights []float32, nmax int, L, laux []uint8, rmin, rdelta float32, nstep int, useMAD bool) (scale, theMin float32) {
	n := len(x)
	weights, L, laux = weights[:n], L[:n], laux[:n]
	lo, hi := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		clear(L)
		return 0, -lo
	}
	errOf := func(d float32) float32 {
		if useMAD {
			return fabs(d)
		}
		return d * d
	}
	iscale := float32(nmax) / (hi - lo)
	scale = 1 / iscale
	var bestErr float32
	for i, v := range x {
		l := max(0, min(nmax, nearestInt(iscale*(v-lo))))
		L[i] = uint8(l)
		diff := float32(scale*float32(l)) + lo - v
		bestErr += float32(weights[i] * errOf(diff))
	}
	if nstep < 1 {
		return scale, -lo
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + float32(rdelta*float32(is)) + float32(nmax)) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			l := max(0, min(nmax, nearestInt(iscale*(v-lo))))
			laux[i] = uint8(l)
			w := weights[i]
			wl := w * float32(l)
			sumL += wl
			sumL2 += float32(wl * float32(l))
			sumXL += float32(wl * v)
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D <= 0 {
			continue
		}
		thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
		thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
		if thisMin > 0 {
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var curErr float32
		for i, v := range x {
			diff := float32(thisScale*float32(laux[i])) + thisMin - v
			curErr += float32(weights[i] * errOf(diff))
		}
		if curErr < bestErr {
			copy(L, laux)
			bestErr = curErr
			scale = thisScale
			lo = thisMin
		}
	}
	return scale, -lo
}

// putScalesK4 packs eight 6-bit scales and mins as Q4_K/Q5_K store them.
func putScalesK4(s *[kScl]byte, ls, lm *[8]uint8) {
	for j := range 8 {
		if j < 4 {
			s[j] = ls[j]
			s[j+4] = lm[j]
		} else {
			s[j+4] = ls[j]&0x0f | (lm[j]&0x0f)<<4
			s[j-4] |= (ls[j] >> 4) << 6
			s[j] |= (lm[j] >> 4) << 6
		}
	}
}

// quantAffineK is the shared body of quantize_row_q4_K_ref and q5_K_ref for
// one super-block: fit each group of 32, quantize the scales and mins to 6
// bits, then requantize against the stored values. It writes d, dmin and the
// scales into hdr (the first 16 bytes of the block) and the quants into L.
func quantAffineK(x []float32, nmax int, rmin, rdelta float32, nstep int, hdr *[16]byte, L *[qkK]uint8) {
	var (
		weights      [32]float32
		laux         [32]uint8
		scales, mins [8]float32
		maxScale     float32
		maxMin       float32
	)
	for j := range 8 {
		xb := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xb {
			sumX2 += float32(v * v)
		}
		avX := sqrt32(sumX2 / 32)
		for l, v := range xb {
			weights[l] = avX + fabs(v)
		}
		scales[j], mins[j] = makeQKX2Quants(xb, weights[:], nmax, L[32*j:], laux[:], rmin, rdelta, nstep, false)
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	var ls, lm [8]uint8
	for j := range 8 {
		ls[j] = min(63, uint8(nearestInt(invScale*scales[j])))
		lm[j] = min(63, uint8(nearestInt(invMin*mins[j])))
	}
	s := (*[kScl]byte)(hdr[4:])
	clear(s[:])
	putScalesK4(s, &ls, &lm)
	putF16(hdr[0:], maxScale/63)
	putF16(hdr[2:], maxMin/63)
	d, dmin := f16(hdr[0:]), f16(hdr[2:])
	for j := range 8 {
		sc, m := scaleMinK4(j, s)
		dj := d * float32(sc)
		if dj == 0 {
			continue
		}
		dm := dmin * float32(m)
		for ii, v := range x[32*j : 32*j+32] {
			L[32*j+ii] = uint8(max(0, min(nmax, nearestInt((v+dm)/dj))))
		}
	}
}

func quantQ4K(src []float32, dst []byte) {
	var L [qkK]uint8
	for i := range len(src) / qkK {
		b := (*[144]byte)(dst[144*i:])
		quantAffineK(src[qkK*i:], 15, -1, 0.1, 20, (*[16]byte)(b[0:]), &L)
		for j := range 4 {
			q := b[16+32*j : 16+32*j+32]
			for l := range q {
				q[l] = L[64*j+l] | L[64*j+l+32]<<4
			}
		}
	}
}

func quantQ5K(src []float32, dst []byte) {
	var L [qkK]uint8
	for i := range len(src) / qkK {
		b := (*[176]byte)(dst[176*i:])
		quantAffineK(src[qkK*i:], 31, -0.5, 0.1, 15, (*[16]byte)(b[0:]), &L)
		qh := b[16:48]
		clear(qh)
		for j := range 4 {
			ql := b[48+32*j : 48+32*j+32]
			m1, m2 := byte(1)<<(2*j), byte(2)<<(2*j)
			for l := range ql {
				l1, l2 := L[64*j+l], L[64*j+l+32]
				if l1 > 15 {
					l1 -= 16
					qh[l] |= m1
				}
				if l2 > 15 {
					l2 -= 16
					qh[l] |= m2
				}
				ql[l] = l1 | l2<<4
			}
		}
	}
}

// pack2Bits writes qs[j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 |
// L[j+l+96]<<6 for the two halves of a super-block (Q2_K, Q3_K low bits).
func pack2Bits(L []uint8, qs []byte) {
	for j := 0; j < qkK; j += 128 {
		for l := range 32 {
			qs[j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6
		}
	}
}

func quantQ2K(src []float32, dst []byte) {
	const q4scale = 15
	var (
		L            [qkK]uint8
		laux         [16]uint8
		weights      [16]float32
		scales, mins [16]float32
	)
	for i := range len(src) / qkK {
		x := src[qkK*i : qkK*i+qkK]
		b := (*[84]byte)(dst[84*i:])
		sc := b[0:16]
		var maxScale, maxMin float32
		for j := range 16 {
			xb := x[16*j : 16*j+16]
			for l, v := range xb {
				weights[l] = fabs(v)
			}
			scales[j], mins[j] = makeQKX2Quants(xb, weights[:], 3, L[16*j:], laux[:], -0.5, 0.1, 15, true)
			maxScale = max(maxScale, scales[j])
			maxMin = max(maxMin, mins[j])
		}
		if maxScale > 0 {
			iscale := q4scale / maxScale
			for j := range 16 {
				sc[j] = uint8(nearestInt(iscale * scales[j]))
			}
			putF16(b[80:], maxScale/q4scale)
		} else {
			clear(sc)
			putF16(b[80:], 0)
		}
		if maxMin > 0 {
			iscale := q4scale / maxMin
			for j := range 16 {
				sc[j] |= uint8(nearestInt(iscale*mins[j]) << 4)
			}
			putF16(b[82:], maxMin/q4scale)
		} else {
			putF16(b[82:], 0)
		}
		d0, dmin0 := f16(b[80:]), f16(b[82:])
		for j := range 16 {
			d := d0 * float32(sc[j]&0x0f)
			if d == 0 {
				continue
			}
			dm := dmin0 * float32(sc[j]>>4)
			for ii, v := range x[16*j : 16*j+16] {
				L[16*j+ii] = uint8(max(0, min(3, nearestInt((v+dm)/d))))
			}
		}
		pack2Bits(L[:], b[16:80])
	}
}

func quantQ3K(src []float32, dst []byte) {
	var (
		L      [qkK]int8
		scales [16]float32
	)
	for i := range len(src) / qkK {
		x := src[qkK*i : qkK*i+qkK]
		b := (*[110]byte)(dst[110*i:])
		s := b[96:108]
		var maxScale, amax float32
		for j := range 16 {
			scales[j] = makeQ3Quants(x[16*j:16*j+16], 4, L[16*j:])
			if a := fabs(scales[j]); a > amax {
				amax, maxScale = a, scales[j]
			}
		}
		clear(s)
		if maxScale != 0 {
			iscale := -32 / maxScale
			for j := range 16 {
				l := int8(nearestInt(iscale * scales[j]))
				l = max(-32, min(31, l)) + 32
				if j < 8 {
					s[j] = uint8(l) & 0x0f
				} else {
					s[j-8] |= (uint8(l) & 0x0f) << 4
				}
				l >>= 4
				s[j%4+8] |= uint8(l) << (2 * (j / 4))
			}
			putF16(b[108:], 1/iscale)
		} else {
			putF16(b[108:], 0)
		}
		d0 := f16(b[108:])
		for j := range 16 {
			var sc int8
			if j < 8 {
				sc = int8(s[j] & 0x0f)
			} else {
				sc = int8(s[j-8] >> 4)
			}
			sc = (sc | int8((s[8+j%4]>>(2*(j/4)))&3)<<4) - 32
			d := d0 * float32(sc)
			if d == 0 {
				continue
			}
			for ii, v := range x[16*j : 16*j+16] {
				L[16*j+ii] = int8(max(-4, min(3, nearestInt(v/d))) + 4)
			}
		}
		hmask := b[0:32]
		clear(hmask)
		var u [qkK]uint8
		for j, l := range L {
			if l > 3 {
				hmask[j%32] |= 1 << (j / 32)
				l -= 4
			}
			u[j] = uint8(l)
		}
		pack2Bits(u[:], b[32:96])
	}
}

func quantQ6K(src []float32, dst []byte) {
	var (
		L      [qkK]int8
		scales [16]float32
	)
	for i := range len(src) / qkK {
		x := src[qkK*i : qkK*i+qkK]
		b := (*[210]byte)(dst[210*i:])
		var maxScale, maxAbsScale float32
		for ib := range 16 {
			scale := makeQXQuants(x[16*ib:16*ib+16], 32, L[16*ib:])
			scales[ib] = scale
			if a := fabs(scale); a > maxAbsScale {
				maxAbsScale, maxScale = a, scale
			}
		}
		if maxAbsScale < groupMaxEps {
			clear(b[:])
			continue
		}
		iscale := -128 / maxScale
		putF16(b[208:], 1/iscale)
		sc := b[192:208]
		for ib := range 16 {
			sc[ib] = byte(int8(min(127, nearestInt(iscale*scales[ib]))))
		}
		d0 := f16(b[208:])
		for j := range 16 {
			d := d0 * float32(int8(sc[j]))
			if d == 0 {
				continue
			}
			for ii, v := range x[16*j : 16*j+16] {
				L[16*j+ii] = int8(max(-32, min(31, nearestInt(v/d))) + 32)
			}
		}
		for half := range 2 {
			ql := b[64*half : 64*half+64]
			qh := b[128+32*half : 128+32*half+32]
			Lh := L[128*half:]
			for l := range 32 {
				q1, q2, q3, q4 := uint8(Lh[l]), uint8(Lh[l+32]), uint8(Lh[l+64]), uint8(Lh[l+96])
				ql[l] = q1&0x0f | (q3&0x0f)<<4
				ql[l+32] = q2&0x0f | (q4&0x0f)<<4
				qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
			}
		}
	}
}

// bestIndexInt8 is best_index_int8: the index of the code-book entry
// nearest x (val sorted ascending).
func bestIndexInt8(val *[16]int8, x float32) int {
	if x <= float32(val[0]) {
		return 0
	}
	if x >= float32(val[15]) {
		return 15
	}
	ml, mu := 0, 15
	for mu-ml > 1 {
		mav := (ml + mu) / 2
		if x < float32(val[mav]) {
			mu = mav
		} else {
			ml = mav
		}
	}
	if x-float32(val[mu-1]) < float32(val[mu])-x {
		return mu - 1
	}
	return mu
}

// quantIQ4Block is quantize_row_iq4_nl_impl with ntry = 7 and no importance
// weights, as quantize_iq4_nl / quantize_iq4_xs call it. x is one
// super-block of nsub groups of 32; it writes the fp16 scale to dh, the
// sub-block scales (IQ4_XS only, nsub > 1) to scalesH/scalesL and the
// nibbles to q4.
func quantIQ4Block(x []float32, dh []byte, q4 []byte, scalesH []byte, scalesL []byte) {
	const ntry = 7
	vals := &kvaluesIQ4NL
	nsub := len(x) / 32
	var (
		L       [qkK]uint8
		weight  [32]float32
		scales  [8]float32
		maxSc   float32
		amaxSc  float32
		values0 = float32(vals[0])
	)
	clear(q4[:len(x)/2])
	putF16(dh, 0)
	for ib := range nsub {
		xb := x[32*ib : 32*ib+32]
		Lb := L[32*ib : 32*ib+32]
		for j, v := range xb {
			weight[j] = v * v
		}
		amax, xmax := absMax(xb)
		if amax < groupMaxEps {
			scales[ib] = 0
			continue
		}
		d := -xmax / values0
		id := 1 / d
		var sumqx, sumq2 float32
		for j, v := range xb {
			l := bestIndexInt8(vals, id*v)
			Lb[j] = uint8(l)
			q := float32(vals[l])
			w := weight[j]
			sumqx += float32(float32(w*q) * v)
			sumq2 += float32(float32(w*q) * q)
		}
		d = 0
		if sumq2 > 0 {
			d = sumqx / sumq2
		}
		best := d * sumqx
		for itry := -ntry; itry <= ntry; itry++ {
			id = float32(itry+int(vals[0])) / xmax
			sumqx, sumq2 = 0, 0
			for j, v := range xb {
				q := float32(vals[bestIndexInt8(vals, id*v)])
				w := weight[j]
				sumqx += float32(float32(w*q) * v)
				sumq2 += float32(float32(w*q) * q)
			}
			if sumq2 > 0 && sumqx*sumqx > best*sumq2 {
				d = sumqx / sumq2
				best = d * sumqx
			}
		}
		scales[ib] = d
		if a := fabs(d); a > amaxSc {
			amaxSc, maxSc = a, d
		}
	}
	if nsub > 1 {
		var sh uint16
		d := -maxSc / 32
		putF16(dh, d)
		id := inverse(d)
		for ib := range nsub {
			l := max(-32, min(31, nearestInt(id*scales[ib])))
			dl := d * float32(l)
			idl := inverse(dl)
			for j, v := range x[32*ib : 32*ib+32] {
				L[32*ib+j] = uint8(bestIndexInt8(vals, idl*v))
			}
			l += 32
			if ib%2 == 0 {
				scalesL[ib/2] = uint8(l & 0x0f)
			} else {
				scalesL[ib/2] |= uint8(l&0x0f) << 4
			}
			sh |= uint16(l>>4) << (2 * (ib % 8))
		}
		binary.LittleEndian.PutUint16(scalesH, sh)
	} else {
		putF16(dh, scales[0])
		id := inverse(scales[0])
		for j, v := range x[:32] {
			L[j] = uint8(bestIndexInt8(vals, id*v))
		}
	}
	for i := range nsub {
		for j := range 16 {
			q4[16*i+j] = L[32*i+j] | L[32*i+16+j]<<4
		}
	}
}

func quantIQ4NL(src []float32, dst []byte) {
	for i := range len(src) / qk {
		b := dst[18*i : 18*i+18]
		quantIQ4Block(src[qk*i:qk*i+qk], b[0:2], b[2:18], nil, nil)
	}
}

func quantIQ4XS(src []float32, dst []byte) {
	for i := range len(src) / qkK {
		b := dst[136*i : 136*i+136]
		quantIQ4Block(src[qkK*i:qkK*i+qkK], b[0:2], b[8:136], b[2:4], b[4:8])
	}
}
