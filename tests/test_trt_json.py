"""Tests of workbench.backends.tensorrt.trt_json against real TensorRT outputs.

The fixtures in ../shared/fixtures/trt/ were written by real TensorRT 8.x runs (see its
README). No real TensorRT 10/11 file exists there. ``tests/fixtures/trt11/engine.graph.json``
is a TensorRT 11 export written by hand with TensorRT's documented spellings (``I/O Tensors``
with ``IOMode``/``DataType``, ``Metadata`` with ``[ONNX Layer: ...]``; its README gives the
sources); the other tests of ``Metadata`` and of separate ``Datatype`` + ``Format`` keys build
their inputs by transforming a real 8.x fixture in the test, and say how.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
from pathlib import Path

import pandas as pd
import pytest

import workbench
import workbench.backends
from workbench.backends.tensorrt import trt_json
from workbench.backends.tensorrt.trt_json import (
    TrtJsonError,
    add_profile,
    format_without_dtype,
    import_trt,
    layout_label,
    normalize_dtype,
    onnx_nodes_from_metadata,
    onnx_nodes_from_name,
    parse_tensor,
    precision_warnings,
    read_layers,
    read_times,
    summarize_times,
)
from workbench.samples import trt_example_dir
from workbench.tables.engine_table import LAYER_COLUMNS, PROFILE_COLUMNS

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "trt"
DETAILED_FOLDERS = {
    # folder: number of layers, counted by hand in engine.graph.json
    "resnet18-a100-fp32": 32,
    "resnet18-a100-fp16": 36,
    "resnet18-a100-qat": 37,
    "resnet18-a100-qat-residual": 26,
    "mobilenet-qat": 73,
    "mobilenet-v2-residuals-qat": 58,
}
YOLO = FIXTURES / "yolo-int8-trtexec-8.5"
QAT_FUSED = "layer1.0.conv2.weight + QuantizeLinear_32 + Conv_34 + Add_36 + Relu_37"


def read_json(path: Path):
    return json.loads(path.read_text())


def graph(folder: str) -> Path:
    return FIXTURES / folder / "engine.graph.json"


def profile(folder: str) -> Path:
    return FIXTURES / folder / "engine.profile.json"


def row(table: pd.DataFrame, name: str) -> pd.Series:
    matches = table[table["name"] == name]
    assert len(matches) == 1, f"{name!r} found {len(matches)} times"
    return matches.iloc[0]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return {folder: import_trt(graph(folder), profile(folder)) for folder in DETAILED_FOLDERS}


@pytest.fixture(scope="module")
def yolo() -> pd.DataFrame:
    return import_trt(YOLO / "layer_info.json", YOLO / "profile.json")


# ------------------------------------------------------------------------------------------
# Every detailed fixture


@pytest.mark.parametrize("folder", sorted(DETAILED_FOLDERS))
def test_layer_count_matches_raw_json_and_known_number(tables, folder):
    raw_layers = read_json(graph(folder))["Layers"]
    table = tables[folder]
    assert len(table) == len(raw_layers) == DETAILED_FOLDERS[folder]
    assert list(table["name"]) == [layer["Name"] for layer in raw_layers]


@pytest.mark.parametrize("folder", sorted(DETAILED_FOLDERS))
def test_table_has_schema_and_attrs(tables, folder):
    table = tables[folder]
    assert set(LAYER_COLUMNS) | set(PROFILE_COLUMNS) <= set(table.columns)
    assert set(table["source"]) == {"trt-json"}
    assert table.attrs["verbosity"] == "detailed"
    assert table.attrs["warnings"] == []
    assert table.attrs["bindings"] == read_json(graph(folder))["Bindings"]
    assert table.attrs["io_tensors"] == table.attrs["bindings"]


@pytest.mark.parametrize("folder", sorted(DETAILED_FOLDERS))
def test_profile_shares_sum_to_100_and_checks_pass(tables, folder):
    table = tables[folder]
    raw_profile = read_json(profile(folder))
    assert table["share"].sum() == pytest.approx(100.0)
    assert table["trt_percentage"].sum() == pytest.approx(100.0, abs=1e-3)
    assert table["time_ms"].sum() == pytest.approx(sum(r["averageMs"] for r in raw_profile[1:]))
    checks = table.attrs["profile_checks"]
    assert checks["ok"] and checks["count"] == raw_profile[0]["count"]
    assert table.attrs["profile_mismatches"] == {"profile_without_layer": [], "layers_without_profile": []}


@pytest.mark.parametrize("folder", sorted(DETAILED_FOLDERS))
def test_profile_joined_by_name(tables, folder):
    table = tables[folder].set_index("name")
    for record in read_json(profile(folder))[1:]:
        assert table.loc[record["name"], "time_ms"] == pytest.approx(record["averageMs"])
        assert table.loc[record["name"], "median_ms"] == pytest.approx(record["medianMs"])


@pytest.mark.parametrize("folder", sorted(DETAILED_FOLDERS))
def test_weighted_layers_precision_is_weights_type(tables, folder):
    table = tables[folder]
    expected = {"Float": "FP32", "Half": "FP16", "Int8": "INT8"}
    for layer in read_json(graph(folder))["Layers"]:
        weights = layer.get("Weights") or layer.get("ConvWeights")
        if weights:
            assert row(table, layer["Name"])["precision"] == expected[weights["Type"]]


def test_profile_order_does_not_matter():
    raw = read_json(profile("resnet18-a100-qat"))
    reversed_profile = [raw[0]] + raw[1:][::-1]
    table = import_trt(graph("resnet18-a100-qat"), reversed_profile)
    assert row(table, QAT_FUSED)["time_ms"] == pytest.approx(0.036864)  # its averageMs in the file
    assert table.attrs["profile_checks"]["ok"]


# ------------------------------------------------------------------------------------------
# Per-fixture facts


def test_resnet18_fp32(tables):
    table = tables["resnet18-a100-fp32"]
    fused = row(table, "Conv_5 + Add_6 + Relu_7")
    assert fused["onnx_nodes"] == ["Conv_5", "Add_6", "Relu_7"]
    assert fused["precision"] == "FP32" and fused["type"] == "CaskConvolution"
    assert fused["tactic"].startswith("sm80_xmma_fprop_implicit_gemm")
    first = row(table, "Conv_0 + Relu_1")
    assert first["time_ms"] == pytest.approx(0.52224)
    assert first["share"] == pytest.approx(100 * 0.52224 / 2.123776)
    assert first["trt_percentage"] == pytest.approx(24.5902)
    # NoOp layers named "Reformatting CopyNode ..." are TensorRT's, like the Reformat one.
    inserted = table[table["inserted"]]
    assert len(inserted) == 8
    assert all(name.startswith("Reformatting CopyNode") for name in inserted["name"])
    assert all(nodes == [] for nodes in inserted["onnx_nodes"])
    # a helper layer the ONNX parser made for Gemm_48 is attributed to Gemm_48
    assert row(table, "reshape_after_Gemm_48")["onnx_nodes"] == ["Gemm_48"]
    # "Channel major FP32 format"
    assert fused["inputs"][0]["dtype"] == "FP32" and fused["inputs"][0]["layout"] == "HWC"
    assert fused["inputs"][0]["shape"] == [32, 64, 56, 56]
    # "Channel major FP32 format where channel % 4 == 0"
    assert row(table, "Conv_35 + Relu_36")["inputs"][0]["layout"] == "HWC4"


def test_resnet18_fp16_conv_layers_are_fp16(tables):
    table = tables["resnet18-a100-fp16"]
    convolutions = table[table["type"] == "CaskConvolution"]
    assert len(convolutions) == 21
    assert set(convolutions["precision"]) == {"FP16"}
    assert set(convolutions["weights_dtype"]) == {"FP16"}
    first = row(table, "Reformatting CopyNode for Input Tensor 0 to Conv_0 + Relu_1")
    assert first["inserted"] and first["origin"] == "REFORMAT"
    assert first["input_precision"] == "FP32" and first["output_precision"] == "FP16"
    assert first["inputs"][0]["layout"] == "LINEAR"
    assert first["outputs"][0]["format"] == "Channel major where channel % 4 == 0"
    assert row(table, "Conv_0 + Relu_1")["onnx_nodes"] == ["Conv_0", "Relu_1"]
    assert precision_warnings(table, "FP16").empty


def test_resnet18_qat(tables):
    table = tables["resnet18-a100-qat"]
    fused = row(table, QAT_FUSED)
    assert fused["onnx_nodes"] == ["QuantizeLinear_32", "Conv_34", "Add_36", "Relu_37"]
    assert fused["precision"] == "INT8"
    # the residual input (Add_36) arrives in FP16
    assert fused["input_precision"] == "FP16+INT8"
    assert [t["dtype"] for t in fused["inputs"]] == ["INT8", "FP16"]
    assert fused["inputs"][0]["layout"] == "CHW32"
    assert not fused["inserted"]
    # The Q/DQ Reformat implements ONNX node QuantizeLinear_2: not inserted.
    quantize = row(table, "QuantizeLinear_2")
    assert quantize["type"] == "Reformat" and quantize["origin"] == "QDQ"
    assert not quantize["inserted"] and quantize["onnx_nodes"] == ["QuantizeLinear_2"]
    assert quantize["output_precision"] == "INT8"
    assert row(table, "Reformatting CopyNode for Output Tensor 0 to MaxPool_12")["inserted"]
    # A NoOp copy whose target name contains "(Unnamed Layer* ...)" is still inserted.
    copy_node = table[table["name"].str.startswith("Reformatting CopyNode for Input Tensor 0 to fc.weight")]
    assert len(copy_node) == 1 and copy_node.iloc[0]["inserted"]
    fc = table[table["name"].str.startswith("fc.weight + QuantizeLinear_255")].iloc[0]
    assert fc["onnx_nodes"] == ["QuantizeLinear_255", "Gemm_257"]
    assert fc["precision"] == "INT8"
    assert int(table["inserted"].sum()) == 3  # two REFORMAT Reformats and one NoOp copy
    assert int((table["origin"] == "QDQ").sum()) == 10
    assert precision_warnings(table, "INT8").empty


def test_resnet18_qat_residual(tables):
    table = tables["resnet18-a100-qat-residual"]
    conv_act_pool = row(table, "conv1.weight + QuantizeLinear_7 + Conv_9 + MaxPool_12")
    assert conv_act_pool["type"] == "ConvActPool"
    assert conv_act_pool["precision"] == "INT8"  # from its "ConvWeights"
    assert conv_act_pool["onnx_nodes"] == ["QuantizeLinear_7", "Conv_9", "MaxPool_12"]
    residual = row(table, "layer1.0.conv2.weight + QuantizeLinear_32 + Conv_34 + Add_42 + Relu_43")
    assert residual["onnx_nodes"] == ["QuantizeLinear_32", "Conv_34", "Add_42", "Relu_43"]
    dequantize = row(table, "DequantizeLinear_291")
    assert not dequantize["inserted"] and dequantize["onnx_nodes"] == ["DequantizeLinear_291"]
    assert int(table["inserted"].sum()) == 0
    assert row(table, "QuantizeLinear_2")["time_ms"] == pytest.approx(0.095232)


def test_mobilenet_qat(tables):
    table = tables["mobilenet-qat"]
    first = row(table, "features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)")
    assert first["onnx_nodes"] == ["QuantizeLinear_8", "Conv_12", "Clip_16"]
    assert first["precision"] == "INT8"
    assert first["inputs"][0]["layout"] == "CHW4"
    depthwise = table[table["type"] == "CudaDepthwiseConvolution"]
    assert len(depthwise) == 17 and set(depthwise["precision"]) == {"INT8"}
    reformats = table[table["type"] == "Reformat"]
    assert len(reformats) == 18
    assert int(reformats["inserted"].sum()) == 1  # 17 Q/DQ reformats implement ONNX nodes
    assert row(table, "Reformatting CopyNode for Input Tensor 0 to GlobalAveragePool_843")["inserted"]
    assert table.attrs["profile_checks"]["count"] == 6610
    biggest = row(table, "features.15.conv.2.weight + QuantizeLinear_722 + Conv_726 + Add_728")
    assert biggest["time_ms"] == pytest.approx(0.0164488)


def test_mobilenet_v2_residuals_qat(tables):
    table = tables["mobilenet-v2-residuals-qat"]
    residual = row(table, "features.3.conv.2.weight + QuantizeLinear_119 + Conv_121 + Add_123")
    assert residual["onnx_nodes"] == ["QuantizeLinear_119", "Conv_121", "Add_123"]
    assert residual["precision"] == "INT8"
    fused_conv_act = table[table["type"] == "FusedConvActConvolution"]
    assert list(fused_conv_act["onnx_nodes"]) == [
        ["QuantizeLinear_290", "Conv_292"],
        ["QuantizeLinear_467", "Conv_469"],
    ]
    assert set(fused_conv_act["precision"]) == {"INT8"}
    assert int((table["origin"] == "QDQ").sum()) == 2
    assert int(table["inserted"].sum()) == 1
    assert table.attrs["profile_checks"]["count"] == 8657


# ------------------------------------------------------------------------------------------
# Names-only layer information (yolo, TensorRT 8.5, default verbosity)


def test_yolo_names_only_layers(yolo):
    raw = read_json(YOLO / "layer_info.json")
    assert len(yolo) == len(raw["Layers"]) == 86
    assert yolo.attrs["verbosity"] == "names-only"
    assert any("--profilingVerbosity=detailed" in w for w in yolo.attrs["warnings"])
    assert yolo["precision"].isna().all() and yolo["type"].isna().all()
    assert yolo.attrs["bindings"] == ["input", "output"]


def test_yolo_profile_joins_by_name(yolo):
    assert yolo.attrs["profile_mismatches"] == {"profile_without_layer": [], "layers_without_profile": []}
    assert yolo.attrs["profile_checks"]["ok"] and yolo.attrs["profile_checks"]["count"] == 11
    assert yolo["share"].sum() == pytest.approx(100.0)
    head = row(yolo, "{ForeignNode[/head/Constant_2_output_0.../Unsqueeze_2]}")
    assert head["time_ms"] == pytest.approx(113.189)
    assert head["median_ms"] == pytest.approx(113.15)
    assert head["trt_percentage"] == pytest.approx(28.0299)


def test_yolo_onnx_node_attribution(yolo):
    head = row(yolo, "{ForeignNode[/head/Constant_2_output_0.../Unsqueeze_2]}")
    assert head["onnx_nodes"] == ["/head/Constant_2_output_0", "/Unsqueeze_2"]
    assert head["onnx_nodes_are_range"]
    conv = row(
        yolo,
        "backbone.conv1.weight + /backbone/conv1/_weight_quantizer/QuantizeLinear + /backbone/conv1/Conv",
    )
    assert conv["onnx_nodes"] == ["/backbone/conv1/_weight_quantizer/QuantizeLinear", "/backbone/conv1/Conv"]
    assert not conv["onnx_nodes_are_range"]
    batch_norm = yolo[yolo["name"].str.startswith("backbone.layer2.0.downsample.1.weight")].iloc[0]
    assert batch_norm["onnx_nodes"] == ["Identity_2", "/backbone/layer2/layer2.0/downsample/downsample.1/BatchNormalization"]
    leaky = yolo[yolo["name"].str.startswith("neck.detect1.conv1.conv.weight")].iloc[0]
    assert leaky["onnx_nodes"][-1] == "/neck/detect1/conv1/relu/LeakyRelu"  # unwrapped from PWN(...)
    nested_pwn = yolo[yolo["name"].str.startswith("PWN((Unnamed Layer* 112)")].iloc[0]
    assert nested_pwn["onnx_nodes"] == [] and not nested_pwn["inserted"]
    running_var = row(yolo, "backbone.layer2.0.downsample.1.running_var + (Unnamed Layer* 108) [Shuffle]")
    assert running_var["onnx_nodes"] == []
    clone = row(yolo, "/neck/detect3/conv1/conv/_input_quantizer/QuantizeLinear_clone_1")
    assert clone["onnx_nodes"] == ["/neck/detect3/conv1/conv/_input_quantizer/QuantizeLinear"]


def test_yolo_inserted_layers(yolo):
    inserted = set(yolo.loc[yolo["inserted"], "name"])
    assert {"[trainStation1]", "[trainStation2]", "[trainStation3]"} <= inserted
    assert "(Unnamed Layer* 718) [NMS]_1_output[DevicetoShapeHostCopy]" in inserted
    assert "/neck/Concat_/neck/Resize_output_0_clone_0 copy" in inserted
    assert sum(name.startswith("Reformatting CopyNode") for name in inserted) == 4
    assert len(inserted) == 10
    assert "/backbone/conv1/_input_quantizer/QuantizeLinear" not in inserted


def test_exact_onnx_node_names_replace_the_heuristic():
    known = {"QuantizeLinear_32", "Conv_34", "Add_36"}  # Relu_37 left out on purpose
    table = import_trt(graph("resnet18-a100-qat"), onnx_node_names=known)
    fused = row(table, QAT_FUSED)
    assert fused["onnx_nodes"] == ["QuantizeLinear_32", "Conv_34", "Add_36"]
    assert fused["onnx_unmatched"] == ["layer1.0.conv2.weight", "Relu_37"]
    assert table.attrs["onnx_unmatched"][QAT_FUSED] == ["layer1.0.conv2.weight", "Relu_37"]
    # inserted layers are never attributed, so they report nothing unmatched
    assert "Reformatting CopyNode for Output Tensor 0 to MaxPool_12" not in table.attrs["onnx_unmatched"]


def test_onnx_nodes_from_name_rules():
    assert onnx_nodes_from_name("Conv_5 + Add_6 + Relu_7") == (["Conv_5", "Add_6", "Relu_7"], [], False)
    assert onnx_nodes_from_name("{ForeignNode[a...b]}") == (["a", "b"], [], True)
    assert onnx_nodes_from_name("conv1.weight + onnx::Mul_3 + Conv_1")[0] == ["Conv_1"]
    nodes, unmatched, _ = onnx_nodes_from_name("conv1.weight + Conv_1", {"conv1.weight", "Conv_1"})
    assert nodes == ["conv1.weight", "Conv_1"] and unmatched == []


# ------------------------------------------------------------------------------------------
# Profile mismatches and validation


def test_renamed_profile_entry_is_reported():
    raw = read_json(profile("resnet18-a100-qat"))
    renamed = copy.deepcopy(raw)
    renamed[7]["name"] = "renamed layer"
    original_name = raw[7]["name"]
    assert original_name == QAT_FUSED
    table = import_trt(graph("resnet18-a100-qat"), renamed)
    assert table.attrs["profile_mismatches"] == {
        "profile_without_layer": ["renamed layer"],
        "layers_without_profile": [QAT_FUSED],
    }
    assert math.isnan(row(table, QAT_FUSED)["time_ms"])
    assert sum("match no layer" in w for w in table.attrs["warnings"]) == 1
    assert sum("no profile entry" in w for w in table.attrs["warnings"]) == 1
    assert table["share"].sum() == pytest.approx(100.0)


def test_profile_validation_flags_bad_profiles():
    raw = read_json(profile("mobilenet-qat"))
    wrong_count = [{"count": raw[0]["count"] * 2}] + raw[1:]
    checks = import_trt(graph("mobilenet-qat"), wrong_count).attrs["profile_checks"]
    assert checks["count_ok"] and checks["percentage_sum_ok"]
    timed_layers = [r for r in raw[1:] if r["timeMs"] > 0]  # 0 == 0 * count still holds
    assert len(timed_layers) == 72
    assert not checks["time_consistent"] and len(checks["time_mismatches"]) == 72

    halved = [raw[0]] + [{**r, "percentage": r["percentage"] / 2} for r in raw[1:]]
    table = import_trt(graph("mobilenet-qat"), halved)
    assert not table.attrs["profile_checks"]["percentage_sum_ok"]
    assert any("percentages sum to" in w for w in table.attrs["warnings"])
    assert table["share"].sum() == pytest.approx(100.0)  # shares are recomputed, not copied

    no_count = raw[1:]
    checks = import_trt(graph("mobilenet-qat"), no_count).attrs["profile_checks"]
    assert not checks["count_ok"] and checks["count"] is None


# ------------------------------------------------------------------------------------------
# TensorRT 10/11 layouts, built from real 8.x fixtures


def test_metadata_with_unit_and_record_separators():
    """Add TensorRT 10 style ``Metadata`` to the real resnet18-a100-qat layers.

    The ONNX names in ``Metadata`` deliberately differ from the ``Name`` so the test shows
    ``Metadata`` wins; one layer joins entries with 0x1F, another with 0x1E.
    """
    document = read_json(graph("resnet18-a100-qat"))
    for layer in document["Layers"]:
        if layer["Name"] == QAT_FUSED:
            layer["Metadata"] = "\x1f".join(
                ["[ONNX Layer: /layer1/0/conv2/Conv]", "[ONNX Layer: /layer1/0/Add]", "[ONNX Layer: /layer1/0/Relu]"]
            )
        elif layer["Name"] == "QuantizeLinear_2":
            layer["Metadata"] = "[ONNX Layer: /quant/QuantizeLinear]\x1e[ONNX Layer: /quant/DequantizeLinear]"
        elif layer["Name"].startswith("Reformatting CopyNode"):
            layer["Metadata"] = ""
    table = import_trt(document)
    assert row(table, QAT_FUSED)["onnx_nodes"] == ["/layer1/0/conv2/Conv", "/layer1/0/Add", "/layer1/0/Relu"]
    assert row(table, "QuantizeLinear_2")["onnx_nodes"] == ["/quant/QuantizeLinear", "/quant/DequantizeLinear"]
    assert row(table, "Reformatting CopyNode for Output Tensor 0 to MaxPool_12")["onnx_nodes"] == []
    # layers without Metadata still fall back to their names
    assert row(table, "layer1.0.conv1.weight + QuantizeLinear_20 + Conv_22")["onnx_nodes"] == [
        "QuantizeLinear_20",
        "Conv_22",
    ]


def test_onnx_nodes_from_metadata_ignores_other_entries():
    text = "\x1f[ONNX Layer: a]\x1e[Other: x]\x1f[ONNX Layer: b [1]]\x1f[ONNX Layer: a]"
    assert onnx_nodes_from_metadata(text) == ["a", "b [1]"]
    assert onnx_nodes_from_metadata("") == [] and onnx_nodes_from_metadata(None) == []


TRT11 = Path(__file__).resolve().parent / "fixtures" / "trt11" / "engine.graph.json"


def _documented_io_tensor(name: str, mode: str) -> dict:
    """An ``I/O Tensors`` entry spelled as the TensorRT 11 fixture (and its documentation) does."""
    (example,) = [t for t in read_json(TRT11)["I/O Tensors"] if t["IOMode"] == mode]
    return {**copy.deepcopy(example), "Name": name}


def tensorrt11_document(folder: str) -> dict:
    """Rewrite a real 8.x layer file with separate tensor ``Datatype`` and ``Format`` keys.

    That split is a layout the importer accepts; the TensorRT 11 documentation found for this
    (tests/fixtures/trt11/README.md) does not show it, so it stays a transformation of a real
    file. ``Bindings`` becomes ``I/O Tensors`` with the documented keys (``IOMode``...).
    """
    document = read_json(graph(folder))
    for layer in document["Layers"]:
        for tensor in layer["Inputs"] + layer["Outputs"]:
            combined = tensor.pop("Format/Datatype")
            tensor["Datatype"] = normalize_dtype(combined)
            tensor["Format"] = format_without_dtype(combined)
    bindings = document.pop("Bindings")
    document["I/O Tensors"] = [_documented_io_tensor(bindings[0], "Input"),
                               _documented_io_tensor(bindings[1], "Output")]
    return document


@pytest.mark.parametrize("folder", ["resnet18-a100-fp16", "resnet18-a100-qat"])
def test_tensorrt11_layout_gives_the_same_table(tables, folder):
    table = import_trt(tensorrt11_document(folder), profile(folder))
    original = tables[folder]
    for column in ("precision", "input_precision", "output_precision", "inserted"):
        assert list(table[column]) == list(original[column])
    assert list(table["onnx_nodes"]) == list(original["onnx_nodes"])
    assert [t[0]["layout"] for t in table["inputs"]] == [t[0]["layout"] for t in original["inputs"]]
    assert [t["IOMode"] for t in table.attrs["io_tensors"]] == ["Input", "Output"]
    assert table.attrs["bindings"] is None


@pytest.mark.parametrize("key", ["IOTensors", "IO Tensors"])
def test_io_tensor_key_spellings(key):
    document = tensorrt11_document("resnet18-a100-fp32")
    document[key] = document.pop("I/O Tensors")
    table = import_trt(document)
    assert [t["Name"] for t in table.attrs["io_tensors"]] == ["input.1", "191"]


# ------------------------------------------------------------------------------------------
# TensorRT 11, literally: tests/fixtures/trt11/engine.graph.json (written from the documentation;
# see its README). Every expected value below is read off the file by eye.

TRT11_LAYERS = [
    # name, type, precision, input -> output precision, input -> output layout, onnx nodes, inserted
    ("Reformatting CopyNode for Input Tensor 0 to /stem/conv/Conv + /stem/act/Relu", "Reformat",
     "FP32", "FP32", "INT8", "LINEAR", "CHW32", [], True),
    ("/stem/conv/Conv + /stem/act/Relu", "CaskConvolution", "INT8", "INT8", "INT8", "CHW32", "CHW32",
     ["/stem/conv/Conv", "/stem/bn/BatchNormalization", "/stem/act/Relu"], False),
    ("/pool/GlobalAveragePool", "CaskPooling", "INT8", "INT8", "INT8", "CHW32", "LINEAR",
     ["/pool/GlobalAveragePool"], False),
    ("Reformatting CopyNode for Input Tensor 0 to /head/Gemm", "Reformat", "INT8", "INT8", "FP16",
     "LINEAR", "HWC8", [], True),
    ("/head/Gemm", "CaskGemmConvolution", "FP16", "FP16", "FP16", "HWC8", "HWC8", ["/head/Gemm"], False),
    ("/head/Reshape", "Shuffle", "FP16", "FP16", "FP16", "HWC8", "LINEAR", ["/head/Reshape"], False),
    ("Reformatting CopyNode for Output Tensor 0 to /head/Reshape", "Reformat", "FP16", "FP16", "FP32",
     "LINEAR", "LINEAR", [], True),
]


def test_tensorrt11_fixture_imports_layer_by_layer():
    table = import_trt(TRT11)
    got = [(r.name, r.type, r.precision, r.input_precision, r.output_precision, r.inputs[0]["layout"],
            r.outputs[0]["layout"], list(r.onnx_nodes), bool(r.inserted)) for r in table.itertuples()]
    assert got == TRT11_LAYERS
    assert table.attrs["verbosity"] == "detailed" and table.attrs["warnings"] == []
    stem = row(table, "/stem/conv/Conv + /stem/act/Relu")
    assert stem["weights_dtype"] == "INT8" and stem["tactic"].startswith("sm80_xmma_fprop_implicit_gemm")
    assert stem["outputs"][0]["shape"] == [1, 64, 112, 112] and stem["outputs"][0]["location"] == "Device"
    assert row(table, "/head/Gemm")["weights_dtype"] == "FP16"  # "Half"
    assert row(table, "Reformatting CopyNode for Input Tensor 0 to /head/Gemm")["tactic"] == "0x0000000000000000"


def test_tensorrt11_fixture_io_tensors_as_documented():
    table = import_trt(TRT11)
    assert table.attrs["bindings"] is None
    io = table.attrs["io_tensors"]
    assert [(t["Name"], t["IOMode"], t["DataType"], t["Dimensions"]) for t in io] == [
        ("input_0", "Input", "Float", [1, 3, 224, 224]), ("output_0", "Output", "Float", [1, 1000])]
    # the engine's first layer reads the input tensor, the last writes the output tensor
    assert table.iloc[0]["inputs"][0]["name"] == "input_0" and table.iloc[-1]["outputs"][0]["name"] == "output_0"
    # a documented I/O tensor, with its profile's Format, reads as FP32 LINEAR like a layer tensor
    tensor = parse_tensor({**io[0], "Format": io[0]["ProfileInfo"][0]["Format"]})
    assert (tensor["dtype"], tensor["layout"], tensor["shape"]) == ("FP32", "LINEAR", [1, 3, 224, 224])


@pytest.mark.parametrize(
    "text, layout",
    [("Row major linear FP32 format (kLINEAR)", "LINEAR"),
     ("Thirty-two wide channel vectorized row major Int8 format (kCHW32)", "CHW32"),
     ("Channel major FP16 format where channel % 8 == 0 (kHWC8)", "HWC8")],
)
def test_format_text_with_the_enum_name_in_parentheses(text, layout):
    """TensorRT 11's I/O ``Format`` ends with the ``TensorFormat`` enum name, e.g. ``(kLINEAR)``."""
    assert layout_label(format_without_dtype(text), 4) == layout


