"""FP16 and BF16 variants: the precision lives in the graph (converted weights, Cast nodes).

Made with onnxconverter-common's ``convert_float_to_float16`` (``keep_io_types=True``, so inputs
and outputs stay FP32 and the variant is a drop-in replacement), with range safeguards:

- **initializers** whose values exceed FP16's range (65504) are not clamped: the nodes that use
  them stay in FP32;
- **activations**, when calibration data is given: every float tensor's min/max is measured
  (:func:`workbench.precision.calibrator.calibrate`, ``minmax`` over all nodes); a tensor whose
  magnitude exceeds 65504 keeps the node that makes it and the nodes that read it in FP32.

**BF16** reuses the same graph surgery and then retargets every FP16 tensor to BF16, re-encoding
weights from the original FP32 values (round to nearest even). ONNX allows BF16 for Conv,
MaxPool, AveragePool and GlobalAveragePool only from opset 22, so a model below that is converted
to opset 22 when ONNX's version converter can; otherwise those ops stay FP32. BF16 has FP32's
exponent range, so it needs no overflow safeguard.

ONNX Runtime's CPU provider has no BF16 kernels for Conv, MatMul, Gemm, Add, Relu... (1.32: BF16
only for data movement, Cast and LayerNormalization), so a BF16 variant cannot run there.
:func:`emulate_low_precision` makes the ORT-runnable stand-in used to measure its accuracy: the
same graph in FP32 with every BF16 tensor rounded to BF16 (Cast to BF16 and back) and BF16
weights stored as their exact FP32 values.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workbench.errors import WorkbenchError
from workbench.model.names import ensure_node_names

FP16_MAX = 65504.0
BF16_OPSET = 22
_EMU_SUFFIX = "__wb_lowp"


class PrecisionConversionError(WorkbenchError, ValueError):
    """A float16/bfloat16 conversion could not be made; the message says why and what to do."""


def converter_version() -> str:
    """onnxconverter-common's version (the tool recorded for FP16/BF16 variants)."""
    import onnxconverter_common

    return getattr(onnxconverter_common, "__version__", "unknown")


# --------------------------------------------------------------------------------------------
# Safeguards
# --------------------------------------------------------------------------------------------


def name_unnamed_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have unique names, by the one naming rule (:mod:`workbench.model.names`)."""
    named = onnx.ModelProto()
    named.CopyFrom(model)
    ensure_node_names(named.graph)
    return named


def graphs_of(graph: onnx.GraphProto):
    """``graph`` and every subgraph in it (If branches, Loop and Scan bodies), outermost first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from graphs_of(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for body in attr.graphs:
                    yield from graphs_of(body)


def initializer_overflow_nodes(model: onnx.ModelProto, limit: float = FP16_MAX) -> dict[str, str]:
    """Nodes that read a float weight with a value beyond ``limit`` in magnitude.

    Weights are initializers and Constant nodes' values, in the main graph and in every
    subgraph (a subgraph's nodes read the weights of the graphs around it too).

    Returns:
        Node name -> reason (naming the weight and its largest magnitude).
    """
    reasons: dict[str, str] = {}
    _overflow_in(model.graph, {}, limit, reasons)
    return reasons


def _overflow_in(graph: onnx.GraphProto, outer: Mapping[str, float], limit: float, reasons: dict) -> None:
    big = dict(outer)
    tensors = [(init.name, init) for init in graph.initializer]
    tensors += [(node.output[0], attr.t) for node in graph.node if node.op_type == "Constant"
                for attr in node.attribute if attr.name == "value"]
    for name, tensor in tensors:
        if tensor.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(tensor)
        if values.size and np.max(np.abs(values)) > limit:
            big[name] = float(np.max(np.abs(values)))
    for node in graph.node:
        for name in node.input:
            if name in big:
                reasons.setdefault(node.name, f"weight '{name}' reaches {big[name]:.6g} > {limit:g}")
        for attr in node.attribute:
            bodies = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for body in bodies:
                _overflow_in(body, big, limit, reasons)


def activation_overflow_nodes(
    model: onnx.ModelProto,
    ranges: Mapping[str, tuple[float, float]],
    limit: float = FP16_MAX,
) -> dict[str, str]:
    """Nodes that make or read a tensor whose observed magnitude exceeds ``limit``.

    Args:
        model: The model.
        ranges: Tensor name -> (min, max) observed on calibration data.
        limit: The largest magnitude allowed.

    Returns:
        Node name -> reason (naming the tensor and its observed magnitude).
    """
    over = {t: max(abs(lo), abs(hi)) for t, (lo, hi) in ranges.items() if max(abs(lo), abs(hi)) > limit}
    reasons = {}
    for node in model.graph.node:
        for name in node.output:
            if name in over:
                reasons.setdefault(node.name, f"makes '{name}', observed |x| up to {over[name]:.6g} > {limit:g}")
        for name in node.input:
            if name in over:
                reasons.setdefault(node.name, f"reads '{name}', observed |x| up to {over[name]:.6g} > {limit:g}")
    return reasons


def _split_shared_initializers(model: onnx.ModelProto, blocked: set[str], blocked_ops: set[str]) -> None:
    """Give FP32-kept nodes their own copy of initializers they share with converted nodes (in place)."""
    inits = {init.name: init for init in model.graph.initializer}
    users: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in inits:
                users.setdefault(name, []).append(node)
    for name, nodes in users.items():
        kept = [n for n in nodes if n.name in blocked or n.op_type in blocked_ops]
        if kept and len(kept) < len(nodes) and inits[name].data_type == TensorProto.FLOAT:
            copy_name = f"{name}_fp32"
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[name])
            copy.name = copy_name
            model.graph.initializer.append(copy)
            for node in kept:
                for i, value in enumerate(node.input):
                    if value == name:
                        node.input[i] = copy_name


