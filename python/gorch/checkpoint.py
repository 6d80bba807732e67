"""RTCH checkpoints: load (validated by the Go reader, tensors mapped in
place) and save (written by the Go writer)."""

from __future__ import annotations

import collections
import ctypes
import json
import os
import weakref
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from . import _lib, errors


class _Buffer:
    """The verified bytes of one checkpoint, owned by the library (a
    read-only file mapping or a copy of a store object). numpy views keep
    it alive through their ``base``; the library frees it when the last
    view is gone."""

    def __init__(self, handle: int, data: int, size: int) -> None:
        self._finalizer = weakref.finalize(self, _lib.close, handle)
        self.__array_interface__ = {
            "shape": (size,), "typestr": "|u1", "data": (data or 0, True), "version": 3,
        }


class Checkpoint:
    """A loaded RTCH checkpoint.

    Attributes:
        params: the model's tensors, name -> read-only float32 ``numpy``
            array viewing the file in place (no copy; the file is mapped).
        optimizer: ``None``, or ``{"type", "lr", "hyper", "params": {name:
            {"step", "buffers": {buffer: array}}}}``.
        train_state: where training stood: ``{"step", "epoch", "cursor",
            "rng", "scheduler", "extra"}`` as the header has them.
        metadata: free-form string metadata.
        model_config: the run spec the checkpoint was trained with (a dict),
            or ``None``.
        version: the RTCH format version, e.g. ``"1.0"``.
        source: the path or store key it was read from.
    """

    params: Dict[str, np.ndarray]
    optimizer: Optional[Dict[str, Any]]
    train_state: Dict[str, Any]
    metadata: Dict[str, str]
    model_config: Optional[Dict[str, Any]]

    def __init__(self, handle: int, info: Dict[str, Any], data: int, size: int) -> None:
        buf = np.asarray(_Buffer(handle, data, size))
        header = info["header"]
        base = int(info["data_offset"])
        arrays: Dict[str, np.ndarray] = {}
        self.params = collections.OrderedDict()
        for t in header["tensors"]:
            shape = tuple(int(d) for d in t["shape"])
            start = base + int(t["offset"])
            a = buf[start:start + int(t["nbytes"])].view("<f4").reshape(shape)
            arrays[t["name"]] = a
            if t["group"] == "param":
                self.params[t["name"]] = a
        self.optimizer = None
        if header.get("optimizer") is not None:
            o = header["optimizer"]
            self.optimizer = {
                "type": o["type"], "lr": o["lr"], "hyper": dict(o.get("hyper") or {}),
                "params": {p: {"step": ps.get("step", 0),
                               "buffers": {b: arrays[n] for b, n in (ps.get("buffers") or {}).items()}}
                           for p, ps in (o.get("params") or {}).items()},
            }
        self.train_state = dict(header.get("train") or {})
        self.metadata = dict(header.get("metadata") or {})
        self.model_config = header.get("model_config")
        self.version: str = info["version"]
        self.source: str = info["source"]
        self.size: int = int(info["size"])

    def __repr__(self) -> str:
        n = sum(a.size for a in self.params.values())
        return (f"<gorch.Checkpoint {self.source!r} v{self.version}: {len(self.params)} tensors, {n} parameters, "
                f"step {self.train_state.get('step', 0)}>")

    def to_torch(self) -> "collections.OrderedDict[str, Any]":
        """The parameters as a ``torch`` state dict (copies, in file order).

        gorch's models name and lay out their parameters as the equivalent
        ``torch.nn.Sequential`` does (``0.weight`` [out, in], ...), so
        ``model.load_state_dict(ckpt.to_torch(), strict=True)`` loads them;
        :meth:`torch_module` builds that model.
        """
        torch = _import_torch()
        return collections.OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in self.params.items())

    def torch_module(self) -> Any:
        """The ``torch.nn`` model equivalent to gorch's model of this
        checkpoint (from ``model_config``: the MLP with its hidden sizes and
        dropout, or the LeNet CNN), with the parameters loaded strictly.
        Inputs are normalised as gorch does it ((x/255 - 0.2860) / 0.3530
        for Fashion-MNIST; the MLP takes them flattened)."""
        torch = _import_torch()
        nn = torch.nn
        model = (self.model_config or {}).get("model") or {}
        name = model.get("name", "mlp")
        if name == "cnn":
            m = nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(16, 32, 5), nn.ReLU(),
                              nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))
        elif name == "mlp":
            weights = [a for k, a in self.params.items() if k.endswith(".weight")]
            if not weights:
                raise errors.ShapeError("checkpoint has no weight tensors to build an MLP from", op="torch_module")
            dims = [weights[0].shape[1]] + [w.shape[0] for w in weights]
            layers: List[Any] = []
            for i in range(len(dims) - 1):
                layers.append(nn.Linear(dims[i], dims[i + 1]))
                if i < len(dims) - 2:
                    layers.append(nn.ReLU())
                    if model.get("dropout"):
                        layers.append(nn.Dropout(float(model["dropout"])))
            m = nn.Sequential(*layers)
        else:
            raise errors.ConfigError(f"model {name!r} has no torch equivalent here (mlp, cnn)", op="torch_module")
        try:
            m.load_state_dict(self.to_torch(), strict=True)
        except RuntimeError as e:
            raise errors.ShapeError(f"checkpoint does not fit {name}: {e}", op="torch_module") from None
        return m


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise errors.ConfigError("this needs PyTorch: pip install 'gorch[torch]'", op="torch") from None
    return torch


