#!/usr/bin/env bash
# setup.sh installs what gorch needs on a Debian machine, idempotently:
# the Go toolchain named in go.mod (when the machine has no recent enough
# Go: downloaded as a module by Debian's Go, as GOTOOLCHAIN does) and the Fashion-MNIST dataset; with
# GORCH_SETUP_TEST_TOOLS=1 also the integration tests' servers (versitygw,
# nats-server, Jaeger) and the Kubernetes tests' tools (kube-apiserver and
# friends, etcd, helm, kwok, kubeconform and its schemas, podman), into
# ~/.cache/gorch/<tool>-<version> (on PATH). Source it (". scripts/setup.sh")
# so that PATH reaches the Go it installed.
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
# install_go DIR puts Go $GO_WANT into DIR through the ordinary clients:
# Debian's Go (any version that can download modules) fetches the toolchain
# module golang.org/toolchain from the Go module proxy this machine is
# configured with (GOPROXY), exactly as GOTOOLCHAIN would, and the archive
# is unpacked into DIR.
install_go() {
  local dir=$1 boot=go
  command -v unzip >/dev/null 2>&1 || apt_install unzip
  if ! command -v go >/dev/null 2>&1; then
    apt_install golang-go ca-certificates
    boot=/usr/bin/go
  fi
  local tmp zip
  tmp=$(mktemp -d)
  zip=$(cd "$tmp" && GOTOOLCHAIN=local GOFLAGS=-modcacherw GOMODCACHE="$tmp/mod" \
    "$boot" mod download -json "golang.org/toolchain@v0.0.1-go${GO_WANT}.linux-$(dpkg --print-architecture)" |
    sed -n 's/^[[:space:]]*"Zip": "\(.*\)",$/\1/p')
  [ -f "$zip" ] || { echo "setup: could not download the Go $GO_WANT toolchain module" >&2; rm -rf "$tmp"; return 1; }
  unzip -q "$zip" -d "$tmp/x"
  as_root rm -rf "$dir"
  as_root mv "$tmp/x/golang.org/toolchain@v0.0.1-go${GO_WANT}.linux-$(dpkg --print-architecture)" "$dir"
  as_root chmod -R a+rX "$dir"
  as_root chmod a+x "$dir"/bin/* "$dir"/pkg/tool/*/*
  rm -rf "$tmp"
}

if ! go_ok; then
  echo "setup: installing Go $GO_WANT into /usr/local/go" >&2
  install_go /usr/local/go
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
  # qemu-user runs the engine's tests on an emulated AVX2-only CPU (test.sh).
  if [ "$(uname -m)" = x86_64 ] && ! command -v qemu-x86_64 >/dev/null 2>&1; then apt_install qemu-user; fi
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

# Kubernetes test tools (GORCH_SETUP_TEST_TOOLS=1): what tests/k8s renders,
# checks and runs the deploy/k8s manifests with. Nothing here can be
# downloaded as a release binary, so each is built from its Go module (or
# installed from PyPI / Debian) once into $GORCH_CACHE/<tool>-<version>.
KUBE_VERSION=v1.32.13       # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
ETCD_VERSION=v3.5.21
HELM_VERSION=v4.3.2
KWOK_VERSION=v0.7.0
KUBECONFORM_VERSION=v0.7.0
KUBERNETES_VALIDATE_VERSION=1.37.0   # PyPI: JSON schemas of the Kubernetes API, offline
KEDA_VERSION=v2.16.1                 # its CRDs (ScaledObject), from the Go module
PROMETHEUS_OPERATOR_VERSION=v0.80.1  # its ServiceMonitor CRD, from the Go module

# go_tool NAME VERSION PKG@VERSION: go install one tool into its cache folder.
go_tool() {
  local d; d=$(tool_dir "$1" "$2")
  if [ ! -x "$d/$1" ]; then
    echo "setup: building $1 $2 into $d (once)" >&2
    rm -rf "$d.tmp"; mkdir -p "$d.tmp"
    GOBIN="$d.tmp" go install -trimpath "$3"
    rm -rf "$d"; mv "$d.tmp" "$d"
  fi
  export PATH="$d:$PATH"
}

# mod_dir MODULE@VERSION prints the module's folder in the module cache.
mod_dir() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'; }

