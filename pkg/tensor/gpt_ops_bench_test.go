package tensor

import "testing"

// The GPT benchmark's shapes (batch 16, context 64, d_model 64, 4 heads):
// per-op costs of its layer norms and attention, in an arena as in training.

func BenchmarkLayerNormGPT(b *testing.B) {
	rng := NewRNG(1)
	x, _ := Randn(rng, 16, 64, 64)
	w, _ := Randn(rng, 64)
	bias, _ := Randn(rng, 64)
	g, _ := Randn(rng, 16, 64, 64)
	sc, arena := NewScope(), NewArena()
	sc.Adopt(x, w, bias, g)
	sc.SetArena(arena)
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			arena.Reset()
			if _, _, _, err := LayerNorm(x, []int{64}, w, bias, 1e-5); err != nil {
				b.Fatal(err)
			}
		}
	})
	_, mean, rstd, _ := LayerNorm(x, []int{64}, w, bias, 1e-5)
	sc.Adopt(mean, rstd)
	b.Run("backward", func(b *testing.B) {
		for b.Loop() {
			arena.Reset()
			if _, _, _, err := LayerNormBackward(g, x, []int{64}, mean, rstd, w, [3]bool{true, true, true}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAttentionQKVGPT(b *testing.B) {
	rng := NewRNG(1)
	qkv, _ := Randn(rng, 16, 64, 192)
	g, _ := Randn(rng, 16, 64, 64)
	sc, arena := NewScope(), NewArena()
	sc.Adopt(qkv, g)
	sc.SetArena(arena)
	opt := AttentionOptions{Causal: true}
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			arena.Reset()
			if _, _, err := AttentionQKV(qkv, 4, opt); err != nil {
				b.Fatal(err)
			}
		}
	})
	_, probs, _ := AttentionQKV(qkv, 4, opt)
	sc.Adopt(probs)
	b.Run("backward", func(b *testing.B) {
		for b.Loop() {
			arena.Reset()
			if _, err := AttentionQKVBackward(g, qkv, probs, 4, opt); err != nil {
				b.Fatal(err)
			}
		}
	})
}
