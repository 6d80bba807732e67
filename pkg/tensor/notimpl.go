package tensor

import "github.com/gorch/gorch/pkg/errs"

// notImpl reports an operation that is declared but not yet implemented.
func notImpl(op string) error { return errs.New(errs.Internal, op, "not implemented") }
