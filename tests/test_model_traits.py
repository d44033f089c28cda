"""Model and data in: traits real models have, each on a small model built here with onnx.helper.

An opset-10 export with weights listed as inputs (IR 3), weights in Constant nodes, an If whose
branches hold weights, a model with a scalar input and a recurrent state whose samples run along
axis 1, unnamed nodes, a dynamically quantized model and an LSTM the version converter cannot
upgrade. For each: what the loader normalizes (and that ``normalize=False`` gives the model as
stored), that every normalized model passes the full ONNX checker and computes what the stored one
computes on ONNX Runtime, what the summary says (parameters, FLOPs or why they are unknown,
quantization), that node names agree between ``inspect``, the ORT layer table and the model, and
that ``profile``/``bench`` take a data description or refuse in one line with exit 2.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench import cli
from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend
from workbench.datasets import (
    InputDataError,
    check_model_inputs,
    iter_batches,
    load_data,
    load_labelled,
    save_npz,
    spec_array,
    take_batch,
)
from workbench.datasets.arrays import synthetic_inputs
from workbench.datasets.calibration_sets import load_calibration_set
from workbench.errors import ModelLoadError
from workbench.model import load_model
from workbench.model.names import ensure_node_names
from workbench.model.normalize import default_opset, upgrade_opset

RNG = np.random.default_rng(0)


def _weights(name, *shape):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _save(model: onnx.ModelProto, path) -> str:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _run(model, feed: dict) -> list[np.ndarray]:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _assert_valid_and_equivalent(loaded, feed: dict) -> None:
    """The normalized model passes the full checker and computes what the stored file computes."""
    onnx.checker.check_model(loaded.proto, full_check=True)
    for got, want in zip(_run(loaded.proto, feed), _run(loaded.path, feed)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# --- the models ------------------------------------------------------------------------------


def old_export(path) -> str:
    """Opset 10, IR 3, weights listed among the graph inputs (old PyTorch exports), unnamed nodes."""
    w, b = _weights("conv.weight", 4, 3, 3, 3), _weights("conv.bias", 4)
    fc, fc_b = _weights("fc.weight", 5, 36), _weights("fc.bias", 5)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])]
    inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in (w, b, fc, fc_b)]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "old", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                              [w, b, fc, fc_b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)], producer_name="pytorch")
    model.ir_version = 3
    return _save(model, path)


def constant_weights(path) -> str:
    """Weights in Constant nodes (Paddle2ONNX style), a BatchNormalization with large variances."""
    def const(name, tensor):
        tensor = onnx.TensorProto.FromString(tensor.SerializeToString())
        tensor.name = ""
        return helper.make_node("Constant", [], [name], name=f"const_{name}", value=tensor)

    scale = numpy_helper.from_array(np.ones(4, np.float32), "s")
    var = numpy_helper.from_array(np.full(4, 1e8, np.float32), "v")
    nodes = [
        const("w", _weights("w", 4, 3, 3, 3)), const("bn_scale", scale), const("bn_bias", _weights("b", 4)),
        const("bn_mean", _weights("m", 4)), const("bn_var", var),
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv2d_0", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["y"],
                         name="batch_norm_0"),
    ]
    graph = helper.make_graph(nodes, "paddle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def if_with_weights(path) -> str:
    """An If whose branches hold the weights (one as an initializer, one as a Constant)."""
    then_w = _weights("then_w", 8, 4)
    then = helper.make_graph([helper.make_node("MatMul", ["x", "then_w"], ["then_y"], name="then_matmul")], "then",
                             [], [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, ["N", 4])], [then_w])
    else_w = _weights("", 8, 4)
    orelse = helper.make_graph([
        helper.make_node("Constant", [], ["else_w"], name="else_const", value=else_w),
        helper.make_node("MatMul", ["x", "else_w"], ["else_y"], name="else_matmul"),
    ], "else", [], [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, ["N", 4])])
    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["y"], name="branch", then_branch=then, else_branch=orelse)], "if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def stateful(path) -> str:
    """A voice-activity-like model: audio [N, 16], a scalar sample rate, a state [2, N, 8]."""
    w = _weights("w", 16, 8)
    nodes = [
        helper.make_node("MatMul", ["audio", "w"], ["h"], name="proj"),
        helper.make_node("Cast", ["sr"], ["sr_f"], name="sr_cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["h", "sr_f"], ["h_sr"], name="scale"),
        helper.make_node("ReduceSum", ["state", "axis0"], ["s"], name="state_sum", keepdims=0),
        helper.make_node("Add", ["h_sr", "s"], ["out"], name="mix"),
        helper.make_node("Unsqueeze", ["out", "axis0"], ["out1"], name="unsqueeze"),
        helper.make_node("Concat", ["out1", "out1"], ["new_state"], name="next_state", axis=0),
    ]
    graph = helper.make_graph(
        nodes, "vad",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", 16]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, []),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "N", 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 8]),
         helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [2, "N", 8])],
        [w, numpy_helper.from_array(np.array([0], np.int64), "axis0")])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def unnamed(path) -> str:
    """Unnamed nodes and a duplicate name, with something for ORT to fuse (Conv + Add + Relu)."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "bias"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"], name="act"),
        helper.make_node("Conv", ["r", "w2"], ["c2"]),
        helper.make_node("Relu", ["c2"], ["y"], name="act"),
    ]
    graph = helper.make_graph(
        nodes, "unnamed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
        [_weights("w", 4, 3, 3, 3), _weights("bias", 1, 4, 1, 1), _weights("w2", 2, 4, 1, 1)])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def dynamically_quantized(tmp_path) -> str:
    """ONNX Runtime's dynamic quantization of a two-MatMul model (DynamicQuantizeLinear, MatMulInteger)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
                              [_weights("w1", 32, 64), _weights("w2", 64, 8)])
    fp32 = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "mlp.onnx")
    out = tmp_path / "mlp.dynamic.onnx"
    quantize_dynamic(fp32, str(out), weight_type=QuantType.QInt8)
    return str(out)


def old_lstm(path) -> str:
    """An LSTM at opset 6, which ONNX's version converter has no adapter for."""
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm", hidden_size=2)], "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 1, 1, 2])],
        [_weights("W", 1, 8, 4), _weights("R", 1, 8, 2)])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)]), path)


