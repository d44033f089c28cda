"""What a variant costs in accuracy: task metrics against labels, and agreement with a reference.

:func:`evaluate` runs a model variant (an FP16 or INT8 ONNX file, a built engine...) over a data
set in batches, and optionally a reference (the FP32 model) in lockstep on the same batches, so
memory stays bounded by one batch whatever the data set size.

* Task metrics, when the data has ``labels``: top-k accuracy (fractions 0..1) of the variant's
  first output, which must be ``[N, C]`` class scores.
* Output agreement with the reference, per output name: absolute and relative error
  (Polygraphy's :class:`~polygraphy.comparator.SimpleCompareFunc` per batch, so the figures and
  the pass/fail verdict are the ones ``polygraphy run --atol --rtol`` reports; relative error is
  ``|variant - reference| / |reference|``), cosine similarity (per sample: mean and min; and over
  the whole tensor) and SQNR in dB, ``10 * log10(sum(reference**2) / sum((variant - reference)**2))``
  (``inf`` when the outputs are identical).

Example::

    result = evaluate("model.int8.onnx", "eval.npz", reference="model.onnx")
    result.top1, result.outputs["logits"].sqnr_db
    result.to_dict()   # JSON-safe, the ``workbench evaluate --json`` contract
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import onnx

from workbench.backends import get_backend
from workbench.datasets.arrays import InputDataError, load_labelled
from workbench.errors import WorkbenchError
from workbench.progress import resolve_progress
from workbench.tables.results import tool_versions

# Error statistics whose per-batch values can be combined exactly into whole-data-set values.
CHECK_ERROR_STATS = ("elemwise", "max", "mean")
DEFAULT_ATOL = 1e-5  # Polygraphy's defaults
DEFAULT_RTOL = 1e-5


class EvaluationError(WorkbenchError, ValueError):
    """A model or reference that cannot be evaluated as asked; the message says why and the fix."""


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class OutputAgreement:
    """How closely one output of the variant follows the reference's, over the whole data set.

    Attributes:
        name: Output name.
        shape: Shape of one sample's output (without the batch dimension).
        dtype: The variant's output dtype.
        max_abs_error, mean_abs_error: ``|variant - reference|`` statistics over all elements.
        max_rel_error, mean_rel_error: ``|variant - reference| / |reference|`` (Polygraphy's
            definition: reference zeros get a 2.2e-16 epsilon).
        cosine_mean, cosine_min: Cosine similarity of each sample's output, averaged / worst.
        cosine: Cosine similarity of the whole output tensor.
        sqnr_db: Signal-to-quantization-noise ratio in dB; ``inf`` for identical outputs,
            ``nan`` when the variant produced NaN/Inf.
        nonfinite: Number of NaN/Inf values the variant produced.
        passed: Polygraphy's verdict for ``check_error_stat`` with ``atol``/``rtol``.
    """

    name: str
    shape: list
    dtype: str
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    mean_rel_error: float
    cosine_mean: float
    cosine_min: float
    cosine: float
    sqnr_db: float
    nonfinite: int
    passed: bool

    @property
    def identical(self) -> bool:
        """Whether the variant's output equals the reference's exactly."""
        return self.max_abs_error == 0.0 and self.nonfinite == 0

    def to_dict(self) -> dict:
        """JSON-safe figures: non-finite numbers become None (see ``identical``)."""
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "max_abs_error": json_float(self.max_abs_error),
            "mean_abs_error": json_float(self.mean_abs_error),
            "max_rel_error": json_float(self.max_rel_error),
            "mean_rel_error": json_float(self.mean_rel_error),
            "cosine_mean": json_float(self.cosine_mean),
            "cosine_min": json_float(self.cosine_min),
            "cosine": json_float(self.cosine),
            "sqnr_db": json_float(self.sqnr_db),
            "identical": self.identical,
            "nonfinite": int(self.nonfinite),
            "passed": bool(self.passed),
        }


@dataclass
class EvaluationResult:
    """The accuracy of one variant on one data set (no latency: see the benchmark for that).

    Attributes:
        variant: What was evaluated (a path, or a description of the object).
        reference: What it was compared with, or None.
        backend: The backend that ran it.
        dataset: Where the data came from (a path, or ``"arrays"``).
        samples: Number of samples evaluated.
        batch_size: Samples per inference.
        topk: k -> top-k accuracy (fraction 0..1); empty without labels or a classifier output.
        correct: k -> number of samples whose label is among the top k.
        classifier_output: Name of the output scored as class scores, or None.
        num_classes: Its number of classes.
        outputs: Output name -> :class:`OutputAgreement` (empty without a reference).
        predictions: The variant's argmax class per sample (None if not a classifier).
        reference_predictions: The reference's argmax class per sample.
        tolerance: ``atol``, ``rtol`` and ``check_error_stat`` the verdicts used.
        warnings: Things the user should know (no labels, output not ``[N, C]``...).
        versions: Tool versions.
    """

    variant: str
    reference: str | None
    backend: str
    dataset: str
    samples: int
    batch_size: int
    topk: dict[int, float] = field(default_factory=dict)
    correct: dict[int, int] = field(default_factory=dict)
    classifier_output: str | None = None
    num_classes: int | None = None
    outputs: dict[str, OutputAgreement] = field(default_factory=dict)
    predictions: np.ndarray | None = None
    reference_predictions: np.ndarray | None = None
    tolerance: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)

    @property
    def top1(self) -> float | None:
        return self.topk.get(1)

    @property
    def top5(self) -> float | None:
        return self.topk.get(5)

    @property
    def top1_agreement(self) -> float | None:
        """Fraction of samples where variant and reference predict the same class."""
        if self.predictions is None or self.reference_predictions is None:
            return None
        return float(np.mean(self.predictions == self.reference_predictions))

    @property
    def passed(self) -> bool | None:
        """Whether every output is within tolerance of the reference (None without one)."""
        if not self.outputs:
            return None
        return all(o.passed for o in self.outputs.values())

    @property
    def min_cosine(self) -> float | None:
        """The worst per-sample cosine similarity over all outputs (None without a reference)."""
        return min((o.cosine_min for o in self.outputs.values()), default=None)

    @property
    def min_sqnr_db(self) -> float | None:
        """The lowest SQNR over all outputs (None without a reference)."""
        return min((o.sqnr_db for o in self.outputs.values()), default=None)

    def to_dict(self) -> dict:
        """The JSON contract of ``workbench evaluate --json`` (keys are added, never renamed).

        Returns:
            ``variant``, ``reference``, ``backend``, ``dataset``, ``samples``, ``batch_size``;
            ``top1``/``top5``/... and ``top1_correct``/... when the data has labels and the
            first output is ``[N, C]``, with ``classifier_output`` and ``num_classes``;
            ``outputs`` (output name -> :meth:`OutputAgreement.to_dict`), ``passed``,
            ``min_cosine``, ``min_sqnr_db`` and ``top1_agreement`` when a reference is given;
            ``tolerance``, ``warnings`` and ``versions``. Non-finite numbers are None.
        """
        data: dict[str, Any] = {
            "variant": self.variant,
            "reference": self.reference,
            "backend": self.backend,
            "dataset": self.dataset,
            "samples": int(self.samples),
            "batch_size": int(self.batch_size),
        }
        for k in sorted(self.topk):
            data[f"top{k}"] = json_float(self.topk[k])
            data[f"top{k}_correct"] = int(self.correct[k])
        if self.classifier_output is not None:
            data["classifier_output"] = self.classifier_output
            data["num_classes"] = self.num_classes
        if self.reference is not None:
            data["outputs"] = {name: o.to_dict() for name, o in self.outputs.items()}
            data["passed"] = self.passed
            data["min_cosine"] = json_float(self.min_cosine)
            data["min_sqnr_db"] = json_float(self.min_sqnr_db)
            if self.top1_agreement is not None:
                data["top1_agreement"] = self.top1_agreement
        data["tolerance"] = dict(self.tolerance)
        data["warnings"] = list(self.warnings)
        data["versions"] = dict(self.versions)
        return data

    def outputs_frame(self):
        """Agreement with the reference per output, as a table of the ``--json`` figures.

        Returns:
            A pandas DataFrame: one column per output, one row per figure of
            :meth:`OutputAgreement.to_dict`; empty without a reference.
        """
        import pandas as pd

        return pd.DataFrame({name: o.to_dict() for name, o in self.outputs.items()})


def json_float(value) -> float | None:
    """``value`` as a float, or None if it is None, NaN or infinite (strict JSON has neither)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def evaluate(
    variant,
    dataset,
    reference=None,
    *,
    backend="onnxruntime",
    backend_options: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    top_k: Sequence[int] = (1, 5),
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    check_error_stat: str = "elemwise",
    limit: int | None = None,
    progress: Any = False,
) -> EvaluationResult:
    """Measure a variant's accuracy on a data set, and its agreement with a reference.

    Args:
        variant: The model to evaluate: a path to an ``.onnx`` file, an
            :class:`onnx.ModelProto`, a :class:`workbench.model.LoadedModel`, or an engine
            (anything with ``run(inputs) -> {output name: array}``, used as is).
        dataset: An ``.npz`` path (one array per model input, plus optional ``labels``), or
            ``(inputs, labels)`` with ``inputs`` a mapping of input name -> array and
            ``labels`` an array or None.
        reference: The model to compare outputs with (usually FP32), in any form ``variant``
            takes; None for task metrics only.
        backend: Backend name (``"onnxruntime"``, ``"tensorrt"``) or a
            :class:`workbench.backends.Backend`, used for models that are not engines yet.
        backend_options: Build options for that backend.
        batch_size: Samples per inference. A model with a fixed batch dimension uses its own
            (the last batch is padded by repeating its last sample; padded outputs are dropped).
        top_k: Which top-k accuracies to report (k below the number of classes).
        atol, rtol: Tolerances of the pass/fail verdict (Polygraphy's meaning).
        check_error_stat: ``"elemwise"`` (every element within ``atol`` or ``rtol``), ``"max"``
            or ``"mean"`` (that statistic within ``atol`` or ``rtol``).
        limit: Evaluate only the first ``limit`` samples.
        progress: See :mod:`workbench.progress` (True or "tqdm": a bar; "log": log lines).

    Returns:
        The :class:`EvaluationResult`.

    Raises:
        InputDataError: The data lacks a model input, has samples of the wrong shape, NaN/Inf,
            or labels that do not match the samples.
        EvaluationError: The reference has other outputs or output shapes than the variant, a
            model fails to run, or an argument is invalid.
    """
    batch_size, top_k = _check_args(batch_size, top_k, atol, rtol, check_error_stat, limit)
    run = _prepare(variant, dataset, reference, backend, backend_options, batch_size=batch_size, limit=limit)
    acc = _Accumulator(top_k=top_k, labels=run.labels, atol=atol, rtol=rtol, check_error_stat=check_error_stat)
    _run_all(run, acc, progress)
    return acc.result(variant=describe_model(variant),
                      reference=None if reference is None else describe_model(reference),
                      backend=getattr(run.runner, "backend", None) or _backend_name(backend),
                      dataset=run.source, samples=run.samples, batch_size=run.batch["size"],
                      has_labels=run.labels is not None, versions=tool_versions())


