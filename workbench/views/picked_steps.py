"""Notebook steps that follow the model picker and draw a figure (see :meth:`ModelPicker.follow`).

Each takes the picker's :class:`~workbench.workflows.picked.Picked` (model and data) and returns
what a notebook shows; the measuring is in :mod:`workbench.workflows.picked` and below.
"""

from __future__ import annotations

import pandas as pd

from workbench.analysis.fusion import fusion_summary
from workbench.backends import get_backend
from workbench.tables.results import ResultsTable
from workbench.views.engine_figures import layer_time_bar
from workbench.views.tradeoff_figures import tradeoff_figure
from workbench.workflows.picked import Picked, tradeoff_rows


def fusion_picked(picked: Picked, *, batch: int = 32, iterations: int = 30):
    """ONNX Runtime's fusion of the picked model and its per-layer time on one batch of its data.

    Returns:
        ``(summary, figure)``: :func:`fusion_summary` as a one-row frame and the time-per-layer bars.
    """
    engine = get_backend("onnxruntime").build(picked.model)
    layers = engine.profile(picked.feed(batch), iterations=iterations)
    return pd.DataFrame([fusion_summary(layers, picked.model)], index=[picked.name]), layer_time_bar(layers)


def tradeoff_picked(picked: Picked, recipes=("fp32", "fp16", "bf16", "int8"), *, table: ResultsTable | None = None):
    """The picked model's variants on the accuracy-latency plot (rows kept in the results table).

    The accuracy axis is top-1 with labels, else agreement with FP32 (the rows' metric).

    Args:
        picked: The model and data.
        recipes: Recipes or precision names.
        table: The results table to add the rows to (default: the workspace's).

    Returns:
        The tradeoff figure of this model's rows.
    """
    table = table if table is not None else ResultsTable()
    rows = tradeoff_rows(picked, recipes, table=table)
    ids = {row["id"] for row in rows if "id" in row}
    frame = table.frame()
    return tradeoff_figure(frame[frame["id"].isin(ids)], y="metric_value")
