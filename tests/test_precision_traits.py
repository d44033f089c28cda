"""Variants of models with the traits real models bring (issue 11): valid, or refused in one line.

Every variant the workbench writes passes ``onnx.checker`` with ``full_check`` and loads in ONNX
Runtime (or ORT's CPU provider honestly lacks a kernel for it, which the record says, and its
emulation runs); otherwise the command refuses with exit 2 naming the node and the reason, and
writes nothing. The models are built in ``tests/precision_traits.py``.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.capi.onnxruntime_pybind11_state import (
    NotImplemented as OrtNotImplemented,
)
from precision_traits import (
    big_batchnorm,
    calibration_for,
    cnn,
    dynamically_quantized,
    if_weights,
    int32_onehot,
)

from workbench import cli
from workbench.precision import Recipe, make_variant
from workbench.precision.validate import InvalidVariantError, validate_model
from workbench.precision.variants import VariantError


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Trait name -> (model path, calibration .npz path), saved once."""
    root = tmp_path_factory.mktemp("traits")
    built = {
        "opset10": cnn(10), "opset11": cnn(11), "opset12": cnn(12), "ir3": cnn(8, ir=3),
        "initializer_inputs": cnn(13, initializers_as_inputs=True), "constant_weights": cnn(13, constant_weights=True),
        "big_batchnorm": big_batchnorm(), "int32_onehot": int32_onehot(), "if_weights": if_weights(),
        "if_outer_scope": if_weights(gate_input=True),
        "dynamically_quantized": dynamically_quantized(root / "dq"),
    }
    paths = {}
    for name, model in built.items():
        path = root / f"{name}.onnx"
        onnx.save(model, str(path))
        calib = root / f"{name}.calib.npz"
        np.savez(calib, **calibration_for(model, 32))
        paths[name] = (path, calib)
    return paths


def make(models, name, precision, tmp_path, *, calib=False, **settings):
    path, calib_path = models[name]
    wants_calib = calib or precision in ("int8", "fp8")
    return make_variant(path, Recipe(precision, **settings), calib_path if wants_calib else None,
                        workspace=tmp_path / "ws", progress=False)


def assert_valid(variant) -> None:
    """The checker's full check passes and ORT loads it, or ORT honestly lacks a kernel and the
    emulation loads."""
    onnx.checker.check_model(str(variant.path), full_check=True)
    options = variant.ort_session_options
    from workbench.backends.onnxruntime.session import ort_session

    if variant.runs_on_ort_cpu:
        ort_session(variant.path, options)
        assert variant.record["ort_cpu_problem"] is None
    else:
        with pytest.raises(OrtNotImplemented):
            ort_session(variant.path, options)
        assert "implementation" in variant.record["ort_cpu_problem"]
        assert variant.emulation_path is not None
    if variant.emulation_path is not None:
        onnx.checker.check_model(str(variant.emulation_path), full_check=True)
        ort_session(variant.emulation_path, options)
    assert variant.record["validation"]["onnx_checker"].startswith("passed")


def outputs(path, feed, options=None):
    from workbench.backends.onnxruntime.session import ort_session

    return ort_session(path, options).run(None, feed)[0]


def opset(path) -> int:
    model = onnx.load(str(path))
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


# ---- INT8 on old opsets: upgraded to the lowest opset the variant needs, recorded ----------------


@pytest.mark.parametrize("name", ["opset10", "opset11", "opset12"])
def test_per_channel_int8_of_an_old_opset_is_upgraded_to_13(models, name, tmp_path):
    variant = make(models, name, "int8", tmp_path)
    assert_valid(variant)
    assert opset(variant.path) == 13
    upgrade = variant.record["opset_upgrade"]
    assert upgrade["from"] == int(name[-2:]) and upgrade["to"] == 13 and "axis" in upgrade["why"]
    assert variant.record["details"]["weights"] == {"per_channel": 2, "per_tensor": 0, "computed_at_run_time": []}