@dataclass
class _Run:
    """An evaluation ready to run (:func:`_prepare`): the engines, the checked data, the batch."""

    runner: Any  # the variant's engine
    ref_runner: Any  # the reference's, or None
    inputs: dict
    labels: np.ndarray | None
    source: str  # where the data came from
    samples: int
    shapes: dict | None  # the variant's declared input shapes, if it says
    batch: dict  # {"size", "fixed"} from _batch_for


def _prepare(variant, dataset, reference, backend, backend_options, *, batch_size: int, limit) -> _Run:
    """Build the engines and load the data, refusing data that does not fit them.

    Args:
        variant, dataset, reference, backend, backend_options, batch_size, limit: As
            :func:`evaluate` takes them (``batch_size`` checked).

    Returns:
        The :class:`_Run`.
    """
    runner = as_engine(variant, backend, backend_options, what="variant")
    ref_runner = None if reference is None else as_engine(reference, backend, backend_options, what="reference")
    inputs, labels, source = load_labelled(dataset, engine_input_names(runner), limit=limit)
    shapes = engine_input_shapes(runner)
    check_input_shapes(inputs, shapes, source, what="variant")
    if ref_runner is not None:
        _check_same_inputs(engine_input_names(runner), engine_input_names(ref_runner))
        check_input_shapes(inputs, engine_input_shapes(ref_runner), source, what="reference")
    return _Run(runner, ref_runner, inputs, labels, source, next(iter(inputs.values())).shape[0], shapes,
                _batch_for(batch_size, runner, ref_runner))


