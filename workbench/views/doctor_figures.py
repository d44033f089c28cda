"""Figures of the INT8 doctor: pure functions of its data (tables, dicts, arrays), no widgets.

Each takes what :func:`workbench.doctor.diagnose.diagnose` produced (or the JSON report of
``doctor_command``, where noted) and returns a :class:`plotly.graph_objects.Figure`:

- :func:`error_curve_figure`: per-tensor SQNR in topological order, local vs accumulated;
- :func:`histogram_figure`: one tensor's calibration histogram with each method's clipping range;
- :func:`distribution_figure`: drill-down, one tensor's FP32 vs INT8 (and local) values;
- :func:`channel_ranges_figure`: per-channel ranges of a weight or an activation;
- :func:`sensitivity_figure`: the ranking of quantized nodes, with confirmed costs;
- :func:`before_after_figure`: before/after on the workbench's tradeoff plot
  (:func:`workbench.views.tradeoff.tradeoff_figure` of :func:`~workbench.doctor.report.results_rows`);
- :func:`calibration_size_figure`, :func:`search_figure`, :func:`layer_error_figure`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.tables.results import rows_to_frame
from workbench.views.engine_figures import layer_time_spread, timer_name, timing_note
from workbench.views.figure_style import fit_labels
from workbench.views.tradeoff_figures import tradeoff_figure

CAP_DB = 120.0
COLORS = {"fp32": "#1f77b4", "int8": "#ff7f0e", "fixed": "#2ca02c", "local": "#9467bd", "accum": "#ff7f0e",
          "qdq": "#e377c2",
          "bad": "#d62728", "neutral": "#7f7f7f"}
METHOD_COLORS = {"minmax": "#d62728", "entropy": "#9467bd", "percentile": "#2ca02c", "distribution": "#8c564b"}
TEMPLATE = "plotly_white"
CLIP_DASHES = ("dash", "dot", "dashdot", "longdash", "longdashdot")


def _cap(values) -> list:
    out = []
    for v in values:
        try:
            v = float(v)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(None if math.isnan(v) else min(v, CAP_DB) if v != -math.inf else None)
    return out


def _short(text: str, width: int = 48) -> str:
    text = str(text)
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; pass LayerwiseResult.tensors / .nodes (or the report's "
                         "layerwise tables as a DataFrame).")


def error_curve_figure(tensors, *, first_jump: str | None = None, title: str | None = None) -> go.Figure:
    """Per-tensor SQNR in topological order: accumulated from the input, and local per quantized node.

    Args:
        tensors: :attr:`LayerwiseResult.tensors` (or its records from the JSON report).
        first_jump: A tensor name to mark (e.g. ``LayerwiseResult.first_jump()["tensor"]``).
        title: Figure title.

    Returns:
        Two traces (``accumulated``, ``local``); higher is better; identical tensors are drawn
        at 120 dB.
    """
    frame = pd.DataFrame(tensors)
    _require(frame, ("index", "tensor", "node", "accum_sqnr_db", "local_sqnr_db"), "error_curve_figure")
    hover = [f"{t}<br>node {n}" for t, n in zip(frame["tensor"], frame["node"])]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame["index"], y=_cap(frame["accum_sqnr_db"]), mode="lines+markers",
                             name="accumulated (variant vs FP32)", line={"color": COLORS["accum"]},
                             text=hover, hovertemplate="%{text}<br>accumulated %{y:.1f} dB<extra></extra>",
                             connectgaps=True))
    local = frame[frame["local_sqnr_db"].notna()]
    fig.add_trace(go.Scatter(x=local["index"], y=_cap(local["local_sqnr_db"]), mode="markers",
                             name="local (node fed FP32 inputs)", marker={"color": COLORS["local"], "size": 10,
                                                                          "symbol": "diamond"},
                             text=[f"{n}" for n in local["node"]],
                             hovertemplate="%{text}<br>local %{y:.1f} dB<extra></extra>"))
    if first_jump is not None and first_jump in set(frame["tensor"]):
        x = int(frame.loc[frame["tensor"] == first_jump, "index"].iloc[0])
        fig.add_vline(x=x, line={"color": COLORS["bad"], "dash": "dash"},
                      annotation_text=f"error jumps: {_short(first_jump, 32)}", annotation_position="top")
    fig.update_layout(
        title=title or "Quantization error per tensor (SQNR, higher is better)",
        xaxis={"title": "tensor (topological order)", "tickmode": "array", "tickvals": list(frame["index"]),
               "ticktext": [_short(n, 24) for n in frame["node"]], "tickangle": -45},
        yaxis={"title": "SQNR (dB)"}, template=TEMPLATE, hovermode="closest", height=500,
        legend={"orientation": "h", "y": -0.45})
    return fit_labels(fig)


def histogram_figure(stats: Mapping[str, Any], clips: Mapping[str, float], *, tensor: str = "",
                     log_y: bool = True) -> go.Figure:
    """A tensor's value histogram (calibration data) with the clipping range each method picks.

    Args:
        stats: ``{"hist", "edges"}`` (:func:`activation_statistics` for one tensor).
        clips: Method -> clipping magnitude (the range is ``[-clip, clip]``).
        tensor: Tensor name for the title.
        log_y: Logarithmic counts (tails visible).

    Returns:
        One bar trace and a dashed line per method and side.
    """
    hist = np.asarray(stats["hist"])
    edges = np.asarray(stats["edges"])
    if edges.size != hist.size + 1:
        raise ValueError(f"edges must have one more entry than hist ({hist.size} counts, {edges.size} edges).")
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Bar(x=centers, y=hist, width=np.diff(edges), name="FP32 values (calibration set)",
                           marker={"color": COLORS["fp32"]}, hovertemplate="%{x:.4g}: %{y}<extra></extra>"))
    low, high = float(edges[0]), float(edges[-1])
    span = max(high, *clips.values()) - min(low, 0.0) if clips else high - low
    for k, (method, clip, part, same) in enumerate(clip_lines(clips, tolerance=0.005 * span)):
        color = METHOD_COLORS.get(method, COLORS["neutral"])
        line = {"color": color, "dash": CLIP_DASHES[k % len(CLIP_DASHES)], "width": 2}
        fig.add_trace(go.Scatter(x=[clip, clip], y=list(part), yaxis="y2", mode="lines", name=f"{method} clip ±{clip:.4g}",
                                 line=line, hoverinfo="name", legendgroup=f"clip-{method}"))
        if same and part[1] == 1.0:  # one note per set of coincident lines, over the top segment
            fig.add_annotation(x=clip, y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                               text=" = ".join([method, *same]), font={"size": 10, "color": color})
        if -clip >= low - 1e-12 * max(1.0, abs(low)):
            fig.add_trace(go.Scatter(x=[-clip, -clip], y=list(part), yaxis="y2", mode="lines", showlegend=False,
                                     line=line, hoverinfo="skip", legendgroup=f"clip-{method}"))
    fig.update_layout(
        title=f"Histogram of {_short(tensor, 60)} with calibration clipping ranges" if tensor else
        "Histogram with calibration clipping ranges",
        xaxis={"title": "value", "range": [min(low, 0.0), max(high, *[c for c in clips.values()] or [high]) * 1.02]},
        yaxis={"title": "count", "type": "log" if log_y else "linear"},
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False},
        template=TEMPLATE, bargap=0, height=400, legend={"orientation": "h", "y": -0.2})
    return fit_labels(fig)


def clip_lines(clips: Mapping[str, float], *, tolerance: float = 0.0) -> list[tuple[str, float, tuple, list[str]]]:
    """Where each method's clip line goes, so lines at (nearly) the same value do not hide each other.

    Methods whose clips lie within ``tolerance`` of each other share the figure's height: each gets
    its own stretch of it (stacked top to bottom), and its legend entry names the others.

    Args:
        clips: Method -> clipping magnitude.
        tolerance: How close two clips are to count as one line on the figure (in the value's units).

    Returns:
        ``(method, clip, (y_from, y_to), same_as)`` per method, in ``clips``' order; ``y`` in 0..1 of the
        plot's height, ``same_as`` the other methods on the same line.
    """
    groups: list[list[str]] = []
    for method, clip in sorted(clips.items(), key=lambda kv: kv[1]):
        if groups and abs(clip - clips[groups[-1][0]]) <= tolerance:
            groups[-1].append(method)
        else:
            groups.append([method])
    placed = {}
    for group in groups:
        for j, method in enumerate(group):
            share = 1.0 / len(group)
            placed[method] = ((1 - (j + 1) * share, 1 - j * share), [m for m in group if m != method])
    return [(m, float(c), *placed[m]) for m, c in clips.items()]


def distribution_figure(values: Mapping[str, np.ndarray], *, tensor: str = "", bins: int = 80,
                        central: float = 99.0, zoom: float | None = None) -> go.Figure:
    """Drill-down: one tensor's FP32 values against the variant's (and the local/Q/DQ copies).

    Left: overlaid histograms over the central ``central`` percent of the FP32 values (where
    most values live; outliers would squash it). Right: each kept element's FP32 value against
    its other values (the same elements in every array), with the ``y = x`` line: values
    collapsing to 0 or onto a few levels show as flat steps.

    Args:
        values: ``{"fp32", "int8"?, "local"?, "qdq"?}`` arrays (:meth:`LayerwiseResult.values`).
        tensor: Tensor name for the title.
        bins: Histogram bins.
        central: Percent of FP32 values the histogram's x range covers.
        zoom: Show only ``[-zoom, zoom]`` in both panels instead (e.g. twice the median channel's
            range, to see what quantization does to the channels a dominant one starves).

    Returns:
        The two-panel figure.
    """
    from plotly.subplots import make_subplots

    if "fp32" not in values:
        raise ValueError("values needs an 'fp32' array (LayerwiseResult.values(tensor)).")
    labels = {"fp32": "FP32", "int8": "INT8 variant (accumulated)", "local": "local (FP32 inputs, own Q/DQ)",
              "qdq": "FP32 through its consumer's Q/DQ"}
    ref = np.asarray(values["fp32"], np.float64).ravel()
    tail = (100.0 - central) / 2
    low, high = (np.percentile(ref, [tail, 100.0 - tail]) if ref.size else (0.0, 1.0))
    if zoom is not None:
        low, high = max(-float(zoom), float(ref.min()) if ref.size else 0.0), float(zoom)
    if high <= low:
        high = low + 1e-6
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
                        subplot_titles=(f"histogram (central {central:g}% of FP32 values)" if zoom is None else
                                        f"histogram within ±{zoom:.3g}", "value vs FP32 value"))
    edges = np.linspace(low, high, bins + 1)
    for key in ("fp32", "int8", "local", "qdq"):
        if key not in values or values[key] is None:
            continue
        data = np.asarray(values[key], np.float64).ravel()
        counts = np.histogram(np.clip(data, low, high), bins=edges)[0]
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), name=labels[key],
                             opacity=0.5, marker={"color": COLORS[key]}, legendgroup=key), row=1, col=1)
        if key != "fp32" and data.size == ref.size:
            fig.add_trace(go.Scattergl(x=ref, y=data, mode="markers", name=labels[key], showlegend=False,
                                       marker={"color": COLORS[key], "size": 4, "opacity": 0.6}, legendgroup=key),
                          row=1, col=2)
    if ref.size:
        line = [float(ref.min()), float(ref.max())] if zoom is None else [low, high]
        fig.add_trace(go.Scatter(x=line, y=line, mode="lines", line={"color": COLORS["neutral"], "dash": "dot"},
                                 name="y = x", showlegend=False), row=1, col=2)
        if zoom is not None:
            fig.update_xaxes(range=[low, high], row=1, col=2)
            fig.update_yaxes(range=[low, high], row=1, col=2)
    fig.update_layout(barmode="overlay", title=f"Values of {_short(tensor, 60)}" if tensor else "Values",
                      template=TEMPLATE, height=400, legend={"orientation": "h", "y": -0.2}, bargap=0)
    fig.update_xaxes(title_text="value", row=1, col=1)
    fig.update_yaxes(title_text="count", type="log", row=1, col=1)
    fig.update_xaxes(title_text="FP32 value", row=1, col=2)
    fig.update_yaxes(title_text="value", row=1, col=2)
    return fit_labels(fig)


def channel_ranges_figure(channel_amax: Sequence[float], *, title: str = "", per_tensor_clip: float | None = None,
                          highlight: int | None = None, what: str = "channel") -> go.Figure:
    """Per-channel max ``|x|`` of a weight (output channels) or an activation.

    Args:
        channel_amax: One value per channel.
        title: Figure title.
        per_tensor_clip: Draw the per-tensor range (the largest channel sets it) for comparison.
        highlight: A channel to colour (e.g. the dominant one).
        what: Axis label (``"output channel"``...).

    Returns:
        One bar trace (log scale: dominance shows as a tall bar).
    """
    amax = np.asarray(channel_amax, np.float64)
    if amax.ndim != 1 or amax.size == 0:
        raise ValueError("channel_amax must be a non-empty list of per-channel values.")
    colors = [COLORS["bad"] if i == highlight else COLORS["fp32"] for i in range(amax.size)]
    fig = go.Figure(go.Bar(x=list(range(amax.size)), y=amax, marker={"color": colors},
                           hovertemplate=f"{what} %{{x}}: %{{y:.4g}}<extra></extra>", name="max |x|"))
    if per_tensor_clip is not None:
        fig.add_hline(y=per_tensor_clip, line={"color": COLORS["neutral"], "dash": "dot"},
                      annotation_text="per-tensor range")
    median = float(np.median(amax))
    fig.add_hline(y=median, line={"color": COLORS["fixed"], "dash": "dash"}, annotation_text="median channel")
    fig.update_layout(title=title or "Per-channel ranges", xaxis={"title": what}, yaxis={"title": "max |x|",
                                                                                       "type": "log"},
                      template=TEMPLATE, height=360, showlegend=False)
    return fit_labels(fig)


def sensitivity_figure(ranking: Sequence[Mapping], *, fix_exclude: Sequence[str] = ()) -> go.Figure:
    """The layerwise ranking of quantized nodes: predicted damage, with what evaluations confirmed.

    Args:
        ranking: :func:`rank_candidates` output (``node``, ``rank_db``, ``damage_db``, optional
            ``confirmed_cost_pp``), worst first; or the report's ``sensitivity.ranking``.
        fix_exclude: Nodes the fix keeps out of INT8 (coloured).

    Returns:
        A horizontal bar per node (worst on top): damage in dB below the median node.
    """
    rows = list(ranking)
    if not rows:
        raise ValueError("ranking is empty: the variant quantizes no node.")
    fixed = set(fix_exclude)
    rows = rows[::-1]  # worst on top
    text = []
    for r in rows:
        cost, unit = r.get("confirmed_cost_pp"), "pp"
        if cost is None:  # a metric that is not a percentage: its own unit
            cost, unit = r.get("confirmed_cost"), ""
        text.append(f"{cost:.1f} {unit} confirmed".replace("  ", " ")
                    if cost is not None and not _isnan(cost) else "")
    fig = go.Figure(go.Bar(
        y=[_short(r["node"], 40) for r in rows], x=[r.get("damage_db", 0.0) for r in rows], orientation="h",
        marker={"color": [COLORS["bad"] if r["node"] in fixed else COLORS["neutral"] for r in rows]},
        text=text, textposition="auto",
        customdata=[[r["node"], r.get("rank_db", r.get("local_sqnr_db"))] for r in rows],
        hovertemplate="%{customdata[0]}<br>local SQNR %{customdata[1]:.1f} dB<br>damage %{x:.1f} dB<extra></extra>"))
    fig.update_layout(title="Sensitivity ranking (layerwise pass; red: kept out of INT8 by the fix)",
                      xaxis={"title": "dB of local SQNR below the median quantized node"}, template=TEMPLATE,
                      height=max(300, 28 * len(rows) + 120), margin={"l": 280})
    return fit_labels(fig)


def _isnan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def before_after_figure(rows: Sequence[Mapping[str, Any]], *, target_top1: float | None = None,
                        target: float | None = None) -> go.Figure:
    """Before/after on the workbench's tradeoff plot: the doctor's metric against ONNX Runtime latency.

    Args:
        rows: Results rows (:func:`workbench.doctor.report.results_rows`: FP32, naive INT8 and
            the fix; other :class:`~workbench.tables.results.ResultsTable` rows may join them).
        target_top1: The accuracy the fix must reach (fraction), drawn as a dotted line (top1 rows).
        target: The metric value the fix must reach (the report's ``target_value``), for rows of
            another metric (plotted as ``metric_value``).

    Returns:
        :func:`workbench.views.tradeoff.tradeoff_figure` of the rows, colored by variant, with the
        Pareto front and an arrow from the naive variant to the fix; y is top-1 when the rows
        have it, else their metric.
    """

    frame = rows_to_frame(rows)
    y = "top1" if frame["top1"].notna().any() else "metric_value"
    fig = tradeoff_figure(frame, y=y, color="variant", symbol=None)
    points = {r["variant"]: r for r in frame.to_dict("records")}
    naive, fixed = points.get("int8 naive"), points.get("int8 fixed")
    if naive and fixed and not _isnan(naive["median_ms"]) and not _isnan(fixed["median_ms"]):
        fig.add_annotation(x=fixed["median_ms"], y=fixed[y], ax=naive["median_ms"], ay=naive[y],
                           xref="x", yref="y", axref="x", ayref="y", showarrow=True, arrowhead=3,
                           arrowcolor=COLORS["fixed"])
    line = target_top1 if y == "top1" else target
    if line is not None:
        fig.add_hline(y=float(line), line={"dash": "dot", "color": COLORS["neutral"]},
                      annotation_text="target", annotation_position="bottom left")
    what = "top-1" if y == "top1" else (frame["metric"].dropna().iloc[0] if frame["metric"].notna().any() else "metric")
    fig.update_layout(title=f"Before / after the fix: {what} vs ONNX Runtime CPU latency")
    return fit_labels(fig)


def calibration_size_figure(curve: Sequence[Mapping], *, fp32_accuracy: float | None = None, metric: str = "top1",
                            unit: str = "%", fp32_value: float | None = None) -> go.Figure:
    """The doctor's metric against calibration-set size (``[{"num_samples", "value", "top1"}]``).

    Args:
        curve: The report's ``calibration.size_curve`` (older reports: ``top1`` fractions only).
        fp32_accuracy: The FP32 top-1 fraction, drawn as a dashed line.
        metric, unit: The metric of the values.
        fp32_value: The FP32 value in the metric's unit (instead of ``fp32_accuracy``).

    Returns:
        The curve, INT8 against the number of calibration samples (log scale).
    """
    rows = list(curve)
    if not rows:
        raise ValueError("curve is empty; run diagnose(..., calib_sizes=[...]).")
    values = [r["value"] if r.get("value") is not None else 100 * r["top1"] for r in rows]
    fig = go.Figure(go.Scatter(x=[r["num_samples"] for r in rows], y=values,
                               mode="lines+markers", name="INT8", line={"color": COLORS["int8"]}))
    fp32 = fp32_value if fp32_value is not None else (None if fp32_accuracy is None else 100 * fp32_accuracy)
    if fp32 is not None and math.isfinite(fp32):
        fig.add_hline(y=fp32, line={"dash": "dash", "color": COLORS["fp32"]}, annotation_text="FP32")
    label = "top-1" if metric == "top1" else metric
    fig.update_layout(title=f"{label[0].upper() + label[1:]} against calibration-set size",
                      xaxis={"title": "calibration samples", "type": "log"},
                      yaxis={"title": f"{label} ({unit})" if unit else label}, template=TEMPLATE, height=360)
    return fit_labels(fig)


def search_figure(steps: Sequence[Mapping], *, naive_accuracy: float | None = None,
                  target_accuracy: float | None = None, metric: str = "top1", unit: str = "%",
                  naive_value: float | None = None, target_value: float | None = None) -> go.Figure:
    """Every configuration the fix search evaluated, in order (``sensitivity.steps`` of the report).

    Args:
        steps: The search steps (``exclude``, ``value`` in the metric's unit (older reports:
            ``top1`` fractions), ``passed``, ``phase``).
        naive_accuracy, target_accuracy: Top-1 fractions of the naive variant and the target.
        metric, unit: The metric the values are in.
        naive_value, target_value: The naive variant's value and the target, in the metric's unit
            (instead of the top-1 fractions).

    Returns:
        One marker per evaluation (green: within target), with the naive value and the target.
    """
    rows = list(steps)
    values = [r["value"] if r.get("value") is not None else 100 * r["top1"] for r in rows]
    naive = naive_value if naive_value is not None else (None if naive_accuracy is None else 100 * naive_accuracy)
    target = target_value if target_value is not None else (
        None if target_accuracy is None else 100 * target_accuracy)
    label = "top-1" if metric == "top1" else metric
    fig = go.Figure()
    if rows:
        fig.add_trace(go.Scatter(
            x=list(range(1, len(rows) + 1)), y=values, mode="lines+markers",
            marker={"size": 11, "color": [COLORS["fixed"] if r["passed"] else COLORS["bad"] for r in rows]},
            text=[f"{r['phase']}: exclude {len(r['exclude'])}<br>" + "<br>".join(r["exclude"][:6]) for r in rows],
            hovertemplate=f"%{{text}}<br>{label} %{{y:.2f}} {unit}<extra></extra>", name="search"))
    if naive is not None and math.isfinite(naive):
        fig.add_hline(y=naive, line={"dash": "dot", "color": COLORS["int8"]}, annotation_text="naive")
    if target is not None and math.isfinite(target):
        fig.add_hline(y=target, line={"dash": "dash", "color": COLORS["neutral"]}, annotation_text="target")
    fig.update_layout(title="Fix search: each full evaluation (green: within target)",
                      xaxis={"title": "evaluation", "dtick": 1},
                      yaxis={"title": f"{label} ({unit})" if unit else label}, template=TEMPLATE, height=360)
    return fit_labels(fig)


def layer_error_figure(joined: pd.DataFrame, *, sqnr_column: str = "local_sqnr_db") -> go.Figure:
    """Engine layers: time against the worst quantization error of the nodes each runs.

    Args:
        joined: :func:`workbench.doctor.engine_join.join_layer_errors` output (needs
            ``time_ms``: a profiled table).
        sqnr_column: The error column on the y axis.

    Returns:
        One marker per layer running a quantized node; bottom right is slow and inaccurate.
    """
    _require(joined, ("name", "time_ms", sqnr_column, "worst_node"), "layer_error_figure")
    rows = joined[joined["worst_node"].notna() & joined["time_ms"].notna()]
    if rows.empty:
        raise ValueError("no profiled layer runs a node with an error; profile the engine and give node errors "
                         "keyed by the ONNX node names its layers list.")
    fig = go.Figure(go.Scatter(
        x=rows["time_ms"], y=_cap(rows[sqnr_column]), mode="markers", error_x=layer_time_spread(rows),
        marker={"size": 10, "color": _cap(rows[sqnr_column]), "colorscale": "RdYlGn", "showscale": True,
                "colorbar": {"title": "dB"}},
        text=[f"{_short(n, 60)}<br>worst node {w}" for n, w in zip(rows["name"], rows["worst_node"])],
        hovertemplate="%{text}<br>%{x:.4f} ms<br>%{y:.1f} dB<extra></extra>"))
    note = timing_note(joined)
    fig.update_layout(title="Engine layers: time vs quantization error of the nodes they run"
                      + (f"<br><sup>{note}</sup>" if note else ""),
                      xaxis={"title": f"{timer_name(joined)} layer time (ms)"}, yaxis={"title": "worst local SQNR (dB)"},
                      template=TEMPLATE, height=420)
    return fit_labels(fig)
