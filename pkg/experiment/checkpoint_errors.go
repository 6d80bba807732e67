package experiment

import (
	"fmt"

	"github.com/gorch/gorch/pkg/errs"
)

// Reason says why a checkpoint failed to load. Every Reason is an error, so
// a caller can test for one with errors.Is:
//
//	if errors.Is(err, experiment.ReasonTruncated) { ... }
//
// and reach the details with errors.As and a [*CorruptionError]. Every
// corruption error is also errors.Is(err, errs.Checkpoint).
type Reason uint8

// The reasons a checkpoint is rejected.
const (
	ReasonBadMagic           Reason = iota + 1 // the file does not start with "RTCH"
	ReasonUnsupportedVersion                   // unknown major version or feature flag
	ReasonTruncated                            // the file is shorter than its layout says
	ReasonHeaderTooLarge                       // the header length exceeds MaxCheckpointHeader
	ReasonHeaderChecksum                       // the preamble or header CRC32C does not match
	ReasonBadHeader                            // the preamble fields or header JSON are malformed
	ReasonBadTensorTable                       // the tensor table or optimizer references are inconsistent
	ReasonTensorChecksum                       // a tensor's bytes do not match its CRC32C
	ReasonMissingFooter                        // the commit footer is absent, damaged or misplaced
)

var reasonNames = [...]string{
	ReasonBadMagic:           "bad magic",
	ReasonUnsupportedVersion: "unsupported version",
	ReasonTruncated:          "truncated",
	ReasonHeaderTooLarge:     "header too large",
	ReasonHeaderChecksum:     "header checksum mismatch",
	ReasonBadHeader:          "bad header",
	ReasonBadTensorTable:     "bad tensor table",
	ReasonTensorChecksum:     "tensor checksum mismatch",
	ReasonMissingFooter:      "missing footer",
}

// String returns the reason in words, e.g. "truncated".
func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Error makes a Reason usable as an errors.Is target.
func (r Reason) Error() string { return "rtch: " + r.String() }

// CorruptionError describes a checkpoint that is corrupt, truncated or of
// an unsupported version. It reaches callers wrapped in an
// [*errs.TorchError] of kind errs.Checkpoint.
type CorruptionError struct {
	Reason Reason
	Offset int64  // file offset where the problem was found, or -1
	Tensor string // the tensor concerned, if any
	Msg    string // details, naming the offending values
}

func (e *CorruptionError) Error() string {
	s := e.Reason.String()
	if e.Tensor != "" {
		s += fmt.Sprintf(" (tensor %q)", e.Tensor)
	}
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Is reports whether target is e's Reason or errs.Checkpoint.
func (e *CorruptionError) Is(target error) bool {
	switch t := target.(type) {
	case Reason:
		return t == e.Reason
	case errs.Kind:
		return t == errs.Checkpoint
	}
	return false
}

// corrupt returns a corruption error for op.
func corrupt(op string, r Reason, off int64, tensor, format string, args ...any) error {
	return &errs.TorchError{Kind: errs.Checkpoint, Op: op,
		Err: &CorruptionError{Reason: r, Offset: off, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}}
}
