package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/nn"
	"github.com/gorch/gorch/pkg/tensor"
)

// adamReference is Adam.Step as a plain scalar loop, one pass per
// quantity, in PyTorch's single-tensor order (grad.add(param, alpha=wd),
// exp_avg.lerp_, exp_avg_sq.mul_().addcmul_(), param.addcdiv_(); ATen's
// add-with-alpha, lerp and addcmul fuse a multiply-add), for one parameter
// at step t.
func adamReference(c AdamConfig, decoupled bool, t int64, p, g, m, v []float32) {
	b2 := float32(c.Beta2)
	w1, w2 := float32(1-c.Beta1), float32(1-c.Beta2)
	eps := float32(c.Eps)
	wd := float32(c.WeightDecay)
	decay := float32(1 - c.LR*c.WeightDecay)
	bc1 := 1 - math.Pow(c.Beta1, float64(t))
	bc2 := 1 - math.Pow(c.Beta2, float64(t))
	stepSize := float32(c.LR / bc1)
	bc2Sqrt := float32(math.Sqrt(bc2))
	switch {
	case c.WeightDecay != 0 && decoupled:
		for i := range p {
			p[i] *= decay
		}
	case c.WeightDecay != 0:
		gd := make([]float32, len(g))
		for i := range gd {
			gd[i] = kernels.FMA32(p[i], wd, g[i])
		}
		g = gd
	}
	if w1 < 0.5 {
		for i, gi := range g {
			m[i] = kernels.FMA32(w1, gi-m[i], m[i])
		}
	} else {
		for i, gi := range g {
			m[i] = kernels.FMA32(w1-1, gi-m[i], gi)
		}
	}
	for i, gi := range g {
		vi := kernels.FMA32(float32(w2*gi), gi, float32(v[i]*b2))
		v[i] = vi
		denom := float32(math.Sqrt(float64(vi)))/bc2Sqrt + eps
		p[i] += float32(-stepSize*m[i]) / denom
	}
}

// sgdReference is SGD.Step as a plain scalar loop in PyTorch's
// single-tensor order (each Tensor.add with alpha a fused multiply-add).
func sgdReference(c SGDConfig, first bool, p, g, buf []float32) {
	lr, wd, mom, damp := float32(c.LR), float32(c.WeightDecay), float32(c.Momentum), float32(1-c.Dampening)
	for i := range p {
		d := g[i]
		if wd != 0 {
			d = kernels.FMA32(p[i], wd, d)
		}
		if c.Momentum != 0 {
			if first {
				buf[i] = d
			} else {
				buf[i] = kernels.FMA32(d, damp, float32(buf[i]*mom))
			}
			if c.Nesterov {
				d = kernels.FMA32(buf[i], mom, d)
			} else {
				d = buf[i]
			}
		}
		p[i] = kernels.FMA32(d, -lr, p[i])
	}
}

var vecSpecials = []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
	math.SmallestNonzeroFloat32, -2e-39, 1e-38, math.MaxFloat32, 1e30, -1e-30}

func randParams(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		if r.IntN(8) == 0 {
			x[i] = vecSpecials[r.IntN(len(vecSpecials))]
		} else {
			x[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(5)-2)))
		}
	}
	return x
}

func sameF32(a, b []float32) (int, bool) {
	for i := range a {
		if !(a[i] != a[i] && b[i] != b[i]) && math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i, false
		}
	}
	return 0, true
}

