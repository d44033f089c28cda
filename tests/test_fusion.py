"""Tests of workbench.analysis.fusion and workbench.analysis.compare on real engine data.

TensorRT tables come from the real trtexec exports in ../shared/fixtures/trt/ (see its
README); ONNX Runtime tables from the ONNX Runtime backend run on the sample models.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from workbench.analysis.compare import (
    MATCHED,
    UNMATCHED_A,
    UNMATCHED_B,
    compare_engines,
    compare_totals,
)
from workbench.analysis.fusion import (
    FOLDED,
    FUSED,
    KEPT,
    expand_node_ranges,
    fusion_groups,
    fusion_summary,
    graph_nodes,
    layer_to_nodes,
    node_edges,
    node_to_layer,
    nodes_between,
)
from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend
from workbench.backends.tensorrt.trt_json import import_trt
from workbench.model import load_model

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "trt"
SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"
QAT_CONV_34_LAYER = "layer1.0.conv2.weight + QuantizeLinear_32 + Conv_34 + Add_36 + Relu_37"


def trt_table(folder: str):
    """Import a detailed fixture with its profile."""
    return import_trt(FIXTURES / folder / "engine.graph.json", FIXTURES / folder / "engine.profile.json")


def ort_profile(model: str, level: str, iterations: int = 5):
    """Profile a sample model on ONNX Runtime at an optimization level."""
    engine = OnnxRuntimeBackend().build(SAMPLES / f"{model}.onnx", {"graph_optimization_level": level})
    inputs = np.load(SAMPLES / f"{model}.eval.npz")["input"][:8]
    return engine.profile({engine.input_names[0]: inputs}, iterations=iterations, warmup=1)


@pytest.fixture(scope="module")
def qat():
    return trt_table("resnet18-a100-qat")


@pytest.fixture(scope="module")
def fp32():
    return trt_table("resnet18-a100-fp32")


@pytest.fixture(scope="module")
def fp16():
    return trt_table("resnet18-a100-fp16")


@pytest.fixture(scope="module")
def cnn_model():
    return load_model(SAMPLES / "digits_cnn.onnx")


@pytest.fixture(scope="module")
def transformer_model():
    # as stored: its 16 Constant nodes are what ORT folds (the normalizer would fold them on load)
    return load_model(SAMPLES / "digits_transformer.onnx", normalize=False)


@pytest.fixture(scope="module")
def cnn_tables():
    return {level: ort_profile("digits_cnn", level) for level in ("disable", "all")}


@pytest.fixture(scope="module")
def transformer_tables():
    return {level: ort_profile("digits_transformer", level) for level in ("disable", "all")}


# --------------------------------------------------------------------------------------------
# layer_to_nodes / node_to_layer on TensorRT


def test_qat_conv_34_is_fused_into_its_conv_add_relu_layer(qat):
    per_node = node_to_layer(qat).set_index("node")
    assert per_node.loc["Conv_34", "status"] == FUSED
    assert per_node.loc["Conv_34", "layer"] == QAT_CONV_34_LAYER
    assert per_node.loc["Conv_34", "layer_type"] == "CaskConvolution"
    for node in ("QuantizeLinear_32", "Add_36", "Relu_37"):
        assert per_node.loc[node, "layer"] == QAT_CONV_34_LAYER
    # a Q/DQ Reformat layer runs its QuantizeLinear alone
    assert per_node.loc["QuantizeLinear_2", "status"] == KEPT
    assert per_node.loc["MaxPool_12", "status"] == KEPT


def test_qat_every_node_appears_exactly_once(qat):
    per_node = node_to_layer(qat)
    mentioned = {node for nodes in qat["onnx_nodes"] for node in nodes}
    assert per_node["node"].is_unique
    assert set(per_node["node"]) == mentioned
    assert per_node["status"].value_counts().to_dict() == {FUSED: 58, KEPT: 12}
    assert per_node.attrs["unknown_nodes"] == []


def test_layer_to_nodes_has_a_row_per_pair_and_one_per_nodeless_layer(qat):
    pairs = layer_to_nodes(qat)
    expected_rows = sum(max(1, len(nodes)) for nodes in qat["onnx_nodes"])
    assert len(pairs) == expected_rows
    inserted = pairs[pairs["inserted"]]
    assert len(inserted) == int(qat["inserted"].sum()) == 3
    assert inserted["node"].isna().all()
    conv_34 = pairs[pairs["layer"] == QAT_CONV_34_LAYER]
    assert conv_34["node"].tolist() == ["QuantizeLinear_32", "Conv_34", "Add_36", "Relu_37"]
    assert conv_34["fused"].all() and (conv_34["node_count"] == 4).all()


def test_inserted_layers_run_no_node(qat, fp32, fp16):
    for table in (qat, fp32, fp16):
        groups = fusion_groups(table)
        assert (groups.loc[groups["inserted"], "node_count"] == 0).all()
        assert len(groups) == len(table)


def test_node_run_by_two_layers_keeps_both(fp32):
    # TensorRT runs Gemm_48 as a convolution plus a reshape helper named after it
    row = node_to_layer(fp32).set_index("node").loc["Gemm_48"]
    assert row["layers"] == ["Gemm_48", "reshape_after_Gemm_48"]
    assert row["layer"] == "Gemm_48"
    assert row["status"] == KEPT


def test_node_names_list_reports_folded_and_unknown_nodes(fp32):
    mentioned = [node for nodes in fp32["onnx_nodes"] for node in nodes]
    names = ["Flatten_47"] + [n for n in dict.fromkeys(mentioned) if n != "Conv_0"]
    per_node = node_to_layer(fp32, names)
    assert per_node["node"].tolist() == names
    assert per_node.set_index("node").loc["Flatten_47", "status"] == FOLDED
    assert per_node.set_index("node").loc["Flatten_47", "layer"] is None
    assert per_node.attrs["unknown_nodes"] == ["Conv_0"]


def test_fusion_summary_counts_qat(qat):
    assert fusion_summary(qat) == {
        "layers": 37,
        "fused_layers": 21,
        "inserted_layers": 3,
        "layers_without_nodes": 4,  # 3 reformats + TensorRT's copied_squeeze helper
        "nodes": 70,
        "nodes_kept": 12,
        "nodes_fused": 58,
        "nodes_folded": 0,
        "unknown_nodes": 0,
    }


def test_fusion_groups_describe_formats_and_tactics(qat):
    groups = fusion_groups(qat).set_index("layer")
    conv = groups.loc[QAT_CONV_34_LAYER]
    assert conv["onnx_nodes"] == ["QuantizeLinear_32", "Conv_34", "Add_36", "Relu_37"]
    assert conv["fused"] and not conv["inserted"]
    assert conv["tactic"].startswith("sm80_xmma_fprop_implicit_gemm")
    assert conv["input_formats"].startswith("INT8 CHW32")
    quantize = groups.loc["QuantizeLinear_2"]
    assert quantize["input_formats"] == "FP32 LINEAR"
    assert quantize["output_formats"] == "INT8 CHW4"
    assert math.isclose(groups["time_ms"].sum(), qat["time_ms"].sum())


def test_myelin_range_names_only_its_end_nodes_without_a_model():
    yolo = import_trt(FIXTURES / "yolo-int8-trtexec-8.5" / "layer_info.json")
    per_node = node_to_layer(yolo).set_index("node")
    region = "{ForeignNode[/Split_2.../Concat_1]}"
    assert per_node.loc["/Split_2", "layer"] == region
    assert per_node.loc["/Concat_1", "layer"] == region
    assert per_node.loc["/Split_2", "status"] == FUSED


# --------------------------------------------------------------------------------------------
# node_to_layer on ONNX Runtime, with the model


def test_ort_all_fuses_conv_bn_relu(cnn_tables, cnn_model):
    per_node = node_to_layer(cnn_tables["all"], cnn_model)
    assert per_node["node"].tolist() == cnn_model.node_names
    assert per_node["op_type"].tolist() == [n.op_type for n in cnn_model.proto.graph.node]
    by_node = per_node.set_index("node")
    conv1_layer = by_node.loc["/features/conv1/Conv", "layer"]
    assert by_node.loc["/features/bn1/BatchNormalization", "layer"] == conv1_layer
    assert by_node.loc["/features/relu1/Relu", "layer"] == conv1_layer
    assert by_node.loc["/features/conv1/Conv", "layer_type"].endswith("Conv")
    assert per_node["status"].value_counts().to_dict() == {FUSED: 15, KEPT: 4}
    summary = fusion_summary(cnn_tables["all"], cnn_model)
    assert summary["fused_layers"] == 5
    assert summary["inserted_layers"] == 1  # the NCHWc ReorderOutput
    assert summary["nodes"] == 19 and summary["nodes_folded"] == 0


def test_ort_disable_keeps_every_node_in_a_layer_of_its_own(cnn_tables, cnn_model):
    per_node = node_to_layer(cnn_tables["disable"], cnn_model)
    assert (per_node["status"] == KEPT).all()
    assert per_node["layer"].tolist() == cnn_model.node_names


def test_ort_transformer_folds_constants(transformer_tables, transformer_model):
    table = transformer_tables["all"]
    per_node = node_to_layer(table, transformer_model)
    assert len(per_node) == len(transformer_model.node_names) == 81
    folded = per_node[per_node["status"] == FOLDED]
    assert sorted(folded["node"]) == sorted(table.attrs["folded_onnx_nodes"])
    assert set(folded["op_type"]) == {"Constant"}
    by_node = per_node.set_index("node")
    gelu_layer = by_node.loc["/blocks/blocks.0/mlp/gelu/Erf", "layer"]
    assert by_node.loc["/blocks/blocks.0/mlp/gelu/Erf", "layer_type"] == "com.microsoft.BiasGelu"
    assert by_node.loc["/blocks/blocks.0/mlp/fc1/Add", "layer"] == gelu_layer
    normalized = load_model(SAMPLES / "digits_transformer.onnx")  # Constants folded on load
    assert len(normalized.node_names) == 81 - len(folded)
    assert (node_to_layer(table, normalized)["status"] != FOLDED).all()


def test_unnamed_nodes_get_the_backend_names(cnn_model):
    unnamed = onnx.ModelProto()
    unnamed.CopyFrom(cnn_model.proto)
    for node in unnamed.graph.node:
        node.name = ""
    table = OnnxRuntimeBackend().build(unnamed, {"graph_optimization_level": "all"}).layers()
    per_node = node_to_layer(table, unnamed)
    assert per_node["node"].tolist()[0] == "Conv_0"
    assert per_node.attrs["unknown_nodes"] == []
    assert per_node["status"].value_counts().to_dict() == {FUSED: 15, KEPT: 4}
    assert all(node.name == "" for node in unnamed.graph.node)  # the model is not modified


def test_range_expansion_covers_every_node_on_a_path(transformer_model, transformer_tables):
    nodes = graph_nodes(transformer_model)
    gelu = "/blocks/blocks.0/mlp/gelu/"
    assert nodes_between(nodes, gelu + "Div", gelu + "Mul_1") == [
        gelu + "Div", gelu + "Erf", gelu + "Add", gelu + "Mul", gelu + "Mul_1"
    ]
    # a myelin-like layer over the gelu, in an otherwise real table
    table = transformer_tables["disable"].copy()
    table["onnx_nodes_are_range"] = False
    gelu_rows = table["onnx_nodes"].map(lambda ns: ns[0].startswith(gelu))
    first = table.index[gelu_rows][0]
    table.at[first, "onnx_nodes"] = [gelu + "Div", gelu + "Mul_1"]
    table.at[first, "onnx_nodes_are_range"] = True
    table = table.drop(index=table.index[gelu_rows][1:])
    expanded = expand_node_ranges(table, transformer_model)
    assert len(expanded.at[first, "onnx_nodes"]) == 5
    per_node = node_to_layer(table, transformer_model).set_index("node")
    assert per_node.loc[gelu + "Erf", "status"] == FUSED


def test_node_edges_follow_tensors(cnn_model):
    nodes = graph_nodes(cnn_model)
    edges = node_edges(nodes)
    assert len(edges) == len(nodes) - 1  # the digits CNN is a chain
    assert all(target == source + 1 for source, target in edges)


# --------------------------------------------------------------------------------------------
# compare_engines


def assert_every_layer_once(comparison, a, b):
    """Every layer of each table is in exactly one row, and the times add up."""
    layers_a = [name for names in comparison["layers_a"] for name in names]
    layers_b = [name for names in comparison["layers_b"] for name in names]
    assert sorted(layers_a) == sorted(a["name"])
    assert sorted(layers_b) == sorted(b["name"])
    assert math.isclose(comparison["time_a"].sum(), a["time_ms"].sum(), rel_tol=1e-9)
    assert math.isclose(comparison["time_b"].sum(), b["time_ms"].sum(), rel_tol=1e-9)


def assert_groups_are_minimal_and_disjoint(comparison, a, b):
    """A matched group's A layers and B layers run exactly its nodes; nodes are in one group."""
    nodes_of_a = dict(zip(a["name"], a["onnx_nodes"]))
    nodes_of_b = dict(zip(b["name"], b["onnx_nodes"]))
    seen = set()
    for row in comparison.itertuples(index=False):
        assert not seen & set(row.onnx_nodes)
        seen |= set(row.onnx_nodes)
        if row.status == MATCHED:
            covered_a = {n for layer in row.layers_a for n in nodes_of_a[layer]}
            covered_b = {n for layer in row.layers_b for n in nodes_of_b[layer]}
            assert covered_a == covered_b == set(row.onnx_nodes)
        if row.status in (UNMATCHED_A, UNMATCHED_B):
            assert row.onnx_nodes == [] and len(row.layers_a) + len(row.layers_b) == 1


