"""Accuracy vs latency: every variant tried, the Pareto front, and an explorer to pick one.

:func:`tradeoff_figure` is a pure function of a results frame
(:mod:`workbench.analysis.results`); :class:`TradeoffExplorer` is a thin ipywidgets controller
over it: click a point (or call :meth:`TradeoffExplorer.select`) to select that variant and see
its recipe, filter by model, backend and precision.

Clicking needs plotly's ``FigureWidget``, which in plotly 6+ needs the ``anywidget`` package.
Without it the explorer shows the static figure and selection works through its variant
dropdown and :meth:`TradeoffExplorer.select`.
"""

from __future__ import annotations

import html
import importlib.util
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import ipywidgets as widgets
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from workbench.analysis.results import ResultsTable, filter_frame, pareto_front
from workbench.views.engine_figures import OTHER_PRECISION_COLORS, PRECISION_COLORS, UNKNOWN
from workbench.views.output import show_in
from workbench.workspace import write_atomic

VARIANTS = "variants"  # ``meta`` of the marker traces
PARETO = "pareto"  # ``meta`` of the Pareto front trace
SELECTED = "selected"  # ``meta`` of the highlight trace
SYMBOL_LEGEND = "symbol-legend"  # ``meta`` of the legend-only traces that explain symbols
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "star", "hexagon", "pentagon")
ALL = "(all)"
AXIS_TITLES = {
    "median_ms": "median latency (ms)",
    "mean_ms": "mean latency (ms)",
    "p90_ms": "p90 latency (ms)",
    "p99_ms": "p99 latency (ms)",
    "throughput": "throughput (samples/s)",
    "top1": "top-1 accuracy",
    "top5": "top-5 accuracy",
    "top1_agreement": "top-1 agreement with the reference",
    "min_cosine": "min cosine similarity to the reference",
    "min_sqnr_db": "min SQNR (dB)",
    "size_bytes": "model size (bytes)",
}
FRACTION_COLUMNS = {"top1", "top5", "top1_agreement"}
LOWER_IS_BETTER = {"median_ms", "mean_ms", "p90_ms", "p99_ms", "size_bytes"}
EMPTY_HINT = ("No results with both values yet: evaluate and benchmark a variant, then "
              "ResultsTable().add(make_row(...)).")
PARETO_COLOR = "#555555"
HIGHLIGHT_COLOR = "#000000"


# --------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------


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
        f"{AXIS_TITLES.get(x, x)}: {_number(row.get(x), x)}",
        f"{AXIS_TITLES.get(y, y)}: {_number(row.get(y), y)}",
    ]
    for column in ("top5", "min_sqnr_db", "p99_ms"):
        if column not in (x, y) and _finite(row.get(column)):
            lines.append(f"{AXIS_TITLES.get(column, column)}: {_number(row.get(column), column)}")
    lines.append(f"id: {html.escape(_text(row.get('id'), ''))}")
    return "<br>".join(lines)


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
) -> go.Figure:
    """Accuracy vs latency: one marker per variant, the Pareto front as a step line.

    Args:
        frame: Results (:meth:`workbench.analysis.results.ResultsTable.frame`); rows missing
            ``x`` or ``y`` are left out (the title says how many).
        x: Cost column: lower is better (latencies, size, and any column not listed in
            :data:`AXIS_TITLES`), higher for ``throughput``, accuracy and agreement columns.
        y: Benefit column: higher is better (lower for latencies and size).
        color: Column that colors markers (one legend entry per value); None for one color.
        symbol: Column that picks the marker symbol; None for circles.
        selected: Row id to highlight with a ring.

    Returns:
        A figure whose traces carry ``meta``: ``"pareto"`` (the front, drawn first),
        ``"variants"`` (one trace per color group, ``customdata`` = row ids, ``hovertext`` =
        recipe/calibration/method), ``"symbol-legend"`` (legend entries for symbols, no points)
        and ``"selected"`` (the highlight ring, empty when nothing is selected or visible).

    Raises:
        TypeError, ValueError: Not a DataFrame, or a named column is missing.
    """
    _check_frame(frame, ["id", x, y, color, symbol])
    rows = plotted_rows(frame, x, y)
    fig = go.Figure()
    front = pareto_front(rows, x, y, minimize_x=x in LOWER_IS_BETTER or x not in AXIS_TITLES,
                         maximize_y=y not in LOWER_IS_BETTER)
    # Along the front (best x first) each step buys y with x: the best y reachable for a given
    # x stays flat until the next front point, hence "hv".
    fig.add_trace(go.Scatter(
        x=front[x].tolist(), y=front[y].tolist(), mode="lines", line_shape="hv",
        line=dict(color=PARETO_COLOR, dash="dash", width=1.5), name="Pareto front",
        hoverinfo="skip", meta=PARETO,
    ))
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
            marker=dict(color=colors[value], size=11, line=dict(color="white", width=1),
                        symbol=[symbol_map[s] for s in symbols_of[groups == value]]),
        ))
    if symbol and len(symbol_map) > 1:
        for value, mark in symbol_map.items():
            fig.add_trace(go.Scatter(
                x=[None], y=[None], mode="markers", name=f"{symbol}: {value}", meta=SYMBOL_LEGEND,
                marker=dict(color="#888888", symbol=mark, size=10), hoverinfo="skip",
            ))
    fig.add_trace(go.Scatter(**_highlight(rows, x, y, selected)))
    _layout(fig, x, y, shown=len(rows), total=len(frame), color=color)
    return fig


