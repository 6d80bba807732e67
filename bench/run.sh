#!/usr/bin/env bash
# gorch vs PyTorch side-by-side benchmark (make bench).
#
#   bench/run.sh                  full run: 5 alternating repetitions, writes bench/results.json
#   BENCH_QUICK=1 bench/run.sh    1 repetition, small sizes, writes .cache/bench-quick.json
#   BENCH_NO_TORCH=1 bench/run.sh gorch only (no venv, no torch install)
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

torch_ok() {
	[ -x "$PY" ] && "$PY" - "$TORCH_VERSION" <<'PYEOF' >/dev/null 2>&1
import sys, torch
assert torch.__version__.split("+")[0] == sys.argv[1]
a = torch.ones(8, 8)
assert float(torch.mm(a, a)[0, 0]) == 8.0
PYEOF
}

# pip's resolver complains that torch's full dependency set is not installed:
# expected here, so those lines are dropped.
quiet_resolver() { grep -v -e "dependency resolver" -e "dependency conflicts" -e "^torch .* requires" >&2 || true; }

install_torch() {
	echo "bench: installing torch $TORCH_VERSION (CPU use) into $VENV ..." >&2
	[ -x "$PY" ] || python3 -m venv "$VENV"
	local pip=("$PY" -m pip install -q --disable-pip-version-check)
	# The torch wheel alone; its full dependency set (triton, cuda-bindings,
	# every CUDA library) is ~2.9 GB, so only what `import torch` loads is added.
	"${pip[@]}" --no-deps "torch==$TORCH_VERSION"
	"${pip[@]}" numpy filelock typing-extensions sympy networkx jinja2 fsspec 2> >(quiet_resolver)
	# The x86-64 Linux wheel links the CUDA runtime libraries at load time
	# (libtorch_cuda.so, libtorch_global_deps.so), so those must be present
	# even for CPU work. Take the exact pins from torch's own metadata, minus
	# what import never loads: triton, cuda-bindings, cusolver, nvtx.
	mapfile -t cuda_reqs < <("$PY" - <<'PYEOF'
import importlib.metadata as md, re
for r in md.requires("torch"):
    spec, _, marker = r.partition(";")
    spec = spec.strip()
    if "extra ==" in marker:
        continue
    name = re.split(r"[\[<>=~! ]", spec, maxsplit=1)[0].lower()
    if name == "cuda-toolkit":
        m = re.match(r"cuda-toolkit\[([^\]]*)\](.*)", spec)
        extras = [e for e in m.group(1).split(",") if e.strip() not in ("cusolver", "nvtx")]
        print(f"cuda-toolkit[{','.join(extras)}]{m.group(2)}")
    elif name.startswith("nvidia-"):
        print(spec)
PYEOF
)
	if [ "${#cuda_reqs[@]}" -gt 0 ]; then
		"${pip[@]}" "${cuda_reqs[@]}" 2> >(quiet_resolver)
	fi
	torch_ok || { echo "bench: torch $TORCH_VERSION installed but 'import torch; torch.mm' fails" >&2; "$PY" bench/torch_bench.py --check; exit 1; }
}

args=()
if [ -z "${BENCH_NO_TORCH:-}" ]; then
	torch_ok || install_torch
	"$PY" bench/torch_bench.py --check >&2
	args+=(-python "$PY" -torch-script bench/torch_bench.py)
fi
mkdir -p .cache
go build -o .cache/gorchbench ./bench/cmd/gorchbench
if [ -n "${BENCH_QUICK:-}" ]; then
	args+=(-quick -o .cache/bench-quick.json)
else
	args+=(-o bench/results.json)
fi
start=$(date +%s)
.cache/gorchbench "${args[@]}" "$@"
echo "bench: took $(( $(date +%s) - start )) s" >&2
