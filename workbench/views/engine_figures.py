"""Plotly figures and tables of an engine's layer table: pure functions of data, no widgets.

Every function takes a layer table (:mod:`workbench.tables.engine_table`), whatever engine it
came from. Time figures need a profiled table (``time_ms``) and raise a ``ValueError`` naming
the missing column otherwise; the fusion figure and table work on any table.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from workbench.analysis.compare import (
    A_ONLY,
    B_ONLY,
    MATCHED,
    UNMATCHED_A,
    UNMATCHED_B,
    totals_of_comparison,
)
from workbench.analysis.fusion import (
    FOLDED,
    FUSED,
    KEPT,
    expand_node_ranges,
    fusion_groups,
    graph_nodes,
    node_edges,
    node_to_layer,
)
from workbench.views.figure_style import fit_labels

PROFILE_HINT = (
    "profile the engine first (engine.profile(inputs) for ONNX Runtime, or "
    "import_trt(layers_json, profile_json=...) for TensorRT exports)"
)
UNKNOWN = "unknown"
PRECISION_COLORS = {
    "FP32": "#1f77b4",
    "TF32": "#17becf",
    "FP16": "#76b900",
    "BF16": "#2ca02c",
    "FP8": "#9467bd",
    "INT8": "#ff7f0e",
    "INT4": "#d62728",
    "FP4": "#e377c2",
    UNKNOWN: "#9e9e9e",
}
OTHER_PRECISION_COLORS = plotly.colors.qualitative.Safe
BACKEND_TIMERS = {  # what a backend's (or a layer table source's) time is a time of
    "onnxruntime": "ONNX Runtime CPU",
    "tensorrt": "TensorRT GPU",
    "trt-json": "TensorRT GPU (imported)",
    "triton": "Triton-served",
}
CPU_NOISE_NOTE = "CPU per-layer times swing from run to run: compare bars only well beyond their spread"
LAYER_COLORS = plotly.colors.qualitative.Dark24 + plotly.colors.qualitative.Light24
FOLDED_COLOR = "#c8c8c8"
EDGE_COLOR = "#b0b0b0"
FASTER_COLOR = "#2ca02c"
SLOWER_COLOR = "#d62728"
INSERTED_PATTERN = "/"
LABEL_WIDTH = 60
NODE_MARKERS = "onnx-nodes"  # ``meta`` of the fusion graph's node traces
MAX_LEGEND_LAYERS = 40
LEGEND_GROUP_GAP = 2  # px between legend entries (each layer is a legend group of its own)
LEGEND_ENTRY_HEIGHT = 22  # px per legend entry, with the gap
STATUS_SYMBOLS = {FUSED: "circle", KEPT: "square", FOLDED: "x"}


# --------------------------------------------------------------------------------------------
# Small helpers


def require_column(table: pd.DataFrame, column: str, what: str) -> None:
    """Raise a ``ValueError`` naming ``column`` when the table lacks it.

    Args:
        table: A layer table.
        column: The column needed (``"time_ms"``).
        what: The function that needs it, for the message.

    Raises:
        ValueError: The column is missing.
    """
    if column not in table:
        hint = PROFILE_HINT if column in ("time_ms", "median_ms", "share") else "see engine_table"
        raise ValueError(f"{what} needs the column {column!r}, which this table lacks: {hint}")


def shorten(text: Any, width: int = LABEL_WIDTH) -> str:
    """Cut ``text`` to ``width`` characters, marking the cut with an ellipsis.

    Args:
        text: Anything; None becomes ``""``.
        width: Maximum length.

    Returns:
        The text, shortened if needed.
    """
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def precision_label(precision: Any) -> str:
    """Return the precision as a label, ``"unknown"`` when missing."""
    if precision is None or (isinstance(precision, float) and math.isnan(precision)):
        return UNKNOWN
    return str(precision)


def precision_color(label: str, others: Sequence[str] = ()) -> str:
    """Color of a precision label; combined labels (``"FP32+INT8"``) get a palette color.

    Args:
        label: A precision label.
        others: All labels in the figure, so palette colors stay distinct and stable.

    Returns:
        A CSS color.
    """
    if label in PRECISION_COLORS:
        return PRECISION_COLORS[label]
    extra = sorted(o for o in set(others) | {label} if o not in PRECISION_COLORS)
    return OTHER_PRECISION_COLORS[extra.index(label) % len(OTHER_PRECISION_COLORS)]


def unique_labels(names: Sequence[str]) -> list[str]:
    """Make names unique for a categorical axis by numbering repeats (``name (2)``)."""
    seen: Counter = Counter()
    labels = []
    for name in names:
        seen[name] += 1
        labels.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return labels


def nodes_text(nodes: Sequence[str] | None, limit: int = 8) -> str:
    """List ONNX node names for a hover box, at most ``limit`` of them."""
    nodes = list(nodes or [])
    if not nodes:
        return "(none: inserted by the engine)"
    shown = ", ".join(nodes[:limit])
    return shown + (f" … (+{len(nodes) - limit})" if len(nodes) > limit else "")


def timed_rows(table: pd.DataFrame, what: str) -> pd.DataFrame:
    """Rows of a profiled table that have a time, with a ``position`` column (row number).

    Args:
        table: A layer table.
        what: The calling function, for the error message.

    Returns:
        A copy without NaN times.

    Raises:
        ValueError: The table has no ``time_ms``.
    """
    require_column(table, "time_ms", what)
    rows = table.assign(position=range(len(table)))
    return rows[rows["time_ms"].notna()].copy()


def layer_hover(row: Any) -> str:
    """Hover text of one layer (a row of a layer table, as from ``itertuples``)."""
    lines = [
        f"<b>{shorten(row.name, 120)}</b>",
        f"type: {row.type}",
        f"precision: {precision_label(row.precision)}",
        f"tactic: {shorten(row.tactic, 80)}",
        f"ONNX nodes: {nodes_text(row.onnx_nodes)}",
    ]
    if getattr(row, "time_ms", None) is not None and not math.isnan(row.time_ms):
        lines.append(f"time: {row.time_ms:.4f} ms ({row.share:.1f}% of layer time)")
    if row.inserted:
        lines.append("<i>inserted by the engine</i>")
    return "<br>".join(lines)


# --------------------------------------------------------------------------------------------
# Time figures


def timer_label(sources, default: str = "measured") -> str:
    """What timed ``sources`` (backend or layer-table source names, in order): ``"ONNX Runtime CPU"``...

    Returns:
        The timers joined with "and", ``default`` when there are none.
    """
    return " and ".join(BACKEND_TIMERS.get(s, s) for s in sources) or default


def timer_name(table: pd.DataFrame) -> str:
    """What timed a layer table: ``"ONNX Runtime CPU"``, ``"TensorRT GPU"``... from its ``source`` column."""
    return timer_label(sorted({str(s) for s in table.get("source", pd.Series(dtype=object)) if isinstance(s, str)}))


def timing_note(table: pd.DataFrame) -> str:
    """Where and how steadily a table was timed: the CPU, the runs, and the noise warning on a CPU."""
    facts = []
    if table.attrs.get("measured_on"):
        facts.append(f"on {table.attrs['measured_on']}")
    if table.attrs.get("profile_iterations"):
        facts.append(f"{table.attrs['profile_iterations']} profiled runs")
    if "time_p10_ms" in table.columns:
        facts.append("bars: p10–p90 of the runs")
    if "onnxruntime" in set(table.get("source", pd.Series(dtype=object))):
        facts.append(CPU_NOISE_NOTE)
    return "; ".join(facts)


def layer_time_spread(rows: pd.DataFrame) -> dict | None:
    """Error bars from p10 to p90 around each layer's mean time (None where the source has no spread)."""
    if "time_p10_ms" not in rows.columns or "time_p90_ms" not in rows.columns:
        return None
    return spread_bars(rows["time_ms"], rows["time_p10_ms"], rows["time_p90_ms"], width=2, color="#444444")


