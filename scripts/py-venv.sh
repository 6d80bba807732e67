# py-venv.sh: the Python test venv, cached outside the clone. Source it, then
#
#   py_venv_path          # prints ~/.cache/gorch/py-venv-<hash>, keyed by python/requirements-test.txt and the torch version
#   py_venv_ensure        # creates it once (torch for CPU use + the test requirements) and prints its path
#
# Needs GORCH_CACHE (scripts/setup.sh sets it) and scripts/torch-venv.sh.
PY_TORCH_VERSION=${PY_TORCH_VERSION:-2.15.0}

py_venv_path() {
	local h
	h=$( { cat python/requirements-test.txt; echo "torch==$PY_TORCH_VERSION"; python3 --version; } | sha256sum | cut -c1-12)
	echo "$GORCH_CACHE/py-venv-$h"
}

py_venv_ensure() {
	local venv
	venv=$(py_venv_path)
	if [ ! -f "$venv/.complete" ]; then
		. scripts/torch-venv.sh
		torch_venv_ok "$venv" "$PY_TORCH_VERSION" || torch_venv_install "$venv" "$PY_TORCH_VERSION" >&2 || return 1
		"$venv/bin/python" -m pip install -q --disable-pip-version-check -r python/requirements-test.txt >&2 || return 1
		touch "$venv/.complete"
	fi
	echo "$venv"
}
