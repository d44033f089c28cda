"""Graph facts the INT8 doctor needs: which nodes a Q/DQ variant quantizes, how, and how they group.

Pure functions of ONNX models (no runtime):

- :func:`quantized_nodes` reads an explicit Q/DQ model (ONNX Runtime's ``QDQQuantizer`` output,
  ModelOpt's, or a QAT export) and returns, for every compute node fed by a DequantizeLinear,
  the float tensors it reads through Q/DQ (activations: name, scale, zero point) and the weights
  it reads quantized (the float initializer name, the int8 values, scale, zero point, axis).
- :func:`fusion_group_of` groups a quantized node with the elementwise nodes TensorRT fuses
  after it (Conv + BatchNormalization + Relu count as one), so accuracy costs and engine layers
  are reported per group.
- :func:`add_outputs` exposes intermediate tensors as graph outputs and
  :func:`build_local_model` adds, beside the FP32 graph, a copy of every quantized node fed
  the FP32 tensors through the variant's own Q/DQ: one run gives every node's *local* error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workbench.errors import WorkbenchError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# Ops TensorRT fuses into the preceding Conv/Gemm/MatMul (pointwise epilogues).
EPILOGUE_OPS = (
    "BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish",
    "Elu", "Selu", "Softplus", "PRelu", "Add", "Mul", "Sub", "Div",
)
LOCAL_SUFFIX = "__wb_local"
QDQ_SUFFIX = "__wb_qdq"
_PREFIX = "wb_doctor"


class DoctorGraphError(WorkbenchError, ValueError):
    """A model the doctor cannot analyse as given; the message names the problem and the fix."""


@dataclass(frozen=True)
class QuantizedInput:
    """One input of a quantized node, as the variant feeds it.

    Attributes:
        index: Input position on the node.
        tensor: The float tensor's name (activation) or float initializer's name (weight).
        kind: ``"activation"`` or ``"weight"``.
        scale: The scale (scalar, or per channel along ``axis``).
        zero_point: The zero point, same shape as ``scale``.
        axis: The quantization axis (per-channel), else None.
        qdtype: ONNX element type of the quantized values (``TensorProto.INT8``...).
        quantized: For weights: the quantized values; else None.
    """

    index: int
    tensor: str
    kind: str
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    qdtype: int
    quantized: np.ndarray | None = None

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def qmax(self) -> float:
        """Largest quantized magnitude (127 for symmetric int8, 448 for FP8 E4M3)."""
        return _QMAX.get(self.qdtype, 127.0)

    def clip_range(self) -> float | np.ndarray:
        """The largest magnitude representable without saturation, ``scale * qmax``."""
        return self.scale.astype(np.float64) * self.qmax


_QMAX = {TensorProto.INT8: 127.0, TensorProto.UINT8: 255.0, TensorProto.INT16: 32767.0}
if hasattr(TensorProto, "FLOAT8E4M3FN"):
    _QMAX[TensorProto.FLOAT8E4M3FN] = 448.0


@dataclass
class QuantizedNode:
    """A compute node of the variant that reads quantized inputs.

    Attributes:
        name: The node's name (the same as in the FP32 model).
        op_type: Its operator.
        outputs: Its output tensor names.
        inputs: The quantized inputs (activations and weights).
    """

    name: str
    op_type: str
    outputs: tuple[str, ...]
    inputs: list[QuantizedInput] = field(default_factory=list)

    @property
    def activations(self) -> list[QuantizedInput]:
        return [i for i in self.inputs if i.kind == "activation"]

    @property
    def weights(self) -> list[QuantizedInput]:
        return [i for i in self.inputs if i.kind == "weight"]


def _init_map(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {init.name: init for init in model.graph.initializer}


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            if name:
                consumers.setdefault(name, []).append(node)
    return consumers


def _attr(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _constant(name: str, inits: Mapping[str, onnx.TensorProto], producers: Mapping[str, onnx.NodeProto]):
    if name in inits:
        return numpy_helper.to_array(inits[name])
    node = producers.get(name)
    if node is not None and node.op_type == "Constant":
        value = _attr(node, "value")
        if value is not None:
            return numpy_helper.to_array(value)
    return None


# Nodes that read only a tensor's shape: a DequantizeLinear feeding them changes nothing they compute.
SHAPE_ONLY_OPS = ("Shape", "Size")


def quantized_nodes(qdq_model: onnx.ModelProto) -> dict[str, QuantizedNode]:
    """The compute nodes of a Q/DQ model that read DequantizeLinear outputs, in graph order.

    Args:
        qdq_model: An explicit-quantization model (QuantizeLinear/DequantizeLinear pairs on
            activations, DequantizeLinear on quantized weights).

    Returns:
        Node name -> :class:`QuantizedNode`. Activations are reported by the float tensor the
        QuantizeLinear reads; weights by their float initializer's name (ORT's ``_quantized``
        suffix removed), with the quantized values.

    Raises:
        DoctorGraphError: The model has no DequantizeLinear at all (not a Q/DQ model).
    """
    inits = _init_map(qdq_model)
    producers = _producers(qdq_model)
    found: dict[str, QuantizedNode] = {}
    if not any(n.op_type == "DequantizeLinear" for n in qdq_model.graph.node):
        raise DoctorGraphError(
            "the variant has no DequantizeLinear nodes, so nothing in it is quantized. Give an INT8/FP8 "
            "Q/DQ variant (make_variant(model, Recipe('int8'), calib))."
        )
    for node in qdq_model.graph.node:
        if node.op_type in QDQ_OPS or node.op_type in SHAPE_ONLY_OPS:
            continue
        entry = None
        for index, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            described = _describe_dq(dq, index, inits, producers)
            if described is None:
                continue
            if entry is None:
                entry = QuantizedNode(node.name, node.op_type, tuple(node.output))
            entry.inputs.append(described)
        if entry is not None:
            if not node.name:
                raise DoctorGraphError(
                    f"a quantized {node.op_type} node has no name; name every node (the workbench's "
                    "load_model does) so errors can be reported per node."
                )
            found[node.name] = entry
    return found


def _describe_dq(dq: onnx.NodeProto, index: int, inits, producers) -> QuantizedInput | None:
    scale = _constant(dq.input[1], inits, producers)
    if scale is None:
        return None
    zero = _constant(dq.input[2], inits, producers) if len(dq.input) > 2 and dq.input[2] else None
    zero_point = np.zeros(scale.shape, np.int8) if zero is None else zero
    axis = _attr(dq, "axis", 1) if scale.size > 1 else None
    source = dq.input[0]
    values = _constant(source, inits, producers)
    if values is not None:  # a quantized weight
        qdtype = inits[source].data_type if source in inits else TensorProto.INT8
        tensor = source[: -len("_quantized")] if source.endswith("_quantized") else source
        return QuantizedInput(index, tensor, "weight", scale.astype(np.float32), zero_point, axis, qdtype, values)
    q = producers.get(source)
    if q is None or q.op_type != "QuantizeLinear":
        return None
    qdtype = TensorProto.INT8
    if len(q.input) > 2 and q.input[2] in inits:
        qdtype = inits[q.input[2]].data_type
    float_source = q.input[0]
    weight = _constant(float_source, inits, producers)
    kind = "weight" if weight is not None else "activation"
    quantized = None
    if kind == "weight":  # a float weight quantized in the graph (QAT exports): quantize it here
        quantized = _quantize(weight, scale, zero_point, axis, qdtype)
    return QuantizedInput(index, float_source, kind, scale.astype(np.float32), zero_point, axis, qdtype, quantized)


def _quantize(values: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis, qdtype) -> np.ndarray:
    qmax = _QMAX.get(qdtype, 127.0)
    s = broadcast_channels(scale.astype(np.float64), values.ndim, axis)
    z = broadcast_channels(zero.astype(np.float64), values.ndim, axis)
    low = 0.0 if qdtype == TensorProto.UINT8 else qmin_of(qdtype)
    return np.clip(np.rint(values / s) + z, low, qmax)


def qmin_of(qdtype: int) -> float:
    """Smallest quantized value: -128 for int8 (QuantizeLinear saturates there), -448 for FP8."""
    qmax = _QMAX.get(qdtype, 127.0)
    return -(qmax + 1.0) if qdtype in (TensorProto.INT8, TensorProto.INT16) else -qmax


def broadcast_channels(values: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """Reshape per-channel ``values`` to broadcast along ``axis`` of an ``ndim`` tensor."""
    values = np.asarray(values)
    if values.size <= 1 or axis is None:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = values.size
    return values.reshape(shape)


def dequantized_weight(qi: QuantizedInput) -> np.ndarray:
    """The weight values the variant computes with: ``(q - zero_point) * scale``."""
    if qi.quantized is None:
        raise DoctorGraphError(f"{qi.tensor}: not a quantized weight.")
    q = np.asarray(qi.quantized).astype(np.float64)
    s = broadcast_channels(qi.scale.astype(np.float64), q.ndim, qi.axis)
    z = broadcast_channels(qi.zero_point.astype(np.float64), q.ndim, qi.axis)
    return ((q - z) * s).astype(np.float32)


def fake_quantize(values: np.ndarray, scale, zero_point=0.0, *, qmax: float = 127.0, qmin: float = -128.0,
                  axis: int | None = None) -> np.ndarray:
    """Quantize then dequantize ``values`` as symmetric/affine int8 Q/DQ does (round half to even).

    Args:
        values: The float values.
        scale: Scale (scalar, or per channel along ``axis``).
        zero_point: Zero point, same shape as ``scale``.
        qmax: Largest quantized value (127 for int8).
        qmin: Smallest quantized value (-128 for int8).
        axis: Channel axis for per-channel scales.

    Returns:
        The dequantized values (float32).
    """
    values = np.asarray(values, dtype=np.float32)
    s = broadcast_channels(np.asarray(scale, np.float32), values.ndim, axis)
    z = broadcast_channels(np.asarray(zero_point, np.float32), values.ndim, axis)
    q = np.clip(np.rint(values / s) + z, qmin, qmax)
    return ((q - z) * s).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Order and groups


def topological_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The main graph's nodes in a topological order (the stored order when it already is one)."""
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        progressed = False
        remaining = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
                progressed = True
            else:
                remaining.append(node)
        if not progressed:  # a cycle or inputs from an outer scope: keep the stored order
            ordered.extend(remaining)
            break
        pending = remaining
    return ordered


