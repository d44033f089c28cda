"""workbench doctor: the INT8 doctor as the CLI's JSON."""

from __future__ import annotations

from typing import Sequence

from workbench.doctor.diagnose import diagnose
from workbench.doctor.layerwise import DEFAULT_SAMPLES
from workbench.progress import resolve_progress
from workbench.workflows.cluster import open_runner
from workbench.workflows.doctor_jobs import evaluation_runner


def doctor_command(model, calib, eval, target_drop: float = 0.5, *, method: str | None = None,  # noqa: A002
                   per_channel: bool | None = None, recipe=None, layerwise_samples: int | None = DEFAULT_SAMPLES,
                   calib_sizes: Sequence[int] | None = None, latency: bool = True, workspace=None,
                   progress=None, client=None) -> dict:
    """``workbench doctor MODEL --calib C.npz --eval E.npz [--target-drop 0.5] --json``.

    Args:
        model: The FP32 ONNX model file.
        calib: Calibration ``.npz`` (or dict of arrays).
        eval: Labelled evaluation ``.npz`` (inputs and ``labels``).
        target_drop: Allowed top-1 drop of the fix, percentage points.
        method: Calibration method of the naive recipe (default minmax).
        per_channel: Per-channel weights in the naive recipe (default True).
        recipe: A full naive recipe instead (Recipe or dict).
        layerwise_samples: Evaluation samples of the layerwise pass.
        calib_sizes: Calibration-set sizes for the accuracy curve (one evaluation each).
        latency: Measure ORT latency.
        workspace: Variant folder.
        progress: Phase reporting (see :func:`diagnose`; the CLI passes ``"log"``).
        client: None to evaluate here; a ``dask.distributed.Client`` or a scheduler address
            (``--scheduler tcp://HOST:PORT``) to run the full evaluations on that cluster
            (independent ones at once); the report is the same, each ``evaluation_log`` entry
            naming its ``worker``. Latency is still measured here.

    Returns:
        The JSON-safe report: ``fp32_accuracy``, ``int8_accuracy`` (top-1 fractions),
        ``culprits`` (``[{node, role, evidence, reason, ...}]``, worst first), ``recipe``
        (``exclude``, ``method``, ``drop_calibration_samples``...), ``fixed_accuracy``,
        ``evaluations`` (full passes over the evaluation set), and the details (see
        :meth:`Diagnosis.to_dict`).
    """
    with open_runner(client) as runner:
        if runner is not None and runner.dashboard_link and progress not in (None, False):
            resolve_progress(progress).link("Dask dashboard", runner.dashboard_link)
        diagnosis = diagnose(model, calib, eval, target_drop=target_drop, recipe=recipe, method=method,
                             per_channel=per_channel, layerwise_samples=layerwise_samples, calib_sizes=calib_sizes,
                             latency=latency, workspace=workspace, progress=progress,
                             runner=None if runner is None else evaluation_runner(runner))
    return diagnosis.to_dict()
