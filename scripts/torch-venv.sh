# torch-venv.sh: install PyPI's torch into a venv for CPU use, shared by
# bench/run.sh and scripts/test.sh. Source it, then call
#
#   torch_venv_ok VENV VERSION       # exit 0 if VENV imports that torch and runs torch.mm
#   torch_venv_install VENV VERSION  # create VENV if needed and install torch into it
#
# The torch wheel goes in with --no-deps: its full dependency set (triton,
# cuda-bindings, every CUDA library) is ~2.9 GB, so only what `import torch`
# loads is added. pip keeps the downloaded wheels in its cache, so a second
# venv installs from there.

torch_venv_ok() {
	[ -x "$1/bin/python" ] && "$1/bin/python" - "$2" <<'PYEOF' >/dev/null 2>&1
import sys, torch
assert torch.__version__.split("+")[0] == sys.argv[1]
a = torch.ones(8, 8)
assert float(torch.mm(a, a)[0, 0]) == 8.0
PYEOF
}

# pip's resolver complains that torch's full dependency set is not installed:
# expected here, so those lines are dropped.
_torch_venv_quiet() { grep -v -e "dependency resolver" -e "dependency conflicts" -e "^torch .* requires" >&2 || true; }

torch_venv_install() {
	local venv=$1 version=$2 py=$1/bin/python
	echo "installing torch $version (CPU use) into $venv ..." >&2
	[ -x "$py" ] || python3 -m venv "$venv"
	local pip=("$py" -m pip install -q --disable-pip-version-check)
	"${pip[@]}" --no-deps "torch==$version"
	"${pip[@]}" numpy filelock typing-extensions sympy networkx jinja2 fsspec 2> >(_torch_venv_quiet)
	# The x86-64 Linux wheel links the CUDA runtime libraries at load time
	# (libtorch_cuda.so, libtorch_global_deps.so), so those must be present
	# even for CPU work. Take the exact pins from torch's own metadata, minus
	# what import never loads: triton, cuda-bindings, cusolver, nvtx.
	local cuda_reqs
	mapfile -t cuda_reqs < <("$py" - <<'PYEOF'
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
		"${pip[@]}" "${cuda_reqs[@]}" 2> >(_torch_venv_quiet)
	fi
	torch_venv_ok "$venv" "$version" || { echo "torch $version installed in $venv but 'import torch; torch.mm' fails" >&2; return 1; }
}
