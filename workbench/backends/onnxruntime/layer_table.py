"""The ONNX Runtime layer table: one row per node of the optimized graph, joined with profiler times."""

from __future__ import annotations

import bisect
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import onnx
import pandas as pd

from workbench.backends.onnxruntime.layer_map import NCHWC_DOMAIN, map_to_original
from workbench.backends.onnxruntime.session import CPU_PROVIDER, SOURCE
from workbench.tables.engine_table import add_shares, make_layer_table, precision_of
from workbench.tables.machine import cpu_name

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.BFLOAT16: "BF16",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.STRING: "STRING",
}

_PROFILER_DTYPES = {
    "float": "FP32", "MLFloat16": "FP16", "float16": "FP16", "BFloat16": "BF16",
    "double": "FP64", "int8_t": "INT8", "int8": "INT8", "uint8_t": "UINT8", "uint8": "UINT8",
    "int16_t": "INT16", "uint16_t": "UINT16", "int32_t": "INT32", "int32": "INT32",
    "uint32_t": "UINT32", "int64_t": "INT64", "int64": "INT64", "uint64_t": "UINT64",
    "bool": "BOOL",
}

_PROFILE_SUFFIX = "_kernel_time"

def _value_types(model: onnx.ModelProto) -> dict[str, tuple[str | None, list | None]]:
    """Tensor name -> (dtype label, shape) from a model's inputs, outputs, value_info and
    initializers, after ONNX shape inference where it succeeds (contrib ops are skipped)."""
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is best effort; fall back to declared types
        pass
    graph = model.graph
    info: dict[str, tuple[str | None, list | None]] = {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        if vi.type.HasField("tensor_type"):
            tt = vi.type.tensor_type
            shape = None
            if tt.HasField("shape"):
                shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                         for d in tt.shape.dim]
            info[vi.name] = (_ONNX_DTYPES.get(tt.elem_type), shape)
    for init in graph.initializer:
        info[init.name] = (_ONNX_DTYPES.get(init.data_type), list(init.dims))
    return info

def _tensor_facts(original: onnx.ModelProto, optimized: onnx.ModelProto, eq: dict[str, str]):
    """Return a function tensor name -> schema tensor dict (name, dtype, format, shape).

    Types come from ONNX shape inference on the optimized graph, then from the original tensor
    holding the same values, then from :func:`_propagate_dtypes` for tensors between contrib
    ops that ONNX cannot infer. NCHWc tensors keep their logical (NCHW) shape with format
    ``"NCHWc"``.
    """
    orig_info = _value_types(original)
    opt_info = _value_types(optimized)
    known: dict[str, tuple] = {}
    for name in {t for n in optimized.graph.node for t in (*n.input, *n.output) if t}:
        a = opt_info.get(name, (None, None))
        b = orig_info.get(eq.get(name, name), (None, None))
        known[name] = (a[0] or b[0], a[1] if a[1] is not None else b[1])
    _propagate_dtypes(optimized.graph.node, known)
    nchwc = {t for n in optimized.graph.node if n.domain == NCHWC_DOMAIN
             and n.op_type != "ReorderOutput" for t in n.output}

    def facts(name: str) -> dict:
        dtype, shape = known.get(name, (None, None))
        return {"name": name, "dtype": dtype, "format": "NCHWc" if name in nchwc else None,
                "shape": shape}

    return facts

_SAME_DTYPE_OPS = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity",
                   "MaxPool", "ReorderInput", "ReorderOutput", "MemcpyToHost", "MemcpyFromHost"}

_DTYPE_FROM_INPUT = {"QuantizeLinear": 2, "DequantizeLinear": 1, "QLinearConv": 7,
                     "QLinearMatMul": 7, "QLinearAdd": 7, "QLinearMul": 7, "QGemm": 8,
                     "QLinearSigmoid": 4, "QLinearLeakyRelu": 4, "QLinearGlobalAveragePool": 4,
                     "QLinearAveragePool": 4, "QLinearSoftmax": 4}

