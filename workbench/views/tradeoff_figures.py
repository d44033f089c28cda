"""The accuracy-vs-latency figure with its Pareto front: a pure function of the results table (no widgets)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from workbench.tables.machine import MACHINE_COLUMN, machines_in
from workbench.tables.results import front_within_noise, pareto_front, wilson_interval
from workbench.views.engine_figures import (
    OTHER_PRECISION_COLORS,
    PRECISION_COLORS,
    UNKNOWN,
    spread_bars,
    timer_label,
)
from workbench.views.figure_style import fit_labels
from workbench.workspace import write_atomic

VARIANTS = "variants"  # ``meta`` of the marker traces

PARETO = "pareto"  # ``meta`` of the Pareto front traces (one per model)

PARETO_NOISE = "pareto-noise"  # ``meta`` of the front points the evaluation set cannot tell apart

SELECTED = "selected"  # ``meta`` of the highlight trace

SYMBOL_LEGEND = "symbol-legend"  # ``meta`` of the legend-only traces that explain symbols

SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "star", "hexagon", "pentagon")

ALL = "(all)"

AXIS_TITLES = {
    "median_ms": "median latency (ms)",
    "mean_ms": "mean latency (ms)",
    "p10_ms": "p10 latency (ms)",
    "p90_ms": "p90 latency (ms)",
    "p99_ms": "p99 latency (ms)",
    "throughput": "throughput (samples/s)",
    "top1": "top-1 accuracy",
    "top5": "top-5 accuracy",
    "top1_agreement": "top-1 agreement with the reference",
    "min_cosine": "min cosine similarity to the reference",
    "min_sqnr_db": "min SQNR (dB)",
    "metric_value": "metric",
    "size_bytes": "model size (bytes)",
}

FRACTION_COLUMNS = {"top1", "top5", "top1_agreement"}

LOWER_IS_BETTER = {"median_ms", "mean_ms", "p10_ms", "p90_ms", "p99_ms", "size_bytes"}

# Columns whose values hold only on the machine that measured them: never mixed silently
MACHINE_BOUND = {"median_ms", "mean_ms", "p10_ms", "p90_ms", "p99_ms", "throughput"}

EMPTY_HINT = ("No results with both values yet: evaluate and benchmark a variant, then "
              "ResultsTable().add(make_row(...)).")

PARETO_COLOR = "#555555"

# one per model, dark and apart from the precision colors of the markers (no blue, green, orange, red)
FRONT_PALETTE = ("#4b3f8f", "#8c510a", "#01665e", "#762a83", "#333333", "#b35806")

FRONT_DASHES = ("dash", "dot", "dashdot", "longdash")

HIGHLIGHT_COLOR = "#000000"

def _check_frame(frame: pd.DataFrame, columns: Sequence[str | None]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a results DataFrame (ResultsTable().frame()), got {type(frame).__name__}")
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        raise ValueError(f"the results have no column(s) {missing}; columns: {list(frame.columns)}")

def plotted_rows(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The rows that have finite numbers for both ``x`` and ``y``."""
    xs = pd.to_numeric(frame[x], errors="coerce")
    ys = pd.to_numeric(frame[y], errors="coerce")
    finite = xs.map(_finite) & ys.map(_finite)
    return frame[finite.astype(bool)]

def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)

