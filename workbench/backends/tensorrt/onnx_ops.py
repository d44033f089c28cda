"""Which ONNX operators TensorRT's ONNX parser takes: the data, and the check of a model against it.

Source: the operator support matrix of onnx-tensorrt (``docs/operators.md`` in the
onnx/onnx-tensorrt repository, TensorRT 10.15 GA release: "TensorRT 10.15 supports operators in
the inclusive range of opset 9 to opset 24"). :data:`UNSUPPORTED_OPS` are its rows marked ``N``
(with the note the matrix gives, where it gives one), :data:`SUPPORTED_OPS` its rows marked
``Y``, :data:`ZERO_POINT_MUST_BE_ZERO` the Q/DQ restriction it states. The parser also refuses
nodes of other domains unless a TensorRT plugin of that name is registered (its fallback plugin
importer), which no stock TensorRT has for ONNX Runtime's ``com.microsoft`` contrib operators.
Update these tables from a newer matrix when the supported TensorRT release moves.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import numpy as np
from onnx import AttributeProto, GraphProto, ModelProto, numpy_helper

SOURCE = "onnx/onnx-tensorrt docs/operators.md (operator support matrix, TensorRT 10.15 GA)"

OPSET_RANGE = (9, 24)  # "supports operators in the inclusive range of opset 9 to opset 24"

STANDARD_DOMAINS = ("", "ai.onnx")

# Rows marked N, with the matrix's note where it has one.
UNSUPPORTED_OPS: dict[str, str] = {
    "AffineGrid": "",
    "Bernoulli": "",
    "BitShift": "",
    "BitwiseAnd": "",
    "BitwiseNot": "",
    "BitwiseOr": "",
    "BitwiseXor": "",
    "Col2Im": "",
    "CenterCropPad": "",
    "Compress": "",
    "ConcatFromSequence": "",
    "ConvInteger": "integer convolution (dynamic quantization); TensorRT takes INT8 as Q/DQ pairs around Conv",
    "DFT": "",
    "Det": "",
    "DynamicQuantizeLinear": (
        "dynamic quantization; TensorRT takes static INT8 Q/DQ (calibrated), or IDynamicQuantize "
        "composed as a model local function"
    ),
    "ImageDecoder": "",
    "MatMulInteger": "integer MatMul (dynamic quantization); TensorRT takes INT8 as Q/DQ pairs around MatMul",
    "MaxRoiPool": "",
    "MaxUnpool": "",
    "MelWeightMatrix": "",
    "Multinomial": "",
    "NegativeLogLikelihoodLoss": "",
    "Optional": "",
    "OptionalGetElement": "",
    "OptionalHasElement": "",
    "QLinearConv": "QOperator-format quantization; TensorRT takes INT8 as Q/DQ pairs (QDQ format)",
    "QLinearMatMul": "QOperator-format quantization; TensorRT takes INT8 as Q/DQ pairs (QDQ format)",
    "RegexFullMatch": "",
    "SequenceAt": "",
    "SequenceConstruct": "",
    "SequenceEmpty": "",
    "SequenceErase": "",
    "SequenceInsert": "",
    "SequenceLength": "",
    "SequenceMap": "",
    "SoftmaxCrossEntropyLoss": "",
    "SplitToSequence": "",
    "StringConcat": "",
    "StringNormalizer": "",
    "StringSplit": "",
    "TfIdfVectorizer": "",
    "Unique": "",
}

# Rows marked Y (an op in neither table is not in the matrix at all: newer than it, or a typo).
SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike
Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
Greater GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish
Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization
RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape
Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub
Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# "QuantizeLinear: `y_zero_point` must be 0", "DequantizeLinear: `x_zero_point` must be zero".
ZERO_POINT_MUST_BE_ZERO = {"QuantizeLinear": 2, "DequantizeLinear": 2}  # op -> zero-point input index

MAX_NODE_NAMES = 5  # node names listed per entry (the count says how many there are)


def _walk(graph: GraphProto, path: str = "") -> Iterator[tuple[Any, str, GraphProto]]:
    """Every node of a graph and its subgraphs (If/Loop/Scan bodies): (node, where, its graph)."""
    for node in graph.node:
        yield node, path, graph
        for attr in node.attribute:
            inner = f"{path}{node.name or node.op_type}/{attr.name}/"
            if attr.type == AttributeProto.GRAPH:
                yield from _walk(attr.g, inner)
            elif attr.type == AttributeProto.GRAPHS:
                for k, sub in enumerate(attr.graphs):
                    yield from _walk(sub, f"{inner}{k}/")


def _constant_values(model: ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node tensors of every graph, by name (to read zero points)."""
    values: dict[str, np.ndarray] = {}
    graphs = {id(model.graph): model.graph}
    graphs.update((id(g), g) for _, _, g in _walk(model.graph))
    for graph in graphs.values():
        for tensor in graph.initializer:
            values.setdefault(tensor.name, numpy_helper.to_array(tensor))
    for node, _, _ in _walk(model.graph):
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.type == AttributeProto.TENSOR:
                    values.setdefault(node.output[0], numpy_helper.to_array(attr.t))
    return values


