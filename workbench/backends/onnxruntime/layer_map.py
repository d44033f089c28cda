"""Mapping the graph ONNX Runtime executes back to the original model's nodes, by tensor names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import onnx

NCHWC_DOMAIN = "com.microsoft.nchwc"

# memory. They never implement an original node.
PASSTHROUGH_OPS = {
    (NCHWC_DOMAIN, "ReorderInput"),
    (NCHWC_DOMAIN, "ReorderOutput"),
    ("", "MemcpyToHost"),
    ("", "MemcpyFromHost"),
}

# count as folded unless the optimized graph still has them under their own name.
NEVER_RUN_OPS = {"Constant", "Identity", "Dropout"}

_DATA_MOVEMENT_OPS = {"Transpose", "Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze",
                      "Flatten", "Expand", "DequantizeLinear", "QuantizeLinear"}

@dataclass
class NodeMapping:
    """Result of :func:`map_to_original`.

    Attributes:
        onnx_nodes: Per optimized node (in order), the original node names it implements.
        inserted: Per optimized node, True if it implements no original node.
        folded: Original node names no optimized node implements (constant-folded/eliminated).
        warnings: Anything the mapping could not settle cleanly.
        equivalents: Optimized tensor name -> original tensor holding the same values.
    """

    onnx_nodes: list[list[str]]
    inserted: list[bool]
    folded: list[str]
    warnings: list[str]
    equivalents: dict[str, str]

class _OriginalGraph:
    """Producer/consumer index of the original graph's top-level nodes."""

    def __init__(self, graph: onnx.GraphProto):
        self.nodes = list(graph.node)
        self.index = {n.name: i for i, n in enumerate(self.nodes)}
        self.producer = {t: i for i, n in enumerate(self.nodes) for t in n.output if t}
        self.tensors = set(self.producer) | {i.name for i in graph.input}
        self.tensors |= {i.name for i in graph.initializer}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for t in node.input:
                self.consumers.setdefault(t, []).append(i)

    def upstream(self, i: int) -> list[int]:
        """Producers of node ``i``'s inputs."""
        return [self.producer[t] for t in self.nodes[i].input if t in self.producer]

    def downstream(self, i: int) -> list[int]:
        """Consumers of node ``i``'s outputs."""
        return [c for t in self.nodes[i].output if t for c in self.consumers.get(t, ())]

    def region(self, outs: Iterable[str], stops: set[str]) -> set[int]:
        """Original nodes between ``outs`` and the tensors in ``stops``.

        Walks back from the producers of ``outs``; a tensor in ``stops``, or one nothing
        produces (graph input, initializer), ends the walk. Nodes ORT never runs as such
        (Constant, Identity, Dropout) are walked through but left out.

        Args:
            outs: Original tensors the optimized node (or cluster) produces.
            stops: Original tensors that exist at run time (read, not recomputed, by the node).

        Returns:
            Indices of the original nodes in the region.
        """
        stack = [self.producer[t] for t in outs if t in self.producer]
        region: set[int] = set()
        while stack:
            i = stack.pop()
            if i in region:
                continue
            region.add(i)
            for t in self.nodes[i].input:
                if t and t not in stops and t in self.producer:
                    stack.append(self.producer[t])
        return {i for i in region if not _never_runs(self.nodes[i])}

def _never_runs(node: onnx.NodeProto) -> bool:
    return node.op_type in NEVER_RUN_OPS and node.domain in ("", "ai.onnx")

def _equivalents(original: _OriginalGraph, opt: onnx.GraphProto) -> dict[str, str]:
    """Map optimized-graph tensors to the original tensor holding the same values.

    Original names map to themselves. A pass-through node's (ReorderInput/Output, Memcpy)
    output and input are the same values in another layout or memory. An NCHWc node is named
    ``<tensor>_nchwc`` after the output of the original node it replaced (its *head*) at the
    time of the NCHWc rewrite, so its data input is the head's data input; its output is that
    tensor unless a consumer says otherwise (a Sum/activation fused later moves it downstream).

    Args:
        original: Index of the original graph.
        opt: The optimized graph.

    Returns:
        Optimized tensor name -> original tensor name, for the tensors that have one.
    """
    names = {t for n in opt.node for t in (*n.input, *n.output) if t}
    names |= {i.name for i in opt.input} | {i.name for i in opt.initializer}
    eq = {t: t for t in names if t in original.tensors}
    _propagate_passthrough(opt, eq)
    hints = {}
    for node in opt.node:
        hint = _nchwc_hint(original, node)
        if hint is None:
            continue
        hints[node.output[0]] = hint
        head = _nchwc_head(original, node, hint)
        if head is not None and node.input[0] not in eq:
            eq[node.input[0]] = original.nodes[head].input[0]
    _propagate_passthrough(opt, eq)
    for tensor, hint in hints.items():
        eq.setdefault(tensor, hint)
    _propagate_passthrough(opt, eq)
    return eq

