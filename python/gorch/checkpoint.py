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
        checkpoint, built from ``model_config`` with the parameters loaded
        strictly (gorch's parameter names are the module's).

        * ``mlp``: ``torch.nn.Sequential`` of Linear, ReLU (and Dropout when
          the spec has it) with the checkpoint's layer sizes; it takes
          Fashion-MNIST images flattened and normalised as gorch does
          ((x/255 - 0.2860) / 0.3530).
        * ``cnn``: the LeNet ``torch.nn.Sequential`` (conv 16, pool, conv
          32, pool, 512-128-10), same input normalisation, [N, 1, 28, 28].
        * ``gpt``: gorch's ``nn.GPT`` (GPT-2's layout) sized by the spec's
          ``model.layers``, ``d_model``, ``heads``, ``context`` and
          ``vocab`` (gorch's defaults 2, 64, 4, 64 where absent; a vocab
          of 0 means the dataset's, read off ``wte.weight``): token and
          learned position embeddings, pre-norm blocks ``x + Drop(Attn(
          LN1(x)))``, ``x + Drop(MLP(LN2(x)))`` with causal self-attention
          (one fused q/k/v Linear ``c_attn``, scale 1/sqrt(d_model/heads),
          no attention dropout, ``c_proj``) and a 4·d_model MLP with exact
          (erf) GELU, LayerNorms with eps 1e-5, a final ``ln_f`` and an
          untied ``lm_head`` without bias; dropout after the embeddings
          and on each residual branch. It maps token ids (int64) [batch,
          T], T <= context, to logits [batch, T, vocab]. Names are
          ``wte.weight``, ``wpe.weight``, ``h.0.ln_1.weight``,
          ``h.0.attn.c_attn.weight``, ..., ``ln_f.bias``,
          ``lm_head.weight``.

        The module is in training mode, as torch builds it: call
        ``.eval()`` to turn dropout off. A checkpoint whose parameters do
        not fit the model its config describes raises
        :class:`ShapeError` naming the first mismatch; a config no model
        can have, :class:`ConfigError`.
        """
        torch = _import_torch()
        nn = torch.nn
        model = (self.model_config or {}).get("model") or {}
        name = model.get("name", "mlp")
        what = name
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
        elif name == "gpt":
            cfg = _gpt_config(model, self.params)
            what = "gpt (" + ", ".join(f"{k} {v}" for k, v in cfg.items()) + ")"
            from .torch_gpt import GPT

            m = GPT(**cfg)
        else:
            raise errors.ConfigError(f"model {name!r} has no torch equivalent here (mlp, cnn, gpt)", op="torch_module")
        sd = self.to_torch()
        _check_fit(m, sd, what)
        m.load_state_dict(sd, strict=True)
        return m


def _check_fit(m: Any, sd: Mapping[str, Any], what: str) -> None:
    """Raises a one-line ShapeError naming the first difference between
    module m's parameters and the state dict sd (missing, unexpected or
    differently shaped tensors), with the count of the others."""
    want = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in sd.items()}
    diffs = [f"{k} is {list(have[k])} in the checkpoint, {list(s)} in the model"
             for k, s in want.items() if k in have and have[k] != s]
    diffs += [f"the checkpoint has no {k}" for k in want if k not in have]
    diffs += [f"the model has no {k}" for k in have if k not in want]
    if diffs:
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        raise errors.ShapeError(f"checkpoint does not fit {what}: {diffs[0]}{more}", op="torch_module")


# gorch's GPT sizes where a spec leaves them out (pkg/train's gptDefaults).
_GPT_DEFAULTS = {"layers": 2, "d_model": 64, "heads": 4, "context": 64}


def _gpt_config(model: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """The GPT's sizes from a spec's model section, checked as gorch's spec
    validation does; vocab 0 (the dataset's vocabulary) is read off the
    token embedding's rows."""
    cfg: Dict[str, Any] = {}
    for k in ("layers", "d_model", "heads", "context", "vocab"):
        v = model.get(k) or _GPT_DEFAULTS.get(k, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or (v == 0 and k != "vocab"):
            raise errors.ConfigError(f"model.{k} must be a positive integer, got {v!r}", op="torch_module")
        cfg[k] = v
    if cfg["d_model"] % cfg["heads"]:
        raise errors.ConfigError(f"model.heads: {cfg['heads']} heads do not divide d_model {cfg['d_model']}",
                                 op="torch_module")
    if cfg["vocab"] == 0:
        wte = params.get("wte.weight")
        if wte is None or wte.ndim != 2 or wte.shape[0] == 0:
            raise errors.ShapeError("checkpoint has no wte.weight [vocab, d_model] to read the vocabulary from",
                                    op="torch_module")
        cfg["vocab"] = int(wte.shape[0])
    dropout = model.get("dropout") or 0.0
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise errors.ConfigError(f"model.dropout must be in [0, 1), got {dropout!r}", op="torch_module")
    cfg["dropout"] = float(dropout)
    return cfg


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
