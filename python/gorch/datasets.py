"""The data a gorch run trains and evaluates on, as numpy arrays."""

from __future__ import annotations

import ctypes
import json
import os
from typing import Any, Mapping, Tuple, Union

import numpy as np

from . import _lib, errors

Spec = Union[Mapping[str, Any], str, "os.PathLike[str]"]


def _spec_text(spec: Any) -> bytes:
    if isinstance(spec, Mapping):
        return json.dumps(dict(spec)).encode()
    if isinstance(spec, (str, os.PathLike)):
        path = os.fspath(spec)
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise errors.ArgumentError(f"spec file {path!r}: {e.strerror}") from None
    raise errors.ArgumentError(f"spec: want a dict (a run's config) or a spec file path, got {type(spec).__name__}")


def dataset(spec: Spec, split: str = "test") -> Tuple[np.ndarray, np.ndarray]:
    """Returns ``(x, y)``: split ``"train"`` or ``"test"`` of the dataset a run
    of ``spec`` trains on, built by gorch itself (``pkg/train.Datasets``) —
    Fashion-MNIST normalised as gorch normalises it (flattened for the MLP),
    the grammar text cut into the model's context windows, the synthetic sets
    drawn from the spec's seed. ``x`` is float32 (int64 token ids for the
    grammar text); ``y`` holds int64 class indices or next-token ids. The samples are in stored order (training
    shuffles them per epoch).

    ``spec`` is a run spec as a dict (``Run.config``) or the path of a spec
    file (YAML or JSON, as ``gorch train --config`` takes). A spec gorch would
    refuse raises :class:`ConfigError`; a missing dataset file,
    :class:`NotFoundError`."""
    text = _spec_text(spec)
    which = _lib.cstr(split, "split")
    h = ctypes.c_uint64()
    info_p = ctypes.c_void_p()
    try:
        _lib.call("gorch_dataset_open", text, which, ctypes.byref(h), ctypes.byref(info_p))
    finally:
        info_text = _lib.take(info_p)
    try:
        info = json.loads(info_text or "{}")
        x = np.empty(info["x_shape"], dtype=np.float32)
        y = np.empty(info["y_shape"], dtype=np.float32)
        _lib.call("gorch_dataset_read", h, x.ctypes.data_as(ctypes.c_void_p), x.size,
                  y.ctypes.data_as(ctypes.c_void_p), y.size)
    finally:
        _lib.close(h.value)
    if info.get("x_dtype") == "int64":
        x = x.astype(np.int64)
    return x, y.astype(np.int64)
