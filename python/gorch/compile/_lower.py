"""ATen FX graphs to gorch plan graphs (internal/plan's JSON IR).

A plan graph numbers its values in slots: the graph's inputs first, then one
slot per tensor-producing node; arguments refer to slots ({"ref": slot,
"i": index}, the index picking an element of a tuple result, which is how
``operator.getitem`` nodes disappear). Nodes that compute sizes
(``aten.sym_size.int``, ``operator.mul`` on sizes, ...) do not become plan
nodes: their values are inlined, so a plan is specialised to one input
signature.

Two uses, one encoder: ``check_nodes`` asks the library which nodes of a
graph it can run (symbolic sizes as -1, from ``node.meta["val"]``), and
``lower`` builds a partition's plan graph from the values of a run under
``FakeTensorMode`` on concrete inputs.
"""

from __future__ import annotations

import json
import math
import operator
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.fx

from .. import _lib

# Size arithmetic that may sit in a partition: evaluated while the plan is
# specialised, never in Go.
_SIZE_TARGETS = {
    torch.ops.aten.sym_size.int, torch.ops.aten.sym_stride.int, torch.ops.aten.sym_numel.default,
    torch.ops.aten.sym_storage_offset.default, operator.add, operator.sub, operator.mul, operator.floordiv,
    operator.truediv, operator.mod, operator.neg, operator.pow, operator.eq, operator.ne, operator.lt,
    operator.le, operator.gt, operator.ge, math.ceil, math.floor, torch.sym_max, torch.sym_min, torch.sym_float,
    torch.sym_int, torch.sym_not,
}
_SCALARS = (int, float, bool, torch.SymInt, torch.SymFloat, torch.SymBool)


def op_name(target: Any) -> str:
    """The name an ATen OpOverload prints as ("aten.addmm.default")."""
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)


def is_size_node(n: torch.fx.Node, value: Any) -> bool:
    """A node whose value is a size computed from shapes (never data)."""
    return n.op == "call_function" and n.target in _SIZE_TARGETS and isinstance(value, _SCALARS)


def is_getitem(n: torch.fx.Node) -> bool:
    return n.op == "call_function" and n.target is operator.getitem


def _dtype(d: torch.dtype) -> str:
    return str(d).replace("torch.", "")


def _size(s: Any) -> int:
    """A concrete size, or -1 for a symbolic one."""
    return s if isinstance(s, int) else -1


def tensor_meta(t: Any, concrete: bool) -> dict:
    if not isinstance(t, torch.Tensor):
        return {"dtype": "", "shape": []}
    m = {"dtype": _dtype(t.dtype), "shape": [_size(s) for s in t.shape]}
    if concrete:
        m["strides"] = list(t.stride())
    return m


