"""The one factory for ONNX Runtime sessions: every session the workbench opens is made here.

In-memory models over protobuf's 2 GB limit cannot be serialized, so they are saved with
external data to a temporary folder and the session is created from that file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import onnx
import onnxruntime as ort

SOURCE = "onnxruntime"
CPU_PROVIDER = "CPUExecutionProvider"
# protobuf cannot serialize a message of 2 GiB or more
MAX_PROTO_BYTES = 2**31 - 1

LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(level: str = "all", *, threads: int | None = None) -> ort.SessionOptions:
    """Quiet session options at a graph optimization level.

    Args:
        level: A key of :data:`LEVELS`.
        threads: ``intra_op_num_threads`` (None: ORT's default).

    Returns:
        The options.
    """
    if level not in LEVELS:
        raise ValueError(f"graph_optimization_level {level!r}: expected one of {sorted(LEVELS)}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = LEVELS[level]
    if threads:
        options.intra_op_num_threads = int(threads)
    return options


def ort_session(model, options: Mapping | ort.SessionOptions | None = None, *,
                providers: Sequence = (CPU_PROVIDER,)) -> ort.InferenceSession:
    """An ONNX Runtime session for a model file, bytes or an in-memory ``onnx.ModelProto``.

    Args:
        model: A path, serialized bytes, or an ``onnx.ModelProto`` (any size).
        options: ``ort.SessionOptions``, or a variant record's ``{"graph_optimization_level":
            ..., "intra_op_num_threads": ...}`` (FP8 variants need ``"basic"``: at level 2 and
            above ORT 1.32 drops a Relu that feeds a float8 QuantizeLinear). None: level "all".
        providers: Execution providers, best first.

    Returns:
        The session.
    """
    if not isinstance(options, ort.SessionOptions):
        options = dict(options or {})
        options = session_options(options.get("graph_optimization_level", "all"),
                                  threads=options.get("intra_op_num_threads"))
    providers = list(providers)
    if isinstance(model, onnx.ModelProto):
        if model.ByteSize() < MAX_PROTO_BYTES:
            return ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        with tempfile.TemporaryDirectory(prefix="wb_session_") as tmp:
            path = Path(tmp) / "model.onnx"
            onnx.save_model(model, str(path), save_as_external_data=True, location="model.data")
            return ort.InferenceSession(str(path), options, providers=providers)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=providers)
