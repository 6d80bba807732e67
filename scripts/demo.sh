#!/usr/bin/env bash
# demo.sh runs gorch's main job on the embedded default: train an MLP on
# Fashion-MNIST for two epochs and print its test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
go build -o bin/gorch ./cmd/gorch
exec ./bin/gorch train --model mlp --dataset fashion-mnist --epochs 2 "$@"
