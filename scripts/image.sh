#!/usr/bin/env bash
# image.sh builds the gorch image without Docker, as an OCI archive: the same files as the
# Dockerfile's image (a static CGO_ENABLED=0 /gorch, the CA bundle, Fashion-MNIST, a
# non-root user, no shell), FROM scratch. The build is reproducible: the same source gives
# the same digest. It prints the archive and the digest.
#
#   scripts/image.sh [OUT.tar]             # default bin/gorch-image.tar
#   podman load -i bin/gorch-image.tar      # or: skopeo copy oci-archive:bin/gorch-image.tar docker://REGISTRY/gorch:TAG
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/gorch-image.tar}
version=$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' deploy/k8s/chart/gorch/Chart.yaml)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -buildvcs=false \
  -ldflags "-s -w -buildid= -X main.version=$version" -o "$bin/gorch" ./cmd/gorch
mkdir -p "$(dirname "$out")"
go run ./deploy/image/mkimage -o "$out" -name "gorch:$version" -user 65532:65532 -entrypoint /gorch \
  -env PATH=/ -env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  -add "$bin/gorch:/gorch:0755" \
  -add deploy/image/passwd:/etc/passwd:0644 -add deploy/image/group:/etc/group:0644 \
  -add /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:0644 \
  -add /usr/share/datasets/fashion-mnist:/usr/share/datasets/fashion-mnist:0644
