"""Accuracy vs latency: every variant tried, the Pareto front, and an explorer to pick one.

:func:`tradeoff_figure` is a pure function of a results frame
(:mod:`workbench.tables.results`); :class:`TradeoffExplorer` is a thin ipywidgets controller
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
from copy import deepcopy
from typing import Any, Callable, Mapping

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from workbench.errors import WorkbenchError
from workbench.tables.results import ResultsTable, filter_frame
from workbench.views.engine_figures import BACKEND_TIMERS
from workbench.views.model_picker import error_html
from workbench.views.output import show_in
from workbench.views.tradeoff_figures import (
    ALL,
    AXIS_TITLES,
    SELECTED,
    VARIANTS,
    _check_frame,
    _finite,
    _highlight,
    _number,
    _text,
    interval_text,
    plotted_rows,
    tradeoff_figure,
)
from workbench.workflows.plan_save import plan_from_row, save_plan

LEADING_BACKENDS = ("tensorrt", "trt-json")  # latencies of the deployment target, shown first when present

HIDDEN_NOTE = "is hidden by the filters: selection cleared"

# --------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------


def figure_widget_available() -> bool:
    """Whether plotly's clickable ``FigureWidget`` can be made here (it needs ``anywidget``)."""
    return importlib.util.find_spec("anywidget") is not None


