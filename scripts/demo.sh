#!/usr/bin/env bash
# demo.sh runs gorch's main job on the one-command default: `gorch up
# --demo` starts an embedded NATS server, the coordinator, two workers and
# the collector in one process, queues a small Fashion-MNIST sweep (mlp and
# cnn at two learning rates), shows each run's progress and prints a results
# table; records and checkpoints land in ./gorch-data. It exits 0 only if
# every run succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
go build -o bin/gorch ./cmd/gorch
exec ./bin/gorch up --demo --data-dir ./gorch-data --nats-port 0 "$@"
