"""The engine explorer: pick an engine's layer table and look at its timing, fusion, or a
comparison with another engine. A thin controller over :mod:`workbench.views.engine_figures`.
"""

from __future__ import annotations

import html
import os
from typing import Any, Mapping

import ipywidgets as widgets
import pandas as pd

from workbench.analysis.compare import MATCHED, compare_engines
from workbench.analysis.fusion import fusion_summary
from workbench.model import load_model
from workbench.views.engine_figures import (
    compare_figure,
    fusion_graph,
    fusion_table,
    layer_time_bar,
    shorten,
    time_by_precision,
    time_treemap,
    top_layers,
)
from workbench.views.model_picker import error_html
from workbench.views.output import show_in


class EngineExplorer(widgets.VBox):
    """Tabs of views over named layer tables.

    Args:
        tables: Engine label -> layer table (profiled or not).
        models: Engine label -> the ONNX model it was built from (path, ModelProto or
            LoadedModel), for the fusion graph; engines without one show the table only.

    Attributes:
        engine: The label of the engine shown in the Timing and Fusion tabs.
    """

    def __init__(self, tables: Mapping[str, pd.DataFrame], models: Mapping[str, Any] | None = None):
        if not tables:
            raise ValueError("give at least one layer table, e.g. {'ORT': engine.profile(inputs)}")
        self.tables = dict(tables)
        self.models = {label: _as_model(m) for label, m in (models or {}).items()}
        labels = list(self.tables)
        # max-content: a dropdown as wide as its longest label ("TensorRT FP16 (A100, imported)")
        fit = {"width": "max-content"}
        self.engine_dropdown = widgets.Dropdown(options=labels, value=labels[0], description="Engine", layout=fit)
        self.compare_a = widgets.Dropdown(options=labels, value=labels[0], description="A", layout=fit)
        self.compare_b = widgets.Dropdown(options=labels, value=labels[min(1, len(labels) - 1)], description="B", layout=fit)
        # wide figures (the fusion graph) and tables scroll inside the tab instead of being cut off
        scroll = {"overflow": "auto"}
        self.timing_out = widgets.Output(layout=scroll)
        self.fusion_out = widgets.Output(layout=scroll)
        self.compare_out = widgets.Output(layout=scroll)
        self.tabs = widgets.Tab(
            children=[
                self.timing_out,
                self.fusion_out,
                widgets.VBox([widgets.HBox([self.compare_a, self.compare_b]), self.compare_out]),
            ]
        )
        for index, title in enumerate(("Timing", "Fusion", "Compare")):
            self.tabs.set_title(index, title)
        self.engine_dropdown.observe(lambda _change: self.show_engine(), names="value")
        self.compare_a.observe(lambda _change: self.show_comparison(), names="value")
        self.compare_b.observe(lambda _change: self.show_comparison(), names="value")
        super().__init__([self.engine_dropdown, self.tabs])
        self.show_engine()
        self.show_comparison()

    @property
    def engine(self) -> str:
        return self.engine_dropdown.value

    def show_engine(self) -> None:
        """Redraw the Timing and Fusion tabs for the selected engine."""
        table = self.tables[self.engine]
        model = self.models.get(self.engine)
        if "time_ms" not in table:
            show_in(self.timing_out, widgets.HTML("<em>This table has no times: profile the engine to see them.</em>"))
        else:
            show_in(
                self.timing_out,
                layer_time_bar(table, top=40),
                time_treemap(table),
                time_by_precision(table),
                _top_layers_frame(table),
            )
        summary = widgets.HTML(_summary_html(fusion_summary(table, model)))
        if model is not None:
            show_in(self.fusion_out, summary, fusion_graph(table, model), _fusion_frame(table, model))
        else:
            show_in(self.fusion_out, summary, _fusion_frame(table, model))

    def show_comparison(self) -> None:
        """Redraw the Compare tab for the engines chosen as A and B."""
        a, b = self.compare_a.value, self.compare_b.value
        if a == b:
            show_in(self.compare_out, widgets.HTML("<em>Pick two different engines to compare.</em>"))
            return
        try:
            comparison = compare_engines(self.tables[a], self.tables[b], label_a=a, label_b=b)
        except ValueError as err:  # e.g. an unprofiled table
            show_in(self.compare_out, widgets.HTML(error_html(str(err))))
            return
        shown = [compare_figure(comparison, top=40), _comparison_frame(comparison)]
        if not (comparison["status"] == MATCHED).any():
            shown.insert(0, widgets.HTML(_no_shared_nodes_html(a, b)))
        show_in(self.compare_out, *shown)


