package plan

import (
	"github.com/gorch/gorch/pkg/errs"
)

// EnableTestOps registers two operators for fault tests, each taking one
// float32 tensor: gorch_test.panic.default panics and
// gorch_test.fail.default fails as an engine operator would (an error of
// kind Shape). libgorch enables them when GORCH_TEST_HOOKS=1, so that
// Python tests can reach the recovery paths; call it before any plan
// is built.
func EnableTestOps() {
	registry["gorch_test.panic.default"] = opSpec{build: func(a *args) kernel {
		a.tensor(0)
		return func(*state) (res, error) { panic("gorch_test.panic: a panic inside a plan, on purpose") }
	}}
	registry["gorch_test.fail.default"] = opSpec{build: func(a *args) kernel {
		x := a.tensor(0)
		return func(s *state) (res, error) {
			return nil, errs.New(errs.Shape, "gorch_test.fail", "an engine error on purpose (input shape %v)", x.get(s).Shape())
		}
	}}
}