def test_compare_resnet18_fp32_fp16(fp32, fp16):
    comparison = compare_engines(fp32, fp16, "fp32", "fp16")
    assert_every_layer_once(comparison, fp32, fp16)
    assert_groups_are_minimal_and_disjoint(comparison, fp32, fp16)
    assert comparison["group"].tolist() == list(range(len(comparison)))
    statuses = comparison["status"].value_counts().to_dict()
    assert statuses == {MATCHED: 23, UNMATCHED_A: 8, UNMATCHED_B: 12}
    first_conv = comparison[comparison["onnx_nodes"].map(lambda ns: ns == ["Conv_0", "Relu_1"])].iloc[0]
    assert first_conv["layers_a"] == first_conv["layers_b"] == ["Conv_0 + Relu_1"]
    assert math.isclose(first_conv["time_a"], 0.52224)
    assert math.isclose(first_conv["time_b"], 0.111616)
    assert math.isclose(first_conv["diff"], 0.111616 - 0.52224)
    assert math.isclose(first_conv["ratio"], 0.111616 / 0.52224)
    gemm = comparison[comparison["onnx_nodes"].map(lambda ns: ns == ["Gemm_48"])].iloc[0]
    assert gemm["layers_a"] == gemm["layers_b"] == ["Gemm_48", "reshape_after_Gemm_48"]
    # the first row is the reformat FP16 inserts before its first convolution
    assert comparison.iloc[0]["status"] == UNMATCHED_B
    assert comparison.attrs["label_a"] == "fp32" and comparison.attrs["label_b"] == "fp16"


