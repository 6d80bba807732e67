package plan

import (
	"math"

	"github.com/gorch/gorch/pkg/tensor"
)

// opSpec is how a plan runs one ATen operator.
type opSpec struct {
	// build decodes the node's arguments (reporting bad ones through
	// a.fail) and returns its kernel.
	build func(a *args) kernel
	// ints are the argument positions that may hold integer or bool
	// tensors (indices, targets, masks); intOuts the same for results.
	ints, intOuts []int
	// anyType marks views and copies, which pass any dtype through.
	anyType bool
	// random marks operators that draw random numbers.
	random bool
}

// res is a kernel's results.
type res = []*tensor.Tensor

func one(t *tensor.Tensor, err error) (res, error) {
	if err != nil {
		return nil, err
	}
	return res{t}, nil
}

func two(a, b *tensor.Tensor, err error) (res, error) {
	if err != nil {
		return nil, err
	}
	return res{a, b}, nil
}

func three(a, b, c *tensor.Tensor, err error) (res, error) {
	if err != nil {
		return nil, err
	}
	return res{a, b, c}, nil
}

// registry maps ATen OpOverload names to their plans. It covers the forward
// and backward graphs AOTAutograd produces for MLPs, CNNs (LeNet) and
// pre-norm transformer language models, and the elementwise operators
// around them (scripts/aten_ops.py lists the graphs' operators).
var registry = map[string]opSpec{}

func init() {
	views := map[string]func(a *args) kernel{
		"aten.t.default":                buildT,
		"aten.transpose.int":            buildTranspose,
		"aten.view.default":             buildReshape,
		"aten._unsafe_view.default":     buildReshape,
		"aten.reshape.default":          buildReshape,
		"aten.expand.default":           buildExpand,
		"aten.permute.default":          buildPermute,
		"aten.unsqueeze.default":        buildUnsqueeze,
		"aten.squeeze.dim":              buildSqueezeDims,
		"aten.squeeze.dims":             buildSqueezeDims,
		"aten.squeeze.default":          buildSqueeze,
		"aten.clone.default":            buildClone,
		"aten.detach.default":           buildIdentity,
		"aten.alias.default":            buildIdentity,
		"aten.split.Tensor":             buildSplit,
		"aten.split_with_sizes.default": buildSplitSizes,
		"aten.cat.default":              buildCat,
		"aten.slice.Tensor":             buildSlice,
		"aten.select.int":               buildSelect,
	}
	for name, b := range views {
		registry[name] = opSpec{build: b, anyType: true}
	}
	for name, f := range map[string]func(*tensor.Tensor) (*tensor.Tensor, error){
		"aten.neg.default": tensor.Neg, "aten.exp.default": tensor.Exp, "aten.log.default": tensor.Log,
		"aten.tanh.default": tensor.Tanh, "aten.sigmoid.default": tensor.Sigmoid, "aten.sqrt.default": tensor.Sqrt,
		"aten.rsqrt.default": tensor.Rsqrt, "aten.relu.default": tensor.Relu, "aten.abs.default": tensor.Abs,
		"aten.reciprocal.default": tensor.Reciprocal,
	} {
		registry[name] = opSpec{build: unary(f)}
	}
	for name, spec := range map[string]opSpec{
		"aten.add.Tensor":         {build: buildAdd(1)},
		"aten.sub.Tensor":         {build: buildAdd(-1)},
		"aten.mul.Tensor":         {build: binary(tensor.Mul, func(t *tensor.Tensor, c float32) (*tensor.Tensor, error) { return tensor.MulScalar(t, c) })},
		"aten.div.Tensor":         {build: binary(tensor.Div, func(t *tensor.Tensor, c float32) (*tensor.Tensor, error) { return tensor.Div(t, tensor.Scalar(c)) })},
		"aten.pow.Tensor_Scalar":  {build: buildPowScalar},
		"aten.eq.Scalar":          {build: buildEq, ints: []int{0}, intOuts: []int{0}},
		"aten.eq.Tensor":          {build: buildEq, ints: []int{0, 1}, intOuts: []int{0}},
		"aten.where.self":         {build: buildWhere, ints: []int{0}},
		"aten.masked_fill.Scalar": {build: buildMaskedFill, ints: []int{1}},
		"aten.tril.default":       {build: buildTri(tensor.Tril)},
		"aten.triu.default":       {build: buildTri(tensor.Triu)},
		"aten.arange.default":     {build: buildArange, intOuts: []int{0}},
		"aten.arange.start":       {build: buildArangeStart, intOuts: []int{0}},
		"aten.full.default":       {build: buildFull, intOuts: []int{0}},

		"aten.mm.default":                 {build: buildMatmul(tensor.Matmul)},
		"aten.bmm.default":                {build: buildMatmul(tensor.Bmm)},
		"aten.addmm.default":              {build: buildAddmm},
		"aten.sum.dim_IntList":            {build: buildReduce(tensor.Sum)},
		"aten.sum.default":                {build: buildSumAll},
		"aten.mean.dim":                   {build: buildReduce(tensor.Mean)},
		"aten.threshold_backward.default": {build: buildThresholdBackward},

		"aten._softmax.default":                   {build: buildSoftmax(tensor.Softmax)},
		"aten._log_softmax.default":               {build: buildSoftmax(tensor.LogSoftmax)},
		"aten._softmax_backward_data.default":     {build: buildSoftmaxBackward(tensor.SoftmaxBackward)},
		"aten._log_softmax_backward_data.default": {build: buildSoftmaxBackward(tensor.LogSoftmaxBackward)},
		"aten.nll_loss_forward.default":           {build: buildNLLLoss, ints: []int{1}},
		"aten.nll_loss_backward.default":          {build: buildNLLLossBackward, ints: []int{2}},

		"aten.convolution.default":                      {build: buildConv},
		"aten.convolution_backward.default":             {build: buildConvBackward},
		"aten.max_pool2d_with_indices.default":          {build: buildMaxPool, intOuts: []int{1}},
		"aten.max_pool2d_with_indices_backward.default": {build: buildMaxPoolBackward, ints: []int{7}},

		"aten.native_layer_norm.default":                                    {build: buildLayerNorm},
		"aten.native_layer_norm_backward.default":                           {build: buildLayerNormBackward},
		"aten.gelu.default":                                                 {build: buildGelu},
		"aten.gelu_backward.default":                                        {build: buildGeluBackward},
		"aten.embedding.default":                                            {build: buildEmbedding, ints: []int{1}},
		"aten.embedding_dense_backward.default":                             {build: buildEmbeddingBackward, ints: []int{1}},
		"aten.native_dropout.default":                                       {build: buildDropout, intOuts: []int{1}, random: true},
		"aten.native_dropout_backward.default":                              {build: buildDropoutBackward, ints: []int{1}},
		"aten._scaled_dot_product_flash_attention_for_cpu.default":          {build: buildAttention},
		"aten._scaled_dot_product_flash_attention_for_cpu_backward.default": {build: buildAttentionBackward},
	} {
		registry[name] = spec
	}
}