def _run_all(run: _Run, acc: "_Accumulator", progress: Any) -> None:
    """Run the variant (and the reference, in lockstep) over every batch into ``acc``.

    Args:
        run: The prepared evaluation.
        acc: Collects the metrics.
        progress: See :mod:`workbench.progress`.
    """
    with resolve_progress(progress).task("evaluate", run.samples, unit="sample") as task:
        for start, feed, count in iter_batches(run.inputs, run.batch["size"], pad=run.batch["fixed"]):
            outputs = run_checked(run.runner, feed, run.shapes, "variant", start, count)
            ref_outputs = None
            if run.ref_runner is not None:
                ref_outputs = run_checked(run.ref_runner, feed, engine_input_shapes(run.ref_runner),
                                          "reference", start, count)
            acc.add(outputs, ref_outputs, start, count)
            task.update(count)


# --------------------------------------------------------------------------------------------
# Validation at the boundary
# --------------------------------------------------------------------------------------------


def _check_args(batch_size, top_k, atol, rtol, check_error_stat, limit) -> tuple[int, tuple]:
    """Validate scalar arguments; returns ``(batch_size, sorted unique top_k)``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise EvaluationError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(top_k, (int, np.integer)):
        top_k = (top_k,)
    ks = tuple(sorted({int(k) for k in top_k}))
    if any(k < 1 for k in ks):
        raise EvaluationError(f"top_k values must be >= 1, got {tuple(top_k)!r}")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if not (isinstance(value, (int, float)) and value >= 0):
            raise EvaluationError(f"{name} must be a number >= 0, got {value!r}")
    if check_error_stat not in CHECK_ERROR_STATS:
        raise EvaluationError(f"check_error_stat must be one of {CHECK_ERROR_STATS}, got {check_error_stat!r} "
                              "(median and quantile cannot be combined across batches)")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise EvaluationError(f"limit must be a positive integer or None, got {limit!r}")
    return int(batch_size), ks


def as_engine(model, backend="onnxruntime", options: Mapping[str, Any] | None = None, *,
              what: str = "model"):
    """An engine for ``model``: engines pass through, models are built on ``backend``.

    Args:
        model: Path, ModelProto, LoadedModel, or an object with ``run(inputs) -> dict``.
        backend: Backend name or :class:`workbench.backends.Backend`.
        options: Build options.
        what: ``"variant"`` or ``"reference"``, for messages.

    Returns:
        Something with ``run(inputs) -> {name: array}``.

    Raises:
        EvaluationError: The model file is missing or cannot be built.
    """
    if _is_engine(model):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        if not path.is_file():
            raise EvaluationError(f"{path}: no such {what} model file. Give the path of an .onnx file.")
        model = path
    elif not isinstance(model, onnx.ModelProto) and not hasattr(model, "proto"):
        raise EvaluationError(
            f"cannot evaluate a {type(model).__name__} as the {what}: pass an .onnx path, an "
            "onnx.ModelProto, a LoadedModel, or an engine with run(inputs) -> dict"
        )
    if isinstance(backend, str):
        backend = get_backend(backend)
    try:
        return backend.build(model, options)
    except WorkbenchError:
        raise
    except Exception as err:  # ORT raises its own exception types for invalid models
        raise EvaluationError(
            f"{describe_model(model)}: the {what} could not be built on {backend.name}: {err}"
        ) from err


def _is_engine(obj) -> bool:
    return callable(getattr(obj, "run", None)) and not isinstance(obj, (str, os.PathLike, onnx.ModelProto))


def _backend_name(backend) -> str:
    return backend if isinstance(backend, str) else getattr(backend, "name", type(backend).__name__)


def describe_model(model) -> str:
    """A short description of a model argument for reports: its path when it has one."""
    if isinstance(model, (str, os.PathLike)):
        return str(model)
    path = getattr(model, "path", None)
    if path is not None:
        return str(path)
    if isinstance(model, onnx.ModelProto):
        return f"<ModelProto {model.graph.name or 'unnamed'}>"
    return f"<{type(model).__name__}>"


def engine_input_names(engine) -> list[str] | None:
    """The engine's input names, if it says (``input_names``); else None."""
    names = getattr(engine, "input_names", None)
    return list(names) if names else None


