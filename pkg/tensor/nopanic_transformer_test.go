package tensor

import "math"

// transformerBadCalls lists bad calls of the transformer ops (layer norm,
// attention, embedding, losses), one per line; TestNoPanicWalk merges
// them into its walk.
func transformerBadCalls(v, bad *Tensor) map[string][]badCall {
	var nilT *Tensor
	ln := []int{3}
	x4 := coreMust(Zeros(1, 2, 3, 4))
	k4 := coreMust(Zeros(1, 2, 5, 4))
	idx := coreMust(New([]float32{0, 1}, 2))
	tgt := coreMust(New([]float32{0, 3}, 2))
	one := Scalar(1)
	att := AttentionOptions{Causal: true}
	r := NewRNG(1)
	return map[string][]badCall{
		"LayerNorm": {
			{Op: "layer_norm", Call: func() error { return e3(LayerNorm(nilT, ln, nil, nil, 1e-5)) }},
			{Op: "layer_norm", Call: func() error { return e3(LayerNorm(bad, ln, nil, nil, 1e-5)) }},
			{Op: "layer_norm", Call: func() error { return e3(LayerNorm(v, []int{2}, nil, nil, 1e-5)) }},
			{Op: "layer_norm", Call: func() error { return e3(LayerNorm(v, nil, nil, nil, 1e-5)) }},
			{Op: "layer_norm", Call: func() error { return e3(LayerNorm(v, ln, coreMust(Zeros(2)), nil, 1e-5)) }},
			{Op: "layer_norm", Call: func() error { return e3(LayerNorm(v, ln, nil, bad, 1e-5)) }},
			{Op: "layer_norm", Call: func() error { return e3(LayerNorm(v, ln, nil, nil, -1)) }},
		},
		"LayerNormBackward": {
			{Op: "layer_norm_backward", Call: func() error { return e3(LayerNormBackward(v, v, ln, nilT, v, nil, [3]bool{true})) }},
			{Op: "layer_norm_backward", Call: func() error { return e3(LayerNormBackward(v, v, ln, v, v, nil, [3]bool{true})) }},
			{Op: "layer_norm_backward", Call: func() error {
				return e3(LayerNormBackward(coreMust(Zeros(3, 2)), v, ln, coreMust(Zeros(2, 1)), coreMust(Zeros(2, 1)), nil, [3]bool{true}))
			}},
		},
		"SoftmaxBackward": {
			{Op: "softmax_backward", Call: func() error { return e1(SoftmaxBackward(v, coreMust(Zeros(3, 2)), 0)) }},
			{Op: "softmax_backward", Call: func() error { return e1(SoftmaxBackward(v, v, 2)) }},
			{Op: "softmax_backward", Call: func() error { return e1(SoftmaxBackward(bad, v, 0)) }},
		},
		"LogSoftmaxBackward": {{Op: "log_softmax_backward", Call: func() error { return e1(LogSoftmaxBackward(v, nilT, 0)) }}},
		"MaskedFill": {
			{Op: "masked_fill", Call: func() error { return e1(MaskedFill(v, coreMust(Zeros(2, 2)), 0)) }},
			{Op: "masked_fill", Call: func() error { return e1(MaskedFill(v, coreMust(Zeros(4, 2, 3)), 0)) }},
			{Op: "masked_fill", Call: func() error { return e1(MaskedFill(nilT, v, 0)) }},
		},
		"Tril": {{Op: "tril", Call: func() error { return e1(Tril(coreMust(Zeros(3)), 0)) }}, {Op: "tril", Call: func() error { return e1(Tril(bad, 0)) }}},
		"Triu": {{Op: "triu", Call: func() error { return e1(Triu(one, 0)) }}},
		"ScaledDotProductAttention": {
			{Op: "scaled_dot_product_attention", Call: func() error { return e2(ScaledDotProductAttention(x4, k4, coreMust(Zeros(1, 2, 4, 4)), att)) }},
			{Op: "scaled_dot_product_attention", Call: func() error { return e2(ScaledDotProductAttention(x4, coreMust(Zeros(1, 2, 5, 3)), k4, att)) }},
			{Op: "scaled_dot_product_attention", Call: func() error { return e2(ScaledDotProductAttention(x4, k4, v, att)) }},
			{Op: "scaled_dot_product_attention", Call: func() error { return e2(ScaledDotProductAttention(one, one, one, att)) }},
			{Op: "scaled_dot_product_attention", Call: func() error {
				return e2(ScaledDotProductAttention(x4, k4, k4, AttentionOptions{Scale: float32(math.Inf(1))}))
			}},
			{Op: "scaled_dot_product_attention", Call: func() error { return e2(ScaledDotProductAttention(x4, nilT, k4, att)) }},
		},
		"AttentionQKV": {
			{Op: "attention_qkv", Call: func() error { return e2(AttentionQKV(nilT, 2, att)) }},
			{Op: "attention_qkv", Call: func() error { return e2(AttentionQKV(x4, 2, att)) }},
			{Op: "attention_qkv", Call: func() error { return e2(AttentionQKV(coreMust(Zeros(1, 2, 6)), 4, att)) }},
			{Op: "attention_qkv", Call: func() error { return e2(AttentionQKV(coreMust(Zeros(1, 2, 6)), 0, att)) }},
			{Op: "attention_qkv", Call: func() error {
				return e2(AttentionQKV(coreMust(Zeros(1, 2, 6)), 2, AttentionOptions{Scale: float32(math.NaN())}))
			}},
			{Op: "attention_qkv", Call: func() error { return e2(AttentionQKV(bad, 1, att)) }},
		},
		"AttentionQKVBackward": {
			{Op: "attention_qkv_backward", Call: func() error {
				return e1(AttentionQKVBackward(coreMust(Zeros(1, 2, 3)), coreMust(Zeros(1, 2, 6)), coreMust(Zeros(1, 1, 2, 2)), 1, att))
			}},
			{Op: "attention_qkv_backward", Call: func() error {
				return e1(AttentionQKVBackward(coreMust(Zeros(1, 2, 2)), coreMust(Zeros(1, 2, 6)), coreMust(Zeros(1, 1, 2, 3)), 1, att))
			}},
			{Op: "attention_qkv_backward", Call: func() error {
				return e1(AttentionQKVBackward(coreMust(Zeros(1, 2, 2)), coreMust(Zeros(1, 2, 6)), nilT, 1, att))
			}},
			{Op: "attention_qkv_backward", Call: func() error {
				return e1(AttentionQKVBackward(coreMust(Zeros(1, 2, 2)), coreMust(Zeros(1, 2, 5)), coreMust(Zeros(1, 1, 2, 2)), 1, att))
			}},
		},
		"ScaledDotProductAttentionBackward": {
			{Op: "scaled_dot_product_attention_backward", Call: func() error {
				return e3(ScaledDotProductAttentionBackward(k4, x4, k4, k4, x4, coreMust(Zeros(1, 2, 3)), att))
			}},
			{Op: "scaled_dot_product_attention_backward", Call: func() error {
				return e3(ScaledDotProductAttentionBackward(x4, x4, k4, k4, x4, coreMust(Zeros(1, 2)), att))
			}},
			{Op: "scaled_dot_product_attention_backward", Call: func() error { return e3(ScaledDotProductAttentionBackward(x4, x4, k4, k4, x4, bad, att)) }},
		},
		"GeluBackward": {{Op: "gelu_backward", Call: func() error { return e1(GeluBackward(v, coreMust(Zeros(3, 2)), true)) }}, {Op: "gelu_backward", Call: func() error { return e1(GeluBackward(nilT, v, false)) }}},
		"Dropout": {
			{Op: "dropout", Call: func() error { return e2(Dropout(v, 1.5, r)) }},
			{Op: "dropout", Call: func() error { return e2(Dropout(v, 0.5, nil)) }},
			{Op: "dropout", Call: func() error { return e2(Dropout(bad, 0.5, r)) }},
		},
		"DropoutBackward": {{Op: "dropout_backward", Call: func() error { return e1(DropoutBackward(v, coreMust(Zeros(2)), 2)) }}},
		"Embedding": {
			{Op: "embedding", Call: func() error { return e1(Embedding(coreMust(Zeros(3)), idx)) }},
			{Op: "embedding", Call: func() error { return e1(Embedding(v, tgt)) }},
			{Op: "embedding", Call: func() error { return e1(Embedding(v, coreMust(New([]float32{0.5}, 1)))) }},
			{Op: "embedding", Call: func() error { return e1(Embedding(v, coreMust(Zeros(1, 1, 1, 1, 1, 1, 1, 1)))) }},
			{Op: "embedding", Call: func() error { return e1(Embedding(bad, idx)) }},
		},
		"EmbeddingBackward": {
			{Op: "embedding_backward", Call: func() error { return e1(EmbeddingBackward(v, idx, 2, 2)) }},
			{Op: "embedding_backward", Call: func() error { return e1(EmbeddingBackward(v, idx, 2, -2)) }},
			{Op: "embedding_backward", Call: func() error { return e1(EmbeddingBackward(coreMust(Zeros(3, 3)), idx, 2, -1)) }},
			{Op: "embedding_backward", Call: func() error { return e1(EmbeddingBackward(v, tgt, 2, -1)) }},
			{Op: "embedding_backward", Call: func() error { return e1(EmbeddingBackward(v, idx, -1, -1)) }},
		},
		"NLLLoss": {
			{Op: "nll_loss", Call: func() error { return e2(NLLLoss(v, tgt, nil, ReduceMean, -100)) }},
			{Op: "nll_loss", Call: func() error { return e2(NLLLoss(v, coreMust(Zeros(3)), nil, ReduceMean, -100)) }},
			{Op: "nll_loss", Call: func() error { return e2(NLLLoss(v, idx, coreMust(Zeros(2)), ReduceSum, -100)) }},
			{Op: "nll_loss", Call: func() error { return e2(NLLLoss(v, idx, nil, Reduction(7), -100)) }},
			{Op: "nll_loss", Call: func() error { return e2(NLLLoss(v, idx, bad, ReduceNone, -100)) }},
			{Op: "nll_loss", Call: func() error { return e2(NLLLoss(v, coreMust(New([]float32{0.5, 1}, 2)), nil, ReduceSum, -100)) }},
		},
		"NLLLossBackward": {
			{Op: "nll_loss_backward", Call: func() error { return e1(NLLLossBackward(v, v, idx, nil, ReduceMean, -100, one)) }},
			{Op: "nll_loss_backward", Call: func() error { return e1(NLLLossBackward(one, v, idx, nil, ReduceMean, -100, v)) }},
			{Op: "nll_loss_backward", Call: func() error { return e1(NLLLossBackward(one, v, idx, nil, ReduceMean, -100, nilT)) }},
		},
		"Addmm": {
			{Op: "addmm", Call: func() error { return e1(Addmm(one, v, v, 1, 1)) }},
			{Op: "addmm", Call: func() error { return e1(Addmm(coreMust(Zeros(4)), v, coreMust(Zeros(3, 2)), 1, 1)) }},
			{Op: "addmm", Call: func() error { return e1(Addmm(one, bad, v, 1, 1)) }},
		},
		"Bmm": {
			{Op: "bmm", Call: func() error { return e1(Bmm(v, v)) }},
			{Op: "bmm", Call: func() error { return e1(Bmm(x4, x4)) }},
			{Op: "bmm", Call: func() error { return e1(Bmm(coreMust(Zeros(2, 2, 3)), coreMust(Zeros(3, 3, 2)))) }},
		},
	}
}