def test_per_tensor_int8_of_opset_10_needs_no_upgrade(models, tmp_path):
    variant = make(models, "opset10", "int8", tmp_path, per_channel=False)
    assert_valid(variant)
    assert opset(variant.path) == 10 and variant.record["opset_upgrade"] is None
    assert variant.record["details"]["weights"]["per_tensor"] == 2


@pytest.mark.parametrize("name", ["opset10", "opset11"])
def test_percentile_calibration_on_an_old_opset(models, name, tmp_path):
    """The calibration graph's int64 Min and TopK attributes need opset 12: its copy is upgraded."""
    variant = make(models, name, "int8", tmp_path, method="percentile")
    assert_valid(variant)
    assert variant.record["calibration"]["method"] == "percentile"


def test_fp8_of_an_old_opset_records_its_upgrade_to_19(models, tmp_path):
    variant = make(models, "opset12", "fp8", tmp_path)
    assert_valid(variant)
    assert variant.record["opset_upgrade"]["to"] == 19 and opset(variant.path) == 19


# ---- normalized on load: IR 3, initializers as inputs, Constant weights ---------------------------


@pytest.mark.parametrize("precision", ["fp16", "bf16", "int8", "fp8"])
@pytest.mark.parametrize("name", ["ir3", "initializer_inputs"])
def test_ir3_and_initializer_inputs_give_valid_variants(models, name, precision, tmp_path):
    variant = make(models, name, precision, tmp_path)
    assert_valid(variant)
    model = onnx.load(str(variant.path))
    assert model.ir_version >= 4
    assert not {i.name for i in model.graph.initializer} & {i.name for i in model.graph.input}
    assert any(step["step"] == "initializer_inputs" for step in variant.record["source_normalization"])


def test_constant_weights_are_quantized_per_channel_as_the_record_says(models, tmp_path):
    variant = make(models, "constant_weights", "int8", tmp_path)
    assert_valid(variant)
    assert variant.record["recipe"]["per_channel"] is True
    assert variant.record["details"]["weights"] == {"per_channel": 2, "per_tensor": 0, "computed_at_run_time": []}
    model = onnx.load(str(variant.path))
    inits = {i.name: i for i in model.graph.initializer}
    weight_dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                  and inits[n.input[0]].data_type == TensorProto.INT8]
    assert len(weight_dqs) == 2
    assert all(int(np.prod(inits[n.input[1]].dims)) > 1 for n in weight_dqs)  # one scale per channel
    assert not any(n.op_type == "Constant" for n in model.graph.node)


def test_constant_weights_stay_fp32_when_their_op_type_is_excluded(models, tmp_path):
    variant = make(models, "constant_weights", "fp16", tmp_path, keep_fp32_op_types=("Conv",))
    assert_valid(variant)
    inits = {i.name: i.data_type for i in onnx.load(str(variant.path)).graph.initializer}
    assert inits["conv_w"] == TensorProto.FLOAT and inits["conv_b"] == TensorProto.FLOAT
    assert inits["fc_w"] == TensorProto.FLOAT16


def test_fp16_overflow_check_sees_constant_node_weights(models, tmp_path):
    """A BatchNormalization variance of 1e8 in a Constant node: its node stays FP32, the output stays right."""
    path, calib = models["big_batchnorm"]
    variant = make(models, "big_batchnorm", "fp16", tmp_path, calib=True)
    assert_valid(variant)
    assert "bn_var" in variant.record["kept_fp32"]["bn"]
    feed = dict(np.load(calib))
    reference = outputs(path, feed)
    low = outputs(variant.ort_path, feed)
    assert np.isfinite(low).all()
    np.testing.assert_allclose(low, reference, rtol=2e-2, atol=2e-2 * np.abs(reference).max())


# ---- FP16/BF16 of an int32-input model with a one-hot Cast, and of weights inside If -------------


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_low_precision_of_an_int32_onehot_model(models, precision, tmp_path):
    path, calib = models["int32_onehot"]
    variant = make(models, "int32_onehot", precision, tmp_path)
    assert_valid(variant)
    model = onnx.load(str(variant.path))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.INT32
    feed = dict(np.load(calib))
    reference = outputs(path, feed)
    np.testing.assert_allclose(outputs(variant.ort_path, feed), reference, atol=2e-2 * np.abs(reference).max())


