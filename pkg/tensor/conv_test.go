package tensor

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

type convCase struct {
	x, w           []int
	sh, sw, ph, pw int
}

func (c convCase) opt() Conv2dOptions {
	return Conv2dOptions{Stride: [2]int{c.sh, c.sw}, Padding: [2]int{c.ph, c.pw}}
}

// refConv computes the forward convolution and, given gout, the naive
// float64 gradients, directly from the definition.
func refConv(x, w, b, gout []float64, xs, ws []int, sh, sw, ph, pw int) (out, gx, gw, gb []float64, os []int) {
	if sh == 0 {
		sh = 1
	}
	if sw == 0 {
		sw = 1
	}
	N, C, H, W := xs[0], xs[1], xs[2], xs[3]
	O, KH, KW := ws[0], ws[2], ws[3]
	OH, OW := (H+2*ph-KH)/sh+1, (W+2*pw-KW)/sw+1
	os = []int{N, O, OH, OW}
	out = make([]float64, N*O*OH*OW)
	gx, gw, gb = make([]float64, len(x)), make([]float64, len(w)), make([]float64, O)
	for n := 0; n < N; n++ {
		for o := 0; o < O; o++ {
			for oh := 0; oh < OH; oh++ {
				for ow := 0; ow < OW; ow++ {
					oi := ((n*O+o)*OH+oh)*OW + ow
					s := 0.0
					if b != nil {
						s = b[o]
					}
					var g float64
					if gout != nil {
						g = gout[oi]
						gb[o] += g
					}
					for c := 0; c < C; c++ {
						for i := 0; i < KH; i++ {
							for j := 0; j < KW; j++ {
								ih, iw := oh*sh-ph+i, ow*sw-pw+j
								if ih < 0 || ih >= H || iw < 0 || iw >= W {
									continue
								}
								xi := ((n*C+c)*H+ih)*W + iw
								wi := ((o*C+c)*KH+i)*KW + j
								s += x[xi] * w[wi]
								gx[xi] += g * w[wi]
								gw[wi] += g * x[xi]
							}
						}
					}
					out[oi] = s
				}
			}
		}
	}
	return
}

var convCases = []convCase{
	{[]int{2, 3, 7, 7}, []int{4, 3, 3, 3}, 1, 1, 0, 0},
	{[]int{2, 3, 7, 8}, []int{4, 3, 3, 3}, 1, 1, 1, 1},
	{[]int{3, 2, 9, 10}, []int{5, 2, 3, 3}, 2, 2, 1, 1},
	{[]int{2, 2, 9, 9}, []int{3, 2, 5, 5}, 2, 1, 2, 2},
	{[]int{1, 3, 6, 11}, []int{2, 3, 2, 4}, 1, 3, 1, 2}, // non-square kernel
	{[]int{2, 4, 5, 5}, []int{6, 4, 1, 1}, 0, 0, 0, 0},  // pointwise, zero stride = 1
	{[]int{9, 1, 6, 6}, []int{2, 1, 3, 3}, 1, 1, 0, 0},  // more samples than gw chunks
	{[]int{20, 3, 7, 8}, []int{4, 3, 3, 3}, 2, 1, 1, 1}, // grouped backward GEMMs, short last chunk
	{[]int{1, 1, 1, 1}, []int{1, 1, 1, 1}, 1, 1, 0, 0},
	{[]int{2, 1, 3, 3}, []int{1, 1, 5, 5}, 1, 1, 1, 1}, // kernel larger than input, saved by padding
}

func TestConv2dForwardBackward(t *testing.T) {
	r := NewRNG(11)
	for _, c := range convCases {
		name := fmt.Sprintf("%+v", c)
		x, w, b := randn(t, r, c.x...), randn(t, r, c.w...), randn(t, r, c.w[0])
		for _, bias := range []*Tensor{nil, b} {
			got, err := Conv2d(x, w, bias, c.opt())
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var bd []float64
			if bias != nil {
				bd = ref64(bias)
			}
			want, _, _, _, os := refConv(ref64(x), ref64(w), bd, nil, c.x, c.w, c.sh, c.sw, c.ph, c.pw)
			assertClose(t, name+" forward", got, want, os, 1e-4)
		}
		out := must(t)(Conv2d(x, w, nil, c.opt()))
		gout := randn(t, r, out.Shape()...)
		gx, gw, gb, err := Conv2dBackward(x, w, gout, c.opt(), all3)
		if err != nil {
			t.Fatalf("%s backward: %v", name, err)
		}
		_, rgx, rgw, rgb, _ := refConv(ref64(x), ref64(w), nil, ref64(gout), c.x, c.w, c.sh, c.sw, c.ph, c.pw)
		assertClose(t, name+" gx", gx, rgx, c.x, 1e-4)
		assertClose(t, name+" gw", gw, rgw, c.w, 1e-4)
		assertClose(t, name+" gb", gb, rgb, []int{c.w[0]}, 1e-4)
	}
}

