package testutil

import (
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// NATSErrors records a NATS connection's asynchronous errors, among them
// the server's permission violations: connect with
// nats.ErrorHandler(e.Handler).
type NATSErrors struct {
	mu   sync.Mutex
	errs []string
}

// Handler is the connection's nats.ErrHandler.
func (e *NATSErrors) Handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	e.mu.Lock()
	e.errs = append(e.errs, err.Error())
	e.mu.Unlock()
}

// Refused reports whether the server refused subj to the connection (a
// permissions violation naming it, for a publish or a subscription).
func (e *NATSErrors) Refused(subj string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.errs, func(s string) bool {
		return strings.Contains(strings.ToLower(s), "permissions violation") && strings.Contains(s, `"`+subj+`"`)
	})
}

// All returns every error recorded so far.
func (e *NATSErrors) All() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.errs)
}