def spread_bars(center, low, high, **style) -> dict:
    """Plotly error bars from ``low`` to ``high`` (p10 and p90 of timed runs) around ``center``.

    Args:
        center: The plotted times (a mean or a median), one per point.
        low: Their p10s (NaN or None where not recorded: no bar below).
        high: Their p90s.
        style: Bar style (``width``, ``color``...).

    Returns:
        The ``error_x``/``error_y`` dict; a bar never points inward when a skewed point's center
        sits outside p10-p90 (it then only spans to the far side); None where a bound is missing.
    """
    def floats(values):
        return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)

    center, low, high = floats(center), floats(low), floats(high)
    return dict(type="data", symmetric=False, array=_clipped(high - center), arrayminus=_clipped(center - low),
                thickness=1, **style)


def _clipped(lengths: np.ndarray) -> list:
    """Bar lengths of at least 0, None where missing (plotly draws no bar there)."""
    return [max(float(v), 0.0) if math.isfinite(v) else None for v in lengths]



def layer_time_bar(table: pd.DataFrame, top: int | None = None) -> go.Figure:
    """Horizontal bars of time per layer, slowest on top, colored by precision.

    Layers the engine inserted (reformats, copies) are hatched. Layers without a time (no
    profile entry) are left out and counted in the title.

    Args:
        table: A profiled layer table.
        top: Show only this many slowest layers; None for all.

    Returns:
        A figure with one bar trace per precision; bars in all traces: one per shown layer.

    Raises:
        ValueError: The table has no ``time_ms`` (profile the engine first).
    """
    rows = timed_rows(table, "layer_time_bar")
    untimed = len(table) - len(rows)
    rows = rows.sort_values("time_ms", ascending=False, kind="stable")
    if top is not None:
        rows = rows.head(int(top))
    rows["label"] = unique_labels(rows["name"].tolist())
    rows["precision_label"] = rows["precision"].map(precision_label)
    labels = list(dict.fromkeys(rows["precision_label"]))
    fig = go.Figure()
    for label in labels:
        subset = rows[rows["precision_label"] == label]
        fig.add_trace(
            go.Bar(
                name=label,
                orientation="h",
                x=subset["time_ms"].tolist(),
                y=subset["label"].tolist(),
                marker_color=precision_color(label, labels),
                marker_pattern_shape=[INSERTED_PATTERN if i else "" for i in subset["inserted"]],
                error_x=layer_time_spread(subset),
                hovertext=[layer_hover(r) for r in subset.itertuples(index=False)],
                hoverinfo="text",
            )
        )
    order = rows["label"].tolist()[::-1]  # plotly lists horizontal categories bottom-up
    title = (f"Time per layer, {timer_name(table)} ({len(rows)} of {len(table)} layers, "
             f"sum {rows['time_ms'].sum():.4f} ms)")
    if untimed:
        title += f"; {untimed} without a time"
    notes = [n for n in (timing_note(table), "hatched: inserted by the engine (no ONNX node)"
                         if rows["inserted"].any() else "") if n]
    if notes:
        title += "<br><sup>" + "<br>".join(notes) + "</sup>"
    fig.update_layout(
        title=title,
        xaxis_title=f"{timer_name(table)} mean time per inference (ms)",
        yaxis=dict(
            categoryorder="array",
            categoryarray=order,
            tickmode="array",
            tickvals=order,
            ticktext=[shorten(label) for label in order],
        ),
        legend_title="precision",
        barmode="overlay",
        height=max(320, 22 * len(rows) + 160),
        margin=dict(l=20, r=20, t=100, b=50),
        template="plotly_white",
    )
    return fit_labels(fig)