@pytest.mark.parametrize(
    "text, dtype, layout",
    [
        ("Row major linear FP32", "FP32", "LINEAR"),
        ("Row major Int8 format", "INT8", "LINEAR"),
        ("Four wide channel vectorized row major Int8 format", "INT8", "CHW4"),
        ("Two wide channel vectorized row major FP16 format", "FP16", "CHW2"),
        ("Thirty-two wide channel vectorized row major FP16 format", "FP16", "CHW32"),
        ("Channel major FP16 format where channel % 8 == 0", "FP16", "HWC8"),
        ("Channel major FP32 format", "FP32", "HWC"),
        ("Row major linear BF16 format", "BF16", "LINEAR"),
        ("Row major linear FP8 format", "FP8", "LINEAR"),
        ("Row major linear Int32 format", "INT32", "LINEAR"),
        ("Row major linear Int64 format", "INT64", "LINEAR"),
        ("Row major linear Bool format", "BOOL", "LINEAR"),
        ("Row major linear UInt8 format", "UINT8", "LINEAR"),
        ("Row major linear Int4 format", "INT4", "LINEAR"),
    ],
)
def test_format_datatype_text(text, dtype, layout):
    assert normalize_dtype(text) == dtype
    assert layout_label(format_without_dtype(text)) == layout


