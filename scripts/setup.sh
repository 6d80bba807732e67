#!/usr/bin/env bash
# setup.sh installs what gorch needs on a Debian machine, idempotently:
# the Go toolchain named in go.mod (from the Go module proxy when the
# machine has no recent enough Go) and the Fashion-MNIST dataset; with
# GORCH_SETUP_TEST_TOOLS=1 also the integration tests' servers, versitygw
# and Jaeger, into ./.cache/bin. Source it (". scripts/setup.sh") so that
# PATH reaches the Go it installed.
set -euo pipefail

GO_WANT=1.26.8
FMNIST_DIR=/usr/share/datasets/fashion-mnist

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

go_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local v; v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  [ "$(printf '%s\n%s\n' "$GO_WANT" "$v" | sort -V | head -n1)" = "$GO_WANT" ]
}

if ! go_ok && [ -x /usr/local/go/bin/go ]; then export PATH=/usr/local/go/bin:$PATH; fi
if ! go_ok; then
  echo "setup: installing Go $GO_WANT into /usr/local/go" >&2
  command -v curl >/dev/null 2>&1 && command -v unzip >/dev/null 2>&1 || apt_install curl unzip ca-certificates
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${GO_WANT}.linux-amd64.zip"
  unzip -q "$tmp/go.zip" -d "$tmp"
  as_root rm -rf /usr/local/go
  as_root mv "$tmp/golang.org/toolchain@v0.0.1-go${GO_WANT}.linux-amd64" /usr/local/go
  rm -rf "$tmp"
  export PATH=/usr/local/go/bin:$PATH
fi
export PATH=$(go env GOPATH)/bin:$PATH

if [ ! -f "$FMNIST_DIR/t10k-labels-idx1-ubyte.gz" ]; then
  echo "setup: installing dataset-fashion-mnist" >&2
  apt_install dataset-fashion-mnist
fi

# versitygw (tests only, GORCH_SETUP_TEST_TOOLS=1): the S3-compatible
# server the S3 store and cluster tests run
# against (it enforces SigV4). Built from the Go module proxy into
# ./.cache/bin (git-ignored); skipped when already there.
VERSITYGW_VERSION=v1.8.0
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${GORCH_SETUP_TEST_TOOLS:-}" = 1 ] && [ ! -x "$REPO_ROOT/.cache/bin/versitygw" ]; then
  echo "setup: installing versitygw $VERSITYGW_VERSION into $REPO_ROOT/.cache/bin (a few minutes)" >&2
  mkdir -p "$REPO_ROOT/.cache/bin"
  GOBIN="$REPO_ROOT/.cache/bin" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

# Jaeger v1.76.0 (tests only, GORCH_SETUP_TEST_TOOLS=1): the OpenTelemetry
# backend the tracing integration test sends spans to and queries. cmd/jaeger
# is the Jaeger v2 binary (an OTel collector build with a memory store and the
# query API). Built in its own tool module under ./.cache/jaegertool so its
# ~330-line go.mod stays out of gorch's; the binary lands in ./.cache/bin.
# Built once (~5 minutes, ~2 GB RAM peak); skipped when already there.
JAEGER_VERSION=v1.76.0
if [ "${GORCH_SETUP_TEST_TOOLS:-}" = 1 ] && [ ! -x "$REPO_ROOT/.cache/bin/jaeger" ]; then
  echo "setup: building jaeger $JAEGER_VERSION into $REPO_ROOT/.cache/bin (about 5 minutes, 2 GB RAM)" >&2
  jdir="$REPO_ROOT/.cache/jaegertool"
  mkdir -p "$jdir" "$REPO_ROOT/.cache/bin"
  if [ ! -f "$jdir/go.mod" ]; then (cd "$jdir" && go mod init gorch.local/jaegertool >/dev/null 2>&1); fi
  (cd "$jdir" && go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" &&
    go build -o "$REPO_ROOT/.cache/bin/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
  mv "$REPO_ROOT/.cache/bin/jaeger.tmp" "$REPO_ROOT/.cache/bin/jaeger"
fi
