"""Variants of the sample models: INT8/FP8 Q/DQ, FP16/BF16, caching and records, on real data."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.analysis.accuracy import top1_accuracy
from workbench.datasets.arrays import InputDataError
from workbench.precision import Recipe, make_variant
from workbench.precision.calibrator import ArrayReader, prepare_for_calibration
from workbench.precision.lowp import ort_cpu_upcast_ops
from workbench.precision.qdq import tensorrt_extra_options
from workbench.precision.variants import (
    VariantError,
    list_variants,
    load_variant,
    variants_frame,
)
from workbench.samples import sample_data_path, sample_path
from workbench.workflows.sweep import evaluate_variant

MODELS = ("digits_cnn", "digits_transformer")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return tmp_path_factory.mktemp("variants")


@pytest.fixture(scope="module")
def fp32_top1():
    return {name: evaluate_variant(make_fp32(name), sample_data_path(name, "eval"))["top1"] for name in MODELS}


_FP32_CACHE = {}


def make_fp32(name):
    if name not in _FP32_CACHE:
        import tempfile

        _FP32_CACHE[name] = make_variant(sample_path(name), "fp32", workspace=tempfile.mkdtemp(), progress=False)
    return _FP32_CACHE[name]


def build(name, recipe, ws, calib="calib"):
    data = sample_data_path(name, calib) if calib else None
    return make_variant(sample_path(name), recipe, data, workspace=ws, progress=False)


def inits(path):
    model = onnx.load(str(path))
    return model, {i.name: i for i in model.graph.initializer}


def qdq_nodes(model):
    return [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


# ---- INT8 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_int8_qdq_symmetric_zero_points_runs_and_accurate(name, ws, fp32_top1):
    variant = build(name, Recipe("int8"), ws)
    model, init = inits(variant.path)
    nodes = qdq_nodes(model)
    assert {n.op_type for n in nodes} == {"QuantizeLinear", "DequantizeLinear"}
    for node in nodes:
        zp = numpy_helper.to_array(init[node.input[2]])
        assert zp.dtype == np.int8 and not zp.any(), node.name
        assert numpy_helper.to_array(init[node.input[1]]).min() > 0
    for node in nodes:  # weights: int8 within the symmetric range [-127, 127]
        if node.op_type == "DequantizeLinear" and node.input[0] in init:
            w = numpy_helper.to_array(init[node.input[0]])
            assert w.dtype == np.int8 and w.min() >= -127
    # activations: each Q and its DQ share one scale (per tensor: a scalar)
    q_scales = {n.input[1] for n in nodes if n.op_type == "QuantizeLinear"}
    assert q_scales and all(numpy_helper.to_array(init[s]).ndim == 0 for s in q_scales)
    assert variant.runs_on_ort_cpu
    top1 = evaluate_variant(variant, sample_data_path(name, "eval"))["top1"]
    # Naive minmax INT8 costs the CNN well under a point; the transformer loses a few points
    # (LayerNorm/Softmax-fed MatMuls with wide ranges) - the case notebook 04's doctor examines.
    allowed_drop = {"digits_cnn": 0.01, "digits_transformer": 0.06}[name]
    assert fp32_top1[name] - allowed_drop <= top1 <= fp32_top1[name] + 0.01


def test_int8_per_channel_conv_scales_on_axis_0(ws):
    variant = build("digits_cnn", Recipe("int8"), ws)
    model, init = inits(variant.path)
    consumers = {i: n for n in model.graph.node for i in n.input}
    conv_weight_dq = [n for n in qdq_nodes(model) if n.op_type == "DequantizeLinear" and n.input[0] in init
                      and consumers[n.output[0]].op_type == "Conv"]
    assert len(conv_weight_dq) == 5
    for node in conv_weight_dq:
        w = numpy_helper.to_array(init[node.input[0]])
        scale = numpy_helper.to_array(init[node.input[1]])
        axis = next(a.i for a in node.attribute if a.name == "axis")
        assert axis == 0 and scale.shape == (w.shape[0],)  # one scale per output channel


def test_int8_per_tensor_weights(ws):
    variant = build("digits_cnn", Recipe("int8", per_channel=False), ws)
    model, init = inits(variant.path)
    for node in qdq_nodes(model):
        assert numpy_helper.to_array(init[node.input[1]]).size == 1


def test_int8_excluded_nodes_stay_unquantized(ws):
    excluded = ("/features/conv1/Conv", "/classifier/Gemm")
    variant = build("digits_cnn", Recipe("int8", exclude_nodes=excluded), ws)
    model, init = inits(variant.path)
    dq_outputs = {o for n in qdq_nodes(model) if n.op_type == "DequantizeLinear" for o in n.output}
    by_name = {n.name: n for n in model.graph.node}
    for name in excluded:
        assert not set(by_name[name].input) & dq_outputs, name
        assert by_name[name].input[1] in init and init[by_name[name].input[1]].data_type == TensorProto.FLOAT
    assert set(by_name["/features/pwconv3/Conv"].input) & dq_outputs
    assert set(variant.record["kept_fp32"]) == set(excluded)
    assert "/features/conv1/Conv" not in variant.record["details"]["qdq"]["quantized_nodes"]


def test_int8_equals_onnxruntime_quantize_static(ws, tmp_path):
    """Same settings through quantize_static (ORT's own calibrator) give the same graph, bit for bit.

    Both quantize the model as the workbench loads it (normalized: its Constant weights folded);
    quantize_static runs on a copy in tmp_path, as it writes ``<model>-inferred.onnx`` beside its input.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from workbench.datasets.calibration_sets import from_npz
    from workbench.model import load_model

    variant = build("digits_transformer", Recipe("int8", batch_size=32, exact_calibration=True), ws)
    ops = list(variant.recipe.quantized_op_types)
    calib = from_npz(sample_data_path("digits_transformer", "calib"), ["input"])
    normalized = tmp_path / "digits_transformer.onnx"
    onnx.save(load_model(sample_path("digits_transformer")).proto, str(normalized))
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_static(str(normalized), str(tmp_path / "ort.onnx"), ArrayReader(calib, 32),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=ops, per_channel=True, extra_options=tensorrt_extra_options(ops))
    finally:
        logging.disable(previous)
    ours, theirs = onnx.load(str(variant.path)), onnx.load(str(tmp_path / "ort.onnx"))
    assert [(n.op_type, list(n.input)) for n in ours.graph.node] == [(n.op_type, list(n.input)) for n in theirs.graph.node]
    a = {i.name: numpy_helper.to_array(i) for i in ours.graph.initializer}
    b = {i.name: numpy_helper.to_array(i) for i in theirs.graph.initializer}
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ---- FP8 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_fp8_uses_float8e4m3fn_qdq_and_runs(name, ws, fp32_top1):
    variant = build(name, Recipe("fp8"), ws)
    model, init = inits(variant.path)
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 19
    nodes = qdq_nodes(model)
    assert nodes
    for node in nodes:
        zp = init[node.input[2]]
        assert zp.data_type == TensorProto.FLOAT8E4M3FN
        assert not numpy_helper.to_array(zp).astype(np.float32).any()
    weights = [init[n.input[0]] for n in nodes if n.op_type == "DequantizeLinear" and n.input[0] in init]
    assert weights and all(w.data_type == TensorProto.FLOAT8E4M3FN for w in weights)
    assert variant.runs_on_ort_cpu and variant.ort_session_options == {"graph_optimization_level": "basic"}
    assert evaluate_variant(variant, sample_data_path(name, "eval"))["top1"] >= fp32_top1[name] - 0.03


# ---- FP16 / BF16 ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_fp16_weights_half_io_float_and_accurate(name, ws, fp32_top1):
    variant = build(name, Recipe("fp16"), ws, calib=None)
    model, init = inits(variant.path)
    float_inits = [i for i in init.values() if i.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    assert float_inits and all(i.data_type == TensorProto.FLOAT16 for i in float_inits)
    for vi in list(model.graph.input) + list(model.graph.output):
        assert vi.type.tensor_type.elem_type == TensorProto.FLOAT
    assert variant.runs_on_ort_cpu
    if ort_cpu_upcast_ops(model, TensorProto.FLOAT16):  # x86 ORT: no float16 Conv/MatMul kernels
        assert variant.accuracy_on == "emulation" and variant.emulation_path.is_file()
        assert "no float16 kernels" in variant.record["ort_execution"]
    result = evaluate_variant(variant, sample_data_path(name, "eval"))
    assert result["ran"] == variant.accuracy_on
    assert abs(result["top1"] - fp32_top1[name]) <= 0.005


def _scaled_cnn(tmp_path, target_weight_max: float) -> tuple:
    """digits_cnn with conv1's weights scaled up by k and a Mul(1/k) after it: same function."""
    model = onnx.load(str(sample_path("digits_cnn")))
    init = {i.name: i for i in model.graph.initializer}
    w = numpy_helper.to_array(init["features.conv1.weight"])
    k = np.float32(target_weight_max / np.abs(w).max())
    init["features.conv1.weight"].CopyFrom(numpy_helper.from_array(w * k, "features.conv1.weight"))
    conv = next(n for n in model.graph.node if n.name == "/features/conv1/Conv")
    conv.output[0] = "conv1_scaled"
    model.graph.initializer.append(numpy_helper.from_array(np.array(1.0 / k, np.float32), "conv1_unscale"))
    index = list(model.graph.node).index(conv)
    model.graph.node.insert(index + 1, helper.make_node("Mul", ["conv1_scaled", "conv1_unscale"],
                                                        ["/features/conv1/Conv_output_0"], name="/unscale/Mul"))
    path = tmp_path / f"digits_cnn_scaled_{int(target_weight_max)}.onnx"
    onnx.save(model, str(path))
    return path, k


def test_fp16_initializer_beyond_range_keeps_its_node_fp32(tmp_path):
    path, _ = _scaled_cnn(tmp_path, 1.0e5)
    variant = make_variant(path, "fp16", workspace=tmp_path / "ws", progress=False)
    model, init = inits(variant.path)
    assert "/features/conv1/Conv" in variant.record["kept_fp32"]
    assert "features.conv1.weight" in variant.record["kept_fp32"]["/features/conv1/Conv"]
    assert init["features.conv1.weight"].data_type == TensorProto.FLOAT
    np.testing.assert_allclose(numpy_helper.to_array(init["features.conv1.weight"]).max(),
                               numpy_helper.to_array(inits(path)[1]["features.conv1.weight"]).max())
    assert init["features.pwconv3.weight"].data_type == TensorProto.FLOAT16


def test_fp16_activation_overflow_safeguard_uses_calibration(tmp_path, fp32_top1):
    path, k = _scaled_cnn(tmp_path, 6.0e4)  # weights stay below 65504, conv1's output does not
    eval_data = sample_data_path("digits_cnn", "eval")
    safe = make_variant(path, "fp16", sample_data_path("digits_cnn", "calib"), workspace=tmp_path / "ws", progress=False)
    kept = safe.record["kept_fp32"]
    assert {"/features/conv1/Conv", "/unscale/Mul"} <= set(kept)
    assert "observed |x|" in kept["/features/conv1/Conv"]
    assert safe.record["calibration"]["purpose"] == "FP16 overflow safeguard"
    assert safe.record["warnings"] == [] and safe.record["details"]["fp16_activation_check"]["data"] == "calibration"
    assert abs(evaluate_variant(safe, eval_data)["top1"] - fp32_top1["digits_cnn"]) <= 0.005
    # without calibration data the check runs on random inputs (here they overflow too) and says so loudly
    plain = make_variant(path, "fp16", workspace=tmp_path / "ws", progress=False)
    assert "/features/conv1/Conv" in plain.record["kept_fp32"]
    assert plain.record["details"]["fp16_activation_check"]["data"].startswith("random")
    assert any("not on real data" in w for w in plain.record["warnings"])
    # and with neither, conv1's output overflows float16: the safeguard is what keeps the accuracy
    from workbench.precision.lowp import emulate_low_precision, to_float16

    unguarded = tmp_path / "unguarded.onnx"
    onnx.save(emulate_low_precision(to_float16(onnx.load(str(path))), TensorProto.FLOAT16), str(unguarded))
    data = np.load(eval_data)
    assert top1_accuracy(unguarded, {"input": data["input"]}, data["labels"]) < 0.5


@pytest.mark.parametrize("name", MODELS)
def test_bf16_variant_and_its_ort_emulation(name, ws, fp32_top1):
    variant = build(name, Recipe("bf16"), ws, calib=None)
    model, init = inits(variant.path)
    floats = [i for i in init.values() if i.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)]
    assert floats and all(i.data_type == TensorProto.BFLOAT16 for i in floats)
    for vi in list(model.graph.input) + list(model.graph.output):
        assert vi.type.tensor_type.elem_type == TensorProto.FLOAT
    onnx.checker.check_model(model)
    assert not variant.runs_on_ort_cpu  # no bfloat16 Conv/MatMul kernels on ORT CPU
    with pytest.raises(Exception):
        ort.InferenceSession(str(variant.path), providers=["CPUExecutionProvider"])
    assert variant.emulation_path.is_file() and variant.ort_path == variant.emulation_path
    result = evaluate_variant(variant, sample_data_path(name, "eval"))
    assert result["ran"] == "emulation"
    assert abs(result["top1"] - fp32_top1[name]) <= 0.005
    # the emulation really rounds to bfloat16: its logits differ from FP32's
    with np.load(sample_data_path(name, "eval")) as data:
        x = data["input"][:32]
    emu = ort.InferenceSession(str(variant.emulation_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    ref = ort.InferenceSession(str(sample_path(name)), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert 1e-4 < np.abs(emu - ref).max() < 0.5


def test_fp32_is_an_unchanged_copy(ws):
    variant = build("digits_cnn", "fp32", ws, calib=None)
    assert variant.path.read_bytes() == sample_path("digits_cnn").read_bytes()
    assert variant.record["tool"]["name"] == "none"


# ---- cache, records, validation ---------------------------------------------------------------


def test_cache_returns_same_path_and_new_recipe_new_file(tmp_path):
    first = build("digits_cnn", Recipe("int8"), tmp_path)
    assert not first.cached
    mtime = first.path.stat().st_mtime_ns
    again = build("digits_cnn", Recipe("int8", name="relabelled"), tmp_path)
    assert again.cached and again.path == first.path and again.path.stat().st_mtime_ns == mtime
    other = build("digits_cnn", Recipe("int8", method="percentile"), tmp_path)
    assert not other.cached and other.path != first.path and first.path.is_file()
    fewer = build("digits_cnn", Recipe("int8", num_samples=64), tmp_path)
    assert fewer.path != first.path and fewer.record["calibration"]["num_samples"] == 64
    assert len(list_variants(tmp_path)) == 3
    frame = variants_frame(tmp_path)  # the same records as a table, newest first
    assert list(frame.columns) == ["file", "name", "precision", "created", "bytes"]
    assert frame["file"].tolist() == [r["file"]["path"] for r in list_variants(tmp_path)]
    assert set(frame["file"]) == {v.path.name for v in (first, other, fewer)}
    assert frame.set_index("file").loc[first.path.name, "bytes"] == first.path.stat().st_size
    assert variants_frame(tmp_path / "empty").empty
    assert load_variant(first.path).record["key"] == first.record["key"]


def test_record_sidecar_fields(ws):
    variant = build("digits_cnn", Recipe("int8", method="entropy"), ws)
    record = json.loads(variant.sidecar_path.read_text())
    assert record["recipe"]["method"] == "entropy" and record["recipe_hash"] == variant.recipe.hash()
    assert record["tool"]["name"] == "onnxruntime.quantization" and record["tool"]["version"] == ort.__version__
    assert len(record["source_model"]["sha256"]) == 64
    calib = record["calibration"]
    assert len(calib["sha256"]) == 64 and calib["num_samples"] == 256 and calib["nbytes"] == 256 * 64 * 4
    assert record["created"].endswith("+00:00")
    assert record["file"]["bytes"] == variant.path.stat().st_size
    assert record["details"]["qdq"]["zero_points_all_zero"]


def test_int8_without_calibration_refused(ws):
    with pytest.raises(VariantError, match="int8 needs calibration data"):
        make_variant(sample_path("digits_cnn"), "int8", workspace=ws)


def test_unknown_excluded_node_named_with_suggestion(ws):
    with pytest.raises(VariantError, match=r"'/features/conv9/Conv' \(did you mean"):
        build("digits_cnn", Recipe("int8", exclude_nodes=("/features/conv9/Conv",)), ws)


def test_nan_calibration_data_refused_naming_sample_and_input(ws):
    with np.load(sample_data_path("digits_cnn", "calib")) as data:
        x = data["input"].copy()
    x[42, 0, 1, 1] = np.nan
    with pytest.raises(InputDataError, match=r"input 'input' has NaN or Inf values in sample\(s\) \[42\]"):
        make_variant(sample_path("digits_cnn"), "int8", {"input": x}, workspace=ws, progress=False)


def test_wrong_shape_calibration_data_refused(ws):
    with np.load(sample_data_path("digits_cnn", "calib")) as data:
        x = data["input"][:, :, :, :6].copy()
    with pytest.raises(InputDataError, match="input 'input' has dim 3 of size 6"):
        make_variant(sample_path("digits_cnn"), "int8", {"input": x}, workspace=ws, progress=False)


def test_fp16_mixed_precision_needs_modelopt(ws):
    with pytest.raises(VariantError, match="needs NVIDIA ModelOpt"):
        build("digits_cnn", Recipe("int8", high_precision="fp16", tool="onnxruntime"), ws)


def test_top1_helper_matches_sample_card():
    with np.load(sample_data_path("digits_cnn", "eval")) as data:
        top1 = top1_accuracy(sample_path("digits_cnn"), {"input": data["input"]}, data["labels"])
    assert top1 == pytest.approx(358 / 360)


def test_prepare_for_fp8_raises_opset():
    model = prepare_for_calibration(onnx.load(str(sample_path("digits_cnn"))), fp8=True)
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 19
