// Package nn provides neural-network modules built on gorch's autograd:
// layers (Linear, Conv2d, pooling, activations, Dropout, Flatten,
// LayerNorm, Embedding), transformer parts (CausalSelfAttention,
// FeedForward, the pre-norm Block), the Sequential container, model
// constructors (MLP, LeNet, GPT) and state-dict helpers for checkpointing.
//
// # Modules
//
// A [Module] maps one variable to another with [Module.Forward], lists its
// trainable parameters with [Module.Parameters] and switches between
// training and evaluation behaviour with [Module.Train]. Parameter names
// follow PyTorch: a Linear has "weight" and "bias"; a Sequential prefixes
// each child's names with the child's index, so a two-layer MLP has
// "0.weight", "0.bias", "2.weight", "2.bias". The order of Parameters is
// stable (children in order, weight before bias), so optimizers and
// checkpoints may rely on it.
//
// Modules start in training mode. Parameter-free layers need no
// constructor: &nn.ReLU{}, &nn.GELU{}, &nn.Tanh{}, &nn.Sigmoid{} and
// &nn.Flatten{} are ready to use.
//
// # Initialisation
//
// Linear and Conv2d use PyTorch's defaults: the weight is drawn by
// kaiming_uniform_(a=√5), which is U(-1/√fan_in, 1/√fan_in), and the bias
// from U(-1/√fan_in, 1/√fan_in), where fan_in is the number of inputs of
// one output unit (in for Linear, inC·k·k for Conv2d). Constructors take a
// *tensor.RNG and draw the weight first, then the bias, so a model built
// from the same seed is identical.
//
// # State dicts
//
// [StateDict] snapshots a module's parameters as an ordered [TensorDict];
// [LoadStateDict] copies values back into the existing parameter tensors,
// so the parameter Variables (and any optimizer holding them) are unchanged.
package nn