@pytest.mark.parametrize("name", ["if_weights", "if_outer_scope"])
@pytest.mark.parametrize("precision,low", [("fp16", TensorProto.FLOAT16), ("bf16", TensorProto.BFLOAT16)])
def test_low_precision_converts_the_weights_inside_if_branches(models, name, precision, low, tmp_path):
    """Weights in the branches; ``if_outer_scope``: the branches read a float input only the
    subgraphs use (from the outer scope), which the FP16 converter alone leaves float32."""
    path, calib = models[name]
    variant = make(models, name, precision, tmp_path, calib=True)
    assert_valid(variant)
    model = onnx.load(str(variant.path))
    branch_weights = [init for node in model.graph.node for attr in node.attribute
                      if attr.type == onnx.AttributeProto.GRAPH for init in attr.g.initializer]
    assert branch_weights and all(init.data_type == low for init in branch_weights)
    feed = dict(np.load(calib))
    reference = outputs(path, feed)
    np.testing.assert_allclose(outputs(variant.ort_path, feed), reference, atol=3e-2 * np.abs(reference).max())


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_quantizing_a_model_whose_weighted_ops_are_all_in_subgraphs_is_refused(models, precision, tmp_path):
    with pytest.raises(VariantError, match="inside an If/Loop/Scan subgraph") as refused:
        make(models, "if_weights", precision, tmp_path)
    assert "then_matmul" in str(refused.value)
    assert not list((tmp_path / "ws").glob("*.onnx"))


# ---- already-quantized models ----------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp16", "bf16", "int8", "fp8"])
def test_an_already_quantized_model_is_refused_as_such(models, precision, tmp_path):
    with pytest.raises(VariantError) as refused:
        make(models, "dynamically_quantized", precision, tmp_path)
    message = str(refused.value)
    assert "already dynamically quantized" in message and "MatMulInteger" in message
    assert "op_types_to_quantize" not in message
    assert not list((tmp_path / "ws").glob("*.onnx"))


def test_a_qdq_variant_given_back_as_the_model_is_refused_as_already_quantized(models, tmp_path):
    int8 = make(models, "opset12", "int8", tmp_path)
    with pytest.raises(VariantError, match="already quantized with QuantizeLinear/DequantizeLinear pairs"):
        make_variant(int8.path, "fp16", workspace=tmp_path / "again", progress=False)


def test_an_already_quantized_model_still_has_its_fp32_reference(models, tmp_path):
    assert_valid(make(models, "dynamically_quantized", "fp32", tmp_path))


# ---- the gate ----------------------------------------------------------------------------------------


