"""Build plans of models with the traits real models have, without TensorRT (issue 11).

Every model here is made in the test, with the tools users make them with where there is one
(ONNX Runtime's dynamic and static quantizers), and checked to run on ONNX Runtime:

* images of any height and width, and data with many samples: the profile's opt batch is the
  batch given (default 1), never the data's sample count; the dynamic non-batch dimensions are
  stated in the plan (``dynamic_dims``) and the plan warns that they are pinned to the data;
* a recurrent state ``[2, N, 4]`` whose samples run along axis 1 (the data description):
  its batch dimension is the batch, not the data's size;
* ONNX Runtime's dynamic quantization (ConvInteger, MatMulInteger, DynamicQuantizeLinear), an
  ONNX Runtime contrib operator (``com.microsoft``) inside an If branch and asymmetric Q/DQ
  (zero point not 0): listed in ``unsupported_ops`` before any build, and a build is refused;
* the trtexec line saves the engine and uses the timing cache when the recipe does.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench import cli
from workbench.backends.tensorrt import onnx_ops
from workbench.backends.tensorrt.build import TensorRTBuildError, plan_build
from workbench.backends.tensorrt.recipe import BuildRecipeError
from workbench.backends.tensorrt.shapes import ShapeRange, choose_profile, plan_profile
from workbench.backends.tensorrt.trtexec import parse_trtexec_argv, trtexec_echo
from workbench.workflows.build import build_command

PLAN_KEYS = {"model", "model_sha256", "recipe", "profile", "inputs", "outputs", "trtexec_command",
             "trtexec_command_line", "warnings"}  # the keys before issue 11: kept


def save(model: onnx.ModelProto, path) -> str:
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # it runs
    return str(path)


def conv_model(path, *, matmul: bool = False) -> str:
    """A Conv (+ ReLU) on ``[N, 3, H, W]`` images of any size, or (with a MatMul over the width)
    on ``[N, 3, 8, 16]``."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu")]
    out, out_shape = "r", ["N", 4, "H", "W"]
    if matmul:
        weights.append(numpy_helper.from_array(rng.normal(0, 0.3, (16, 5)).astype(np.float32), "m"))
        nodes.append(helper.make_node("MatMul", ["r", "m"], ["y"], name="matmul"))
        out, out_shape = "y", ["N", 4, 8, 5]
    shape = ["N", 3, 8, 16] if matmul else ["N", 3, "H", "W"]
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], weights)
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def state_model(path) -> str:
    """``out = state * mean(audio)``: audio ``[N, T]`` and a state ``[2, N, 4]`` (batch on axis 1)."""
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes0")
    nodes = [helper.make_node("ReduceMean", ["audio"], ["m"], axes=[1], keepdims=1, name="mean"),
             helper.make_node("Unsqueeze", ["m", "axes0"], ["m3"], name="unsqueeze"),
             helper.make_node("Mul", ["state", "m3"], ["out"], name="mul")]
    graph = helper.make_graph(
        nodes, "stateful",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", "T"]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "N", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, "N", 4])], [axes])
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def contrib_in_if_model(path) -> str:
    """An If whose then-branch runs ONNX Runtime's ``com.microsoft`` FusedMatMul."""
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    then_graph = helper.make_graph(
        [helper.make_node("FusedMatMul", ["x", "w"], ["t"], domain="com.microsoft", alpha=2.0, name="fused")],
        "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 4])])
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"], name="same")],
        "else", [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 4])])
    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["y"], then_branch=then_graph, else_branch=else_graph, name="branch")],
        "contrib",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(model, str(path))  # the checker does not know com.microsoft; ONNX Runtime runs it
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(session.run(None, {"x": x, "flag": np.array(True)})[0], 2 * x)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    root = tmp_path_factory.mktemp("plans")
    conv = conv_model(root / "conv.onnx")
    fixed_width = conv_model(root / "conv_matmul.onnx", matmul=True)
    quantize_dynamic(fixed_width, str(root / "dynamic_int8.onnx"), op_types_to_quantize=["Conv", "MatMul"],
                     weight_type=QuantType.QInt8)

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.feeds = iter([{"x": rng.uniform(-1, 1, (1, 3, 8, 16)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(fixed_width, str(root / "qdq_uint8.onnx"), Reader(), activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    for name in ("dynamic_int8.onnx", "qdq_uint8.onnx"):
        ort.InferenceSession(str(root / name), providers=["CPUExecutionProvider"])
    np.savez(root / "many.npz", x=np.random.default_rng(2).normal(size=(552, 3, 8, 20)).astype(np.float32))
    return {
        "root": root, "conv": conv, "state": state_model(root / "state.onnx"),
        "dynamic_int8": str(root / "dynamic_int8.onnx"), "qdq_uint8": str(root / "qdq_uint8.onnx"),
        "contrib": contrib_in_if_model(root / "contrib.onnx"), "many": str(root / "many.npz"),
    }


# ------------------------------------------------------------------------------------------
# Batch and dynamic dimensions


def test_opt_batch_is_the_batch_not_the_sample_count(models):
    plan = build_command(models["conv"], data=models["many"], plan_only=True)["plan"]
    assert PLAN_KEYS | {"unsupported_ops", "dynamic_dims"} <= set(plan)
    # 552 samples: the batch range is the default 1..32, and no dimension is 552.
    assert plan["profile"]["x"] == {"min": [1, 3, 8, 20], "opt": [1, 3, 8, 20], "max": [32, 3, 8, 20]}
    assert "552" not in plan["trtexec_command_line"]
    assert any("opt batch is 1" in w and "--batch" in w for w in plan["warnings"])
    batched = build_command(models["conv"], data=models["many"], batch=16, plan_only=True)["plan"]
    assert batched["profile"]["x"]["opt"] == [16, 3, 8, 20] and batched["profile"]["x"]["max"] == [32, 3, 8, 20]
    assert not any("opt batch is 1" in w for w in batched["warnings"])
    bigger = build_command(models["conv"], data=models["many"], batch=64, plan_only=True)["plan"]
    assert bigger["profile"]["x"]["max"][0] == 64


def test_dynamic_width_is_stated_and_warned_about(models):
    plan = build_command(models["conv"], data=models["many"], batch=8, plan_only=True)["plan"]
    dims = {(d["input"], d["axis"]): d for d in plan["dynamic_dims"]}
    assert dims[("x", 0)] == {"input": "x", "axis": 0, "name": "N", "role": "batch", "min": 1, "opt": 8,
                              "max": 32, "source": "batch"}
    assert dims[("x", 3)] == {"input": "x", "axis": 3, "name": "W", "role": "other", "min": 20, "opt": 20,
                              "max": 20, "source": "data"}
    assert dims[("x", 2)]["source"] == "data" and dims[("x", 2)]["opt"] == 8
    pinned = [w for w in plan["warnings"] if "pins them" in w]
    assert len(pinned) == 1 and "dimension 3 ('W') = 20" in pinned[0] and '"shapes": {"x"' in pinned[0]
    # A range from the recipe: stated as such, and nothing is pinned.
    recipe = {"shapes": {"x": {"min": [1, 3, 8, 8], "opt": [8, 3, 8, 20], "max": [32, 3, 8, 640]}}}
    ranged = plan_build(models["conv"], recipe)
    assert ranged.profile["x"] == ShapeRange((1, 3, 8, 8), (8, 3, 8, 20), (32, 3, 8, 640))
    assert {d["source"] for d in ranged.dynamic_dims} == {"recipe"}
    assert not any("pins" in w for w in ranged.warnings)
    # Without data or shapes: refused, naming the input, the dimension and the three ways out.
    with pytest.raises(BuildRecipeError, match=r"dimension 2 \('H'\).*--data.*--shapes x:<N>x3x<H>x<W>.*recipe"):
        plan_build(models["conv"])


def test_shapes_flag_sets_the_sizes_and_the_batch(models, capsys):
    code = cli.main(["build", models["conv"], "--plan-only", "--shapes", "x:4x3x32x320", "--json"])
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert code == 0
    assert plan["profile"]["x"] == {"min": [1, 3, 32, 320], "opt": [4, 3, 32, 320], "max": [32, 3, 32, 320]}
    flags = parse_trtexec_argv(plan["trtexec_command"])
    assert flags["--optShapes"] == "x:4x3x32x320"
    code = cli.main(["build", models["conv"], "--plan-only", "--shapes", "x:4x3x32x320", "--data", models["many"]])
    assert code == 2 and "not both" in capsys.readouterr().err


def test_state_batch_on_axis_1_follows_the_batch(models, tmp_path):
    audio = np.random.default_rng(3).normal(size=(300, 576)).astype(np.float32)
    state = np.zeros((2, 300, 4), np.float32)
    np.savez(tmp_path / "vad.npz", audio=audio, state=state,
             __spec__=np.array(json.dumps({"sample_axes": {"state": 1}})))
    plan = build_command(models["state"], data=tmp_path / "vad.npz", batch=8, plan_only=True)["plan"]
    assert plan["profile"]["state"] == {"min": [2, 1, 4], "opt": [2, 8, 4], "max": [2, 32, 4]}
    assert plan["profile"]["audio"] == {"min": [1, 576], "opt": [8, 576], "max": [32, 576]}
    roles = {(d["input"], d["axis"]): d["role"] for d in plan["dynamic_dims"]}
    assert roles == {("audio", 0): "batch", ("audio", 1): "other", ("state", 1): "batch"}
    # Without the description the state's batch is still found: it shares the name "N".
    specs = [{"name": "audio", "shape": ["N", "T"]}, {"name": "state", "shape": [2, "N", 4]}]
    profile = choose_profile(specs, data_shapes={"audio": (300, 576), "state": (2, 300, 4)}, batch=8,
                             sample_axes={"state": 1})
    assert profile["state"] == ShapeRange((2, 1, 4), (2, 8, 4), (2, 32, 4))
    shared = plan_profile(specs, data_shapes={"audio": (300, 576)}, batch=2)
    assert shared.profile["state"] == ShapeRange((2, 1, 4), (2, 2, 4), (2, 32, 4))
    # The state's fixed sizes are still checked (axis 1 holds the samples, the rest must fit).
    with pytest.raises(BuildRecipeError, match="fixes it at 4"):
        choose_profile(specs, data_shapes={"audio": (3, 576), "state": (2, 3, 5)}, sample_axes={"state": 1})


# ------------------------------------------------------------------------------------------
# Operators TensorRT's ONNX parser cannot take


def test_dynamic_quantization_ops_are_listed(models):
    plan = build_command(models["dynamic_int8"], plan_only=True)["plan"]
    listed = {e["op_type"]: e for e in plan["unsupported_ops"]}
    assert {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"} <= set(listed)
    assert listed["ConvInteger"]["count"] == 1 and listed["ConvInteger"]["nodes"]
    assert listed["DynamicQuantizeLinear"]["count"] == 2  # one before the Conv, one before the MatMul
    assert all(e["source"] == onnx_ops.SOURCE for e in plan["unsupported_ops"])
    assert any("ConvInteger" in w and "parser cannot take" in w for w in plan["warnings"])
    # Building is refused before TensorRT is called (whether or not it is installed).
    with pytest.raises(TensorRTBuildError, match="ConvInteger.*quantize --precision int8"):
        build_command(models["dynamic_int8"], progress=None)


def test_contrib_op_inside_a_subgraph_is_listed(models):
    entries = plan_build(models["contrib"]).unsupported_ops
    assert [(e["op_type"], e["domain"], e["count"]) for e in entries] == [("FusedMatMul", "com.microsoft", 1)]
    assert entries[0]["nodes"] == ["branch/then_branch/fused"] and "plugin" in entries[0]["reason"]


def test_asymmetric_qdq_is_listed_and_symmetric_is_not(models):
    entries = plan_build(models["qdq_uint8"]).unsupported_ops
    assert entries and {e["op_type"] for e in entries} <= {"QuantizeLinear", "DequantizeLinear"}
    assert all("zero point is not 0" in e["reason"] for e in entries)
    assert plan_build(models["conv"], inputs={"x": (1, 3, 8, 8)}).unsupported_ops == []


def test_cli_refuses_a_build_of_unsupported_ops_in_one_line(models, capsys):
    code = cli.main(["build", models["dynamic_int8"], "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert "ConvInteger" in json.loads(captured.out)["error"]
    assert len([line for line in captured.err.splitlines() if "error:" in line]) == 1
    assert "Traceback" not in captured.err


def test_support_tables_are_consistent():
    assert "onnx-tensorrt" in onnx_ops.SOURCE and "operators.md" in onnx_ops.SOURCE
    assert not set(onnx_ops.UNSUPPORTED_OPS) & onnx_ops.SUPPORTED_OPS
    assert {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QLinearConv"} <= set(onnx_ops.UNSUPPORTED_OPS)
    assert {"Conv", "MatMul", "If", "LSTM", "QuantizeLinear", "DequantizeLinear", "Resize"} <= onnx_ops.SUPPORTED_OPS
    # Every standard operator ONNX knows is classified, or is newer than the matrix.
    from onnx import defs

    standard = {s.name for s in defs.get_all_schemas() if s.domain == ""}
    assert (onnx_ops.SUPPORTED_OPS | set(onnx_ops.UNSUPPORTED_OPS)) - standard <= {
        "ImageScaler", "ParametricSoftplus", "ScaledTanh", "Scatter", "Upsample", "Crop"}


def test_opset_outside_the_parsers_range_is_warned_about(models):
    model = onnx.load(models["conv"])
    assert onnx_ops.opset_warning(model) is None
    model.opset_import[0].version = 8
    assert "opset 8" in onnx_ops.opset_warning(model) and "9 to 24" in onnx_ops.opset_warning(model)


# ------------------------------------------------------------------------------------------
# The trtexec line


def test_trtexec_line_saves_the_engine_and_uses_the_timing_cache(models):
    plan = plan_build(models["conv"], batch=4, inputs={"x": (4, 3, 8, 20)})
    flags = parse_trtexec_argv(plan.to_dict()["trtexec_command"])
    assert flags["--saveEngine"] == f"conv.{plan.model_sha256[:12]}.plan"
    assert flags["--timingCacheFile"] == "trtexec-timing.cache"
    assert trtexec_echo(plan.to_dict()["trtexec_command"])[("Build Options", "timingCacheMode")] == "global"
    no_cache = plan_build(models["conv"], {"timing_cache": False}, batch=4, inputs={"x": (4, 3, 8, 20)})
    flags = parse_trtexec_argv(no_cache.to_dict()["trtexec_command"])
    assert "--timingCacheFile" not in flags and flags["--saveEngine"].endswith(".plan")
    # An explicit cache file (the workspace's, per platform, in a real build) wins; None leaves it out.
    assert parse_trtexec_argv(plan.trtexec_command(timing_cache="/c/t.cache"))["--timingCacheFile"] == "/c/t.cache"
    assert "--timingCacheFile" not in parse_trtexec_argv(plan.trtexec_command(timing_cache=None))