# The tables in the tabs are cut to what fits the tab's width (about 1200 px): long names
# shortened, lists joined, numbers rounded. The full tables are the functions' return values.


def _text(value: Any, width: int) -> str:
    """A cell as short text: lists joined with commas, cut to ``width`` characters."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return shorten("" if value is None else value, width)


def _number(value: Any, fmt: str) -> str:
    try:
        return "" if value is None or pd.isna(value) else fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _fusion_frame(table: pd.DataFrame, model: Any) -> pd.DataFrame:
    """:func:`fusion_table`, narrowed to fit the Fusion tab."""
    full = fusion_table(table, model)
    shown = pd.DataFrame(
        {
            "layer": full["layer"].map(lambda v: _text(v, 44)),
            "status": full["status"],
            "type": full["type"].map(lambda v: _text(v, 28)),
            "op_types": full["op_types"].map(lambda v: _text(v, 40)),
            "precision": full["precision"],
        }
    )
    if "time_ms" in full:
        shown["time_ms"] = full["time_ms"].map(lambda v: _number(v, "{:.4f}"))
        shown["share"] = full["share"].map(lambda v: _number(v, "{:.1f} %"))
    return shown


def _comparison_frame(comparison: pd.DataFrame) -> pd.DataFrame:
    """A comparison (:func:`compare_engines`), narrowed to fit the Compare tab."""
    label_a = comparison.attrs.get("label_a", "A")
    label_b = comparison.attrs.get("label_b", "B")
    return pd.DataFrame(
        {
            "status": comparison["status"],
            f"layers in {label_a}": comparison["layers_a"].map(lambda v: _text(v, 40)),
            f"layers in {label_b}": comparison["layers_b"].map(lambda v: _text(v, 40)),
            f"{label_a} (ms)": comparison["time_a"].map(lambda v: _number(v, "{:.4f}")),
            f"{label_b} (ms)": comparison["time_b"].map(lambda v: _number(v, "{:.4f}")),
            "difference (ms)": comparison["diff"].map(lambda v: _number(v, "{:+.4f}")),
        }
    ).set_axis(pd.Index(comparison["group"], name="group"))


def _top_layers_frame(table: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The ``k`` slowest layers, formatted to fit the tab: short names, rounded times, percents."""
    top = top_layers(table, k=k)
    return pd.DataFrame(
        {
            "name": top["name"].map(lambda v: shorten(v, 48)),
            "type": top["type"].map(lambda v: shorten(v, 32)),
            "precision": top["precision"],
            "tactic": top["tactic"].map(lambda v: shorten(v, 36)),
            "time_ms": top["time_ms"].map("{:.4f}".format),
            "share": top["share"].map("{:.1f} %".format),
            "cumulative": top["cumulative_share"].map("{:.1f} %".format),
        },
    ).set_axis(pd.Index(top["rank"], name="rank"))


def _no_shared_nodes_html(a: str, b: str) -> str:
    """The warning shown when two engines run no ONNX node in common."""
    return (
        "<div class='wb-warning' style='color:#8a5300;border:1px solid #e0a800;background:#fff8e1;"
        "padding:6px;border-radius:4px'><b>Nothing to match:</b> "
        f"{html.escape(a)} and {html.escape(b)} share no ONNX nodes (different models?), so every "
        "layer is unmatched and the difference is only of the totals.</div>"
    )


def _as_model(model: Any) -> Any:
    """Paths become loaded models; models pass through."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    return model


def _summary_html(summary: Mapping[str, Any]) -> str:
    labels = {
        "layers": "engine layers",
        "fused_layers": "fused layers (several ONNX nodes)",
        "inserted_layers": "inserted layers (reformat, copy)",
        "nodes": "ONNX nodes",
        "nodes_fused": "nodes fused into a layer",
        "nodes_kept": "nodes run alone",
        "nodes_folded": "nodes folded away",
    }
    rows = "".join(
        f"<tr><th style='text-align:left'>{label}</th><td>{summary[key]}</td></tr>"
        for key, label in labels.items()
        if key in summary and summary[key] is not None
    )
    return f"<table>{rows}</table>"
