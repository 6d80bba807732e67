package tensor

import (
	"fmt"
	"math"
	"testing"
)

// headsOf returns the [B, heads, T, E] view of columns [i·D, (i+1)·D) of
// x [B, T, w].
func headsOf(t *testing.T, x *Tensor, i, d, heads int) *Tensor {
	t.Helper()
	s := x.Shape()
	h, err := x.Narrow(2, i*d, d)
	if err == nil {
		h, err = h.View(s[0], s[1], heads, d/heads)
	}
	if err == nil {
		h, err = h.Transpose(1, 2)
	}
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// sideBySide returns h [B, heads, T, E] as [B, T, heads·E].
func sideBySide(t *testing.T, h *Tensor) []float64 {
	t.Helper()
	tr, err := h.Transpose(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, 0, h.Numel())
	for _, v := range tr.ToSlice() {
		out = append(out, float64(v))
	}
	return out
}

// TestAttentionQKVMatchesScaledDotProductAttention checks the fused op on
// packed projections against ScaledDotProductAttention on views of the
// heads (the composition it replaces in nn.CausalSelfAttention), forward
// and backward, for causal and full attention, head sizes that are not a
// multiple of the vector width and sequence lengths on both sides of it.
func TestAttentionQKVMatchesScaledDotProductAttention(t *testing.T) {
	cases := []struct {
		b, t, d, heads int
		opt            AttentionOptions
	}{
		{1, 1, 4, 2, AttentionOptions{Causal: true}},
		{2, 5, 6, 3, AttentionOptions{Causal: true}},
		{2, 5, 6, 2, AttentionOptions{}},
		{2, 20, 8, 2, AttentionOptions{Causal: true, Scale: 0.3}},
		{3, 37, 12, 4, AttentionOptions{Causal: true}},
		{2, 64, 64, 4, AttentionOptions{Causal: true}},
		{1, 17, 32, 1, AttentionOptions{Scale: -0.5}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("b%d_t%d_d%d_h%d_causal%v_scale%v", c.b, c.t, c.d, c.heads, c.opt.Causal, c.opt.Scale), func(t *testing.T) {
			rng := NewRNG(uint64(c.t*100 + c.d))
			qkv, _ := Randn(rng, c.b, c.t, 3*c.d)
			g, _ := Randn(rng, c.b, c.t, c.d)
			out, probs, err := AttentionQKV(qkv, c.heads, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			q, k, v := headsOf(t, qkv, 0, c.d, c.heads), headsOf(t, qkv, 1, c.d, c.heads), headsOf(t, qkv, 2, c.d, c.heads)
			ref, lse, err := ScaledDotProductAttention(q, k, v, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, "output", out, sideBySide(t, ref), []int{c.b, c.t, c.d}, 1e-6)
			for r, p := range probs.ToSlice() {
				if row := r / c.t % c.t; c.opt.Causal && r%c.t > row && p != 0 {
					t.Fatalf("probability %d (row %d, column %d) = %v; want 0 above the diagonal", r, row, r%c.t, p)
				}
			}
			gx, err := AttentionQKVBackward(g, qkv, probs, c.heads, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			gq, gk, gv, err := ScaledDotProductAttentionBackward(headsOf(t, g, 0, c.d, c.heads), q, k, v, ref, lse, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			// The reference gradient of qkv: dQ, dK and dV side by side per token.
			parts := [3][]float64{sideBySide(t, gq), sideBySide(t, gk), sideBySide(t, gv)}
			want := make([]float64, 0, gx.Numel())
			for tok := range c.b * c.t {
				for _, p := range parts {
					want = append(want, p[tok*c.d:(tok+1)*c.d]...)
				}
			}
			assertClose(t, "gradient", gx, want, qkv.Shape(), 1e-5)
		})
	}
}

// TestAttentionQKVNaN checks that a NaN score makes its rows NaN, as in
// ScaledDotProductAttention, instead of being skipped by the maximum.
func TestAttentionQKVNaN(t *testing.T) {
	qkv, _ := Randn(NewRNG(1), 1, 3, 6)
	qkv.Data()[0] = float32(math.NaN()) // query 0 of head 0
	out, _, err := AttentionQKV(qkv, 1, AttentionOptions{Causal: true})
	if err != nil {
		t.Fatal(err)
	}
	o := out.Data()
	for j := range 2 {
		if !math.IsNaN(float64(o[j])) {
			t.Errorf("output[0, 0, %d] = %v; want NaN", j, o[j])
		}
	}
	if math.IsNaN(float64(o[2])) {
		t.Errorf("output[0, 1, 0] = NaN; want a number (query 1 is not NaN)")
	}
}
