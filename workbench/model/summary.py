"""What is in an ONNX model: I/O, opsets, op histogram, parameters, a FLOPs estimate, quantization."""

from __future__ import annotations

import html
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import helper

SUBGRAPH_OPS = ("If", "Loop", "Scan")
# Ops that compute with integers (already-quantized models); FLOPs do not count them.
INTEGER_COMPUTE_OPS = frozenset({
    "ConvInteger", "MatMulInteger", "MatMulInteger16", "QLinearConv", "QLinearMatMul", "QGemm",
    "DynamicQuantizeMatMul", "MatMulNBits", "QAttention", "DynamicQuantizeLSTM",
})
RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})
# Ops only an already-quantized model holds (plus every QLinear* op).
QUANTIZED_OPS = INTEGER_COMPUTE_OPS | {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


@dataclass
class ModelSummary:
    """A model's vital statistics. ``to_dict()`` is the ``workbench inspect --json`` contract.

    Shapes list ints for static dims and strings for symbolic ones (``"batch"``; ``"?"`` for an
    unnamed dynamic dim). FLOPs count one multiply-add as two operations, for Conv,
    ConvTranspose, Gemm and MatMul, per sample (the inputs' leading dynamic dims taken as 1).
    Where they cannot be counted (other dynamic dims, shapes inference could not follow,
    integer or recurrent ops, compute inside If/Loop/Scan bodies) ``flops``, ``macs`` are None,
    ``flops_by_op`` is empty and ``flops_unknown_reason`` says why. ``parameters`` counts the
    weights of subgraphs too. ``normalization`` lists what the loader changed (``{"step",
    "detail"}``), ``quantized`` says the model already holds quantization ops
    (``quantized_ops``: op type -> count, subgraphs included), ``nodes`` lists the main graph's
    nodes (``{"name", "op_type"}``) by the names every tool uses.
    """

    path: str
    producer: str
    producer_version: str
    ir_version: int
    opset: int
    opsets: dict
    inputs: list
    outputs: list
    node_count: int
    op_histogram: dict
    parameters: int
    parameter_bytes: int
    flops: int | None
    macs: int | None
    flops_by_op: dict
    subgraphs: dict
    subgraph_node_count: int
    file_bytes: int
    uses_external_data: bool
    flops_unknown_nodes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    flops_unknown_reason: str | None = None
    normalization: list = field(default_factory=list)
    quantized: bool = False
    quantized_ops: dict = field(default_factory=dict)
    nodes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def io_frame(self) -> pd.DataFrame:
        """Inputs and outputs as one table (kind, name, dtype, shape)."""
        rows = [{"kind": "input", **t} for t in self.inputs]
        rows += [{"kind": "output", **t} for t in self.outputs]
        frame = pd.DataFrame(rows, columns=["kind", "name", "dtype", "shape"])
        frame["shape"] = frame["shape"].map(format_shape)
        return frame

    def facts(self) -> list[tuple[str, str]]:
        """The headline figures as (label, value) pairs, formatted for people."""
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(self.opsets.items()))
        subgraphs = ", ".join(f"{k} {v}" for k, v in self.subgraphs.items() if v) or "none"
        return [
            ("file", Path(self.path).name),
            ("producer", f"{self.producer} {self.producer_version}".strip() or "unknown"),
            ("opsets", opsets),
            ("nodes", f"{self.node_count:,}"),
            ("parameters", f"{self.parameters:,} ({format_bytes(self.parameter_bytes)})"),
            ("FLOPs (per sample)", format_count(self.flops) if self.flops is not None
             else f"unknown: {self.flops_unknown_reason}"),
            ("subgraphs", subgraphs),
        ] + ([("quantized", self.quantized_statement())] if self.quantized else [])

    def quantized_statement(self) -> str:
        """One line saying the model is already quantized, how, and what that means; "" if not."""
        if not self.quantized:
            return ""
        ops = ", ".join(f"{op} {n}" for op, n in self.quantized_ops.items())
        if any(op.startswith("Dynamic") or op.endswith("Integer") for op in self.quantized_ops):
            kind = "dynamically quantized"
        elif any(op.startswith("QLinear") or op in INTEGER_COMPUTE_OPS for op in self.quantized_ops):
            kind = "quantized with integer operators"
        else:
            kind = "quantized with QuantizeLinear/DequantizeLinear pairs"
        return (f"this model is already {kind} ({ops}); make precision variants from its "
                "FP32 original instead")

    def to_html(self) -> str:
        """A compact HTML summary: headline facts, then the I/O table."""
        facts = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>"
            for k, v in self.facts()
        )
        warnings = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        warnings += "".join(f"<li>loaded with: {html.escape(s['detail'])}</li>" for s in self.normalization)
        return (
            f"<table>{facts}</table>"
            + self.io_frame().to_html(index=False, border=0)
            + (f"<ul class='wb-warnings'>{warnings}</ul>" if warnings else "")
        )