// TestConv2dBackwardPerSample checks the previous backward path (two GEMMs
// per sample, kept for A/B benchmarks) against the reference too.
func TestConv2dBackwardPerSample(t *testing.T) {
	prev := kernels.SetLegacyGemm(true)
	defer kernels.SetLegacyGemm(prev)
	r := NewRNG(21)
	for _, c := range convCases {
		name := fmt.Sprintf("per-sample %+v", c)
		x, w := randn(t, r, c.x...), randn(t, r, c.w...)
		out := must(t)(Conv2d(x, w, nil, c.opt()))
		gout := randn(t, r, out.Shape()...)
		gx, gw, _, err := Conv2dBackward(x, w, gout, c.opt(), all3)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, rgx, rgw, _, _ := refConv(ref64(x), ref64(w), nil, ref64(gout), c.x, c.w, c.sh, c.sw, c.ph, c.pw)
		assertClose(t, name+" gx", gx, rgx, c.x, 1e-4)
		assertClose(t, name+" gw", gw, rgw, c.w, 1e-4)
	}
}

func TestConv2dStridedInputs(t *testing.T) {
	r := NewRNG(12)
	// x as a permuted view, w as a slice of a bigger tensor.
	x := must(t)(randn(t, r, 3, 2, 8, 8).Permute(1, 0, 2, 3)) // [2, 3, 8, 8]
	w := must(t)(randn(t, r, 4, 6, 3, 3).Slice(1, 0, 6, 2))   // [4, 3, 3, 3]
	b := must(t)(randn(t, r, 8).Slice(0, 1, 8, 2))            // [4]
	got := must(t)(Conv2d(x, w, b, Conv2dOptions{Padding: [2]int{1, 1}}))
	want, _, _, _, os := refConv(ref64(x), ref64(w), ref64(b), nil, x.Shape(), w.Shape(), 1, 1, 1, 1)
	assertClose(t, "strided conv", got, want, os, 1e-4)
	gout := must(t)(randn(t, r, 2, 4, 8, 8).Transpose(2, 3))
	gx, gw, gb, err := Conv2dBackward(x, w, gout, Conv2dOptions{Padding: [2]int{1, 1}}, all3)
	if err != nil {
		t.Fatal(err)
	}
	_, rgx, rgw, rgb, _ := refConv(ref64(x), ref64(w), nil, ref64(gout), x.Shape(), w.Shape(), 1, 1, 1, 1)
	assertClose(t, "strided gx", gx, rgx, x.Shape(), 1e-4)
	assertClose(t, "strided gw", gw, rgw, w.Shape(), 1e-4)
	assertClose(t, "strided gb", gb, rgb, []int{4}, 1e-4)
}

// TestConv2dFiniteDifference checks the backward pass against numerical
// derivatives of sum(conv(x, w) * gout) (float64 central differences of
// the float32 op, loose tolerance).
func TestConv2dFiniteDifference(t *testing.T) {
	r := NewRNG(13)
	opt := Conv2dOptions{Stride: [2]int{2, 1}, Padding: [2]int{1, 2}}
	x, w := randn(t, r, 2, 2, 5, 6), randn(t, r, 3, 2, 3, 2)
	gout := randn(t, r, must(t)(Conv2d(x, w, nil, opt)).Shape()...)
	gx, gw, _, err := Conv2dBackward(x, w, gout, opt, all3)
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		o := must(t)(Conv2d(x, w, nil, opt)).ToSlice()
		g := gout.ToSlice()
		var s float64
		for i := range o {
			s += float64(o[i]) * float64(g[i])
		}
		return s
	}
	for _, tc := range []struct {
		p    *Tensor
		grad *Tensor
	}{{x, gx}, {w, gw}} {
		d := tc.p.Data()
		gd := tc.grad.ToSlice()
		for i := 0; i < len(d); i += 7 {
			const h = 1e-2
			v := d[i]
			d[i] = v + h
			lp := loss()
			d[i] = v - h
			lm := loss()
			d[i] = v
			num := (lp - lm) / (2 * h)
			if math.Abs(num-float64(gd[i])) > 2e-2*(1+math.Abs(num)) {
				t.Fatalf("element %d: analytic %v, numeric %v", i, gd[i], num)
			}
		}
	}
}

