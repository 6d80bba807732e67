package experiment

import (
	"math"
	"strconv"
)

// appendJSONFloat writes v as a JSON value: the bytes of
// strconv.AppendFloat(b, v, 'g', -1, 64) for a finite v, and the strings
// "NaN", "+Inf" and "-Inf" otherwise (JSON has no such numbers; the
// readers take them back).
//
// Values with few decimal digits (a learning rate of 0.001, an accuracy of
// 0.9375, a step, 1234.567) take a fast path that writes the same bytes as
// strconv in a fraction of its time; the rest go to strconv.
func appendJSONFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(v, -1):
		return append(b, `"-Inf"`...)
	}
	if m, k, ok := shortDecimal(math.Abs(v)); ok {
		return appendShortest(b, v < 0, m, k)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// shortDecimal returns a (> 0, finite) as m·10^-k, k ≥ 0, m < 2^50 (its
// trailing zeros are the caller's to strip), if some decimal of at most
// about 15 significant digits parses back to a; otherwise it reports false
// (the caller falls back to strconv).
//
// Why this gives strconv's shortest digits: k is the largest level (power
// of ten) with a·10^k < 2^50. There an ulp of a·10^k is at most 1/8 and
// a's rounding interval (an ulp of a wide) spans at most 1/4 in units of
// 10^-k, so at most one multiple of 10^-k lies in it, and that one is
// m = round(fl(a·10^k)). The decimal m·10^-k parses to a exactly when the
// correctly rounded quotient m/10^k (m and 10^k exact) is a: parsing and
// division round the same rational the same way. A shorter decimal that
// parses to a would be a multiple of 10^-k in the interval too, so it is m
// without its trailing zeros; and if m fails, no decimal with k or fewer
// fractional digits parses to a.
func shortDecimal(a float64) (m uint64, k int, ok bool) {
	// 2^e ≤ a < 2^(e+1), so floor(log10 a) is e10 or e10+1.
	e := int(math.Float64bits(a)>>52&0x7ff) - 1023
	e10 := (e * 78913) >> 18 // floor(e·log10(2)), exact for |e| < 1700
	k = min(max(14-e10, 0), len(pow10)-1)
	t := a * pow10[k]
	if !(t < 1<<50) {
		if k == 0 {
			return 0, 0, false
		}
		k--
		t = a * pow10[k]
	}
	r := float64(uint64(t + 0.5)) // t+0.5 is exact below 2^50
	if r == 0 || r/pow10[k] != a {
		return 0, 0, false
	}
	return uint64(r), k, true
}

// appendShortest writes ±m·10^-k (0 < m < 2^50, 0 ≤ k ≤ 22) in
// strconv's 'g' shortest form: %e when the decimal exponent is below -4 or
// at least 6, %f otherwise.
func appendShortest(b []byte, neg bool, m uint64, k int) []byte {
	for m%10000 == 0 {
		m /= 10000
		k -= 4
	}
	for m%10 == 0 {
		m /= 10
		k--
	}
	var db [20]byte // m's digits, right-aligned
	d := db[putDigits(&db, m):]
	nd := len(d)
	dp := nd - k // digits before the decimal point (≤ 0: zeros after it)
	var ob [48]byte
	o := ob[:0]
	if neg {
		o = append(o, '-')
	}
	if exp := dp - 1; exp < -4 || exp >= 6 {
		o = append(o, d[0])
		if nd > 1 {
			o = append(o, '.')
			o = append(o, d[1:]...)
		}
		sign := byte('+')
		if exp < 0 {
			sign, exp = '-', -exp
		}
		o = append(o, 'e', sign, digitPairs[2*exp], digitPairs[2*exp+1]) // exp < 100 here
		return append(b, o...)
	}
	switch {
	case dp >= nd:
		o = append(o, d...)
		o = append(o, "000000"[:dp-nd]...)
	case dp > 0:
		o = append(o, d[:dp]...)
		o = append(o, '.')
		o = append(o, d[dp:]...)
	default:
		o = append(o, "0.0000"[:2-dp]...)
		o = append(o, d...)
	}
	return append(b, o...)
}
