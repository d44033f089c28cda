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
from workbench.tables.machine import machine_facts, machine_label
from workbench.tables.results import (
    ResultsTable,
    front_within_noise,
    make_row,
    pareto_front,
    wilson_interval,
)
from workbench.views import tradeoff
from workbench.views.tradeoff import (
    SELECTED,
    VARIANTS,
    TradeoffExplorer,
    details_html,
    figure_widget_available,
    tradeoff_figure,
)
from workbench.views.tradeoff_figures import (
    PARETO,
    PARETO_NOISE,
    SYMBOL_LEGEND,
    write_html,
)


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
    fronts = {t.name: t for t in _traces(fig, PARETO)}  # one per model, never one spanning both
    assert sorted(fronts) == ["Pareto front (digits_cnn)", "Pareto front (digits_transformer)"]
    for model in ("digits_cnn", "digits_transformer"):
        front, expected = fronts[f"Pareto front ({model})"], pareto_front(measured[measured["model"] == model])
        assert list(front.x) == expected["median_ms"].tolist() and front.line.shape == "hv"
        assert list(front.y) == expected["top1"].tolist() and list(front.customdata) == expected["id"].tolist()
        assert set(frame.set_index("id").loc[list(front.customdata), "model"]) == {model}
    assert fronts["Pareto front (digits_cnn)"].line.color != fronts["Pareto front (digits_transformer)"].line.color
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

    explorer.precision_dropdown.value = "FP32"  # filter: INT8 hidden, so the selection goes too
    assert {t.name for t in _traces(explorer.figure, VARIANTS)} == {"FP32"}
    fp32_ids = sorted(frame.loc[frame["precision"] == "FP32", "id"])
    assert sorted(i for t in _traces(explorer.figure, VARIANTS) for i in t.customdata) == fp32_ids
    assert _ring(explorer) == ([], []) and explorer.selected is None and seen[-1] is None
    assert "cnn.int8" not in explorer.details.value and "Click a point" in explorer.details.value
    assert explorer.save_button.disabled and "hidden by the filters" in explorer.status.value
    assert explorer.select(int8["id"])["id"] == int8["id"]  # by id: the filter that hid it opens
    assert explorer.precision_dropdown.value == "(all)" and "cnn.int8" in explorer.details.value
    assert _ring(explorer) == ([int8["median_ms"]], [int8["top1"]])
    seen.clear()
    seen.append(row)

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


# --------------------------------------------------------------------------------------------
# Issue 12: fronts per model, what the evaluation set can resolve, what a CPU latency is


def test_wilson_interval_matches_the_published_values():
    # Newcombe (1998), Stat. Med. 17:857, table I: 81/263 -> 0.2553-0.3662; 15/148 -> 0.0624-0.1605
    low, high = wilson_interval([81 / 263, 15 / 148], [263, 148])
    assert np.round(low, 4).tolist() == [0.2553, 0.0624] and np.round(high, 4).tolist() == [0.3662, 0.1605]
    low, high = wilson_interval(1.0, 360)  # 360 of 360 right: not a zero-width interval
    assert high[0] == 1.0 and 0.98 < low[0] < 0.995
    assert np.isnan(wilson_interval(0.9, float("nan"))[0][0])


def test_error_bars_are_the_interval_from_the_sample_count(real_rows):
    frame = pd.DataFrame([dict(r, id=f"r{k}") for k, r in enumerate(real_rows)])
    assert (frame["samples"] == 360).all()  # the eval split's size, recorded on each row
    widths = {}
    for scale in (1, 100):
        fig = tradeoff_figure(frame.assign(samples=frame["samples"] * scale))
        for trace in _traces(fig, VARIANTS):
            for row_id, y, up, down in zip(trace.customdata, trace.y, trace.error_y.array, trace.error_y.arrayminus):
                low, high = wilson_interval(y, 360 * scale)
                assert (up, down) == pytest.approx((high[0] - y, y - low[0]))
                widths.setdefault(row_id, []).append(up + down)
        assert f"n = {360 * scale} samples" in fig.layout.yaxis.title.text
    for small, large in widths.values():  # 100x the samples: a tenth of the width, roughly
        assert 0.05 < large / small < 0.2
    row = frame.iloc[2].to_dict()
    low, high = wilson_interval(row["top1"], 360)
    assert f"95 % interval {low[0]:.2%}–{high[0]:.2%} (n = 360)" in details_html(row)  # the pane says it too
    unknown = tradeoff_figure(frame.assign(samples=np.nan))
    assert all(v is None for t in _traces(unknown, VARIANTS) for v in t.error_y.array)