def _cli(argv, capsys) -> tuple[int, dict | None, str]:
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    data = json.loads(out) if "--json" in argv and out.strip() else None
    return code, data, err


# --- normalization ---------------------------------------------------------------------------


def test_old_export_is_normalized_and_reversible(tmp_path):
    path = old_export(tmp_path / "old.onnx")
    loaded = load_model(path)
    steps = {s["step"]: s["detail"] for s in loaded.summary.normalization}
    assert set(steps) == {"ir_version", "node_names", "initializer_inputs"}
    assert "3 -> 5" in steps["ir_version"] and "4 initializer(s)" in steps["initializer_inputs"]
    assert [i.name for i in loaded.proto.graph.input] == ["x"] and loaded.proto.ir_version == 5
    assert loaded.summary.inputs == [{"name": "x", "dtype": "float32", "shape": [1, 3, 6, 6]}]
    assert loaded.node_names == ["Conv_0", "Relu_1", "MaxPool_2", "Flatten_3", "Gemm_4"]
    assert loaded.normalized and loaded.renamed_nodes == dict.fromkeys(loaded.node_names, "")
    _assert_valid_and_equivalent(loaded, {"x": RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)})

    stored = load_model(path, normalize=False)
    assert stored.summary.normalization == [] and not stored.normalized
    assert stored.proto.SerializeToString() == onnx.load(path).SerializeToString()
    assert stored.summary.parameters == loaded.summary.parameters == 4 * 27 + 4 + 5 * 36 + 5


