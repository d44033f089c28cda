"""Accuracy of a variant on ONNX Runtime's CPU provider, with the session options it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import onnxruntime as ort

from workbench.analysis.accuracy import evaluate
from workbench.datasets.arrays import load_npz

LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def ort_session(path, options: Mapping | None = None) -> ort.InferenceSession:
    """A CPU session for ``path`` with ``{"graph_optimization_level": ...}`` from a variant record.

    Args:
        path: The ONNX file (a variant's ``ort_path``), or an in-memory ``onnx.ModelProto``.
        options: ``Variant.ort_session_options`` (FP8 variants need ``"basic"``: at level 2 and
            above ORT 1.32 drops a Relu that feeds a float8 QuantizeLinear).

    Returns:
        The session.
    """
    so = ort.SessionOptions()
    so.log_severity_level = 3
    level = (options or {}).get("graph_optimization_level", "all")
    so.graph_optimization_level = LEVELS[level]
    source = path.SerializeToString() if hasattr(path, "SerializeToString") else str(path)
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def top1_accuracy(
    path,
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    options: Mapping | None = None,
    batch_size: int = 128,
) -> float:
    """Share of samples whose arg-max output (first output) equals the label.

    Args:
        path: The ONNX file.
        inputs: Input name -> ``[samples, ...]`` arrays.
        labels: ``[samples]`` integer labels.
        options: Session options (see :func:`ort_session`).
        batch_size: Samples per run.

    Returns:
        Top-1 accuracy in [0, 1].
    """
    result = evaluate(path, (inputs, labels), backend_options=dict(options or {}), batch_size=batch_size,
                      top_k=(1,))
    return float(result.top1)


def evaluate_variant(variant, data, *, batch_size: int = 128) -> dict:
    """Top-1 of a variant on labelled data (an ``.npz`` with the inputs and ``labels``).

    Runs the variant itself when ORT's CPU provider executes it in its own precision, else its
    emulation (BF16; FP16 where ORT CPU has no float16 kernels).

    Returns:
        ``{"top1", "samples", "ran", "path"}``; ``ran`` is ``"variant"`` or ``"emulation"``.
    """
    path = Path(data) if not isinstance(data, Mapping) else None
    if path is not None:
        inputs, labels = load_npz(path)
    else:
        inputs = {k: v for k, v in data.items() if k != "labels"}
        labels = data["labels"]
    if labels is None:
        raise ValueError(f"{data}: has no 'labels' array; accuracy needs labels.")
    top1 = top1_accuracy(variant.ort_path, inputs, labels, options=variant.ort_session_options, batch_size=batch_size)
    return {"top1": top1, "samples": int(len(labels)), "ran": variant.accuracy_on, "path": str(variant.ort_path)}