def time_treemap(table: pd.DataFrame) -> go.Figure:
    """Treemap of layer time: layer type -> layer.

    Parents carry no value of their own (``branchvalues="remainder"``), so the trace's values
    sum to the total layer time.

    Args:
        table: A profiled layer table.

    Returns:
        A figure with one treemap trace.

    Raises:
        ValueError: The table has no ``time_ms``.
    """
    rows = timed_rows(table, "time_treemap")
    total = float(rows["time_ms"].sum())
    notes = timing_note(table)
    types = rows["type"].map(lambda t: UNKNOWN if t is None else str(t))
    ids, labels, parents, values, hover = ["all"], ["all layers"], [""], [0.0], [f"total {total:.4f} ms"]
    for layer_type in dict.fromkeys(types):
        type_time = float(rows.loc[types == layer_type, "time_ms"].sum())
        ids.append(f"type:{layer_type}")
        labels.append(layer_type)
        parents.append("all")
        values.append(0.0)
        hover.append(f"{layer_type}: {type_time:.4f} ms ({_percent(type_time, total):.1f}%)")
    for row, layer_type in zip(rows.itertuples(index=False), types):
        ids.append(f"layer:{row.position}")
        labels.append(shorten(row.name, 40))
        parents.append(f"type:{layer_type}")
        values.append(float(row.time_ms))
        hover.append(layer_hover(row))
    fig = go.Figure(
        go.Treemap(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="remainder",
            hovertext=hover,
            hoverinfo="text",
            textinfo="label+percent root",
        )
    )
    fig.update_layout(
        title=f"Layer time by type, {timer_name(table)} ({total:.4f} ms summed over {len(rows)} layers)"
        + (f"<br><sup>{notes}</sup>" if notes else ""),
        margin=dict(l=10, r=10, t=70, b=10),
        height=520,
    )
    return fit_labels(fig)


