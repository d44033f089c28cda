"""The one rule for naming a graph's nodes: node names join ONNX nodes, engine layers, exclusions and culprits."""

from __future__ import annotations

import onnx


def names_need_fixing(graph: onnx.GraphProto) -> bool:
    """True if some top-level node has no name or shares its name with another node."""
    names = [n.name for n in graph.node]
    return "" in names or len(set(names)) != len(names)

def ensure_node_names(graph: onnx.GraphProto) -> dict[str, str]:
    """Name unnamed nodes ``<op_type>_<index>`` (as ORT's profiler does) and de-duplicate names.

    Args:
        graph: The graph to edit in place.

    Returns:
        New name -> old name (``""`` for nodes that had none).
    """
    names = [n.name for n in graph.node]
    if "" not in names and len(set(names)) == len(names):
        return {}  # the common case, in one pass
    taken = {name for name in names if name}
    seen: set[str] = set()
    renamed = {}
    for index, node in enumerate(graph.node):
        if node.name and node.name not in seen:
            seen.add(node.name)
            continue
        base = f"{node.op_type}_{index}" if not node.name else f"{node.name}_{index}"
        new, k = base, 1
        while new in taken or new in seen:
            new, k = f"{base}_{k}", k + 1
        renamed[new] = node.name
        node.name = new
        seen.add(new)
        taken.add(new)
    return renamed