def _propagate_dtypes(nodes: Iterable[onnx.NodeProto], known: dict[str, tuple]) -> None:
    """Fill unknown output dtypes that follow exactly from an input's (in graph order).

    Args:
        nodes: The optimized graph's nodes.
        known: Tensor name -> (dtype, shape); updated in place.
    """
    for node in nodes:
        if not node.output or not node.output[0] or known.get(node.output[0], (None,))[0]:
            continue
        if node.op_type in _SAME_DTYPE_OPS:
            position = 0
        else:
            position = _DTYPE_FROM_INPUT.get(node.op_type)
        if position is None or len(node.input) <= position or not node.input[position]:
            continue
        dtype = known.get(node.input[position], (None,))[0]
        if dtype:
            known[node.output[0]] = (dtype, known.get(node.output[0], (None, None))[1])

def _layer_precision(node: onnx.NodeProto, inputs: list[dict], outputs: list[dict],
                     weights: Mapping[str, onnx.TensorProto]) -> str | None:
    """The dtype a node computes in: its largest weight's (rank >= 2) dtype, else its first
    input's, else its first output's."""
    kernels = [weights[t] for t in node.input if t in weights and len(weights[t].dims) >= 2]
    if kernels:
        largest = max(kernels, key=lambda w: int(np.prod(w.dims)))
        return _ONNX_DTYPES.get(largest.data_type)
    for tensor in (*inputs[:1], *outputs[:1]):
        if tensor["dtype"]:
            return tensor["dtype"]
    return None

def _type_label(node: onnx.NodeProto) -> str:
    """``op_type``, prefixed by its domain when not the default (``com.microsoft.FusedConv``)."""
    return f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type

