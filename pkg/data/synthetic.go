package data

import (
	"math"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// The synthetic factories below are deterministic for a seed. Classification
// sets interleave their classes (sample i has class i mod classes), so every
// prefix is balanced; X is [n, dim] and Y is [n] holding class indices.

func checkCount(op, name string, v, lo int) error {
	if v < lo {
		return errs.New(errs.Argument, op, "%s must be at least %d, got %d", name, lo, v)
	}
	if v > 1<<28 {
		return errs.New(errs.Argument, op, "%s %d is too large", name, v)
	}
	return nil
}

func checkScale(op, name string, v float64) error {
	if !(v >= 0) || math.IsInf(v, 0) {
		return errs.New(errs.Argument, op, "%s must be finite and non-negative, got %v", name, v)
	}
	return nil
}

func finish(op string, x []float32, xShape []int, y []float32, yShape []int) (*TensorDataset, error) {
	if _, err := checkElems(op, xShape); err != nil {
		return nil, err
	}
	xt, err := wrap(op, x, xShape)
	if err != nil {
		return nil, err
	}
	yt, err := wrap(op, y, yShape)
	if err != nil {
		return nil, err
	}
	return newTensorDataset(xt, yt), nil
}

// checkElems rejects shapes whose element count exceeds what a factory
// will allocate.
func checkElems(op string, shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d != 0 && n > (1<<30)/d {
			return 0, errs.New(errs.Argument, op, "shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// GaussianBlobs returns n points in dim dimensions drawn from classes
// isotropic Gaussians of standard deviation std, whose centres are drawn
// uniformly from [-10, 10]^dim (as scikit-learn's make_blobs). X is
// [n, dim], Y is [n] with class indices.
func GaussianBlobs(n, classes, dim int, std float64, seed uint64) (*TensorDataset, error) {
	const op = "data.GaussianBlobs"
	for _, c := range []struct {
		name  string
		v, lo int
	}{{"n", n, 1}, {"classes", classes, 1}, {"dim", dim, 1}} {
		if err := checkCount(op, c.name, c.v, c.lo); err != nil {
			return nil, err
		}
	}
	if err := checkScale(op, "std", std); err != nil {
		return nil, err
	}
	if _, err := checkElems(op, []int{n, dim}); err != nil {
		return nil, err
	}
	if _, err := checkElems(op, []int{classes, dim}); err != nil {
		return nil, err
	}
	r := tensor.NewRNG(seed)
	centres := make([]float64, classes*dim)
	for i := range centres {
		centres[i] = -10 + 20*r.Float64()
	}
	x := make([]float32, n*dim)
	y := make([]float32, n)
	for i := range n {
		c := i % classes
		y[i] = float32(c)
		row := x[i*dim : (i+1)*dim]
		for j := 0; j < dim; j += 2 {
			a, b := r.Normal2()
			row[j] = float32(centres[c*dim+j] + std*a)
			if j+1 < dim {
				row[j+1] = float32(centres[c*dim+j+1] + std*b)
			}
		}
	}
	return finish(op, x, []int{n, dim}, y, []int{n})
}

// TwoMoons returns n points of two interleaving half circles in 2-D (as
// scikit-learn's make_moons): class 0 on the upper unit half circle, class
// 1 on the lower one shifted to (1, 0.5), with Gaussian noise of standard
// deviation noise added to both coordinates. X is [n, 2], Y is [n].
func TwoMoons(n int, noise float64, seed uint64) (*TensorDataset, error) {
	const op = "data.TwoMoons"
	if err := checkCount(op, "n", n, 2); err != nil {
		return nil, err
	}
	if err := checkScale(op, "noise", noise); err != nil {
		return nil, err
	}
	r := tensor.NewRNG(seed)
	x := make([]float32, n*2)
	y := make([]float32, n)
	for i := range n {
		c := i % 2
		t := math.Pi * r.Float64()
		px, py := math.Cos(t), math.Sin(t)
		if c == 1 {
			px, py = 1-px, 0.5-py
		}
		a, b := r.Normal2()
		x[2*i] = float32(px + noise*a)
		x[2*i+1] = float32(py + noise*b)
		y[i] = float32(c)
	}
	return finish(op, x, []int{n, 2}, y, []int{n})
}

// Spirals returns n points on classes interleaved spiral arms in 2-D: the
// arm of class c starts at the origin and sweeps 4 radians from angle
// 2πc/classes while its radius grows from 0 to 1; Gaussian noise of
// standard deviation noise is added to both coordinates. X is [n, 2], Y is
// [n].
func Spirals(n, classes int, noise float64, seed uint64) (*TensorDataset, error) {
	const op = "data.Spirals"
	if err := checkCount(op, "n", n, 1); err != nil {
		return nil, err
	}
	if err := checkCount(op, "classes", classes, 1); err != nil {
		return nil, err
	}
	if err := checkScale(op, "noise", noise); err != nil {
		return nil, err
	}
	r := tensor.NewRNG(seed)
	perClass := (n + classes - 1) / classes
	x := make([]float32, n*2)
	y := make([]float32, n)
	for i := range n {
		c, j := i%classes, i/classes
		rad := (float64(j) + 0.5) / float64(perClass)
		t := 2*math.Pi*float64(c)/float64(classes) + 4*rad
		s, co := math.Sincos(t)
		a, b := r.Normal2()
		x[2*i] = float32(rad*co + noise*a)
		x[2*i+1] = float32(rad*s + noise*b)
		y[i] = float32(c)
	}
	return finish(op, x, []int{n, 2}, y, []int{n})
}

// LinearRegression returns n samples of a noisy linear model
// y = x·w + bias + ε: x is standard normal in dim dimensions, w is drawn
// standard normal, bias uniform in [-1, 1), and ε is Gaussian of standard
// deviation noise. X is [n, dim] and Y is [n, 1]; the true weights are
// returned as a tensor of shape [dim] along with the bias.
func LinearRegression(n, dim int, noise float64, seed uint64) (ds *TensorDataset, w *tensor.Tensor, bias float32, err error) {
	const op = "data.LinearRegression"
	if err := checkCount(op, "n", n, 1); err != nil {
		return nil, nil, 0, err
	}
	if err := checkCount(op, "dim", dim, 1); err != nil {
		return nil, nil, 0, err
	}
	if err := checkScale(op, "noise", noise); err != nil {
		return nil, nil, 0, err
	}
	if _, err := checkElems(op, []int{n, dim}); err != nil {
		return nil, nil, 0, err
	}
	r := tensor.NewRNG(seed)
	wd := make([]float32, dim)
	for j := range wd {
		a, _ := r.Normal2()
		wd[j] = float32(a)
	}
	b := float32(-1 + 2*r.Float64())
	x := make([]float32, n*dim)
	y := make([]float32, n)
	for i := range n {
		row := x[i*dim : (i+1)*dim]
		for j := 0; j < dim; j += 2 {
			a, c := r.Normal2()
			row[j] = float32(a)
			if j+1 < dim {
				row[j+1] = float32(c)
			}
		}
		s := float64(b)
		for j, v := range row {
			s += float64(v) * float64(wd[j])
		}
		e, _ := r.Normal2()
		y[i] = float32(s + noise*e)
	}
	ds, err = finish(op, x, []int{n, dim}, y, []int{n, 1})
	if err != nil {
		return nil, nil, 0, err
	}
	w, err = wrap(op, wd, []int{dim})
	if err != nil {
		return nil, nil, 0, err
	}
	return ds, w, b, nil
}