def test_weights_type_names():
    assert [normalize_dtype(t) for t in ("Int8", "Half", "Float", "kHALF", "FP16")] == [
        "INT8",
        "FP16",
        "FP32",
        "FP16",
        "FP16",
    ]
    assert layout_label("Thirty-two wide channel vectorized row major", rank=5) == "CDHW32"
    assert layout_label("kHWC8") == "HWC8"


# ------------------------------------------------------------------------------------------
# End-to-end timings


def test_times_summary_from_resnet18_fp32():
    path = FIXTURES / "resnet18-a100-fp32" / "engine.timing.json"
    records = read_json(path)
    summary = summarize_times(path)
    assert summary["count"] == len(records) == 1600
    assert summary["latency_min_ms"] == pytest.approx(1.91181)
    assert summary["latency_max_ms"] == pytest.approx(2.05927)
    assert summary["latency_median_ms"] == pytest.approx(1.99072)
    assert summary["latency_p90_ms"] == pytest.approx(2.02124)
    assert summary["latency_p95_ms"] == pytest.approx(2.02344)
    assert summary["latency_p99_ms"] == pytest.approx(2.05621)
    assert summary["latency_mean_ms"] == pytest.approx(sum(r["latencyMs"] for r in records) / 1600)
    assert summary["latency_mean_ms"] == pytest.approx(1.9982015)
    assert summary["h2d_mean_ms"] == 0 and summary["d2h_mean_ms"] == 0  # run with data transfers disabled
    assert summary["compute_mean_ms"] == pytest.approx(summary["latency_mean_ms"])
    assert summary["enqueue_mean_ms"] == pytest.approx(0.00541026, rel=1e-4)
    # trtexec's own summary of the same run (parsed by TREx into engine.profile.metadata.json:
    # [min, max, mean, median, p99]) agrees on max, median and p99.
    printed = read_json(FIXTURES / "resnet18-a100-fp32" / "engine.profile.metadata.json")
    latency = printed["performance_summary"]["Latency"]
    assert (summary["latency_max_ms"], summary["latency_median_ms"], summary["latency_p99_ms"]) == (
        pytest.approx(latency[1]),
        pytest.approx(latency[3]),
        pytest.approx(latency[4]),
    )


