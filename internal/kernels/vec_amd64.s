// Elementwise and optimizer kernels, AVX2 (no FMA: every multiply and add is
// rounded separately, so results match the scalar Go code bit for bit).
// Hand-written; see vec.go for the Go reference of each function.

#include "textflag.h"

// func vaddAVX2(d, x, y *float32, n int)
// d[i] = x[i] + y[i]; n is a multiple of 8.
TEXT ·vaddAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VADDPS 0(DX), Y0, Y0
	VADDPS 32(DX), Y1, Y1
	VADDPS 64(DX), Y2, Y2
	VADDPS 96(DX), Y3, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DX
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT done
	VMOVUPS (SI), Y0
	VADDPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
done:
	VZEROUPPER
	RET

// func vsubAVX2(d, x, y *float32, n int)
// d[i] = x[i] - y[i]; n is a multiple of 8.
TEXT ·vsubAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VSUBPS 0(DX), Y0, Y0
	VSUBPS 32(DX), Y1, Y1
	VSUBPS 64(DX), Y2, Y2
	VSUBPS 96(DX), Y3, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DX
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT done
	VMOVUPS (SI), Y0
	VSUBPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
done:
	VZEROUPPER
	RET

// func vmulAVX2(d, x, y *float32, n int)
// d[i] = x[i] * y[i]; n is a multiple of 8.
TEXT ·vmulAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VMULPS 0(DX), Y0, Y0
	VMULPS 32(DX), Y1, Y1
	VMULPS 64(DX), Y2, Y2
	VMULPS 96(DX), Y3, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DX
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT done
	VMOVUPS (SI), Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
done:
	VZEROUPPER
	RET

// func vaddsAVX2(d, x *float32, c float32, n int)
// d[i] = x[i] + c; n is a multiple of 8.
TEXT ·vaddsAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSS c+16(FP), Y8
	MOVQ n+24(FP), CX
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VADDPS Y8, Y0, Y0
	VADDPS Y8, Y1, Y1
	VADDPS Y8, Y2, Y2
	VADDPS Y8, Y3, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT done
	VMOVUPS (SI), Y0
	VADDPS Y8, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
done:
	VZEROUPPER
	RET

// func vsubsAVX2(d, x *float32, c float32, n int)
// d[i] = x[i] - c; n is a multiple of 8.
TEXT ·vsubsAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSS c+16(FP), Y8
	MOVQ n+24(FP), CX
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VSUBPS Y8, Y0, Y0
	VSUBPS Y8, Y1, Y1
	VSUBPS Y8, Y2, Y2
	VSUBPS Y8, Y3, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT done
	VMOVUPS (SI), Y0
	VSUBPS Y8, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
done:
	VZEROUPPER
	RET

// func vrsubsAVX2(d, x *float32, c float32, n int)
// d[i] = c - x[i]; n is a multiple of 8.
TEXT ·vrsubsAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSS c+16(FP), Y8
	MOVQ n+24(FP), CX
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VSUBPS Y0, Y8, Y0
	VSUBPS Y1, Y8, Y1
	VSUBPS Y2, Y8, Y2
	VSUBPS Y3, Y8, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT done
	VMOVUPS (SI), Y0
	VSUBPS Y0, Y8, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
done:
	VZEROUPPER
	RET

// func vmulsAVX2(d, x *float32, c float32, n int)
// d[i] = x[i] * c; n is a multiple of 8.
TEXT ·vmulsAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSS c+16(FP), Y8
	MOVQ n+24(FP), CX
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VMULPS Y8, Y0, Y0
	VMULPS Y8, Y1, Y1
	VMULPS Y8, Y2, Y2
	VMULPS Y8, Y3, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT done
	VMOVUPS (SI), Y0
	VMULPS Y8, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
done:
	VZEROUPPER
	RET