def test_opset_upgrade_for_per_channel_qdq(tmp_path):
    loaded = load_model(old_export(tmp_path / "old.onnx"))
    assert upgrade_opset(loaded.proto, 10) is loaded.proto  # already high enough: untouched
    upgraded = upgrade_opset(loaded.proto, 13, path=loaded.path)
    assert default_opset(upgraded) == 13 and default_opset(loaded.proto) == 10
    onnx.checker.check_model(upgraded, full_check=True)
    assert [n.name for n in upgraded.graph.node] == loaded.node_names
    assert not any(n.op_type == "Constant" for n in upgraded.graph.node)
    feed = {"x": RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)}
    np.testing.assert_allclose(_run(upgraded, feed)[0], _run(loaded.proto, feed)[0], rtol=1e-6)


def test_opset_upgrade_refused_where_the_converter_cannot(tmp_path):
    loaded = load_model(old_lstm(tmp_path / "lstm.onnx"))
    with pytest.raises(ModelLoadError) as info:
        upgrade_opset(loaded.proto, 13, path=loaded.path)
    message = str(info.value)
    assert "lstm.onnx" in message and "from opset 6" in message and "LSTM" in message
    assert "opset_version" in message and "\n" not in message


def test_constant_weights_become_initializers(tmp_path):
    path = constant_weights(tmp_path / "paddle.onnx")
    loaded = load_model(path)
    assert [s["step"] for s in loaded.summary.normalization] == ["fold_constants"]
    assert loaded.node_names == ["conv2d_0", "batch_norm_0"]  # the nodes they fed keep their names
    weights = {t.name: numpy_helper.to_array(t) for t in loaded.proto.graph.initializer}
    assert {"w", "bn_scale", "bn_bias", "bn_mean", "bn_var"} <= set(weights)
    assert weights["bn_var"].max() == 1e8  # now visible to the FP16 overflow check as a weight
    assert loaded.summary.parameters == load_model(path, normalize=False).summary.parameters == 108 + 16
    _assert_valid_and_equivalent(loaded, {"x": RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)})
    assert any(n.op_type == "Constant" for n in load_model(path, normalize=False).proto.graph.node)


def test_if_with_weights_counts_parameters_and_says_flops_are_unknown(tmp_path, capsys):
    path = if_with_weights(tmp_path / "if.onnx")
    loaded = load_model(path)
    summary = loaded.summary
    assert summary.parameters == 2 * 8 * 4
    assert summary.flops is None and summary.macs is None and summary.flops_by_op == {}
    assert "If/Loop/Scan" in summary.flops_unknown_reason
    _assert_valid_and_equivalent(loaded, {"x": np.ones((3, 8), np.float32), "flag": np.array(False)})
    code, data, _ = _cli(["inspect", path, "--json"], capsys)
    assert code == 0 and data["flops"] is None and data["parameters"] == 64
    assert "If/Loop/Scan" in data["flops_unknown_reason"]
    code, _, _ = _cli(["inspect", path], capsys)
    assert code == 0


def test_dynamic_dims_make_flops_unknown_not_tiny(tmp_path):
    weight = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "ocr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 30, "w2"])], [weight])
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "ocr.onnx")
    summary = load_model(path).summary
    assert summary.flops is None and "width" in summary.flops_unknown_reason
    assert "unknown" in dict(summary.facts())["FLOPs (per sample)"]


def test_unnamed_nodes_share_names_with_the_layer_table(tmp_path, capsys):
    path = unnamed(tmp_path / "unnamed.onnx")
    loaded = load_model(path)
    expected = ["Conv_0", "Add_1", "act", "Conv_3", "act_4"]
    assert loaded.node_names == expected
    stored = onnx.load(path)
    ensure_node_names(stored.graph)  # the one rule, applied to the stored file, gives the same names
    assert [n.name for n in stored.graph.node] == expected

    code, data, _ = _cli(["inspect", path, "--json"], capsys)
    assert code == 0
    assert data["nodes"] == [{"name": n.name, "op_type": n.op_type} for n in loaded.proto.graph.node]

    for model in (loaded, path):  # the engine built from the loaded model, and from the file
        table = OnnxRuntimeBackend().build(model, {"graph_optimization_level": "all"}).layers()
        named = {name for nodes in table["onnx_nodes"] for name in nodes}
        named |= set(table.attrs.get("folded_onnx_nodes", []))
        assert named == set(expected)
    assert any(len(nodes) > 1 for nodes in table["onnx_nodes"])  # ORT fused some of them

    code, data, _ = _cli(["profile", path, "--iterations", "2", "--json"], capsys)
    assert code == 0
    assert {name for layer in data["layers"] for name in layer["onnx_nodes"]} <= set(expected)


