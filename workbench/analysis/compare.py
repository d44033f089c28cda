"""Compare two profiled engines of the same ONNX model, layer group by layer group.

Two engines rarely have the same layers: one fuses ``Conv + BatchNormalization + Relu`` into a
layer, the other runs three. Layers are therefore matched through the ONNX nodes they run
(``onnx_nodes``): take the bipartite graph "layer -- ONNX node" over the layers of *both*
tables; each connected component is a *group*, the smallest set of layers of A and of B that
cover the same ONNX nodes. Group times are comparable even when the fusions differ.

Layers that run no ONNX node (reformats and copies an engine inserted, helpers it made up)
match nothing; each becomes an unmatched row of its own engine. A group whose nodes only one
engine runs (the other folded them away) is kept, with no layer and a time of 0 on the other
side.

Every layer of each table lands in exactly one row, so the rows' ``time_a`` sum to A's total
layer time and ``time_b`` to B's (layers without a profile entry count as 0).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

from workbench.analysis.fusion import expand_node_ranges

MATCHED = "matched"
A_ONLY = "a_only"  # nodes only A runs (B folded them away)
B_ONLY = "b_only"
UNMATCHED_A = "unmatched_a"  # an A layer that runs no ONNX node
UNMATCHED_B = "unmatched_b"
STATUSES = (MATCHED, A_ONLY, B_ONLY, UNMATCHED_A, UNMATCHED_B)

COMPARISON_COLUMNS = (
    "group",
    "status",
    "onnx_nodes",
    "layers_a",
    "layers_b",
    "types_a",
    "types_b",
    "time_a",
    "time_b",
    "diff",
    "ratio",
)


class _DisjointSets:
    """Union-find over hashable keys, used to build the layer/node components."""

    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, key):
        """Return the representative of ``key``'s set (adding ``key`` if new)."""
        self.parent.setdefault(key, key)
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, first, second) -> None:
        """Merge the sets of ``first`` and ``second``."""
        self.parent[self.find(first)] = self.find(second)


def require_times(table: pd.DataFrame, label: str) -> None:
    """Raise a clear error when a table has no ``time_ms`` column.

    Args:
        table: A layer table.
        label: The engine's label, for the message.

    Raises:
        ValueError: The table was not profiled.
    """
    if "time_ms" not in table:
        raise ValueError(
            f"engine {label!r} has no 'time_ms' column: profile the engine first "
            "(engine.profile(inputs), or import_trt(layers_json, profile_json=...))"
        )


def layer_groups(a: pd.DataFrame, b: pd.DataFrame) -> list[dict]:
    """Group the layers of two tables into connected components through their ONNX nodes.

    Args:
        a: Layer table of engine A.
        b: Layer table of engine B.

    Returns:
        One dict per group, unordered: ``nodes`` (names in order of first mention, A first),
        ``a`` and ``b`` (row positions of the group's layers in each table, ascending). Layers
        with no ONNX node each form a group of their own with no nodes.
    """
    sets = _DisjointSets()
    for side, table in (("a", a), ("b", b)):
        for position, nodes in enumerate(table["onnx_nodes"]):
            sets.find((side, position))
            for node in nodes or []:
                sets.union((side, position), ("node", node))
    groups: dict = {}
    for side, table in (("a", a), ("b", b)):
        for position, nodes in enumerate(table["onnx_nodes"]):
            group = groups.setdefault(sets.find((side, position)), {"nodes": [], "a": [], "b": []})
            group[side].append(position)
            group["nodes"].extend(node for node in nodes or [] if node not in group["nodes"])
    return list(groups.values())


def order_groups(groups: list[dict], b_length: int) -> list[dict]:
    """Sort groups along the execution order of A, slotting B-only groups where B runs them.

    A group with A layers sorts at its first A layer. A group with B layers only sorts just
    after the groups (with A layers) that B runs before it.

    Args:
        groups: Output of :func:`layer_groups`.
        b_length: Number of layers of B.

    Returns:
        The groups, sorted.
    """
    group_of_b = {}
    for index, group in enumerate(groups):
        for position in group["b"]:
            group_of_b[position] = index
    keys: dict[int, tuple] = {i: (float(g["a"][0]), 0) for i, g in enumerate(groups) if g["a"]}
    anchor = -1.0
    for position in range(b_length):
        index = group_of_b[position]
        if index in keys and groups[index]["a"]:
            anchor = max(anchor, keys[index][0])
        elif index not in keys:
            keys[index] = (anchor + 0.5, position)
    return [groups[i] for i in sorted(range(len(groups)), key=lambda i: keys[i])]


def summed_time(times: Iterable[float]) -> float:
    """Sum layer times, NaN (no profile entry) counting as 0; NaN when all are NaN.

    Args:
        times: Layer times in ms.

    Returns:
        The sum (0.0 for no layers).
    """
    values = list(times)
    known = [t for t in values if not math.isnan(t)]
    if values and not known:
        return math.nan
    return float(sum(known))


def group_status(group: dict) -> str:
    """Classify a group as matched, one-sided, or an unmatched node-less layer.

    Args:
        group: One group from :func:`layer_groups`.

    Returns:
        One of :data:`STATUSES`.
    """
    if not group["nodes"]:
        return UNMATCHED_A if group["a"] else UNMATCHED_B
    if group["a"] and group["b"]:
        return MATCHED
    return A_ONLY if group["a"] else B_ONLY