def _propagate_passthrough(opt: onnx.GraphProto, eq: dict[str, str]) -> None:
    """Spread equivalences across pass-through nodes (both directions) until nothing changes."""
    changed = True
    while changed:
        changed = False
        for node in opt.node:
            if (node.domain, node.op_type) not in PASSTHROUGH_OPS or not node.input:
                continue
            src, dst = node.input[0], node.output[0]
            if src in eq and dst not in eq:
                eq[dst], changed = eq[src], True
            elif dst in eq and src not in eq:
                eq[src], changed = eq[dst], True

def _nchwc_hint(original: _OriginalGraph, node: onnx.NodeProto) -> str | None:
    """The original tensor an NCHWc compute node is named after (``<tensor>_nchwc``), if any."""
    if node.domain != NCHWC_DOMAIN or (node.domain, node.op_type) in PASSTHROUGH_OPS:
        return None
    if not node.name.endswith("_nchwc") or not node.input or not node.output:
        return None
    hint = node.name[: -len("_nchwc")]
    return hint if hint in original.producer else None

def _nchwc_head(original: _OriginalGraph, node: onnx.NodeProto, hint: str,
                max_steps: int = 4) -> int | None:
    """The original node an NCHWc node replaced: the producer of ``hint``, or the first node of
    the same op type up its chain of first inputs (past activations/BN fused before the rewrite).
    """
    tensor = hint
    for _ in range(max_steps):
        index = original.producer.get(tensor)
        if index is None:
            return None
        if original.nodes[index].op_type == node.op_type:
            return index
        if not original.nodes[index].input:
            return None
        tensor = original.nodes[index].input[0]
    return None

def _name_candidates(name: str) -> list[str]:
    """Original node names an ORT-made node name may carry.

    ORT names fused nodes after an original one: ``matmul/MatMulAddFusion``,
    ``ln/LayerNormFusion/``, ``r1_DequantizeLinear/duplicated``, ``conv1_token_15`` (layout
    rewrites), ``x_nchwc``. Original names may contain ``/`` themselves (``/features/conv1/Conv``).
    """
    out = [name, re.sub(r"(_token_\d+)+$", "", name)]
    for suffix in ("_nchwc", "_fused", "_Fused"):
        if name.endswith(suffix):
            out.append(name[: -len(suffix)])
    head = name
    while True:
        rest, sep, tail = head.rpartition("/")
        if not sep or not (tail == "" or tail.endswith("Fusion") or tail == "duplicated"):
            break
        head = rest
        out.append(head)
    return [c for c in dict.fromkeys(out) if c]

def _is_passthrough(node: onnx.NodeProto) -> bool:
    return (node.domain, node.op_type) in PASSTHROUGH_OPS

def map_to_original(original: onnx.GraphProto, optimized: onnx.GraphProto) -> NodeMapping:
    """Find, for each optimized node, the original nodes it implements.

    1. Optimized tensors are mapped to the original tensors holding the same values
       (:func:`_equivalents`); tensors ORT created get none.
    2. Optimized nodes joined by such new tensors form a cluster (most clusters are one node).
       The cluster's *region* is the set of original nodes on the paths from the original
       tensors it reads to the original tensors it writes: the walk back from its outputs stops
       at any original tensor that still exists in the optimized graph (computed by another
       node, a graph input, a kept or constant-folded initializer). Identity/Dropout are
       walked through but not claimed (ORT eliminates them).
    3. A one-node cluster implements its whole region. In a larger cluster (QDQ groups rewritten
       to QLinear ops, NHWC layout rewrites) each node named after a region node
       (:func:`_name_candidates`) takes it, and the rest of the region goes to the nearest such
       node in the original graph; on a tie a DequantizeLinear joins its consumer and anything
       else its producer, as ORT's QDQ node units do.
    4. A node with an empty region takes the original node of the same name if it exists
       (Identity/Dropout executed as themselves at level ``"disable"``).
    5. Nodes left with nothing are inserted; original nodes nobody implements are folded.

    Args:
        original: The original graph (top level; subgraph nodes of If/Loop/Scan belong to
            their control-flow node).
        optimized: The graph ORT serialized after optimization.

    Returns:
        The mapping, aligned with ``optimized.node``.
    """
    orig = _OriginalGraph(original)
    nodes = list(optimized.node)
    eq = _equivalents(orig, optimized)
    existing = set(eq.values())
    regions: list[set[int]] = [set() for _ in nodes]
    warnings: list[str] = []
    for members in _clusters(nodes, eq):
        outs = {eq[t] for j in members for t in nodes[j].output if t in eq}
        region = orig.region(outs, existing - outs)
        warnings += _split_region(orig, nodes, members, region, regions)
    warnings += _claim_by_name(orig, optimized, regions)
    warnings += _shared_warnings(orig, optimized, regions)
    inserted = []
    for node, region in zip(nodes, regions):
        inserted.append(not region)
        if not region and not _is_passthrough(node) and node.op_type not in _DATA_MOVEMENT_OPS:
            warnings.append(
                f"optimized node {node.name!r} ({node.op_type}) maps to no original node; "
                "marked inserted"
            )
    claimed = set().union(*regions) if regions else set()
    folded = [n.name for i, n in enumerate(orig.nodes) if i not in claimed]
    onnx_nodes = [[orig.nodes[i].name for i in sorted(r)] for r in regions]
    return NodeMapping(onnx_nodes, inserted, folded, warnings, eq)