def test_compare_totals_fp32_fp16(fp32, fp16):
    totals = compare_totals(fp32, fp16, "fp32", "fp16")
    assert math.isclose(totals["total_a"], 2.123776, rel_tol=1e-9)
    assert math.isclose(totals["total_b"], 1.016832, rel_tol=1e-9)
    assert math.isclose(totals["matched_a"] + totals["unmatched_a"], totals["total_a"])
    assert math.isclose(totals["matched_b"] + totals["unmatched_b"], totals["total_b"])
    # the only timed unmatched layers: fp32's MaxPool output reformat; fp16's input and
    # output reformats
    assert math.isclose(totals["unmatched_a"], 0.045056, rel_tol=1e-6)
    assert math.isclose(totals["unmatched_b"], 0.080896 + 0.007168, rel_tol=1e-6)
    assert totals["matched_groups"] == 23
    assert totals["ratio"] < 0.5


def test_compare_ort_disable_vs_all(cnn_tables):
    a, b = cnn_tables["disable"], cnn_tables["all"]
    comparison = compare_engines(a, b, "disable", "all")
    assert_every_layer_once(comparison, a, b)
    assert_groups_are_minimal_and_disjoint(comparison, a, b)
    assert comparison["status"].value_counts().to_dict() == {MATCHED: 9, UNMATCHED_B: 1}
    conv1 = comparison[comparison["onnx_nodes"].map(lambda ns: "/features/conv1/Conv" in ns)].iloc[0]
    assert conv1["layers_a"] == [
        "/features/conv1/Conv", "/features/bn1/BatchNormalization", "/features/relu1/Relu"
    ]
    assert len(conv1["layers_b"]) == 1
    reorder = comparison[comparison["status"] == UNMATCHED_B].iloc[0]
    assert reorder["types_b"] == ["com.microsoft.nchwc.ReorderOutput"]


def test_compare_ort_transformer_groups_skip_layer_norm(transformer_tables):
    a, b = transformer_tables["disable"], transformer_tables["all"]
    comparison = compare_engines(a, b, "disable", "all")
    assert_every_layer_once(comparison, a, b)
    assert_groups_are_minimal_and_disjoint(comparison, a, b)
    skip = comparison[comparison["types_b"].map(lambda ts: ts == ["com.microsoft.SkipLayerNormalization"])]
    assert len(skip) == 1
    assert sorted(skip.iloc[0]["layers_a"]) == sorted(
        ["/blocks/blocks.1/mlp/fc2/Add", "/blocks/blocks.1/Add_1", "/norm/LayerNormalization"]
    )


def test_compare_needs_profiled_tables(cnn_tables):
    unprofiled = OnnxRuntimeBackend().build(SAMPLES / "digits_cnn.onnx").layers()
    with pytest.raises(ValueError, match="time_ms.*profile the engine first"):
        compare_engines(cnn_tables["disable"], unprofiled, "disable", "all")