def test_dynamically_quantized_model_is_recognized(tmp_path, capsys):
    path = dynamically_quantized(tmp_path)
    summary = load_model(path).summary
    assert summary.quantized
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= set(summary.quantized_ops)
    assert summary.flops is None and "integer ops" in summary.flops_unknown_reason
    statement = summary.quantized_statement()
    assert statement.startswith("this model is already dynamically quantized")
    code, data, _ = _cli(["inspect", path, "--json"], capsys)
    assert code == 0 and data["quantized"] is True and data["quantized_ops"]["MatMulInteger"] == 2
    assert cli.main(["inspect", path]) == 0
    assert f"quantized: {statement}" in capsys.readouterr().out
    assert not load_model(old_export(tmp_path / "old.onnx")).summary.quantized


def test_inspect_text_lists_normalization_and_node_names(tmp_path, capsys):
    assert cli.main(["inspect", old_export(tmp_path / "old.onnx"), "--nodes"]) == 0
    out = capsys.readouterr().out
    assert "loaded with: 4 initializer(s) removed" in out and "node: Gemm_4 [Gemm]" in out


# --- data with a description -----------------------------------------------------------------


def _stateful_data(samples: int = 10) -> dict:
    return {"audio": RNG.standard_normal((samples, 16)).astype(np.float32), "sr": np.array(16000, np.int64),
            "state": RNG.standard_normal((2, samples, 8)).astype(np.float32)}


def test_sample_axes_batch_the_data(tmp_path):
    arrays = _stateful_data()
    path = save_npz(tmp_path / "vad.npz", arrays, labels=np.arange(10), sample_axes={"state": 1})
    with pytest.raises(InputDataError, match="already exists"):
        save_npz(path, arrays)
    data = load_data(path, ["audio", "sr", "state"])
    assert data.sample_axes == {"audio": 0, "sr": None, "state": 1} and data.num_samples == 10
    feeds = list(data.batches(4))
    assert [f["state"].shape for f in feeds] == [(2, 4, 8), (2, 4, 8), (2, 2, 8)]
    assert all(f["sr"].shape == () for f in feeds)
    np.testing.assert_array_equal(np.concatenate([f["state"] for f in feeds], axis=1), arrays["state"])
    assert take_batch(arrays, 3, data.sample_axes, start=9)["audio"].shape == (1, 16)
    assert len(list(iter_batches({"sr": arrays["sr"]}, 8))) == 1  # nothing to batch: one feed

    inputs, labels, _ = load_labelled(path, ["audio", "sr", "state"], limit=5)
    assert inputs["state"].shape == (2, 5, 8) and labels.tolist() == [0, 1, 2, 3, 4]

    # the same description given as an argument, or inside an in-memory dict
    assert load_data(arrays, sample_axes={"state": 1}).num_samples == 10
    assert load_data({**arrays, "__spec__": spec_array({"state": -2})}).sample_axes["state"] == 1

    calib = load_calibration_set(path, load_model(stateful(tmp_path / "vad.onnx")))
    assert calib.num_samples == 10 and calib.subset(4, random=True).inputs["state"].shape == (2, 4, 8)
    assert calib.to_dict()["inputs"]["state"]["shape"] == [2, 8]