def _text(value: Any, default: str = UNKNOWN) -> str:
    """A category value as text: missing values become ``default``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return str(value)

def _number(value: Any, column: str) -> str:
    if not _finite(value):
        return "∞" if isinstance(value, float) and math.isinf(value) and value > 0 else "–"
    if column in FRACTION_COLUMNS:
        return f"{value:.2%}"
    if column.endswith("_ms"):
        return f"{value:.4g} ms"
    if column == "min_sqnr_db":
        return f"{value:.1f} dB"
    return f"{value:.4g}"

def hover_text(row: Mapping[str, Any], x: str, y: str) -> str:
    """The hover text of one variant: names, recipe, calibration and the plotted values."""
    calibration = _text(row.get("calibration"), "")
    method = _text(row.get("calibration_method"), "")
    if calibration or method:
        calibration = f"{Path(calibration).name if calibration else '–'}" + (f" ({method})" if method else "")
    lines = [
        f"<b>{html.escape(_text(row.get('variant'), 'variant'))}</b> "
        f"({html.escape(_text(row.get('model'), ''))})",
        f"{html.escape(_text(row.get('precision')))} on {html.escape(_text(row.get('backend')))}",
        f"recipe: {html.escape(_text(row.get('recipe_label'), '') or '–')}",
        f"calibration: {html.escape(calibration or '–')}",
        f"{_row_title(row, x)}: {_number(row.get(x), x)}{_row_unit(row, x)}",
        f"{_row_title(row, y)}: {_number(row.get(y), y)}{_row_unit(row, y)}",
    ]
    resolution = interval_text(row, y)
    if resolution:
        lines.append(resolution)
    for column in ("top5", "min_sqnr_db", "p99_ms"):
        if column not in (x, y) and _finite(row.get(column)):
            lines.append(f"{AXIS_TITLES.get(column, column)}: {_number(row.get(column), column)}")
    if _text(row.get(MACHINE_COLUMN), ""):
        lines.append(f"measured on: {html.escape(_text(row.get(MACHINE_COLUMN)))}")
    lines.append(f"id: {html.escape(_text(row.get('id'), ''))}")
    return "<br>".join(lines)


def interval_text(row: Mapping[str, Any], column: str) -> str:
    """``95 % interval 98.01–99.83 % (n = 360)`` for a fraction column of a row with a sample count, else ""."""
    if column not in FRACTION_COLUMNS or not _finite(row.get(column)) or not _finite(row.get("samples")):
        return ""
    low, high = wilson_interval(row[column], row["samples"])
    return f"95 % interval {low[0]:.2%}–{high[0]:.2%} (n = {int(row['samples'])})"


def one_machine(rows: pd.DataFrame, x: str, y: str, machine: str | None = "auto",
                selected: str | None = None) -> tuple[pd.DataFrame, str | None, int]:
    """The rows of one machine when a latency axis would otherwise mix machines.

    Args:
        rows: Plotted rows.
        x, y: The axes; only latency/throughput axes (:data:`MACHINE_BOUND`) are per machine.
        machine: ``"auto"``: the selected row's machine, else the one with most rows; a machine
            label (the ``machine`` column): that one; None: no filter (mixing on purpose).
        selected: The selected row's id.

    Returns:
        ``(rows, machine shown or None, rows left out)``.
    """
    if machine is None or MACHINE_COLUMN not in rows.columns or not ({x, y} & MACHINE_BOUND):
        return rows, None, 0
    labels = machines_in(rows[MACHINE_COLUMN])
    if machine == "auto":
        if len(labels) < 2:
            return rows, None, 0
        picked = rows[rows["id"].map(_text) == selected][MACHINE_COLUMN] if selected is not None else []
        machine = next((m for m in picked if m in labels), labels[0])
    kept = rows[rows[MACHINE_COLUMN] == machine]
    return kept, machine, len(rows) - len(kept)
def _row_title(row: Mapping[str, Any], column: str) -> str:
    """A column's name in a row's hover text: the metric's own name for ``metric_value``."""
    if column == "metric_value":
        return _text(row.get("metric"), "metric")
    return AXIS_TITLES.get(column, column)


def _row_unit(row: Mapping[str, Any], column: str) -> str:
    unit = _text(row.get("metric_unit"), "") if column == "metric_value" else ""
    return f" {unit}" if unit and _finite(row.get(column)) else ""