def engine_input_shapes(engine) -> dict[str, list] | None:
    """Input name -> declared shape (ints, or str/None for symbolic dims) if the engine says."""
    session = getattr(engine, "session", None)
    if session is not None and hasattr(session, "get_inputs"):
        return {i.name: list(i.shape) for i in session.get_inputs()}
    shapes = getattr(engine, "input_shapes", None)
    return dict(shapes) if isinstance(shapes, Mapping) else None


def engine_output_names(engine, outputs: Mapping[str, np.ndarray]) -> list[str]:
    """The engine's outputs in its own order (``output_names``), else the order returned."""
    names = getattr(engine, "output_names", None)
    return [n for n in names if n in outputs] if names else list(outputs)


def _dims_text(shape: Sequence) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def check_input_shapes(inputs: Mapping[str, np.ndarray], shapes: Mapping[str, list] | None,
                       source: str, *, what: str = "model") -> None:
    """Refuse data whose per-sample shape cannot fit the model's declared input shapes.

    Args:
        inputs: Input name -> array, samples first.
        shapes: Input name -> declared shape (first dim = batch); None skips the check.
        source: Where the data came from, for messages.
        what: ``"variant"`` or ``"reference"``.

    Raises:
        InputDataError: Naming the input, the data's shape and the expected shape.
    """
    if not shapes:
        return
    for name, array in inputs.items():
        expected = shapes.get(name)
        if expected is None:
            continue
        fits = len(expected) == array.ndim and all(
            not isinstance(d, int) or d == a for d, a in zip(expected[1:], array.shape[1:])
        )
        if fits:
            continue
        hint = "Reshape the data so that each sample matches (the first dimension counts samples)."
        sample_size = int(np.prod(array.shape[1:]))
        fixed = expected[1:]
        if all(isinstance(d, int) for d in fixed) and int(np.prod(fixed)) == sample_size:
            hint = (f"Reshape it: array.reshape({array.shape[0]}, {', '.join(map(str, fixed))}).")
        raise InputDataError(
            f"{source}: input '{name}' has shape {list(array.shape)} but the {what} expects "
            f"{_dims_text(expected)} (first dimension = samples). {hint}"
        )


