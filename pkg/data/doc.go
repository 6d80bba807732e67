// Package data provides datasets and deterministic, resumable batch loaders
// for gorch.
//
// # Datasets
//
// A [TensorDataset] pairs an input tensor X of shape [N, ...] with a target
// tensor Y of shape [N, ...]; sample i is row i of each. Datasets come from
// tensors ([NewTensorDataset]), from the synthetic factories
// ([GaussianBlobs], [TwoMoons], [Spirals], [LinearRegression]) or from IDX
// files such as (Fashion-)MNIST ([ReadIDX], [LoadMNIST]). Classification
// labels are float32 class indices, since tensors are float32 only.
//
// Text for language models is character-level: [GrammarText] generates a
// seeded English-like corpus, a [CharVocab] maps its characters to token
// ids, and [NextTokenDataset] cuts the ids into windows whose targets are
// the next tokens.
//
// # Loading batches
//
// A [Loader] cuts a [Dataset] into batches. It is driven one epoch at a
// time:
//
//	l, err := data.NewLoader(ds, data.LoaderOptions{BatchSize: 64, Shuffle: true, Seed: 1})
//	for epoch := 0; epoch < epochs; epoch++ {
//		l.StartEpoch(epoch)
//		for l.Next() {
//			x, y := l.Batch()
//			...
//		}
//		if err := l.Err(); err != nil { ... }
//	}
//
// Epochs never advance on their own: Next returns false at the end of the
// epoch and the caller starts the next one with [Loader.StartEpoch] or
// [Loader.NextEpoch].
//
// # Determinism and resumption
//
// The order of the samples in an epoch is a permutation that depends only on
// (Seed, epoch) — never on how the loader got there — and is the identity
// when Shuffle is false. A loader's position is a [Cursor]: the epoch and
// the number of samples of that epoch's order already consumed. Saving
// [Loader.Cursor] (it marshals to JSON as {"epoch":E,"position":P}) and
// later calling [Loader.Seek] on a loader built with the same options and
// dataset yields exactly the batches an uninterrupted run would have yielded.
//
// # Errors
//
// Invalid arguments are errors of kind [errs.Argument], mismatched shapes
// [errs.Shape], and missing, truncated or corrupt dataset files [errs.Data]
// (a missing file wraps the file-system error, so errors.Is(err,
// fs.ErrNotExist) holds). No function panics on bad input or bad files.
package data