def _dq_with_axis_at_opset(version: int) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((4, 3), np.int8), "w_q")
    scale = numpy_helper.from_array(np.full(4, 0.1, np.float32), "w_scale")
    zero = numpy_helper.from_array(np.zeros(4, np.int8), "w_zero")
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], name="w_dq", axis=0),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [weight, scale, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", version)])
    model.ir_version = 7
    return model


def test_the_gate_refuses_an_invalid_graph_naming_the_node():
    with pytest.raises(InvalidVariantError) as refused:
        validate_model(_dq_with_axis_at_opset(12), what="the test variant", source_nodes=["mm"])
    assert refused.value.node == "w_dq" and "axis" in refused.value.reason
    assert "w_dq" in str(refused.value) and "not written" in str(refused.value)
    assert validate_model(_dq_with_axis_at_opset(13), what="the test variant").runs_on_ort_cpu


def test_the_gate_keeps_a_missing_ort_kernel_apart_from_an_invalid_graph():
    x = helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [1, 1, 4, 4])
    w = helper.make_tensor("w", TensorProto.BFLOAT16, [1, 1, 1, 1], np.ones(1, np.float32).view(np.uint32)
                           .astype(np.uint16).tobytes(), raw=True)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [1, 1, 4, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    found = validate_model(model, what="a bf16 conv")
    assert found.runs_on_ort_cpu is False and "Conv" in found.ort_cpu_problem
    assert found.to_dict()["onnxruntime_cpu"].startswith("no kernel")
    with pytest.raises(InvalidVariantError, match="CPU provider"):  # an emulation must run there
        validate_model(model, what="an emulation", must_run=True)


def test_an_invalid_variant_is_never_written(models, tmp_path, monkeypatch):
    """Without the Cast fix, FP16 of the one-hot model is the invalid graph issue 11 found: refused, no file."""
    import workbench.precision.lowp as lowp

    monkeypatch.setattr(lowp, "fix_float_casts", lambda model: 0)
    with pytest.raises(InvalidVariantError) as refused:
        make(models, "int32_onehot", "fp16", tmp_path)
    assert refused.value.node == "onehot_cast"
    assert "--exclude onehot_cast" in str(refused.value)
    assert not list((tmp_path / "ws").glob("*"))


# ---- the command line: exit 0 with a valid file, or exit 2 in one line -------------------------------


def run_cli(argv, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "ws"))
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize("name,precision,extra", [
    ("opset10", "int8", []),
    ("opset10", "int8", ["--method", "percentile"]),
    ("ir3", "int8", []),
    ("initializer_inputs", "fp16", []),
    ("int32_onehot", "fp16", []),
    ("if_weights", "bf16", []),
    ("constant_weights", "fp8", []),
])
def test_cli_writes_valid_variants_of_every_trait(models, name, precision, extra, tmp_path, capsys, monkeypatch):
    path, calib = models[name]
    out = tmp_path / "out" / f"{name}.{precision}.onnx"
    code, stdout, err = run_cli(["quantize", path, "--precision", precision, "--calib", calib, *extra, "-o", out,
                                 "--json"], capsys, monkeypatch, tmp_path)
    assert code == 0, err
    result = json.loads(stdout)
    onnx.checker.check_model(str(out), full_check=True)
    if result["runs_on_ort_cpu"]:
        ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    else:
        ort.InferenceSession(result["emulation"], providers=["CPUExecutionProvider"])
    if name == "opset10" and precision == "int8":
        assert result["opset_upgrade"]["to"] == 13


@pytest.mark.parametrize("name,precision,words", [
    ("dynamically_quantized", "int8", "already dynamically quantized"),
    ("dynamically_quantized", "fp16", "already dynamically quantized"),
    ("if_weights", "int8", "inside an If/Loop/Scan subgraph"),
])
def test_cli_refuses_what_cannot_be_made_in_one_line(models, name, precision, words, tmp_path, capsys,
                                                      monkeypatch):
    path, calib = models[name]
    out = tmp_path / f"{name}.onnx"
    code, stdout, err = run_cli(["quantize", path, "--precision", precision, "--calib", calib, "-o", out, "--json"],
                                capsys, monkeypatch, tmp_path)
    assert code == 2
    assert words in json.loads(stdout)["error"]
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    assert not out.exists()


# ---- FP16's overflow check on random inputs says so; calibration data is used when given ----------