def _batch_for(batch_size: int, runner, ref_runner) -> dict:
    """The batch size to run with: the models' fixed batch dimension if they have one."""
    fixed = []
    for engine, what in ((runner, "variant"), (ref_runner, "reference")):
        shapes = engine_input_shapes(engine) if engine is not None else None
        dims = {s[0] for s in (shapes or {}).values() if s and isinstance(s[0], int)}
        if len(dims) > 1:
            raise EvaluationError(f"the {what}'s inputs disagree on the batch dimension: {sorted(dims)}")
        if dims:
            fixed.append((what, dims.pop()))
    if len({b for _, b in fixed}) > 1:
        raise EvaluationError(
            f"variant and reference have different fixed batch sizes {dict(fixed)}; export them "
            "with a dynamic batch dimension or the same one."
        )
    if fixed:
        return {"size": fixed[0][1], "fixed": True}
    return {"size": batch_size, "fixed": False}


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def iter_batches(inputs: Mapping[str, np.ndarray], batch: int, *, pad: bool = False
                 ) -> Iterator[tuple[int, dict[str, np.ndarray], int]]:
    """Split inputs into batches.

    Args:
        inputs: Input name -> array, samples first.
        batch: Samples per batch.
        pad: Pad the last batch to ``batch`` by repeating its last sample (fixed-batch models).

    Yields:
        ``(start, feed, count)``: first sample index, the batch, and how many of its samples
        are real (the rest is padding).
    """
    samples = next(iter(inputs.values())).shape[0]
    for start in range(0, samples, batch):
        feed = {n: a[start:start + batch] for n, a in inputs.items()}
        count = next(iter(feed.values())).shape[0]
        if pad and count < batch:
            feed = {n: np.concatenate([a, np.repeat(a[-1:], batch - count, axis=0)])
                    for n, a in feed.items()}
        yield start, feed, count


def run_checked(engine, feed: Mapping[str, np.ndarray], shapes: Mapping[str, list] | None,
                what: str, start: int, count: int) -> dict[str, np.ndarray]:
    """Run one batch; turn a backend's failure into a message naming inputs and shapes.

    Returns:
        Output name -> array, with padded samples dropped.

    Raises:
        EvaluationError: The engine raised.
    """
    try:
        outputs = engine.run(feed)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:
        got = ", ".join(f"'{n}' {list(a.shape)} {a.dtype}" for n, a in feed.items())
        expected = ""
        if shapes:
            expected = "; the model expects " + ", ".join(f"'{n}' {_dims_text(s)}" for n, s in shapes.items())
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EvaluationError(
            f"the {what} failed on samples {start}..{start + count - 1}: {first_line}. "
            f"Fed {got}{expected}."
        ) from err
    if not isinstance(outputs, Mapping):
        raise EvaluationError(f"the {what}'s run() returned {type(outputs).__name__}, not a dict")
    batch = next(iter(feed.values())).shape[0]
    return {n: _trim(np.asarray(a), batch, count) for n, a in outputs.items()}


