#!/usr/bin/env python3
"""Generates norm_amd64.s: AVX-512 LayerNorm rows (norm.go), 16 lanes at a
time over rows whose length is a multiple of 16. Each kernel performs the
float32 operations of the vector-kernel path in pkg/tensor in the same
order (so it rounds alike), with the float64 sums taken over two 8-lane
accumulators instead of VecSumF64's 16 lanes."""

out = []
w = out.append


def acc_pd(src, lo, hi):
    """Z{lo}, Z{hi} += the float64 values of Z{src}'s low and high halves."""
    w(f"\tVEXTRACTF32X8 $1, Z{src}, Y6")
    w("\tVCVTPS2PD Y6, Z6")
    w(f"\tVCVTPS2PD Y{src}, Z7")
    w(f"\tVADDPD Z7, Z{lo}, Z{lo}")
    w(f"\tVADDPD Z6, Z{hi}, Z{hi}")


def hsum_pd(lo, hi):
    """X{lo} = the sum of Z{lo}'s and Z{hi}'s lanes (Z{hi} is scratch)."""
    w(f"\tVADDPD Z{hi}, Z{lo}, Z{lo}")
    w(f"\tVEXTRACTF64X4 $1, Z{lo}, Y{hi}")
    w(f"\tVADDPD Y{hi}, Y{lo}, Y{lo}")
    w(f"\tVEXTRACTF128 $1, Y{lo}, X{hi}")
    w(f"\tVADDPD X{hi}, X{lo}, X{lo}")
    w(f"\tVPERMILPD $1, X{lo}, X{hi}")
    w(f"\tVADDSD X{hi}, X{lo}, X{lo}")


def zero(*regs):
    for r in regs:
        w(f"\tVXORPD Z{r}, Z{r}, Z{r}")


def loop(name, body):
    w("\tXORQ BX, BX")
    w(f"{name}:")
    w("\tCMPQ BX, CX")
    w(f"\tJGE {name}done")
    body()
    w("\tADDQ $16, BX")
    w(f"\tJMP {name}")
    w(f"{name}done:")


def fwd():
    w("// func layerNormFwdAVX512(o, x, w, b *float32, n int, nf, eps float64, stats *[2]float32)")
    w("// mean = float32(Σx/nf); rstd = float32(1/√(Σ(x-mean)²/nf + eps));")
    w("// o = (x - mean)·rstd·w + b; stats = {mean, rstd}.")
    w("TEXT ·layerNormFwdAVX512(SB), NOSPLIT, $0-64")
    w("\tMOVQ o+0(FP), DI")
    w("\tMOVQ x+8(FP), SI")
    w("\tMOVQ w+16(FP), R8")
    w("\tMOVQ b+24(FP), R9")
    w("\tMOVQ n+32(FP), CX")
    w("\tVMOVSD nf+40(FP), X12")
    w("\tMOVQ stats+56(FP), R10")
    zero(10, 11)

    def s1():
        w("\tVMOVUPS (SI)(BX*4), Z1")
        acc_pd(1, 10, 11)
    loop("sum", s1)
    hsum_pd(10, 11)
    w("\tVDIVSD X12, X10, X10")
    w("\tVCVTSD2SS X10, X10, X13")
    w("\tVMOVSS X13, (R10)")
    w("\tVBROADCASTSS X13, Z13")
    zero(10, 11)

    def s2():
        w("\tVMOVUPS (SI)(BX*4), Z1")
        w("\tVSUBPS Z13, Z1, Z1")
        w("\tVMULPS Z1, Z1, Z1")
        acc_pd(1, 10, 11)
    loop("var", s2)
    hsum_pd(10, 11)
    w("\tVDIVSD X12, X10, X10")
    w("\tVADDSD eps+48(FP), X10, X10")
    w("\tVSQRTSD X10, X10, X10")
    w("\tMOVQ $0x3ff0000000000000, AX")
    w("\tVMOVQ AX, X15")
    w("\tVDIVSD X10, X15, X10")
    w("\tVCVTSD2SS X10, X10, X14")
    w("\tVMOVSS X14, 4(R10)")
    w("\tVBROADCASTSS X14, Z14")

    def s3():
        w("\tVMOVUPS (SI)(BX*4), Z1")
        w("\tVSUBPS Z13, Z1, Z1")
        w("\tVMULPS Z14, Z1, Z1")
        w("\tVMULPS (R8)(BX*4), Z1, Z1")
        w("\tVADDPS (R9)(BX*4), Z1, Z1")
        w("\tVMOVUPS Z1, (DI)(BX*4)")
    loop("out", s3)
    w("\tVZEROUPPER")
    w("\tRET")
    w("")


