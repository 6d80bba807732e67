// Package errs is gorch's one error taxonomy.
//
// Every error gorch returns is, or wraps, a [*TorchError]: a [Kind] that
// callers branch on, the operation that failed, a message naming the
// offending values, and the wrapped cause. Kinds are themselves errors, so a
// caller tests the kind with [errors.Is]:
//
//	if errors.Is(err, errs.Shape) { ... }
//
// and reaches the details with [errors.As]:
//
//	var te *errs.TorchError
//	if errors.As(err, &te) { log.Println(te.Op) }
package errs

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error. The zero Kind is Other.
type Kind uint8

// The kinds of gorch errors. Test for them with errors.Is(err, errs.Shape).
const (
	Other       Kind = iota // unclassified
	Layout                  // a tensor's shape, strides or offset do not describe valid memory
	Shape                   // operand shapes are incompatible with the operation
	Argument                // an argument is out of range or otherwise invalid
	Checkpoint              // a checkpoint is corrupt, truncated or incompatible
	Training                // training diverged or could not proceed
	Experiment              // a run record is missing or inconsistent
	Config                  // a flag or spec file is invalid
	IO                      // reading or writing storage failed
	Cluster                 // messaging, scheduling or a remote service failed
	Data                    // a dataset is missing, truncated or corrupt
	Internal                // an invariant inside gorch was broken
	Memory                  // the work does not fit in the memory it may use
	Unsupported             // a format, version or feature this build does not support
	numKinds
)

var kindNames = [numKinds]string{
	Other: "other", Layout: "layout", Shape: "shape", Argument: "argument",
	Checkpoint: "checkpoint", Training: "training", Experiment: "experiment",
	Config: "config", IO: "io", Cluster: "cluster", Data: "data", Internal: "internal",
	Memory: "memory", Unsupported: "unsupported",
}

// retryable says which kinds of failure another attempt of the same work
// can get past. I/O and cluster errors are transient (a store or broker
// outage, a lost lease); an error of no known kind is treated as
// transient too. Every other kind is deterministic: the same spec fails
// the same way again (a bad spec, a shape or layout error, a NaN loss,
// out of memory, a corrupt checkpoint or dataset, a bug).
var retryable = [numKinds]bool{Other: true, IO: true, Cluster: true, Experiment: true}

// Retryable reports whether a retry of the work that failed with an error
// of this kind can succeed (see [Retryable]).
func (k Kind) Retryable() bool { return k < numKinds && retryable[k] }

// Retryable reports whether another attempt could succeed where err
// failed: the kind of the outermost *TorchError decides (I/O, cluster and
// experiment errors and unclassified errors: yes; config, shape, layout,
// argument, training, checkpoint, data, memory, unsupported, internal:
// no). It is the one place the cluster decides whether to retry a run.
func Retryable(err error) bool { return err != nil && KindOf(err).Retryable() }

// ParseKind returns the Kind named name ("shape"), or Other for a name it
// does not know.
func ParseKind(name string) Kind {
	for k, n := range kindNames {
		if n == name {
			return Kind(k)
		}
	}
	return Other
}

// String returns the kind's lower-case name, e.g. "shape".
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error makes a Kind usable as an errors.Is target.
func (k Kind) Error() string { return "gorch: " + k.String() + " error" }

// TorchError is the error type of all of gorch. Its message reads
// "op: message: cause".
type TorchError struct {
	Kind Kind   // what class of failure
	Op   string // the operation, e.g. "matmul" or "checkpoint.Load"
	Msg  string // what is wrong, naming the offending values
	Err  error  // the underlying cause, if any
}

func (e *TorchError) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
	}
	if e.Msg != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Msg)
	}
	if e.Err != nil {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	if b.Len() == 0 {
		return e.Kind.Error()
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *TorchError) Unwrap() error { return e.Err }

// Is reports whether target is this error's Kind.
func (e *TorchError) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// New returns a *TorchError of the given kind for op, with a formatted message.
func New(kind Kind, op, format string, args ...any) error {
	return &TorchError{Kind: kind, Op: op, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns a *TorchError of the given kind for op that wraps cause. The
// message may be empty. Wrap(kind, op, nil, ...) returns nil.
func Wrap(kind Kind, op string, cause error, format string, args ...any) error {
	if cause == nil {
		return nil
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &TorchError{Kind: kind, Op: op, Msg: msg, Err: cause}
}

// KindOf returns the Kind of the outermost *TorchError in err's chain, or
// Other if there is none.
func KindOf(err error) Kind {
	var te *TorchError
	if errors.As(err, &te) {
		return te.Kind
	}
	return Other
}

// OpOf returns the Op of the outermost *TorchError in err's chain, or "".
func OpOf(err error) string {
	var te *TorchError
	if errors.As(err, &te) {
		return te.Op
	}
	return ""
}