# build_kube DIR builds the Kubernetes binaries into DIR from the
# k8s.io/kubernetes module. Its zip has no staging/ folder, so the
# k8s.io/* replaces pointing there are pointed at the published modules of
# the same release (v0.32.x) instead; endpointslice and cri-api are served
# only up to v0.32.12; the sample-* modules are not served at all (unused).
build_kube() {
  local d=$1 src=$1.src staging=${KUBE_VERSION/v1./v0.} minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  rm -rf "$src" "$d.tmp"; cp -r "$(mod_dir "k8s.io/kubernetes@$KUBE_VERSION")" "$src"; chmod -R u+w "$src"
  (cd "$src" && rm -rf vendor go.work go.work.sum &&
    sed -i -E -e '/^[[:space:]]*k8s\.io\/sample-/d' \
      -e "s#^([[:space:]]*)(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+\$#\1\2 => \2 $staging#" \
      -e "s#^([[:space:]]*)(k8s\.io/(endpointslice|cri-api)) => .*\$#\1\2 => \2 v0.32.12#" go.mod &&
    GOFLAGS=-mod=mod go build -trimpath -o "$d.tmp/" -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION" \
      ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubectl)
  rm -rf "$src" "$d"; mv "$d.tmp" "$d"
}

# build_etcd DIR builds etcd's server (go install cannot: its go.mod has
# replace directives) through a three-line main in its own module.
build_etcd() {
  local d=$1 mod=$1.mod
  rm -rf "$mod" "$d.tmp"; mkdir -p "$mod" "$d.tmp"
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >"$mod/main.go"
  (cd "$mod" && go mod init gorch.local/etcdtool >/dev/null 2>&1 && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 &&
    go mod tidy >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o "$d.tmp/etcd" .)
  rm -rf "$mod" "$d"; mv "$d.tmp" "$d"
}

# build_schemas DIR: kubeconform's schema folder, offline. The Kubernetes
# schemas come from PyPI kubernetes-validate (its v$KUBE_VERSION tree,
# rewritten to kubeconform's layout by tests/k8s/schemas.py); the CRDs'
# schemas (ScaledObject, ServiceMonitor) from the CRDs themselves.
build_schemas() {
  local d=$1 venv; venv=$(tool_dir kubernetes-validate "$KUBERNETES_VALIDATE_VERSION")
  if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    rm -rf "$venv"; python3 -m venv "$venv"
    "$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" pyyaml
  fi
  rm -rf "$d.tmp"; mkdir -p "$d.tmp"
  "$venv/bin/python" "$GORCH_ROOT/tests/k8s/schemas.py" --kube "${KUBE_VERSION#v}" \
    --crds "$GORCH_K8S_CRDS" --out "$d.tmp"
  rm -rf "$d"; mv "$d.tmp" "$d"
}

if [ "${GORCH_SETUP_TEST_TOOLS:-}" = 1 ]; then
  GORCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  d=$(tool_dir kube "$KUBE_VERSION")
  if [ ! -x "$d/kube-apiserver" ]; then
    echo "setup: building kube-apiserver, kube-controller-manager, kube-scheduler and kubectl $KUBE_VERSION into $d (about 10 minutes, 2 GB RAM, once)" >&2
    build_kube "$d"
  fi
  export PATH="$d:$PATH"
  d=$(tool_dir etcd "$ETCD_VERSION")
  if [ ! -x "$d/etcd" ]; then
    echo "setup: building etcd $ETCD_VERSION into $d (a minute, once)" >&2
    build_etcd "$d"
  fi
  export PATH="$d:$PATH"
  go_tool helm "$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  go_tool kwok "$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  go_tool kubeconform "$KUBECONFORM_VERSION" "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  # The CRDs of the kinds the chart renders besides Kubernetes' own (the tests install
  # them in the API server and make kubeconform schemas of them).
  d=$(tool_dir k8s-crds "keda-$KEDA_VERSION-promop-$PROMETHEUS_OPERATOR_VERSION")
  if [ ! -f "$d/monitoring.coreos.com_servicemonitors.yaml" ]; then
    rm -rf "$d.tmp"; mkdir -p "$d.tmp"
    cp "$(mod_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")"/config/crd/bases/keda.sh_*.yaml "$d.tmp/"
    cp "$(mod_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml "$d.tmp/"
    chmod u+w "$d.tmp"/*; rm -rf "$d"; mv "$d.tmp" "$d"
  fi
  export GORCH_K8S_CRDS=$d
  d=$(tool_dir kubeconform-schemas "$KUBE_VERSION-$(basename "$GORCH_K8S_CRDS")")
  if [ ! -f "$d/done" ]; then
    echo "setup: writing kubeconform schemas for Kubernetes $KUBE_VERSION and the CRDs into $d (once)" >&2
    build_schemas "$d"
  fi
  export GORCH_KUBECONFORM_SCHEMAS=$d
  # podman (with runc; crun fails on these machines) runs the image in the
  # image test; nothing is pulled, the image is built FROM scratch.
  if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
    echo "setup: installing podman, runc and catatonit" >&2
    apt_install podman runc catatonit
  fi
fi