func TestConv2dDeterministic(t *testing.T) {
	r := NewRNG(14)
	x, w := randn(t, r, 13, 3, 12, 12), randn(t, r, 8, 3, 5, 5)
	opt := Conv2dOptions{Padding: [2]int{2, 2}}
	gout := randn(t, r, 13, 8, 12, 12)
	run := func(procs int) [][]float32 {
		prev := runtime.GOMAXPROCS(procs)
		defer runtime.GOMAXPROCS(prev)
		out := must(t)(Conv2d(x, w, nil, opt))
		gx, gw, gb, err := Conv2dBackward(x, w, gout, opt, all3)
		if err != nil {
			t.Fatal(err)
		}
		return [][]float32{out.ToSlice(), gx.ToSlice(), gw.ToSlice(), gb.ToSlice()}
	}
	a, b, c := run(1), run(2), run(5)
	for k := range a {
		for i := range a[k] {
			if math.Float32bits(a[k][i]) != math.Float32bits(b[k][i]) || math.Float32bits(a[k][i]) != math.Float32bits(c[k][i]) {
				t.Fatalf("result %d element %d differs across GOMAXPROCS", k, i)
			}
		}
	}
}

// refPool computes max (with flat indices) or average pooling directly.
func refPool(x []float64, xs []int, o Pool2dOptions, avg bool) (out, idx []float64, os []int) {
	N, C, H, W := xs[0], xs[1], xs[2], xs[3]
	kh, kw, sh, sw, ph, pw := o.Kernel[0], o.Kernel[1], o.Stride[0], o.Stride[1], o.Padding[0], o.Padding[1]
	if sh == 0 {
		sh = kh
	}
	if sw == 0 {
		sw = kw
	}
	OH, OW := (H+2*ph-kh)/sh+1, (W+2*pw-kw)/sw+1
	os = []int{N, C, OH, OW}
	for p := 0; p < N*C; p++ {
		for oh := 0; oh < OH; oh++ {
			for ow := 0; ow < OW; ow++ {
				best, bi, sum := math.Inf(-1), -1, 0.0
				for i := 0; i < kh; i++ {
					for j := 0; j < kw; j++ {
						ih, iw := oh*sh-ph+i, ow*sw-pw+j
						if ih < 0 || ih >= H || iw < 0 || iw >= W {
							continue
						}
						v := x[p*H*W+ih*W+iw]
						sum += v
						if v > best {
							best, bi = v, ih*W+iw
						}
					}
				}
				if avg {
					out = append(out, sum/float64(kh*kw))
				} else {
					out = append(out, best)
					idx = append(idx, float64(bi))
				}
			}
		}
	}
	return
}

var poolCases = []struct {
	x []int
	o Pool2dOptions
}{
	{[]int{2, 3, 8, 8}, Pool2dOptions{Kernel: [2]int{2, 2}}},
	{[]int{2, 2, 7, 9}, Pool2dOptions{Kernel: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}}},
	{[]int{1, 2, 9, 8}, Pool2dOptions{Kernel: [2]int{5, 3}, Stride: [2]int{2, 1}, Padding: [2]int{2, 1}}},
	{[]int{1, 1, 1, 1}, Pool2dOptions{Kernel: [2]int{1, 1}}},
}