def build_layer_table(
    original: onnx.ModelProto,
    optimized: onnx.ModelProto,
    *,
    providers: Sequence[str] = (CPU_PROVIDER,),
    attrs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Build the layer table of an ORT-optimized graph.

    Args:
        original: The model as given to ORT (node names as ``onnx_nodes`` reports them).
        optimized: The graph ORT wrote to ``optimized_model_filepath``.
        providers: The session's providers; with exactly one, it is every row's ``tactic``.
        attrs: Extra table attrs.

    Returns:
        One row per optimized node, in the (topological) order ORT serialized them.
    """
    graph = optimized.graph
    names = _unique_names(graph.node)
    mapping = map_to_original(original.graph, graph)
    facts = _tensor_facts(original, optimized, mapping.equivalents)
    weights = {w.name: w for w in graph.initializer}
    tactic = providers[0] if len(providers) == 1 else None
    records = []
    for j, node in enumerate(graph.node):
        inputs = [facts(t) for t in node.input if t]
        outputs = [facts(t) for t in node.output if t]
        records.append({
            "name": names[j],
            "type": _type_label(node),
            "inputs": inputs,
            "outputs": outputs,
            "input_precision": precision_of(t["dtype"] for t in inputs),
            "output_precision": precision_of(t["dtype"] for t in outputs),
            "precision": _layer_precision(node, inputs, outputs, weights),
            "tactic": tactic,
            "onnx_nodes": mapping.onnx_nodes[j],
            "inserted": mapping.inserted[j],
            "source": SOURCE,
        })
    table_attrs = {"folded_onnx_nodes": mapping.folded, **dict(attrs or {})}
    table_attrs["warnings"] = list(table_attrs.get("warnings", [])) + mapping.warnings
    return make_layer_table(records, table_attrs)

def _unique_names(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """Node names, with empty or repeated ones made unique (``<op_type>_<position>``)."""
    out: list[str] = []
    seen: set[str] = set()
    for position, node in enumerate(nodes):
        name = node.name if node.name and node.name not in seen else f"{node.op_type}_{position}"
        while name in seen:
            name += "_"
        seen.add(name)
        out.append(name)
    return out

def node_times(events: list[dict], iterations: int) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                              dict[str, dict]]:
    """Per-node kernel time of each of the last ``iterations`` runs in an ORT trace.

    Args:
        events: The profiler's JSON trace (list of Chrome-trace events; durations in µs).
        iterations: How many of the last ``model_run`` events are the timed runs.

    Returns:
        ``(times, run_ms, args)``: node name -> array of per-run summed kernel time (ms, one
        entry per timed run, 0 where the node did not run); the timed runs' ``model_run`` times
        (ms); node name -> the ``args`` of its first event in the timed runs.
    """
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])[-iterations:]
    starts = [r["ts"] for r in runs]
    times: dict[str, np.ndarray] = {}
    args: dict[str, dict] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith(_PROFILE_SUFFIX):
            continue
        k = bisect.bisect_right(starts, event["ts"]) - 1
        if k < 0 or event["ts"] > runs[k]["ts"] + runs[k]["dur"]:
            continue  # a warm-up run or session initialization
        node = name[: -len(_PROFILE_SUFFIX)]
        if node not in times:
            times[node] = np.zeros(len(runs))
            args[node] = event.get("args", {})
        times[node][k] += event["dur"] / 1000.0
    return times, np.array([r["dur"] / 1000.0 for r in runs]), args

def _observed_tensors(tensors: list[dict], observed: list | None) -> list[dict]:
    """Tensor dicts with dtype/shape replaced by what the profiler saw.

    The profiler leaves out inputs a kernel pre-packed (MatMul/Gemm/Conv weights), so when the
    counts differ only the first tensor (the data input, never pre-packed) is updated, and only
    if its rank matches.

    Args:
        tensors: The row's tensor dicts.
        observed: The profiler's ``input_type_shape``/``output_type_shape``: one
            ``{type_name: shape}`` dict per tensor it saw.

    Returns:
        Updated copies.
    """
    if not observed:
        return tensors
    pairs = list(zip(tensors, observed))
    if len(observed) != len(tensors):
        pairs = pairs[:1]
    out = [dict(t) for t in tensors]
    for k, (tensor, seen) in enumerate(pairs):
        if not isinstance(seen, dict) or len(seen) != 1:
            continue
        type_name, shape = next(iter(seen.items()))
        if len(observed) != len(tensors) and len(shape) != len(tensor["shape"] or ()):
            continue
        out[k]["dtype"] = _PROFILER_DTYPES.get(type_name, tensor["dtype"])
        out[k]["shape"] = list(shape)
    return out

def join_profile(table: pd.DataFrame, events: list[dict], iterations: int) -> pd.DataFrame:
    """Add ``time_ms``, ``median_ms`` and ``share`` from an ORT trace to a layer table.

    Rows also get ``time_p10_ms``/``time_p90_ms`` (the spread over the timed runs: per-layer CPU
    times vary from run to run); ``attrs["measured_on"]`` names the CPU.

    Rows also get the provider as ``tactic`` and the runtime shapes the profiler recorded.

    Args:
        table: The layer table (from :meth:`OnnxRuntimeEngine.layers`).
        events: The profiler trace.
        iterations: Number of timed runs at the end of the trace.

    Returns:
        A new table; rows without a profiler event get NaN times and a warning.
    """
    times, run_ms, args = node_times(events, iterations)
    records = table.to_dict("records")
    warnings = list(table.attrs.get("warnings", []))
    for row in records:
        per_run = times.get(row["name"])
        if per_run is None:
            row.update(time_ms=float("nan"), median_ms=float("nan"), share=float("nan"))
            warnings.append(f"layer {row['name']!r} has no profiler event")
            continue
        p10, p90 = np.percentile(per_run, [10, 90])  # the run-to-run spread a figure draws
        row.update(time_ms=float(per_run.mean()), median_ms=float(np.median(per_run)), share=0.0,
                   time_p10_ms=float(p10), time_p90_ms=float(p90))
        event_args = args[row["name"]]
        row["tactic"] = event_args.get("provider", row["tactic"])
        row["inputs"] = _observed_tensors(row["inputs"], event_args.get("input_type_shape"))
        row["outputs"] = _observed_tensors(row["outputs"], event_args.get("output_type_shape"))
    unmatched = sorted(set(times) - set(table["name"]))
    if unmatched:
        warnings.append(f"profiler nodes with no matching layer: {unmatched}")
    attrs = {**table.attrs, "warnings": warnings, "profile_iterations": int(len(run_ms)), "measured_on": cpu_name(),
             "end_to_end_ms": float(run_ms.mean()) if run_ms.size else float("nan"),
             "end_to_end_median_ms": float(np.median(run_ms)) if run_ms.size else float("nan")}
    return add_shares(make_layer_table(records, attrs))
