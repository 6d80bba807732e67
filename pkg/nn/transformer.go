package nn

import (
	"math"
	"strconv"

	"github.com/gorch/gorch/pkg/autograd"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// prefixed returns ps with each name prefixed by prefix and a dot.
func prefixed(prefix string, ps []NamedParameter) []NamedParameter {
	out := make([]NamedParameter, len(ps))
	for i, p := range ps {
		out[i] = NamedParameter{Name: prefix + "." + p.Name, Param: p.Param}
	}
	return out
}

// children is embedded by modules built from named submodules: it
// collects their parameters with the children's names as prefixes and
// passes Train on to them.
type children struct {
	mode
	names []string
	mods  []Module
}

func (c *children) add(name string, m Module) {
	c.names = append(c.names, name)
	c.mods = append(c.mods, m)
}

// Parameters returns the children's parameters, prefixed by their names.
func (c *children) Parameters() []NamedParameter {
	var out []NamedParameter
	for i, m := range c.mods {
		out = append(out, prefixed(c.names[i], m.Parameters())...)
	}
	return out
}

// Train sets the mode of the module and of every child.
func (c *children) Train(on bool) {
	c.mode.Train(on)
	for _, m := range c.mods {
		m.Train(on)
	}
}

// LayerNorm normalises over the trailing dimensions Shape and applies an
// elementwise affine transform, as torch.nn.LayerNorm: the weight starts at
// ones and the bias at zeros.
type LayerNorm struct {
	mode
	Shape  []int
	Eps    float32
	Weight *autograd.Variable // Shape, or nil without the affine transform
	Bias   *autograd.Variable // Shape, or nil
}

// NewLayerNorm returns a LayerNorm over the trailing dims shape, with a
// learnable weight and bias when affine is set.
func NewLayerNorm(shape []int, eps float32, affine bool) (*LayerNorm, error) {
	const op = "nn.LayerNorm"
	if len(shape) == 0 {
		return nil, errs.New(errs.Argument, op, "empty normalized shape")
	}
	if !(eps >= 0) {
		return nil, errs.New(errs.Argument, op, "eps %v is negative", eps)
	}
	l := &LayerNorm{Shape: append([]int(nil), shape...), Eps: eps}
	if !affine {
		return l, nil
	}
	w, err := tensor.Ones(shape...)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	b, err := tensor.Zeros(shape...)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	l.Weight, l.Bias = autograd.Param(w), autograd.Param(b)
	return l, nil
}

// Forward normalises x.
func (l *LayerNorm) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	return autograd.LayerNorm(x, l.Shape, l.Weight, l.Bias, l.Eps)
}

// Parameters returns "weight" and "bias" when affine.
func (l *LayerNorm) Parameters() []NamedParameter {
	if l.Weight == nil {
		return nil
	}
	return weightBias(l.Weight, l.Bias)
}

// Embedding maps integer indices to rows of a learnable table, as
// torch.nn.Embedding. Its input's values are the indices (float32 holding
// integers in [0, Num)); no gradient flows to them.
type Embedding struct {
	mode
	Num, Dim int
	Weight   *autograd.Variable // [Num, Dim]
}

// NewEmbedding returns a table of num rows of dim values drawn from
// N(0, std²) (PyTorch's default is std 1; GPT-2 uses 0.02).
func NewEmbedding(num, dim int, std float32, rng *tensor.RNG) (*Embedding, error) {
	const op = "nn.Embedding"
	if num <= 0 || dim <= 0 {
		return nil, errs.New(errs.Argument, op, "num_embeddings %d and embedding_dim %d must be positive", num, dim)
	}
	w, err := tensor.Normal(rng, 0, std, num, dim)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	return &Embedding{Num: num, Dim: dim, Weight: autograd.Param(w)}, nil
}

// Forward looks up the rows at the indices in x: [...] -> [..., Dim].
func (e *Embedding) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	if x == nil || x.Data == nil {
		return nil, errs.New(errs.Argument, "embedding", "nil indices")
	}
	return autograd.Embedding(e.Weight, x.Data, -1)
}

// Parameters returns "weight".
func (e *Embedding) Parameters() []NamedParameter { return weightBias(e.Weight, nil) }

// CausalSelfAttention is multi-head self-attention in which each position
// attends to itself and the positions before it. One Linear ("c_attn")
// projects x [B, T, D] to queries, keys and values; attention runs per
// head on slices of that projection ([autograd.AttentionQKV], fused:
// no copies of the heads); a second Linear ("c_proj") mixes the heads.
type CausalSelfAttention struct {
	children
	Heads int
	QKV   *Linear
	Proj  *Linear
}