def summarize(
    proto: onnx.ModelProto,
    inferred: onnx.ModelProto | None = None,
    *,
    path=None,
    warnings=None,
) -> ModelSummary:
    """Summarize a model.

    Args:
        proto: The model (external data loaded).
        inferred: The same model after shape inference; shapes for FLOPs come from it.
        path: Where it was loaded from, for the record.
        warnings: Messages gathered while loading, carried into the summary.

    Returns:
        The summary.
    """
    inferred = inferred if inferred is not None else proto
    graph = proto.graph
    initializer_names = {init.name for init in graph.initializer}
    parameters, parameter_bytes = _count_parameters(graph)
    flops_by_op, unknown, reason = count_macs(inferred.graph, graph)
    macs = None if reason else sum(flops_by_op.values())
    subgraphs, subgraph_nodes = _count_subgraphs(graph)
    opsets = {imp.domain: imp.version for imp in proto.opset_import}
    file_bytes = Path(path).stat().st_size if path and Path(path).exists() else proto.ByteSize()
    quantized_ops = _quantized_ops(graph)
    return ModelSummary(
        path=str(path) if path else "",
        producer=proto.producer_name,
        producer_version=proto.producer_version,
        ir_version=proto.ir_version,
        opset=opsets.get("", opsets.get("ai.onnx", 0)),
        opsets=opsets,
        # Graph inputs that are also initializers (IR < 4 style) are weights, not model inputs.
        inputs=[_tensor_info(v) for v in graph.input if v.name not in initializer_names],
        outputs=[_tensor_info(v) for v in graph.output],
        node_count=len(graph.node),
        op_histogram=dict(Counter(node.op_type for node in graph.node).most_common()),
        parameters=parameters,
        parameter_bytes=parameter_bytes,
        flops=None if macs is None else 2 * macs,
        macs=macs,
        flops_by_op={} if reason else {op: 2 * n for op, n in flops_by_op.items()},
        subgraphs=subgraphs,
        subgraph_node_count=subgraph_nodes,
        file_bytes=int(file_bytes),
        uses_external_data=any(
            onnx.external_data_helper.uses_external_data(t) for t in graph.initializer
        ),  # the loader sets this from the file, before the data is loaded into the proto
        flops_unknown_nodes=unknown,
        warnings=list(warnings or []),
        flops_unknown_reason=reason,
        quantized=bool(quantized_ops),
        quantized_ops=quantized_ops,
        nodes=[{"name": node.name, "op_type": node.op_type} for node in graph.node],
    )


def _tensor_info(value: onnx.ValueInfoProto) -> dict:
    ttype = value.type.tensor_type
    dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type).name if ttype.elem_type else None
    shape = None
    if ttype.HasField("shape"):
        shape = [_dim(d) for d in ttype.shape.dim]
    return {"name": value.name, "dtype": dtype, "shape": shape}


def _dim(dim) -> int | str:
    if dim.HasField("dim_value") and dim.dim_value >= 0:
        return int(dim.dim_value)
    return dim.dim_param or "?"  # some exporters write a dynamic dim as -1


