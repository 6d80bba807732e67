package kernels

// MaxPool2x2 is a 2×2, stride-2, unpadded max pool of one plane src [h, w]
// into dst and idx [h/2, w/2]: each window's maximum and the flat index
// (ih·w + iw, as float32) of its first maximum in row-major order, a NaN
// counting as the maximum. Where the vector path is on, each row's
// multiple of 8 outputs and 4-output row tails (two rows at a time) take
// the AVX2 kernel; the rest is scalar, with the same results.
func MaxPool2x2(src []float32, h, w int, dst, idx []float32) {
	oh, ow := h/2, w/2
	_, _, _ = src[h*w-1], dst[oh*ow-1], idx[oh*ow-1]
	if vecLevel.Load() == vecGo || h*w >= 1<<24 { // float32 indices stay exact below 2^24
		maxPoolRows(src, w, dst, idx, ow, 0, oh, 0)
		return
	}
	full := ow / 8 * 8
	k := [3]float32{1, float32(w), 16}
	if full > 0 {
		for r := range oh {
			b := float32(2 * r * w)
			i0 := [8]float32{b, b + 2, b + 4, b + 6, b + 8, b + 10, b + 12, b + 14}
			maxPool2x2AVX2(full/8, &src[2*r*w], 32, 4*w, 64, &dst[r*ow], &idx[r*ow], &i0, &k)
		}
	}
	r := 0
	if ow-full == 4 { // the 4-output tails of two rows as one vector
		for ; r+1 < oh; r += 2 {
			b := 2*r*w + 2*full
			fb, fc := float32(b), float32(b+2*w)
			i0 := [8]float32{fb, fb + 2, fb + 4, fb + 6, fc, fc + 2, fc + 4, fc + 6}
			var o, ix [8]float32
			maxPool2x2AVX2(1, &src[b], 8*w, 4*w, 0, &o[0], &ix[0], &i0, &k)
			copy(dst[r*ow+full:], o[:4])
			copy(dst[(r+1)*ow+full:], o[4:])
			copy(idx[r*ow+full:], ix[:4])
			copy(idx[(r+1)*ow+full:], ix[4:])
		}
	}
	maxPoolRows(src, w, dst, idx, ow, r, oh, full)
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