def _literal(v: Any) -> Any:
    """JSON for a constant argument."""
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return {"float": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
    if isinstance(v, (list, tuple)):
        return [_literal(x) for x in v]
    if isinstance(v, torch.dtype):
        return _dtype(v)
    if isinstance(v, torch.device):
        return v.type if v.index is None and v.type == "cpu" else str(v)
    if isinstance(v, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        hint = getattr(v.node, "hint", None)
        return -1 if hint is None else _literal(hint)
    return str(v)  # layouts, memory formats: checked by name


def normalized_args(n: torch.fx.Node) -> List[Any]:
    """n's arguments in schema order, keyword and default ones included."""
    target = n.target
    schema = getattr(target, "_schema", None)
    if schema is None:
        return list(n.args) + list(n.kwargs.values())
    out = []
    for j, a in enumerate(schema.arguments):
        if not a.kwarg_only and j < len(n.args):
            out.append(n.args[j])
        elif a.name in n.kwargs:
            out.append(n.kwargs[a.name])
        elif a.has_default_value():
            out.append(a.default_value)
        else:
            out.append(None)
    return out


class Encoder:
    """Builds a plan graph over the nodes of an FX graph, given each node's
    value (FakeTensors, tuples of them, or sizes)."""

    def __init__(self, graph: torch.fx.Graph, values: Dict[torch.fx.Node, Any], concrete: bool) -> None:
        self.values, self.concrete = values, concrete
        self.slot: Dict[torch.fx.Node, int] = {}
        self.inputs: List[dict] = []
        self.nodes: List[dict] = []
        self.plan_nodes: List[torch.fx.Node] = []
        for n in graph.nodes:
            if n.op in ("placeholder", "get_attr") and isinstance(values.get(n), torch.Tensor):
                self.slot[n] = len(self.inputs)
                self.inputs.append(tensor_meta(values.get(n), concrete))
        for n in graph.nodes:
            if n.op != "call_function" or is_getitem(n) or isinstance(values.get(n), _SCALARS):
                continue
            self.slot[n] = len(self.inputs) + len(self.nodes)
            self.plan_nodes.append(n)
            self.nodes.append({"op": op_name(n.target), "args": [self.arg(a) for a in normalized_args(n)],
                               "out": self.out_metas(values.get(n))})

    def out_metas(self, v: Any) -> List[dict]:
        if isinstance(v, (list, tuple)):
            return [tensor_meta(x, self.concrete) for x in v]
        return [tensor_meta(v, self.concrete)]

    def ref(self, n: torch.fx.Node) -> Optional[dict]:
        """The reference to node n's tensor, or None if n is no tensor."""
        if is_getitem(n) and isinstance(n.args[0], torch.fx.Node) and n.args[0] in self.slot:
            return {"ref": self.slot[n.args[0]], "i": int(n.args[1])}
        if n in self.slot:
            return {"ref": self.slot[n], "i": 0}
        return None

    def arg(self, a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            r = self.ref(a)
            if r is not None:
                return r
            return _literal(self.values.get(a))
        if isinstance(a, (list, tuple)):
            return [self.arg(x) for x in a]
        return _literal(a)

    def graph(self, outputs: List[dict]) -> dict:
        return {"inputs": self.inputs, "nodes": self.nodes, "outputs": outputs}


def _node_devices(n: torch.fx.Node, values: Dict[torch.fx.Node, Any]) -> List[torch.device]:
    found: List[Any] = []
    for a in n.all_input_nodes:
        found.append(values.get(a))
    found.append(values.get(n))
    devs = []
    for v in found:
        for t in (v if isinstance(v, (list, tuple)) else [v]):
            if isinstance(t, torch.Tensor):
                devs.append(t.device)
    return devs


def check_nodes(gm: torch.fx.GraphModule) -> Dict[torch.fx.Node, str]:
    """Why each call_function node of gm cannot run on gorch ("" if it can),
    from the library's own check of operators, dtypes and arguments."""
    values = {n: n.meta.get("val") for n in gm.graph.nodes}
    enc = Encoder(gm.graph, values, concrete=False)
    reasons: Dict[torch.fx.Node, str] = {}
    if enc.nodes:
        text = json.dumps(enc.graph([]))
        found = _lib.call_json("gorch_plan_check", text.encode())
        reasons.update(zip(enc.plan_nodes, found))
    for n in gm.graph.nodes:
        if n.op == "call_function" and n in reasons:
            bad = [d for d in _node_devices(n, values) if d.type != "cpu"]
            if bad:
                reasons[n] = f"tensor on {bad[0]} (gorch computes on the CPU)"
        elif n.op == "call_function" and is_getitem(n):
            src = n.args[0]
            reasons[n] = reasons.get(src, "not a result of an ATen operator") if isinstance(src, torch.fx.Node) else ""
        elif n.op == "call_function":
            ok = is_size_node(n, values.get(n))
            reasons[n] = "" if ok else f"{op_name(n.target)} computes a value from tensor data"
        elif n.op in ("call_module", "call_method"):
            reasons[n] = f"{n.op} {n.target} is not an ATen operator"
    return reasons


def fake_values(gm: torch.fx.GraphModule, args: Tuple[Any, ...]) -> Dict[torch.fx.Node, Any]:
    """Every node's value for concrete inputs args, computed on FakeTensors
    (shapes, strides and dtypes only)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    values: Dict[torch.fx.Node, Any] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            v = super().run_node(n)
            values[n] = v
            return v

    mode = FakeTensorMode()
    fakes = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
    with mode:
        Recorder(gm).run(*fakes)
    return values


class Lowered:
    """A partition specialised to one input signature: its plan graph (JSON
    text), the metadata of the outputs the caller allocates, and how to
    assemble the partition's return value.

    An output that is a view of an input, or of another output, is not
    computed by the plan: the caller makes the same view (as_strided) of the
    tensor it has, as eager PyTorch would, instead of copying it (a layer's
    output and its detach() saved for backward, say)."""

    def __init__(self, gm: torch.fx.GraphModule, args: Tuple[Any, ...]) -> None:
        values = fake_values(gm, args)
        enc = Encoder(gm.graph, values, concrete=True)
        out_node = next(n for n in gm.graph.nodes if n.op == "output")
        result = out_node.args[0]
        self.single = not isinstance(result, (list, tuple))
        items = [result] if self.single else list(result)
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        # Tensors an output may view: inputs, then outputs that own their storage.
        bases: List[Tuple[str, int, torch.Tensor]] = [
            ("in", i, values[n]) for i, n in enumerate(placeholders) if isinstance(values.get(n), torch.Tensor)]
        refs: List[dict] = []
        self.outputs: List[Tuple[Tuple[int, ...], Tuple[int, ...], torch.dtype]] = []
        # ("t", k): output tensor k; ("c", value); ("in" | "out", index, shape, stride, offset from the base's)
        self.template: List[Tuple[Any, ...]] = []
        for it in items:
            v = values.get(it) if isinstance(it, torch.fx.Node) else None
            r = enc.ref(it) if isinstance(v, torch.Tensor) else None
            if r is None:
                self.template.append(("c", v if isinstance(it, torch.fx.Node) else it))
                continue
            base = next((b for b in bases if torch._C._is_alias_of(v, b[2])), None)
            if base is not None:
                kind, idx, bv = base
                self.template.append((kind, idx, tuple(v.shape), tuple(v.stride()),
                                      v.storage_offset() - bv.storage_offset()))
                continue
            self.template.append(("t", len(refs)))
            if v.storage_offset() == 0 and v.untyped_storage().nbytes() == _extent(v) * v.element_size():
                bases.append(("out", len(refs), v))
            refs.append(r)
            self.outputs.append((tuple(v.shape), tuple(v.stride()), v.dtype))
        self.tensor_inputs = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        self.text = json.dumps(enc.graph(refs), separators=(",", ":"))


def _extent(t: torch.Tensor) -> int:
    """Elements from t's first to its last, as torch.empty_strided allocates."""
    if t.numel() == 0:
        return 0
    return 1 + sum((s - 1) * st for s, st in zip(t.shape, t.stride()))
