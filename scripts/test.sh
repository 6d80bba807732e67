#!/usr/bin/env bash
# test.sh runs every test of gorch: formatting, vet, the unit and
# integration tests (Fashion-MNIST training included) and the race detector
# over the concurrent parts.
set -euo pipefail
cd "$(dirname "$0")/.."
GORCH_SETUP_TEST_TOOLS=1 . scripts/setup.sh

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "not gofmt-formatted:"; echo "$bad"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 -timeout 30m ./...
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
	# The engine's tests again as on an AVX2-only CPU (AMD EPYC machines without
	# AVX-512): GODEBUG=cpu.avx512f=off makes feature detection report no
	# AVX-512, so the AVX2 paths are chosen and checked against the references.
	echo "== go test as on an AVX2-only CPU (GODEBUG=cpu.avx512f=off: engine, kernels, plans, training)"
	GODEBUG=cpu.avx512f=off go test -count=1 -timeout 20m ./pkg/... ./internal/kernels ./internal/plan
fi
if [ "$(uname -m)" = x86_64 ]; then
	# And on an emulated AVX2-only CPU: qemu-user with the AMD EPYC-Milan model
	# (AVX2+FMA, no AVX-512) reports that CPU's CPUID, so detection picks the
	# AVX2 paths from the CPU itself, and it executes every instruction, so an
	# AVX-512 instruction anywhere on those paths ends the test (SIGILL).
	echo "== engine tests on an emulated AVX2-only CPU (qemu-x86_64 -cpu EPYC-Milan: kernels, tensor, autograd, nn, optim, plans)"
	mkdir -p .cache/qemu
	for pkg in internal/kernels pkg/tensor pkg/autograd pkg/nn pkg/optim internal/plan; do
		echo "-- $pkg"
		bin=$PWD/.cache/qemu/$(basename "$pkg").test
		go test -c -o "$bin" "./$pkg"
		(cd "$pkg" && qemu-x86_64 -cpu EPYC-Milan "$bin" -test.count=1 -test.timeout=20m 2> >(grep -v "TCG doesn't support" >&2)) ||
			{ echo "FAIL: $pkg on the emulated AVX2-only CPU"; exit 1; }
	done
fi
echo "== go test -race (autograd scheduler, kernels)"
go test -count=1 -race -timeout 20m ./pkg/autograd/ ./internal/...
echo "== python (pytest, against a GOEXPERIMENT=cgocheck2 build of libgorch)"
# The venv lives outside the clone, keyed by python/requirements-test.txt
# (scripts/py-venv.sh; torch from PyPI for CPU use, as bench/run.sh installs it).
. scripts/py-venv.sh
PYVENV=$(py_venv_ensure)
mkdir -p .cache
lib=$PWD/.cache/libgorch-cgocheck2.so
GOEXPERIMENT=cgocheck2 go build -buildmode=c-shared -o "$lib" ./cmd/libgorch
go version -m "$lib" | grep -q 'GOEXPERIMENT=cgocheck2' || { echo "libgorch was not built with cgocheck2"; exit 1; }
go build -o .cache/gorch ./cmd/gorch
rc=0
GORCH_LIB=$lib GORCH_BIN=$PWD/.cache/gorch "$PYVENV/bin/python" -m pytest -q -p no:cacheprovider python/tests || rc=$?
case $rc in
0) ;;
5) echo "pytest: no tests were collected from python/tests (exit status 5); the suite has tests, so this is a failure"; exit 1 ;;
*) exit "$rc" ;;
esac
echo "== go test -tags k8s (deploy/k8s: helm, kustomize, kubeconform, a real API server, the manifests as processes, the image)"
go test -tags k8s -count=1 -timeout 30m -v ./tests/k8s/
