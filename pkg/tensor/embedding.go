package tensor

import (
	"github.com/gorch/gorch/internal/kernels"
	"github.com/gorch/gorch/pkg/errs"
)

var (
	statEmbedding         = stat("embedding")
	statEmbeddingBackward = stat("embedding_backward")
)

// Embedding looks up rows of weight [V, D] at indices (any shape, integral
// values in [0, V)), as torch.embedding: the result has shape
// indices.shape + [D].
func Embedding(weight, indices *Tensor) (*Tensor, error) {
	s := statEmbedding
	if err := checkIn(s, weight, indices); err != nil {
		return nil, err
	}
	if len(weight.shape) != 2 {
		return nil, errs.New(errs.Shape, s.name, "weight of shape %v is not 2-dimensional", weight.shape)
	}
	if len(indices.shape) >= MaxRank {
		return nil, errs.New(errs.Argument, s.name, "indices of shape %v leave no room for the embedding dimension", indices.shape)
	}
	idx, err := readIndices(s.name, indices, weight.shape[0])
	if err != nil {
		return nil, err
	}
	d := weight.shape[1]
	out := newContiguous(scopeOf(weight, indices), append(indices.Shape(), d))
	if d == 0 {
		return out, nil
	}
	row := []int{d}
	for j, k := range idx {
		moveInto(out.storage.data, j*d, []int{1}, weight.storage.data, row, weight.strides[1:], weight.offset+k*weight.strides[0], false)
	}
	return out, nil
}

// EmbeddingBackward returns the gradient of Embedding with respect to its
// weight, [numWeights, D]: row k is the sum of the rows of g (shape
// indices.shape + [D]) whose index is k, accumulated in float64 in index
// order, as torch.embedding_dense_backward. Rows at paddingIdx get no
// gradient; -1 means no padding index.
func EmbeddingBackward(g, indices *Tensor, numWeights, paddingIdx int) (*Tensor, error) {
	s := statEmbeddingBackward
	if err := checkIn(s, g, indices); err != nil {
		return nil, err
	}
	if numWeights < 0 || paddingIdx < -1 || paddingIdx >= numWeights {
		return nil, errs.New(errs.Argument, s.name, "padding index %d is not -1 or in [0, %d)", paddingIdx, numWeights)
	}
	r := len(indices.shape)
	if len(g.shape) != r+1 || !EqualShape(g.shape[:r], indices.shape) {
		return nil, errs.New(errs.Shape, s.name, "gradient of shape %v does not match indices of shape %v plus an embedding dimension", g.shape, indices.shape)
	}
	if _, err := checkShape(s.name, []int{numWeights, g.shape[r]}); err != nil {
		return nil, err
	}
	idx, err := readIndices(s.name, indices, numWeights)
	if err != nil {
		return nil, err
	}
	d := g.shape[r]
	acc := make([]float64, numWeights*d)
	gd := g.Data() // read in place when contiguous
	for j, k := range idx {
		if k == paddingIdx {
			continue
		}
		kernels.VecAccumF64(acc[k*d:(k+1)*d], gd[j*d:(j+1)*d])
	}
	return fromData(scopeOf(g, indices), toF32(acc, 1), []int{numWeights, d}), nil
}