def metric_axis_title(rows: pd.DataFrame) -> str:
    """The title of a ``metric_value`` axis: the rows' one metric and its unit.

    Raises:
        ValueError: The rows carry values of different metrics (they cannot share an axis).
    """
    names = sorted({_text(v, "") for v in rows.get("metric", pd.Series(dtype=object))} - {""})
    if len(names) > 1:
        raise ValueError(f"the rows carry values of several metrics {names}; plot one at a time, e.g. "
                         f"frame[frame['metric'] == {names[0]!r}]")
    if not names:
        return "metric"
    units = sorted({_text(v, "") for v in rows.get("metric_unit", pd.Series(dtype=object))} - {""})
    return f"{names[0]} ({units[0]})" if units else names[0]


def group_colors(values: Sequence[str], column: str | None) -> dict[str, str]:
    """A color per group: the engine figures' precision colors for ``precision``, else a palette."""
    palette = plotly.colors.qualitative.Plotly
    colors, spare = {}, iter(OTHER_PRECISION_COLORS * 4)
    for k, value in enumerate(sorted(set(values))):
        if column == "precision":
            colors[value] = PRECISION_COLORS.get(value.upper(), None) or next(spare)
        else:
            colors[value] = palette[k % len(palette)]
    return colors

def group_symbols(values: Sequence[str]) -> dict[str, str]:
    """A marker symbol per value, in sorted order."""
    return {v: SYMBOLS[k % len(SYMBOLS)] for k, v in enumerate(sorted(set(values)))}

def tradeoff_figure(
    frame: pd.DataFrame,
    x: str = "median_ms",
    y: str = "top1",
    color: str | None = "precision",
    symbol: str | None = "backend",
    selected: str | None = None,
    machine: str | None = "auto",
) -> go.Figure:
    """Accuracy vs latency: one marker per variant, each model's Pareto front as a step line.

    Args:
        frame: Results (:meth:`workbench.tables.results.ResultsTable.frame`); rows missing
            ``x`` or ``y`` are left out (the title says how many).
        x: Cost column: lower is better (latencies, size, and any column not listed in
            :data:`AXIS_TITLES`), higher for ``throughput``, accuracy and agreement columns.
        y: Benefit column: higher is better (lower for latencies and size). ``metric_value``
            plots each row's chosen metric, titled with its name and unit (rows of one metric).
        color: Column that colors markers (one legend entry per value); None for one color.
        symbol: Column that picks the marker symbol; None for circles.
        selected: Row id to highlight with a ring.
        machine: Latencies from different machines are never mixed on one axis: with rows from
            several machines (the ``machine`` column) only one machine's are plotted (the title
            says which, and how many rows are left out). ``"auto"``: the selected row's machine,
            else the one with most rows; a machine label; None to plot every machine anyway.

    Returns:
        A figure whose traces carry ``meta``: ``"pareto"`` (one front per model, in the model's
        color, drawn first: variants of different models never share a front),
        ``"pareto-noise"`` (front points whose accuracy gain over the next faster front point is
        inside the evaluation set's 95 % interval), ``"variants"`` (one trace per color group,
        ``customdata`` = row ids, ``hovertext`` = recipe/calibration/method; ``error_y`` = the
        Wilson interval of a fraction axis from the row's ``samples``, ``error_x`` = the
        p10-p90 spread of a median latency), ``"symbol-legend"`` (legend entries for symbols,
        no points) and ``"selected"`` (the highlight ring, empty when nothing is selected).
        A latency axis is titled with the backend that measured it (ONNX Runtime CPU,
        TensorRT GPU...) and the machine.

    Raises:
        TypeError, ValueError: Not a DataFrame, or a named column is missing.
    """
    _check_frame(frame, ["id", x, y, color, symbol])
    rows, shown_machine, other_machines = one_machine(plotted_rows(frame, x, y), x, y, machine, selected)
    fig = go.Figure()
    noisy = _add_fronts(fig, rows, x, y)
    _add_variants(fig, rows, x, y, color, symbol)
    fig.add_trace(go.Scatter(**_highlight(rows, x, y, selected)))
    titles = {axis: metric_axis_title(rows) for axis in (x, y) if axis == "metric_value"}
    titles.update({axis: latency_axis_title(rows, axis) for axis in (x, y) if axis in MACHINE_BOUND})
    if y in FRACTION_COLUMNS:
        titles[y] = accuracy_axis_title(rows, y)
    models = sorted({_text(m) for m in rows["model"]}) if "model" in rows.columns else []
    _layout(fig, x, y, shown=len(rows), total=len(frame) - other_machines, color=color, titles=titles, models=models)
    notes = ""  # kept apart in layout.meta too, for pages that retitle the figure (the run report)
    if shown_machine is not None:
        notes += f" on {shown_machine}" + (
            f" ({other_machines} from other machines not shown: pick one with machine=)" if other_machines else "")
    if noisy:
        notes += (f"<br><sup>{noisy} front step{'s' if noisy != 1 else ''} within the evaluation "
                  "set's noise (95 % interval): the faster variant is as accurate as far as "
                  "this data can tell</sup>")
    fig.layout.title.text += notes
    fig.layout.meta = {"title_notes": notes}
    if y in FRACTION_COLUMNS and len(rows):  # an accuracy axis never leaves 0-100 %
        low, high = _fraction_extent(rows, y)
        pad = max(0.1 * (high - low), 0.005)
        fig.update_yaxes(range=[max(0.0, low - pad), min(1.0, high + pad)])
    return fit_labels(fig)