// NewCausalSelfAttention returns attention over dim features split into
// heads heads (dim must be a multiple of heads).
func NewCausalSelfAttention(dim, heads int, rng *tensor.RNG) (*CausalSelfAttention, error) {
	const op = "nn.CausalSelfAttention"
	if heads <= 0 || dim <= 0 || dim%heads != 0 {
		return nil, errs.New(errs.Argument, op, "dimension %d is not a positive multiple of %d heads", dim, heads)
	}
	qkv, err := NewLinear(dim, 3*dim, true, rng)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	proj, err := NewLinear(dim, dim, true, rng)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	a := &CausalSelfAttention{Heads: heads, QKV: qkv, Proj: proj}
	a.add("c_attn", qkv)
	a.add("c_proj", proj)
	return a, nil
}

// Forward attends over x [B, T, D].
func (a *CausalSelfAttention) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	const op = "nn.CausalSelfAttention"
	if x == nil || x.Data == nil || x.Data.Dim() != 3 || x.Data.Shape()[2] != a.QKV.In {
		return nil, errs.New(errs.Shape, op, "input must be [B, T, %d], got %v", a.QKV.In, shapeOf(x))
	}
	qkv, err := a.QKV.Forward(x)
	if err != nil {
		return nil, err
	}
	y, err := autograd.AttentionQKV(qkv, a.Heads, tensor.AttentionOptions{Causal: true})
	if err != nil {
		return nil, err
	}
	return a.Proj.Forward(y)
}

func shapeOf(x *autograd.Variable) []int {
	if x == nil || x.Data == nil {
		return nil
	}
	return x.Data.Shape()
}

// FeedForward is the transformer's position-wise MLP: Linear ("c_fc",
// D -> Hidden), GELU, Linear ("c_proj", Hidden -> D).
type FeedForward struct {
	children
	Up, Down *Linear
	Act      *GELU
}

// NewFeedForward returns a GELU MLP from dim to hidden and back.
func NewFeedForward(dim, hidden int, rng *tensor.RNG) (*FeedForward, error) {
	const op = "nn.FeedForward"
	up, err := NewLinear(dim, hidden, true, rng)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	down, err := NewLinear(hidden, dim, true, rng)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	f := &FeedForward{Up: up, Down: down, Act: &GELU{}}
	f.add("c_fc", up)
	f.add("c_proj", down)
	return f, nil
}

// Forward applies the MLP to the last dimension of x.
func (f *FeedForward) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	h, err := f.Up.Forward(x)
	if err != nil {
		return nil, err
	}
	if h, err = f.Act.Forward(h); err != nil {
		return nil, err
	}
	return f.Down.Forward(h)
}

// Block is a pre-norm transformer block:
//
//	x = x + Drop(Attn(LN1(x)))
//	x = x + Drop(MLP(LN2(x)))
//
// with parameters named "ln_1.*", "attn.*", "ln_2.*", "mlp.*" (GPT-2's
// names).
type Block struct {
	children
	LN1, LN2 *LayerNorm
	Attn     *CausalSelfAttention
	MLP      *FeedForward
	Drop     *Dropout // nil without dropout
}

// NewBlock returns a block of width dim with heads attention heads, a 4·dim
// MLP and residual dropout p (0: none; rng draws the masks).
func NewBlock(dim, heads int, p float32, init, rng *tensor.RNG) (*Block, error) {
	const op = "nn.Block"
	ln1, err := NewLayerNorm([]int{dim}, 1e-5, true)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	ln2, _ := NewLayerNorm([]int{dim}, 1e-5, true)
	attn, err := NewCausalSelfAttention(dim, heads, init)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	mlp, err := NewFeedForward(dim, 4*dim, init)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	blk := &Block{LN1: ln1, LN2: ln2, Attn: attn, MLP: mlp}
	if p > 0 {
		if blk.Drop, err = NewDropout(p, rng); err != nil {
			return nil, errs.Wrap(errs.KindOf(err), op, err, "")
		}
	}
	blk.add("ln_1", ln1)
	blk.add("attn", attn)
	blk.add("ln_2", ln2)
	blk.add("mlp", mlp)
	if blk.Drop != nil {
		blk.add("drop", blk.Drop)
	}
	return blk, nil
}