def test_times_stored_in_attrs():
    folder = FIXTURES / "resnet18-a100-fp32"
    table = import_trt(folder / "engine.graph.json", folder / "engine.profile.json", folder / "engine.timing.json")
    assert table.attrs["end_to_end"]["count"] == 1600
    assert table.attrs["times_file"].endswith("engine.timing.json")


# ------------------------------------------------------------------------------------------
# Precision intent


def test_precision_warnings_fp32_engine_meant_fp16(tables):
    flagged = precision_warnings(tables["resnet18-a100-fp32"], "FP16")
    assert len(flagged) == 21  # 20 convolutions + Gemm_48, all with FP32 weights
    assert "Conv_0 + Relu_1" in set(flagged["name"]) and "Gemm_48" in set(flagged["name"])
    assert set(flagged["precision"]) == {"FP32"}
    assert "MaxPool_2" not in set(flagged["name"])  # pooling is not a compute layer


def test_precision_warnings_finds_one_fallback_in_int8_engine():
    document = read_json(graph("resnet18-a100-qat"))
    for layer in document["Layers"]:
        if layer["Name"] == QAT_FUSED:
            layer["Weights"]["Type"] = "Float"
    flagged = precision_warnings(import_trt(document), "int8")
    assert list(flagged["name"]) == [QAT_FUSED]
    assert "INT8 was intended" in flagged.iloc[0]["reason"]


