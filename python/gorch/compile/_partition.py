"""Splitting a graph into gorch partitions and eager PyTorch."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import torch.fx
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from ._lower import check_nodes, is_getitem, is_size_node, op_name
from ._runtime import Partition


def _operators(nodes: Any) -> List[torch.fx.Node]:
    """The operator nodes among nodes (not getitem, not size arithmetic)."""
    return [n for n in nodes if n.op == "call_function" and not is_getitem(n)
            and not is_size_node(n, n.meta.get("val"))]


def partition(gm: torch.fx.GraphModule, name: str, opts: Dict[str, Any]) -> Tuple[Callable, Any]:
    """gm's callable with its supported partitions on gorch, and its report."""
    from . import _VIEW_OPS, Fallback, GraphReport, PartitionReport

    reasons = check_nodes(gm)
    report = GraphReport(name, nodes=len(_operators(gm.graph.nodes)))
    supported = {n for n, r in reasons.items() if not r}

    class Support(OperatorSupportBase):
        def is_node_supported(self, submodules: Any, node: torch.fx.Node) -> bool:
            return node in supported

    parts = CapabilityBasedPartitioner(gm, Support(), allows_single_node_partition=True)
    keep = []
    for p in parts.propose_partitions():
        compute = [n for n in _operators(p.nodes) if op_name(n.target) not in _VIEW_OPS]
        if not compute:
            continue  # views only: free in PyTorch, copies on gorch
        if len(compute) < opts["min_block_size"]:
            why = f"its partition has {len(compute)} operator(s), below min_block_size {opts['min_block_size']}"
            reasons.update({n: why for n in compute})
            continue
        keep.append(p)
    for n in _operators(gm.graph.nodes):
        if reasons.get(n):
            report.fallbacks.append(Fallback(name, n.name, op_name(n.target), reasons[n]))
    if not keep:
        return gm.forward, report
    fused = parts.fuse_partitions(keep, prefix="gorch_")
    for node in fused.graph.nodes:
        if node.op == "call_module" and str(node.target).startswith("gorch_"):
            sub = getattr(fused, node.target)
            pr = PartitionReport(f"{name}/{node.target}", [op_name(n.target) for n in _operators(sub.graph.nodes)])
            report.partitions.append(pr)
            setattr(fused, node.target, Partition(sub, pr))
    return fused.forward, report