def _highlight(rows: pd.DataFrame, x: str, y: str, selected: str | None) -> dict:
    """The highlight trace's properties: a ring around the selected row, if it is plotted."""
    hit = rows[rows["id"].map(_text) == selected] if selected is not None else rows.iloc[:0]
    return dict(
        x=hit[x].tolist(), y=hit[y].tolist(), mode="markers", name="selected", meta=SELECTED,
        showlegend=False, hoverinfo="skip", customdata=hit["id"].map(_text).tolist(),
        marker=dict(symbol="circle-open", size=22, color=HIGHLIGHT_COLOR, line=dict(width=2.5)),
    )


def _layout(fig: go.Figure, x: str, y: str, *, shown: int, total: int, color: str | None) -> None:
    title = f"Accuracy vs latency: {shown} variant{'s' if shown != 1 else ''}"
    if shown < total:
        title += f" ({total - shown} without {x} or {y} not shown)"
    fig.update_layout(
        title=title,
        xaxis_title=AXIS_TITLES.get(x, x) + (" — lower is better" if x in LOWER_IS_BETTER else ""),
        yaxis_title=AXIS_TITLES.get(y, y),
        yaxis_tickformat=".2%" if y in FRACTION_COLUMNS else None,
        legend_title_text=color or "",
        template="plotly_white",
        height=460,
        margin=dict(l=70, r=20, t=60, b=60),
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


def figure_widget_available() -> bool:
    """Whether plotly's clickable ``FigureWidget`` can be made here (it needs ``anywidget``)."""
    return importlib.util.find_spec("anywidget") is not None


# --------------------------------------------------------------------------------------------
# The explorer
# --------------------------------------------------------------------------------------------


class TradeoffExplorer(widgets.VBox):
    """Accuracy vs latency of every variant tried; click one to see how it was made.

    Args:
        results: A :class:`ResultsTable` (re-read by :meth:`refresh`), a results DataFrame,
            or None for the workspace's table.
        x, y, color, symbol: As :func:`tradeoff_figure`.
        figure_width: Width of the clickable figure in pixels (a FigureWidget keeps a fixed size).

    Attributes:
        frame: All results (unfiltered).
        selected: The selected row as a dict, or None.
        figure: The ``go.FigureWidget`` (or, without anywidget, the static ``go.Figure``).
        interactive: Whether points can be clicked (anywidget present).
    """

    def __init__(self, results: ResultsTable | pd.DataFrame | None = None, *, x: str = "median_ms",
                 y: str = "top1", color: str | None = "precision", symbol: str | None = "backend",
                 figure_width: int = 960):
        if results is None:
            results = ResultsTable()
        if not isinstance(results, (ResultsTable, pd.DataFrame)):
            raise TypeError(f"expected a ResultsTable or a results DataFrame, got {type(results).__name__}")
        self.table = results if isinstance(results, ResultsTable) else None
        self.x, self.y, self.color, self.symbol = x, y, color, symbol
        self.figure_width = int(figure_width)
        self.frame = results.frame() if self.table is not None else results.copy()
        _check_frame(self.frame, ["id", x, y, color, symbol])
        self.selected: dict | None = None
        self._callbacks: list[Callable[[dict | None], None]] = []
        self._updating = False
        self.interactive = figure_widget_available()

        self.model_dropdown = widgets.Dropdown(description="Model")
        self.backend_dropdown = widgets.Dropdown(description="Backend")
        self.precision_dropdown = widgets.Dropdown(description="Precision")
        self.variant_dropdown = widgets.Dropdown(description="Variant", layout={"width": "auto", "min_width": "520px"})
        self.refresh_button = widgets.Button(description="Reload", icon="refresh",
                                             tooltip="re-read the results file")
        self.status = widgets.HTML()
        self.details = widgets.HTML()
        if self.interactive:
            self.figure = go.FigureWidget()
            plot = self.figure
        else:
            self.figure = go.Figure()
            self._plot_out = widgets.Output()
            plot = self._plot_out
            self.status.value = ("<em>Install anywidget to select variants by clicking; meanwhile "
                                 "use the Variant menu.</em>")
        self._fill_filters()
        self.model_dropdown.observe(lambda _c: self.redraw(), names="value")
        self.backend_dropdown.observe(lambda _c: self.redraw(), names="value")
        self.precision_dropdown.observe(lambda _c: self.redraw(), names="value")
        self.variant_dropdown.observe(self._on_variant_menu, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        filters = widgets.HBox([self.model_dropdown, self.backend_dropdown, self.precision_dropdown])
        picker = widgets.HBox([self.variant_dropdown, self.refresh_button])
        super().__init__([filters, picker, self.status, plot, self.details])
        self.redraw()

    # -- public API ----------------------------------------------------------------------

    def on_select(self, callback: Callable[[dict | None], None]) -> None:
        """Call ``callback(row)`` whenever the selection changes (None when cleared)."""
        self._callbacks.append(callback)

    def select(self, row_id: str | None) -> dict | None:
        """Select a variant by row id: what clicking its point does.

        Updates :attr:`selected`, the highlight ring, the details pane and the Variant menu,
        then calls the :meth:`on_select` callbacks.

        Args:
            row_id: The row's ``id`` (a point's ``customdata``); None clears the selection.

        Returns:
            The selected row (None if cleared).

        Raises:
            KeyError: No row has that id.
        """
        if row_id is None:
            self.selected = None
        else:
            hits = self.frame[self.frame["id"].map(_text) == str(row_id)]
            if hits.empty:
                raise KeyError(f"no result with id {row_id!r}; ids: {self.frame['id'].tolist()[:20]}")
            self.selected = hits.iloc[0].to_dict()
        self._show_selection()
        for callback in list(self._callbacks):
            callback(self.selected)
        return self.selected

    @property
    def selected_id(self) -> str | None:
        return None if self.selected is None else _text(self.selected.get("id"))

    def visible_frame(self) -> pd.DataFrame:
        """The rows the model, backend and precision filters let through."""
        chosen = {column: dropdown.value for column, dropdown in self._filters()}
        return filter_frame(self.frame, **{c: None if v in (None, ALL) else v
                                           for c, v in chosen.items()})

    def _filters(self) -> list[tuple[str, widgets.Dropdown]]:
        return [("model", self.model_dropdown), ("backend", self.backend_dropdown),
                ("precision", self.precision_dropdown)]

    def refresh(self) -> None:
        """Re-read the results table (rows added since) and redraw; keeps the selection."""
        if self.table is not None:
            self.frame = self.table.frame()
        self._fill_filters()
        if self.selected_id is not None and self.selected_id not in set(self.frame["id"].map(_text)):
            self.selected = None
        elif self.selected_id is not None:
            self.selected = self.frame[self.frame["id"].map(_text) == self.selected_id].iloc[0].to_dict()
        self.redraw()

    def redraw(self) -> None:
        """Redraw the figure for the current filters and selection."""
        if self._updating:
            return
        fig = tradeoff_figure(self.visible_frame(), self.x, self.y, self.color, self.symbol,
                              selected=self.selected_id)
        if self.interactive:
            with self.figure.batch_update():
                self.figure.data = []
                self.figure.add_traces(list(fig.data))
                self.figure.layout = fig.layout
                # a FigureWidget does not stretch to its tab the way a static figure does
                self.figure.layout.width = self.figure_width
            for trace in self.figure.data:
                if trace.meta == VARIANTS:
                    trace.on_click(self._on_click)
        else:
            self.figure = fig
            show_in(self._plot_out, fig)
        self._fill_variant_menu()
        self._show_details()

    # -- internals -----------------------------------------------------------------------

    def _on_click(self, trace, points, _state) -> None:
        """A FigureWidget click: plotly calls every trace, only the clicked one has points."""
        if not points.point_inds:
            return
        self.select(trace.customdata[points.point_inds[0]])

    def _on_variant_menu(self, change) -> None:
        if not self._updating and change["new"] != self.selected_id:
            self.select(change["new"])

    def _fill_filters(self) -> None:
        self._updating = True
        try:
            for column, dropdown in self._filters():
                values = sorted({v for v in self.frame[column] if isinstance(v, str)})
                current = dropdown.value
                dropdown.options = [ALL] + values
                dropdown.value = current if current in dropdown.options else ALL
        finally:
            self._updating = False

    def _fill_variant_menu(self) -> None:
        rows = plotted_rows(self.visible_frame(), self.x, self.y)
        options = [("–", None)] + [
            (f"{_text(r.get('variant'), '?')} · {_text(r.get('precision'))} · "
             f"{_text(r.get('backend'))} [{_text(r.get('id'))}]", _text(r.get("id")))
            for r in rows.to_dict("records")
        ]
        self._updating = True
        try:
            self.variant_dropdown.options = options
            ids = [value for _label, value in options]
            self.variant_dropdown.value = self.selected_id if self.selected_id in ids else None
        finally:
            self._updating = False

    def _show_selection(self) -> None:
        """Move the highlight ring and refresh the details pane and the menu."""
        if self.interactive:
            rows = plotted_rows(self.visible_frame(), self.x, self.y)
            ring = _highlight(rows, self.x, self.y, self.selected_id)
            for trace in self.figure.data:
                if trace.meta == SELECTED:
                    with self.figure.batch_update():
                        trace.x, trace.y, trace.customdata = ring["x"], ring["y"], ring["customdata"]
            self._fill_variant_menu()
            self._show_details()
        else:
            self.redraw()

    def _show_details(self) -> None:
        self.details.value = details_html(self.selected)


def details_html(row: Mapping[str, Any] | None) -> str:
    """The details pane: a selected row's recipe, calibration and figures, as HTML."""
    if row is None:
        return "<em>Click a point (or pick a variant) to see how it was made.</em>"
    esc = html.escape
    recipe = row.get("recipe")
    recipe_text = json.dumps(recipe, indent=2, default=str) if isinstance(recipe, Mapping) else "–"
    figures = [(AXIS_TITLES.get(c, c), _number(row.get(c), c)) for c in
               ("top1", "top5", "top1_agreement", "min_cosine", "min_sqnr_db", "median_ms",
                "p90_ms", "p99_ms", "throughput") if c in row]
    if _finite(row.get("size_bytes")):
        figures.append(("model size", f"{row['size_bytes'] / 1e6:.3f} MB"))
    if _finite(row.get("batch")):
        figures.append(("batch", f"{int(row['batch'])}"))
    facts = [
        ("model", _text(row.get("model"), "–")),
        ("precision", _text(row.get("precision"))),
        ("backend", _text(row.get("backend"))),
        ("calibration", _text(row.get("calibration"), "–")),
        ("method", _text(row.get("calibration_method"), "–")),
        ("file", _text(row.get("variant_path"), "–")),
        ("created", _text(row.get("created"), "–")),
    ]
    cells = "".join(f"<tr><th style='text-align:left;padding-right:12px'>{esc(k)}</th>"
                    f"<td>{esc(v)}</td></tr>" for k, v in facts + figures)
    return (
        f"<div class='wb-tradeoff-details'><h4 style='margin:4px 0'>"
        f"{esc(_text(row.get('variant'), 'variant'))} "
        f"<small>[{esc(_text(row.get('id'), ''))}]</small></h4>"
        f"<table>{cells}</table><b>recipe</b> {esc(_text(row.get('recipe_label'), ''))}"
        f"<pre style='margin:4px 0'>{esc(recipe_text)}</pre></div>"
    )
