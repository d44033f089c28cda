"""Culprits of an INT8 accuracy drop: the layerwise ranking, then the named nodes with their evidence.

:func:`rank_candidates` orders the quantized nodes by the error the layerwise pass measured (the
prediction, before any evaluation); :func:`find_culprits` names the nodes that add the error
(confirmed by the fix search when one ran) and the nodes whose output range causes it (the
producer of a channel that dominates a per-tensor scale), worst first, each with its evidence;
:func:`confirmed_costs` prices each excluded node from the evaluations the search already ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import pandas as pd

from workbench.doctor.graph import EPILOGUE_OPS
from workbench.doctor.layerwise import LayerwiseResult

# Ops a per-channel range passes through unchanged when walking back to a tensor's source.
CHANNELWISE_OPS = set(EPILOGUE_OPS) | {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten",
                                       "Identity", "Dropout", "Reshape", "Squeeze", "Unsqueeze"}
SUSPICIOUS_GAP_DB = 10.0  # local SQNR this far below the median marks a node as suspicious
SUSPICIOUS_FLOOR_DB = 20.0  # ... and so does a local SQNR below this
JUMP_DB = 6.0  # the accumulated SQNR falling this much at a node's output is its own error
KERNEL_GAP_DB = 10.0  # accumulated this far below the emulated local SQNR: the runtime's kernel loses it
ERROR_FLAGS = ("channel-outlier", "heavy-tail", "underflow", "saturation")
RANGE_FLAGS = ("channel-outlier", "heavy-tail")  # flags whose cause is the range a source node writes
INPUT_EVIDENCE = ("tensor", "scale", "clip", "saturation_rate", "underflow_rate", "kurtosis", "dominant_channel",
                  "channel_dominance", "qdq_sqnr_db")
WEIGHT_EVIDENCE = ("weight", "sqnr_db", "per_channel", "dominant_channel", "channel_dominance")


def rank_candidates(nodes: pd.DataFrame) -> list[dict]:
    """Quantized groups ranked by predicted accuracy cost: worst local error first.

    A node's ``rank_db`` is the lower of its local SQNR and its median output channel's local
    SQNR (so a node whose other channels drown next to one large channel still ranks high), and,
    where the accumulated SQNR drops by ``JUMP_DB`` or more at the node's output (the variant as
    the runtime runs it, integer kernels included), that accumulated SQNR;
    ``damage_db`` is how far ``rank_db`` lies below the median over all quantized nodes (0 when
    above). This is the layerwise pass's prediction, before any evaluation.

    Args:
        nodes: :attr:`LayerwiseResult.nodes`.

    Returns:
        ``{"node", "group", "local_sqnr_db", "local_channel_sqnr_db", "rank_db", "damage_db"}``
        per quantized node, worst first.
    """
    if nodes.empty:
        return []
    rows = []
    for row in nodes.to_dict("records"):
        rank = min(_finite(row.get("local_sqnr_db")), _finite(row.get("local_channel_sqnr_db")))
        if _finite(row.get("added_db"), 0.0) >= JUMP_DB:  # the error jumps here as the runtime runs it
            rank = min(rank, _finite(row.get("accum_sqnr_db")))
        rows.append({"node": row["node"], "group": list(row["group"]), "local_sqnr_db": row["local_sqnr_db"],
                     "local_channel_sqnr_db": row.get("local_channel_sqnr_db"), "rank_db": rank,
                     "_added": _finite(row.get("added_db"), 0.0)})
    median = float(np.median([r["rank_db"] for r in rows]))
    rows.sort(key=lambda r: (r["rank_db"], -r["_added"]))
    for r in rows:
        r.pop("_added")
        r["damage_db"] = max(0.0, median - r["rank_db"])
    return rows


def _finite(value, default=120.0) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(value) else min(value, 120.0)


def source_of(model: onnx.ModelProto, tensor: str, heads: Sequence[str]) -> str | None:
    """The node that gives ``tensor`` its per-channel ranges: walk back through channel-wise ops.

    From the tensor's producer, follow first inputs through :data:`CHANNELWISE_OPS` (BN, ReLU,
    pooling, Flatten...) until a quantized group head (``heads``) or any other op; that node is
    the source (a graph input gives None).

    Args:
        model: The FP32 model.
        tensor: A tensor a quantized node reads.
        heads: Quantized group heads (the walk stops there).

    Returns:
        The source node's name, or None.
    """
    producers = {out: node for node in model.graph.node for out in node.output}
    heads = set(heads)
    node = producers.get(tensor)
    visited = set()
    while node is not None and node.name not in visited:
        visited.add(node.name)
        if node.name in heads or node.op_type not in CHANNELWISE_OPS:
            return node.name
        node = producers.get(node.input[0]) if node.input else None
    return None



@dataclass
class _Evidence:
    """What the layerwise pass, the range flags, the calibration checks and the fix say about each node.

    Attributes:
        nodes: :attr:`LayerwiseResult.nodes` indexed by node (empty when nothing is quantized).
        inputs, weights: :attr:`LayerwiseResult.inputs` and ``weights``.
        ranked: Node -> its :func:`rank_candidates` entry.
        median: Median ``rank_db`` over the ranked nodes (120 dB when none).
        flags: Node -> its range flags.
        inflated: Tensor -> ``[(sample, factor)]``: outlier calibration samples widening its range.
        reads: Node -> the quantized activations it reads.
        fix_exclude: The fix's excluded nodes.
        costs: Node -> confirmed cost in the metric's unit, where measured.
        variant_level: The ORT optimization level the variant ran at.
        metric, unit: The metric the costs are in, and its unit.
    """

    nodes: pd.DataFrame
    inputs: pd.DataFrame
    weights: pd.DataFrame
    ranked: dict
    median: float
    flags: dict
    inflated: dict
    reads: dict
    fix_exclude: Sequence[str]
    costs: dict
    variant_level: str
    metric: str = "top1"
    unit: str = "%"

    @classmethod
    def gather(cls, layerwise: LayerwiseResult, flags: Sequence[Mapping], ranking: Sequence[Mapping],
               fix_exclude: Sequence[str], costs: Mapping[str, float], outliers: Sequence[Mapping],
               metric: str = "top1", unit: str = "%") -> _Evidence:
        """Index the doctor's findings by node (see :func:`find_culprits` for the arguments).

        Returns:
            The :class:`_Evidence`.
        """
        node_flags: dict[str, list] = {}
        for flag in flags:
            node_flags.setdefault(flag["node"], []).append(flag)
        inflated: dict[str, list] = {}
        for entry in outliers:
            for tensor, factor in (entry.get("inflated") or {}).items():
                inflated.setdefault(tensor, []).append((entry["sample"], factor))
        return cls(
            nodes=layerwise.nodes.set_index("node") if not layerwise.nodes.empty else pd.DataFrame(),
            inputs=layerwise.inputs, weights=layerwise.weights,
            ranked={r["node"]: r for r in ranking},
            median=float(np.median([r["rank_db"] for r in ranking])) if ranking else 120.0,
            flags=node_flags, inflated=inflated,
            reads={name: [qi.tensor for qi in qn.activations] for name, qn in layerwise.quantized.items()},
            fix_exclude=fix_exclude, costs=dict(costs), variant_level=layerwise.variant_level, metric=metric,
            unit=unit)

    def row(self, name: str) -> dict:
        """The node's :attr:`LayerwiseResult.nodes` row (empty for an unquantized node)."""
        return self.nodes.loc[name].to_dict() if name in self.nodes.index else {}

    def error_flags(self, name: str) -> list[dict]:
        """The node's flags of the kinds that explain added error (:data:`ERROR_FLAGS`)."""
        return [f for f in self.flags.get(name, []) if f["kind"] in ERROR_FLAGS]

    def of(self, name: str) -> dict:
        """A culprit's ``evidence``: its errors, the inputs and weights it reads, flags and fix cost.

        Args:
            name: A node name.

        Returns:
            ``{"local_sqnr_db", ..., "inputs", "weights", "flags", "excluded_by_fix",
            "confirmed_cost"?, "confirmed_cost_pp"?}`` (the error keys only for quantized nodes;
            the cost in the metric's unit, ``_pp`` when that unit is percent).
        """
        ev: dict[str, Any] = {}
        if name in self.nodes.index:
            row = self.nodes.loc[name]
            ev.update(local_sqnr_db=row["local_sqnr_db"], local_channel_sqnr_db=row["local_channel_sqnr_db"],
                      local_cosine=row["local_cosine"],
                      accum_sqnr_db=row["accum_sqnr_db"], added_db=row["added_db"],
                      weight_sqnr_db=row["weight_sqnr_db"])
        if name in self.ranked:
            ev["damage_db"] = self.ranked[name]["damage_db"]
        if not self.inputs.empty:
            rows = self.inputs[self.inputs["node"] == name]
            ev["inputs"] = [{k: r[k] for k in INPUT_EVIDENCE} for r in rows.to_dict("records")]
        if not self.weights.empty:
            rows = self.weights[self.weights["node"] == name]
            ev["weights"] = [{k: r[k] for k in WEIGHT_EVIDENCE} for r in rows.to_dict("records")]
        ev["flags"] = [f["kind"] for f in self.flags.get(name, [])]
        ev["excluded_by_fix"] = name in self.fix_exclude
        if name in self.costs:
            ev["confirmed_cost"] = self.costs[name]
            if self.unit == "%":
                ev["confirmed_cost_pp"] = self.costs[name]
        return ev

    def error_reason(self, name: str) -> str:
        """Why a node that adds error is named: its local SQNR against the median, the runtime's
        kernel when the accumulated error falls far below the emulation, its flags, the outlier
        calibration samples widening what it reads, and its part in the confirmed fix.

        Args:
            name: A node name.

        Returns:
            The reason, clauses joined by ``"; "``.
        """
        entry = self.ranked.get(name, {})
        local_db = _finite(entry.get("local_sqnr_db"))
        channel_db = _finite(entry.get("local_channel_sqnr_db"))
        text = f"local SQNR {local_db:.1f} dB"
        if channel_db < local_db - 3:
            text += f", {channel_db:.1f} dB in its median output channel"
        parts = [f"{text} (median node {self.median:.1f} dB)"]
        row = self.row(name)
        accum_db, added_db = _finite(row.get("accum_sqnr_db")), _finite(row.get("added_db"), 0.0)
        if added_db >= JUMP_DB and accum_db < local_db - KERNEL_GAP_DB:
            parts.append(f"as ONNX Runtime runs the variant ({self.variant_level} optimizations: integer "
                         f"kernels) the accumulated SQNR falls to {accum_db:.1f} dB here, far below the "
                         f"{local_db:.1f} dB Q/DQ emulation predicts: the kernel (e.g. u8s8 saturation on CPUs "
                         "without VNNI), not the ranges, loses the accuracy")
        parts += [f["message"] for f in self.error_flags(name)]
        parts += [f["message"] for f in self.flags.get(name, []) if f["kind"] == "weight-channel-outlier"]
        for tensor in self.reads.get(name, []):
            if tensor in self.inflated:
                samples = sorted(s for s, _ in self.inflated[tensor])
                factor = max(f for _, f in self.inflated[tensor])
                parts.append(f"calibration sample(s) {samples} widen {tensor}'s calibrated range {factor:.0f}x")
        if name in self.fix_exclude:
            cost = self.costs.get(name)
            unit = "pp" if self.unit == "%" else self.unit
            parts.append("keeping it out of INT8 is part of the confirmed fix"
                         + (f" (worth {cost:.1f} {unit} of {self.metric})".replace("  ", " ")
                            if cost is not None and np.isfinite(cost) else ""))
        return "; ".join(parts)


