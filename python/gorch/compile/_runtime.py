"""Running partitions: one plan per input signature, one library call per
invocation, eager PyTorch when gorch cannot.

The hot path (Partition.forward) computes the input signature, allocates the
outputs with torch.empty_strided (the layouts eager PyTorch would give),
writes the data pointers of inputs and outputs into the plan's pointer array
and calls gorch_plan_run once; Go reads the inputs in place and writes the
outputs in place.
"""

from __future__ import annotations

import ctypes
import json
import warnings
import weakref
from ctypes import byref, c_uint64, c_void_p
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.fx

from .. import _lib, errors
from ._lower import Lowered


def supported_ops() -> List[str]:
    """The ATen operators gorch plans run."""
    return _lib.call_json("gorch_plan_ops")


class FallbackWarning(UserWarning):
    """Part of a compiled graph runs in eager PyTorch instead of gorch."""


class Plan:
    """A compiled plan in the library (closed when dropped)."""

    def __init__(self, text: str) -> None:
        h, info = c_uint64(), c_void_p()
        try:
            _lib.call("gorch_plan_compile", text.encode(), byref(h), byref(info))
        finally:
            raw = _lib.take(info)
        self.handle = h.value
        self.random = bool(json.loads(raw or "{}").get("random"))

    def __del__(self) -> None:
        if _lib is not None:  # module globals are None at interpreter exit
            _lib.close(getattr(self, "handle", 0))


# Plans by plan graph text: two partitions (or two compiles of one graph)
# with the same graph and signature share one plan, for as long as one of
# them holds it.
_plans: "weakref.WeakValueDictionary[str, Plan]" = weakref.WeakValueDictionary()
_threads = [0]  # gorch's thread count as last set
# Signatures a partition keeps plans for (a model fed ever-new shapes, e.g.
# sequence lengths, would otherwise grow without bound).
_MAX_SIGNATURES = 64


def _sync_threads(n: int) -> None:
    """gorch runs with as many threads as PyTorch (torch.set_num_threads)."""
    _lib.call("gorch_set_num_threads", n)
    _threads[0] = n


class _Entry:
    """A partition specialised to one signature."""

    __slots__ = ("plan", "tensor_inputs", "outputs", "template", "single", "ptrs", "n", "all_tensors")

    def __init__(self, low: Lowered, plan: Plan, args: Tuple[Any, ...]) -> None:
        self.plan = plan
        self.tensor_inputs = low.tensor_inputs
        self.outputs = low.outputs
        self.template = [_fast(t, args, low.outputs) for t in low.template]
        self.single = low.single
        self.n = len(self.tensor_inputs) + len(self.outputs)
        self.ptrs = c_void_p * max(self.n, 1)  # one array per call: calls may overlap in threads
        self.all_tensors = all(t[0] == "t" for t in self.template)


def _fast(t: Tuple[Any, ...], args: Tuple[Any, ...], outputs: List[Any]) -> Tuple[Any, ...]:
    """A template entry for _assemble: a view with its base's own size and
    strides (a detach() saved for backward, say) becomes ("in=" | "out=",
    index), made with detach(), a third of as_strided's cost."""
    if t[0] in ("in", "out"):
        if t[0] == "in":
            base = args[t[1]]
            shape, stride = tuple(base.shape), tuple(base.stride())
        else:
            shape, stride = outputs[t[1]][0], outputs[t[1]][1]
        if t[2] == shape and t[3] == stride and t[4] == 0:
            return (t[0] + "=", t[1])
    return t


_Tensor = torch.Tensor


def signature(args: Tuple[Any, ...]) -> Tuple[Any, ...]:
    return tuple([(a.shape, a.stride(), a.dtype, a.device) if isinstance(a, _Tensor) else a for a in args])


def _assemble(t: Tuple[Any, ...], args: Tuple[Any, ...], outs: List[torch.Tensor]) -> Any:
    """One value of a partition's result, from its Lowered.template entry."""
    kind = t[0]
    if kind == "t":
        return outs[t[1]]
    if kind == "c":
        return t[1]
    if kind == "in=":
        return args[t[1]].detach()
    if kind == "out=":
        return outs[t[1]].detach()
    base = args[t[1]] if kind == "in" else outs[t[1]]
    return base.as_strided(t[2], t[3], base.storage_offset() + t[4])


class Partition(torch.nn.Module):
    """A supported partition of a graph: runs on gorch, or in eager PyTorch
    (self.gm) once gorch failed on it.

    report is the partition's entry in its graph's report (see explain)."""

    def __init__(self, gm: torch.fx.GraphModule, report: Any) -> None:
        super().__init__()
        self.gm = gm
        self.report = report
        self.cache: Dict[Tuple[Any, ...], _Entry] = {}
        self.eager = False
        self.run_fn = _lib.lib().gorch_plan_run

    def forward(self, *args: Any) -> Any:
        if self.eager:
            return self.gm(*args)
        e = self.cache.get(signature(args))
        if e is None:
            e = self._specialize(args)
            if e is None:
                return self.gm(*args)
        outs = [torch.empty_strided(shape, stride, dtype=dt) for shape, stride, dt in e.outputs]
        ptrs = e.ptrs(*[args[i].data_ptr() for i in e.tensor_inputs], *[o.data_ptr() for o in outs])
        seed = int(torch.randint(0, 2**62, ())) if e.plan.random else 0
        if torch.get_num_threads() != _threads[0]:
            _sync_threads(torch.get_num_threads())
        err = c_void_p()
        if self.run_fn(e.plan.handle, ptrs, e.n, seed, byref(err)) != 0:
            return self._failed(_lib.take(err), args)
        if e.all_tensors:
            return outs[0] if e.single else tuple(outs)
        vals = [_assemble(t, args, outs) for t in e.template]
        return vals[0] if e.single else tuple(vals)

    def _specialize(self, args: Tuple[Any, ...]) -> Optional[_Entry]:
        key = signature(args)
        bad = [a.device for a in args if isinstance(a, torch.Tensor) and a.device.type != "cpu"]
        if bad:
            self._to_eager(f"input on {bad[0]} (gorch computes on the CPU)")
            return None
        low = Lowered(self.gm, args)
        plan = _plans.get(low.text)
        if plan is None:
            try:
                plan = Plan(low.text)
            except errors.GorchError as ex:
                if isinstance(ex, (errors.InternalError, errors.ForkError)):
                    raise
                self._to_eager(f"gorch could not compile it: {ex}")
                return None
            _plans[low.text] = plan
        e = _Entry(low, plan, args)
        if len(self.cache) >= _MAX_SIGNATURES:  # drop the oldest
            del self.cache[next(iter(self.cache))]
        self.cache[key] = e
        self.report.signatures += 1
        return e

    def _failed(self, text: Optional[str], args: Tuple[Any, ...]) -> Any:
        ex = errors.from_json(text or '{"kind": "internal", "message": "gorch_plan_run failed without a message"}')
        if isinstance(ex, (errors.InternalError, errors.ForkError)):
            raise ex
        self._to_eager(f"gorch failed on it: {ex}")
        return self.gm(*args)

    def _to_eager(self, reason: str) -> None:
        self.eager = True
        self.cache.clear()
        self.report.eager_reason = reason
        warnings.warn(f"gorch: {self.report.name} runs in eager PyTorch from now on: {reason}", FallbackWarning,
                      stacklevel=3)