def group_row(group_id: int, group: dict, a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Build the comparison row of one group.

    Args:
        group_id: The group's number.
        group: One group from :func:`layer_groups`.
        a, b: The two layer tables.

    Returns:
        A dict with :data:`COMPARISON_COLUMNS`.
    """
    time_a = summed_time(a["time_ms"].iloc[group["a"]].astype(float)) if group["a"] else 0.0
    time_b = summed_time(b["time_ms"].iloc[group["b"]].astype(float)) if group["b"] else 0.0
    return {
        "group": group_id,
        "status": group_status(group),
        "onnx_nodes": list(group["nodes"]),
        "layers_a": a["name"].iloc[group["a"]].tolist(),
        "layers_b": b["name"].iloc[group["b"]].tolist(),
        "types_a": a["type"].iloc[group["a"]].tolist(),
        "types_b": b["type"].iloc[group["b"]].tolist(),
        "time_a": time_a,
        "time_b": time_b,
        "diff": time_b - time_a,
        "ratio": time_b / time_a if time_a > 0 else math.nan,
    }


def compare_engines(
    a: pd.DataFrame,
    b: pd.DataFrame,
    label_a: str = "A",
    label_b: str = "B",
    *,
    model: Any = None,
) -> pd.DataFrame:
    """Compare two profiled engines group by group, matched through their ONNX nodes.

    Args:
        a: Profiled layer table of engine A (the baseline).
        b: Profiled layer table of engine B.
        label_a: Name of A for figures and messages (e.g. ``"fp32"``).
        label_b: Name of B.
        model: The ONNX model both were built from; optional. When given, TensorRT myelin
            ranges are expanded to all the nodes they cover before matching
            (:func:`workbench.analysis.fusion.expand_node_ranges`).

    Returns:
        One row per group, in A's execution order (B-only rows where B runs them), with
        columns ``group`` (0, 1, ...), ``status`` (``"matched"``, ``"a_only"``, ``"b_only"``,
        ``"unmatched_a"``, ``"unmatched_b"``), ``onnx_nodes``, ``layers_a``, ``layers_b``,
        ``types_a``, ``types_b``, ``time_a``, ``time_b`` (summed mean ms per inference; 0 on
        a side with no layer), ``diff`` (``time_b - time_a``) and ``ratio``
        (``time_b / time_a``, NaN when ``time_a`` is 0). ``attrs`` holds ``label_a``,
        ``label_b``, ``totals`` (:func:`totals_of_comparison`), ``sources`` (the tables'
        ``source`` values) and ``measured_on`` (the CPUs that timed ONNX Runtime tables).

    Raises:
        ValueError: A table has no ``time_ms`` (not profiled).
    """
    require_times(a, label_a)
    require_times(b, label_b)
    if model is not None:
        a, b = expand_node_ranges(a, model), expand_node_ranges(b, model)
    groups = order_groups(layer_groups(a, b), len(b))
    rows = [group_row(i, group, a, b) for i, group in enumerate(groups)]
    comparison = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    for column in ("time_a", "time_b", "diff", "ratio"):
        comparison[column] = comparison[column].astype(float)
    comparison["group"] = comparison["group"].astype(int)
    comparison.attrs.update(label_a=label_a, label_b=label_b)
    # what timed each side (a CPU's layer times are not a GPU's), and on which CPU, for the figures
    comparison.attrs["sources"] = sorted({str(s) for t in (a, b) for s in t.get("source", []) if isinstance(s, str)})
    comparison.attrs["measured_on"] = sorted({t.attrs["measured_on"] for t in (a, b) if t.attrs.get("measured_on")})
    comparison.attrs["totals"] = totals_of_comparison(comparison)
    return comparison


def totals_of_comparison(comparison: pd.DataFrame) -> dict:
    """Sum a comparison's times overall, over matched groups and over the rest.

    Args:
        comparison: Output of :func:`compare_engines`.

    Returns:
        ``label_a``, ``label_b``, ``total_a``, ``total_b``, ``diff`` (``total_b - total_a``),
        ``ratio`` (``total_b / total_a``), ``matched_a``, ``matched_b`` (time in groups both
        engines run), ``unmatched_a``, ``unmatched_b`` (the rest: node-less layers plus groups
        only that engine runs), ``groups``, ``matched_groups``, ``unmatched_layers_a``,
        ``unmatched_layers_b`` (node-less layer counts).
    """
    status = comparison["status"]
    matched = status == MATCHED
    total_a = float(comparison["time_a"].sum())
    total_b = float(comparison["time_b"].sum())
    matched_a = float(comparison.loc[matched, "time_a"].sum())
    matched_b = float(comparison.loc[matched, "time_b"].sum())
    unmatched_a = float(comparison.loc[~matched, "time_a"].sum())
    unmatched_b = float(comparison.loc[~matched, "time_b"].sum())
    return {
        "label_a": comparison.attrs.get("label_a", "A"),
        "label_b": comparison.attrs.get("label_b", "B"),
        "total_a": total_a,
        "total_b": total_b,
        "diff": total_b - total_a,
        "ratio": total_b / total_a if total_a > 0 else math.nan,
        "matched_a": matched_a,
        "matched_b": matched_b,
        "unmatched_a": unmatched_a,
        "unmatched_b": unmatched_b,
        "groups": int(len(comparison)),
        "matched_groups": int(matched.sum()),
        "unmatched_layers_a": int((status == UNMATCHED_A).sum()),
        "unmatched_layers_b": int((status == UNMATCHED_B).sum()),
    }


def compare_totals(
    a: pd.DataFrame, b: pd.DataFrame, label_a: str = "A", label_b: str = "B", *, model: Any = None
) -> dict:
    """Total layer time of two engines, split into matched and unmatched time.

    Args:
        a, b: Profiled layer tables.
        label_a, label_b: Their names.
        model: Optional ONNX model (see :func:`compare_engines`).

    Returns:
        The dict of :func:`totals_of_comparison`.
    """
    return compare_engines(a, b, label_a, label_b, model=model).attrs["totals"]