def _amplifier(gain: float = 1.0e4) -> onnx.ModelProto:
    """x [N, 8] -> Mul(gain) -> Relu -> Mul(1/gain) -> Gemm: x*gain overflows FP16 once |x| > 6.55."""
    inits = [numpy_helper.from_array(np.array(gain, np.float32), "gain"),
             numpy_helper.from_array(np.array(1.0 / gain, np.float32), "ungain"),
             numpy_helper.from_array(np.eye(4, 8, dtype=np.float32), "fc_w")]
    nodes = [helper.make_node("Mul", ["x", "gain"], ["big"], name="amplify"),
             helper.make_node("Relu", ["big"], ["big_relu"], name="relu"),
             helper.make_node("Mul", ["big_relu", "ungain"], ["small"], name="attenuate"),
             helper.make_node("Gemm", ["small", "fc_w"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "amplifier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_fp16_overflow_check_without_data_warns_and_real_data_catches_more(tmp_path, capsys, monkeypatch):
    path = tmp_path / "amplifier.onnx"
    onnx.save(_amplifier(), str(path))
    real = tmp_path / "real.npz"  # real inputs reach 10; random standard-normal ones stay below 6.55
    np.savez(real, x=np.random.default_rng(0).uniform(8, 10, (32, 8)).astype(np.float32))
    code, stdout, err = run_cli(["quantize", path, "--precision", "fp16", "--json"], capsys, monkeypatch, tmp_path)
    assert code == 0
    guessed = json.loads(stdout)
    assert guessed["warnings"] and "random inputs" in guessed["warnings"][0] and "--calib" in guessed["warnings"][0]
    assert "warning: FP16 overflow safeguard" in err  # on stderr, with --json too
    assert "amplify" not in guessed["kept_fp32"]  # random inputs never reach the overflow
    code, stdout, err = run_cli(["quantize", path, "--precision", "fp16", "--calib", real, "--json"], capsys,
                                monkeypatch, tmp_path)
    assert code == 0
    measured = json.loads(stdout)
    assert measured["warnings"] == [] and "warning" not in err
    assert {"amplify", "relu"} <= set(measured["kept_fp32"])
    feed = dict(np.load(real))
    reference = outputs(path, feed)
    np.testing.assert_allclose(outputs(measured["emulation"] or measured["variant"], feed), reference, rtol=1e-2)


# ---- honest calibration methods -------------------------------------------------------------------------


def _weights(path) -> dict:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize("method,settings,same", [
    ("entropy", {}, "minmax"),
    ("distribution", {}, "minmax"),
    ("entropy", {"num_bins": 2048}, None),
    ("percentile", {}, None),
])
def test_methods_say_when_they_give_minmax_ranges(models, method, settings, same, tmp_path):
    minmax = make(models, "opset12", "int8", tmp_path)
    variant = make(models, "opset12", "int8", tmp_path, method=method, **settings)
    calibration = variant.record["calibration"]
    assert calibration["same_ranges_as"] == same
    a, b = _weights(minmax.path), _weights(variant.path)
    scales_equal = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert scales_equal == (same == "minmax")  # the claim is checked against the variants themselves
    if same:
        assert calibration["why"] and calibration["differs_with"]


def test_cli_names_the_settings_that_make_entropy_differ(models, tmp_path, capsys, monkeypatch):
    path, calib = models["opset12"]
    code, stdout, err = run_cli(["quantize", path, "--calib", calib, "--method", "entropy", "--json"], capsys,
                                monkeypatch, tmp_path)
    assert code == 0
    result = json.loads(stdout)
    assert result["same_ranges_as"] == "minmax" and "--num-bins" in result["differs_with"]
    assert "note: --method entropy gives the same ranges as minmax" in err
    code, stdout, err = run_cli(["quantize", path, "--calib", calib, "--method", "entropy", "--num-bins", "2048",
                                 "--json"], capsys, monkeypatch, tmp_path)
    assert code == 0 and json.loads(stdout)["same_ranges_as"] is None and "note:" not in err
    assert json.loads(stdout)["recipe"]["num_bins"] == 2048



def test_a_source_that_fails_the_full_check_is_named_as_the_problem(tmp_path):
    """A model whose value_info contradicts its ops passes load_model's checker but not the full
    check: its variants are refused, saying the model itself is the problem."""
    model = cnn(13)
    model.graph.value_info.append(helper.make_tensor_value_info("relu", TensorProto.INT64, ["N", 4, 8, 8]))
    path = tmp_path / "contradicting.onnx"
    onnx.save(model, str(path))
    with pytest.raises(VariantError, match="contradicting.onnx itself fails onnx.checker's full check") as refused:
        make_variant(path, "fp16", workspace=tmp_path / "ws", progress=False)
    assert "at node '" in str(refused.value) and not isinstance(refused.value, InvalidVariantError)
    assert not list((tmp_path / "ws").glob("*.onnx"))
