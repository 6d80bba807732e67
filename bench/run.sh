#!/usr/bin/env bash
# gorch vs PyTorch side-by-side benchmark (make bench).
#
#   bench/run.sh                  full run: 5 alternating repetitions, writes bench/results.json
#   BENCH_QUICK=1 bench/run.sh    1 repetition, small sizes, writes .cache/bench-quick.json
#   BENCH_NO_TORCH=1 bench/run.sh gorch only (no venv, no torch install)
#   BENCH_AVX2=1 bench/run.sh     both sides as on an AVX2-only CPU (gorch's avx2 kernels, MKL and ATen
#                                 limited to AVX2), matmul/MLP/CNN/GPT only, writes bench/results-avx2.json
#   BENCH_VENV=DIR               use another venv than ~/.cache/gorch/torch-venv-<version>
#   extra arguments go to gorchbench (e.g. -only matmul_1024 -reps 9)
#
# PyTorch comes from PyPI into ~/.cache/gorch/torch-venv-<version> (outside
# the clone), installed once and reused by every clone; see bench/README.md for why it is installed the way it is.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=${BENCH_TORCH_VERSION:-2.15.0}
GORCH_CACHE=${GORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gorch}
VENV=${BENCH_VENV:-$GORCH_CACHE/torch-venv-$TORCH_VERSION}
PY=$VENV/bin/python

. scripts/torch-venv.sh
torch_ok() { torch_venv_ok "$VENV" "$TORCH_VERSION"; }
install_torch() {
	torch_venv_install "$VENV" "$TORCH_VERSION" || { "$PY" bench/torch_bench.py --check; exit 1; }
}

args=()
if [ -z "${BENCH_NO_TORCH:-}" ]; then
	torch_ok || install_torch
	"$PY" bench/torch_bench.py --check >&2
	args+=(-python "$PY" -torch-script bench/torch_bench.py)
	# The torch.compile(backend="gorch") figures load this checkout's library.
	mkdir -p .cache
	go build -buildmode=c-shared -o .cache/libgorch-bench.so ./cmd/libgorch
	args+=(-gorch-lib .cache/libgorch-bench.so)
fi
mkdir -p .cache
go build -o .cache/gorchbench ./bench/cmd/gorchbench
if [ -n "${BENCH_AVX2:-}" ]; then
	# An AVX2-only machine's view on an AVX-512 one: gorch's kernels by
	# GORCH_KERNEL, MKL's by MKL_ENABLE_INSTRUCTIONS, ATen's by
	# ATEN_CPU_CAPABILITY (results.json's meta records all three).
	export GORCH_KERNEL=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2
	args+=(-only fma,matmul,mlp,cnn,gpt -compile=false -o bench/results-avx2.json)
elif [ -n "${BENCH_QUICK:-}" ]; then
	args+=(-quick -o .cache/bench-quick.json)
else
	args+=(-o bench/results.json)
fi
start=$(date +%s)
.cache/gorchbench "${args[@]}" "$@"
echo "bench: took $(( $(date +%s) - start )) s" >&2