def _percent(part: float, total: float) -> float:
    """``100 * part / total``, 0 when the total is not positive."""
    return 100.0 * part / total if total > 0 else 0.0


def top_layers(table: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The ``k`` slowest layers as a table.

    Args:
        table: A profiled layer table.
        k: How many layers.

    Returns:
        Columns ``rank`` (1 = slowest), ``name``, ``type``, ``precision``, ``tactic``,
        ``time_ms``, ``median_ms``, ``share``, ``cumulative_share``, ``onnx_nodes``,
        ``inserted``.

    Raises:
        ValueError: The table has no ``time_ms``.
    """
    rows = timed_rows(table, "top_layers").sort_values("time_ms", ascending=False, kind="stable")
    rows = rows.head(int(k)).reset_index(drop=True)
    columns = ["name", "type", "precision", "tactic", "time_ms", "median_ms", "share",
               "onnx_nodes", "inserted"]
    result = rows[columns].copy()
    result.insert(0, "rank", range(1, len(result) + 1))
    result.insert(8, "cumulative_share", result["share"].cumsum())
    return result


def precision_times(table: pd.DataFrame) -> pd.DataFrame:
    """Summed layer time per precision.

    Args:
        table: A profiled layer table.

    Returns:
        Columns ``precision`` (``"unknown"`` when missing), ``time_ms``, ``layers``, ``share``
        (percent of summed layer time), slowest first.

    Raises:
        ValueError: The table has no ``time_ms``.
    """
    rows = timed_rows(table, "time_by_precision")
    rows["precision_label"] = rows["precision"].map(precision_label)
    grouped = rows.groupby("precision_label", sort=False)["time_ms"].agg(["sum", "size"])
    result = pd.DataFrame(
        {
            "precision": grouped.index.tolist(),
            "time_ms": grouped["sum"].astype(float).tolist(),
            "layers": grouped["size"].astype(int).tolist(),
        }
    )
    total = float(result["time_ms"].sum())
    result["share"] = [_percent(t, total) for t in result["time_ms"]]
    return result.sort_values("time_ms", ascending=False, kind="stable").reset_index(drop=True)


def time_by_precision(table: pd.DataFrame, kind: str = "bar") -> go.Figure:
    """Summed layer time per precision, as bars or a pie.

    Args:
        table: A profiled layer table.
        kind: ``"bar"`` or ``"pie"``.

    Returns:
        A figure with one trace whose values are :func:`precision_times`' ``time_ms``.

    Raises:
        ValueError: No ``time_ms`` column, or an unknown ``kind``.
    """
    if kind not in ("bar", "pie"):
        raise ValueError(f"kind must be 'bar' or 'pie', not {kind!r}")
    times = precision_times(table)
    labels = times["precision"].tolist()
    colors = [precision_color(label, labels) for label in labels]
    hover = [
        f"{p}: {t:.4f} ms, {s:.1f}% of layer time, {n} layers"
        for p, t, s, n in zip(labels, times["time_ms"], times["share"], times["layers"])
    ]
    if kind == "pie":
        trace = go.Pie(labels=labels, values=times["time_ms"].tolist(), marker_colors=colors,
                       hovertext=hover, hoverinfo="text", sort=False)
    else:
        trace = go.Bar(x=labels, y=times["time_ms"].tolist(), marker_color=colors,
                       text=[f"{s:.1f}%" for s in times["share"]], textposition="outside",
                       hovertext=hover, hoverinfo="text")
    fig = go.Figure(trace)
    notes = [n for n in (timing_note(table),) if n]
    if len(labels) == 1:  # one bar compares nothing: say why there is only one
        notes.append(f"every timed layer ran in {labels[0]}: nothing to compare across precisions here")
    fig.update_layout(
        title=f"Layer time per precision, {timer_name(table)} ({times['time_ms'].sum():.4f} ms summed)"
        + ("<br><sup>" + "<br>".join(notes) + "</sup>" if notes else ""),
        xaxis_title="precision" if kind == "bar" else None,
        yaxis_title=f"{timer_name(table)} summed mean time per inference (ms)" if kind == "bar" else None,
        height=400,
        margin=dict(l=50, r=20, t=90, b=50),
        template="plotly_white",
    )
    return fit_labels(fig)


# --------------------------------------------------------------------------------------------
# Fusion


def topological_depths(node_count: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Longest-path depth of each node from the graph inputs (0 for nodes nothing feeds).

    Args:
        node_count: Number of nodes.
        edges: ``(producer, consumer)`` index pairs.

    Returns:
        Depth per node. Nodes on a cycle (invalid ONNX) are placed after their known
        producers.
    """
    consumers: dict[int, list[int]] = {}
    waiting = [0] * node_count
    for source, target in edges:
        consumers.setdefault(source, []).append(target)
        waiting[target] += 1
    depth = [0] * node_count
    ready = [i for i in range(node_count) if waiting[i] == 0]
    done = set()
    while ready:
        current = ready.pop()
        done.add(current)
        for target in consumers.get(current, []):
            depth[target] = max(depth[target], depth[current] + 1)
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    return depth if len(done) == node_count else _with_cycles(depth, done, node_count)


def _with_cycles(depth: list[int], done: set[int], node_count: int) -> list[int]:
    """Place nodes Kahn's algorithm could not reach (cycles) after everything else."""
    last = max((depth[i] for i in done), default=-1)
    return [depth[i] if i in done else last + 1 for i in range(node_count)]


def node_positions(depths: Sequence[int]) -> list[tuple[float, float]]:
    """Lay nodes out: x = topological depth, y = place within that depth, centred on 0.

    Args:
        depths: Depth per node (graph order breaks ties).

    Returns:
        ``(x, y)`` per node.
    """
    columns: dict[int, list[int]] = {}
    for index, depth in enumerate(depths):
        columns.setdefault(depth, []).append(index)
    positions: list[tuple[float, float]] = [(0.0, 0.0)] * len(depths)
    for depth, members in columns.items():
        for place, index in enumerate(members):
            positions[index] = (float(depth), (len(members) - 1) / 2.0 - place)
    return positions


def layer_colors(layer_names: Sequence[str]) -> dict[str, str]:
    """A color per layer, cycling a palette in execution order (neighbours differ)."""
    return {name: LAYER_COLORS[i % len(LAYER_COLORS)] for i, name in enumerate(layer_names)}


def _edge_coordinates(pairs, positions) -> tuple[list, list]:
    """x/y lists drawing each edge as a segment, ``None`` between segments."""
    xs, ys = [], []
    for source, target in pairs:
        xs += [positions[source][0], positions[target][0], None]
        ys += [positions[source][1], positions[target][1], None]
    return xs, ys


def _node_hover(node, status: str, layer: Any) -> str:
    """Hover text of one ONNX node and the layer that runs it (``layer`` a namedtuple)."""
    lines = [f"<b>{node.name}</b> ({node.op_type})", f"status: {status}"]
    if layer is None:
        lines.append("no engine layer runs it (constant-folded or eliminated)")
        return "<br>".join(lines)
    lines += [
        f"layer: {shorten(layer.layer, 120)}",
        f"layer type: {layer.type}",
        f"tactic: {shorten(layer.tactic, 80)}",
        f"precision: {precision_label(layer.precision)}",
        f"in: {layer.input_formats or '?'}",
        f"out: {layer.output_formats or '?'}",
    ]
    if getattr(layer, "time_ms", None) is not None and not math.isnan(layer.time_ms):
        lines.append(f"layer time: {layer.time_ms:.4f} ms ({layer.share:.1f}%)")
    return "<br>".join(lines)


def fusion_graph(table: pd.DataFrame, model: Any) -> go.Figure:
    """Draw the ONNX graph with its nodes grouped by the engine layer that runs them.

    Nodes are markers at x = topological depth, y = place within that depth; edges go from a
    tensor's producer to its consumers. Nodes and the edges inside a layer take that layer's
    color (circles: fused nodes, squares: nodes a layer runs alone); folded-away nodes are grey
    crosses. Works on unprofiled tables; profiled ones add the layer time to the hover text.

    Args:
        table: A layer table of an engine built from ``model``.
        model: The ONNX model (ModelProto or LoadedModel).

    Returns:
        A figure; node traces carry ``meta="onnx-nodes"`` and hold one marker per ONNX node.
    """
    table = expand_node_ranges(table, model)
    nodes = graph_nodes(model)
    edges = node_edges(nodes)
    positions = node_positions(topological_depths(len(nodes), edges))
    per_node = node_to_layer(table, model)
    layer_of = dict(zip(per_node["node"], per_node["layer"]))
    status_of = dict(zip(per_node["node"], per_node["status"]))
    groups = {row.layer: row for row in fusion_groups(table).itertuples(index=False)}
    colors = layer_colors(list(groups))
    fig = go.Figure()
    _add_edges(fig, nodes, edges, positions, layer_of, colors)
    _add_node_traces(fig, nodes, positions, layer_of, status_of, groups, colors)
    _layout_fusion_graph(fig, table, per_node, positions)
    return fit_labels(fig)


def _add_edges(fig, nodes, edges, positions, layer_of, colors) -> None:
    """Grey edges between layers, thick colored edges inside a layer."""
    between = [(s, t) for s, t in edges
               if layer_of[nodes[s].name] is None or layer_of[nodes[s].name] != layer_of[nodes[t].name]]
    xs, ys = _edge_coordinates(between, positions)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=EDGE_COLOR, width=1),
                             hoverinfo="skip", showlegend=False, meta="edges"))
    inside: dict[str, list] = {}
    for s, t in edges:
        layer = layer_of[nodes[s].name]
        if layer is not None and layer == layer_of[nodes[t].name]:
            inside.setdefault(layer, []).append((s, t))
    for layer, pairs in inside.items():
        xs, ys = _edge_coordinates(pairs, positions)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colors[layer], width=5),
                                 opacity=0.6, hoverinfo="skip", showlegend=False,
                                 legendgroup=layer, meta="fused-edges"))


