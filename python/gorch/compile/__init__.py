"""``torch.compile(model, backend="gorch")``: PyTorch graphs trained on gorch's Go engine.

Installing the package registers the backend (entry point
``torch_dynamo_backends``), so a PyTorch user keeps the model and the
training loop::

    model = torch.compile(model, backend="gorch")
    loss = F.cross_entropy(model(x), y)
    loss.backward()                       # the backward graph runs on gorch too
    opt.step()

How it works. AOTAutograd (``torch._dynamo.backends.common.aot_autograd``)
turns each graph Dynamo captures into functional ATen forward and backward
graphs, decomposing ATen's operators into the core set except those gorch
runs natively (:func:`decompositions`). The library checks every node
(operator, dtypes, argument values); ``CapabilityBasedPartitioner`` groups the
supported nodes into partitions and everything else runs in eager PyTorch.
Each partition becomes one gorch plan per input signature — compiled once in
Go, cached by plan graph — and each invocation is one library call: inputs
and outputs cross as data pointers (PyTorch allocates the outputs, with the
layouts eager PyTorch would give them; Go reads and writes them in place).

Options (``torch.compile(m, backend="gorch", options={...})``):

* ``min_block_size`` (default 1): a partition with fewer compute operators
  (views, ``getitem`` and size arithmetic do not count) runs in eager PyTorch;
  a partition of views only always does.
* ``fallback``: ``"partition"`` (default) runs unsupported operators in eager
  PyTorch and warns once per operator (:class:`FallbackWarning`); ``"error"``
  raises :class:`gorch.UnsupportedError` naming them instead.

:func:`explain` prints the partitions and every operator that runs in eager
PyTorch, with the reason. When gorch fails on a partition at run time (an
engine error), the partition switches to eager PyTorch for good, with a
warning; a Go panic raises :class:`gorch.InternalError`.

Shapes. A plan is specialised to its input shapes and strides: a new shape
(another batch size) builds another plan, once, and reuses it afterwards.
Dynamo itself recompiles the graph on the second shape it sees and marks the
changed dimension dynamic; the backend takes such graphs too (sizes are
resolved when a plan is specialised), so changing the batch size mid-training
never fails.

Numerics. gorch computes in float32 (float64, float16 and bfloat16 nodes run
in eager PyTorch, with the fallback warning); integer and bool tensors
(indices, targets, masks) cross converted and must be exact in float32
(|v| <= 2^24). Dropout draws its masks from gorch's generator, seeded from
PyTorch's (so ``torch.manual_seed`` makes runs repeatable, but the masks differ
from eager PyTorch's). gorch uses as many threads as ``torch.get_num_threads()``.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from .. import errors
from ._runtime import FallbackWarning, supported_ops

__all__ = ["backend", "Backend", "explain", "decompositions", "supported_ops", "Explanation", "GraphReport", "PartitionReport",
           "Fallback", "FallbackWarning"]

_OPTIONS = {"min_block_size": 1, "fallback": "partition"}
_VIEW_OPS = {"aten.t.default", "aten.transpose.int", "aten.view.default", "aten._unsafe_view.default",
             "aten.reshape.default", "aten.expand.default", "aten.permute.default", "aten.unsqueeze.default",
             "aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default", "aten.detach.default",
             "aten.alias.default", "aten.split.Tensor", "aten.split_with_sizes.default", "aten.slice.Tensor",
             "aten.select.int"}


@dataclass
class Fallback:
    """An operator node that runs in eager PyTorch, and why."""

    graph: str
    node: str
    op: str
    reason: str


@dataclass
class PartitionReport:
    """A partition that runs on gorch: its operators, how many input
    signatures it has been specialised to, and the reason it switched to
    eager PyTorch, if it did."""

    name: str
    ops: List[str]
    signatures: int = 0
    eager_reason: str = ""


@dataclass
class GraphReport:
    """One graph AOTAutograd compiled ("forward 0", "backward 0", ...)."""

    name: str
    nodes: int
    partitions: List[PartitionReport] = field(default_factory=list)
    fallbacks: List[Fallback] = field(default_factory=list)


class Explanation:
    """What the backend did with a model: :attr:`graphs`, their
    :attr:`partitions` and every :attr:`fallbacks` entry."""

    def __init__(self, graphs: List[GraphReport]) -> None:
        self.graphs = graphs

    @property
    def partitions(self) -> List[PartitionReport]:
        return [p for g in self.graphs for p in g.partitions]

    @property
    def fallbacks(self) -> List[Fallback]:
        """Operator nodes in eager PyTorch, including those of partitions
        that switched to eager after an engine error."""
        out = [f for g in self.graphs for f in g.fallbacks]
        for g in self.graphs:
            for p in g.partitions:
                if p.eager_reason:
                    out += [Fallback(g.name, p.name, op, p.eager_reason) for op in p.ops]
        return out

    def __str__(self) -> str:
        lines = []
        for g in self.graphs:
            lines.append(f"{g.name}: {g.nodes} operator nodes, {len(g.partitions)} gorch partition(s), "
                         f"{len(g.fallbacks)} in eager PyTorch")
            for p in g.partitions:
                state = f"  EAGER: {p.eager_reason}" if p.eager_reason else ""
                lines.append(f"  {p.name}: {len(p.ops)} ops on gorch ({_summary(p.ops)}){state}")
            for f in g.fallbacks:
                lines.append(f"  eager {f.node}: {f.op} — {f.reason}")
        if not self.fallbacks:
            lines.append("no fallbacks: every operator runs on gorch")
        return "\n".join(lines)

    __repr__ = __str__


def _summary(ops: Sequence[str]) -> str:
    counts: Dict[str, int] = {}
    for o in ops:
        short = o.replace("aten.", "").rsplit(".", 1)[0]
        counts[short] = counts.get(short, 0) + 1
    return ", ".join(f"{k}×{v}" if v > 1 else k for k, v in counts.items())


_warned: set = set()
_counter = itertools.count()


def _options(options: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    opts = dict(_OPTIONS)
    for k, v in (options or {}).items():
        if k not in _OPTIONS:
            raise errors.ArgumentError(f"gorch backend: unknown option {k!r} (options: {', '.join(_OPTIONS)})")
        opts[k] = v
    if opts["fallback"] not in ("partition", "error"):
        raise errors.ArgumentError(f"gorch backend: fallback={opts['fallback']!r}; want 'partition' or 'error'")
    if not isinstance(opts["min_block_size"], int) or opts["min_block_size"] < 1:
        raise errors.ArgumentError(f"gorch backend: min_block_size={opts['min_block_size']!r}; want an int >= 1")
    return opts


_decomps: Optional[Dict[Any, Callable]] = None


def decompositions() -> Dict[Any, Callable]:
    """PyTorch's core ATen decompositions minus the operators gorch runs
    natively (those stay whole: one gorch kernel instead of several)."""
    global _decomps
    if _decomps is None:
        from torch._decomp import core_aten_decompositions

        native = set(supported_ops())
        _decomps = {k: v for k, v in core_aten_decompositions().items() if str(k) not in native}
    return _decomps


class Backend:
    """The gorch backend as an object that remembers what it compiled:
    ``be = Backend(options); torch.compile(m, backend=be)``, then
    ``be.explanation()`` describes every graph it compiled so far (as
    :func:`explain` does)."""

    def __init__(self, options: Optional[Dict[str, Any]] = None, reports: Optional[List[GraphReport]] = None):
        self.opts = _options(options)
        self.reports: List[GraphReport] = [] if reports is None else reports
        self.__name__ = "gorch"

    def explanation(self) -> Explanation:
        return Explanation(self.reports)

    def __call__(self, gm: Any, example_inputs: List[Any], **_: Any) -> Callable:
        from torch._dynamo.backends.common import aot_autograd

        n = next(_counter)
        return aot_autograd(
            fw_compiler=lambda g, ex: self.compile(g, f"forward {n}"),
            bw_compiler=lambda g, ex: self.compile(g, f"backward {n}"),
            inference_compiler=lambda g, ex: self.compile(g, f"inference {n}"),
            decompositions=decompositions(),
        )(gm, example_inputs)

    def compile(self, gm: Any, name: str) -> Callable:
        from functorch.compile import make_boxed_func

        from ._partition import partition

        fn, report = partition(gm, name, self.opts)
        self.reports.append(report)
        if report.fallbacks:
            if self.opts["fallback"] == "error":
                raise errors.UnsupportedError(
                    f"gorch backend (fallback='error'): {name} has operators gorch cannot run: "
                    + "; ".join(f"{f.op} ({f.reason})" for f in report.fallbacks), op="gorch.compile")
            new = sorted({f.op for f in report.fallbacks} - _warned)
            if new:
                _warned.update(new)
                why = {f.op: f.reason for f in report.fallbacks}
                warnings.warn(
                    "gorch: these operators run in eager PyTorch, not on gorch: "
                    + "; ".join(f"{op} ({why[op]})" for op in new)
                    + " — gorch.compile.explain(model, *inputs) lists every partition and fallback",
                    FallbackWarning, stacklevel=2)
        return make_boxed_func(fn)


def backend(gm: Any, example_inputs: List[Any], options: Optional[Dict[str, Any]] = None, **kwargs: Any) -> Callable:
    """The ``gorch`` torch.compile backend (see the module doc)."""
    return Backend(options)(gm, example_inputs)


backend.__name__ = "gorch"  # how Dynamo's messages name it


def explain(model: Any, *inputs: Any, options: Optional[Dict[str, Any]] = None, backward: bool = True,
            quiet: bool = False) -> Explanation:
    """Compiles model with the gorch backend, runs it on inputs (and, with
    backward, the backward pass of its outputs, without touching ``.grad``),
    prints what ran where and returns the :class:`Explanation`: the
    partitions on gorch and every operator in eager PyTorch, with the
    reason."""
    import types

    import torch

    reports: List[GraphReport] = []
    be = Backend(options, reports)

    # A fresh code object, so that Dynamo compiles anew for this backend
    # instead of counting another entry in the cache of model's code.
    def call(*a: Any) -> Any:
        return model(*a)

    fresh = types.FunctionType(call.__code__.replace(), call.__globals__, "gorch_explain", None, call.__closure__)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        out = torch.compile(fresh, backend=be)(*inputs)
        if backward:
            outs = [o for o in (out if isinstance(out, (tuple, list)) else [out])
                    if isinstance(o, torch.Tensor) and o.requires_grad]
            params = [p for p in (model.parameters() if isinstance(model, torch.nn.Module) else []) if p.requires_grad]
            params += [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
            if outs and params:
                torch.autograd.grad(sum(o.float().sum() for o in outs), params, allow_unused=True)
    ex = Explanation(reports)
    if not quiet:
        print(ex)
    return ex
