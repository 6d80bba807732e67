package tensor

import (
	"fmt"
	"math"
	"testing"

	"github.com/gorch/gorch/internal/kernels"
)

// attentionRef computes attention and its gradients in float64 from the
// [nb, L, E], [nb, S, E], [nb, S, Ev] and [nb, L, Ev] values of q, k, v
// and g: out, lse, gq, gk, gv in the same layouts.
func attentionRef(q, k, v, g []float64, nb, l, s, e, ev int, causal bool, scale float64) (out, lse, gq, gk, gv []float64) {
	out, lse = make([]float64, nb*l*ev), make([]float64, nb*l)
	gq, gk, gv = make([]float64, nb*l*e), make([]float64, nb*s*e), make([]float64, nb*s*ev)
	for b := range nb {
		for r := range l {
			w := s
			if causal {
				w = min(r+1, s)
			}
			p, m := make([]float64, w), math.Inf(-1)
			for j := range w {
				for x := range e {
					p[j] += q[(b*l+r)*e+x] * k[(b*s+j)*e+x]
				}
				p[j] *= scale
				m = math.Max(m, p[j])
			}
			var sum float64
			for j := range p {
				p[j] = math.Exp(p[j] - m)
				sum += p[j]
			}
			lse[b*l+r] = m + math.Log(sum)
			dp := make([]float64, w)
			var delta float64
			for j := range p {
				p[j] /= sum
				for x := range ev {
					out[(b*l+r)*ev+x] += p[j] * v[(b*s+j)*ev+x]
					dp[j] += g[(b*l+r)*ev+x] * v[(b*s+j)*ev+x]
				}
				delta += p[j] * dp[j]
			}
			for j := range p {
				ds := p[j] * (dp[j] - delta) * scale
				for x := range e {
					gq[(b*l+r)*e+x] += ds * k[(b*s+j)*e+x]
					gk[(b*s+j)*e+x] += ds * q[(b*l+r)*e+x]
				}
				for x := range ev {
					gv[(b*s+j)*ev+x] += p[j] * g[(b*l+r)*ev+x]
				}
			}
		}
	}
	return out, lse, gq, gk, gv
}

func float64s(t *Tensor) []float64 {
	out := make([]float64, 0, t.Numel())
	for _, v := range t.ToSlice() {
		out = append(out, float64(v))
	}
	return out
}

// TestScaledDotProductAttentionStrided checks attention and its backward
// against a float64 reference on the strided operands a transformer passes
// (transposed heads of one packed projection, as torch.compile's graphs
// do), with head sizes and key counts that take the small-matrix kernels
// (multiples of 16) and some that do not, causal and full, more or fewer
// queries than keys, on every vector path of the CPU.
func TestScaledDotProductAttentionStrided(t *testing.T) {
	cases := []struct {
		b, heads, l, s, e int
		opt               AttentionOptions
	}{
		{2, 4, 64, 64, 16, AttentionOptions{Causal: true}},
		{2, 2, 64, 64, 32, AttentionOptions{}},
		{1, 3, 40, 48, 16, AttentionOptions{Causal: true, Scale: 0.2}},
		{1, 2, 70, 32, 16, AttentionOptions{Causal: true}},
		{2, 2, 21, 37, 12, AttentionOptions{Causal: true}},
		{1, 2, 33, 17, 20, AttentionOptions{Scale: -0.4}},
	}
	for _, path := range kernels.VecPaths() {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/b%d_h%d_l%d_s%d_e%d_causal%v_scale%v", path, c.b, c.heads, c.l, c.s, c.e, c.opt.Causal, c.opt.Scale), func(t *testing.T) {
				prev, err := kernels.SetVecPath(path)
				if err != nil {
					t.Fatal(err)
				}
				defer kernels.SetVecPath(prev)
				rng := NewRNG(uint64(c.l*100 + c.e))
				d := c.heads * c.e
				xq, _ := Randn(rng, c.b, c.l, 2*d) // q and the gradient, packed
				kv, _ := Randn(rng, c.b, c.s, 2*d)
				q, g := headsOf(t, xq, 0, d, c.heads), headsOf(t, xq, 1, d, c.heads)
				k, v := headsOf(t, kv, 0, d, c.heads), headsOf(t, kv, 1, d, c.heads)
				out, lse, err := ScaledDotProductAttention(q, k, v, c.opt)
				if err != nil {
					t.Fatal(err)
				}
				gq, gk, gv, err := ScaledDotProductAttentionBackward(g, q, k, v, out, lse, c.opt)
				if err != nil {
					t.Fatal(err)
				}
				scale := float64(c.opt.Scale)
				if scale == 0 {
					scale = 1 / math.Sqrt(float64(c.e))
				}
				nb := c.b * c.heads
				ro, rl, rq, rk, rv := attentionRef(float64s(q), float64s(k), float64s(v), float64s(g), nb, c.l, c.s, c.e, c.e, c.opt.Causal, scale)
				assertClose(t, "out", out, ro, []int{c.b, c.heads, c.l, c.e}, 1e-5)
				assertClose(t, "lse", lse, rl, []int{c.b, c.heads, c.l}, 1e-5)
				assertClose(t, "gq", gq, rq, q.Shape(), 1e-4)
				assertClose(t, "gk", gk, rk, k.Shape(), 1e-4)
				assertClose(t, "gv", gv, rv, v.Shape(), 1e-5)
				// ATen's layout: [B, L, H, E] memory, so transpose(1, 2) is contiguous.
				if tr, _ := out.Transpose(1, 2); !tr.IsContiguous() {
					t.Errorf("out strides %v; want the [B, L, H, E] layout", out.Strides())
				}
				if tr, _ := lse.Transpose(1, 2); !tr.IsContiguous() {
					t.Errorf("lse strides %v; want the [B, L, H] layout", lse.Strides())
				}
			})
		}
	}
}