def fusion_group_of(model: onnx.ModelProto, node_name: str, *, stop: Iterable[str] = ()) -> list[str]:
    """The node and the elementwise epilogue TensorRT fuses after it (Conv+BN+Relu as one group).

    Follows single-consumer chains of :data:`EPILOGUE_OPS` (Add/Mul/Sub/Div only with a
    constant other operand, i.e. a bias or scale), stopping before a node in ``stop`` (another
    group's head) and before Q/DQ nodes.

    Args:
        model: The FP32 model (or a Q/DQ variant; Q/DQ nodes end a chain).
        node_name: The group head (a quantized Conv/Gemm/MatMul).
        stop: Node names that start other groups.

    Returns:
        Node names, head first.
    """
    nodes = {n.name: n for n in model.graph.node}
    if node_name not in nodes:
        raise DoctorGraphError(f"node {node_name!r} is not in the model.")
    inits = _init_map(model)
    producers = _producers(model)
    consumers = _consumers(model)
    outputs = {o.name for o in model.graph.output}
    stop = set(stop)
    group = [node_name]
    current = nodes[node_name]
    while len(current.output) == 1 and current.output[0] not in outputs:
        users = consumers.get(current.output[0], [])
        if len(users) != 1:
            break
        nxt = users[0]
        if nxt.op_type not in EPILOGUE_OPS or nxt.name in stop:
            break
        if nxt.op_type in ("Add", "Mul", "Sub", "Div"):
            others = [i for i in nxt.input if i != current.output[0]]
            if not others or any(_constant(o, inits, producers) is None for o in others):
                break
        group.append(nxt.name)
        current = nxt
    return group