def test_front_steps_inside_the_interval_are_marked_within_noise():
    def rows(samples):
        return pd.DataFrame([
            {"id": "fast", "model": "m", "precision": "INT8", "backend": "onnxruntime", "median_ms": 1.0,
             "top1": 357 / 360, "samples": samples},
            {"id": "slow", "model": "m", "precision": "FP32", "backend": "onnxruntime", "median_ms": 2.0,
             "top1": 358 / 360, "samples": samples},  # one image better on 360
        ])
    fig = tradeoff_figure(rows(360))
    (noise,) = _traces(fig, PARETO_NOISE)
    assert list(noise.customdata) == ["slow"] and "1 front step within" in fig.layout.title.text
    assert "1 front step within" in fig.layout.meta["title_notes"]  # pages that retitle it keep the note
    assert front_within_noise(pareto_front(rows(360)), "top1").tolist() == [False, True]
    # the same one-image gap on a million samples is resolved
    assert not _traces(tradeoff_figure(rows(1_000_000)), PARETO_NOISE)


def test_explorer_with_all_models_draws_one_front_per_model_in_its_color(table):
    explorer = TradeoffExplorer(table)
    assert explorer.model_dropdown.value == "(all)"
    frame = table.frame().set_index("id")
    fronts = _traces(explorer.figure, PARETO)
    assert len(fronts) == 2
    for front in fronts:  # each front's points are of one model, the one its name says
        (model,) = set(frame.loc[list(front.customdata), "model"])
        assert front.name == f"Pareto front ({model})"
    assert len({f.line.color for f in fronts}) == 2 and len({f.line.dash for f in fronts}) == 2
    explorer.model_dropdown.value = "digits_cnn"
    (front,) = _traces(explorer.figure, PARETO)
    assert front.name == "Pareto front"


def test_cpu_latency_axis_names_the_backend_and_machine_with_p10_p90_bars(real_rows):
    facts = machine_facts()
    frame = pd.DataFrame([dict(r, id=f"r{k}", machine=machine_label(facts), hardware=facts)
                          for k, r in enumerate(real_rows)])
    assert (frame["p10_ms"] <= frame["median_ms"]).all() and (frame["median_ms"] <= frame["p90_ms"]).all()
    fig = tradeoff_figure(frame)
    title = fig.layout.xaxis.title.text
    assert title.startswith("ONNX Runtime CPU median latency (ms)")
    assert f"on {machine_label(facts)} ({facts['cpu']})" in title and "p10–p90" in title
    for trace in _traces(fig, VARIANTS):
        for row_id, x, up, down in zip(trace.customdata, trace.x, trace.error_x.array, trace.error_x.arrayminus):
            row = frame.set_index("id").loc[row_id]
            assert (up, down) == pytest.approx((row["p90_ms"] - x, x - row["p10_ms"]))
    assert fig.layout.xaxis.automargin and fig.layout.yaxis.automargin  # two-line titles are not cut
    old = tradeoff_figure(frame.drop(columns=["p10_ms", "machine", "hardware"]))  # rows written before p10
    assert "machine not recorded" in old.layout.xaxis.title.text
    assert all(v is None for t in _traces(old, VARIANTS) for v in t.error_x.arrayminus)


def test_tensorrt_rows_lead_the_explorer_and_the_axis(table, real_rows):
    trt_id = table.add({**real_rows[0], "variant": "cnn-trt", "backend": "tensorrt"})
    explorer = TradeoffExplorer(table)
    assert explorer.backend_dropdown.value == "tensorrt"
    assert [list(t.customdata) for t in _traces(explorer.figure, VARIANTS)] == [[trt_id]]
    assert explorer.figure.layout.xaxis.title.text.startswith("TensorRT GPU median latency")
    explorer.backend_dropdown.value = "(all)"
    assert explorer.figure.layout.xaxis.title.text.startswith("TensorRT GPU and ONNX Runtime CPU median latency")


def test_the_figure_widgets_synced_state_is_the_figure_as_drawn(table):
    """A browser view made after the explorer was filtered and a variant selected (all in the cell
    that shows it) starts from the synced copy: it must hold the current figure, not the empty one
    the FigureWidget was created with (issue 12: the explorer drew empty in notebook 06)."""
    assert figure_widget_available(), "plotly's FigureWidget needs anywidget, a dependency of the workbench"
    explorer = TradeoffExplorer(table)
    explorer.model_dropdown.value = "digits_cnn"
    int8 = table.filter(model="digits_cnn", precision="INT8").iloc[0]
    explorer.select(int8["id"])
    synced = explorer.figure._widget_data
    assert [t.get("meta") for t in synced] == [t.meta for t in explorer.figure.data]
    ring = next(t for t in synced if t.get("meta") == SELECTED)
    assert list(ring["customdata"]) == [int8["id"]]
    assert explorer.figure._widget_layout["title"]["text"].startswith("digits_cnn — accuracy vs latency")
