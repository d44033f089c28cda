"""workbench evaluate: accuracy of a model against labels and a reference, as the CLI's JSON."""

from __future__ import annotations

from pathlib import Path

from workbench.analysis.accuracy import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    EvaluationError,
    evaluate,
)


def evaluate_command(
    model,
    data,
    reference=None,
    *,
    batch_size: int = 64,
    backend: str = "onnxruntime",
    limit: int | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> dict:
    """``workbench evaluate MODEL --data DATA.npz [--reference FP32.onnx] --json``.

    Args:
        model: Path of the model (variant) to evaluate.
        data: Path of the ``.npz`` data (model inputs, optional ``labels``).
        reference: Path of the model to compare outputs with, or None.
        batch_size: Samples per inference.
        backend: Backend name.
        limit: Evaluate only the first ``limit`` samples.
        atol, rtol: Tolerances of the per-output ``passed`` verdict.

    Returns:
        :meth:`EvaluationResult.to_dict`: strict-JSON values; ``top1``/``top5`` when the data
        has labels, ``outputs`` per output name when a reference is given.

    Raises:
        InputDataError, EvaluationError, ModelLoadError: Bad input (exit code 2 in the CLI).
    """
    for label, path in (("model", model), ("reference", reference)):
        if path is not None and not Path(path).expanduser().is_file():
            raise EvaluationError(f"{path}: no such {label} file. Give the path of an .onnx file.")
    result = evaluate(model, data, reference, backend=backend, batch_size=batch_size,
                      limit=limit, atol=atol, rtol=rtol)
    return result.to_dict()