def sync_figure_state(figure: go.FigureWidget) -> None:
    """Make a FigureWidget's synced state the figure as it is now, so a view created later draws it.

    plotly sends every change after a FigureWidget's creation (traces added or deleted, restyle,
    relayout) as a one-off message that the browser's model applies to its copy of the figure, and
    refreshes the synced copy (``_widget_data``/``_widget_layout``) only when the widget itself is
    displayed. A FigureWidget inside a box (this explorer) is never displayed itself, and a model
    whose code (anywidget's ES module) is still loading when the messages arrive misses them: the
    view then draws the figure as it was at creation, empty (issue 12: notebook 06 in Chromium,
    the explorer built, filtered and selected in one cell). Setting the synced copy after each
    change sends the whole figure, which a late model and view start from.

    Args:
        figure: The widget (its private synced traits are plotly's own, set as its display does).
    """
    figure._widget_data = deepcopy(figure._data)
    figure._widget_layout = deepcopy(figure._layout_obj._props)


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

    The Backend filter starts on TensorRT where the results hold TensorRT rows (the deployment
    target's latencies lead; ONNX Runtime's CPU latencies are one click away). A filter that
    removes the selected variant clears the selection (details pane and callbacks included);
    selecting a hidden variant by id widens the filters that hid it.

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
        self.save_button = widgets.Button(description="Save as plan", icon="save", disabled=True,
                                          tooltip="write a plan file that re-creates the selected variant in CI "
                                                  "(workbench run PLAN)")
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
        self.save_button.on_click(lambda _b: self._on_save())
        filters = widgets.HBox([self.model_dropdown, self.backend_dropdown, self.precision_dropdown])
        picker = widgets.HBox([self.variant_dropdown, self.refresh_button, self.save_button])
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
        if HIDDEN_NOTE in self.status.value:  # a new selection: the note about the dropped one is old news
            self.status.value = ""
        if self.selected is not None and self._widen_filters(self.selected):
            self.redraw()  # a variant picked by id that the filters hid: show it, with its details
        else:
            self._show_selection()
        for callback in list(self._callbacks):
            callback(self.selected)
        return self.selected

    def save_plan(self, path=None, **options):
        """Save the selected variant as a plan file: what the "Save as plan" button does.

        The plan holds the variant's full recipe, the model and calibration data pinned by their
        hashes, the backend and batch sizes it was measured at, and a ``max_accuracy_drop`` gate
        of the drop measured against the FP32 row of the same model and backend plus 0.5 points
        (see :func:`workbench.workflows.plan_save.plan_from_row`).

        Args:
            path: The ``.yaml`` to write (default: ``<workspace>/plans/<model>-<variant>.plan.yaml``,
                numbered so no file is replaced).
            **options: Passed to :func:`~workbench.workflows.plan_save.plan_from_row`
                (``evaluation=``, ``gates=``, ``backends=``, ``batch_sizes=``...).

        Returns:
            The plan file's path.

        Raises:
            WorkbenchError: Nothing selected, or the row lacks what a plan needs (the message says).
        """
        if self.selected is None:
            raise WorkbenchError("select a variant first (click its point or pick it in the Variant menu).")
        row = self.selected
        same = self.frame[(self.frame["model"] == row.get("model")) & (self.frame["backend"] == row.get("backend"))
                          & (self.frame["precision"].map(lambda p: str(p).upper()) == "FP32")]
        reference = same.iloc[-1].to_dict() if len(same) else None
        plan = plan_from_row(row, reference_row=reference, **options)
        return save_plan(plan, path, source=f"the tradeoff explorer (row {_text(row.get('id'))})")

    def _on_save(self) -> None:
        try:
            path = self.save_plan()
        except WorkbenchError as err:
            self.status.value = error_html(str(err))
            return
        self.status.value = (f"Plan saved: <code>{html.escape(str(path))}</code>. Run it with "
                             f"<code>workbench run {html.escape(str(path))}</code>.")

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

    def _widen_filters(self, row: Mapping[str, Any]) -> bool:
        """Set to "(all)" each filter that hides ``row``; returns whether any changed."""
        changed = False
        self._updating = True
        try:
            for column, dropdown in self._filters():
                value = dropdown.value
                if value not in (None, ALL) and filter_frame(pd.DataFrame([row]), **{column: value}).empty:
                    dropdown.value, changed = ALL, True
        finally:
            self._updating = False
        return changed

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
        visible = self.visible_frame()
        dropped = self.selected is not None and self.selected_id not in set(visible["id"].map(_text))
        if dropped:  # the filters removed the selected variant: the details pane must not keep it
            self.status.value = (f"<em>{html.escape(_text(self.selected.get('variant'), 'The selected variant'))} "
                                 f"{HIDDEN_NOTE}.</em>")
            self.selected = None
        fig = tradeoff_figure(visible, self.x, self.y, self.color, self.symbol,
                              selected=self.selected_id)
        if self.interactive:
            with self.figure.batch_update():
                self.figure.data = []
                self.figure.add_traces(list(fig.data))
                self.figure.layout = fig.layout
                # a FigureWidget does not stretch to its tab the way a static figure does
                self.figure.layout.width = self.figure_width
            sync_figure_state(self.figure)
            for trace in self.figure.data:
                if trace.meta == VARIANTS:
                    trace.on_click(self._on_click)
        else:
            self.figure = fig
            show_in(self._plot_out, fig)
        self._fill_variant_menu()
        self._show_details()
        if dropped:
            for callback in list(self._callbacks):
                callback(None)

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
                if current is None and column == "backend":  # first fill: TensorRT leads where it ran
                    current = next((v for v in values if v in LEADING_BACKENDS), None)
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
            sync_figure_state(self.figure)
            self._fill_variant_menu()
            self._show_details()
        else:
            self.redraw()

    def _show_details(self) -> None:
        self.details.value = details_html(self.selected)
        self.save_button.disabled = self.selected is None


def details_html(row: Mapping[str, Any] | None) -> str:
    """The details pane: a selected row's recipe, calibration and figures, as HTML."""
    if row is None:
        return "<em>Click a point (or pick a variant) to see how it was made.</em>"
    esc = html.escape
    recipe = row.get("recipe")
    recipe_text = json.dumps(recipe, indent=2, default=str) if isinstance(recipe, Mapping) else "–"
    figures = [(AXIS_TITLES.get(c, c), " ".join(filter(None, (_number(row.get(c), c), interval_text(row, c)))))
               for c in ("top1", "top5", "top1_agreement", "min_cosine", "min_sqnr_db", "median_ms",
                         "p10_ms", "p90_ms", "p99_ms", "throughput") if c in row]
    if _finite(row.get("samples")):
        figures.append(("evaluated samples", f"{int(row['samples'])}"))
    if _text(row.get("backend"), "") in BACKEND_TIMERS:
        figures.append(("latency measured by", BACKEND_TIMERS[_text(row.get("backend"))]))
    if _finite(row.get("metric_value")):  # the row's chosen metric, with its unit
        figures.insert(0, (_text(row.get("metric"), "metric"),
                           f"{row['metric_value']:.4g} {_text(row.get('metric_unit'), '')}".strip()))
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
