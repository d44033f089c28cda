"""Which ONNX nodes each engine layer runs, and what became of every node of the model.

All functions are pure functions of a layer table (:mod:`workbench.tables.engine_table`) and,
where given, the ONNX model. A layer's ``onnx_nodes`` is the link: a layer listing several nodes
fused them, a layer listing one kept it, and a model node that no layer lists was folded away
(constant-folded or eliminated by the engine). Layers listing no node were inserted by the
engine (reformats, copies) or are helpers the engine made up for itself.

A node may be listed by more than one layer (TensorRT runs ``Gemm_48`` as ``Gemm_48`` plus a
``reshape_after_Gemm_48`` helper); such a node keeps all its layers in ``layers`` and the first
in execution order as ``layer``.

Myelin regions of TensorRT (``{ForeignNode[first...last]}``, flagged by the importer's
``onnx_nodes_are_range`` column) name only their two end nodes; given the model,
:func:`expand_node_ranges` replaces the two ends by every node on a path between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import onnx
import pandas as pd

from workbench.model.names import ensure_node_names

FUSED = "fused"
KEPT = "kept"
FOLDED = "folded away"
NODE_STATUSES = (FUSED, KEPT, FOLDED)


@dataclass(frozen=True)
class GraphNode:
    """One top-level node of an ONNX graph, as the fusion analysis needs it.

    Attributes:
        name: The node's name (unnamed and duplicate names fixed as the ORT backend does).
        op_type: The operator, prefixed by its domain when not the default one.
        inputs: Names of the tensors it reads (empty optional inputs left out).
        outputs: Names of the tensors it writes.
    """

    name: str
    op_type: str
    inputs: tuple[str, ...] = field(default=())
    outputs: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------------------------
# Model access


def model_proto(model: Any) -> onnx.ModelProto:
    """Return the :class:`onnx.ModelProto` behind ``model``.

    Args:
        model: An :class:`onnx.ModelProto`, or an object carrying one as ``proto`` or ``model``
            (:class:`workbench.model.LoadedModel`, an ONNX Runtime engine).

    Returns:
        The ModelProto.

    Raises:
        TypeError: ``model`` is none of these.
    """
    if isinstance(model, onnx.ModelProto):
        return model
    for attribute in ("proto", "model"):
        candidate = getattr(model, attribute, None)
        if isinstance(candidate, onnx.ModelProto):
            return candidate
    raise TypeError(
        f"expected an onnx.ModelProto or a LoadedModel, got {type(model).__name__}"
    )


def is_model(value: Any) -> bool:
    """True when ``value`` is a model :func:`model_proto` accepts (not a list of names)."""
    try:
        model_proto(value)
    except TypeError:
        return False
    return True


def graph_nodes(model: Any) -> list[GraphNode]:
    """List the top-level nodes of a model in graph order.

    Unnamed or duplicate-named nodes get the names the ONNX Runtime backend gives them
    (``<op_type>_<index>``), so they match the ``onnx_nodes`` of its tables. The model itself is
    not modified.

    Args:
        model: A ModelProto or LoadedModel.

    Returns:
        One :class:`GraphNode` per node.
    """
    proto = model_proto(model)
    names_only = onnx.GraphProto()
    for node in proto.graph.node:
        names_only.node.add(name=node.name, op_type=node.op_type)
    ensure_node_names(names_only)
    nodes = []
    for named, node in zip(names_only.node, proto.graph.node):
        op_type = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        nodes.append(
            GraphNode(
                name=named.name,
                op_type=op_type,
                inputs=tuple(t for t in node.input if t),
                outputs=tuple(t for t in node.output if t),
            )
        )
    return nodes


def node_edges(nodes: Sequence[GraphNode]) -> list[tuple[int, int]]:
    """Producer -> consumer edges between nodes, through the tensors they share.

    Args:
        nodes: The graph's nodes (:func:`graph_nodes`).

    Returns:
        ``(producer_index, consumer_index)`` pairs, each once, in consumer order.
    """
    producer = {}
    for index, node in enumerate(nodes):
        for tensor in node.outputs:
            producer[tensor] = index
    edges = []
    for index, node in enumerate(nodes):
        for tensor in node.inputs:
            source = producer.get(tensor)
            if source is not None and source != index:
                edges.append((source, index))
    return list(dict.fromkeys(edges))


def node_names_of(model_or_names: Any) -> list[str]:
    """Return node names from a model or pass a list of names through.

    Args:
        model_or_names: A ModelProto / LoadedModel, or an iterable of node names.

    Returns:
        The node names in order, without duplicates.
    """
    if is_model(model_or_names):
        return [node.name for node in graph_nodes(model_or_names)]
    if isinstance(model_or_names, str):
        raise TypeError("pass a list of node names or a model, not a single string")
    return list(dict.fromkeys(model_or_names))


# --------------------------------------------------------------------------------------------
# Ranges (TensorRT myelin regions)


def nodes_between(nodes: Sequence[GraphNode], first: str, last: str) -> list[str]:
    """Names of the nodes on some path from node ``first`` to node ``last`` (both included).

    Args:
        nodes: The graph's nodes.
        first: Name of the region's first node.
        last: Name of the region's last node.

    Returns:
        Node names in graph order; ``[first, last]`` when either is unknown or no path exists.
    """
    index = {node.name: i for i, node in enumerate(nodes)}
    if first not in index or last not in index:
        return list(dict.fromkeys([first, last]))
    edges = node_edges(nodes)
    downstream = _reachable(index[first], edges, forward=True)
    upstream = _reachable(index[last], edges, forward=False)
    between = sorted(downstream & upstream)
    if not between:
        return list(dict.fromkeys([first, last]))
    return [nodes[i].name for i in between]


def _reachable(start: int, edges: Iterable[tuple[int, int]], *, forward: bool) -> set[int]:
    """Indices reachable from ``start`` (itself included) following edges forward or back."""
    neighbours: dict[int, list[int]] = {}
    for source, target in edges:
        if forward:
            neighbours.setdefault(source, []).append(target)
        else:
            neighbours.setdefault(target, []).append(source)
    seen, stack = {start}, [start]
    while stack:
        for following in neighbours.get(stack.pop(), []):
            if following not in seen:
                seen.add(following)
                stack.append(following)
    return seen


def expand_node_ranges(table: pd.DataFrame, model: Any) -> pd.DataFrame:
    """Replace the two end nodes of range layers by every node between them.

    Only rows whose ``onnx_nodes_are_range`` is true (TensorRT myelin ``ForeignNode`` layers
    imported by :func:`workbench.backends.tensorrt.trt_json.import_trt`) change; tables without that
    column are returned as a copy.

    Args:
        table: A layer table.
        model: The ONNX model the engine was built from.

    Returns:
        A copy of the table.
    """
    out = table.copy()
    if "onnx_nodes_are_range" not in out:
        return out
    range_flags = [value is True or isinstance(value, np.bool_) and bool(value)
                   for value in out["onnx_nodes_are_range"]]
    if not any(range_flags):
        return out
    nodes = graph_nodes(model)
    expanded = []
    for listed, is_range in zip(out["onnx_nodes"], range_flags):
        if is_range and len(listed) == 2:
            expanded.append(nodes_between(nodes, listed[0], listed[1]))
        else:
            expanded.append(list(listed))
    out["onnx_nodes"] = pd.Series(expanded, index=out.index, dtype=object)
    return out


# --------------------------------------------------------------------------------------------
# Layer <-> node tables


def layer_to_nodes(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (layer, ONNX node) pair, plus one row per layer that runs no node.

    Args:
        table: A layer table.

    Returns:
        Columns ``layer``, ``layer_index`` (row position in the table), ``node`` (None for
        layers with no ONNX node), ``type``, ``inserted``, ``node_count`` (nodes the layer
        runs) and ``fused`` (``node_count > 1``), in execution order.
    """
    rows = []
    for position, layer in enumerate(table.itertuples(index=False)):
        nodes = list(layer.onnx_nodes or [])
        for node in nodes or [None]:
            rows.append(
                {
                    "layer": layer.name,
                    "layer_index": position,
                    "node": node,
                    "type": layer.type,
                    "inserted": bool(layer.inserted),
                    "node_count": len(nodes),
                    "fused": len(nodes) > 1,
                }
            )
    columns = ["layer", "layer_index", "node", "type", "inserted", "node_count", "fused"]
    return pd.DataFrame(rows, columns=columns)


