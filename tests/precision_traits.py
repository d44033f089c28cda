"""Small models with the traits real models bring, built here with onnx.helper (issue 11).

Each builder returns an ``onnx.ModelProto`` (the tests save it where they need it) and a matching
calibration ``dict`` comes from :func:`calibration_for`. The traits:

- :func:`cnn`: Conv -> Relu -> Flatten -> Gemm at any opset and IR version, optionally with
  initializers listed as graph inputs (old exporters) or weights in Constant nodes (Paddle2ONNX);
- :func:`big_batchnorm`: a BatchNormalization whose variance (1e8) is beyond FP16's range, its
  parameters in Constant nodes;
- :func:`int32_onehot`: an int32 input, one-hot encoded with an Equal and a Cast to float;
- :func:`if_weights`: the weights inside the two branches of an If;
- :func:`dynamically_quantized`: ORT's ``quantize_dynamic`` output (DynamicQuantizeLinear,
  MatMulInteger), i.e. an already-quantized model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# IR versions ONNX pairs with each opset (onnx.helper.VERSION_TABLE, opset -> lowest IR).
_IR_FOR_OPSET = {7: 3, 8: 3, 9: 4, 10: 5, 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8}


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _finish(graph: onnx.GraphProto, opset: int, ir: int | None) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="trt-workbench-tests")
    model.ir_version = ir if ir is not None else _IR_FOR_OPSET.get(opset, 8)
    onnx.checker.check_model(model, full_check=True)
    return model


def _weights_as(graph_nodes: list, inits: list, *, constant_weights: bool) -> tuple[list, list]:
    """Move initializers into Constant nodes (in front of the graph) when asked."""
    if not constant_weights:
        return graph_nodes, inits
    constants = [helper.make_node("Constant", [], [t.name], value=t, name="") for t in inits]
    return constants + graph_nodes, []


def cnn(opset: int = 13, *, ir: int | None = None, initializers_as_inputs: bool = False,
        constant_weights: bool = False, unnamed: bool = False, seed: int = 0) -> onnx.ModelProto:
    """Conv(4x1x3x3) -> Relu -> Flatten -> Gemm(10) on ``input`` [N, 1, 8, 8].

    Args:
        opset: Default-domain opset.
        ir: IR version (default: the one ONNX pairs with ``opset``); 3 needs every initializer
            listed as a graph input, so ``ir=3`` implies ``initializers_as_inputs``.
        initializers_as_inputs: List the initializers among the graph inputs too.
        constant_weights: Weights in Constant nodes instead of initializers.
        unnamed: Leave the nodes unnamed.
        seed: Weights' random seed.

    Returns:
        The model (checked with ``full_check``).
    """
    rng = _rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.normal(0, 0.1, (10, 256)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (10,)).astype(np.float32), "fc_b"),
    ]
    name = (lambda n: "") if unnamed else (lambda n: n)
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], name=name("conv"), pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], name=name("relu")),
        helper.make_node("Flatten", ["relu"], ["flat"], name=name("flatten"), axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name=name("fc"), transB=1),
    ]
    nodes, inits = _weights_as(nodes, inits, constant_weights=constant_weights)
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])]
    if initializers_as_inputs or ir == 3:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    graph = helper.make_graph(nodes, "cnn", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    return _finish(graph, opset, ir)


def big_batchnorm(opset: int = 13, *, seed: int = 0) -> onnx.ModelProto:
    """Conv -> BatchNormalization (variance 1e8, parameters in Constant nodes) -> Relu -> Gemm.

    FP16 cannot hold the variance; a variant that converts it turns the output to garbage.
    """
    rng = _rng(seed)
    tensors = [
        numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(np.full(4, 2000.0, np.float32), "bn_scale"),
        numpy_helper.from_array(np.zeros(4, np.float32), "bn_bias"),
        numpy_helper.from_array(np.zeros(4, np.float32), "bn_mean"),
        numpy_helper.from_array(np.full(4, 1e8, np.float32), "bn_var"),
        numpy_helper.from_array(rng.normal(0, 0.1, (10, 256)).astype(np.float32), "fc_w"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv_w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn"],
                         name="bn", epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["relu"], name="relu"),
        helper.make_node("Flatten", ["relu"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc_w"], ["logits"], name="fc", transB=1),
    ]
    nodes, _ = _weights_as(nodes, tensors, constant_weights=True)
    for node, tensor in zip(nodes, tensors):
        node.name = f"const_{tensor.name}"
    graph = helper.make_graph(nodes, "big_batchnorm",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])])
    return _finish(graph, opset, None)


def int32_onehot(opset: int = 13, *, vocab: int = 16, length: int = 8, seed: int = 0) -> onnx.ModelProto:
    """``tokens`` int32 [N, L] -> one-hot (Equal with a range, Cast to float) -> MatMul -> Gemm.

    The int32 input and the Cast from bool to float are what an FP16 conversion must leave
    consistent (a file-type classifier's byte input looks like this).
    """
    rng = _rng(seed)
    inits = [
        numpy_helper.from_array(np.arange(vocab, dtype=np.int32).reshape(1, 1, vocab), "vocab_range"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "last_axis"),
        numpy_helper.from_array(rng.normal(0, 0.3, (vocab, 8)).astype(np.float32), "embed_w"),
        numpy_helper.from_array(np.array([0, length * 8], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array(rng.normal(0, 0.1, (4, length * 8)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["tokens", "last_axis"], ["tokens3"], name="unsqueeze") if opset >= 13 else
        helper.make_node("Unsqueeze", ["tokens"], ["tokens3"], name="unsqueeze", axes=[2]),
        helper.make_node("Equal", ["tokens3", "vocab_range"], ["hot"], name="equal"),
        helper.make_node("Cast", ["hot"], ["onehot"], name="onehot_cast", to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["onehot", "embed_w"], ["embedded"], name="embed"),
        helper.make_node("Reshape", ["embedded", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    if opset < 13:
        inits = [t for t in inits if t.name != "last_axis"]
    graph = helper.make_graph(nodes, "int32_onehot",
                              [helper.make_tensor_value_info("tokens", TensorProto.INT32, ["N", length])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])], inits)
    return _finish(graph, opset, None)


def if_weights(opset: int = 13, *, gate_input: bool = False, seed: int = 0) -> onnx.ModelProto:
    """``input`` [N, 6] -> If(...): MatMul(W1)+B1 / MatMul(W2) -> Relu, the weights inside the branches.

    Args:
        opset: Default-domain opset.
        gate_input: The condition comes from a scalar int64 input ``sr`` (``sr == 16000``), so only
            the branches read ``input``, from the outer scope (as in a voice-activity model);
            otherwise it is ``mean(input) > 0``.
        seed: Weights' random seed.
    """
    rng = _rng(seed)

    def branch(name: str, with_bias: bool) -> onnx.GraphProto:
        inits = [numpy_helper.from_array(rng.normal(0, 0.5, (6, 3)).astype(np.float32), f"{name}_w")]
        nodes = [helper.make_node("MatMul", ["input", f"{name}_w"], [f"{name}_mm"], name=f"{name}_matmul")]
        out = f"{name}_mm"
        if with_bias:
            inits.append(numpy_helper.from_array(rng.normal(0, 0.1, (3,)).astype(np.float32), f"{name}_b"))
            nodes.append(helper.make_node("Add", [out, f"{name}_b"], [f"{name}_out"], name=f"{name}_add"))
            out = f"{name}_out"
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 3])],
                                 inits)

    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 6])]
    if gate_input:
        inputs.append(helper.make_tensor_value_info("sr", TensorProto.INT64, []))
        inits = [numpy_helper.from_array(np.array(16000, dtype=np.int64), "rate")]
        condition = [helper.make_node("Equal", ["sr", "rate"], ["positive"], name="positive")]
    else:
        inits = [numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
        condition = [helper.make_node("ReduceMean", ["input"], ["mean"], name="mean", keepdims=0),
                     helper.make_node("Greater", ["mean", "zero"], ["positive"], name="positive")]
    nodes = condition + [
        helper.make_node("If", ["positive"], ["branch_out"], name="if",
                         then_branch=branch("then", True), else_branch=branch("else", False)),
        helper.make_node("Relu", ["branch_out"], ["output"], name="relu"),
    ]
    graph = helper.make_graph(nodes, "if_weights", inputs,
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3])], inits)
    return _finish(graph, opset, None)


def dynamically_quantized(folder, *, seed: int = 0) -> onnx.ModelProto:
    """ONNX Runtime's ``quantize_dynamic`` of a two-MatMul model (already quantized: MatMulInteger).

    Args:
        folder: A scratch folder for ORT's files.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = _rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (6, 16)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.3, (16, 3)).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["h"], name="mm1"),
             helper.make_node("Relu", ["h"], ["hr"], name="relu"),
             helper.make_node("MatMul", ["hr", "w2"], ["output"], name="mm2")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3])], inits)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source, target = folder / "mlp_fp32.onnx", folder / "mlp_dynamic_int8.onnx"
    onnx.save(_finish(graph, 13, None), str(source))
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return onnx.load(str(target))


def calibration_for(model: onnx.ModelProto, samples: int = 32, *, seed: int = 1) -> dict[str, np.ndarray]:
    """Random calibration arrays for the model's non-initializer inputs (samples on axis 0).

    Float inputs are standard normal; integer inputs are token ids in ``[0, 16)``; a scalar input
    is 16000 (a sample rate, fed as it is: its sample axis is None).
    """
    rng = _rng(seed)
    inits = {t.name for t in model.graph.initializer}
    data = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else samples for d in vi.type.tensor_type.shape.dim]
        elem = vi.type.tensor_type.elem_type
        if not dims:  # a scalar fed as it is (a sample rate): 16000
            data[vi.name] = np.array(16000, dtype=onnx.helper.tensor_dtype_to_np_dtype(elem))
            continue
        dims[0] = samples
        if elem == TensorProto.FLOAT:
            data[vi.name] = rng.normal(0, 1, dims).astype(np.float32)
        else:
            data[vi.name] = rng.integers(0, 16, dims).astype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    return data
