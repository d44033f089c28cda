"""The accuracy-vs-latency figure and explorer on real measured rows (sample-model variants
evaluated on their eval split and benchmarked briefly on ONNX Runtime)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.analysis.accuracy import evaluate
from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend
from workbench.samples import sample_data_path, sample_path
from workbench.tables.results import ResultsTable, make_row, pareto_front
from workbench.views import tradeoff
from workbench.views.tradeoff import (
    SELECTED,
    VARIANTS,
    TradeoffExplorer,
    details_html,
    figure_widget_available,
    tradeoff_figure,
)
from workbench.views.tradeoff_figures import PARETO, SYMBOL_LEGEND, write_html


@pytest.fixture(autouse=True)
def _workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


def _measure(model_or_variant, *, model, precision, reference, **fields):
    """A real row; a Variant is evaluated on what stands for it on ORT CPU, timed as itself."""
    path = getattr(model_or_variant, "path", model_or_variant)
    data = sample_data_path(model, "eval")
    evaluation = evaluate(getattr(model_or_variant, "ort_path", path), data, reference=reference)
    x = np.load(data)["input"][:64]
    bench = OnnxRuntimeBackend().build(path, {"intra_op_num_threads": 1}).benchmark(
        {"input": x}, iterations=20, warmup=3)
    return make_row(model=model, precision=precision, evaluation=evaluation, benchmark=bench,
                    variant_path=path, **fields)


@pytest.fixture(scope="module")
def real_rows(sample_variant):
    cnn, transformer = sample_path("digits_cnn"), sample_path("digits_transformer")
    calib = sample_data_path("digits_cnn", "calib")
    return [
        _measure(cnn, model="digits_cnn", precision="FP32", reference=cnn),
        _measure(sample_variant("digits_cnn", "fp16"), model="digits_cnn", precision="FP16",
                 variant="cnn.fp16", reference=cnn, recipe={"precision": "fp16", "keep_io_types": True}),
        _measure(sample_variant("digits_cnn", "int8"), model="digits_cnn", precision="INT8",
                 variant="cnn.int8",
                 reference=cnn, calibration=calib, calibration_method="minmax",
                 recipe={"name": "int8-qdq-minmax", "format": "QDQ", "method": "minmax"}),
        _measure(transformer, model="digits_transformer", precision="FP32", reference=transformer),
    ]


@pytest.fixture()
def table(real_rows, _workspace):
    table = ResultsTable()
    for row in real_rows:
        table.add(row)
    table.add({"model": "digits_cnn", "variant": "not-benchmarked", "precision": "BF16",
               "backend": "onnxruntime", "top1": 0.99})
    return table


def _traces(fig, meta):
    return [t for t in fig.data if t.meta == meta]


# --------------------------------------------------------------------------------------------
# The figure


def test_figure_has_one_marker_per_measured_variant_and_the_front(table):
    frame = table.frame()
    fig = tradeoff_figure(frame)
    variants = _traces(fig, VARIANTS)
    assert sorted(t.name for t in variants) == ["FP16", "FP32", "INT8"]  # BF16 row has no latency
    ids = [i for t in variants for i in t.customdata]
    measured = frame[frame["median_ms"].notna()]
    assert sorted(ids) == sorted(measured["id"])
    for trace in variants:
        for row_id, x, y in zip(trace.customdata, trace.x, trace.y):
            row = frame[frame["id"] == row_id].iloc[0]
            assert (x, y) == (row["median_ms"], row["top1"])
    (front,) = _traces(fig, PARETO)
    expected = pareto_front(measured)
    assert list(front.x) == expected["median_ms"].tolist() and front.line.shape == "hv"
    assert list(front.y) == expected["top1"].tolist()
    (ring,) = _traces(fig, SELECTED)
    assert len(ring.x) == 0
    assert "4 variants (1 without median_ms or top1 not shown)" in fig.layout.title.text
    assert fig.layout.yaxis.tickformat == ".2%"
    int8 = next(t for t in variants if t.name == "INT8")
    hover = int8.hovertext[0]
    assert "recipe: int8-qdq-minmax" in hover and "digits_cnn.calib.npz (minmax)" in hover
    assert "on onnxruntime" in hover
    # one backend: no symbol legend; markers use the shared precision colors
    assert not _traces(fig, SYMBOL_LEGEND) and int8.marker.color == "#ff7f0e"


def test_selected_row_is_ringed_and_symbols_follow_a_column(table):
    frame = table.frame()
    row = frame.iloc[2]
    fig = tradeoff_figure(frame, selected=row["id"], symbol="model")
    (ring,) = _traces(fig, SELECTED)
    assert list(ring.x) == [row["median_ms"]] and list(ring.y) == [row["top1"]]
    assert len(_traces(fig, SYMBOL_LEGEND)) == 2  # digits_cnn, digits_transformer
    fp32 = next(t for t in _traces(fig, VARIANTS) if t.name == "FP32")
    assert len(set(fp32.marker.symbol)) == 2


def test_figure_validation_and_empty_results():
    with pytest.raises(ValueError, match=r"no column\(s\) \['p50_ms'\]"):
        tradeoff_figure(ResultsTable().frame(), x="p50_ms")
    with pytest.raises(TypeError, match="DataFrame"):
        tradeoff_figure([{"id": "a"}])
    fig = tradeoff_figure(ResultsTable().frame())
    assert "No results" in fig.layout.annotations[0].text and not _traces(fig, VARIANTS)


def test_write_html_is_standalone_and_holds_the_data(table, tmp_path):
    frame = table.frame()
    fig = tradeoff_figure(frame)
    path = write_html(fig, tmp_path / "out" / "tradeoff.html")
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size > 1_000_000  # plotly.js inline: works offline
    assert not re.search(r"<script[^>]*\bsrc=", text) and "Plotly.newPlot" in text
    for row_id in frame[frame["median_ms"].notna()]["id"]:
        assert row_id in text
    assert "int8-qdq-minmax" in text
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]


# --------------------------------------------------------------------------------------------
# The explorer


def _ring(explorer):
    (ring,) = _traces(explorer.figure, SELECTED)
    return list(ring.x), list(ring.y)


@pytest.mark.parametrize("interactive", [True, False], ids=["figurewidget", "static"])
def test_explorer_select_updates_selection_highlight_details_and_callbacks(table, interactive,
                                                                           monkeypatch):
    # anywidget is a dependency (pyproject.toml): a missing or broken one fails, it does not skip
    assert figure_widget_available(), "plotly's FigureWidget needs anywidget, a dependency of the workbench"
    monkeypatch.setattr(tradeoff, "figure_widget_available", lambda: interactive)
    explorer = TradeoffExplorer(table)
    assert explorer.interactive is interactive
    assert isinstance(explorer.figure, go.FigureWidget if interactive else go.Figure)
    seen = []
    explorer.on_select(seen.append)
    frame = table.frame()
    int8 = frame[frame["precision"] == "INT8"].iloc[0]

    row = explorer.select(int8["id"])
    assert row["id"] == int8["id"] and explorer.selected["variant"] == "cnn.int8"
    assert explorer.selected_id == int8["id"] and seen == [row]
    assert _ring(explorer) == ([int8["median_ms"]], [int8["top1"]])
    assert "int8-qdq-minmax" in explorer.details.value and "&quot;QDQ&quot;" in explorer.details.value
    assert "minmax" in explorer.details.value
    assert explorer.variant_dropdown.value == int8["id"]

    explorer.precision_dropdown.value = "FP32"  # filter: INT8 hidden, selection kept
    assert {t.name for t in _traces(explorer.figure, VARIANTS)} == {"FP32"}
    fp32_ids = sorted(frame.loc[frame["precision"] == "FP32", "id"])
    assert sorted(i for t in _traces(explorer.figure, VARIANTS) for i in t.customdata) == fp32_ids
    assert _ring(explorer) == ([], []) and explorer.selected_id == int8["id"]
    explorer.precision_dropdown.value = "(all)"
    assert _ring(explorer) == ([int8["median_ms"]], [int8["top1"]])

    fp32 = frame[frame["precision"] == "FP32"].iloc[0]
    explorer.variant_dropdown.value = fp32["id"]  # the menu selects too
    assert explorer.selected_id == fp32["id"] and len(seen) == 2

    assert explorer.select(None) is None and seen[-1] is None
    assert _ring(explorer) == ([], []) and "Click a point" in explorer.details.value
    with pytest.raises(KeyError, match="no result with id"):
        explorer.select("nope")


def test_explorer_click_on_a_point_selects_it(table):
    # anywidget is a dependency (pyproject.toml): a missing or broken one fails, it does not skip
    assert figure_widget_available(), "plotly's FigureWidget needs anywidget, a dependency of the workbench"
    from plotly.callbacks import InputDeviceState, Points

    explorer = TradeoffExplorer(table)
    seen = []
    explorer.on_select(seen.append)
    fp16 = next(t for t in explorer.figure.data if t.meta == VARIANTS and t.name == "FP16")
    other = next(t for t in explorer.figure.data if t.meta == VARIANTS and t.name == "FP32")
    # plotly tells every trace about a click; only the clicked one gets point indices
    other._dispatch_on_click(Points(point_inds=[], trace_index=0), InputDeviceState())
    assert seen == []
    fp16._dispatch_on_click(Points(point_inds=[0], xs=[fp16.x[0]], ys=[fp16.y[0]]),
                            InputDeviceState(button=0))
    assert explorer.selected_id == fp16.customdata[0] and seen[0]["precision"] == "FP16"
    assert _ring(explorer) == ([fp16.x[0]], [fp16.y[0]])


def test_explorer_filters_and_refresh_pick_up_new_rows(table, real_rows):
    explorer = TradeoffExplorer(table)
    assert explorer.model_dropdown.options == ("(all)", "digits_cnn", "digits_transformer")
    assert explorer.precision_dropdown.options == ("(all)", "BF16", "FP16", "FP32", "INT8")
    frame = table.frame()
    explorer.model_dropdown.value = "digits_transformer"
    (only,) = frame[frame["model"] == "digits_transformer"].to_dict("records")
    drawn = [(i, x, y) for t in _traces(explorer.figure, VARIANTS) for i, x, y in zip(t.customdata, t.x, t.y)]
    assert drawn == [(only["id"], only["median_ms"], only["top1"])]  # that model's one row, where it lies
    explorer.model_dropdown.value = "digits_cnn"
    measured = frame[(frame["model"] == "digits_cnn") & frame["median_ms"].notna()]
    drawn = {i: (x, y) for t in _traces(explorer.figure, VARIANTS) for i, x, y in zip(t.customdata, t.x, t.y)}
    assert drawn == {r["id"]: (r["median_ms"], r["top1"]) for r in measured.to_dict("records")}
    explorer.model_dropdown.value = "(all)"
    new_id = table.add({**real_rows[0], "variant": "cnn-rerun", "backend": "tensorrt"})
    explorer.refresh()
    assert explorer.backend_dropdown.options == ("(all)", "onnxruntime", "tensorrt")
    explorer.backend_dropdown.value = "tensorrt"
    assert [list(t.customdata) for t in _traces(explorer.figure, VARIANTS)] == [[new_id]]
    explorer.select(new_id)
    assert explorer.selected["backend"] == "tensorrt"


def test_explorer_on_a_frame_and_bad_input(real_rows):
    frame = pd.DataFrame([{**r, "id": f"r{k}"} for k, r in enumerate(real_rows)])
    explorer = TradeoffExplorer(frame, x="p99_ms", y="min_sqnr_db", color="model", symbol=None)
    assert explorer.select("r1")["precision"] == "FP16"
    with pytest.raises(TypeError, match="ResultsTable or a results DataFrame"):
        TradeoffExplorer([1, 2])
    assert "Click a point" in details_html(None)


def test_metric_axis_is_titled_by_the_rows_metric_and_refuses_mixed_metrics(real_rows):
    rows = [dict(r, id=f"r{i}") for i, r in enumerate(real_rows[:3])]
    frame = pd.DataFrame(rows)
    fig = tradeoff_figure(frame, y="metric_value")
    assert fig.layout.yaxis.title.text == "top1 (%)"
    points = sorted((x, y) for t in _traces(fig, VARIANTS) for x, y in zip(t.x, t.y))
    assert points == sorted((r["median_ms"], r["metric_value"]) for r in rows)
    hover = _traces(fig, VARIANTS)[0].hovertext[0]
    assert re.search(r"top1: [0-9.]+ %", hover)
    psnr = frame.assign(metric="psnr", metric_unit="dB", metric_value=[60.0, 45.0, 30.0])
    assert tradeoff_figure(psnr, y="metric_value").layout.yaxis.title.text == "psnr (dB)"
    mixed = pd.concat([frame, psnr.assign(id=["p0", "p1", "p2"])])
    with pytest.raises(ValueError, match=r"several metrics \['psnr', 'top1'\]"):
        tradeoff_figure(mixed, y="metric_value")
    assert "top1" in details_html(rows[2]) and "%" in details_html(rows[2])
