package kernels

// MaxPool2x2 is a 2×2, stride-2, unpadded max pool of one plane src [h, w]
// into dst and idx [h/2, w/2]: each window's maximum and the flat index
// (ih·w + iw, as float32) of its first maximum in row-major order, a NaN
// counting as the maximum. Rows of at least 8 outputs, and planes of
// 4-wide rows two rows at a time, take the AVX2 kernel where the vector
// path is on; the rest is scalar, with the same results.
func MaxPool2x2(src []float32, h, w int, dst, idx []float32) {
	oh, ow := h/2, w/2
	_, _, _ = src[h*w-1], dst[oh*ow-1], idx[oh*ow-1]
	vec := vecLevel.Load() != vecGo && h*w < 1<<24 // float32 indices stay exact
	switch {
	case vec && ow >= 8:
		n := ow / 8
		for r := range oh {
			b := float32(2 * r * w)
			i0 := [8]float32{b, b + 2, b + 4, b + 6, b + 8, b + 10, b + 12, b + 14}
			k := [3]float32{1, float32(w), 16}
			maxPool2x2AVX2(n, &src[2*r*w], 32, 4*w, 64, &dst[r*ow], &idx[r*ow], &i0, &k)
			maxPoolRows(src, w, dst, idx, ow, r, r+1, 8*n)
		}
	case vec && ow == 4 && oh >= 2:
		b := float32(2 * w)
		i0 := [8]float32{0, 2, 4, 6, b, b + 2, b + 4, b + 6}
		k := [3]float32{1, float32(w), float32(4 * w)}
		maxPool2x2AVX2(oh/2, &src[0], 8*w, 4*w, 16*w, &dst[0], &idx[0], &i0, &k)
		maxPoolRows(src, w, dst, idx, ow, oh/2*2, oh, 0)
	default:
		maxPoolRows(src, w, dst, idx, ow, 0, oh, 0)
	}
}

// maxPoolRows is the scalar 2×2 pool of output rows [r0, r1), columns from c0.
func maxPoolRows(src []float32, w int, dst, idx []float32, ow, r0, r1, c0 int) {
	for r := r0; r < r1; r++ {
		for c := c0; c < ow; c++ {
			i := 2*r*w + 2*c
			best, bi := src[i], i
			for _, j := range [3]int{i + 1, i + w, i + w + 1} {
				if v := src[j]; v > best || v != v {
					best, bi = v, j
				}
			}
			dst[r*ow+c], idx[r*ow+c] = best, float32(bi)
		}
	}
}