def ghxh():
    """Z1 = g·w, Z2 = (x - mean)·rstd for the block at BX."""
    w("\tVMOVUPS (SI)(BX*4), Z1")
    w("\tVMULPS (R8)(BX*4), Z1, Z1")
    w("\tVMOVUPS (DX)(BX*4), Z2")
    w("\tVSUBPS Z13, Z2, Z2")
    w("\tVMULPS Z14, Z2, Z2")


def bwd():
    w("// func layerNormBwdAVX512(o, gr, x, w *float32, n int, nf float64, mean, rstd float32)")
    w("// ĝ = g·w, x̂ = (x - mean)·rstd, a = float32(Σĝ/nf), b = float32(Σĝ·x̂/nf);")
    w("// o = ((ĝ - x̂·b) - a)·rstd.")
    w("TEXT ·layerNormBwdAVX512(SB), NOSPLIT, $0-56")
    w("\tMOVQ o+0(FP), DI")
    w("\tMOVQ gr+8(FP), SI")
    w("\tMOVQ x+16(FP), DX")
    w("\tMOVQ w+24(FP), R8")
    w("\tMOVQ n+32(FP), CX")
    w("\tVMOVSD nf+40(FP), X12")
    w("\tVBROADCASTSS mean+48(FP), Z13")
    w("\tVBROADCASTSS rstd+52(FP), Z14")
    zero(10, 11, 8, 9)

    def s1():
        ghxh()
        w("\tVMULPS Z2, Z1, Z3")
        acc_pd(1, 10, 11)
        acc_pd(3, 8, 9)
    loop("sums", s1)
    hsum_pd(10, 11)
    w("\tVDIVSD X12, X10, X10")
    w("\tVCVTSD2SS X10, X10, X10")
    w("\tVBROADCASTSS X10, Z15")
    hsum_pd(8, 9)
    w("\tVDIVSD X12, X8, X8")
    w("\tVCVTSD2SS X8, X8, X8")
    w("\tVBROADCASTSS X8, Z5")

    def s2():
        ghxh()
        w("\tVMULPS Z5, Z2, Z2")
        w("\tVSUBPS Z2, Z1, Z1")
        w("\tVSUBPS Z15, Z1, Z1")
        w("\tVMULPS Z14, Z1, Z1")
        w("\tVMOVUPS Z1, (DI)(BX*4)")
    loop("grad", s2)
    w("\tVZEROUPPER")
    w("\tRET")
    w("")


def wb():
    w("// func layerNormWBAVX512(sw, sb *float64, gr, x *float32, n int, mean, rstd float32)")
    w("// sw += float64((x - mean)·rstd·g), sb += float64(g), element by element.")
    w("TEXT ·layerNormWBAVX512(SB), NOSPLIT, $0-48")
    w("\tMOVQ sw+0(FP), DI")
    w("\tMOVQ sb+8(FP), R9")
    w("\tMOVQ gr+16(FP), SI")
    w("\tMOVQ x+24(FP), DX")
    w("\tMOVQ n+32(FP), CX")
    w("\tVBROADCASTSS mean+40(FP), Z13")
    w("\tVBROADCASTSS rstd+44(FP), Z14")

    def s():
        w("\tVMOVUPS (SI)(BX*4), Z1")
        w("\tVMOVUPS (DX)(BX*4), Z2")
        w("\tVSUBPS Z13, Z2, Z2")
        w("\tVMULPS Z14, Z2, Z2")
        w("\tVMULPS Z1, Z2, Z2")
        for src, base in ((2, "DI"), (1, "R9")):
            w(f"\tVCVTPS2PD Y{src}, Z3")
            w(f"\tVADDPD ({base})(BX*8), Z3, Z3")
            w(f"\tVMOVUPD Z3, ({base})(BX*8)")
            w(f"\tVEXTRACTF32X8 $1, Z{src}, Y4")
            w("\tVCVTPS2PD Y4, Z4")
            w(f"\tVADDPD 64({base})(BX*8), Z4, Z4")
            w(f"\tVMOVUPD Z4, 64({base})(BX*8)")
    loop("acc", s)
    w("\tVZEROUPPER")
    w("\tRET")


IDX = ["BX", "R10", "R11", "R12"]


def row_indices():
    """BX = 0 and R10, R11, R12 = n, 2n, 3n: row r's element j is at
    (base)(IDX[r]*4) while BX = j."""
    w("\tMOVQ CX, R10")
    w("\tLEAQ (CX)(CX*1), R11")
    w("\tLEAQ (CX)(CX*2), R12")
    w("\tXORQ BX, BX")