def _open(fn: str, *args: Any) -> Checkpoint:
    h, data, size = ctypes.c_uint64(), ctypes.c_void_p(), ctypes.c_int64()
    info = ctypes.c_void_p()
    try:
        _lib.call(fn, *args, ctypes.byref(h), ctypes.byref(info), ctypes.byref(data), ctypes.byref(size))
    finally:
        text = _lib.take(info)
    try:
        return Checkpoint(h.value, json.loads(text or "{}"), data.value or 0, size.value)
    except Exception:
        _lib.close(h.value)
        raise


def load_checkpoint(path_or_url: "_lib.PathLike", *, store: Any = None) -> Checkpoint:
    """Loads and validates an RTCH checkpoint.

    ``path_or_url`` is a file path, or ``gorch://RUN_ID[@STEP]`` for a
    checkpoint of a run in ``store`` (a :class:`gorch.Store`; the newest
    when no step is given). The file is checked exactly as ``gorch ckpt
    verify`` does — preamble, header, footer and every tensor's CRC32C —
    and a file that fails raises :class:`CorruptCheckpointError` naming the
    reason. Tensors are not copied: ``params`` view the mapped file.
    """
    if isinstance(path_or_url, str) and path_or_url.startswith("gorch://"):
        run, _, step = path_or_url[len("gorch://"):].partition("@")
        from .records import Store

        if not isinstance(store, Store):
            raise errors.ArgumentError("a gorch:// checkpoint needs store=gorch.Store(...)")
        try:
            st = int(step) if step else None
        except ValueError:
            raise errors.ArgumentError(f"bad step {step!r} in {path_or_url!r}") from None
        return store.run(run).checkpoint(step=st)
    return _open("gorch_ckpt_open", _lib.cstr(path_or_url, "path", path=True))


def _array(v: Any, what: str) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor
        v = v.detach().cpu().numpy()
    try:
        a = np.asarray(v)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{a.dtype} values")
        return np.ascontiguousarray(a, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise errors.ArgumentError(f"{what}: not an array of numbers ({e})") from None


def save_checkpoint(state_dict: Mapping[str, Any], path: "_lib.PathLike", *,
                    optimizer: Optional[Mapping[str, Any]] = None,
                    train_state: Optional[Mapping[str, Any]] = None,
                    model_config: Optional[Mapping[str, Any]] = None,
                    metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes an RTCH checkpoint with the Go writer, atomically.

    ``state_dict`` maps names to torch tensors or numpy arrays (stored as
    float32). ``optimizer`` takes the shape of :attr:`Checkpoint.optimizer`
    (so a loaded checkpoint round-trips); ``train_state`` that of
    :attr:`Checkpoint.train_state` (default: step 0). Start a gorch run from
    the weights with ``gorch train --init PATH``.
    """
    p = _lib.cstr(path, "path", path=True)
    if not isinstance(state_dict, Mapping):
        raise errors.ArgumentError(f"state_dict must be a mapping, not {type(state_dict).__name__}")
    arrays: List[np.ndarray] = []
    params: List[Tuple[str, int]] = []
    for name, v in state_dict.items():
        if not isinstance(name, str):
            raise errors.ArgumentError(f"state_dict key {name!r} is not a str")
        params.append((name, len(arrays)))
        arrays.append(_array(v, name))
    spec: Dict[str, Any] = {"params": params}
    if optimizer is not None and not isinstance(optimizer, Mapping):
        raise errors.ArgumentError(f"optimizer must be a mapping, not {type(optimizer).__name__}")
    if optimizer is not None:
        try:
            ps = {}
            for pname, st in dict(optimizer.get("params") or {}).items():
                bufs = {}
                for b, v in dict(st.get("buffers") or {}).items():
                    bufs[b] = len(arrays)
                    arrays.append(_array(v, f"optimizer buffer {b} of {pname}").reshape(-1))
                ps[pname] = {"step": int(st.get("step", 0)), "buffers": bufs}
            spec["optimizer"] = {"type": str(optimizer["type"]), "lr": float(optimizer.get("lr", 0)),
                                 "hyper": {k: float(v) for k, v in dict(optimizer.get("hyper") or {}).items()},
                                 "params": ps}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise errors.ArgumentError(f"optimizer: {e!r}") from None
    spec["arrays"] = [list(a.shape) for a in arrays]
    for what, v in (("train_state", train_state), ("model_config", model_config), ("metadata", metadata),
                    ("optimizer", optimizer)):
        if v is not None and not isinstance(v, Mapping):
            raise errors.ArgumentError(f"{what} must be a mapping, not {type(v).__name__}")
    spec["train"] = dict(train_state) if train_state is not None else {"step": 0}
    if model_config is not None:
        spec["model_config"] = dict(model_config)
    if metadata is not None:
        spec["metadata"] = {str(k): str(v) for k, v in dict(metadata).items()}
    try:
        text = json.dumps(spec, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise errors.ArgumentError(f"checkpoint description is not JSON: {e}") from None
    ptrs = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data if a.size else None for a in arrays])
    _lib.call("gorch_ckpt_save", p, text.encode(), len(arrays), ptrs)