def test_precision_warnings_without_detail_is_empty(yolo):
    assert precision_warnings(yolo, "INT8").empty
    with pytest.raises(ValueError, match="unknown precision"):
        precision_warnings(yolo, "fast")


# ------------------------------------------------------------------------------------------
# Errors


def test_missing_layer_file(tmp_path):
    missing = tmp_path / "layers.json"
    with pytest.raises(ValueError) as error:
        import_trt(missing)
    message = str(error.value)
    assert str(missing) in message and "not found" in message
    assert "--exportLayerInfo=layers.json" in message and "--profilingVerbosity=detailed" in message
    assert isinstance(error.value, TrtJsonError)


def test_layer_file_not_json(tmp_path):
    bad = tmp_path / "layers.json"
    bad.write_text("Layers: conv, relu\n")
    with pytest.raises(ValueError, match="not JSON") as error:
        import_trt(bad)
    assert str(bad) in str(error.value) and "--exportLayerInfo" in str(error.value)


@pytest.mark.parametrize(
    "document, fragment",
    [
        ({"Engine": []}, "no 'Layers' key"),
        ({"Layers": []}, "empty"),
        (42, "top level is a int"),
        ([{"Type": "Conv"}], "layer 0 is neither a name nor a dict"),
    ],
)
def test_layer_document_of_wrong_shape(tmp_path, document, fragment):
    path = tmp_path / "layers.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="Expected TensorRT layer information") as error:
        import_trt(path)
    assert fragment in str(error.value) and str(path) in str(error.value)