def loop4(name, body):
    row_indices()
    w(f"{name}:")
    w("\tCMPQ BX, CX")
    w(f"\tJGE {name}done")
    body()
    for r in IDX:
        w(f"\tADDQ $16, {r}")
    w(f"\tJMP {name}")
    w(f"{name}done:")


def hsum_to6(lo, hi):
    """X6 = the sum of Z{lo}'s and Z{hi}'s lanes (Z7 is scratch)."""
    w(f"\tVADDPD Z{hi}, Z{lo}, Z6")
    w("\tVEXTRACTF64X4 $1, Z6, Y7")
    w("\tVADDPD Y7, Y6, Y6")
    w("\tVEXTRACTF128 $1, Y6, X7")
    w("\tVADDPD X7, X6, X6")
    w("\tVPERMILPD $1, X6, X7")
    w("\tVADDSD X7, X6, X6")


def fwd4():
    w("// func layerNormFwd4AVX512(o, x, w, b *float32, n int, nf, eps float64, stats *[8]float32)")
    w("// layerNormFwdAVX512 on 4 consecutive rows of n at once (their dependency")
    w("// chains interleaved); stats = {mean0..3, rstd0..3}.")
    w("TEXT ·layerNormFwd4AVX512(SB), NOSPLIT, $0-64")
    w("\tMOVQ o+0(FP), DI")
    w("\tMOVQ x+8(FP), SI")
    w("\tMOVQ w+16(FP), R8")
    w("\tMOVQ b+24(FP), R9")
    w("\tMOVQ n+32(FP), CX")
    w("\tVMOVSD nf+40(FP), X5")
    w("\tMOVQ stats+56(FP), R13")
    zero(*range(8, 16))

    def s1():
        for r in range(4):
            w(f"\tVMOVUPS (SI)({IDX[r]}*4), Z{r}")
            acc_pd(r, 8 + 2 * r, 9 + 2 * r)
    loop4("sum", s1)
    for r in range(4):
        hsum_to6(8 + 2 * r, 9 + 2 * r)
        w("\tVDIVSD X5, X6, X6")
        w("\tVCVTSD2SS X6, X6, X6")
        w(f"\tVMOVSS X6, {4 * r}(R13)")
        w(f"\tVBROADCASTSS X6, Z{16 + r}")
    zero(*range(8, 16))

    def s2():
        for r in range(4):
            w(f"\tVMOVUPS (SI)({IDX[r]}*4), Z{r}")
            w(f"\tVSUBPS Z{16 + r}, Z{r}, Z{r}")
            w(f"\tVMULPS Z{r}, Z{r}, Z{r}")
            acc_pd(r, 8 + 2 * r, 9 + 2 * r)
    loop4("var", s2)
    w("\tMOVQ $0x3ff0000000000000, AX")
    w("\tVMOVQ AX, X4")
    for r in range(4):
        hsum_to6(8 + 2 * r, 9 + 2 * r)
        w("\tVDIVSD X5, X6, X6")
        w("\tVADDSD eps+48(FP), X6, X6")
        w("\tVSQRTSD X6, X6, X6")
        w("\tVDIVSD X6, X4, X6")
        w("\tVCVTSD2SS X6, X6, X6")
        w(f"\tVMOVSS X6, {16 + 4 * r}(R13)")
        w(f"\tVBROADCASTSS X6, Z{20 + r}")

    def s3():
        for r in range(4):
            w(f"\tVMOVUPS (SI)({IDX[r]}*4), Z{r}")
            w(f"\tVSUBPS Z{16 + r}, Z{r}, Z{r}")
            w(f"\tVMULPS Z{20 + r}, Z{r}, Z{r}")
            w(f"\tVMULPS (R8)(BX*4), Z{r}, Z{r}")
            w(f"\tVADDPS (R9)(BX*4), Z{r}, Z{r}")
            w(f"\tVMOVUPS Z{r}, (DI)({IDX[r]}*4)")
    loop4("out", s3)
    w("\tVZEROUPPER")
    w("\tRET")
    w("")


def stats4(reg):
    for r in range(4):
        w(f"\tVBROADCASTSS {4 * r}({reg}), Z{16 + r}")
        w(f"\tVBROADCASTSS {16 + 4 * r}({reg}), Z{20 + r}")


