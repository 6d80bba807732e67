#!/usr/bin/env bash
# setup.sh installs what gorch needs on a Debian machine, idempotently:
# the Go toolchain named in go.mod (from the Go module proxy when the
# machine has no recent enough Go) and the Fashion-MNIST dataset; with
# GORCH_SETUP_TEST_TOOLS=1 also the integration tests' servers, versitygw
# and Jaeger, into ~/.cache/gorch/<tool>-<version> (on PATH). Source it (". scripts/setup.sh") so that
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

# cgo (go test -race, the c-shared libgorch.so for Python) needs a C
# compiler; the Python tests need venv and pip.
if [ "${GORCH_SETUP_TEST_TOOLS:-}" = 1 ]; then
  command -v gcc >/dev/null 2>&1 || apt_install gcc libc6-dev
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_install python3 python3-venv python3-pip
fi

# Test tools (GORCH_SETUP_TEST_TOOLS=1): servers the integration tests run
# against. Each is built once into $GORCH_CACHE/<tool>-<version>/ (default
# ~/.cache/gorch, outside the clone, so every fresh clone on the machine
# reuses it) and that folder is put first on PATH.
GORCH_CACHE=${GORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gorch}
export GORCH_CACHE

# tool_dir NAME VERSION prints the cache folder of one tool version.
tool_dir() { echo "$GORCH_CACHE/$1-$2"; }

# versitygw: the S3-compatible server the S3 store and cluster tests run
# against (it enforces SigV4).
VERSITYGW_VERSION=v1.8.0
if [ "${GORCH_SETUP_TEST_TOOLS:-}" = 1 ]; then
  d=$(tool_dir versitygw "$VERSITYGW_VERSION")
  if [ ! -x "$d/versitygw" ]; then
    echo "setup: building versitygw $VERSITYGW_VERSION into $d (a few minutes, once)" >&2
    mkdir -p "$d.tmp"
    GOBIN="$d.tmp" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
    rm -rf "$d"; mv "$d.tmp" "$d"
  fi
  export PATH="$d:$PATH"
fi

# nats-server: a standalone server for the tests that run NATS as its own
# process (several-node clusters, authenticated servers); same version as the
# nats-server/v2 module gorch embeds.
NATS_SERVER_VERSION=v2.15.2
if [ "${GORCH_SETUP_TEST_TOOLS:-}" = 1 ]; then
  d=$(tool_dir nats-server "$NATS_SERVER_VERSION")
  if [ ! -x "$d/nats-server" ]; then
    echo "setup: building nats-server $NATS_SERVER_VERSION into $d (a minute, once)" >&2
    mkdir -p "$d.tmp"
    GOBIN="$d.tmp" go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
    rm -rf "$d"; mv "$d.tmp" "$d"
  fi
  export PATH="$d:$PATH"
fi

# Jaeger: the OpenTelemetry backend the tracing test sends spans to and
# queries. cmd/jaeger is the Jaeger v2 binary (an OTel collector build with
# a memory store and the query API), built in its own tool module so its
# ~330-line go.mod stays out of gorch's (~5 minutes, ~2 GB RAM, once).
JAEGER_VERSION=v1.76.0
if [ "${GORCH_SETUP_TEST_TOOLS:-}" = 1 ]; then
  d=$(tool_dir jaeger "$JAEGER_VERSION")
  if [ ! -x "$d/jaeger" ]; then
    echo "setup: building jaeger $JAEGER_VERSION into $d (about 5 minutes, 2 GB RAM, once)" >&2
    mod="$d.mod"
    mkdir -p "$mod" "$d"
    if [ ! -f "$mod/go.mod" ]; then (cd "$mod" && go mod init gorch.local/jaegertool >/dev/null 2>&1); fi
    (cd "$mod" && go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" &&
      go build -o "$d/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
    mv "$d/jaeger.tmp" "$d/jaeger"
  fi
  export PATH="$d:$PATH"
fi