def test_profile_or_times_passed_as_layers():
    with pytest.raises(ValueError, match="pass it as profile_json"):
        import_trt(profile("resnet18-a100-fp32"))
    with pytest.raises(ValueError, match="pass it as times_json"):
        import_trt(FIXTURES / "resnet18-a100-fp32" / "engine.timing.json")


def test_bad_profile_and_times(tmp_path):
    with pytest.raises(ValueError, match="--exportProfile=profile.json") as error:
        import_trt(graph("resnet18-a100-fp32"), graph("resnet18-a100-fp32"))
    assert "engine.graph.json" in str(error.value)
    with pytest.raises(ValueError, match="file not found.*--exportProfile"):
        import_trt(graph("resnet18-a100-fp32"), tmp_path / "profile.json")
    with pytest.raises(ValueError, match="--exportTimes=times.json"):
        import_trt(graph("resnet18-a100-fp32"), times_json=profile("resnet18-a100-fp32"))
    with pytest.raises(ValueError, match="not a non-empty list"):
        summarize_times([])


# ------------------------------------------------------------------------------------------
# The module's parts, its phases and the faces that export it

# Every public name trt_json had before it was split into its parts (files, layers, nodes,
# precision, profile); code importing them from trt_json keeps working.
NAMES_BEFORE_THE_SPLIT = {
    "SOURCE", "LAYERS_HOW_TO", "PROFILE_HOW_TO", "TIMES_HOW_TO", "LAYERS_EXPECTED", "PROFILE_EXPECTED",
    "TIMES_EXPECTED", "NAMES_ONLY_WARNING", "PERCENTAGE_SUM_TOLERANCE", "TIME_RELATIVE_TOLERANCE",
    "TIME_ABSOLUTE_TOLERANCE_MS", "PARAMETER_SUFFIXES", "HELPER_PREFIXES", "TrtJsonError", "load_json_input",
    "shape_error", "split_layer_document", "normalize_dtype", "format_without_dtype", "layout_label",
    "parse_tensor", "onnx_nodes_from_metadata", "split_outside_brackets", "foreign_node_range", "name_parts",
    "strip_generated_affixes", "is_inserted_by_name", "is_tensorrt_internal_name", "looks_like_initializer",
    "onnx_nodes_from_name", "is_inserted_layer", "weights_dtype", "tactic_of", "names_only_record",
    "detailed_record", "split_profile", "check_profile", "profile_by_name", "join_profile",
    "trtexec_percentile", "summarize_times", "import_trt", "precision_warnings",
}