def _add_node_traces(fig, nodes, positions, layer_of, status_of, groups, colors) -> None:
    """One marker trace per engine layer, one grey trace for folded-away nodes."""
    members: dict[Any, list[int]] = {}
    for index, node in enumerate(nodes):
        members.setdefault(layer_of[node.name], []).append(index)
    show_legend = len(members) <= MAX_LEGEND_LAYERS
    for layer, indices in members.items():
        group = groups.get(layer) if layer is not None else None
        fig.add_trace(
            go.Scatter(
                x=[positions[i][0] for i in indices],
                y=[positions[i][1] for i in indices],
                mode="markers",
                marker=dict(
                    size=13,
                    color=colors[layer] if layer is not None else FOLDED_COLOR,
                    symbol=[STATUS_SYMBOLS[status_of[nodes[i].name]] for i in indices],
                    line=dict(width=1, color="white"),
                ),
                name=shorten(layer, 40) if layer is not None else FOLDED,
                legendgroup=layer if layer is not None else FOLDED,
                showlegend=show_legend,
                hovertext=[_node_hover(nodes[i], status_of[nodes[i].name], group) for i in indices],
                hoverinfo="text",
                meta=NODE_MARKERS,
            )
        )


def _layout_fusion_graph(fig, table, per_node, positions) -> None:
    """Title with the fusion counts, hidden axes, size from the graph's extent."""
    counts = per_node["status"].value_counts()
    inserted = int(table["inserted"].sum())
    title = (
        f"ONNX nodes by engine layer: {len(per_node)} nodes in {len(table)} layers; "
        f"{counts.get(FUSED, 0)} fused, {counts.get(KEPT, 0)} kept, {counts.get(FOLDED, 0)} folded away"
    )
    subtitle = f"{inserted} inserted layers run no ONNX node and are not drawn" if inserted else ""
    unknown = per_node.attrs.get("unknown_nodes", [])
    if unknown:
        subtitle += ("; " if subtitle else "") + f"{len(unknown)} nodes named by layers are not in the model"
    if subtitle:
        title += f"<br><sup>{subtitle}</sup>"
    width_nodes = max((y for _, y in positions), default=0.0) * 2 + 1
    depth = max((x for x, _ in positions), default=0.0) + 1
    # Tall enough for the whole legend (one entry per layer): a legend taller than the plot
    # is cut off and scrolls inside the figure.
    legend_entries = sum(1 for trace in fig.data if trace.showlegend is not False and trace.meta == NODE_MARKERS)
    fig.update_layout(
        title=title,
        xaxis=dict(title="topological depth", showgrid=False, zeroline=False),
        yaxis=dict(visible=False),
        legend=dict(tracegroupgap=LEGEND_GROUP_GAP, itemsizing="constant"),
        height=int(min(1400, max(380, 60 * width_nodes + 160, LEGEND_ENTRY_HEIGHT * legend_entries + 150))),
        width=int(min(4000, max(700, 45 * depth + 300))),
        hovermode="closest",
        template="plotly_white",
        margin=dict(l=20, r=20, t=80, b=40),
    )


