package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// vecLens are the slice lengths the vector tests use: empty, below one
// vector, odd tails around the 8-, 16- and 32-element steps, and larger.
var vecLens = []int{0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257, 1000, 4099}

// specials are mixed into the random inputs.
var specials = []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
	math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1e-39, -3e-39, math.MaxFloat32, -math.MaxFloat32, 1e-20, 1e20}

func randVec(r *rand.Rand, n int, withSpecials bool) []float32 {
	x := make([]float32, n)
	for i := range x {
		switch {
		case withSpecials && r.IntN(6) == 0:
			x[i] = specials[r.IntN(len(specials))]
		default:
			x[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(7)-3)))
		}
	}
	return x
}

// sameBits reports whether a and b are bit-identical, treating any two NaNs
// as equal (the NaN chosen from two NaN operands may differ in payload).
func sameBits(a, b float32) bool {
	if a != a && b != b {
		return true
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func needVec(t *testing.T) {
	if !vecCPU() {
		t.Skip("no AVX2 on this machine: only the Go path exists")
	}
}

// withVec runs f with the vector path on and off and returns both results.
func withVec[T any](f func() T) (on, off T) {
	prev := SetVecAccel(true)
	on = f()
	SetVecAccel(false)
	off = f()
	SetVecAccel(prev)
	return on, off
}

func compare(t *testing.T, what string, n int, on, off []float32) {
	t.Helper()
	for i := range on {
		if !sameBits(on[i], off[i]) {
			t.Fatalf("%s n=%d: element %d: vector %v (%#x), Go %v (%#x)", what, n, i, on[i], math.Float32bits(on[i]), off[i], math.Float32bits(off[i]))
		}
	}
}

func TestVecElementwiseMatchesGo(t *testing.T) {
	needVec(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range vecLens {
		x, y := randVec(r, n, true), randVec(r, n, true)
		c := float32(r.NormFloat64())
		bin := map[string]func(d, x, y []float32){"add": VecAdd, "sub": VecSub, "mul": VecMul,
			"relu_backward": VecReluBackward}
		for name, f := range bin {
			on, off := withVec(func() []float32 { d := make([]float32, n); f(d, x, y); return d })
			compare(t, name, n, on, off)
		}
		sc := map[string]func(d, x []float32, c float32){"add_scalar": VecAddScalar, "sub_scalar": VecSubScalar,
			"scalar_sub": VecScalarSub, "mul_scalar": VecMulScalar}
		for name, f := range sc {
			for _, c := range []float32{c, 0, float32(math.Inf(1)), float32(math.NaN())} {
				on, off := withVec(func() []float32 { d := make([]float32, n); f(d, x, c); return d })
				compare(t, name, n, on, off)
			}
		}
		on, off := withVec(func() []float32 { d := make([]float32, n); VecRelu(d, x); return d })
		compare(t, "relu", n, on, off)
		// In place (dst aliases x) works too.
		on, off = withVec(func() []float32 { d := append([]float32(nil), x...); VecMul(d, d, y); return d })
		compare(t, "mul in place", n, on, off)
	}
}

func TestVecReluSemantics(t *testing.T) {
	x := []float32{-1, float32(math.Copysign(0, -1)), 0, 2, float32(math.NaN()), float32(math.Inf(-1)), float32(math.Inf(1)), 1e-40, -1e-40}
	x = append(x, x...) // 18: vector body and tail
	for _, on := range []bool{true, false} {
		prev := SetVecAccel(on)
		d := make([]float32, len(x))
		VecRelu(d, x)
		g := make([]float32, len(x))
		for i := range g {
			g[i] = float32(i + 1)
		}
		gb := make([]float32, len(x))
		VecReluBackward(gb, g, x)
		SetVecAccel(prev)
		for i, v := range x {
			want := max(v, 0)
			if !sameBits(d[i], want) {
				t.Errorf("vec=%v relu(%v) = %v, want %v", on, v, d[i], want)
			}
			wantG := float32(0)
			if v > 0 {
				wantG = g[i]
			}
			if math.Float32bits(gb[i]) != math.Float32bits(wantG) {
				t.Errorf("vec=%v relu_backward(x=%v) = %v, want %v", on, v, gb[i], wantG)
			}
		}
	}
}

func TestVecSums(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range vecLens {
		x := randVec(r, n, false)
		acc0 := make([]float64, n)
		for i := range acc0 {
			acc0[i] = r.NormFloat64()
		}
		on, off := withVec(func() []float64 { a := append([]float64(nil), acc0...); VecAccumF64(a, x); return a })
		for i := range on {
			if on[i] != off[i] || on[i] != acc0[i]+float64(x[i]) {
				t.Fatalf("accum n=%d i=%d: %v %v", n, i, on[i], off[i])
			}
		}
		s1, s2 := withVec(func() float64 { return VecSumF64(x) })
		if math.Float64bits(s1) != math.Float64bits(s2) {
			t.Fatalf("sum n=%d: vector %v, Go %v", n, s1, s2)
		}
		var ref float64
		for _, v := range x {
			ref += float64(v)
		}
		if math.Abs(s1-ref) > 1e-9*(1+math.Abs(ref))*float64(n+1) {
			t.Fatalf("sum n=%d: %v, sequential %v", n, s1, ref)
		}
	}
}

func TestAdamUpdateMatchesGo(t *testing.T) {
	needVec(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, beta1 := range []float64{0.9, 0.3} { // both torch.lerp branches
		for _, n := range vecLens {
			p0, g := randVec(r, n, true), randVec(r, n, true)
			m0, v0 := randVec(r, n, true), randVec(r, n, true)
			for i := range v0 {
				if r.IntN(2) == 0 {
					v0[i] = float32(math.Abs(float64(v0[i])))
				}
			}
			a := AdamParams{W1: float32(1 - beta1), B2: 0.999, W2: float32(1 - 0.999), Eps: 1e-8,
				BC2Sqrt: float32(math.Sqrt(1 - math.Pow(0.999, 3))), StepSize: float32(1e-3 / (1 - math.Pow(beta1, 3)))}
			type st struct{ p, m, v []float32 }
			on, off := withVec(func() st {
				s := st{append([]float32(nil), p0...), append([]float32(nil), m0...), append([]float32(nil), v0...)}
				AdamUpdate(s.p, g, s.m, s.v, a)
				return s
			})
			compare(t, "adam p", n, on.p, off.p)
			compare(t, "adam m", n, on.m, off.m)
			compare(t, "adam v", n, on.v, off.v)
		}
	}
}

func TestSGDUpdateMatchesGo(t *testing.T) {
	needVec(t)
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range []SGDParams{{LR: 0.1}, {LR: 0.1, WeightDecay: 1e-2}, {LR: 0.05, Momentum: 0.9, Damp: 1},
		{LR: 0.05, Momentum: 0.9, Damp: 0.5, WeightDecay: 1e-3}, {LR: 0.05, Momentum: 0.9, Damp: 1, Nesterov: true, WeightDecay: 1e-4}} {
		for _, n := range vecLens {
			p0, g, b0 := randVec(r, n, true), randVec(r, n, true), randVec(r, n, true)
			type st struct{ p, b []float32 }
			on, off := withVec(func() st {
				x := st{append([]float32(nil), p0...), append([]float32(nil), b0...)}
				SGDUpdate(x.p, g, x.b, s)
				return x
			})
			compare(t, "sgd p", n, on.p, off.p)
			compare(t, "sgd buf", n, on.b, off.b)
		}
	}
}

func TestSetVecAccel(t *testing.T) {
	prev := SetVecAccel(true)
	defer SetVecAccel(prev)
	if VecAccel() != vecCPU() {
		t.Errorf("VecAccel() = %v after SetVecAccel(true), CPU support %v", VecAccel(), vecCPU())
	}
	SetVecAccel(false)
	if VecAccel() {
		t.Error("VecAccel() true after SetVecAccel(false)")
	}
}

func BenchmarkVec(b *testing.B) {
	const n = 203_530
	r := rand.New(rand.NewPCG(1, 1))
	x, y, d := randVec(r, n, false), randVec(r, n, false), make([]float32, n)
	m, v := make([]float32, n), make([]float32, n)
	a := AdamParams{W1: 0.1, B2: 0.999, W2: 0.001, Eps: 1e-8, BC2Sqrt: 0.5, StepSize: 1e-3}
	for _, on := range []bool{false, true} {
		if on && !vecCPU() {
			continue
		}
		name := map[bool]string{false: "go", true: "avx2"}[on]
		prev := SetVecAccel(on)
		b.Run("add/"+name, func(b *testing.B) {
			for b.Loop() {
				VecAdd(d, x, y)
			}
			b.SetBytes(12 * n)
		})
		b.Run("relu_backward/"+name, func(b *testing.B) {
			for b.Loop() {
				VecReluBackward(d, x, y)
			}
			b.SetBytes(12 * n)
		})
		b.Run("sum/"+name, func(b *testing.B) {
			for b.Loop() {
				VecSumF64(x)
			}
			b.SetBytes(4 * n)
		})
		b.Run("adam/"+name, func(b *testing.B) {
			for b.Loop() {
				AdamUpdate(d, x, m, v, a)
			}
			b.SetBytes(28 * n)
		})
		SetVecAccel(prev)
	}
}