// Views and copies.

func buildIdentity(a *args) kernel {
	x := a.tensor(0)
	return func(s *state) (res, error) { return res{x.get(s)}, nil }
}

func buildT(a *args) kernel {
	x := a.tensor(0)
	if a.rank(x) < 2 {
		return func(s *state) (res, error) { return res{x.get(s)}, nil }
	}
	return func(s *state) (res, error) { return one(x.get(s).T()) }
}

func buildTranspose(a *args) kernel {
	x, d0, d1 := a.tensor(0), a.int(1), a.int(2)
	return func(s *state) (res, error) { return one(x.get(s).Transpose(d0, d1)) }
}

// buildReshape serves view as well: gorch's results may be laid out
// differently from PyTorch's, so a view PyTorch could take may need a copy.
func buildReshape(a *args) kernel {
	x, shape := a.tensor(0), a.ints(1)
	return func(s *state) (res, error) { return one(x.get(s).Reshape(shape...)) }
}

func buildExpand(a *args) kernel {
	x, shape := a.tensor(0), a.ints(1)
	return func(s *state) (res, error) { return one(x.get(s).Expand(shape...)) }
}

func buildPermute(a *args) kernel {
	x, dims := a.tensor(0), a.ints(1)
	return func(s *state) (res, error) { return one(x.get(s).Permute(dims...)) }
}

func buildUnsqueeze(a *args) kernel {
	x, d := a.tensor(0), a.int(1)
	return func(s *state) (res, error) { return one(x.get(s).Unsqueeze(d)) }
}

func buildSqueezeDims(a *args) kernel {
	x, dims := a.tensor(0), a.ints(1)
	return func(s *state) (res, error) { return one(x.get(s).Squeeze(dims...)) }
}

func buildSqueeze(a *args) kernel {
	x := a.tensor(0)
	return func(s *state) (res, error) { return one(x.get(s).Squeeze()) }
}