def _clusters(nodes: Sequence[onnx.NodeProto], eq: Mapping[str, str]) -> list[list[int]]:
    """Group optimized nodes joined by tensors that have no original equivalent.

    Args:
        nodes: The optimized graph's nodes.
        eq: Optimized tensor -> original tensor.

    Returns:
        Lists of node positions, each in graph order.
    """
    parent = list(range(len(nodes)))

    def root(j: int) -> int:
        while parent[j] != j:
            parent[j] = parent[parent[j]]
            j = parent[j]
        return j

    producer = {t: j for j, n in enumerate(nodes) for t in n.output if t and t not in eq}
    for j, node in enumerate(nodes):
        for t in node.input:
            if t in producer:
                parent[root(j)] = root(producer[t])
    groups: dict[int, list[int]] = {}
    for j in range(len(nodes)):
        groups.setdefault(root(j), []).append(j)
    return list(groups.values())

def _split_region(orig: _OriginalGraph, nodes: Sequence[onnx.NodeProto], members: list[int],
                  region: set[int], regions: list[set[int]]) -> list[str]:
    """Share a cluster's region among its computing members (step 3 of map_to_original).

    Args:
        orig: Index of the original graph.
        nodes: The optimized graph's nodes.
        members: Positions of the cluster's nodes.
        region: Original node indices the cluster implements.
        regions: Per optimized node, the original nodes it implements; updated in place.

    Returns:
        Warnings, if the region could not be shared by names.
    """
    claimants = [j for j in members if not _is_passthrough(nodes[j])]
    if not claimants or not region:
        return []
    if len(claimants) == 1:
        regions[claimants[0]] |= region
        return []
    anchors: dict[int, int] = {}
    for j in claimants:
        for candidate in _name_candidates(nodes[j].name):
            i = orig.index.get(candidate)
            if i in region and i not in anchors:
                anchors[i] = j
                break
    owner = _nearest_anchor(orig, region, anchors)
    for i, j in owner.items():
        regions[j].add(i)
    left = sorted(region - set(owner))
    if not left:
        return []
    main = next((j for j in claimants if nodes[j].op_type not in _DATA_MOVEMENT_OPS), claimants[0])
    regions[main].update(left)
    names = [nodes[j].name for j in members]
    return [f"fused nodes {names} could not be told apart; {nodes[main].name!r} takes "
            f"{[orig.nodes[i].name for i in left]}"]

def _nearest_anchor(orig: _OriginalGraph, region: set[int], anchors: Mapping[int, int]) -> dict:
    """Assign region nodes to the optimized node of the nearest anchor (breadth-first).

    Args:
        orig: Index of the original graph.
        region: Original node indices to assign.
        anchors: Original node index -> optimized node position, for nodes matched by name.

    Returns:
        Original node index -> optimized node position, for every region node reachable from
        an anchor inside the region.
    """
    owner = dict(anchors)
    frontier = set(anchors)
    while frontier:
        found = {}
        for i in sorted(region - set(owner)):
            ups = [owner[k] for k in orig.upstream(i) if k in frontier]
            downs = [owner[k] for k in orig.downstream(i) if k in frontier]
            if orig.nodes[i].op_type == "DequantizeLinear":
                ups, downs = downs, ups
            if ups or downs:
                found[i] = (ups or downs)[0]
        owner.update(found)
        frontier = set(found)
    return owner

def _claim_by_name(orig: _OriginalGraph, opt: onnx.GraphProto, regions: list[set[int]]) -> list:
    """Give region-less computing nodes the unclaimed original node named after them (step 4).

    Args:
        orig: Index of the original graph.
        opt: The optimized graph.
        regions: Per optimized node, the original node indices it implements; edited in place.

    Returns:
        Warnings for matches on a derived name or a different op type.
    """
    claimed = set().union(*regions) if regions else set()
    warnings = []
    for j, node in enumerate(opt.node):
        if regions[j] or _is_passthrough(node):
            continue
        for candidate in _name_candidates(node.name):
            i = orig.index.get(candidate)
            if i is None or i in claimed:
                continue
            regions[j].add(i)
            claimed.add(i)
            if candidate != node.name or orig.nodes[i].op_type != node.op_type:
                warnings.append(f"optimized node {node.name!r} mapped to original node "
                                f"{candidate!r} by name only")
            break
    return warnings

def _shared_warnings(orig: _OriginalGraph, opt: onnx.GraphProto, regions: list[set[int]]) -> list:
    """Warn about original nodes implemented by several optimized nodes (ORT duplicated them).

    Args:
        orig: Index of the original graph.
        opt: The optimized graph.
        regions: Per optimized node, the original node indices it implements.

    Returns:
        One warning per shared original node.
    """
    owners: dict[int, list[str]] = {}
    for node, region in zip(opt.node, regions):
        for i in region:
            owners.setdefault(i, []).append(node.name)
    return [
        f"original node {orig.nodes[i].name!r} is implemented by several layers: {names}"
        for i, names in sorted(owners.items())
        if len(names) > 1
    ]
