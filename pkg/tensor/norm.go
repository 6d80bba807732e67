package tensor

import (
	"math"

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
	parallelRows(m, n, func(i int) {
		row := xd[i*n : (i+1)*n]
		o := od[i*n : (i+1)*n]
		o = o[:len(row)]
		mu, rs := moments(row, eps)
		md[i], rd[i] = float32(mu), float32(rs)
		switch {
		case wd != nil && bd != nil:
			wr, br := wd[:len(row)], bd[:len(row)]
			for j, v := range row {
				o[j] = float32((float64(v)-mu)*rs*float64(wr[j]) + float64(br[j]))
			}
		case wd != nil:
			wr := wd[:len(row)]
			for j, v := range row {
				o[j] = float32((float64(v) - mu) * rs * float64(wr[j]))
			}
		case bd != nil:
			br := bd[:len(row)]
			for j, v := range row {
				o[j] = float32((float64(v)-mu)*rs + float64(br[j]))
			}
		default:
			for j, v := range row {
				o[j] = float32((float64(v) - mu) * rs)
			}
		}
	})
	return out, mean, rstd, nil
}

// moments returns the mean and 1/√(biased variance + eps) of row, in float64
// (two passes, so the variance does not cancel; four partial sums per
// pass, so the additions do not wait on each other).
func moments(row []float32, eps float32) (mean, rstd float64) {
	n := len(row)
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= n; j += 4 {
		r := row[j : j+4 : j+4]
		s0 += float64(r[0])
		s1 += float64(r[1])
		s2 += float64(r[2])
		s3 += float64(r[3])
	}
	for ; j < n; j++ {
		s0 += float64(row[j])
	}
	mean = ((s0 + s1) + (s2 + s3)) / float64(n)
	s0, s1, s2, s3 = 0, 0, 0, 0
	j = 0
	for ; j+4 <= n; j += 4 {
		r := row[j : j+4 : j+4]
		d0, d1, d2, d3 := float64(r[0])-mean, float64(r[1])-mean, float64(r[2])-mean, float64(r[3])-mean
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; j < n; j++ {
		d := float64(row[j]) - mean
		s0 += d * d
	}
	return mean, 1 / math.Sqrt(((s0+s1)+(s2+s3))/float64(n)+float64(eps))
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
		layerNormInputGrad(gx.storage.data, gd, xd, md, rd, wd, m, n)
	}
	if want[1] || want[2] {
		sw, sb := make([]float64, n), make([]float64, n)
		for i := 0; i < m; i++ {
			mu, rs := float64(md[i]), float64(rd[i])
			gr, xr := gd[i*n:(i+1)*n], xd[i*n:(i+1)*n]
			xr, sw, sb := xr[:len(gr)], sw[:len(gr)], sb[:len(gr)]
			for j, gv := range gr {
				g := float64(gv)
				sw[j] += g * (float64(xr[j]) - mu) * rs
				sb[j] += g
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

// layerNormInputGrad writes, per row, rstd·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂))
// with ĝ = g·w and x̂ = (x - mean)·rstd.
func layerNormInputGrad(dst, g, x, mean, rstd, w []float32, m, n int) {
	parallelRows(m, n, func(i int) {
		mu, rs := float64(mean[i]), float64(rstd[i])
		gr, xr, o := g[i*n:(i+1)*n], x[i*n:(i+1)*n], dst[i*n:(i+1)*n]
		xr, o = xr[:len(gr)], o[:len(gr)]
		var a0, a1, b0, b1 float64 // Σ ĝ, Σ ĝ·x̂ in two partial sums each
		if w != nil {
			wr := w[:len(gr)]
			j := 0
			for ; j+2 <= len(gr); j += 2 {
				g0, g1 := float64(gr[j])*float64(wr[j]), float64(gr[j+1])*float64(wr[j+1])
				a0 += g0
				a1 += g1
				b0 += g0 * (float64(xr[j]) - mu) * rs
				b1 += g1 * (float64(xr[j+1]) - mu) * rs
			}
			for ; j < len(gr); j++ {
				g0 := float64(gr[j]) * float64(wr[j])
				a0 += g0
				b0 += g0 * (float64(xr[j]) - mu) * rs
			}
			a, b := (a0+a1)/float64(n), (b0+b1)/float64(n)
			for j, gv := range gr {
				o[j] = float32(rs * (float64(gv)*float64(wr[j]) - a - (float64(xr[j])-mu)*rs*b))
			}
			return
		}
		j := 0
		for ; j+2 <= len(gr); j += 2 {
			g0, g1 := float64(gr[j]), float64(gr[j+1])
			a0 += g0
			a1 += g1
			b0 += g0 * (float64(xr[j]) - mu) * rs
			b1 += g1 * (float64(xr[j+1]) - mu) * rs
		}
		for ; j < len(gr); j++ {
			g0 := float64(gr[j])
			a0 += g0
			b0 += g0 * (float64(xr[j]) - mu) * rs
		}
		a, b := (a0+a1)/float64(n), (b0+b1)/float64(n)
		for j, gv := range gr {
			o[j] = float32(rs * (float64(gv) - a - (float64(xr[j])-mu)*rs*b))
		}
	})
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