func buildClone(a *args) kernel {
	x := a.tensor(0)
	return func(s *state) (res, error) { return one(x.get(s).Clone()) }
}

func buildSplit(a *args) kernel {
	x, size, dim := a.tensor(0), a.int(1), a.int(2)
	if size <= 0 {
		a.fail("split size %d", size)
	}
	return func(s *state) (res, error) {
		t := x.get(s)
		n, err := t.Size(dim)
		if err != nil {
			return nil, err
		}
		var sizes []int
		for start := 0; start < n || (n == 0 && len(sizes) == 0); start += size {
			sizes = append(sizes, min(size, n-start))
		}
		return narrows(t, dim, sizes)
	}
}

func buildSplitSizes(a *args) kernel {
	x, sizes, dim := a.tensor(0), a.ints(1), a.int(2)
	return func(s *state) (res, error) { return narrows(x.get(s), dim, sizes) }
}

func narrows(t *tensor.Tensor, dim int, sizes []int) (res, error) {
	out := make(res, len(sizes))
	start := 0
	for i, n := range sizes {
		var err error
		if out[i], err = t.Narrow(dim, start, n); err != nil {
			return nil, err
		}
		start += n
	}
	return out, nil
}

func buildCat(a *args) kernel {
	xs, dim := a.tensors(0), a.int(1)
	return func(s *state) (res, error) {
		ts := make([]*tensor.Tensor, len(xs))
		for i, x := range xs {
			ts[i] = x.get(s)
		}
		return one(tensor.Concat(ts, dim))
	}
}

func buildSlice(a *args) kernel {
	x, dim := a.tensor(0), a.int(1)
	start, end := 0, math.MaxInt
	if a.arg(2) != nil {
		start = clampInt(a.num(2))
	}
	if a.arg(3) != nil {
		end = clampInt(a.num(3))
	}
	step := a.int(4)
	return func(s *state) (res, error) { return one(x.get(s).Slice(dim, start, end, step)) }
}

// clampInt converts an ATen SymInt bound (often ±2^63-1) to an int.
func clampInt(v float64) int {
	return int(max(min(v, float64(math.MaxInt32)), float64(math.MinInt32)))
}

func buildSelect(a *args) kernel {
	x, dim, idx := a.tensor(0), a.int(1), a.int(2)
	return func(s *state) (res, error) {
		t := x.get(s)
		if idx < 0 {
			n, err := t.Size(dim)
			if err != nil {
				return nil, err
			}
			idx += n
		}
		return one(t.Select(dim, idx))
	}
}

// Elementwise.

func unary(f func(*tensor.Tensor) (*tensor.Tensor, error)) func(a *args) kernel {
	return func(a *args) kernel {
		x := a.tensor(0)
		return func(s *state) (res, error) { return one(f(x.get(s))) }
	}
}

// binary builds a Tensor-overload elementwise operator whose second
// operand may be a traced Python number.
func binary(tt func(a, b *tensor.Tensor) (*tensor.Tensor, error), ts func(*tensor.Tensor, float32) (*tensor.Tensor, error)) func(a *args) kernel {
	return func(a *args) kernel {
		x := a.tensor(0)
		y, c, isT := a.scalar(1)
		if isT {
			return func(s *state) (res, error) { return one(tt(x.get(s), y.get(s))) }
		}
		return func(s *state) (res, error) { return one(ts(x.get(s), c)) }
	}
}

// buildAdd builds add.Tensor (sign 1) and sub.Tensor (sign -1):
// self + sign·alpha·other.
func buildAdd(sign float32) func(a *args) kernel {
	return func(a *args) kernel {
		x := a.tensor(0)
		y, c, isT := a.scalar(1)
		alpha := sign * a.float(2)
		switch {
		case !isT:
			return func(s *state) (res, error) { return one(tensor.AddScalar(x.get(s), alpha*c)) }
		case alpha == 1:
			return func(s *state) (res, error) { return one(tensor.Add(x.get(s), y.get(s))) }
		case alpha == -1:
			return func(s *state) (res, error) { return one(tensor.Sub(x.get(s), y.get(s))) }
		}
		return func(s *state) (res, error) {
			t, err := tensor.MulScalar(y.get(s), alpha)
			if err != nil {
				return nil, err
			}
			return one(tensor.Add(x.get(s), t))
		}
	}
}

func buildPowScalar(a *args) kernel {
	x, p := a.tensor(0), a.float(1)
	return func(s *state) (res, error) { return one(tensor.PowScalar(x.get(s), p)) }
}