def _trim(array: np.ndarray, batch: int, count: int) -> np.ndarray:
    """Drop padded samples from an output whose first dimension is the batch."""
    if count < batch and array.ndim and array.shape[0] == batch:
        return array[:count]
    return array


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def topk_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Whether each sample's label is among its ``k`` highest scores.

    Args:
        scores: ``[N, C]`` class scores.
        labels: ``[N]`` class indices.
        k: How many top classes count; ``k == 1`` is ``argmax == label``.

    Returns:
        ``[N]`` booleans.
    """
    if k == 1:
        return scores.argmax(axis=1) == labels
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return (top == labels[:, None]).any(axis=1)


def cosine_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample (first dimension) of two arrays of the same shape.

    Both-zero samples count as 1, one-zero samples as 0 (Polygraphy's convention).

    Returns:
        ``[N]`` float64 values in [-1, 1] (NaN where a value is NaN).
    """
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    b = b.reshape(b.shape[0], -1).astype(np.float64)
    dot = np.einsum("ij,ij->i", a, b)
    na, nb = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)  # squared norms
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cos = dot / np.sqrt(na * nb)  # exactly 1 when a == b
    cos = np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0, cos))
    return np.clip(cos, -1.0, 1.0)


def sqnr_db(signal_power: float, noise_power: float) -> float:
    """``10 * log10(signal_power / noise_power)``; inf for no noise, -inf for no signal, NaN when
    either power is not finite (the variant produced NaN/Inf)."""
    if not (math.isfinite(signal_power) and math.isfinite(noise_power)):
        return float("nan")
    if noise_power == 0:
        return float("inf")
    if signal_power == 0:
        return float("-inf")
    return 10.0 * math.log10(signal_power / noise_power)


def polygraphy_compare(variant: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *,
                       atol: float, rtol: float, check_error_stat: str) -> dict:
    """Polygraphy's simple comparison of one batch, quietly.

    Args:
        variant, reference: Output name -> array, same names and shapes.
        atol, rtol, check_error_stat: Polygraphy's ``SimpleCompareFunc`` settings.

    Returns:
        Output name -> :class:`polygraphy.comparator.OutputCompareResult` (``bool()`` is the
        verdict; ``max_absdiff``, ``mean_reldiff``... the statistics).
    """
    from polygraphy.comparator import IterationResult, SimpleCompareFunc
    from polygraphy.logger import G_LOGGER

    compare = SimpleCompareFunc(check_shapes=True, atol=atol, rtol=rtol,
                                check_error_stat=check_error_stat)
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL), np.errstate(all="ignore"):
        return dict(compare(IterationResult(dict(variant), runner_name="variant"),
                            IterationResult(dict(reference), runner_name="reference")))


