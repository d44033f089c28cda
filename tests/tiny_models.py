"""Small ONNX models made on the spot: a model that is not a sample, as a user would bring one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = 5


def tiny_classifier(path, *, extra_bytes: int = 0, seed: int = 0) -> Path:
    """A 5-class classifier of ``pixels [n, 3, 8, 8]`` into ``scores [n, 5]`` (Conv, Relu, pool, Gemm).

    Its names are its own (not the samples' ``input``/``logits``), so code that assumes a sample's
    names fails on it.

    Args:
        path: Where to save it.
        extra_bytes: Size of an extra initializer the graph does not use (a big file for uploads).
        seed: Seed of the weights.

    Returns:
        The path.
    """
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv_w"),
             numpy_helper.from_array(rng.standard_normal((CLASSES, 4)).astype(np.float32), "fc_w")]
    nodes = [helper.make_node("Conv", ["pixels", "conv_w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("GlobalAveragePool", ["relu"], ["pool"], name="pool"),
             helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "fc_w"], ["scores"], name="fc", transB=1)]
    if extra_bytes:
        inits.append(numpy_helper.from_array(rng.standard_normal(extra_bytes // 4).astype(np.float32), "unused"))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tiny_models")
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)
