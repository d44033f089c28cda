"""Tests of workbench.views.engine_figures on real engine data.

TensorRT tables come from the real trtexec exports in ../shared/fixtures/trt/; ONNX Runtime
tables from the ONNX Runtime backend run on the sample models.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from workbench.analysis.compare import compare_engines
from workbench.analysis.fusion import FOLDED, graph_nodes, node_edges
from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend
from workbench.backends.tensorrt.trt_json import import_trt
from workbench.model import load_model
from workbench.views.engine_figures import (
    NODE_MARKERS,
    compare_figure,
    fusion_graph,
    fusion_table,
    layer_time_bar,
    precision_times,
    shorten,
    time_by_precision,
    time_treemap,
    top_layers,
    topological_depths,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "trt"
SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"
DETAILED = ["resnet18-a100-fp32", "resnet18-a100-fp16", "resnet18-a100-qat", "mobilenet-qat"]


def trt_table(folder: str):
    """Import a detailed fixture with its profile."""
    return import_trt(FIXTURES / folder / "engine.graph.json", FIXTURES / folder / "engine.profile.json")


def yolo_table():
    """The names-only TensorRT 8.5 fixture (no types, precisions or tactics) with its profile."""
    folder = FIXTURES / "yolo-int8-trtexec-8.5"
    return import_trt(folder / "layer_info.json", folder / "profile.json")


def bar_count(figure: go.Figure) -> int:
    return sum(len(trace.x) for trace in figure.data if trace.type == "bar")


def marker_count(figure: go.Figure) -> int:
    return sum(len(trace.x) for trace in figure.data if trace.meta == NODE_MARKERS)


def drawn_bars(figure: go.Figure) -> dict:
    """Label -> value of every bar of a horizontal bar figure, over all its traces."""
    return {label: x for trace in figure.data if trace.type == "bar" for label, x in zip(trace.y, trace.x)}


def slowest_first(table, top=None):
    """The timed rows of a layer table as a time figure must order them: slowest first."""
    rows = table[table["time_ms"].notna()].sort_values("time_ms", ascending=False, kind="stable")
    return rows if top is None else rows.head(top)


@pytest.fixture(scope="module")
def qat():
    return trt_table("resnet18-a100-qat")


@pytest.fixture(scope="module")
def cnn_model():
    return load_model(SAMPLES / "digits_cnn.onnx")


@pytest.fixture(scope="module")
def transformer_model():
    """The transformer as stored, with its 16 Constant nodes (ONNX Runtime folds them away; the
    loader's normalization would make them initializers)."""
    return load_model(SAMPLES / "digits_transformer.onnx", normalize=False)


@pytest.fixture(scope="module")
def cnn_engine():
    return OnnxRuntimeBackend().build(SAMPLES / "digits_cnn.onnx", {"graph_optimization_level": "all"})


@pytest.fixture(scope="module")
def cnn_profiled(cnn_engine):
    inputs = np.load(SAMPLES / "digits_cnn.eval.npz")["input"][:8]
    return cnn_engine.profile({cnn_engine.input_names[0]: inputs}, iterations=5, warmup=1)


@pytest.fixture(scope="module")
def transformer_profiled():
    engine = OnnxRuntimeBackend().build(SAMPLES / "digits_transformer.onnx")
    inputs = np.load(SAMPLES / "digits_transformer.eval.npz")["input"][:8]
    return engine.profile({engine.input_names[0]: inputs}, iterations=5, warmup=1)


# --------------------------------------------------------------------------------------------
# Time figures


@pytest.mark.parametrize("folder", DETAILED)
def test_layer_time_bar_has_a_bar_per_layer(folder):
    table = trt_table(folder)
    figure = layer_time_bar(table)
    assert bar_count(figure) == len(table)
    names = {trace.name for trace in figure.data}
    assert names == set(table["precision"].map(lambda p: p or "unknown"))
    expected = slowest_first(table)
    assert drawn_bars(figure) == dict(zip(expected["name"], expected["time_ms"]))  # each layer its own time
    assert list(figure.layout.yaxis.categoryarray[::-1]) == expected["name"].tolist()  # slowest on top
    for trace in figure.data:  # each bar in its precision's trace
        assert set(trace.y) == set(table.loc[table["precision"].fillna("unknown") == trace.name, "name"])
    assert f"({len(table)} of {len(table)} layers, sum {table['time_ms'].sum():.4f} ms)" in figure.layout.title.text
    # inserted layers are hatched, and only they
    hatched = {label for trace in figure.data for label, p in zip(trace.y, trace.marker.pattern.shape) if p == "/"}
    assert hatched == set(table.loc[table["inserted"], "name"])


def test_layer_time_bar_top_keeps_the_slowest(qat):
    figure = layer_time_bar(qat, top=5)
    assert bar_count(figure) == 5
    shown = sorted((x for trace in figure.data for x in trace.x), reverse=True)
    assert np.allclose(shown, sorted(qat["time_ms"], reverse=True)[:5])
    slowest = figure.layout.yaxis.categoryarray[-1]  # top of the chart
    assert slowest == "conv1.weight + QuantizeLinear_7 + Conv_9"
    hover = [h for trace in figure.data for h in trace.hovertext if slowest in h][0]
    assert "CaskConvolution" in hover and "ampere_fp32_icudnn_int8x4" in hover
    assert "QuantizeLinear_7, Conv_9" in hover and "% of layer time" in hover


def test_layer_time_bar_on_ort_and_names_only_tables(cnn_profiled):
    expected = slowest_first(cnn_profiled)
    figure = layer_time_bar(cnn_profiled)
    assert drawn_bars(figure) == dict(zip(expected["name"], expected["time_ms"]))
    assert list(figure.layout.yaxis.categoryarray[::-1]) == expected["name"].tolist()
    yolo = yolo_table()
    figure = layer_time_bar(yolo, top=20)
    assert bar_count(figure) == 20
    assert [trace.name for trace in figure.data] == ["unknown"]
    expected = slowest_first(yolo, top=20)
    assert list(figure.data[0].x) == expected["time_ms"].tolist()  # the 20 slowest, slowest first
    assert list(figure.layout.yaxis.categoryarray[::-1]) == expected["name"].tolist()


def test_time_figures_refuse_unprofiled_tables(cnn_engine):
    unprofiled = cnn_engine.layers()
    for function in (layer_time_bar, time_treemap, top_layers, time_by_precision):
        with pytest.raises(ValueError, match="'time_ms'.*profile the engine first"):
            function(unprofiled)


@pytest.mark.parametrize("folder", DETAILED)
def test_treemap_values_sum_to_total_time(folder):
    table = trt_table(folder)
    treemap = time_treemap(table).data[0]
    assert math.isclose(sum(treemap.values), table["time_ms"].sum(), rel_tol=1e-9)
    leaves = {i: (parent, value) for i, parent, value in zip(treemap.ids, treemap.parents, treemap.values)
              if i.startswith("layer:")}
    # one leaf per layer (by row position), under its type, with its time
    assert leaves == {f"layer:{k}": (f"type:{row.type}", row.time_ms) for k, row in enumerate(table.itertuples())}
    types = [i for i, parent in zip(treemap.ids, treemap.parents) if parent == "all"]
    assert types == [f"type:{t}" for t in dict.fromkeys(table["type"])]  # in execution order


def test_top_layers_table(qat):
    top = top_layers(qat, k=10)
    assert top["rank"].tolist() == list(range(1, 11))
    assert top["time_ms"].is_monotonic_decreasing
    assert top.iloc[0]["name"] == "conv1.weight + QuantizeLinear_7 + Conv_9"
    assert math.isclose(top.iloc[0]["time_ms"], qat["time_ms"].max())
    assert math.isclose(top["cumulative_share"].iloc[-1], top["share"].sum())
    assert len(top_layers(qat, k=100)) == len(qat)


@pytest.mark.parametrize("folder", DETAILED)
def test_time_by_precision_totals_equal_table_total(folder):
    table = trt_table(folder)
    total = table["time_ms"].sum()
    sums = table.groupby(table["precision"].fillna("unknown"))["time_ms"].sum().sort_values(ascending=False)
    bars = time_by_precision(table).data[0]
    assert list(bars.x) == sums.index.tolist()  # categories, slowest first
    assert np.allclose(bars.y, sums.tolist()) and math.isclose(sum(bars.y), total, rel_tol=1e-9)
    assert list(bars.text) == [f"{100 * t / total:.1f}%" for t in sums]
    pie = time_by_precision(table, kind="pie").data[0]
    assert list(pie.labels) == sums.index.tolist() and np.allclose(pie.values, sums.tolist())
    times = precision_times(table)
    assert times["layers"].sum() == len(table)
    assert math.isclose(times["share"].sum(), 100.0)


def test_precision_times_of_qat(qat):
    times = precision_times(qat).set_index("precision")
    assert times.loc["INT8", "layers"] == 22
    assert times.index[0] == "INT8"  # most of the time is spent in INT8 layers
    with pytest.raises(ValueError, match="kind"):
        time_by_precision(qat, kind="donut")


# --------------------------------------------------------------------------------------------
# Fusion


def test_fusion_graph_has_a_marker_per_onnx_node(cnn_engine, cnn_model):
    table = cnn_engine.layers()  # no time columns: the graph still works
    figure = fusion_graph(table, cnn_model)
    assert marker_count(figure) == len(cnn_model.node_names) == 19
    node_traces = [t for t in figure.data if t.meta == NODE_MARKERS]
    assert len(node_traces) == 9  # one per layer that runs ONNX nodes; none folded
    # each layer's trace holds exactly the nodes that layer runs
    drawn = {t.name: {h.split("</b>")[0].removeprefix("<b>") for h in t.hovertext} for t in node_traces}
    runs = {shorten(row.name, 40): set(row.onnx_nodes) for row in table.itertuples() if row.onnx_nodes}
    assert drawn == runs
    hovers = [h for t in node_traces for h in t.hovertext]
    bn1 = next(h for h in hovers if "/features/bn1/BatchNormalization" in h)
    assert "status: fused" in bn1 and "CPUExecutionProvider" in bn1 and "NCHWc" in bn1
    assert "1 inserted layers" in figure.layout.title.text


def test_fusion_graph_greys_folded_nodes(transformer_profiled, transformer_model):
    figure = fusion_graph(transformer_profiled, transformer_model)
    assert marker_count(figure) == len(transformer_model.node_names) == 81
    folded = [t for t in figure.data if t.meta == NODE_MARKERS and t.name == FOLDED]
    assert len(folded) == 1 and len(folded[0].x) == 16
    assert set(folded[0].marker.symbol) == {"x"}
    assert any("layer time:" in h for t in figure.data if t.meta == NODE_MARKERS for h in t.hovertext)


def test_fusion_graph_layout_follows_topological_order(transformer_model):
    nodes = graph_nodes(transformer_model)
    edges = node_edges(nodes)
    depths = topological_depths(len(nodes), edges)
    assert all(depths[target] > depths[source] for source, target in edges)
    assert min(depths) == 0


def test_fusion_table(transformer_profiled, transformer_model):
    table = fusion_table(transformer_profiled, transformer_model)
    layer_rows = table[table["layer"].notna()]
    assert layer_rows["layer"].tolist() == transformer_profiled["name"].tolist()
    folded = table[table["status"] == FOLDED]
    assert len(folded) == 16 and set(o for ops in folded["op_types"] for o in ops) == {"Constant"}
    counts = table["status"].value_counts().to_dict()
    assert counts["inserted"] == int(transformer_profiled["inserted"].sum())
    # each node of the model is listed once, by its layer or as folded away
    listed = [node for nodes in table["onnx_nodes"] for node in nodes]
    assert sorted(listed) == sorted(transformer_model.node_names)
    gelu = layer_rows[layer_rows["type"] == "com.microsoft.BiasGelu"].iloc[0]
    assert gelu["status"] == "fused" and "Erf" in gelu["op_types"]


def test_fusion_table_without_model(qat):
    table = fusion_table(qat)
    assert len(table) == len(qat)
    status = table.set_index("layer")["status"]
    assert status["Reformatting CopyNode for Output Tensor 0 to MaxPool_12"] == "inserted"
    assert status["copied_squeeze_after_(Unnamed Layer* 307) [ElementWise]"] == "no onnx node"
    assert status["layer1.0.conv2.weight + QuantizeLinear_32 + Conv_34 + Add_36 + Relu_37"] == "fused"


# --------------------------------------------------------------------------------------------
# Comparison


def test_compare_figure_fp32_fp16():
    fp32, fp16 = trt_table("resnet18-a100-fp32"), trt_table("resnet18-a100-fp16")
    comparison = compare_engines(fp32, fp16, "fp32", "fp16")
    figure = compare_figure(comparison)
    bars = figure.data[0]
    nonzero = comparison[(comparison["time_a"] != 0) | (comparison["time_b"] != 0)]
    assert len(bars.x) == len(nonzero)
    assert list(bars.x) == nonzero["diff"].tolist()  # each group's B - A, in execution order
    assert [label.split(" ")[0] for label in bars.y] == [f"G{g}" for g in nonzero["group"]]
    assert list(bars.marker.color) == ["#2ca02c" if d < 0 else "#d62728" for d in nonzero["diff"]]
    assert math.isclose(sum(bars.x), fp16["time_ms"].sum() - fp32["time_ms"].sum(), rel_tol=1e-9)
    assert "2.1238" in figure.layout.title.text and "1.0168" in figure.layout.title.text
    assert len(compare_figure(comparison, hide_zero=False).data[0].x) == len(comparison)
    top = compare_figure(comparison, top=3).data[0]
    assert len(top.x) == 3
    assert math.isclose(min(top.x), comparison["diff"].min())  # Conv_0 + Relu_1 gains most


def test_compare_figure_ort(cnn_profiled):
    engine = OnnxRuntimeBackend().build(SAMPLES / "digits_cnn.onnx", {"graph_optimization_level": "disable"})
    inputs = np.load(SAMPLES / "digits_cnn.eval.npz")["input"][:8]
    disabled = engine.profile({engine.input_names[0]: inputs}, iterations=5, warmup=1)
    comparison = compare_engines(disabled, cnn_profiled, "disable", "all")
    figure = compare_figure(comparison)
    assert math.isclose(sum(figure.data[0].x), comparison["diff"].sum())
    assert figure.layout.title.text.startswith("disable → all: layer time")  # names in the numbers' order


# --------------------------------------------------------------------------------------------
# Issue 12: CPU times say they are CPU times, with their spread


def test_ort_layer_times_are_labelled_cpu_times_with_their_run_to_run_spread(cnn_profiled):
    from workbench.tables.machine import cpu_name

    rows = cnn_profiled[cnn_profiled["time_ms"].notna()]
    assert (rows["time_p10_ms"] <= rows["median_ms"]).all() and (rows["median_ms"] <= rows["time_p90_ms"]).all()
    figure = layer_time_bar(cnn_profiled)
    assert figure.layout.xaxis.title.text == "ONNX Runtime CPU mean time per inference (ms)"
    title = figure.layout.title.text
    assert title.startswith("Time per layer, ONNX Runtime CPU (") and f"on {cpu_name()}" in title
    assert "5 profiled runs" in title and "p10–p90" in title and "swing from run to run" in title
    by_name = rows.set_index("name")
    for trace in figure.data:
        for name, mean, up, down in zip(trace.y, trace.x, trace.error_x.array, trace.error_x.arrayminus):
            layer = by_name.loc[name]
            assert up == pytest.approx(max(layer["time_p90_ms"] - mean, 0.0))
            assert down == pytest.approx(max(mean - layer["time_p10_ms"], 0.0))
    per_precision = time_by_precision(cnn_profiled)
    assert per_precision.layout.yaxis.title.text.startswith("ONNX Runtime CPU")
    if len(per_precision.data[0].x) == 1:  # one bar: the figure says it compares nothing
        assert "nothing to compare across precisions" in per_precision.layout.title.text
    assert "ONNX Runtime CPU" in time_treemap(cnn_profiled).layout.title.text
    compared = compare_figure(compare_engines(cnn_profiled, cnn_profiled, label_a="a", label_b="b"))
    assert compared.layout.xaxis.title.text.startswith(f"ONNX Runtime CPU ({cpu_name()}) time difference b - a")
    assert "swing from run to run" in compared.layout.title.text


def test_imported_tensorrt_times_are_not_called_cpu_times(qat):
    figure = layer_time_bar(qat)
    assert figure.layout.xaxis.title.text == "TensorRT GPU (imported) mean time per inference (ms)"
    assert "CPU" not in figure.layout.title.text
    assert all(trace.error_x.array is None for trace in figure.data)  # the export has no spread to draw
    assert "nothing to compare" not in time_by_precision(qat).layout.title.text  # QAT: several precisions
    compared = compare_figure(compare_engines(trt_table("resnet18-a100-fp32"), trt_table("resnet18-a100-fp16")))
    assert compared.layout.xaxis.title.text.startswith("TensorRT GPU (imported) time difference")
    assert "CPU" not in compared.layout.title.text