class _OutputStats:
    """Running sums of one output's agreement figures, combined exactly across batches."""

    def __init__(self, name: str, shape: list, dtype: str):
        self.name, self.shape, self.dtype = name, shape, dtype
        self.elements = 0
        self.max_abs = self.max_rel = 0.0
        self.sum_abs = self.sum_rel = 0.0
        self.sum_signal = self.sum_noise = 0.0
        self.dot = self.norm_v = self.norm_r = 0.0
        self.cos_sum, self.cos_min, self.cos_count = 0.0, float("inf"), 0
        self.nonfinite = 0
        self.elemwise_passed = True

    def add(self, variant: np.ndarray, reference: np.ndarray, verdict) -> None:
        n = variant.size
        self.elements += n
        self.max_abs = _nanmax(self.max_abs, verdict.max_absdiff)
        self.max_rel = _nanmax(self.max_rel, verdict.max_reldiff)
        self.sum_abs += verdict.mean_absdiff * n
        self.sum_rel += verdict.mean_reldiff * n
        self.elemwise_passed &= bool(verdict)
        v, r = variant.astype(np.float64), reference.astype(np.float64)
        self.nonfinite += int(np.size(v) - np.count_nonzero(np.isfinite(v)))
        with np.errstate(all="ignore"):  # NaN/Inf outputs propagate into the figures
            self._add_sums(v, r)

    def _add_sums(self, v: np.ndarray, r: np.ndarray) -> None:
        self.sum_signal += float(np.sum(r * r))
        self.sum_noise += float(np.sum((v - r) ** 2))
        self.dot += float(np.sum(v * r))
        self.norm_v += float(np.sum(v * v))
        self.norm_r += float(np.sum(r * r))
        if v.ndim and v.shape[0]:
            cos = cosine_per_sample(v, r)
            self.cos_sum += float(cos.sum())
            self.cos_min = _nanmin(self.cos_min, cos.min())
            self.cos_count += cos.size

    def result(self, atol: float, rtol: float, check_error_stat: str) -> OutputAgreement:
        from polygraphy.comparator import SimpleThreshold

        mean_abs = self.sum_abs / self.elements if self.elements else float("nan")
        mean_rel = self.sum_rel / self.elements if self.elements else float("nan")
        if check_error_stat == "elemwise":
            passed = self.elemwise_passed
        else:  # Polygraphy's own threshold on the whole-data-set statistics
            passed = SimpleThreshold(check_error_stat, atol, rtol).passed({
                "max_absdiff": self.max_abs, "max_reldiff": self.max_rel,
                "mean_absdiff": mean_abs, "mean_reldiff": mean_rel,
            })
        if not all(map(math.isfinite, (self.dot, self.norm_v, self.norm_r))):
            cosine = float("nan")
        elif self.norm_v == 0 and self.norm_r == 0:
            cosine = 1.0
        elif self.norm_v == 0 or self.norm_r == 0:
            cosine = 0.0
        else:
            cosine = max(-1.0, min(1.0, self.dot / math.sqrt(self.norm_v * self.norm_r)))
        return OutputAgreement(
            name=self.name, shape=self.shape, dtype=self.dtype,
            max_abs_error=float(self.max_abs), mean_abs_error=float(mean_abs),
            max_rel_error=float(self.max_rel), mean_rel_error=float(mean_rel),
            cosine_mean=self.cos_sum / self.cos_count if self.cos_count else float("nan"),
            cosine_min=self.cos_min if self.cos_count else float("nan"),
            cosine=float(cosine),
            sqnr_db=sqnr_db(self.sum_signal, self.sum_noise),
            nonfinite=self.nonfinite, passed=bool(passed),
        )


def _nanmax(current: float, value) -> float:
    """``max`` that propagates NaN (a NaN error anywhere makes the statistic NaN)."""
    value = float(value)
    return float("nan") if math.isnan(current) or math.isnan(value) else max(current, value)


def _nanmin(current: float, value) -> float:
    """``min`` that propagates NaN."""
    value = float(value)
    return float("nan") if math.isnan(current) or math.isnan(value) else min(current, value)