def accuracy_axis_title(rows: pd.DataFrame, y: str) -> str:
    """A fraction axis's title, saying its bars are the 95 % interval from the number of samples."""
    counts = sorted({int(n) for n in rows.get("samples", pd.Series(dtype=float)) if _finite(n) and n > 0})
    if not counts:
        return AXIS_TITLES.get(y, y)
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"{AXIS_TITLES.get(y, y)}<br><sup>bars: 95 % interval from n = {n} samples</sup>"


def _fraction_extent(rows: pd.DataFrame, y: str) -> tuple[float, float]:
    """The lowest and highest value a fraction axis must show: the points and their intervals."""
    values = rows[y].to_numpy(dtype=float)
    low, high = accuracy_bounds(rows, y)
    return (float(np.concatenate([values, low[np.isfinite(low)]]).min()),
            float(np.concatenate([values, high[np.isfinite(high)]]).max()))


def accuracy_bounds(rows: pd.DataFrame, y: str) -> tuple[np.ndarray, np.ndarray]:
    """The 95 % Wilson interval of each row's fraction ``y`` from its ``samples`` (NaN where unknown)."""
    samples = rows["samples"] if "samples" in rows.columns else pd.Series(np.nan, index=rows.index)
    return wilson_interval(rows[y].to_numpy(dtype=float), samples.to_numpy())


def _error_y(part: pd.DataFrame, y: str) -> dict | None:
    """Error bars of a fraction: the Wilson interval from the number of evaluated samples."""
    if y not in FRACTION_COLUMNS:
        return None
    low, high = accuracy_bounds(part, y)
    values = part[y].to_numpy(dtype=float)
    return dict(type="data", symmetric=False, array=_or_none(high - values), arrayminus=_or_none(values - low),
                thickness=1, width=3, visible=True)


def _error_x(part: pd.DataFrame, x: str) -> dict | None:
    """Error bars of a median latency: p10 to p90 of the timed runs (p90 alone where p10 was not recorded)."""
    if x != "median_ms" or "p90_ms" not in part.columns:
        return None
    p10 = part["p10_ms"] if "p10_ms" in part.columns else np.full(len(part), np.nan)
    return spread_bars(part[x], p10, part["p90_ms"], width=3, visible=True)


