// Package optim provides gradient-descent optimizers (SGD, Adam, AdamW),
// learning-rate schedulers (StepLR, CosineAnnealingLR, LinearWarmup) and
// gradient clipping, following PyTorch's semantics.
//
// # Parameters and state
//
// Optimizers take []nn.NamedParameter; per-parameter state (momentum
// buffers, Adam moments, step counts) is keyed by parameter name, so a
// [State] saved from one model loads into a freshly built copy of it. State
// holds only plain exported fields (float64, int64, string, []float32) and
// round-trips exactly through encoding/json; a state with NaN or infinite
// buffers cannot be JSON-encoded (encoding/json rejects them).
//
// Parameters whose Grad is nil are skipped by Step. Step updates each
// parameter's data in place (its storage), so the parameter Variables and
// any views of them stay valid. ZeroGrad sets every Grad to nil, like
// PyTorch's zero_grad(set_to_none=True).
//
// # Arithmetic
//
// Updates are computed element-wise in float32 in the same operation order
// as PyTorch's single-tensor (foreach=False) CPU implementations, with a
// fused multiply-add exactly where ATen's x86 kernels use one (Tensor.add
// with alpha, lerp, addcmul); scalar coefficients such as lr/(1-β₁ᵗ) and
// √(1-β₂ᵗ) are computed in float64 and rounded to float32, as PyTorch does
// with Python-float scalars. Checked against numbers PyTorch produced
// (testdata/torch_optim.json, scripts/torch_fixtures.py): SGD's parameters
// and buffers and Adam's moments equal PyTorch's bit for bit; Adam's
// parameter too, except where ATen's square root (MKL's) is not the
// correctly rounded one (about 1 value in 150 here), one ulp apart.
//
// # Schedulers
//
// A [Scheduler] owns the learning rate of one optimizer: it records the
// optimizer's LR at construction as the base LR, sets the LR for step 0
// immediately, and sets the LR for step t after its t-th Step call, using
// PyTorch's closed-form formulas. Call the scheduler's Step after the
// optimizer's Step, as in PyTorch.
package optim
