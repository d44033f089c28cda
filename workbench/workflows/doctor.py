"""workbench doctor: the INT8 doctor as the CLI's JSON."""

from __future__ import annotations

from typing import Sequence

from workbench.doctor.diagnose import diagnose
from workbench.doctor.layerwise import DEFAULT_SAMPLES
from workbench.progress import resolve_progress
from workbench.workflows.cluster import open_runner
from workbench.workflows.doctor_jobs import evaluation_runner


def doctor_command(model, calib, eval, target_drop: float | None = None, *, target: float | None = None,  # noqa: A002
                   metric=None, method: str | None = None, per_channel: bool | None = None, recipe=None,
                   layerwise_samples: int | None = DEFAULT_SAMPLES, calib_sizes: Sequence[int] | None = None,
                   latency: bool = True, workspace=None, progress=None, client=None) -> dict:
    """``workbench doctor MODEL --calib C.npz --eval E.npz [--metric M] [--target V | --target-drop D] --json``.

    Args:
        model: The FP32 ONNX model file.
        calib: Calibration ``.npz`` (or dict of arrays).
        eval: Evaluation ``.npz`` (inputs, and ``labels`` when the metric compares with labels).
        target_drop: Allowed drop of the fix from FP32, in the metric's unit (percentage points
            of top-1); None with no ``target``: the metric's default (0.5 points of top1).
        target: The minimum metric value the fix must reach, in its unit.
        metric: ``top1``, ``agreement``, ``cosine``, ``sqnr``, ``psnr`` or
            ``python:module:function``; None: top1 with labels, else agreement (sqnr for
            outputs that are not class scores).
        method: Calibration method of the naive recipe (default minmax).
        per_channel: Per-channel weights in the naive recipe (default True).
        recipe: A full naive recipe instead (Recipe or dict).
        layerwise_samples: Evaluation samples of the layerwise pass.
        calib_sizes: Calibration-set sizes for the metric curve (one evaluation each).
        latency: Measure ORT latency.
        workspace: Variant folder.
        progress: Phase reporting (see :func:`diagnose`; the CLI passes ``"log"``).
        client: None to evaluate here; a ``dask.distributed.Client`` or a scheduler address
            (``--scheduler tcp://HOST:PORT``) to run the full evaluations on that cluster
            (independent ones at once); the report is the same, each ``evaluation_log`` entry
            naming its ``worker``. Latency is still measured here.

    Returns:
        The JSON-safe report: ``fp32_accuracy``, ``int8_accuracy`` (top-1 fractions, None for
        other metrics), ``culprits`` (``[{node, role, evidence, reason, ...}]``, worst first),
        ``recipe`` (``exclude``, ``method``, ``drop_calibration_samples``...),
        ``fixed_accuracy``, ``evaluations`` (full passes over the evaluation set), ``metric``,
        ``metric_unit``, ``fp32_value``, ``int8_value``, ``fixed_value``, ``target``,
        ``warnings``, and the details (see :meth:`Diagnosis.to_dict`).
    """
    with open_runner(client) as runner:
        if runner is not None and runner.dashboard_link and progress not in (None, False):
            resolve_progress(progress).link("Dask dashboard", runner.dashboard_link)
        diagnosis = diagnose(model, calib, eval, target_drop=target_drop, target=target, metric=metric,
                             recipe=recipe, method=method, per_channel=per_channel,
                             layerwise_samples=layerwise_samples, calib_sizes=calib_sizes, latency=latency,
                             workspace=workspace, progress=progress,
                             runner=None if runner is None else evaluation_runner(runner))
    return diagnosis.to_dict()