def layers_by_node(table: pd.DataFrame) -> dict[str, list[int]]:
    """Map each ONNX node the table mentions to the row positions of the layers listing it.

    Args:
        table: A layer table.

    Returns:
        Node name -> row positions in execution order, nodes in order of first mention.
    """
    mapping: dict[str, list[int]] = {}
    for position, nodes in enumerate(table["onnx_nodes"]):
        for node in nodes or []:
            mapping.setdefault(node, []).append(position)
    return mapping


def node_status(layer_node_counts: Sequence[int]) -> str:
    """Classify a node from the node counts of the layers that run it.

    Args:
        layer_node_counts: For each layer running the node, how many nodes that layer runs.

    Returns:
        ``"folded away"`` when no layer runs it, ``"fused"`` when one of its layers runs
        several nodes, else ``"kept"``.
    """
    if not layer_node_counts:
        return FOLDED
    return FUSED if max(layer_node_counts) > 1 else KEPT


def node_to_layer(table: pd.DataFrame, onnx_node_names: Any = None) -> pd.DataFrame:
    """What the engine did with each ONNX node: fused it, kept it alone, or folded it away.

    Args:
        table: A layer table.
        onnx_node_names: The model's node names in graph order, or the model itself
            (ModelProto / LoadedModel; then ``op_type`` is filled and TensorRT myelin ranges
            are expanded, see :func:`expand_node_ranges`). None: the nodes the table mentions,
            in execution order (no node can then be "folded away").

    Returns:
        One row per ONNX node: ``node``, ``op_type`` (None without a model), ``layer`` (the
        first layer running it, None if folded), ``layers`` (all of them), ``layer_type``,
        ``status`` (``"fused"``, ``"kept"`` or ``"folded away"``). ``attrs["unknown_nodes"]``
        lists nodes layers mention that are not in the model, in order of first mention.
    """
    op_types: dict[str, str] = {}
    if is_model(onnx_node_names):
        table = expand_node_ranges(table, onnx_node_names)
        nodes = graph_nodes(onnx_node_names)
        names = [node.name for node in nodes]
        op_types = {node.name: node.op_type for node in nodes}
    elif onnx_node_names is None:
        names = list(layers_by_node(table))
    else:
        names = node_names_of(onnx_node_names)
    positions_of = layers_by_node(table)
    layer_names = list(table["name"])
    layer_types = list(table["type"])
    node_counts = [len(nodes or []) for nodes in table["onnx_nodes"]]
    rows = []
    for name in names:
        positions = positions_of.get(name, [])
        rows.append(
            {
                "node": name,
                "op_type": op_types.get(name),
                "layer": layer_names[positions[0]] if positions else None,
                "layers": [layer_names[p] for p in positions],
                "layer_type": layer_types[positions[0]] if positions else None,
                "status": node_status([node_counts[p] for p in positions]),
            }
        )
    result = pd.DataFrame(
        rows, columns=["node", "op_type", "layer", "layers", "layer_type", "status"], dtype=object
    )
    known = set(names)
    result.attrs["unknown_nodes"] = [node for node in positions_of if node not in known]
    return result


