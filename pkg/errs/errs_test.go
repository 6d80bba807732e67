package errs

import (
	"errors"
	"io/fs"
	"testing"
)

func TestKindIs(t *testing.T) {
	err := New(Shape, "matmul", "shapes %v and %v cannot be multiplied", []int{2, 3}, []int{4, 5})
	if got, want := err.Error(), "matmul: shapes [2 3] and [4 5] cannot be multiplied"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, Shape) {
		t.Errorf("errors.Is(err, Shape) = false, want true")
	}
	if errors.Is(err, Layout) {
		t.Errorf("errors.Is(err, Layout) = true, want false")
	}
	var te *TorchError
	if !errors.As(err, &te) || te.Op != "matmul" || te.Kind != Shape {
		t.Errorf("errors.As gave %+v", te)
	}
}

func TestWrapKeepsCause(t *testing.T) {
	err := Wrap(IO, "checkpoint.Save", fs.ErrPermission, "writing %s", "a.rtch")
	if !errors.Is(err, fs.ErrPermission) || !errors.Is(err, IO) {
		t.Fatalf("Wrap lost a kind or cause: %v", err)
	}
	if got, want := err.Error(), "checkpoint.Save: writing a.rtch: permission denied"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	outer := Wrap(Checkpoint, "load", err, "")
	if KindOf(outer) != Checkpoint || !errors.Is(outer, IO) || OpOf(outer) != "load" {
		t.Errorf("outer = %v: KindOf=%v", outer, KindOf(outer))
	}
	if Wrap(IO, "x", nil, "y") != nil {
		t.Errorf("Wrap(nil) != nil")
	}
}

func TestKindStrings(t *testing.T) {
	for k := Other; k < numKinds; k++ {
		if kindNames[k] == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
	if KindOf(errors.New("plain")) != Other {
		t.Errorf("KindOf(plain) != Other")
	}
	if got := Kind(200).String(); got != "kind(200)" {
		t.Errorf("Kind(200).String() = %q", got)
	}
}

func TestRetryable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{New(Training, "train", "loss is NaN at step 5"), false},
		{New(Config, "spec", "field %q: must be positive", "optimizer.lr"), false},
		{New(Shape, "matmul", "shapes differ"), false},
		{New(Memory, "admission", "needs 62 GiB, limit 4 GiB"), false},
		{New(Unsupported, "wire", "version 9"), false},
		{New(Internal, "train", "panic: x"), false},
		{Wrap(IO, "store.Put", fs.ErrPermission, ""), true},
		{New(Cluster, "publish", "no responders"), true},
		{errors.New("unclassified"), true},
		{Wrap(Training, "train", New(IO, "inner", "x"), ""), false}, // the outermost kind decides
		{nil, false},
	}
	for _, c := range cases {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v; want %v", c.err, got, c.want)
		}
	}
	for k := Other; k < numKinds; k++ {
		if got := ParseKind(k.String()); got != k {
			t.Errorf("ParseKind(%q) = %v; want %v", k.String(), got, k)
		}
	}
	if got := ParseKind("no-such-kind"); got != Other {
		t.Errorf("ParseKind(no-such-kind) = %v; want other", got)
	}
}