def fusion_table(table: pd.DataFrame, model: Any = None) -> pd.DataFrame:
    """What the engine made of the model: one row per layer, then one per folded-away node.

    Args:
        table: A layer table.
        model: The ONNX model (ModelProto or LoadedModel); without it there are no
            ``op_types`` and no folded-away rows.

    Returns:
        Columns ``layer`` (None for folded-away nodes), ``status`` (``"fused"``, ``"kept"``,
        ``"inserted"``, ``"no onnx node"`` for engine helpers not flagged inserted, or
        ``"folded away"``), ``type``, ``onnx_nodes``, ``op_types``, ``node_count``,
        ``precision``, ``tactic``, ``input_formats``, ``output_formats``, ``inserted``, plus
        ``time_ms`` and ``share`` when profiled. ``attrs["unknown_nodes"]`` lists nodes layers
        name that the model lacks.
    """
    if model is not None:
        table = expand_node_ranges(table, model)
    groups = fusion_groups(table)
    per_node = node_to_layer(table, model)
    op_type_of = dict(zip(per_node["node"], per_node["op_type"]))
    groups.insert(1, "status", [_layer_status(r) for r in groups.itertuples(index=False)])
    groups.insert(4, "op_types", [[op_type_of.get(n) for n in nodes] for nodes in groups["onnx_nodes"]])
    folded = per_node[per_node["status"] == FOLDED]
    folded_rows = pd.DataFrame(
        {
            "layer": [None] * len(folded),
            "status": [FOLDED] * len(folded),
            "onnx_nodes": [[node] for node in folded["node"]],
            "op_types": [[op_type] for op_type in folded["op_type"]],
            "node_count": [1] * len(folded),
            "inserted": [False] * len(folded),
        }
    )
    result = pd.concat([groups, folded_rows], ignore_index=True) if len(folded) else groups
    result = result[groups.columns]
    result["node_count"] = result["node_count"].astype(int)
    result["inserted"] = result["inserted"].astype(bool)
    result.attrs = {"unknown_nodes": per_node.attrs["unknown_nodes"]}
    return result