def _error_nodes(ranking: Sequence[Mapping], fix_exclude: Sequence[str], median: float) -> list[str]:
    """The nodes that add error: the fix's members (worst rank first), then the other suspicious nodes.

    Args:
        ranking: :func:`rank_candidates` output.
        fix_exclude: The fix's excluded nodes.
        median: Median ``rank_db`` of the ranking.

    Returns:
        Node names, each once.
    """
    by_node = {r["node"]: r for r in ranking}
    suspicious = [r["node"] for r in ranking
                  if r["rank_db"] < median - SUSPICIOUS_GAP_DB or r["rank_db"] < SUSPICIOUS_FLOOR_DB]
    fix_members = sorted(fix_exclude, key=lambda n: by_node.get(n, {}).get("rank_db", 120.0))
    return list(dict.fromkeys(fix_members + suspicious))


def _range_sources(model: onnx.ModelProto, name: str, flags: Sequence[Mapping], heads: Sequence[str]
                   ) -> list[tuple[str, str]]:
    """The nodes writing the flagged ranges ``name`` reads, each with the reason it is named.

    Args:
        model: The FP32 model.
        name: A node that adds error.
        flags: Its :data:`ERROR_FLAGS` flags; channel outliers and heavy tails point at a source.
        heads: Quantized group heads.

    Returns:
        ``(source node, reason)`` pairs (the node itself left out).
    """
    sources = []
    for f in flags:
        if f["kind"] in RANGE_FLAGS:
            src = source_of(model, f["tensor"], heads)
            if src is not None and src != name:
                sources.append((src, f"{f['message']}; the tensor is produced by {src}'s group and read by {name}"))
    return sources