def test_mismatched_description_is_refused_without_contradiction(tmp_path):
    arrays = _stateful_data()
    np.savez(tmp_path / "plain.npz", **arrays)  # no description: the state's axis 0 (2) is not the 10 samples
    with pytest.raises(InputDataError) as info:
        load_data(tmp_path / "plain.npz")
    message = str(info.value)
    assert "'audio' 10 (axis 0)" in message and "'state' 2 (axis 0)" in message and "sample_axes" in message

    specs = load_model(stateful(tmp_path / "vad.onnx")).summary.inputs
    with pytest.raises(InputDataError) as info:  # a per-sample rate where the model takes one scalar
        check_model_inputs({**arrays, "sr": np.full(10, 16000, np.int64)}, specs, {"state": 1})
    message = str(info.value)
    assert "input 'sr' is an array shaped [10] (samples along axis 0) but the model takes []" in message
    assert "give a 0-d array" in message
    with pytest.raises(InputDataError, match=r"has no axis 3 for its samples"):
        load_data(arrays, sample_axes={"state": 3})
    with pytest.raises(InputDataError, match=r"names \['statee'\], which hold no array"):
        load_data(arrays, sample_axes={"statee": 1})
    with pytest.raises(InputDataError, match="whole number or None"):
        load_data(arrays, sample_axes={"state": "1"})


def test_random_inputs_never_guess_dynamic_dims():
    specs = [{"name": "state", "dtype": "float32", "shape": [2, "N", 8]}]
    with pytest.raises(InputDataError) as info:
        synthetic_inputs(specs)
    assert "input 'state' has dynamic dim 1 ('N')" in str(info.value)
    assert "--shapes state:2x<N>x8" in str(info.value)
    assert synthetic_inputs(specs, sample_axes={"state": 1}, batch=3)["state"].shape == (2, 3, 8)
    assert synthetic_inputs(specs, shapes={"state": (2, 5, 8)})["state"].shape == (2, 5, 8)


def test_profile_and_bench_take_a_data_description(tmp_path, capsys):
    model = stateful(tmp_path / "vad.onnx")
    data = str(save_npz(tmp_path / "vad.npz", _stateful_data(), sample_axes={"state": 1}))
    code, result, err = _cli(["bench", model, "--data", data, "--batch", "4", "--iterations", "5", "--json"], capsys)
    assert code == 0, err
    assert result["batch_size"] == 4
    assert result["input_shapes"] == {"audio": [4, 16], "sr": [], "state": [2, 4, 8]}
    code, result, err = _cli(["profile", model, "--data", data, "--batch", "3", "--iterations", "3", "--json"], capsys)
    assert code == 0, err
    assert result["source"]["input_shapes"]["state"] == [2, 3, 8] and result["layers"]

    code, result, err = _cli(["bench", model, "--iterations", "3", "--json"], capsys)  # no data: refused
    assert code == 2 and "input 'audio' has dynamic dim 0" not in result["error"]
    assert "input 'state' has dynamic dim 1 ('N')" in result["error"] and "--shapes" in result["error"]
    assert len([line for line in err.splitlines() if "error:" in line]) == 1

    code, result, err = _cli(["bench", model, "--shapes", "state:2x2x8", "--batch", "2", "--iterations", "3",
                              "--json"], capsys)
    assert code == 0, err
    assert result["input_shapes"] == {"audio": [2, 16], "sr": [], "state": [2, 2, 8]}

    np.savez(tmp_path / "plain.npz", **_stateful_data())
    code, result, _ = _cli(["profile", model, "--data", str(tmp_path / "plain.npz"), "--json"], capsys)
    assert code == 2 and "'state' 2 (axis 0)" in result["error"]


def test_a_fixed_batch_is_enforced_per_feed(tmp_path, capsys):
    path = old_export(tmp_path / "old.onnx")  # input [1, 3, 6, 6]
    data = str(save_npz(tmp_path / "x.npz", {"x": np.zeros((4, 3, 6, 6), np.float32)}))
    code, result, _ = _cli(["bench", path, "--data", data, "--batch", "2", "--iterations", "2", "--json"], capsys)
    assert code == 2 and "has dim 0 of size 2" in result["error"] and "feed batches of 1" in result["error"]
    code, result, _ = _cli(["bench", path, "--data", data, "--iterations", "2", "--json"], capsys)
    assert code == 0 and result["batch_size"] == 1