func buildEq(a *args) kernel {
	x := a.tensor(0)
	y, c, isT := a.scalar(1)
	return func(s *state) (res, error) {
		if isT {
			return one(tensor.Eq(x.get(s), y.get(s)))
		}
		return one(tensor.Eq(x.get(s), tensor.Scalar(c)))
	}
}

func buildWhere(a *args) kernel {
	c, x, y := a.tensor(0), a.tensor(1), a.tensor(2)
	return func(s *state) (res, error) { return one(tensor.Where(c.get(s), x.get(s), y.get(s))) }
}

func buildMaskedFill(a *args) kernel {
	x, m, v := a.tensor(0), a.tensor(1), a.float(2)
	return func(s *state) (res, error) { return one(tensor.MaskedFill(x.get(s), m.get(s), v)) }
}

func buildTri(f func(*tensor.Tensor, int) (*tensor.Tensor, error)) func(a *args) kernel {
	return func(a *args) kernel {
		x, d := a.tensor(0), a.int(1)
		return func(s *state) (res, error) { return one(f(x.get(s), d)) }
	}
}

// checkFactory refuses a factory's device other than the CPU.
func checkFactory(a *args, device int) {
	if d := a.str(device); d != "" && d != "cpu" {
		a.fail("device %s (gorch computes on the CPU)", d)
	}
}

func buildArange(a *args) kernel {
	end := a.int(0)
	checkFactory(a, 3)
	return func(s *state) (res, error) { return one(tensor.Arange(end)) }
}

func buildArangeStart(a *args) kernel {
	start, end := a.int(0), a.int(1)
	checkFactory(a, 4)
	return func(s *state) (res, error) {
		t, err := tensor.Arange(max(end-start, 0))
		if err != nil {
			return nil, err
		}
		return one(tensor.AddScalar(t, float32(start)))
	}
}

func buildFull(a *args) kernel {
	shape, v := a.ints(0), a.float(1)
	checkFactory(a, 4)
	return func(s *state) (res, error) { return one(tensor.Full(v, shape...)) }
}

// Matrix products and reductions.

func buildMatmul(f func(a, b *tensor.Tensor) (*tensor.Tensor, error)) func(a *args) kernel {
	return func(a *args) kernel {
		x, y := a.tensor(0), a.tensor(1)
		return func(s *state) (res, error) { return one(f(x.get(s), y.get(s))) }
	}
}

func buildAddmm(a *args) kernel {
	b, x, y, beta, alpha := a.tensor(0), a.tensor(1), a.tensor(2), a.float(3), a.float(4)
	return func(s *state) (res, error) { return one(tensor.Addmm(b.get(s), x.get(s), y.get(s), beta, alpha)) }
}

// checkFloatDtype refuses an optional dtype argument other than float32.
func checkFloatDtype(a *args, i int) {
	if d := a.str(i); d != "" && d != "float32" {
		a.fail("dtype %s (gorch computes in float32)", d)
	}
}

func buildReduce(f func(*tensor.Tensor, []int, bool) (*tensor.Tensor, error)) func(a *args) kernel {
	return func(a *args) kernel {
		x, dims, keep := a.tensor(0), a.ints(1), a.bool(2)
		checkFloatDtype(a, 3)
		return func(s *state) (res, error) { return one(f(x.get(s), dims, keep)) }
	}
}

func buildSumAll(a *args) kernel {
	x := a.tensor(0)
	checkFloatDtype(a, 1)
	return func(s *state) (res, error) { return one(tensor.Sum(x.get(s), nil, false)) }
}

func buildThresholdBackward(a *args) kernel {
	g, x, th := a.tensor(0), a.tensor(1), a.num(2)
	if th != 0 {
		a.fail("threshold %v (gorch has ReLU's, 0)", th)
	}
	return func(s *state) (res, error) { return one(tensor.ReluBackward(g.get(s), x.get(s))) }
}

// Losses and normalisation.

func buildSoftmax(f func(*tensor.Tensor, int) (*tensor.Tensor, error)) func(a *args) kernel {
	return func(a *args) kernel {
		x, dim := a.tensor(0), a.int(1)
		if a.bool(2) {
			a.fail("half_to_float (gorch computes in float32)")
		}
		return func(s *state) (res, error) { return one(f(x.get(s), dim)) }
	}
}

