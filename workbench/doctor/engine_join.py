"""Engine layers joined with quantization error: what each layer costs in time and in accuracy.

:func:`join_layer_errors` is a pure function of a layer table
(:mod:`workbench.tables.engine_table`; TensorRT imported with ``import_trt``, a live engine,
or ONNX Runtime's) and a per-node error table (:attr:`LayerwiseResult.nodes`, or any frame
with a ``node`` column and error columns). A layer's ``onnx_nodes`` links the two: a fused
layer (``Conv + BN + Relu``, or TensorRT's ``weights + QuantizeLinear + Conv``) gets the errors
of every node it runs, summarised by the worst.
"""

from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

ERROR_COLUMNS = ("local_sqnr_db", "accum_sqnr_db", "local_cosine", "local_rel_error")


def _node_frame(node_errors) -> pd.DataFrame:
    if isinstance(node_errors, pd.DataFrame):
        frame = node_errors
    elif isinstance(node_errors, Mapping):
        frame = pd.DataFrame([{"node": k, **(v if isinstance(v, Mapping) else {"local_sqnr_db": v})}
                              for k, v in node_errors.items()])
    else:
        raise TypeError("node_errors must be a DataFrame with a 'node' column or a mapping node -> errors; got "
                        f"{type(node_errors).__name__}.")
    if "node" not in frame.columns:
        raise ValueError(f"node_errors needs a 'node' column (ONNX node names); it has {list(frame.columns)}.")
    return frame


def join_layer_errors(layer_table: pd.DataFrame, node_errors, *, sqnr_column: str = "local_sqnr_db") -> pd.DataFrame:
    """Each engine layer's time beside the quantization error of the ONNX nodes it runs.

    Args:
        layer_table: A layer table (needs ``name`` and ``onnx_nodes``; ``type``, ``precision``,
            ``time_ms``, ``share`` and ``inserted`` are carried when present).
        node_errors: Per-node errors: a DataFrame with ``node`` and error columns (a ``group``
            column of member lists makes every member of a fusion group carry its head's
            errors), or a mapping node -> {column: value} (or node -> SQNR in dB).
        sqnr_column: The SQNR column (dB, lower is worse) that picks a layer's worst node.

    Returns:
        One row per layer, in the table's order: ``name``, ``type``, ``precision``, ``time_ms``,
        ``share`` (NaN without a profile), ``onnx_nodes``, ``error_nodes`` (its nodes with an
        error), ``worst_node``, the worst node's error columns, and ``quantized`` (it runs a
        node with an error). ``attrs["unmatched_nodes"]`` lists error nodes no layer runs.

    Raises:
        ValueError: The layer table lacks ``name``/``onnx_nodes``, or node_errors lacks ``node``
            or ``sqnr_column``.
    """
    missing = [c for c in ("name", "onnx_nodes") if c not in layer_table.columns]
    if missing:
        raise ValueError(f"the layer table lacks {missing}; build it with make_layer_table (import_trt, "
                         "engine.layers()).")
    frame = _node_frame(node_errors)
    if sqnr_column not in frame.columns:
        raise ValueError(f"node_errors has no {sqnr_column!r} column; it has {list(frame.columns)}.")
    columns = [c for c in frame.columns if c not in ("node", "group")]
    by_node: dict[str, dict] = {}
    for row in frame.to_dict("records"):
        entry = {"node": row["node"], **{c: row[c] for c in columns}}
        by_node[row["node"]] = entry
        for member in (row.get("group") or []) if isinstance(row.get("group"), (list, tuple)) else []:
            by_node.setdefault(member, entry)
    rows, seen = [], set()
    for layer in layer_table.to_dict("records"):
        nodes = list(layer.get("onnx_nodes") or [])
        hits = [by_node[n] for n in nodes if n in by_node]
        heads = list(dict.fromkeys(h["node"] for h in hits))
        seen.update(heads)
        worst = min(hits, key=lambda h: _num(h.get(sqnr_column))) if hits else None
        row = {
            "name": layer["name"],
            "type": layer.get("type"),
            "precision": layer.get("precision"),
            "time_ms": float(layer["time_ms"]) if "time_ms" in layer and layer["time_ms"] is not None else math.nan,
            "share": float(layer["share"]) if "share" in layer and layer["share"] is not None else math.nan,
            "inserted": bool(layer.get("inserted", False)),
            "onnx_nodes": nodes,
            "error_nodes": heads,
            "worst_node": worst["node"] if worst else None,
            "quantized": bool(hits),
            "source": layer.get("source"),  # what timed it: a CPU's time is not a GPU's
        }
        row.update({k: layer[k] for k in ("time_p10_ms", "time_p90_ms") if k in layer})  # the run-to-run spread
        for c in columns:
            row[c] = worst.get(c) if worst else math.nan
        rows.append(row)
    joined = pd.DataFrame(rows)
    joined.attrs["unmatched_nodes"] = sorted(set(frame["node"]) - seen)
    joined.attrs["source"] = layer_table.attrs.get("source")
    joined.attrs.update({k: layer_table.attrs[k] for k in ("measured_on", "profile_iterations")
                         if k in layer_table.attrs})
    return joined


def _num(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.inf
    return math.inf if math.isnan(value) else value