func TestMaxPool2d(t *testing.T) {
	r := NewRNG(15)
	for _, c := range poolCases {
		x := randn(t, r, c.x...)
		out, idx, err := MaxPool2d(x, c.o)
		if err != nil {
			t.Fatal(err)
		}
		want, wi, os := refPool(ref64(x), c.x, c.o, false)
		assertClose(t, "max_pool2d", out, want, os, 0)
		assertClose(t, "max_pool2d indices", idx, wi, os, 0)
		// Backward: naive scatter.
		gout := randn(t, r, os...)
		gx := must(t)(MaxPool2dBackward(gout, idx, c.x))
		ref := make([]float64, numel(c.x))
		g := ref64(gout)
		hw, ohw := c.x[2]*c.x[3], os[2]*os[3]
		for i, v := range g {
			ref[(i/ohw)*hw+int(wi[i])] += v
		}
		assertClose(t, "max_pool2d_backward", gx, ref, c.x, 1e-6)
	}
	// Ties go to the first position.
	x := must(t)(Full(1, 1, 1, 2, 2))
	_, idx, _ := MaxPool2d(x, Pool2dOptions{Kernel: [2]int{2, 2}})
	if v := idx.ToSlice()[0]; v != 0 {
		t.Fatalf("tie index %v, want 0", v)
	}
	// Transposed input view.
	xt := must(t)(randn(t, r, 1, 2, 6, 5).Transpose(2, 3))
	out, _, err := MaxPool2d(xt, Pool2dOptions{Kernel: [2]int{2, 2}, Stride: [2]int{1, 1}, Padding: [2]int{1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	want, _, os := refPool(ref64(xt), xt.Shape(), Pool2dOptions{Kernel: [2]int{2, 2}, Stride: [2]int{1, 1}, Padding: [2]int{1, 1}}, false)
	assertClose(t, "max_pool2d transposed", out, want, os, 0)
}

func TestAvgPool2d(t *testing.T) {
	r := NewRNG(16)
	for _, c := range poolCases {
		x := randn(t, r, c.x...)
		out := must(t)(AvgPool2d(x, c.o))
		want, _, os := refPool(ref64(x), c.x, c.o, true)
		assertClose(t, "avg_pool2d", out, want, os, 1e-5)
		// Backward is the adjoint: <avgpool(x), g> = <x, avgpool_backward(g)>.
		g := randn(t, r, os...)
		gx := must(t)(AvgPool2dBackward(g, c.x, c.o))
		var lhs, rhs float64
		for i, v := range ref64(out) {
			lhs += v * ref64(g)[i]
		}
		for i, v := range ref64(x) {
			rhs += v * ref64(gx)[i]
		}
		if math.Abs(lhs-rhs) > 1e-4*(1+math.Abs(lhs)) {
			t.Fatalf("avg_pool2d_backward not adjoint: %v vs %v", lhs, rhs)
		}
	}
}

func TestConvPoolErrors(t *testing.T) {
	r := NewRNG(17)
	x, w := randn(t, r, 1, 2, 5, 5), randn(t, r, 3, 2, 3, 3)
	cases := []struct {
		op   string
		kind errs.Kind
		err  error
	}{}
	add := func(op string, kind errs.Kind, err error) {
		cases = append(cases, struct {
			op   string
			kind errs.Kind
			err  error
		}{op, kind, err})
	}
	c := func(x, w, b *Tensor, o Conv2dOptions) error { _, err := Conv2d(x, w, b, o); return err }
	add("conv2d", errs.Argument, c(nil, w, nil, Conv2dOptions{}))
	add("conv2d", errs.Argument, c(x, nil, nil, Conv2dOptions{}))
	add("conv2d", errs.Shape, c(randn(t, r, 2, 5, 5), w, nil, Conv2dOptions{}))
	add("conv2d", errs.Shape, c(x, randn(t, r, 3, 2, 3), nil, Conv2dOptions{}))
	add("conv2d", errs.Shape, c(x, randn(t, r, 3, 4, 3, 3), nil, Conv2dOptions{}))
	add("conv2d", errs.Shape, c(x, w, randn(t, r, 4), Conv2dOptions{}))
	add("conv2d", errs.Argument, c(x, w, nil, Conv2dOptions{Stride: [2]int{-1, 1}}))
	add("conv2d", errs.Argument, c(x, w, nil, Conv2dOptions{Padding: [2]int{0, -2}}))
	add("conv2d", errs.Argument, c(x, randn(t, r, 3, 2, 0, 3), nil, Conv2dOptions{}))
	add("conv2d", errs.Shape, c(x, randn(t, r, 3, 2, 6, 3), nil, Conv2dOptions{}))
	add("conv2d", errs.Argument, c(x, w, nil, Conv2dOptions{Padding: [2]int{math.MaxInt / 2, 0}}))
	cb := func(x, w, g *Tensor) error {
		_, _, _, err := Conv2dBackward(x, w, g, Conv2dOptions{}, all3)
		return err
	}
	add("conv2d_backward", errs.Shape, cb(x, w, randn(t, r, 1, 3, 4, 3)))
	add("conv2d_backward", errs.Argument, cb(x, w, nil))
	add("conv2d_backward", errs.Shape, cb(x, randn(t, r, 3, 3, 3, 3), randn(t, r, 1, 3, 3, 3)))
	mp := func(x *Tensor, o Pool2dOptions) error { _, _, err := MaxPool2d(x, o); return err }
	k2 := [2]int{2, 2}
	add("max_pool2d", errs.Argument, mp(nil, Pool2dOptions{Kernel: k2}))
	add("max_pool2d", errs.Shape, mp(randn(t, r, 5, 5), Pool2dOptions{Kernel: k2}))
	add("max_pool2d", errs.Argument, mp(x, Pool2dOptions{}))
	add("max_pool2d", errs.Argument, mp(x, Pool2dOptions{Kernel: [2]int{-1, 2}}))
	add("max_pool2d", errs.Argument, mp(x, Pool2dOptions{Kernel: k2, Stride: [2]int{-1, 1}}))
	add("max_pool2d", errs.Argument, mp(x, Pool2dOptions{Kernel: k2, Padding: [2]int{2, 0}}))
	add("max_pool2d", errs.Shape, mp(x, Pool2dOptions{Kernel: [2]int{6, 6}}))
	_, err := AvgPool2d(x, Pool2dOptions{Kernel: [2]int{0, 2}})
	add("avg_pool2d", errs.Argument, err)
	_, err = AvgPool2d(randn(t, r, 1, 1, 1, 5), Pool2dOptions{Kernel: k2})
	add("avg_pool2d", errs.Shape, err)
	_, err = AvgPool2dBackward(randn(t, r, 1, 2, 3, 3), []int{1, 2, 5, 5}, Pool2dOptions{Kernel: k2})
	add("avg_pool2d_backward", errs.Shape, err)
	_, err = AvgPool2dBackward(randn(t, r, 1, 2, 2, 2), []int{1, 2, 5}, Pool2dOptions{Kernel: k2})
	add("avg_pool2d_backward", errs.Shape, err)
	_, err = AvgPool2dBackward(randn(t, r, 1, 2, 2, 2), []int{1, 2, -5, 5}, Pool2dOptions{Kernel: k2})
	add("avg_pool2d_backward", errs.Argument, err)
	_, err = AvgPool2dBackward(nil, []int{1, 2, 5, 5}, Pool2dOptions{Kernel: k2})
	add("avg_pool2d_backward", errs.Argument, err)
	g := randn(t, r, 1, 2, 2, 2)
	_, err = MaxPool2dBackward(g, must(t)(Full(25, 1, 2, 2, 2)), []int{1, 2, 5, 5})
	add("max_pool2d_backward", errs.Argument, err)
	_, err = MaxPool2dBackward(g, must(t)(Full(1.5, 1, 2, 2, 2)), []int{1, 2, 5, 5})
	add("max_pool2d_backward", errs.Argument, err)
	_, err = MaxPool2dBackward(g, must(t)(Full(-1, 1, 2, 2, 2)), []int{1, 2, 5, 5})
	add("max_pool2d_backward", errs.Argument, err)
	_, err = MaxPool2dBackward(g, must(t)(Zeros(1, 2, 2, 3)), []int{1, 2, 5, 5})
	add("max_pool2d_backward", errs.Shape, err)
	_, err = MaxPool2dBackward(g, must(t)(Zeros(1, 2, 2, 2)), []int{1, 3, 5, 5})
	add("max_pool2d_backward", errs.Shape, err)
	_, err = MaxPool2dBackward(g, nil, []int{1, 2, 5, 5})
	add("max_pool2d_backward", errs.Argument, err)
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) { wantErr(t, c.err, c.kind, c.op) })
	}
}

