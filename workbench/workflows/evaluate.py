"""workbench evaluate: a model's metric against labels or a reference, as the CLI's JSON."""

from __future__ import annotations

from pathlib import Path

from workbench.analysis.accuracy import EvaluationError, evaluate


def evaluate_command(
    model,
    data,
    reference=None,
    *,
    batch_size: int = 64,
    backend: str = "onnxruntime",
    limit: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    metric: str | None = None,
    target: float | None = None,
    target_drop: float | None = None,
    progress=None,
) -> dict:
    """``workbench evaluate MODEL --data DATA.npz [--reference FP32.onnx] [--metric NAME] --json``.

    Args:
        model: Path of the model (variant) to evaluate.
        data: Path of the ``.npz`` data (model inputs, optional ``labels``).
        reference: Path of the model to compare outputs with, or None.
        batch_size: Samples per inference.
        backend: Backend name.
        limit: Evaluate only the first ``limit`` samples.
        atol, rtol: Elementwise tolerances; giving either makes ``passed`` Polygraphy's
            elementwise verdict (every output within them) instead of the metric's.
        metric: ``top1``, ``agreement``, ``cosine``, ``sqnr``, ``psnr`` or
            ``python:module:function``; None: top1 with labels, else agreement (sqnr for outputs
            that are not class scores).
        target: The minimum metric value that passes, in the metric's unit.
        target_drop: The allowed drop from the reference's value, in the metric's unit.
        progress: See :mod:`workbench.progress` (the CLI passes ``"log"``).

    Returns:
        :meth:`EvaluationResult.to_dict`: strict-JSON values; ``top1``/``top5`` when the data
        has labels, ``outputs`` per output name when a reference is given, ``metric``,
        ``metric_value``, ``metric_unit`` and the ``passed`` verdict with what it is based on
        (``verdict``).

    Raises:
        InputDataError, EvaluationError, MetricError, ModelLoadError: Bad input (exit code 2 in
            the CLI).
    """
    for label, path in (("model", model), ("reference", reference)):
        if path is not None and not Path(path).expanduser().is_file():
            raise EvaluationError(f"{path}: no such {label} file. Give the path of an .onnx file.")
    result = evaluate(model, data, reference, backend=backend, batch_size=batch_size, limit=limit, atol=atol,
                      rtol=rtol, metric=metric, target=target, target_drop=target_drop, progress=progress)
    return result.to_dict()