func buildSoftmaxBackward(f func(g, y *tensor.Tensor, dim int) (*tensor.Tensor, error)) func(a *args) kernel {
	return func(a *args) kernel {
		g, y, dim := a.tensor(0), a.tensor(1), a.int(2)
		checkFloatDtype(a, 3)
		return func(s *state) (res, error) { return one(f(g.get(s), y.get(s), dim)) }
	}
}

func optGet(t in, ok bool, s *state) *tensor.Tensor {
	if !ok {
		return nil
	}
	return t.get(s)
}

func buildNLLLoss(a *args) kernel {
	x, tgt := a.tensor(0), a.tensor(1)
	w, hasW := a.optTensor(2)
	red, ignore := tensor.Reduction(a.int(3)), a.int(4)
	return func(s *state) (res, error) {
		return two(tensor.NLLLoss(x.get(s), tgt.get(s), optGet(w, hasW, s), red, ignore))
	}
}

func buildNLLLossBackward(a *args) kernel {
	g, x, tgt := a.tensor(0), a.tensor(1), a.tensor(2)
	w, hasW := a.optTensor(3)
	red, ignore, tw := tensor.Reduction(a.int(4)), a.int(5), a.tensor(6)
	return func(s *state) (res, error) {
		return one(tensor.NLLLossBackward(g.get(s), x.get(s), tgt.get(s), optGet(w, hasW, s), red, ignore, tw.get(s)))
	}
}

func buildLayerNorm(a *args) kernel {
	x, norm := a.tensor(0), a.ints(1)
	w, hasW := a.optTensor(2)
	b, hasB := a.optTensor(3)
	eps := a.float(4)
	return func(s *state) (res, error) {
		return three(tensor.LayerNorm(x.get(s), norm, optGet(w, hasW, s), optGet(b, hasB, s), eps))
	}
}

func buildLayerNormBackward(a *args) kernel {
	g, x, norm, mean, rstd := a.tensor(0), a.tensor(1), a.ints(2), a.tensor(3), a.tensor(4)
	w, hasW := a.optTensor(5)
	want := wantMask(a, 7)
	return func(s *state) (res, error) {
		return three(tensor.LayerNormBackward(g.get(s), x.get(s), norm, mean.get(s), rstd.get(s), optGet(w, hasW, s), want))
	}
}

// wantMask reads an ATen output_mask bool[3].
func wantMask(a *args, i int) [3]bool {
	m := a.bools(i)
	if len(m) != 3 {
		a.fail("argument %d: output mask %v, want 3 bools", i, m)
		return [3]bool{}
	}
	return [3]bool{m[0], m[1], m[2]}
}

func approximate(a *args, i int) bool {
	switch v := a.str(i); v {
	case "none", "":
		return false
	case "tanh":
		return true
	default:
		a.fail("gelu approximate=%q", v)
		return false
	}
}

func buildGelu(a *args) kernel {
	x, tanh := a.tensor(0), approximate(a, 1)
	f := tensor.Gelu
	if tanh {
		f = tensor.GeluTanh
	}
	return func(s *state) (res, error) { return one(f(x.get(s))) }
}

func buildGeluBackward(a *args) kernel {
	g, x, tanh := a.tensor(0), a.tensor(1), approximate(a, 2)
	return func(s *state) (res, error) { return one(tensor.GeluBackward(g.get(s), x.get(s), tanh)) }
}

func buildEmbedding(a *args) kernel {
	w, idx := a.tensor(0), a.tensor(1)
	if a.bool(4) {
		a.fail("sparse embedding")
	}
	return func(s *state) (res, error) { return one(tensor.Embedding(w.get(s), idx.get(s))) }
}

func buildEmbeddingBackward(a *args) kernel {
	g, idx, n, pad := a.tensor(0), a.tensor(1), a.int(2), a.int(3)
	if a.bool(4) {
		a.fail("scale_grad_by_freq")
	}
	return func(s *state) (res, error) { return one(tensor.EmbeddingBackward(g.get(s), idx.get(s), n, pad)) }
}

// buildDropout follows ATen: in training (train null or true) a Bernoulli
// keep mask from the run's seed; otherwise a copy and a mask of ones.
func buildDropout(a *args) kernel {
	x, p, train := a.tensor(0), a.float(1), a.optBool(2, true)
	if !train {
		return func(s *state) (res, error) {
			t := x.get(s)
			out, err := t.Clone()
			if err != nil {
				return nil, err
			}
			mask, err := tensor.Ones(t.Shape()...)
			return two(out, mask, err)
		}
	}
	return func(s *state) (res, error) { return two(tensor.Dropout(x.get(s), p, s.rng())) }
}

