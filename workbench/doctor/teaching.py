"""Teaching cases: models whose INT8 failure has a known cause, made by a function-preserving rescale.

:func:`make_teaching_case` multiplies one output channel of a Conv by ``factor`` and divides the
matching input channel of the next weighted node (Conv or Gemm/MatMul) by it. The head may also be
a LayerNormalization (a transformer's ``ln -> MatMul``): its scale and bias of one channel (the
last axis) are multiplied, and the row of the MatMul/Gemm weight that reads it divided. Between the two,
BatchNormalization is adjusted (its ``mean`` and ``beta`` scaled by the same factor, so its
output channel is scaled too) and ReLU, max/average pooling and Flatten pass the scaled channel
through unchanged in shape (positive scaling commutes with them). In exact arithmetic the model
computes the same function; in float32 the outputs agree to rounding (powers of two: bit for bit).

What breaks in INT8: the tensor between the two layers has one channel ``factor`` times larger
than before, and activations are quantized per tensor, so that channel sets the scale and every
other channel is left with a handful of quantization levels (most of its values round to 0).
The two layers involved, the Conv whose channel was scaled and the node reading it, are the
known answer the doctor must find.

Three such copies of ``digits_cnn`` are committed in ``sample_models/teaching/``:
:func:`teaching_cases` names them, :func:`teaching_case_path` finds one's file and
:func:`teaching_case` reads its answer (a :class:`TeachingCase`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import numpy_helper

from workbench.backends.onnxruntime.session import ort_session
from workbench.errors import WorkbenchError
from workbench.samples import SAMPLE_DIR

# Ops a positive per-channel scale passes through unchanged in position.
PASS_THROUGH = ("Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Identity", "Dropout",
                "LeakyRelu")
CONSUMERS = ("Conv", "Gemm", "MatMul")
HEADS = ("Conv", "LayerNormalization")
METADATA_KEY = "workbench.teaching_case"
TEACHING_DIR = SAMPLE_DIR / "teaching"  # the committed cases (sample_models/teaching/README.md)


class TeachingCaseError(WorkbenchError, ValueError):
    """The rescale cannot be made as asked; the message names the problem and the fix."""


@dataclass(frozen=True)
class TeachingPath:
    """The nodes a rescale of ``conv``'s output channels touches.

    Attributes:
        conv: The Conv (or LayerNormalization) whose output channel is multiplied.
        batchnorm: The BatchNormalization right after it, or None.
        through: Nodes between that pass the channel through (Relu, pooling, Flatten).
        consumer: The weighted node whose input channel is divided.
        flatten_block: Features per channel after a Flatten on the path (1 when none).
    """

    conv: str
    batchnorm: str | None
    through: tuple[str, ...]
    consumer: str
    flatten_block: int = 1


def _proto(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    if hasattr(model, "proto"):
        return _proto(model.proto)
    path = Path(model)
    if not path.is_file():
        raise TeachingCaseError(f"{path}: no such model file. Give an ONNX file or an onnx.ModelProto.")
    return onnx.load(str(path))


def _attr(node, name, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def teaching_path(model, conv: str) -> TeachingPath:
    """Follow ``conv``'s output to the next weighted node through BN and pass-through ops.

    Args:
        model: An ONNX model (path or ModelProto).
        conv: Name of a Conv node with constant weights (or a LayerNormalization feeding a MatMul/Gemm).

    Returns:
        The :class:`TeachingPath`.

    Raises:
        TeachingCaseError: ``conv`` is not a Conv, its output branches, or the path meets an op
            a per-channel scale does not pass through.
    """
    proto = _proto(model)
    nodes = {n.name: n for n in proto.graph.node}
    if conv not in nodes:
        convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
        raise TeachingCaseError(f"no node named {conv!r}; the model's Conv nodes are {convs}.")
    head = nodes[conv]
    if head.op_type not in HEADS:
        raise TeachingCaseError(f"{conv!r} is a {head.op_type}; give a Conv node (or a LayerNormalization that "
                                "feeds a MatMul/Gemm).")
    last_axis = head.op_type == "LayerNormalization"  # its channels are the last axis, as MatMul reads them
    consumers: dict[str, list] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in proto.graph.output}
    shapes = _shapes(proto)
    batchnorm, through, block = None, [], 1
    current = head
    while True:
        tensor = current.output[0]
        users = consumers.get(tensor, [])
        if tensor in outputs or len(users) != 1:
            raise TeachingCaseError(
                f"{conv}: the rescaled channel reaches {'a model output' if tensor in outputs else f'{len(users)} consumers'} "
                f"at {tensor!r} before a Conv/Gemm/MatMul could undo it; pick a Conv whose output feeds one chain "
                "(Conv -> BatchNormalization -> Relu -> ... -> Conv/Gemm)."
            )
        nxt = users[0]
        if last_axis and nxt.op_type in ("BatchNormalization", "Flatten", "Conv", "MaxPool", "AveragePool"):
            raise TeachingCaseError(f"{conv}: a LayerNormalization's channels are its last axis; {nxt.op_type} "
                                    f"{nxt.name!r} reads channels on axis 1. Rescale a LayerNormalization that feeds "
                                    "a MatMul/Gemm (through elementwise ops at most).")
        if nxt.op_type == "BatchNormalization" and current is head and batchnorm is None:
            batchnorm = nxt.name
        elif nxt.op_type in PASS_THROUGH:
            if nxt.op_type == "LeakyRelu" and _attr(nxt, "alpha", 0.01) < 0:
                raise TeachingCaseError(f"{nxt.name}: LeakyRelu with negative alpha does not commute with scaling.")
            through.append(nxt.name)
        elif nxt.op_type == "Flatten":
            shape = shapes.get(tensor)
            if shape is None or len(shape) < 2 or any(not isinstance(d, int) for d in shape[2:]):
                raise TeachingCaseError(f"{nxt.name}: cannot tell the features per channel after Flatten (unknown shape).")
            block = int(np.prod(shape[2:])) if len(shape) > 2 else 1
            through.append(nxt.name)
        elif nxt.op_type in CONSUMERS:
            if nxt.input[0] != tensor:
                raise TeachingCaseError(f"{nxt.name}: the scaled tensor is not its data input.")
            if not any(init.name == nxt.input[1] for init in proto.graph.initializer):
                raise TeachingCaseError(f"{nxt.name}: its weights are not an initializer; cannot divide them.")
            return TeachingPath(conv, batchnorm, tuple(through), nxt.name, block)
        else:
            raise TeachingCaseError(
                f"{conv}: the path meets {nxt.op_type} {nxt.name!r}, which a per-channel scale does not pass through; "
                f"the rescale works across {('BatchNormalization',) + PASS_THROUGH + ('Flatten',)} up to a "
                f"{'/'.join(CONSUMERS)}."
            )
        current = nxt


def _shapes(model: onnx.ModelProto) -> dict[str, list]:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    return shapes


def make_teaching_case(model, conv: str, channel: int, factor: float) -> onnx.ModelProto:
    """A model computing the same function whose INT8 variant fails because of ``conv`` and its consumer.

    Args:
        model: The FP32 model (path, ModelProto or LoadedModel). Not modified.
        conv: The Conv whose output ``channel`` is multiplied by ``factor`` (weights and bias;
            the BatchNormalization after it gets ``mean`` and ``beta`` scaled alike), or a
            LayerNormalization (its scale and bias of that channel) feeding a MatMul/Gemm.
        channel: The output channel.
        factor: A positive factor (e.g. 64-1000; large enough to starve the other channels of
            quantization levels).

    Returns:
        The new model, with ``metadata_props`` ``workbench.teaching_case`` = JSON of
        ``{"conv", "consumer", "channel", "factor", "batchnorm", "through"}`` (the known answer).

    Raises:
        TeachingCaseError: Bad node, channel or factor (the message names the fix).
    """
    if not np.isfinite(factor) or factor <= 0:
        raise TeachingCaseError(f"factor must be a positive number, got {factor!r} (positive scaling commutes "
                                "with ReLU; a negative one does not).")
    proto = _proto(model)
    path = teaching_path(proto, conv)
    inits = {init.name: init for init in proto.graph.initializer}
    nodes = {n.name: n for n in proto.graph.node}
    head = nodes[conv]
    weight = _array(inits, head.input[1], conv)
    if not 0 <= int(channel) < weight.shape[0]:
        raise TeachingCaseError(f"{conv} has {weight.shape[0]} output channels; channel {channel} is out of range "
                                f"(0..{weight.shape[0] - 1}).")
    c, k = int(channel), float(factor)
    weight[c] *= k
    _store(inits, head.input[1], weight)
    if len(head.input) > 2 and head.input[2]:
        bias = _array(inits, head.input[2], conv)
        bias[c] *= k
        _store(inits, head.input[2], bias)
    if path.batchnorm is not None:
        bn = nodes[path.batchnorm]
        for index in (2, 3):  # beta, running mean: y = gamma (kx - k mean) / s + k beta = k y
            values = _array(inits, bn.input[index], bn.name)
            values[c] *= k
            _store(inits, bn.input[index], values)
    consumer = nodes[path.consumer]
    w = _array(inits, consumer.input[1], consumer.name)
    columns = slice(c * path.flatten_block, (c + 1) * path.flatten_block)
    if consumer.op_type == "Conv":
        group = int(_attr(consumer, "group", 1))
        per_group = w.shape[1]
        if group == 1:
            w[:, c] /= k
        else:  # grouped/depthwise: input channel c is input c % per_group of group c // per_group
            outs = w.shape[0] // group
            g = c // per_group
            w[g * outs:(g + 1) * outs, c % per_group] /= k
    elif consumer.op_type == "Gemm":
        if int(_attr(consumer, "transB", 0)):
            w[:, columns] /= k
        else:
            w[columns, :] /= k
    else:  # MatMul: x [.., K] @ w [K, N]
        w[columns, :] /= k
    _store(inits, consumer.input[1], w)
    answer = {"conv": conv, "consumer": path.consumer, "channel": c, "factor": k, "batchnorm": path.batchnorm,
              "through": list(path.through)}
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(answer)
    return proto


def teaching_answer(model) -> dict | None:
    """The known answer stored by :func:`make_teaching_case` (``{"conv", "consumer", ...}``), or None."""
    proto = _proto(model) if not isinstance(model, onnx.ModelProto) else model
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return None


def teaching_cases() -> list[str]:
    """Names of the committed teaching cases (``digits_cnn_conv1_c5_x300``, ...), sorted.

    Each is a copy of the ``digits_cnn`` sample (use its calibration and evaluation data) with one
    Conv channel rescaled; ``sample_models/teaching/README.md`` tells each one's story.
    """
    return sorted(p.stem for p in TEACHING_DIR.glob("*.onnx"))


def teaching_case_path(name: str) -> Path:
    """Path of a committed teaching case's ``.onnx`` file.

    Args:
        name: A name from :func:`teaching_cases`.

    Returns:
        The path.

    Raises:
        TeachingCaseError: No committed case has that name (the message lists them).
    """
    path = TEACHING_DIR / f"{name}.onnx"
    if not path.is_file():
        raise TeachingCaseError(f"no teaching case named {name!r}; expected one of {teaching_cases()} in "
                                f"{TEACHING_DIR}. Rebuild them with "
                                "`python sample_models/teaching/make_teaching_cases.py`.")
    return path


@dataclass(frozen=True)
class TeachingCase:
    """A teaching model and its known answer (what :func:`make_teaching_case` stored in it).

    Attributes:
        name: The model file's stem.
        path: The model file.
        conv: The Conv (or LayerNormalization) whose output channel was multiplied (the source of the range).
        consumer: The weighted node whose input channel was divided (it adds the INT8 error).
        channel: The rescaled channel.
        factor: The factor.
        batchnorm: The BatchNormalization adjusted with the Conv, or None.
        through: Nodes between the two that pass the channel through.
    """

    name: str
    path: Path
    conv: str
    consumer: str
    channel: int
    factor: float
    batchnorm: str | None
    through: tuple[str, ...]

    def frame(self) -> pd.DataFrame:
        """The answer as one row indexed by the case's name: ``conv``, ``consumer``, ``channel``,
        ``factor``, ``batchnorm`` and ``through`` (list)."""
        row = {"conv": self.conv, "consumer": self.consumer, "channel": self.channel, "factor": self.factor,
               "batchnorm": self.batchnorm, "through": list(self.through)}
        return pd.DataFrame([row], index=pd.Index([self.name], name="teaching case"))


def teaching_case(name_or_path) -> TeachingCase:
    """A teaching case with its known answer.

    Args:
        name_or_path: A name from :func:`teaching_cases`, or the path of a model saved from
            :func:`make_teaching_case`.

    Returns:
        The :class:`TeachingCase`.

    Raises:
        TeachingCaseError: No such case or file, or the model carries no teaching answer.
    """
    path = Path(name_or_path)
    if not path.is_file():
        if path.suffix == ".onnx" or len(path.parts) > 1:  # a path, not a committed case's name
            raise TeachingCaseError(f"{path}: no such model file. Give a file saved from make_teaching_case or "
                                    f"one of {teaching_cases()}.")
        path = teaching_case_path(str(name_or_path))
    answer = teaching_answer(path)
    if answer is None:
        raise TeachingCaseError(f"{path} carries no teaching answer (metadata {METADATA_KEY!r}); make one with "
                                "make_teaching_case(model, conv, channel, factor) and save it.")
    return TeachingCase(path.stem, path, answer["conv"], answer["consumer"], int(answer["channel"]),
                        float(answer["factor"]), answer.get("batchnorm"), tuple(answer.get("through", ())))


def max_output_difference(original, changed, inputs) -> float:
    """Largest absolute difference between two models' first outputs on ``inputs`` (ONNX Runtime CPU).

    Args:
        original, changed: Model paths or ``ModelProto``.
        inputs: Input name -> array.

    Returns:
        The max ``|a - b|`` over all output values.
    """
    outs = []
    for model in (original, changed):
        session = ort_session(_proto(model))
        outs.append(session.run(None, dict(inputs))[0])
    return float(np.max(np.abs(outs[0].astype(np.float64) - outs[1])))


def _array(inits, name, node) -> np.ndarray:
    if name not in inits:
        raise TeachingCaseError(f"{node}: input {name!r} is not an initializer; the rescale needs constant weights.")
    return numpy_helper.to_array(inits[name]).astype(np.float32).copy()


def _store(inits, name, values: np.ndarray) -> None:
    inits[name].CopyFrom(numpy_helper.from_array(values.astype(np.float32), name))