def _reason(node, values: dict[str, np.ndarray]) -> str | None:
    """Why TensorRT's parser cannot take this node, or None if the matrix allows it."""
    domain = node.domain or ""
    if domain not in STANDARD_DOMAINS:
        return (f"operator of domain '{domain}': TensorRT's parser takes it only as a plugin of that "
                "name, which stock TensorRT does not have")
    if node.op_type in UNSUPPORTED_OPS:
        note = UNSUPPORTED_OPS[node.op_type]
        return "not supported by TensorRT's ONNX parser" + (f" ({note})" if note else "")
    if node.op_type not in SUPPORTED_OPS:
        return "not in TensorRT's ONNX operator support matrix"
    index = ZERO_POINT_MUST_BE_ZERO.get(node.op_type)
    if index is not None and len(node.input) > index and node.input[index]:
        zero_point = values.get(node.input[index])
        if zero_point is not None and np.any(zero_point.astype(np.float64) != 0):
            return ("zero point is not 0 (asymmetric quantization); TensorRT needs symmetric INT8 "
                    "(zero point 0): make the variant with symmetric activations")
    return None


def unsupported_ops(model: ModelProto) -> list[dict]:
    """The operators of a model (subgraphs included) that TensorRT's ONNX parser cannot take.

    Args:
        model: The ONNX model.

    Returns:
        One entry per (domain, op type, reason), most frequent first: ``op_type``, ``domain``,
        ``count``, ``nodes`` (up to :data:`MAX_NODE_NAMES` names, a subgraph node as
        ``parent/attribute/name``), ``reason`` and ``source`` (:data:`SOURCE`).
    """
    values = _constant_values(model)
    found: dict[tuple[str, str, str], list[str]] = {}
    for node, where, _graph in _walk(model.graph):
        reason = _reason(node, values)
        if reason is not None:
            found.setdefault((node.domain or "", node.op_type, reason), []).append(where + (node.name or "?"))
    counts = Counter({key: len(names) for key, names in found.items()})
    return [
        {"op_type": op, "domain": domain, "count": count, "nodes": found[(domain, op, reason)][:MAX_NODE_NAMES],
         "reason": reason, "source": SOURCE}
        for (domain, op, reason), count in counts.most_common()
    ]


def opset_warning(model: ModelProto) -> str | None:
    """A warning when the model's default-domain opset is outside what the parser supports."""
    version = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), None)
    low, high = OPSET_RANGE
    if version is None or low <= version <= high:
        return None
    return (f"the model uses ONNX opset {version}; TensorRT's ONNX parser supports opsets {low} to {high} "
            f"({SOURCE}): convert it (onnx.version_converter.convert_version) before building")


def describe_unsupported(entries: list[dict]) -> str:
    """One line listing unsupported operators: ``ConvInteger x3 (...reason), ...``."""
    return "; ".join(
        f"{e['op_type']}{'' if not e['domain'] else ' (' + e['domain'] + ')'} x{e['count']}: {e['reason']}"
        for e in entries
    )