// Forward applies the block to x [B, T, D].
func (b *Block) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	for _, sub := range [2][2]Module{{b.LN1, b.Attn}, {b.LN2, b.MLP}} {
		h, err := sub[0].Forward(x)
		if err != nil {
			return nil, err
		}
		if h, err = sub[1].Forward(h); err != nil {
			return nil, err
		}
		if b.Drop != nil {
			if h, err = b.Drop.Forward(h); err != nil {
				return nil, err
			}
		}
		if x, err = autograd.Add(x, h); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// GPTConfig sizes a GPT.
type GPTConfig struct {
	Vocab   int     // tokens
	Context int     // longest sequence (learned positions)
	Layers  int     // transformer blocks
	Dim     int     // model width d_model
	Heads   int     // attention heads per block; Dim must be a multiple
	Dropout float32 // on the embeddings and every residual branch; 0: none
}

// GPT is a decoder-only transformer language model (GPT-2's layout): token
// and learned position embeddings, Layers pre-norm [Block]s, a final
// LayerNorm and an untied linear head without bias. Forward maps token
// indices [B, T] (T <= Context) to logits [B, T, Vocab]. Parameter names
// follow GPT-2/nanoGPT: "wte.weight", "wpe.weight", "h.0.ln_1.weight", ...,
// "ln_f.bias", "lm_head.weight".
type GPT struct {
	children
	Config   GPTConfig
	Tok, Pos *Embedding
	Blocks   []*Block
	LNF      *LayerNorm
	Head     *Linear
	Drop     *Dropout // nil without dropout
}

// NewGPT returns a GPT initialised as GPT-2: Linear and Embedding weights
// from N(0, 0.02²), biases 0, and the residual projections (c_proj) from
// N(0, (0.02/√(2·Layers))²). init draws the weights, rng the dropout masks.
func NewGPT(cfg GPTConfig, init, rng *tensor.RNG) (*GPT, error) {
	const op = "nn.GPT"
	if cfg.Vocab <= 0 || cfg.Context <= 0 || cfg.Layers <= 0 || cfg.Dim <= 0 || cfg.Heads <= 0 {
		return nil, errs.New(errs.Argument, op, "vocab %d, context %d, layers %d, dim %d and heads %d must be positive",
			cfg.Vocab, cfg.Context, cfg.Layers, cfg.Dim, cfg.Heads)
	}
	if init == nil {
		return nil, errs.New(errs.Argument, op, "nil RNG")
	}
	g := &GPT{Config: cfg}
	var err error
	if g.Tok, err = NewEmbedding(cfg.Vocab, cfg.Dim, 0.02, init); err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	if g.Pos, err = NewEmbedding(cfg.Context, cfg.Dim, 0.02, init); err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	g.add("wte", g.Tok)
	g.add("wpe", g.Pos)
	for i := 0; i < cfg.Layers; i++ {
		blk, err := NewBlock(cfg.Dim, cfg.Heads, cfg.Dropout, init, rng)
		if err != nil {
			return nil, errs.Wrap(errs.KindOf(err), op, err, "block %d", i)
		}
		g.Blocks = append(g.Blocks, blk)
		g.add("h."+strconv.Itoa(i), blk)
	}
	g.LNF, _ = NewLayerNorm([]int{cfg.Dim}, 1e-5, true)
	if g.Head, err = NewLinear(cfg.Dim, cfg.Vocab, false, init); err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	g.add("ln_f", g.LNF)
	g.add("lm_head", g.Head)
	if cfg.Dropout > 0 {
		if g.Drop, err = NewDropout(cfg.Dropout, rng); err != nil {
			return nil, errs.Wrap(errs.KindOf(err), op, err, "")
		}
		g.add("drop", g.Drop)
	}
	if err := g.initGPT2(init); err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	return g, nil
}

// initGPT2 redraws the Linear layers' weights from N(0, 0.02²) (the
// residual projections c_proj with std 0.02/√(2·Layers)) and zeroes their
// biases; the embeddings were drawn so already.
func (g *GPT) initGPT2(rng *tensor.RNG) error {
	resid := float32(0.02 / math.Sqrt(2*float64(g.Config.Layers)))
	type layer struct {
		l   *Linear
		std float32
	}
	var ls []layer
	for _, b := range g.Blocks {
		ls = append(ls, layer{b.Attn.QKV, 0.02}, layer{b.Attn.Proj, resid}, layer{b.MLP.Up, 0.02}, layer{b.MLP.Down, resid})
	}
	for _, x := range append(ls, layer{g.Head, 0.02}) {
		w, err := tensor.Normal(rng, 0, x.std, x.l.Out, x.l.In)
		if err != nil {
			return err
		}
		x.l.Weight.Data = w
		if x.l.Bias != nil {
			if x.l.Bias.Data, err = tensor.Zeros(x.l.Out); err != nil {
				return err
			}
		}
	}
	return nil
}

// Forward maps token indices x [B, T] to logits [B, T, Vocab].
func (g *GPT) Forward(x *autograd.Variable) (*autograd.Variable, error) {
	const op = "nn.GPT"
	s := shapeOf(x)
	if len(s) != 2 || s[1] == 0 || s[1] > g.Config.Context {
		return nil, errs.New(errs.Shape, op, "tokens must be [B, T] with 0 < T <= %d, got %v", g.Config.Context, s)
	}
	pos, err := tensor.Arange(s[1])
	if err != nil {
		return nil, err
	}
	tok, err := g.Tok.Forward(x)
	if err != nil {
		return nil, err
	}
	pe, err := g.Pos.Forward(autograd.Const(pos))
	if err != nil {
		return nil, err
	}
	h, err := autograd.Add(tok, pe)
	if err != nil {
		return nil, err
	}
	if g.Drop != nil {
		if h, err = g.Drop.Forward(h); err != nil {
			return nil, err
		}
	}
	for i, blk := range g.Blocks {
		if h, err = blk.Forward(h); err != nil {
			return nil, errs.Wrap(errs.KindOf(err), op, err, "block %d", i)
		}
	}
	if h, err = g.LNF.Forward(h); err != nil {
		return nil, err
	}
	return g.Head.Forward(h)
}
