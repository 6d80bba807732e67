package data

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/gorch/gorch/pkg/errs"
)

func TestGrammarText(t *testing.T) {
	a, err := GrammarText(5000, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GrammarText(5000, 3)
	c, _ := GrammarText(5000, 4)
	if len(a) != 5000 || a != b || a == c {
		t.Fatalf("GrammarText: len %d, same seed equal %v, other seed equal %v; want 5000, true, false", len(a), a == b, a == c)
	}
	t.Logf("sample: %q", a[:200])
	ids, err := GrammarVocab().Encode(a)
	if err != nil {
		t.Fatalf("GrammarVocab cannot encode GrammarText: %v", err)
	}
	// Subject-verb agreement: plural determiners are never followed by a
	// singular verb in the same clause ("these cats sees").
	if strings.Contains(a, "these cat ") || strings.Contains(a, "a cats") {
		t.Errorf("number disagreement in %q", a)
	}
	if h := unigramEntropy(ids, GrammarVocab().Size()); h < 2.5 || h > 3.2 {
		t.Errorf("unigram entropy %.3f nats; want an English-like 2.5..3.2", h)
	}
}

// unigramEntropy is the entropy (nats) of the token frequencies in ids.
func unigramEntropy(ids []int, v int) float64 {
	counts := make([]float64, v)
	for _, id := range ids {
		counts[id]++
	}
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := c / float64(len(ids))
			h -= p * math.Log(p)
		}
	}
	return h
}

func TestNextTokenDataset(t *testing.T) {
	ds, err := NextTokenDataset([]int{0, 1, 2, 3, 4, 5, 6, 7}, 3)
	if err != nil {
		t.Fatal(err)
	}
	x, y, err := ds.Gather([]int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := x.Data(), []float32{0, 1, 2, 3, 4, 5}; !equalF(got, want) {
		t.Errorf("x = %v; want %v", got, want)
	}
	if got, want := y.Data(), []float32{1, 2, 3, 4, 5, 6}; !equalF(got, want) {
		t.Errorf("y = %v; want %v", got, want)
	}
	for _, c := range []struct {
		ids     []int
		context int
		kind    errs.Kind
	}{{[]int{1, 2}, 0, errs.Argument}, {[]int{1, 2}, 2, errs.Data}} {
		if _, err := NextTokenDataset(c.ids, c.context); !errors.Is(err, c.kind) {
			t.Errorf("NextTokenDataset(%v, %d) = %v; want kind %v", c.ids, c.context, err, c.kind)
		}
	}
	if _, err := NewCharVocab("ab").Encode("abc"); !errors.Is(err, errs.Data) {
		t.Errorf("Encode with an unknown character = %v; want kind Data", err)
	}
	if _, err := GrammarText(-1, 1); !errors.Is(err, errs.Argument) {
		t.Errorf("GrammarText(-1) = %v; want kind Argument", err)
	}
}

func equalF(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