func BenchmarkConv2dLeNet(b *testing.B) {
	r := NewRNG(1)
	layers := []struct {
		name string
		x, w []int
	}{
		{"conv1", []int{64, 1, 28, 28}, []int{16, 1, 5, 5}},
		{"conv2", []int{64, 16, 12, 12}, []int{32, 16, 5, 5}},
	}
	for _, l := range layers {
		x, w, bias := randn(b, r, l.x...), randn(b, r, l.w...), randn(b, r, l.w[0])
		out := must(b)(Conv2d(x, w, bias, Conv2dOptions{}))
		gout := randn(b, r, out.Shape()...)
		for _, mode := range []string{"legacy", "fast"} {
			b.Run(l.name+"/forward/"+mode, func(b *testing.B) {
				prev := kernels.SetLegacyGemm(mode == "legacy")
				defer kernels.SetLegacyGemm(prev)
				for range b.N {
					if _, err := Conv2d(x, w, bias, Conv2dOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		for _, mode := range []string{"per-sample-legacy", "grouped"} {
			b.Run(l.name+"/backward/"+mode, func(b *testing.B) {
				prev := kernels.SetLegacyGemm(mode != "grouped")
				defer kernels.SetLegacyGemm(prev)
				for range b.N {
					if _, _, _, err := Conv2dBackward(x, w, gout, Conv2dOptions{}, all3); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// Empty operands (an empty view at the end of its storage) give correct,
// empty or zero results and never panic.
func TestEmptyOperands(t *testing.T) {
	st := WrapStorage(make([]float32, 4))
	empty := func(shape ...int) *Tensor {
		return must(t)(FromStorage(st, shape, contiguousStrides(shape), 4))
	}
	r := NewRNG(18)
	got := must(t)(Matmul(empty(3, 0), empty(0, 2)))
	assertClose(t, "matmul k=0", got, make([]float64, 6), []int{3, 2}, 0)
	got = must(t)(Linear(empty(2, 0), empty(3, 0), must(t)(Ones(3))))
	assertClose(t, "linear in=0", got, []float64{1, 1, 1, 1, 1, 1}, []int{2, 3}, 0)
	got = must(t)(Conv2d(empty(2, 0, 3, 3), empty(4, 0, 2, 2), nil, Conv2dOptions{}))
	assertClose(t, "conv2d C=0", got, make([]float64, 2*4*2*2), []int{2, 4, 2, 2}, 0)
	gx, gw, gb, err := Conv2dBackward(empty(2, 0, 3, 3), empty(4, 0, 2, 2), randn(t, r, 2, 4, 2, 2), Conv2dOptions{}, all3)
	if err != nil || gx.Numel() != 0 || gw.Numel() != 0 || gb.Numel() != 4 {
		t.Fatalf("conv2d_backward C=0: %v %v %v %v", gx, gw, gb, err)
	}
	_, _, err = MaxPool2d(empty(1, 1, 0, 3), Pool2dOptions{Kernel: [2]int{2, 2}, Padding: [2]int{1, 1}})
	wantErr(t, err, errs.Shape, "max_pool2d")
	_, err = Conv2d(empty(1, 1, 0, 3), randn(t, r, 1, 1, 1, 1), nil, Conv2dOptions{Padding: [2]int{1, 1}})
	wantErr(t, err, errs.Shape, "conv2d")
	o, idx, err := MaxPool2d(empty(0, 2, 4, 4), Pool2dOptions{Kernel: [2]int{2, 2}})
	if err != nil || o.Numel() != 0 || idx.Numel() != 0 {
		t.Fatalf("max_pool2d N=0: %v", err)
	}
	g := must(t)(MaxPool2dBackward(empty(0, 2, 2, 2), empty(0, 2, 2, 2), []int{0, 2, 4, 4}))
	if g.Numel() != 0 {
		t.Fatal("max_pool2d_backward N=0")
	}
}

// all3 asks Conv2dBackward for every gradient.
var all3 = [3]bool{true, true, true}

// TestConv2dDirectMatchesIm2col checks the direct-convolution path (LeNet's
// layers: stride 1, no padding, output rows a multiple of 8 wide) against
// the im2col path (kernels.SetLegacyGemm turns the direct path off).
func TestConv2dDirectMatchesIm2col(t *testing.T) {
	r := NewRNG(11)
	for _, sh := range [][2][]int{{{4, 1, 28, 28}, {16, 1, 5, 5}}, {{4, 16, 12, 12}, {32, 16, 5, 5}}} {
		x, w, b := randn(t, r, sh[0]...), randn(t, r, sh[1]...), randn(t, r, sh[1][0])
		var outs [2][4]*Tensor
		for i, legacy := range []bool{true, false} {
			prev := kernels.SetLegacyGemm(legacy)
			out := coreMust(Conv2d(x, w, b, Conv2dOptions{}))
			gout := coreMust(MulScalar(out, 0.5))
			gx, gw, gb, err := Conv2dBackward(x, w, gout, Conv2dOptions{}, all3)
			kernels.SetLegacyGemm(prev)
			if err != nil {
				t.Fatal(err)
			}
			outs[i] = [4]*Tensor{out, gx, gw, gb}
		}
		for k, what := range []string{"output", "input gradient", "weight gradient", "bias gradient"} {
			a, d := outs[0][k].Data(), outs[1][k].Data()
			for i := range a {
				if diff := math.Abs(float64(a[i] - d[i])); diff > 1e-3*(1+math.Abs(float64(a[i]))) {
					t.Fatalf("%v: %s element %d: direct %v; want %v (im2col)", sh, what, i, d[i], a[i])
				}
			}
		}
	}
}
