package tensor

import "math"

var (
	statSoftmax    = stat("softmax")
	statLogSoftmax = stat("log_softmax")
)

// Softmax returns softmax of t along dim (numerically stable: the maximum
// is subtracted and the sum is accumulated in float64). A 0-d tensor
// accepts dim 0 or -1. NaN in a slice makes the whole slice NaN.
func Softmax(t *Tensor, dim int) (*Tensor, error) { return softmax(statSoftmax, t, dim, false) }

// LogSoftmax returns log(softmax(t)) along dim, computed as
// x - max - log(Σ exp(x - max)).
func LogSoftmax(t *Tensor, dim int) (*Tensor, error) {
	return softmax(statLogSoftmax, t, dim, true)
}

func softmax(s *opStat, t *Tensor, dim int, logOut bool) (*Tensor, error) {
	if err := checkIn(s, t); err != nil {
		return nil, err
	}
	d, err := reduceDim(s.name, dim, len(t.shape))
	if err != nil {
		return nil, err
	}
	out := newContiguous(t.Scope(), t.shape)
	if t.Numel() == 0 {
		return out, nil
	}
	in := asRank1(t)
	ostrFull := contiguousStrides(in.shape)
	r := len(in.shape)
	n, is, os := in.shape[d], in.strides[d], ostrFull[d]
	var oshape, ostr, istr []int
	for i := 0; i < r; i++ {
		if i != d {
			oshape = append(oshape, in.shape[i])
			ostr = append(ostr, ostrFull[i])
			istr = append(istr, in.strides[i])
		}
	}
	src, dst := in.storage.data, out.storage.data
	scratch := make([]float64, n)
	p := newRowPlan(oshape, ostr, istr)
	p.each([]int{0, in.offset}, func(offs []int) {
		o, b := offs[0], offs[1]
		for range p.n {
			if is == 1 && os == 1 {
				softmaxRow(dst[o:o+n], src[b:b+n], scratch, logOut)
			} else {
				softmaxStrided(dst, o, os, src, b, is, scratch, logOut)
			}
			o += p.inner[0]
			b += p.inner[1]
		}
	})
	return out, nil
}

// softmaxRow computes one contiguous slice; len(dst) == len(x) == len(e).
func softmaxRow(dst, x []float32, e []float64, logOut bool) {
	m := x[0]
	for _, v := range x[1:] {
		if v > m || v != v {
			m = v
			if v != v {
				break
			}
		}
	}
	mf := float64(m)
	var sum float64
	if logOut {
		for _, v := range x {
			sum += math.Exp(float64(v) - mf)
		}
		lse := mf + math.Log(sum)
		for i, v := range x {
			dst[i] = float32(float64(v) - lse)
		}
		return
	}
	for i, v := range x {
		ev := math.Exp(float64(v) - mf)
		e[i] = ev
		sum += ev
	}
	inv := 1 / sum
	for i := range dst {
		dst[i] = float32(e[i] * inv)
	}
}

// softmaxStrided computes one slice of len(e) elements at the given strides.
func softmaxStrided(dst []float32, o, os int, src []float32, b, is int, e []float64, logOut bool) {
	n := len(e)
	m := src[b]
	for j, s := 1, b+is; j < n && m == m; j, s = j+1, s+is {
		if v := src[s]; v > m || v != v {
			m = v
		}
	}
	mf := float64(m)
	var sum float64
	for j, s := 0, b; j < n; j, s = j+1, s+is {
		ev := math.Exp(float64(src[s]) - mf)
		e[j] = ev
		sum += ev
	}
	if logOut {
		lse := mf + math.Log(sum)
		for j, s := 0, b; j < n; j, s = j+1, s+is {
			dst[o] = float32(float64(src[s]) - lse)
			o += os
		}
		return
	}
	inv := 1 / sum
	for j := 0; j < n; j++ {
		dst[o] = float32(e[j] * inv)
		o += os
	}
}