def find_culprits(
    model: onnx.ModelProto,
    layerwise: LayerwiseResult,
    flags: Sequence[Mapping],
    ranking: Sequence[Mapping],
    *,
    fix_exclude: Sequence[str] = (),
    costs: Mapping[str, float] | None = None,
    outliers: Sequence[Mapping] = (),
    metric: str = "top1",
    unit: str = "%",
) -> list[dict]:
    """The culprits, worst first, each with its evidence.

    Order: the nodes the confirmed fix keeps out of INT8 (by local SQNR), then the sources of
    the flagged ranges those (or other suspicious) nodes read, then other suspicious nodes
    (local SQNR ``SUSPICIOUS_GAP_DB`` below the median, or under ``SUSPICIOUS_FLOOR_DB``).

    Args:
        model: The FP32 model.
        layerwise: The layerwise result of the naive variant.
        flags: :func:`range_flags` output.
        ranking: :func:`rank_candidates` output.
        fix_exclude: The fix's excluded nodes (confirmed by evaluations).
        costs: Node -> confirmed cost in the metric's unit (points of top-1...), where measured.
        outliers: :func:`calibration_outliers` output (their inflated ranges are named in the
            reasons of the nodes reading them).
        metric, unit: The metric the costs are in, and its unit.

    Returns:
        ``{"node", "op_type", "role", "group", "evidence": {...}, "reason"}`` dicts; ``role`` is
        ``"adds error"``, ``"source of range"`` or ``"adds error; source of range"``.
    """
    facts = _Evidence.gather(layerwise, flags, ranking, fix_exclude, costs or {}, outliers, metric, unit)
    op_of = {n.name: n.op_type for n in model.graph.node}
    culprits: dict[str, dict] = {}

    def add(name: str, role: str, reason: str) -> None:
        if name in culprits:  # a second role adds its reason to the first
            if role not in culprits[name]["role"]:
                culprits[name]["role"] += f"; {role}"
                culprits[name]["reason"] += f"; {reason}"
            return
        culprits[name] = {"node": name, "op_type": op_of.get(name), "role": role,
                          "group": facts.ranked.get(name, {}).get("group", [name]), "evidence": facts.of(name),
                          "reason": reason}

    sources: list[tuple[str, str]] = []
    for name in _error_nodes(ranking, fix_exclude, facts.median):
        add(name, "adds error", facts.error_reason(name))
        sources += _range_sources(model, name, facts.error_flags(name), list(layerwise.quantized))
    for src, reason in sources:
        add(src, "source of range", reason)
    return list(culprits.values())


def confirmed_costs(steps: Sequence[Mapping], chosen: Sequence[str], naive: float) -> dict[str, float]:
    """Each fix member's confirmed cost: the fix's metric value minus the value without that member excluded.

    Uses only evaluations the search already ran (no new ones); a single-member fix is compared
    with the naive variant.

    Args:
        steps: :attr:`SearchResult.steps` (``exclude``, ``value``).
        chosen: The fix's excluded nodes.
        naive: The value of the configuration the search started from.

    Returns:
        Node -> cost in the metric's unit (points for top1/agreement), for the members whose
        counterpart was scored.
    """
    if not chosen:
        return {}
    chosen_set = set(chosen)
    scored = {frozenset(s["exclude"]): s["value"] for s in steps}
    fix_value = scored.get(frozenset(chosen_set))
    if fix_value is None:
        return {}
    costs = {}
    for node in chosen:
        rest = frozenset(chosen_set - {node})
        other = naive if not rest else scored.get(rest)
        if other is not None:
            costs[node] = fix_value - other
    return costs