def _layer_status(group: Any) -> str:
    """Status of one row of :func:`fusion_groups`."""
    if group.inserted:
        return "inserted"
    if group.node_count == 0:
        return "no onnx node"
    return FUSED if group.fused else KEPT


# --------------------------------------------------------------------------------------------
# Comparison


def _status_text(status: str, label_a: str, label_b: str) -> str:
    """Readable status of a comparison row."""
    return {
        MATCHED: "matched",
        A_ONLY: f"only {label_a} runs these nodes",
        B_ONLY: f"only {label_b} runs these nodes",
        UNMATCHED_A: f"{label_a} layer with no ONNX node",
        UNMATCHED_B: f"{label_b} layer with no ONNX node",
    }.get(status, status)


def _group_label(row: Any) -> str:
    """Axis label of a comparison row: group number and its (first side's) layer names."""
    layers = row.layers_a or row.layers_b
    return f"G{row.group} " + shorten(" | ".join(layers), LABEL_WIDTH)


def _comparison_hover(row: Any, label_a: str, label_b: str) -> str:
    """Hover text of one comparison row."""
    ratio = "n/a" if math.isnan(row.ratio) else f"{row.ratio:.2f}x"
    return "<br>".join([
        f"<b>group {row.group}</b>: {_status_text(row.status, label_a, label_b)}",
        f"ONNX nodes: {nodes_text(row.onnx_nodes)}",
        f"{label_a}: {shorten(' | '.join(row.layers_a) or '-', 120)} ({row.time_a:.4f} ms)",
        f"{label_b}: {shorten(' | '.join(row.layers_b) or '-', 120)} ({row.time_b:.4f} ms)",
        f"difference {label_b} - {label_a}: {row.diff:+.4f} ms; ratio {ratio}",
    ])