def test_trt_json_re_exports_every_part():
    assert NAMES_BEFORE_THE_SPLIT <= set(trt_json.__all__)
    for part in ("files", "layers", "nodes", "precision", "profile"):
        module = importlib.import_module(f"workbench.backends.tensorrt.trt_json_{part}")
        public = [n for n, v in vars(module).items() if not n.startswith("_")
                  and (getattr(v, "__module__", None) == module.__name__ or n.isupper())]
        assert public, part
        for name in public:
            assert name in trt_json.__all__ and getattr(trt_json, name) is getattr(module, name), (part, name)


def test_import_phases_compose_into_import_trt():
    folder = FIXTURES / "resnet18-a100-fp32"
    records, attrs = read_layers(folder / "engine.graph.json", None)
    assert len(records) == 32 and attrs["verbosity"] == "detailed" and "profile_file" not in attrs
    joined = add_profile(records, folder / "engine.profile.json", attrs)
    assert [r["name"] for r in joined] == [r["name"] for r in records]
    assert attrs["profile_checks"]["ok"] and attrs["profile_mismatches"]["layers_without_profile"] == []
    times = read_times(folder / "engine.timing.json")
    assert set(times) == {"times_file", "end_to_end"} and times["end_to_end"]["count"] == 1600
    whole = import_trt(folder / "engine.graph.json", folder / "engine.profile.json", folder / "engine.timing.json")
    assert list(whole["time_ms"]) == [r["time_ms"] for r in joined]
    assert whole.attrs["end_to_end"] == times["end_to_end"] and whole.attrs["warnings"] == attrs["warnings"]


def test_faces_export_what_the_notebooks_use(tables):
    assert workbench.backends.precision_warnings is precision_warnings
    assert "precision_warnings" in workbench.backends.__all__
    assert workbench.trt_example_dir is trt_example_dir and workbench.trt_example_dir() == FIXTURES
    flagged = workbench.backends.precision_warnings(tables["resnet18-a100-fp32"], "FP16")
    assert len(flagged) > 0 and set(flagged["precision"]) == {"FP32"}
