"""The engine explorer: pick an engine's layer table and look at its timing, fusion, or a
comparison with another engine. A thin controller over :mod:`workbench.views.engine_figures`.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import ipywidgets as widgets
import pandas as pd

from workbench.analysis.compare import compare_engines
from workbench.analysis.fusion import fusion_summary
from workbench.model import load_model
from workbench.views.engine_figures import (
    compare_figure,
    fusion_graph,
    fusion_table,
    layer_time_bar,
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
        self.engine_dropdown = widgets.Dropdown(options=labels, value=labels[0], description="Engine")
        self.compare_a = widgets.Dropdown(options=labels, value=labels[0], description="A")
        self.compare_b = widgets.Dropdown(options=labels, value=labels[-1], description="B")
        self.timing_out = widgets.Output()
        self.fusion_out = widgets.Output()
        self.compare_out = widgets.Output()
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
                top_layers(table, k=10),
            )
        summary = widgets.HTML(_summary_html(fusion_summary(table, model)))
        if model is not None:
            show_in(self.fusion_out, summary, fusion_graph(table, model), fusion_table(table, model))
        else:
            show_in(self.fusion_out, summary, fusion_table(table, model))

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
        show_in(self.compare_out, compare_figure(comparison, top=40), comparison)


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
