"""What is in an ONNX model: I/O, opsets, op histogram, parameters and a FLOPs estimate."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import helper

SUBGRAPH_OPS = ("If", "Loop", "Scan")


@dataclass
class ModelSummary:
    """A model's vital statistics. ``to_dict()`` is the ``workbench inspect --json`` contract.

    Shapes list ints for static dims and strings for symbolic ones (``"batch"``; ``"?"`` for an
    unnamed dynamic dim). FLOPs count one multiply-add as two operations, for Conv,
    ConvTranspose, Gemm and MatMul only, with symbolic dims taken as 1 (so per sample).
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
    flops: int
    macs: int
    flops_by_op: dict
    subgraphs: dict
    subgraph_node_count: int
    file_bytes: int
    uses_external_data: bool
    flops_unknown_nodes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

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
            ("FLOPs (per sample)", format_count(self.flops)),
            ("subgraphs", subgraphs),
        ]

    def to_html(self) -> str:
        """A compact HTML summary: headline facts, then the I/O table."""
        facts = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>"
            for k, v in self.facts()
        )
        warnings = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
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
    flops_by_op, unknown = estimate_macs(inferred.graph)
    macs = sum(flops_by_op.values())
    subgraphs, subgraph_nodes = _count_subgraphs(graph)
    opsets = {imp.domain: imp.version for imp in proto.opset_import}
    file_bytes = Path(path).stat().st_size if path and Path(path).exists() else proto.ByteSize()
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
        flops=2 * macs,
        macs=macs,
        flops_by_op={op: 2 * n for op, n in flops_by_op.items()},
        subgraphs=subgraphs,
        subgraph_node_count=subgraph_nodes,
        file_bytes=int(file_bytes),
        uses_external_data=any(
            onnx.external_data_helper.uses_external_data(t) for t in graph.initializer
        ),  # the loader sets this from the file, before the data is loaded into the proto
        flops_unknown_nodes=unknown,
        warnings=list(warnings or []),
    )


def _tensor_info(value: onnx.ValueInfoProto) -> dict:
    ttype = value.type.tensor_type
    dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type).name if ttype.elem_type else None
    shape = None
    if ttype.HasField("shape"):
        shape = [_dim(d) for d in ttype.shape.dim]
    return {"name": value.name, "dtype": dtype, "shape": shape}


def _dim(dim) -> int | str:
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    return dim.dim_param or "?"


def _count_parameters(graph) -> tuple[int, int]:
    count = 0
    nbytes = 0
    for init in graph.initializer:
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        count += n
        nbytes += n * helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
    for node in graph.node:  # weights stored as Constant nodes count too
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    n = int(np.prod(attr.t.dims)) if len(attr.t.dims) else 1
                    count += n
                    nbytes += n * helper.tensor_dtype_to_np_dtype(attr.t.data_type).itemsize
    return count, nbytes


def _count_subgraphs(graph) -> tuple[dict, int]:
    counts = dict.fromkeys(SUBGRAPH_OPS, 0)
    nodes = 0
    for node in graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
        for attr in node.attribute:
            bodies = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for body in bodies:
                nodes += len(body.node)
                inner_counts, inner_nodes = _count_subgraphs(body)
                nodes += inner_nodes
                for op, n in inner_counts.items():
                    counts[op] += n
    return counts, nodes


# --- FLOPs ---------------------------------------------------------------------------------


def estimate_macs(graph) -> tuple[dict, list]:
    """Multiply-accumulates per op type for Conv, ConvTranspose, Gemm and MatMul.

    Args:
        graph: A graph after shape inference (value_info filled in where ONNX could).

    Returns:
        (op type -> MACs, names of nodes whose shapes were unknown so they were not counted).
    """
    shapes = _static_shapes(graph)
    macs: Counter = Counter()
    unknown = []
    for node in graph.node:
        counter = _MAC_COUNTERS.get(node.op_type)
        if counter is None:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        try:
            value = counter(node, attrs, shapes)
        except (KeyError, IndexError, ValueError, TypeError):
            value = None
        if value is None:
            unknown.append(node.name or node.op_type)
        else:
            macs[node.op_type] += int(value)
    return dict(macs), unknown


def _static_shapes(graph) -> dict:
    """Tensor name -> shape with symbolic dims taken as 1."""
    shapes = {}
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        ttype = value.type.tensor_type
        if ttype.HasField("shape"):
            shapes[value.name] = [
                d.dim_value if d.HasField("dim_value") else 1 for d in ttype.shape.dim
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


def format_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def format_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
