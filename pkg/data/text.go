package data

import (
	"slices"
	"strings"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/tensor"
)

// CharVocab maps the characters of an alphabet to token ids, their rank in
// the sorted alphabet.
type CharVocab struct {
	ids map[rune]int
}

// NewCharVocab returns the vocabulary of the distinct characters of alphabet.
func NewCharVocab(alphabet string) *CharVocab {
	rs := []rune(alphabet)
	slices.Sort(rs)
	rs = slices.Compact(rs)
	v := &CharVocab{ids: make(map[rune]int, len(rs))}
	for i, r := range rs {
		v.ids[r] = i
	}
	return v
}

// Size returns the number of tokens.
func (v *CharVocab) Size() int { return len(v.ids) }

// Encode returns the token ids of s; a character outside the alphabet is an
// errs.Data error naming it.
func (v *CharVocab) Encode(s string) ([]int, error) {
	out := make([]int, 0, len(s))
	for i, r := range s {
		id, ok := v.ids[r]
		if !ok {
			return nil, errs.New(errs.Data, "data.CharVocab.Encode", "character %q at byte %d is not in the vocabulary", r, i)
		}
		out = append(out, id)
	}
	return out, nil
}

// NextTokenDataset cuts a token sequence into non-overlapping windows of
// context tokens for next-token prediction: sample i has X = ids[i·T :
// i·T+T] and Y = ids[i·T+1 : i·T+T+1] (T = context), both [T] float32 token
// ids; the tail that does not fill a window is dropped.
func NextTokenDataset(ids []int, context int) (*TensorDataset, error) {
	const op = "data.NextTokenDataset"
	if context <= 0 {
		return nil, errs.New(errs.Argument, op, "context %d must be positive", context)
	}
	n := (len(ids) - 1) / context
	if n <= 0 {
		return nil, errs.New(errs.Data, op, "%d tokens do not fill one window of %d (plus the next token)", len(ids), context)
	}
	x, y := make([]float32, n*context), make([]float32, n*context)
	for i := range x {
		x[i], y[i] = float32(ids[i]), float32(ids[i+1])
	}
	xt, err := tensor.New(x, n, context)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	yt, err := tensor.New(y, n, context)
	if err != nil {
		return nil, errs.Wrap(errs.KindOf(err), op, err, "")
	}
	return newTensorDataset(xt, yt), nil
}

// The grammar's words. Nouns and verbs come in singular/plural pairs, and
// a verb agrees with its subject, so a model must carry the subject's
// number across the adjectives between them.
var (
	grammarNouns = [][2]string{{"cat", "cats"}, {"dog", "dogs"}, {"bird", "birds"}, {"child", "children"},
		{"robot", "robots"}, {"teacher", "teachers"}, {"river", "rivers"}, {"fox", "foxes"}}
	grammarNames   = []string{"alice", "bob", "maria", "tom"}
	grammarAdjs    = []string{"small", "red", "quiet", "old", "happy", "bright", "lazy"}
	grammarTrans   = [][2]string{{"sees", "see"}, {"likes", "like"}, {"follows", "follow"}, {"finds", "find"}, {"helps", "help"}}
	grammarIntrans = [][2]string{{"sleeps", "sleep"}, {"runs", "run"}, {"sings", "sing"}, {"waits", "wait"}}
	grammarAdvs    = []string{"quickly", "slowly", "today", "again", "quietly"}
	grammarPreps   = []string{"near", "under", "with", "behind"}
	grammarDets    = [2][]string{{"the", "a", "every", "this"}, {"the", "some", "many", "these"}}
)

// GrammarVocab returns the vocabulary of GrammarText: its letters, space,
// '.', ',' and newline.
func GrammarVocab() *CharVocab {
	var b strings.Builder
	b.WriteString(" .,\n")
	for _, l := range [][]string{grammarNames, grammarAdjs, grammarAdvs, grammarPreps, grammarDets[0], grammarDets[1]} {
		b.WriteString(strings.Join(l, ""))
	}
	for _, l := range [][][2]string{grammarNouns, grammarTrans, grammarIntrans} {
		for _, p := range l {
			b.WriteString(p[0] + p[1])
		}
	}
	return NewCharVocab(b.String())
}

// textGen writes sentences of the grammar, drawing choices from rng.
type textGen struct {
	rng *tensor.RNG
	b   strings.Builder
}

func (g *textGen) pick(words []string) string { return words[g.rng.Intn(len(words))] }

// nounPhrase writes a name or "det adj* noun" and returns the number of the
// phrase (0 singular, 1 plural).
func (g *textGen) nounPhrase() int {
	if g.rng.Intn(5) == 0 {
		g.b.WriteString(g.pick(grammarNames))
		return 0
	}
	num := g.rng.Intn(2)
	g.b.WriteString(g.pick(grammarDets[num]))
	for g.rng.Intn(3) == 0 {
		g.b.WriteString(" " + g.pick(grammarAdjs))
	}
	g.b.WriteString(" " + grammarNouns[g.rng.Intn(len(grammarNouns))][num])
	return num
}

// sentence writes "NP VP." with the verb agreeing with the subject.
func (g *textGen) sentence() {
	num := g.nounPhrase()
	g.b.WriteByte(' ')
	switch g.rng.Intn(3) {
	case 0:
		g.b.WriteString(grammarTrans[g.rng.Intn(len(grammarTrans))][num] + " ")
		g.nounPhrase()
	case 1:
		g.b.WriteString(grammarIntrans[g.rng.Intn(len(grammarIntrans))][num] + " " + g.pick(grammarAdvs))
	default:
		g.b.WriteString(grammarIntrans[g.rng.Intn(len(grammarIntrans))][num] + " " + g.pick(grammarPreps) + " ")
		g.nounPhrase()
	}
	if g.rng.Intn(4) == 0 {
		g.b.WriteString(", and ")
		g.sentence()
		return
	}
	g.b.WriteByte('.')
}

// GrammarText returns n characters of English-like text from a seeded
// probabilistic grammar (sentences such as "the small cats see a fox."),
// the same for the same seed. It gives a language model real structure to
// learn — spelling, word order, subject-verb agreement — in a corpus that
// is generated rather than shipped.
func GrammarText(n int, seed uint64) (string, error) {
	if n < 0 {
		return "", errs.New(errs.Argument, "data.GrammarText", "negative length %d", n)
	}
	g := &textGen{rng: tensor.NewRNG(seed)}
	for g.b.Len() < n {
		g.sentence()
		if g.rng.Intn(6) == 0 {
			g.b.WriteByte('\n')
		} else {
			g.b.WriteByte(' ')
		}
	}
	return g.b.String()[:n], nil
}