def fusion_groups(model: onnx.ModelProto, heads: Sequence[str]) -> dict[str, list[str]]:
    """:func:`fusion_group_of` for every head; returns head -> member names."""
    return {head: fusion_group_of(model, head, stop=set(heads) - {head}) for head in heads}


def group_output(model: onnx.ModelProto, group: Sequence[str]) -> str:
    """The tensor a fusion group produces (its last member's first output)."""
    nodes = {n.name: n for n in model.graph.node}
    return nodes[group[-1]].output[0]


# --------------------------------------------------------------------------------------------
# Models for the layerwise passes


def float_tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element types of every tensor shape inference knows (inputs, outputs, value_info)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    types = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    return types


def float_node_outputs(model: onnx.ModelProto) -> list[str]:
    """Float32 outputs of the main graph's nodes, in topological order (Constant nodes left out)."""
    types = float_tensor_types(model)
    names = []
    for node in topological_nodes(model):
        if node.op_type == "Constant":
            continue
        for out in node.output:
            if out and types.get(out) == TensorProto.FLOAT:
                names.append(out)
    return names


def add_outputs(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs also include ``tensors`` (float32, shapes unset).

    Args:
        model: The model.
        tensors: Tensor names to expose (already-exposed ones are skipped).

    Returns:
        The new model.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for name in tensors:
        if name not in present:
            copy.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
            present.add(name)
    return copy


def local_output_name(tensor: str) -> str:
    """The name of a quantized node's local copy's output for ``tensor``."""
    return tensor + LOCAL_SUFFIX


def qdq_output_name(tensor: str, node: str) -> str:
    """The name of the fake-quantized copy of activation ``tensor`` as ``node`` reads it."""
    return f"{tensor}{QDQ_SUFFIX}[{node}]"


def build_local_model(fp32_model: onnx.ModelProto, qdq_model: onnx.ModelProto,
                      nodes: Mapping[str, QuantizedNode]) -> tuple[onnx.ModelProto, dict[str, dict]]:
    """The FP32 model plus, per quantized node, a copy fed the FP32 tensors through the variant's Q/DQ.

    Each copy reads its activation inputs as ``DequantizeLinear(QuantizeLinear(fp32 tensor))``
    with the variant's scale and zero point, and its weights as the variant's dequantized
    weights; its other inputs are the FP32 model's. So the copy's output differs from the FP32
    node's only by the error this node's own quantization adds (its *local* error).

    Args:
        fp32_model: The FP32 model (node and tensor names as in the variant).
        qdq_model: The variant.
        nodes: :func:`quantized_nodes` of the variant.

    Returns:
        (model, mapping) where mapping is node name -> ``{"outputs": {fp32 output: local output},
        "qdq": {fp32 tensor: its fake-quantized copy}}``.

    Raises:
        DoctorGraphError: A quantized node or a tensor it reads is not in the FP32 model.
    """
    model = onnx.ModelProto()
    model.CopyFrom(fp32_model)
    graph = model.graph
    fp32_nodes = {n.name: n for n in graph.node}
    known = ({i.name for i in graph.input} | {i.name for i in graph.initializer}
             | {o for n in graph.node for o in n.output})
    mapping: dict[str, dict] = {}
    for k, (name, qn) in enumerate(nodes.items()):
        original = fp32_nodes.get(name)
        if original is None:
            raise DoctorGraphError(
                f"quantized node {name!r} is not in the FP32 model; the variant must come from this model "
                "(same node names)."
            )
        inputs = list(original.input)
        qdq_map = {}
        for qi in qn.inputs:
            if qi.tensor not in known:
                raise DoctorGraphError(
                    f"{name}: reads {qi.tensor!r}, which the FP32 model does not have; was the variant made "
                    "from another model?"
                )
            tag = f"{_PREFIX}_{k}_{qi.index}"
            if qi.kind == "weight":
                init = numpy_helper.from_array(dequantized_weight(qi), f"{tag}_w")
                graph.initializer.append(init)
                inputs[qi.index] = init.name
                continue
            scale = numpy_helper.from_array(np.asarray(qi.scale, np.float32).reshape(qi.scale.shape), f"{tag}_s")
            zero = _zero_tensor(qi, f"{tag}_z")
            graph.initializer.extend([scale, zero])
            q_out, dq_out = f"{tag}_q", qdq_output_name(qi.tensor, name)
            extra = {"axis": int(qi.axis)} if qi.axis is not None else {}
            graph.node.append(helper.make_node("QuantizeLinear", [qi.tensor, scale.name, zero.name], [q_out],
                                               name=f"{tag}_Q", **extra))
            graph.node.append(helper.make_node("DequantizeLinear", [q_out, scale.name, zero.name], [dq_out],
                                               name=f"{tag}_DQ", **extra))
            inputs[qi.index] = dq_out
            qdq_map[qi.tensor] = dq_out
        outputs = [local_output_name(o) for o in original.output]
        copy = helper.make_node(original.op_type, inputs, outputs, name=f"{name}{LOCAL_SUFFIX}",
                                domain=original.domain or None)
        copy.attribute.extend(original.attribute)
        graph.node.append(copy)
        mapping[name] = {"outputs": dict(zip(original.output, outputs)), "qdq": qdq_map}
    _ensure_opset(model, _opset(qdq_model))
    return model, mapping


def _zero_tensor(qi: QuantizedInput, name: str) -> onnx.TensorProto:
    values = np.asarray(qi.zero_point)
    if qi.qdtype in (TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16):
        return numpy_helper.from_array(values.astype(helper.tensor_dtype_to_np_dtype(qi.qdtype)), name)
    # float8 and other types: raw zeros of that type
    size = int(values.size)
    return helper.make_tensor(name, qi.qdtype, values.shape, bytes(size), raw=True)


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _ensure_opset(model: onnx.ModelProto, minimum: int) -> None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version < minimum:
            entry.version = minimum