# --------------------------------------------------------------------------------------------
# FP16
# --------------------------------------------------------------------------------------------


def to_float16(
    model: onnx.ModelProto,
    *,
    keep_nodes: Sequence[str] = (),
    keep_op_types: Sequence[str] = (),
) -> onnx.ModelProto:
    """FP16 variant with FP32 inputs/outputs (onnxconverter-common), nodes in ``keep_*`` left FP32.

    Args:
        model: The FP32 model (not modified; unnamed nodes get names in the copy).
        keep_nodes: Node names kept in FP32 (recipe keep lists plus safeguards).
        keep_op_types: Op types kept in FP32 (added to onnxconverter-common's default block list).

    Returns:
        The converted model (no initializer is clamped: values beyond 65504 must be kept by
        their nodes, see :func:`initializer_overflow_nodes`).
    """
    from onnxconverter_common import float16

    work = name_unnamed_nodes(model)
    op_block = set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_op_types)
    _split_shared_initializers(work, set(keep_nodes), op_block)
    outer_scope = _inputs_read_only_inside(work)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        converted = float16.convert_float_to_float16(
            work,
            keep_io_types=True,
            max_finite_val=FP16_MAX,
            op_block_list=sorted(op_block),
            node_block_list=sorted(set(keep_nodes)),
        )
    fix_float_casts(converted)
    _read_outputs_before_their_cast(converted, [o.name for o in work.graph.output
                                                if o.type.tensor_type.elem_type == TensorProto.FLOAT])
    _cast_outer_scope_inputs(converted, outer_scope)
    return converted


def _read_outputs_before_their_cast(model: onnx.ModelProto, float_outputs: Sequence[str]) -> int:
    """Graph outputs stay float32, and float16 nodes that read one get it as float16 (in place).

    onnxconverter-common's ``keep_io_types`` ends the producer of a graph output with a Cast to
    float32 under the output's name, but a converted node that also reads that output inside
    the graph (a recurrent state made from the output) keeps reading the name, now float32,
    while its own outputs are float16; and a kept-FP32 producer's output gets a Cast to float16
    and is declared float16. Either is an invalid graph. Here the outputs are declared float32
    again, their Casts made float32, and each float16 reader gets a Cast of its own.

    Args:
        model: The converted model.
        float_outputs: The graph outputs that were float32 before the conversion.

    Returns:
        How many outputs, Casts and inputs were changed.
    """
    graph = model.graph
    outputs = set(float_outputs)
    changed = 0
    for value in graph.output:
        if value.name in outputs and value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
            changed += 1
    halves = {vi.name for vi in graph.value_info if vi.type.tensor_type.elem_type == TensorProto.FLOAT16}
    nodes = []
    for node in graph.node:
        if node.op_type == "Cast" and node.output and node.output[0] in outputs and _cast_to(node) == TensorProto.FLOAT16:
            next(a for a in node.attribute if a.name == "to").i = TensorProto.FLOAT
            changed += 1
        if any(o in halves for o in node.output):  # a float16 node: it reads outputs as float16
            for i, name in enumerate(node.input):
                if name in outputs:
                    half = f"{name}__wb_fp16_for_{node.name}_{i}"
                    nodes.append(helper.make_node("Cast", [name], [half], name=half, to=TensorProto.FLOAT16))
                    node.input[i] = half
                    changed += 1
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return changed