class _Accumulator:
    """Collects task metrics and agreement figures batch by batch."""

    def __init__(self, *, top_k, labels, atol, rtol, check_error_stat):
        self.top_k, self.labels = top_k, labels
        self.atol, self.rtol, self.check_error_stat = atol, rtol, check_error_stat
        self.classifier: str | None = None
        self.num_classes: int | None = None
        self.hits = {k: 0 for k in top_k}
        self.predictions: list[np.ndarray] = []
        self.ref_predictions: list[np.ndarray] = []
        self.stats: dict[str, _OutputStats] = {}
        self.output_names: list[str] = []
        self.warnings: list[str] = []
        self.first = True

    def add(self, outputs, ref_outputs, start: int, count: int) -> None:
        if self.first:
            self._start(outputs, ref_outputs, count)
        if self.classifier is not None:
            scores = _scores(outputs[self.classifier], count, self.classifier, "variant")
            self.predictions.append(scores.argmax(axis=1))
            if self.labels is not None:
                labels = self.labels[start:start + count]
                for k in self.hits:
                    if k < self.num_classes:
                        self.hits[k] += int(topk_hits(scores, labels, k).sum())
            if ref_outputs is not None:
                ref = _scores(ref_outputs[self.classifier], count, self.classifier, "reference")
                self.ref_predictions.append(ref.argmax(axis=1))
        if ref_outputs is not None:
            _check_same_outputs(outputs, ref_outputs)
            verdicts = polygraphy_compare(
                {n: outputs[n] for n in self.output_names},
                {n: ref_outputs[n] for n in self.output_names},
                atol=self.atol, rtol=self.rtol, check_error_stat=self.check_error_stat,
            )
            for name in self.output_names:
                self.stats[name].add(outputs[name], ref_outputs[name], verdicts[name])

    def _start(self, outputs, ref_outputs, count: int) -> None:
        """Decide, from the first batch, which output is scored and which are compared."""
        self.first = False
        if not outputs:
            raise EvaluationError("the variant returned no outputs")
        self.output_names = list(outputs)
        name, first = self.output_names[0], np.asarray(outputs[self.output_names[0]])
        if first.ndim == 2 and first.shape[0] == count and first.shape[1] >= 2:
            self.classifier, self.num_classes = name, int(first.shape[1])
            too_big = [k for k in self.top_k if k >= self.num_classes]
            if too_big and self.labels is not None:
                self.warnings.append(
                    f"top-{too_big} skipped: output '{name}' has only {self.num_classes} classes")
            if self.labels is not None and self.labels.max(initial=0) >= self.num_classes:
                raise InputDataError(
                    f"labels go up to {int(self.labels.max())} but output '{name}' scores "
                    f"{self.num_classes} classes; check that the labels belong to this model."
                )
        else:
            message = (f"the first output '{name}' has shape {list(first.shape)}, not [N, C] class "
                       "scores: top-k accuracy is not computed")
            if self.labels is not None:
                self.warnings.append(message)
        if self.labels is None:
            self.warnings.append("the data has no 'labels' array: no task metrics (top-k)")
        if ref_outputs is not None:
            _check_same_outputs(outputs, ref_outputs)
            for n in self.output_names:
                array = np.asarray(outputs[n])
                self.stats[n] = _OutputStats(n, list(array.shape[1:]), str(array.dtype))

    def result(self, *, has_labels: bool, **fields) -> EvaluationResult:
        done = [k for k in self.top_k if self.classifier is not None and has_labels
                and k < (self.num_classes or 0)]
        samples = fields["samples"]
        nonfinite = {n: s.nonfinite for n, s in self.stats.items() if s.nonfinite}
        warnings = list(self.warnings)
        if nonfinite:
            warnings.append(f"the variant produced NaN/Inf values: {nonfinite}")
        return EvaluationResult(
            topk={k: self.hits[k] / samples for k in done},
            correct={k: self.hits[k] for k in done},
            classifier_output=self.classifier,
            num_classes=self.num_classes,
            outputs={n: s.result(self.atol, self.rtol, self.check_error_stat)
                     for n, s in self.stats.items()},
            predictions=np.concatenate(self.predictions) if self.predictions else None,
            reference_predictions=(np.concatenate(self.ref_predictions)
                                   if self.ref_predictions else None),
            tolerance={"atol": self.atol, "rtol": self.rtol,
                       "check_error_stat": self.check_error_stat},
            warnings=warnings,
            **fields,
        )


def _scores(array, count: int, name: str, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[0] != count:
        raise EvaluationError(
            f"the {what}'s output '{name}' has shape {list(array.shape)} on a batch of {count}; "
            "expected [batch, classes]"
        )
    return array.astype(np.float64) if array.dtype != np.float64 else array


def _check_same_inputs(names: Sequence[str] | None, ref_names: Sequence[str] | None) -> None:
    """Refuse a reference that takes other inputs than the variant (when both say)."""
    if names is not None and ref_names is not None and set(names) != set(ref_names):
        raise EvaluationError(
            f"the reference's inputs {sorted(ref_names)} differ from the variant's {sorted(names)}; "
            "compare variants of the same model (same input names)."
        )


def _check_same_outputs(outputs: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray]) -> None:
    """Refuse a reference whose outputs differ in name or shape from the variant's."""
    if set(outputs) != set(ref):
        raise EvaluationError(
            f"the reference's outputs {sorted(ref)} differ from the variant's {sorted(outputs)}; "
            "compare variants of the same model (same output names)."
        )
    for name in outputs:
        a, b = np.shape(outputs[name]), np.shape(ref[name])
        if a != b:
            raise EvaluationError(
                f"output '{name}' has shape {list(a)} in the variant but {list(b)} in the "
                "reference; compare variants of the same model."
            )


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