// TestAdamKernelBitIdentical runs Adam, AdamW and Adam with L2 decay
// (both torch.lerp branches) for several steps on parameters of odd sizes
// with NaN, ±Inf, ±0 and denormals, with the vector path on and off, and
// checks parameters and moments bit for bit against adamReference (NaNs
// compare equal whatever their payload).
func TestAdamKernelBitIdentical(t *testing.T) {
	sizes := []int{1, 7, 8, 9, 31, 33, 100, 1001}
	for _, path := range kernels.VecPaths() {
		prev, _ := kernels.SetVecPath(path)
		for _, tc := range []struct {
			name      string
			cfg       AdamConfig
			decoupled bool
		}{
			{"adam", DefaultAdamConfig(1e-3), false},
			{"adam-l2", AdamConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}, false},
			{"adamw", DefaultAdamWConfig(1e-3), true},
			{"lerp-hi", AdamConfig{LR: 3e-3, Beta1: 0.2, Beta2: 0.5, Eps: 1e-6}, false},
		} {
			t.Run(tc.name+"/"+path, func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(len(tc.name)), 9))
				var params []nn.NamedParameter
				var refP, refM, refV [][]float32
				for k, n := range sizes {
					p := param(t, fmt.Sprintf("p%d", k), randParams(r, n)...)
					params = append(params, p)
					refP = append(refP, append([]float32(nil), p.Param.Data.Data()...))
					refM, refV = append(refM, make([]float32, n)), append(refV, make([]float32, n))
				}
				var o *Adam
				var err error
				if tc.decoupled {
					o, err = NewAdamW(params, tc.cfg)
				} else {
					o, err = NewAdam(params, tc.cfg)
				}
				if err != nil {
					t.Fatal(err)
				}
				for step := int64(1); step <= 4; step++ {
					for k, p := range params {
						g := randParams(r, sizes[k])
						setGrad(t, p, g...)
						adamReference(tc.cfg, tc.decoupled, step, refP[k], g, refM[k], refV[k])
					}
					if err := o.Step(); err != nil {
						t.Fatal(err)
					}
					for k, p := range params {
						st := o.st[p.Name]
						for what, pair := range map[string][2][]float32{"p": {p.Param.Data.Data(), refP[k]}, "m": {st.m, refM[k]}, "v": {st.v, refV[k]}} {
							if i, ok := sameF32(pair[0], pair[1]); !ok {
								t.Fatalf("step %d %s[%d] (n=%d) element %d: got %v (%#x), reference %v (%#x)", step, what, k, sizes[k], i,
									pair[0][i], math.Float32bits(pair[0][i]), pair[1][i], math.Float32bits(pair[1][i]))
							}
						}
					}
				}
			})
		}
		kernels.SetVecPath(prev)
	}
}

// TestSGDKernelBitIdentical is TestAdamKernelBitIdentical for SGD.
func TestSGDKernelBitIdentical(t *testing.T) {
	sizes := []int{1, 7, 9, 33, 1001}
	for _, path := range kernels.VecPaths() {
		prev, _ := kernels.SetVecPath(path)
		for i, cfg := range []SGDConfig{{LR: 0.1}, {LR: 0.1, WeightDecay: 0.01}, {LR: 0.05, Momentum: 0.9},
			{LR: 0.05, Momentum: 0.9, Dampening: 0.3, WeightDecay: 1e-3}, {LR: 0.05, Momentum: 0.8, Nesterov: true, WeightDecay: 1e-4}} {
			t.Run(fmt.Sprintf("%d/%s", i, path), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(i), 10))
				var params []nn.NamedParameter
				var refP, refB [][]float32
				for k, n := range sizes {
					p := param(t, fmt.Sprintf("p%d", k), randParams(r, n)...)
					params = append(params, p)
					refP = append(refP, append([]float32(nil), p.Param.Data.Data()...))
					refB = append(refB, make([]float32, n))
				}
				o, err := NewSGD(params, cfg)
				if err != nil {
					t.Fatal(err)
				}
				for step := 1; step <= 3; step++ {
					for k, p := range params {
						g := randParams(r, sizes[k])
						setGrad(t, p, g...)
						sgdReference(cfg, step == 1, refP[k], g, refB[k])
					}
					if err := o.Step(); err != nil {
						t.Fatal(err)
					}
					for k, p := range params {
						if i, ok := sameF32(p.Param.Data.Data(), refP[k]); !ok {
							t.Fatalf("step %d p[%d] element %d: got %v, reference %v", step, k, i, p.Param.Data.Data()[i], refP[k][i])
						}
						if cfg.Momentum != 0 {
							if i, ok := sameF32(o.buf[p.Name], refB[k]); !ok {
								t.Fatalf("step %d buf[%d] element %d: got %v, reference %v", step, k, i, o.buf[p.Name][i], refB[k][i])
							}
						}
					}
				}
			})
		}
		kernels.SetVecPath(prev)
	}
}

// BenchmarkAdamStep is one Adam step over the 784-256-10 MLP's 203,530
// parameters, on every vector path this machine runs.
func BenchmarkAdamStep(b *testing.B) {
	for _, path := range kernels.VecPaths() {
		prev, _ := kernels.SetVecPath(path)
		b.Run(path, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			var params []nn.NamedParameter
			for k, n := range []int{784 * 256, 256, 256 * 10, 10} {
				x := make([]float32, n)
				g := make([]float32, n)
				for i := range x {
					x[i], g[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
				}
				xt, _ := tensor.New(x)
				gt, _ := tensor.New(g)
				p := nn.NamedParameter{Name: fmt.Sprintf("p%d", k), Param: autograd.Param(xt)}
				p.Param.Grad = gt
				params = append(params, p)
			}
			o, err := NewAdam(params, DefaultAdamConfig(1e-3))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := o.Step(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(203530*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
		})
		kernels.SetVecPath(prev)
	}
}
