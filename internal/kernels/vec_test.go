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

// vsGo runs f on every vector path this machine runs and calls check with
// each assembly path's result and the pure-Go reference's.
func vsGo[T any](t *testing.T, f func() T, check func(path string, got, want T)) {
	t.Helper()
	res := map[string]T{}
	for _, p := range VecPaths() {
		prev, err := SetVecPath(p)
		if err != nil {
			t.Fatal(err)
		}
		res[p] = f()
		SetVecPath(prev)
	}
	for p, got := range res {
		if p != "go" {
			check(p, got, res["go"])
		}
	}
}

// vsGoSlice is vsGo for results compared element by element.
func vsGoSlice(t *testing.T, what string, n int, f func() []float32) {
	t.Helper()
	vsGo(t, f, func(path string, got, want []float32) { compare(t, what+"/"+path, n, got, want) })
}

func compare(t *testing.T, what string, n int, on, off []float32) {
	t.Helper()
	for i := range on {
		if !sameBits(on[i], off[i]) {
			t.Fatalf("%s n=%d: element %d: got %v (%#x); want %v (%#x) as the Go reference", what, n, i, on[i], math.Float32bits(on[i]), off[i], math.Float32bits(off[i]))
		}
	}
}

func TestVecElementwiseMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range vecLens {
		x, y := randVec(r, n, true), randVec(r, n, true)
		c := float32(r.NormFloat64())
		bin := map[string]func(d, x, y []float32){"add": VecAdd, "sub": VecSub, "mul": VecMul,
			"relu_backward": VecReluBackward}
		for name, f := range bin {
			vsGoSlice(t, name, n, func() []float32 { d := make([]float32, n); f(d, x, y); return d })
		}
		sc := map[string]func(d, x []float32, c float32){"add_scalar": VecAddScalar, "sub_scalar": VecSubScalar,
			"scalar_sub": VecScalarSub, "mul_scalar": VecMulScalar}
		for name, f := range sc {
			for _, c := range []float32{c, 0, float32(math.Inf(1)), float32(math.NaN())} {
				vsGoSlice(t, name, n, func() []float32 { d := make([]float32, n); f(d, x, c); return d })
			}
		}
		vsGoSlice(t, "relu", n, func() []float32 { d := make([]float32, n); VecRelu(d, x); return d })
		// In place (dst aliases x) works too.
		vsGoSlice(t, "mul in place", n, func() []float32 { d := append([]float32(nil), x...); VecMul(d, d, y); return d })
	}
}

func TestVecReluSemantics(t *testing.T) {
	x := []float32{-1, float32(math.Copysign(0, -1)), 0, 2, float32(math.NaN()), float32(math.Inf(-1)), float32(math.Inf(1)), 1e-40, -1e-40}
	x = append(x, x...) // 18: vector body and tail
	for _, path := range VecPaths() {
		prev, _ := SetVecPath(path)
		d := make([]float32, len(x))
		VecRelu(d, x)
		g := make([]float32, len(x))
		for i := range g {
			g[i] = float32(i + 1)
		}
		gb := make([]float32, len(x))
		VecReluBackward(gb, g, x)
		SetVecPath(prev)
		for i, v := range x {
			want := max(v, 0)
			if !sameBits(d[i], want) {
				t.Errorf("%s: relu(%v) = %v; want %v", path, v, d[i], want)
			}
			wantG := float32(0)
			if v > 0 {
				wantG = g[i]
			}
			if math.Float32bits(gb[i]) != math.Float32bits(wantG) {
				t.Errorf("%s: relu_backward(x=%v) = %v; want %v", path, v, gb[i], wantG)
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
		vsGo(t, func() []float64 { a := append([]float64(nil), acc0...); VecAccumF64(a, x); return a }, func(path string, got, want []float64) {
			for i := range got {
				if got[i] != want[i] || got[i] != acc0[i]+float64(x[i]) {
					t.Fatalf("accum/%s n=%d i=%d: got %v; want %v", path, n, i, got[i], want[i])
				}
			}
		})
		vsGo(t, func() float64 { return VecSumF64(x) }, func(path string, got, want float64) {
			if math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("sum/%s n=%d: got %v; want %v as the Go reference", path, n, got, want)
			}
		})
		var ref float64
		for _, v := range x {
			ref += float64(v)
		}
		if s := VecSumF64(x); math.Abs(s-ref) > 1e-9*(1+math.Abs(ref))*float64(n+1) {
			t.Fatalf("sum n=%d: %v, sequential %v", n, s, ref)
		}
	}
}

func TestAdamUpdateMatchesGo(t *testing.T) {
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
			vsGo(t, func() st {
				s := st{append([]float32(nil), p0...), append([]float32(nil), m0...), append([]float32(nil), v0...)}
				AdamUpdate(s.p, g, s.m, s.v, a)
				return s
			}, func(path string, got, want st) {
				compare(t, "adam p/"+path, n, got.p, want.p)
				compare(t, "adam m/"+path, n, got.m, want.m)
				compare(t, "adam v/"+path, n, got.v, want.v)
			})
		}
	}
}

func TestSGDUpdateMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range []SGDParams{{LR: 0.1}, {LR: 0.1, WeightDecay: 1e-2}, {LR: 0.05, Momentum: 0.9, Damp: 1},
		{LR: 0.05, Momentum: 0.9, Damp: 0.5, WeightDecay: 1e-3}, {LR: 0.05, Momentum: 0.9, Damp: 1, Nesterov: true, WeightDecay: 1e-4}} {
		for _, n := range vecLens {
			p0, g, b0 := randVec(r, n, true), randVec(r, n, true), randVec(r, n, true)
			type st struct{ p, b []float32 }
			vsGo(t, func() st {
				x := st{append([]float32(nil), p0...), append([]float32(nil), b0...)}
				SGDUpdate(x.p, g, x.b, s)
				return x
			}, func(path string, got, want st) {
				compare(t, "sgd p/"+path, n, got.p, want.p)
				compare(t, "sgd buf/"+path, n, got.b, want.b)
			})
		}
	}
}

func TestSetVecPath(t *testing.T) {
	for _, p := range VecPaths() {
		prev, err := SetVecPath(p)
		if err != nil || VecPath() != p {
			t.Errorf("SetVecPath(%q) = %v, path now %q", p, err, VecPath())
		}
		SetVecPath(prev)
	}
	if _, err := SetVecPath("sse9"); err == nil {
		t.Error(`SetVecPath("sse9") succeeded`)
	}
}

func BenchmarkVec(b *testing.B) {
	const n = 203_530
	r := rand.New(rand.NewPCG(1, 1))
	x, y, d := randVec(r, n, false), randVec(r, n, false), make([]float32, n)
	m, v := make([]float32, n), make([]float32, n)
	a := AdamParams{W1: 0.1, B2: 0.999, W2: 0.001, Eps: 1e-8, BC2Sqrt: 0.5, StepSize: 1e-3}
	for _, name := range VecPaths() {
		prev, _ := SetVecPath(name)
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
		SetVecPath(prev)
	}
}