// func vreluAVX2(d, x *float32, n int)
// d[i] = max(x[i], 0) with Go's semantics (NaN stays NaN, -0 becomes +0);
// n is a multiple of 8.
TEXT ·vreluAVX2(SB), NOSPLIT, $0-24
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VXORPS Y8, Y8, Y8
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VCMPPS $6, Y8, Y0, Y4
	VCMPPS $6, Y8, Y1, Y5
	VCMPPS $6, Y8, Y2, Y6
	VCMPPS $6, Y8, Y3, Y7
	VANDPS Y4, Y0, Y0
	VANDPS Y5, Y1, Y1
	VANDPS Y6, Y2, Y2
	VANDPS Y7, Y3, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT done
	VMOVUPS (SI), Y0
	VCMPPS $6, Y8, Y0, Y4
	VANDPS Y4, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
done:
	VZEROUPPER
	RET

// func vreluBackAVX2(d, gr, x *float32, n int)
// d[i] = g[i] where x[i] > 0, else +0; n is a multiple of 8.
TEXT ·vreluBackAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	VXORPS Y8, Y8, Y8
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS 0(DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS 64(DX), Y2
	VMOVUPS 96(DX), Y3
	VCMPPS $0x1e, Y8, Y0, Y0
	VCMPPS $0x1e, Y8, Y1, Y1
	VCMPPS $0x1e, Y8, Y2, Y2
	VCMPPS $0x1e, Y8, Y3, Y3
	VANDPS 0(SI), Y0, Y0
	VANDPS 32(SI), Y1, Y1
	VANDPS 64(SI), Y2, Y2
	VANDPS 96(SI), Y3, Y3
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DX
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT done
	VMOVUPS (DX), Y0
	VCMPPS $0x1e, Y8, Y0, Y0
	VANDPS (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
done:
	VZEROUPPER
	RET

// func vaccF64AVX2(acc *float64, x *float32, n int)
// acc[i] += float64(x[i]); n is a multiple of 4.
TEXT ·vaccF64AVX2(SB), NOSPLIT, $0-24
	MOVQ acc+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
loop16:
	CMPQ CX, $16
	JLT loop4
	VCVTPS2PD 0(SI), Y0
	VCVTPS2PD 16(SI), Y1
	VCVTPS2PD 32(SI), Y2
	VCVTPS2PD 48(SI), Y3
	VMOVUPD 0(DI), Y4
	VMOVUPD 32(DI), Y5
	VMOVUPD 64(DI), Y6
	VMOVUPD 96(DI), Y7
	VADDPD Y0, Y4, Y4
	VADDPD Y1, Y5, Y5
	VADDPD Y2, Y6, Y6
	VADDPD Y3, Y7, Y7
	VMOVUPD Y4, 0(DI)
	VMOVUPD Y5, 32(DI)
	VMOVUPD Y6, 64(DI)
	VMOVUPD Y7, 96(DI)
	ADDQ $64, SI
	ADDQ $128, DI
	SUBQ $16, CX
	JMP loop16
loop4:
	CMPQ CX, $4
	JLT done
	VCVTPS2PD (SI), Y0
	VMOVUPD (DI), Y4
	VADDPD Y0, Y4, Y4
	VMOVUPD Y4, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $4, CX
	JMP loop4
done:
	VZEROUPPER
	RET

// func vsumF64AVX2(x *float32, n int, lanes *[16]float64)
// lanes[4k+l] += Σ_j float64(x[16j+4k+l]); n is a multiple of 16.
TEXT ·vsumF64AVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ lanes+16(FP), DI
	VMOVUPD 0(DI), Y0
	VMOVUPD 32(DI), Y1
	VMOVUPD 64(DI), Y2
	VMOVUPD 96(DI), Y3
loop16:
	CMPQ CX, $16
	JLT done
	VCVTPS2PD 0(SI), Y4
	VCVTPS2PD 16(SI), Y5
	VCVTPS2PD 32(SI), Y6
	VCVTPS2PD 48(SI), Y7
	VADDPD Y4, Y0, Y0
	VADDPD Y5, Y1, Y1
	VADDPD Y6, Y2, Y2
	VADDPD Y7, Y3, Y3
	ADDQ $64, SI
	SUBQ $16, CX
	JMP loop16
done:
	VMOVUPD Y0, 0(DI)
	VMOVUPD Y1, 32(DI)
	VMOVUPD Y2, 64(DI)
	VMOVUPD Y3, 96(DI)
	VZEROUPPER
	RET

// func adamAVX2(p, gr, m, v *float32, n, hi int, w1, b2, w2, eps, bc2, negStep float32)
// One Adam step over n elements (a multiple of 8), exactly as adamGo:
//
//	m = m + w1·(g-m)  (hi == 0)   or   m = g - (g-m)·w1  (hi != 0; w1 holds 1-β₁'s complement)
//	v = v·b2 + (w2·g)·g
//	p = p + negStep·(m / (√v/bc2 + eps))
//
// Every operation is separately rounded (no FMA).
TEXT ·adamAVX2(SB), NOSPLIT, $0-72
	MOVQ p+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ hi+40(FP), BX
	VBROADCASTSS w1+48(FP), Y8
	VBROADCASTSS b2+52(FP), Y9
	VBROADCASTSS w2+56(FP), Y10
	VBROADCASTSS eps+60(FP), Y11
	VBROADCASTSS bc2+64(FP), Y12
	VBROADCASTSS negStep+68(FP), Y13
	SHLQ $2, CX
	XORQ AX, AX
loop:
	CMPQ AX, CX
	JGE done
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS (R8)(AX*1), Y1
	VSUBPS Y1, Y0, Y2
	TESTQ BX, BX
	JNZ hi
	VMULPS Y2, Y8, Y2
	VADDPS Y2, Y1, Y1
	JMP mdone
hi:
	VMULPS Y8, Y2, Y2
	VSUBPS Y2, Y0, Y1
mdone:
	VMOVUPS Y1, (R8)(AX*1)
	VMOVUPS (R9)(AX*1), Y3
	VMULPS Y9, Y3, Y3
	VMULPS Y0, Y10, Y4
	VMULPS Y0, Y4, Y4
	VADDPS Y4, Y3, Y3
	VMOVUPS Y3, (R9)(AX*1)
	VSQRTPS Y3, Y5
	VDIVPS Y12, Y5, Y5
	VADDPS Y11, Y5, Y5
	VDIVPS Y5, Y1, Y6
	VMULPS Y6, Y13, Y6
	VMOVUPS (DI)(AX*1), Y7
	VADDPS Y6, Y7, Y7
	VMOVUPS Y7, (DI)(AX*1)
	ADDQ $32, AX
	JMP loop
done:
	VZEROUPPER
	RET

// func sgdAVX2(p, gr, buf *float32, n, flags int, wd, mom, damp, negLR float32)
// One SGD step over n elements (a multiple of 8), exactly as sgdGo with
// flags sgdWD, sgdMomentum, sgdNesterov:
//
//	d = g (+ wd·p)
//	buf = buf·mom + damp·d;  d = d + mom·buf (nesterov) or buf
//	p = p + negLR·d
TEXT ·sgdAVX2(SB), NOSPLIT, $0-56
	MOVQ p+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ buf+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ flags+32(FP), BX
	VBROADCASTSS wd+40(FP), Y8
	VBROADCASTSS mom+44(FP), Y9
	VBROADCASTSS damp+48(FP), Y10
	VBROADCASTSS negLR+52(FP), Y11
	SHLQ $2, CX
	XORQ AX, AX
loop:
	CMPQ AX, CX
	JGE done
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS (DI)(AX*1), Y7
	TESTQ $1, BX
	JZ nowd
	VMULPS Y7, Y8, Y1
	VADDPS Y1, Y0, Y0
nowd:
	TESTQ $2, BX
	JZ nomom
	VMOVUPS (R8)(AX*1), Y2
	VMULPS Y9, Y2, Y2
	VMULPS Y0, Y10, Y3
	VADDPS Y3, Y2, Y2
	VMOVUPS Y2, (R8)(AX*1)
	TESTQ $4, BX
	JZ plain
	VMULPS Y2, Y9, Y3
	VADDPS Y3, Y0, Y0
	JMP nomom
plain:
	VMOVUPS Y2, Y0
nomom:
	VMULPS Y0, Y11, Y0
	VADDPS Y0, Y7, Y7
	VMOVUPS Y7, (DI)(AX*1)
	ADDQ $32, AX
	JMP loop
done:
	VZEROUPPER
	RET
