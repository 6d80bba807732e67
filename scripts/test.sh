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
echo "== go test -race (autograd scheduler, kernels)"
go test -count=1 -race -timeout 20m ./pkg/autograd/ ./internal/...
