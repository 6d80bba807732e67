package tensor

import (
	"math"
	"math/rand/v2"

	"github.com/gorch/gorch/pkg/errs"
)

// RNG is a seedable random number generator (PCG, 128-bit state) whose
// state can be saved and restored, so a resumed run draws the same numbers
// as an uninterrupted one. An RNG is not safe for concurrent use.
type RNG struct {
	pcg *rand.PCG
}

// NewRNG returns a generator seeded with seed.
func NewRNG(seed uint64) *RNG {
	return &RNG{pcg: rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)}
}

// State returns the generator's state; SetState restores it.
func (r *RNG) State() []byte {
	b, _ := r.pcg.MarshalBinary() // PCG.MarshalBinary never fails
	return b
}

// SetState restores a state returned by State.
func (r *RNG) SetState(state []byte) error {
	if err := r.pcg.UnmarshalBinary(state); err != nil {
		return errs.Wrap(errs.Argument, "RNG.SetState", err, "invalid generator state of %d bytes", len(state))
	}
	return nil
}

// Uint64 returns a uniformly distributed 64-bit value.
func (r *RNG) Uint64() uint64 { return r.pcg.Uint64() }

// Float32 returns a uniform value in [0, 1).
func (r *RNG) Float32() float32 { return float32(r.pcg.Uint64()>>40) / (1 << 24) }

// Float64 returns a uniform value in [0, 1).
func (r *RNG) Float64() float64 { return float64(r.pcg.Uint64()>>11) / (1 << 53) }

// Intn returns a uniform value in [0, n); n must be positive.
func (r *RNG) Intn(n int) int {
	if n <= 0 {
		return 0
	}
	// Lemire's multiply-shift with rejection keeps it unbiased.
	un := uint64(n)
	for {
		v := r.pcg.Uint64()
		hi, lo := mul64(v, un)
		if lo >= un || lo >= (-un)%un {
			return int(hi)
		}
	}
}

func mul64(a, b uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	a0, a1 := a&mask32, a>>32
	b0, b1 := b&mask32, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1, w2 := t&mask32, t>>32
	w1 += a0 * b1
	return a1*b1 + w2 + w1>>32, a * b
}

// Normal2 returns two independent standard normal values (Box-Muller).
func (r *RNG) Normal2() (float64, float64) {
	u1 := 1 - r.Float64() // (0, 1]
	u2 := r.Float64()
	m := math.Sqrt(-2 * math.Log(u1))
	s, c := math.Sincos(2 * math.Pi * u2)
	return m * c, m * s
}

// Perm returns a random permutation of [0, n) (Fisher-Yates).
func (r *RNG) Perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.Intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// Uniform returns a tensor of the given shape with values uniform in [lo, hi).
func Uniform(r *RNG, lo, hi float32, shape ...int) (*Tensor, error) {
	if r == nil {
		return nil, errs.New(errs.Argument, "uniform", "nil RNG")
	}
	if !(lo <= hi) {
		return nil, errs.New(errs.Argument, "uniform", "low %v is greater than high %v", lo, hi)
	}
	if _, err := checkShape("uniform", shape); err != nil {
		return nil, err
	}
	t := newContiguous(nil, shape)
	for i := range t.storage.data {
		t.storage.data[i] = lo + (hi-lo)*r.Float32()
	}
	return t, nil
}

// Rand returns a tensor with values uniform in [0, 1).
func Rand(r *RNG, shape ...int) (*Tensor, error) { return Uniform(r, 0, 1, shape...) }

// Normal returns a tensor of the given shape with normal values.
func Normal(r *RNG, mean, std float32, shape ...int) (*Tensor, error) {
	if r == nil {
		return nil, errs.New(errs.Argument, "normal", "nil RNG")
	}
	if !(std >= 0) {
		return nil, errs.New(errs.Argument, "normal", "standard deviation %v is negative", std)
	}
	if _, err := checkShape("normal", shape); err != nil {
		return nil, err
	}
	t := newContiguous(nil, shape)
	d := t.storage.data
	for i := 0; i < len(d); i += 2 {
		a, b := r.Normal2()
		d[i] = mean + std*float32(a)
		if i+1 < len(d) {
			d[i+1] = mean + std*float32(b)
		}
	}
	return t, nil
}

// Randn returns a tensor of standard normal values.
func Randn(r *RNG, shape ...int) (*Tensor, error) { return Normal(r, 0, 1, shape...) }

// Bernoulli returns a tensor of the given shape whose elements are 1 with
// probability p and 0 otherwise.
func Bernoulli(r *RNG, p float32, shape ...int) (*Tensor, error) {
	if r == nil {
		return nil, errs.New(errs.Argument, "bernoulli", "nil RNG")
	}
	if !(p >= 0 && p <= 1) {
		return nil, errs.New(errs.Argument, "bernoulli", "probability %v is outside [0, 1]", p)
	}
	if _, err := checkShape("bernoulli", shape); err != nil {
		return nil, err
	}
	t := newContiguous(nil, shape)
	for i := range t.storage.data {
		if r.Float32() < p {
			t.storage.data[i] = 1
		}
	}
	return t, nil
}