def bwd4():
    w("// func layerNormBwd4AVX512(o, gr, x, w *float32, n int, nf float64, stats *[8]float32)")
    w("// layerNormBwdAVX512 on 4 consecutive rows of n at once; stats = {mean0..3, rstd0..3}.")
    w("TEXT ·layerNormBwd4AVX512(SB), NOSPLIT, $0-56")
    w("\tMOVQ o+0(FP), DI")
    w("\tMOVQ gr+8(FP), SI")
    w("\tMOVQ x+16(FP), DX")
    w("\tMOVQ w+24(FP), R8")
    w("\tMOVQ n+32(FP), CX")
    w("\tVMOVSD nf+40(FP), X5")
    w("\tMOVQ stats+48(FP), R13")
    stats4("R13")
    zero(*range(8, 16), *range(24, 32))

    def ghxh(r):
        w(f"\tVMOVUPS (SI)({IDX[r]}*4), Z0")
        w("\tVMULPS (R8)(BX*4), Z0, Z0")
        w(f"\tVMOVUPS (DX)({IDX[r]}*4), Z1")
        w(f"\tVSUBPS Z{16 + r}, Z1, Z1")
        w(f"\tVMULPS Z{20 + r}, Z1, Z1")

    def s1():
        for r in range(4):
            ghxh(r)
            w("\tVMULPS Z1, Z0, Z2")
            acc_pd(0, 8 + 2 * r, 9 + 2 * r)
            acc_pd(2, 24 + 2 * r, 25 + 2 * r)
    loop4("sums", s1)
    for r in range(4):  # b = Σĝ·x̂/n into Z24+r, a = Σĝ/n into Z28+r
        hsum_to6(24 + 2 * r, 25 + 2 * r)
        w("\tVDIVSD X5, X6, X6")
        w("\tVCVTSD2SS X6, X6, X6")
        w(f"\tVBROADCASTSS X6, Z{24 + r}")
    for r in range(4):
        hsum_to6(8 + 2 * r, 9 + 2 * r)
        w("\tVDIVSD X5, X6, X6")
        w("\tVCVTSD2SS X6, X6, X6")
        w(f"\tVBROADCASTSS X6, Z{28 + r}")

    def s2():
        for r in range(4):
            ghxh(r)
            w(f"\tVMULPS Z{24 + r}, Z1, Z1")
            w("\tVSUBPS Z1, Z0, Z0")
            w(f"\tVSUBPS Z{28 + r}, Z0, Z0")
            w(f"\tVMULPS Z{20 + r}, Z0, Z0")
            w(f"\tVMOVUPS Z0, (DI)({IDX[r]}*4)")
    loop4("grad", s2)
    w("\tVZEROUPPER")
    w("\tRET")
    w("")


def wb4():
    w("// func layerNormWB4AVX512(sw, sb *float64, gr, x *float32, n int, stats *[8]float32)")
    w("// layerNormWBAVX512 for 4 consecutive rows, added in row order.")
    w("TEXT ·layerNormWB4AVX512(SB), NOSPLIT, $0-48")
    w("\tMOVQ sw+0(FP), DI")
    w("\tMOVQ sb+8(FP), R9")
    w("\tMOVQ gr+16(FP), SI")
    w("\tMOVQ x+24(FP), DX")
    w("\tMOVQ n+32(FP), CX")
    w("\tMOVQ stats+40(FP), R13")
    stats4("R13")

    def s():
        w("\tVMOVUPD (DI)(BX*8), Z8")
        w("\tVMOVUPD 64(DI)(BX*8), Z9")
        w("\tVMOVUPD (R9)(BX*8), Z10")
        w("\tVMOVUPD 64(R9)(BX*8), Z11")
        for r in range(4):
            w(f"\tVMOVUPS (SI)({IDX[r]}*4), Z1")
            w(f"\tVMOVUPS (DX)({IDX[r]}*4), Z2")
            w(f"\tVSUBPS Z{16 + r}, Z2, Z2")
            w(f"\tVMULPS Z{20 + r}, Z2, Z2")
            w("\tVMULPS Z1, Z2, Z2")
            for src, lo, hi in ((2, 8, 9), (1, 10, 11)):
                w(f"\tVCVTPS2PD Y{src}, Z3")
                w(f"\tVADDPD Z3, Z{lo}, Z{lo}")
                w(f"\tVEXTRACTF32X8 $1, Z{src}, Y4")
                w("\tVCVTPS2PD Y4, Z4")
                w(f"\tVADDPD Z4, Z{hi}, Z{hi}")
        w("\tVMOVUPD Z8, (DI)(BX*8)")
        w("\tVMOVUPD Z9, 64(DI)(BX*8)")
        w("\tVMOVUPD Z10, (R9)(BX*8)")
        w("\tVMOVUPD Z11, 64(R9)(BX*8)")
    loop4("acc", s)
    w("\tVZEROUPPER")
    w("\tRET")


def main():
    w("// Code generated by internal/kernels/asmgen/norm.py; DO NOT EDIT.")
    w("")
    w('#include "textflag.h"')
    w("")
    fwd()
    bwd()
    wb()
    w("")
    fwd4()
    bwd4()
    wb4()
    print("\n".join(out))


if __name__ == "__main__":
    main()