func buildDropoutBackward(a *args) kernel {
	g, m, scale := a.tensor(0), a.tensor(1), a.float(2)
	return func(s *state) (res, error) { return one(tensor.DropoutBackward(g.get(s), m.get(s), scale)) }
}

// attentionOptions reads dropout_p, is_causal, attn_mask and scale from
// position i on; gorch's fused attention has neither dropout nor a mask.
func attentionOptions(a *args, i int) tensor.AttentionOptions {
	if p := a.num(i); p != 0 {
		a.fail("attention dropout %v", p)
	}
	opt := tensor.AttentionOptions{Causal: a.bool(i + 1)}
	if a.arg(i+2) != nil {
		a.fail("attention with attn_mask")
	}
	if a.arg(i+3) != nil {
		opt.Scale = a.float(i + 3)
	}
	return opt
}

func buildAttention(a *args) kernel {
	q, k, v := a.tensor(0), a.tensor(1), a.tensor(2)
	opt := attentionOptions(a, 3)
	return func(s *state) (res, error) {
		return two(tensor.ScaledDotProductAttention(q.get(s), k.get(s), v.get(s), opt))
	}
}

func buildAttentionBackward(a *args) kernel {
	g, q, k, v, out, lse := a.tensor(0), a.tensor(1), a.tensor(2), a.tensor(3), a.tensor(4), a.tensor(5)
	opt := attentionOptions(a, 6)
	return func(s *state) (res, error) {
		return three(tensor.ScaledDotProductAttentionBackward(g.get(s), q.get(s), k.get(s), v.get(s), out.get(s), lse.get(s), opt))
	}
}

// Convolution and pooling.

// convOptions reads stride, padding, dilation, transposed, output_padding
// and groups from position i on: gorch convolves 2-D, undilated, ungrouped.
func convOptions(a *args, i int, x in) tensor.Conv2dOptions {
	if r := a.rank(x); r != 4 {
		a.fail("%d-D input (gorch convolves 2-D [N, C, H, W])", r)
	}
	opt := tensor.Conv2dOptions{Stride: a.pair(i, [2]int{1, 1}), Padding: a.pair(i+1, [2]int{})}
	if d := a.pair(i+2, [2]int{1, 1}); d != [2]int{1, 1} {
		a.fail("dilation %v", d)
	}
	if a.bool(i + 3) {
		a.fail("transposed convolution")
	}
	if g := a.int(i + 5); g != 1 {
		a.fail("groups %d", g)
	}
	return opt
}

func buildConv(a *args) kernel {
	x, w := a.tensor(0), a.tensor(1)
	b, hasB := a.optTensor(2)
	opt := convOptions(a, 3, x)
	return func(s *state) (res, error) { return one(tensor.Conv2d(x.get(s), w.get(s), optGet(b, hasB, s), opt)) }
}

func buildConvBackward(a *args) kernel {
	g, x, w := a.tensor(0), a.tensor(1), a.tensor(2)
	opt := convOptions(a, 4, x)
	want := wantMask(a, 10)
	return func(s *state) (res, error) {
		return three(tensor.Conv2dBackward(x.get(s), w.get(s), g.get(s), opt, want))
	}
}

// poolOptions reads kernel_size, stride, padding, dilation and ceil_mode
// from position i on.
func poolOptions(a *args, i int) tensor.Pool2dOptions {
	k := a.pair(i, [2]int{})
	opt := tensor.Pool2dOptions{Kernel: k, Stride: a.pair(i+1, k), Padding: a.pair(i+2, [2]int{})}
	if d := a.pair(i+3, [2]int{1, 1}); d != [2]int{1, 1} {
		a.fail("pooling dilation %v", d)
	}
	if a.bool(i + 4) {
		a.fail("ceil_mode")
	}
	return opt
}

func buildMaxPool(a *args) kernel {
	x := a.tensor(0)
	if r := a.rank(x); r != 4 {
		a.fail("%d-D input (gorch pools [N, C, H, W])", r)
	}
	opt := poolOptions(a, 1)
	return func(s *state) (res, error) { return two(tensor.MaxPool2d(x.get(s), opt)) }
}

func buildMaxPoolBackward(a *args) kernel {
	g, x := a.tensor(0), a.tensor(1)
	poolOptions(a, 2)
	idx := a.tensor(7)
	return func(s *state) (res, error) {
		return one(tensor.MaxPool2dBackward(g.get(s), idx.get(s), x.get(s).Shape()))
	}
}