def compare_figure(comparison: pd.DataFrame, *, hide_zero: bool = True, top: int | None = None) -> go.Figure:
    """Diverging bars of each group's time difference (B - A) between two engines.

    Green bars: B is faster there; red: slower. Rows of layers that run no ONNX node (and
    groups only one engine runs) are hatched. Totals are in the title.

    Args:
        comparison: Output of :func:`workbench.analysis.compare.compare_engines`.
        hide_zero: Leave out rows where both times are 0 (zero-cost copies); they do not
            change any sum.
        top: Keep only the ``top`` rows with the largest absolute difference (shown in
            execution order).

    Returns:
        A figure with one bar trace; its ``x`` values are the shown rows' ``diff``.
    """
    label_a = comparison.attrs.get("label_a", "A")
    label_b = comparison.attrs.get("label_b", "B")
    rows = comparison
    if hide_zero:
        rows = rows[(rows["time_a"] != 0) | (rows["time_b"] != 0)]
    if top is not None:
        keep = rows["diff"].abs().sort_values(ascending=False, kind="stable").head(int(top)).index
        rows = rows.loc[sorted(keep)]
    labels = [_group_label(r) for r in rows.itertuples(index=False)]
    fig = go.Figure(
        go.Bar(
            orientation="h",
            x=rows["diff"].tolist(),
            y=labels,
            marker_color=[FASTER_COLOR if d < 0 else SLOWER_COLOR for d in rows["diff"]],
            marker_pattern_shape=["" if s == MATCHED else INSERTED_PATTERN for s in rows["status"]],
            # A color of its own for the hatching: by default plotly.js derives it from
            # marker.color, which here is an array it cannot use ("Invalid color specifier").
            marker_pattern_fgcolor="white",
            hovertext=[_comparison_hover(r, label_a, label_b) for r in rows.itertuples(index=False)],
            hoverinfo="text",
        )
    )
    fig.update_layout(
        title=_comparison_title(comparison, label_a, label_b),
        xaxis_title=f"{_comparison_timer(comparison)} time difference {label_b} - {label_a} (ms per inference)",
        yaxis=dict(categoryorder="array", categoryarray=labels[::-1], autorange=True),
        height=max(340, 22 * len(rows) + 160),
        margin=dict(l=20, r=20, t=90, b=50),
        template="plotly_white",
    )
    return fit_labels(fig)


def _comparison_timer(comparison: pd.DataFrame) -> str:
    """What timed the two engines of a comparison (``ONNX Runtime CPU``...), with the CPU, from its attrs."""
    timer = timer_label(comparison.attrs.get("sources") or [], default="layer")
    cpus = comparison.attrs.get("measured_on") or []
    return timer + (f" ({', '.join(cpus)})" if cpus else "")


def _speed_words(ratio: float, label_a: str, label_b: str) -> str:
    """`` (B 1.52x faster than A)`` from ``ratio`` = total B / total A; empty when A took no time."""
    if math.isnan(ratio):
        return ""
    if math.isclose(ratio, 1.0, rel_tol=5e-3):
        return f" ({label_b} as fast as {label_a})"
    words = f"{1 / ratio:.2f}x faster" if ratio < 1 else f"{ratio:.2f}x slower"
    return f" ({label_b} {words} than {label_a})"


def _comparison_title(comparison: pd.DataFrame, label_a: str, label_b: str) -> str:
    """Title with the totals of a comparison."""
    totals = comparison.attrs.get("totals")
    if totals is None:
        totals = totals_of_comparison(comparison)
    return (
        f"{label_a} → {label_b}: layer time {totals['total_a']:.4f} → {totals['total_b']:.4f} ms"
        f"{_speed_words(totals['ratio'], label_a, label_b)}"
        f"<br><sup>matched groups {totals['matched_a']:.4f} → {totals['matched_b']:.4f} ms; "
        f"unmatched {totals['unmatched_a']:.4f} ms in {label_a}, {totals['unmatched_b']:.4f} ms in "
        f"{label_b}; green: {label_b} faster, hatched: unmatched"
        + ("<br>" + CPU_NOISE_NOTE if "onnxruntime" in (comparison.attrs.get("sources") or []) else "") + "</sup>"
    )