def _inputs_read_only_inside(model: onnx.ModelProto) -> list[str]:
    """Float graph inputs that only If/Loop/Scan bodies read (from the outer scope)."""
    graph = model.graph
    bodies = list(graphs_of(graph))[1:]
    read_on_top = {name for node in graph.node for name in node.input}
    read_inside = {name for body in bodies for node in body.node for name in node.input}
    return [value.name for value in graph.input if value.type.tensor_type.elem_type == TensorProto.FLOAT
            and value.name in read_inside - read_on_top]


def _cast_outer_scope_inputs(model: onnx.ModelProto, names: Sequence[str]) -> None:
    """Cast float inputs that only subgraphs read to float16 for them (in place, after conversion).

    onnxconverter-common casts a float graph input to float16 for its top-level consumers only;
    an If/Loop body reading it from the outer scope would get float32 where its nodes now expect
    float16: an invalid graph. A Cast at the top of the graph feeds them instead.
    """
    if not names:
        return
    renamed = {name: f"{name}__wb_fp16" for name in names}
    for body in list(graphs_of(model.graph))[1:]:
        for node in body.node:
            for i, name in enumerate(node.input):
                if name in renamed:
                    node.input[i] = renamed[name]
    casts = [helper.make_node("Cast", [name], [new], name=new, to=TensorProto.FLOAT16) for name, new in renamed.items()]
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def fix_float_casts(model: onnx.ModelProto) -> int:
    """Point ``Cast(to=float)`` nodes whose output the FP16 converter typed float16 at float16 (in place).

    onnxconverter-common retypes every float value to float16 but leaves the ``to`` of Casts
    the model already had (a bool one-hot cast to float, say), so the Cast would still make
    float32 for float16 consumers: an invalid graph.

    Returns:
        How many Casts were changed.
    """
    changed = 0
    for graph in graphs_of(model.graph):
        halves = {vi.name for vi in graph.value_info if vi.type.tensor_type.elem_type == TensorProto.FLOAT16}
        for node in graph.node:
            if node.op_type == "Cast" and node.output and node.output[0] in halves \
                    and _cast_to(node) == TensorProto.FLOAT:
                next(a for a in node.attribute if a.name == "to").i = TensorProto.FLOAT16
                changed += 1
    return changed


# --------------------------------------------------------------------------------------------
# BF16
# --------------------------------------------------------------------------------------------


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def ops_without_bfloat16(model: onnx.ModelProto, opset: int | None = None) -> list[str]:
    """Op types of the model whose ONNX schema (at ``opset``) takes float32 but not bfloat16."""
    opset = opset or _opset(model)
    lacking = set()
    for op in {(n.domain, n.op_type) for graph in graphs_of(model.graph) for n in graph.node}:
        domain, op_type = op
        if domain not in ("", "ai.onnx"):
            continue
        try:
            schema = onnx.defs.get_schema(op_type, opset, domain)
        except onnx.defs.SchemaError:
            continue
        allowed = [set(c.allowed_type_strs) for c in schema.type_constraints]
        if any("tensor(float)" in a and "tensor(bfloat16)" not in a for a in allowed):
            lacking.add(op_type)
    return sorted(lacking)


