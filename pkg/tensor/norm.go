package tensor

import (
	"math"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

var (
	statLayerNorm         = stat("layer_norm")
	statLayerNormBackward = stat("layer_norm_backward")
)

// layerNormRows checks that normalized is a trailing part of x's shape and
// returns the number of rows M and the row length N, and the shape of the
// per-row statistics (x's shape with the normalized dims set to 1).
func layerNormRows(op string, x *Tensor, normalized []int) (m, n int, statShape []int, err error) {
	r, k := len(x.shape), len(normalized)
	if k == 0 || k > r {
		return 0, 0, nil, errs.New(errs.Shape, op, "normalized shape %v does not fit input of shape %v", normalized, x.shape)
	}
	if !EqualShape(x.shape[r-k:], normalized) {
		return 0, 0, nil, errs.New(errs.Shape, op, "normalized shape %v does not match the trailing dimensions of input shape %v", normalized, x.shape)
	}
	m, n = 1, 1
	statShape = append([]int(nil), x.shape...)
	for i := range x.shape {
		if i < r-k {
			m *= x.shape[i]
		} else {
			n *= x.shape[i]
			statShape[i] = 1
		}
	}
	return m, n, statShape, nil
}

// affineValues returns the elements of an optional weight or bias, checking
// that it has the normalized shape; nil stays nil.
func affineValues(op, what string, t *Tensor, normalized []int) ([]float32, error) {
	if t == nil {
		return nil, nil
	}
	if !EqualShape(t.shape, normalized) {
		return nil, errs.New(errs.Shape, op, "%s of shape %v does not match normalized shape %v", what, t.shape, normalized)
	}
	return t.Data(), nil
}

// LayerNorm normalises x over its trailing dimensions normalized (which must
// equal x's last len(normalized) sizes), as torch.native_layer_norm:
//
//	out = (x - mean) · rstd · w + b,  rstd = 1/√(var + eps)
//
// with the biased variance. w and b (of shape normalized) may be nil. It
// also returns mean and rstd, of x's shape with the normalized dimensions
// set to 1, which LayerNormBackward takes. Statistics are accumulated in
// float64.
func LayerNorm(x *Tensor, normalized []int, w, b *Tensor, eps float32) (out, mean, rstd *Tensor, err error) {
	s := statLayerNorm
	if err := checkOptional(s, []*Tensor{x}, w, b); err != nil {
		return nil, nil, nil, err
	}
	if !(eps >= 0) {
		return nil, nil, nil, errs.New(errs.Argument, s.name, "eps %v is negative", eps)
	}
	m, n, statShape, err := layerNormRows(s.name, x, normalized)
	if err != nil {
		return nil, nil, nil, err
	}
	wd, err := affineValues(s.name, "weight", w, normalized)
	if err != nil {
		return nil, nil, nil, err
	}
	bd, err := affineValues(s.name, "bias", b, normalized)
	if err != nil {
		return nil, nil, nil, err
	}
	xd := x.Data() // read in place when contiguous
	sc := scopeOf(x, w, b)
	out, mean, rstd = newUninit(sc, x.shape), newUninit(sc, statShape), newUninit(sc, statShape)
	od, md, rd := out.storage.data, mean.storage.data, rstd.storage.data
	parallelRowRange(m, n, func(lo, hi int) {
		if wd != nil && bd != nil && kernels.LayerNormRows(od[lo*n:hi*n], xd[lo*n:hi*n], wd, bd, n, eps, md[lo:hi], rd[lo:hi]) {
			return
		}
		sq := make([]float32, n)
		for i := lo; i < hi; i++ {
			md[i], rd[i] = layerNormRow(od[i*n:(i+1)*n], xd[i*n:(i+1)*n], sq, wd, bd, eps)
		}
	})
	return out, mean, rstd, nil
}

// layerNormRow writes the normalised row into o, (row - mean)·rstd·w + b
// in float32 as PyTorch's CPU layer norm computes it, and returns mean and
// rstd = 1/√(biased variance + eps). The mean and the variance are sums in
// float64: the variance is Σ(x - mean)² over the centred row (two passes,
// so it does not cancel). sq is scratch of len(row). w and b may be nil.
func layerNormRow(o, row, sq, w, b []float32, eps float32) (mean, rstd float32) {
	n := len(row)
	if n == 0 {
		return float32(math.NaN()), float32(math.NaN())
	}
	mu := float32(kernels.VecSumF64(row) / float64(n))
	kernels.VecSubScalar(o, row, mu)
	kernels.VecMul(sq, o, o)
	rs := float32(1 / math.Sqrt(kernels.VecSumF64(sq)/float64(n)+float64(eps)))
	kernels.VecMulScalar(o, o, rs)
	if w != nil {
		kernels.VecMul(o, o, w)
	}
	if b != nil {
		kernels.VecAdd(o, o, b)
	}
	return mu, rs
}

// LayerNormBackward returns the gradients of LayerNorm with respect to x,
// w and b for the upstream gradient g, as torch.native_layer_norm_backward:
// mean and rstd are LayerNorm's statistics and w its weight (nil for
// none). want selects which of the three are computed, like ATen's
// output_mask; the others are nil.
func LayerNormBackward(g, x *Tensor, normalized []int, mean, rstd, w *Tensor, want [3]bool) (gx, gw, gb *Tensor, err error) {
	s := statLayerNormBackward
	if err := checkOptional(s, []*Tensor{g, x, mean, rstd}, w); err != nil {
		return nil, nil, nil, err
	}
	m, n, _, err := layerNormRows(s.name, x, normalized)
	if err != nil {
		return nil, nil, nil, err
	}
	if !EqualShape(g.shape, x.shape) {
		return nil, nil, nil, errs.New(errs.Shape, s.name, "gradient of shape %v does not match input of shape %v", g.shape, x.shape)
	}
	if mean.Numel() != m || rstd.Numel() != m {
		return nil, nil, nil, errs.New(errs.Shape, s.name, "mean of shape %v and rstd of shape %v need %d elements for input of shape %v", mean.shape, rstd.shape, m, x.shape)
	}
	wd, err := affineValues(s.name, "weight", w, normalized)
	if err != nil {
		return nil, nil, nil, err
	}
	xd, gd, md, rd := x.Data(), g.Data(), mean.Data(), rstd.Data() // read in place when contiguous
	if want[0] {
		gx = newUninit(scopeOf(g, x, w), x.shape)
		gxd := gx.storage.data
		parallelRowRange(m, n, func(lo, hi int) {
			if wd != nil && kernels.LayerNormInputGradRows(gxd[lo*n:hi*n], gd[lo*n:hi*n], xd[lo*n:hi*n], wd, n, md[lo:hi], rd[lo:hi]) {
				return
			}
			gh, xh := make([]float32, n), make([]float32, n)
			for i := lo; i < hi; i++ {
				layerNormInputGradRow(gxd[i*n:(i+1)*n], gd[i*n:(i+1)*n], xd[i*n:(i+1)*n], gh, xh, wd, md[i], rd[i])
			}
		})
	}
	if want[1] || want[2] {
		// Row after row in one goroutine: the sums' order does not depend
		// on the thread count.
		sw, sb, xh := make([]float64, n), make([]float64, n), make([]float32, n)
		done := want[1] && want[2] && kernels.LayerNormWeightGradRows(sw, sb, gd, xd, n, md, rd)
		for i := 0; i < m && !done; i++ {
			gr := gd[i*n : (i+1)*n]
			if want[1] {
				kernels.VecSubScalar(xh, xd[i*n:(i+1)*n], md[i])
				kernels.VecMulScalar(xh, xh, rd[i])
				kernels.VecMul(xh, xh, gr)
				kernels.VecAccumF64(sw, xh)
			}
			if want[2] {
				kernels.VecAccumF64(sb, gr)
			}
		}
		if want[1] {
			gw = fromData(scopeOf(g, x, w), toF32(sw, 1), normalized)
		}
		if want[2] {
			gb = fromData(scopeOf(g, x, w), toF32(sb, 1), normalized)
		}
	}
	return gx, gw, gb, nil
}

// layerNormInputGradRow writes into o the input gradient of one row,
// rstd·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)) with ĝ = g·w and x̂ = (x - mean)·rstd,
// in float32 with the two means summed in float64. gh and xh are scratch
// of len(g); w may be nil.
func layerNormInputGradRow(o, g, x, gh, xh, w []float32, mean, rstd float32) {
	n := len(g)
	if n == 0 {
		return
	}
	if w != nil {
		kernels.VecMul(gh, g, w)
		g = gh
	}
	kernels.VecSubScalar(xh, x, mean)
	kernels.VecMulScalar(xh, xh, rstd)
	a := float32(kernels.VecSumF64(g) / float64(n))
	kernels.VecMul(o, g, xh)
	b := float32(kernels.VecSumF64(o) / float64(n))
	kernels.VecMulScalar(xh, xh, b)
	kernels.VecSub(o, g, xh)
	kernels.VecSubScalar(o, o, a)
	kernels.VecMulScalar(o, o, rstd)
}

// parallelRowRange calls fn for ranges of the m rows of n elements,
// spreading them over goroutines when there is enough work (one fn call
// per range, so fn can hold per-range scratch).
func parallelRowRange(m, n int, fn func(lo, hi int)) {
	w := min(workers(), m)
	if m*n < 1<<15 || w <= 1 {
		fn(0, m)
		return
	}
	per := (m + w - 1) / w
	parallelFor((m+per-1)/per, func(c int) { fn(c*per, min(m, (c+1)*per)) })
}

// parallelRows calls fn for each of m rows of n elements, spreading the
// rows over goroutines when there is enough work. Each row is handled by
// one call, so results do not depend on the split.
func parallelRows(m, n int, fn func(i int)) {
	if m*n < 1<<15 {
		for i := 0; i < m; i++ {
			fn(i)
		}
		return
	}
	parallelFor(m, fn)
}

// checkOptional validates the required inputs (nil is an error) and the
// optional ones that are not nil.
func checkOptional(s *opStat, required []*Tensor, optional ...*Tensor) error {
	ts := append([]*Tensor(nil), required...)
	for _, t := range optional {
		if t != nil {
			ts = append(ts, t)
		}
	}
	return checkIn(s, ts...)
}