def _or_none(values: np.ndarray) -> list:
    """Plain floats, None where missing (plotly draws no bar there)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def _add_fronts(fig: go.Figure, rows: pd.DataFrame, x: str, y: str) -> int:
    """One Pareto front per model, in the model's color; returns how many front steps are within noise."""
    models = rows["model"].map(_text) if "model" in rows.columns else pd.Series("", index=rows.index)
    names = sorted(set(models))
    colors = front_colors(names)
    noisy = 0
    for k, model in enumerate(names):
        front = pareto_front(rows[models == model], x, y,
                             minimize_x=x in LOWER_IS_BETTER or x not in AXIS_TITLES,
                             maximize_y=y not in LOWER_IS_BETTER)
        label = "Pareto front" if len(names) == 1 else f"Pareto front ({model})"
        # Along the front (best x first) each step buys y with x: the best y reachable for a given
        # x stays flat until the next front point, hence "hv".
        fig.add_trace(go.Scatter(
            x=front[x].tolist(), y=front[y].tolist(), mode="lines", line_shape="hv", name=label,
            line=dict(color=colors[model], dash=FRONT_DASHES[k % len(FRONT_DASHES)], width=1.5),
            legendgroup=f"front-{model}", hoverinfo="skip", meta=PARETO, customdata=front["id"].map(_text).tolist(),
        ))
        if y not in FRACTION_COLUMNS:
            continue
        within = front[front_within_noise(front, y).to_numpy()]
        noisy += len(within)
        if len(within):
            fig.add_trace(go.Scatter(
                x=within[x].tolist(), y=within[y].tolist(), mode="markers",
                name=f"within noise of a faster variant{'' if len(names) == 1 else f' ({model})'}",
                legendgroup=f"front-{model}", meta=PARETO_NOISE, customdata=within["id"].map(_text).tolist(),
                marker=dict(symbol="diamond-open", size=18, color=colors[model], line=dict(width=1.5)),
                hovertext=[f"{_text(r.get('variant'), 'variant')}: {_number(r.get(y), y)} is inside the 95 % "
                           f"interval of the faster front point ({int(r['samples'])} samples)"
                           for r in within.to_dict("records")],
                hovertemplate="%{hovertext}<extra></extra>",
            ))
    return noisy


def front_colors(models: Sequence[str]) -> dict[str, str]:
    """A color per model for its Pareto front: a palette apart from the precision colors of the markers."""
    if len(models) == 1:
        return {models[0]: PARETO_COLOR}
    return {m: FRONT_PALETTE[k % len(FRONT_PALETTE)] for k, m in enumerate(sorted(models))}


def _add_variants(fig: go.Figure, rows: pd.DataFrame, x: str, y: str, color: str | None,
                  symbol: str | None) -> None:
    """The variants' markers (one trace per color group, with error bars) and the symbol legend."""
    groups = rows[color].map(_text) if color else pd.Series("variants", index=rows.index)
    symbols_of = rows[symbol].map(_text) if symbol else pd.Series("", index=rows.index)
    symbol_map = group_symbols(symbols_of.tolist())
    colors = group_colors(groups.tolist(), color)
    for value in sorted(set(groups)):
        part = rows[groups == value]
        fig.add_trace(go.Scatter(
            x=part[x].tolist(), y=part[y].tolist(), mode="markers", name=value,
            legendgroup=f"color-{value}", meta=VARIANTS,
            customdata=part["id"].map(_text).tolist(),
            hovertext=[hover_text(r, x, y) for r in part.to_dict("records")],
            hovertemplate="%{hovertext}<extra></extra>",
            error_x=_error_x(part, x), error_y=_error_y(part, y),
            marker=dict(color=colors[value], size=11, line=dict(color="white", width=1),
                        symbol=[symbol_map[s] for s in symbols_of[groups == value]]),
        ))
    if symbol and len(symbol_map) > 1:
        for value, mark in symbol_map.items():
            fig.add_trace(go.Scatter(
                x=[None], y=[None], mode="markers", name=f"{symbol}: {value}", meta=SYMBOL_LEGEND,
                marker=dict(color="#888888", symbol=mark, size=10), hoverinfo="skip",
            ))