def _count_parameters(graph) -> tuple[int, int]:
    """Values and bytes of the graph's weights: initializers and Constant tensors, subgraphs included."""
    count = 0
    nbytes = 0
    tensors = list(graph.initializer)
    for node in graph.node:  # weights stored as Constant nodes count too
        if node.op_type == "Constant":
            tensors += [attr.t for attr in node.attribute if attr.name == "value"]
        for body in _bodies(node):
            inner, inner_bytes = _count_parameters(body)
            count, nbytes = count + inner, nbytes + inner_bytes
    for tensor in tensors:
        n = math.prod(tensor.dims)
        count += n
        nbytes += n * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return count, nbytes


_BODY_OPS = frozenset(SUBGRAPH_OPS + ("SequenceMap",))  # the ai.onnx ops with graph attributes


def _bodies(node) -> list:
    """The subgraphs a node holds (If branches, Loop/Scan bodies; any graph attribute of a custom op)."""
    if node.op_type not in _BODY_OPS and node.domain in ("", "ai.onnx"):
        return []  # reading every node's attributes would cost a large model a good part of a second
    bodies = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            bodies.append(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            bodies.extend(attr.graphs)
    return bodies


def _all_op_types(graph):
    for node in graph.node:
        yield node.op_type
        for body in _bodies(node):
            yield from _all_op_types(body)


def _quantized_ops(graph) -> dict:
    """Op type -> count of the quantization ops anywhere in the model, most common first."""
    found = Counter(op for op in _all_op_types(graph) if op in QUANTIZED_OPS or op.startswith("QLinear"))
    return dict(found.most_common())


def _count_subgraphs(graph) -> tuple[dict, int]:
    counts = dict.fromkeys(SUBGRAPH_OPS, 0)
    nodes = 0
    for node in graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
        for body in _bodies(node):
            nodes += len(body.node)
            inner_counts, inner_nodes = _count_subgraphs(body)
            nodes += inner_nodes
            for op, n in inner_counts.items():
                counts[op] += n
    return counts, nodes


# --- FLOPs ---------------------------------------------------------------------------------


def count_macs(inferred_graph, graph=None) -> tuple[dict, list, str | None]:
    """Multiply-accumulates per op type, and why they are unknown where they are.

    Args:
        inferred_graph: The main graph after shape inference (value_info filled in where ONNX could).
        graph: The same graph before inference (for its subgraphs); defaults to ``inferred_graph``.

    Returns:
        ``(op type -> MACs of the nodes counted, names of compute nodes whose shapes are unknown,
        reason)``: the reason is None when every compute node was counted, else one line naming
        what could not be (then the MACs are partial and must not be reported).
    """
    graph = graph if graph is not None else inferred_graph
    macs, unknown, dynamic = estimate_macs(inferred_graph, with_dynamic=True)
    reasons = []
    if dynamic:
        dims = sorted(dynamic)
        reasons.append(f"dynamic dims {dims[:4]}{' ...' if len(dims) > 4 else ''} set the size of compute "
                       "nodes: the count depends on the input size")
    if unknown:
        reasons.append(f"shape inference could not follow {len(unknown)} compute node(s) (e.g. {unknown[0]!r})")
    ops = Counter(node.op_type for node in graph.node)
    for label, kinds in (("integer ops", INTEGER_COMPUTE_OPS), ("recurrent ops", RECURRENT_OPS)):
        found = {op: n for op, n in ops.items() if op in kinds}
        if found:
            reasons.append(f"{label} are not counted ({', '.join(f'{op} {n}' for op, n in sorted(found.items()))})")
    inner = sum(1 for node in graph.node for body in _bodies(node) for op in _all_op_types(body)
                if op in _MAC_COUNTERS or op in INTEGER_COMPUTE_OPS or op in RECURRENT_OPS)
    if inner:
        reasons.append(f"{inner} compute node(s) sit inside If/Loop/Scan subgraphs, which run a "
                       "data-dependent number of times")
    return dict(macs), unknown, "; ".join(reasons) or None


def estimate_macs(graph, *, with_dynamic: bool = False):
    """Multiply-accumulates per op type for Conv, ConvTranspose, Gemm and MatMul.

    Args:
        graph: A graph after shape inference (value_info filled in where ONNX could).
        with_dynamic: Also return the dynamic dim names that kept nodes from being counted.

    Returns:
        (op type -> MACs, names of nodes whose shapes were unknown or dynamic so they were not
        counted), plus the set of dynamic dim names if ``with_dynamic``. The inputs' leading
        dynamic dims (the batch) count as 1.
    """
    shapes = _static_shapes(graph)
    macs: Counter = Counter()
    unknown, dynamic = [], set()
    for node in graph.node:
        counter = _MAC_COUNTERS.get(node.op_type)
        if counter is None:
            continue
        used = [shapes.get(name) for name in list(node.input[:2]) + list(node.output[:1])]
        symbolic = {d for shape in used if shape is not None for d in shape if isinstance(d, str)}
        if symbolic:
            dynamic |= symbolic
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        try:
            value = counter(node, attrs, shapes)
        except (KeyError, IndexError, ValueError, TypeError):
            value = None
        if value is None or value < 0:
            unknown.append(node.name or node.op_type)
        else:
            macs[node.op_type] += int(value)
    if with_dynamic:
        return dict(macs), unknown, dynamic
    return dict(macs), unknown


def _static_shapes(graph) -> dict:
    """Tensor name -> shape: ints, the inputs' leading dynamic dims as 1, other dynamic dims as names."""
    batch = set()
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim if value.type.tensor_type.HasField("shape") else []
        if dims and not dims[0].HasField("dim_value") and dims[0].dim_param:
            batch.add(dims[0].dim_param)
    shapes = {}
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        ttype = value.type.tensor_type
        if ttype.HasField("shape"):
            shapes[value.name] = [
                d.dim_value if d.HasField("dim_value") and d.dim_value >= 0
                else 1 if d.dim_param in batch else (d.dim_param or "?")
                for d in ttype.shape.dim
            ]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = list(attr.t.dims)
    return shapes


def _conv_macs(node, attrs, shapes):
    weight = shapes[node.input[1]]
    out = shapes[node.output[0]]
    # weight: [Cout, Cin/group, k...]; each output element needs Cin/group * prod(k) MACs
    return int(np.prod(out)) * int(np.prod(weight[1:]))


def _conv_transpose_macs(node, attrs, shapes):
    x = shapes[node.input[0]]
    weight = shapes[node.input[1]]
    # weight: [Cin, Cout/group, k...]; each input element is spread over Cout/group * prod(k)
    return int(np.prod(x)) * int(np.prod(weight[1:]))


def _gemm_macs(node, attrs, shapes):
    a = shapes[node.input[0]]
    b = shapes[node.input[1]]
    m, k = (a[1], a[0]) if attrs.get("transA", 0) else (a[0], a[1])
    n = b[0] if attrs.get("transB", 0) else b[1]
    return m * k * n


def _matmul_macs(node, attrs, shapes):
    a = list(shapes[node.input[0]])
    b = list(shapes[node.input[1]])
    if len(a) == 1:
        a = [1] + a
    if len(b) == 1:
        b = b + [1]
    batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return int(np.prod(batch)) * a[-2] * a[-1] * b[-1]


_MAC_COUNTERS = {
    "Conv": _conv_macs,
    "ConvTranspose": _conv_transpose_macs,
    "Gemm": _gemm_macs,
    "MatMul": _matmul_macs,
}


# --- formatting ----------------------------------------------------------------------------


def format_shape(shape) -> str:
    if shape is None:
        return "unknown"
    return "[" + ", ".join(str(d) for d in shape) + "]"


def format_count(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def format_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