# --------------------------------------------------------------------------------------------
# Summaries for the fusion view


def fusion_summary(table: pd.DataFrame, model: Any = None) -> dict:
    """Headline counts of how an engine fused a model.

    Args:
        table: A layer table.
        model: The ONNX model (or its node names); without it only the nodes the table
            mentions are counted and ``nodes_folded`` is 0.

    Returns:
        ``layers``, ``fused_layers`` (running several nodes), ``inserted_layers``,
        ``layers_without_nodes`` (inserted or engine-made helpers), ``nodes`` (in the model),
        ``nodes_kept``, ``nodes_fused``, ``nodes_folded``, ``unknown_nodes`` (mentioned by
        layers, absent from the model).
    """
    node_counts = table["onnx_nodes"].map(lambda nodes: len(nodes or []))
    per_node = node_to_layer(table, model)
    status_counts = per_node["status"].value_counts()
    return {
        "layers": int(len(table)),
        "fused_layers": int((node_counts > 1).sum()),
        "inserted_layers": int(table["inserted"].sum()),
        "layers_without_nodes": int((node_counts == 0).sum()),
        "nodes": int(len(per_node)),
        "nodes_kept": int(status_counts.get(KEPT, 0)),
        "nodes_fused": int(status_counts.get(FUSED, 0)),
        "nodes_folded": int(status_counts.get(FOLDED, 0)),
        "unknown_nodes": int(len(per_node.attrs["unknown_nodes"])),
    }


def tensor_formats(tensors: Iterable[dict] | None) -> str:
    """Describe tensors' precisions and layouts in one short text.

    Args:
        tensors: A layer's ``inputs`` or ``outputs`` (dicts with ``dtype`` and ``layout`` or
            ``format``).

    Returns:
        e.g. ``"INT8 CHW32, FP16 LINEAR"``; ``"?"`` stands for an unknown dtype; empty text
        when there are no tensors.
    """
    texts = []
    for tensor in tensors or []:
        layout = tensor.get("layout") or tensor.get("format")
        text = tensor.get("dtype") or "?"
        texts.append(f"{text} {layout}" if layout else text)
    return ", ".join(texts)


def fusion_groups(table: pd.DataFrame) -> pd.DataFrame:
    """One row per layer describing the ONNX nodes it runs, for the fusion view.

    Args:
        table: A layer table.

    Returns:
        Columns ``layer``, ``type``, ``onnx_nodes`` (list), ``node_count``, ``fused``,
        ``inserted``, ``tactic``, ``precision``, ``input_formats``, ``output_formats``
        (:func:`tensor_formats`), plus ``time_ms`` and ``share`` for profiled tables; in
        execution order.
    """
    groups = pd.DataFrame(
        {
            "layer": table["name"].tolist(),
            "type": table["type"].tolist(),
            "onnx_nodes": [list(nodes or []) for nodes in table["onnx_nodes"]],
            "tactic": table["tactic"].tolist(),
            "precision": table["precision"].tolist(),
            "input_formats": [tensor_formats(t) for t in table["inputs"]],
            "output_formats": [tensor_formats(t) for t in table["outputs"]],
            "inserted": table["inserted"].astype(bool).tolist(),
        },
        dtype=object,
    )
    groups.insert(3, "node_count", groups["onnx_nodes"].map(len).astype(int))
    groups.insert(4, "fused", groups["node_count"] > 1)
    groups["inserted"] = groups["inserted"].astype(bool)
    if "time_ms" in table:
        groups["time_ms"] = table["time_ms"].astype(float).to_numpy()
        groups["share"] = table["share"].astype(float).to_numpy()
    return groups