def latency_axis_title(rows: pd.DataFrame, column: str) -> str:
    """A latency axis's title: what measured it (ONNX Runtime CPU, TensorRT GPU...), on which machine.

    A CPU's latency is not a GPU's: the axis says which backend timed the points, the machine
    (the rows' ``machine`` column, with the CPU model where rows recorded their ``hardware``) and,
    for a median, that the bars span p10 to p90 of the timed runs.
    """
    backends = sorted({_text(b, "") for b in rows.get("backend", pd.Series(dtype=object))} - {""},
                      key=lambda b: (b != "tensorrt", b))  # TensorRT leads where it ran
    what = timer_label(backends)
    title = f"{what} {AXIS_TITLES.get(column, column)}"
    if column in LOWER_IS_BETTER:
        title += " — lower is better"
    where = _machines_text(rows)
    extra = [where] if where else []
    if column == "median_ms" and "p90_ms" in rows.columns:
        extra.append("bars: p10–p90 of the timed runs")
    return title + (f"<br><sup>{'; '.join(extra)}</sup>" if extra else "")


def _machines_text(rows: pd.DataFrame) -> str:
    """``on box-3 (Intel Xeon ...)``, the machine(s) the rows were timed on ("" when not recorded)."""
    machines = machines_in(rows[MACHINE_COLUMN]) if MACHINE_COLUMN in rows.columns else []
    cpus = sorted({h.get("cpu") for h in rows.get("hardware", pd.Series(dtype=object))
                   if isinstance(h, Mapping) and h.get("cpu")})
    if not machines and not cpus:
        return "machine not recorded"
    text = "on " + (", ".join(machines) or "this machine")
    return text + (f" ({', '.join(cpus)})" if cpus else "")


def _highlight(rows: pd.DataFrame, x: str, y: str, selected: str | None) -> dict:
    """The highlight trace's properties: a ring around the selected row, if it is plotted."""
    hit = rows[rows["id"].map(_text) == selected] if selected is not None else rows.iloc[:0]
    return dict(
        x=hit[x].tolist(), y=hit[y].tolist(), mode="markers", name="selected", meta=SELECTED,
        showlegend=False, hoverinfo="skip", customdata=hit["id"].map(_text).tolist(),
        marker=dict(symbol="circle-open", size=22, color=HIGHLIGHT_COLOR, line=dict(width=2.5)),
    )

def _layout(fig: go.Figure, x: str, y: str, *, shown: int, total: int, color: str | None,
            titles: Mapping[str, str] | None = None, models: Sequence[str] = ()) -> None:
    titles = dict(titles or {})
    title = f"Accuracy vs latency: {shown} variant{'s' if shown != 1 else ''}"
    if models:  # the title names the model(s) the points belong to
        title = f"{', '.join(models)} — accuracy vs latency: {shown} variant{'s' if shown != 1 else ''}"
    if shown < total:
        title += f" ({total - shown} without {x} or {y} not shown)"
    fig.update_layout(
        title=title,
        xaxis_title=titles.get(x) or AXIS_TITLES.get(x, x) + (" — lower is better" if x in LOWER_IS_BETTER else ""),
        yaxis_title=titles.get(y, AXIS_TITLES.get(y, y)),
        yaxis_tickformat=".2%" if y in FRACTION_COLUMNS else None,
        legend_title_text=color or "",
        template="plotly_white",
        height=460,
        margin=dict(l=70, r=20, t=70, b=60),
        clickmode="event",
        hovermode="closest",
    )
    if shown == 0:
        fig.add_annotation(text=EMPTY_HINT, showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)

def write_html(fig: go.Figure, path) -> Path:
    """Save a figure as a standalone HTML page that works offline (plotly.js inline), atomically.

    Args:
        fig: The figure.
        path: Destination ``.html`` file.

    Returns:
        The path written.
    """
    return write_atomic(Path(path).expanduser(),
                        fig.to_html(include_plotlyjs=True, full_html=True))