def to_bfloat16(
    model: onnx.ModelProto,
    *,
    keep_nodes: Sequence[str] = (),
    keep_op_types: Sequence[str] = (),
) -> tuple[onnx.ModelProto, dict]:
    """BF16 variant with FP32 inputs/outputs.

    Args:
        model: The FP32 model (not modified).
        keep_nodes: Node names kept in FP32.
        keep_op_types: Op types kept in FP32.

    Returns:
        (the model, notes): notes say whether the opset was raised and which op types stayed FP32
        because ONNX allows no BF16 for them at the model's opset.
    """
    notes = {"opset_from": _opset(model), "opset": _opset(model), "fp32_for_onnx_types": []}
    work = model
    if ops_without_bfloat16(model) and _opset(model) < BF16_OPSET:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                work = onnx.version_converter.convert_version(model, BF16_OPSET)
            onnx.checker.check_model(work)
            notes["opset"] = BF16_OPSET
        except Exception as err:  # the converter lacks an adapter: keep those ops in FP32
            work = model
            notes["opset_conversion_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    lacking = ops_without_bfloat16(work)
    notes["fp32_for_onnx_types"] = lacking
    originals = _float_values(name_unnamed_nodes(work))
    low = to_float16(work, keep_nodes=keep_nodes, keep_op_types=tuple(keep_op_types) + tuple(lacking))
    _retarget_float16(low, originals)
    try:
        onnx.checker.check_model(low)
    except onnx.checker.ValidationError as err:
        raise PrecisionConversionError(
            f"the BF16 graph fails the ONNX checker ({str(err).splitlines()[0]}). Keep the op type "
            "it names in FP32 (keep_fp32_op_types)."
        ) from err
    return low, notes


def _float_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """FP32 initializer and Constant values by name (Constants by their output name), subgraphs included."""
    values = {}
    for graph in graphs_of(model.graph):
        values.update({init.name: numpy_helper.to_array(init) for init in graph.initializer
                       if init.data_type == TensorProto.FLOAT})
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                        values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _bf16_tensor(name: str, values: np.ndarray) -> onnx.TensorProto:
    import ml_dtypes

    data = np.asarray(values, dtype=np.float32).astype(ml_dtypes.bfloat16)
    return helper.make_tensor(name, TensorProto.BFLOAT16, data.shape, data.view(np.uint16).tobytes(), raw=True)


def _retarget_float16(model: onnx.ModelProto, originals: Mapping[str, np.ndarray]) -> None:
    """Every FLOAT16 tensor, Cast and type in ``model`` (subgraphs included) becomes BFLOAT16 (in place)."""
    for graph in graphs_of(model.graph):
        _retarget_graph(graph, originals)


def _retarget_graph(graph: onnx.GraphProto, originals: Mapping[str, np.ndarray]) -> None:
    for index, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT16:
            values = originals.get(init.name)
            if values is None:
                values = numpy_helper.to_array(init).astype(np.float32)
            graph.initializer[index].CopyFrom(_bf16_tensor(init.name, values))
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.INT and node.op_type == "Cast" and attr.name == "to" \
                    and attr.i == TensorProto.FLOAT16:
                attr.i = TensorProto.BFLOAT16
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT16:
                key = node.output[0] if node.op_type == "Constant" else None
                values = originals.get(key) if key else None
                if values is None:
                    values = numpy_helper.to_array(attr.t).astype(np.float32)
                attr.t.CopyFrom(_bf16_tensor(attr.t.name, values))
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
            vi.type.tensor_type.elem_type = TensorProto.BFLOAT16


# --------------------------------------------------------------------------------------------
# Emulation on ORT CPU
# --------------------------------------------------------------------------------------------


def emulate_low_precision(model: onnx.ModelProto, low_type: int = TensorProto.BFLOAT16) -> onnx.ModelProto:
    """An FP32 stand-in for a FP16/BF16 graph that ONNX Runtime's CPU provider can run.

    Every tensor of ``low_type`` becomes FP32 holding exactly the low-precision value: weights are
    stored as the FP32 values of their low-precision encoding, and every low-precision tensor a
    node makes is rounded through ``Cast(low) -> Cast(float)``. Arithmetic inside each op runs in
    FP32 (as TensorRT accumulates BF16/FP16 math in FP32); what is emulated is every stored value's
    rounding.

    Args:
        model: The low-precision model (not modified).
        low_type: ``TensorProto.BFLOAT16`` or ``TensorProto.FLOAT16``.

    Returns:
        The emulation model.
    """
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    types = _elem_types(inferred)
    emu = onnx.ModelProto()
    emu.CopyFrom(model)
    # innermost graphs first: rewriting a graph's node list copies the subgraphs inside it
    for graph in reversed(list(graphs_of(emu.graph))):
        _emulate_graph(graph, types, low_type)
    return emu


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Value name -> element type, from every graph's value_info, inputs and outputs."""
    return {vi.name: vi.type.tensor_type.elem_type for graph in graphs_of(model.graph)
            for vi in list(graph.value_info) + list(graph.input) + list(graph.output)}


def _emulate_graph(graph: onnx.GraphProto, types: Mapping[str, int], low_type: int) -> None:
    """One graph of :func:`emulate_low_precision` (in place; its subgraphs are not visited)."""
    for index, init in enumerate(graph.initializer):
        if init.data_type == low_type:
            values = numpy_helper.to_array(init).astype(np.float32)
            graph.initializer[index].CopyFrom(numpy_helper.from_array(values, init.name))
    new_nodes = []
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == low_type:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32), attr.t.name))
        if node.op_type == "Cast" and _cast_to(node) == low_type:
            raw = node.output[0] + _EMU_SUFFIX
            final = node.output[0]
            node.output[0] = raw
            new_nodes.append(node)
            new_nodes.append(helper.make_node("Cast", [raw], [final], to=TensorProto.FLOAT, name=node.name + "_emu"))
            continue
        new_nodes.append(node)
        if node.op_type == "Cast":
            continue
        for i, out in enumerate(node.output):
            if out and types.get(out) == low_type:
                raw = out + _EMU_SUFFIX
                node.output[i] = raw
                rounded = out + _EMU_SUFFIX + "_r"
                new_nodes.append(helper.make_node("Cast", [raw], [rounded], to=low_type, name=f"{node.name}_emu_round{i}"))
                new_nodes.append(helper.make_node("Cast", [rounded], [out], to=TensorProto.FLOAT, name=f"{node.name}_emu_back{i}"))
    del graph.node[:]
    graph.node.extend(new_nodes)
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        if vi.type.tensor_type.elem_type == low_type:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _cpu_kernel_types() -> dict[str, set[str]]:
    """Op type -> tensor types ORT's CPU provider has kernels for (default domain)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as C

    kernels: dict[str, set[str]] = {}
    for kernel in C.get_all_opkernel_def():
        if kernel.provider == "CPUExecutionProvider" and kernel.domain in ("", "ai.onnx"):
            types = kernels.setdefault(kernel.op_name, set())
            for allowed in kernel.type_constraints.values():
                types.update(allowed)
    return kernels


def ort_cpu_upcast_ops(model: onnx.ModelProto, low_type: int) -> list[str]:
    """Op types in ``model`` that take or make ``low_type`` tensors but have no ORT CPU kernel for it.

    ONNX Runtime runs such nodes in float32, inserting Casts around them (and dropping the Cast
    pairs between neighbours), so on ORT CPU their low-precision rounding and overflow never
    happen. With an empty list ORT CPU executes the graph in its own precision.
    """
    type_name = {TensorProto.FLOAT16: "tensor(float16)", TensorProto.BFLOAT16: "tensor(bfloat16)"}[low_type]
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    types = _elem_types(inferred)
    types.update({i.name: i.data_type for graph in graphs_of(model.graph) for i in graph.initializer})
    kernels = _cpu_kernel_types()
    missing = set()
    for node in (n for graph in graphs_of(model.graph) for n in graph.node):
        if node.op_type == "Cast" or node.domain not in ("", "ai.onnx"):
            continue
        if any(types.get(t) == low_type for t in list(node.input) + list(node.output)):
            if type_name not in kernels.get(node.op_type, set()):
                missing.add(node.op_type)
    return sorted(missing)


def float_tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Counts of initializer element types: for records and checks."""
    counts: dict[str, int] = {}
    for init in model.graph.initializer:
        key = TensorProto.DataType.Name(init.data_type)
        counts[key] = counts.get(key, 0) + 1
    return counts
