"""What a variant costs in accuracy: task metrics against labels, and agreement with a reference.

:func:`evaluate` runs a model variant (an FP16 or INT8 ONNX file, a built engine...) over a data
set in batches, and optionally a reference (the FP32 model) in lockstep on the same batches, so
memory stays bounded by one batch whatever the data set size.

* Task metrics, when the data has ``labels``: top-k accuracy (fractions 0..1) of the variant's
  first output, which must be ``[N, C]`` class scores.
* The chosen :mod:`~workbench.analysis.metrics` metric (``top1``, ``agreement``, ``cosine``,
  ``sqnr``, ``psnr`` or the user's ``python:module:function``; by default top1 with labels, else
  agreement, or SQNR for outputs that are not class scores), the reference's value of it, and
  the verdict ``passed``: the metric reaches its target (by default half a point below the
  reference for top1/agreement, 30 dB of SQNR...), or, when ``atol``/``rtol`` are given, every
  output within them elementwise. Outputs with NaN/Inf never pass.
* Output agreement with the reference, per output name: absolute and relative error
  (Polygraphy's :class:`~polygraphy.comparator.SimpleCompareFunc` per batch, so the figures and
  the pass/fail verdict are the ones ``polygraphy run --atol --rtol`` reports; relative error is
  ``|variant - reference| / |reference|``), cosine similarity (per sample: mean and min; and over
  the whole tensor) and SQNR in dB, ``10 * log10(sum(reference**2) / sum((variant - reference)**2))``
  (``inf`` when the outputs are identical).

Example::

    result = evaluate("model.int8.onnx", "eval.npz", reference="model.onnx")
    result.top1, result.outputs["logits"].sqnr_db, result.metric.value, result.passed
    evaluate("sr.int8.onnx", "images.npz", reference="sr.onnx", metric="psnr", target=35).passed
    result.to_dict()   # JSON-safe, the ``workbench evaluate --json`` contract
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import onnx

# the agreement figures and metric helpers live in agreement.py and metrics.py; re-exported here
# (``name as name``) because callers and tests import them from this module
from workbench.analysis.agreement import OutputAgreement as OutputAgreement
from workbench.analysis.agreement import OutputStats, json_float, polygraphy_compare
from workbench.analysis.metrics import (
    Metric,
    MetricError,
    Target,
    binomial_stderr,
    check_drop_possible,
    default_metric,
    get_metric,
    resolve_target,
    topk_hits,
)
from workbench.analysis.metrics import cosine_per_sample as cosine_per_sample
from workbench.analysis.metrics import sqnr_db as sqnr_db
from workbench.backends import get_backend
from workbench.datasets.arrays import (
    InputDataError,
    check_labels,
    load_data,
    num_samples,
    resolve_sample_axes,
    take_batch,
)
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
class MetricResult:
    """One metric's value for a variant, its reference's, and whether it reached its target.

    Attributes:
        name: The metric (``"top1"``, ``"agreement"``, ``"sqnr"``, ``"python:m:f"``...).
        unit: Its unit (``"%"``, ``"dB"``, ``""``).
        value: The variant's value.
        reference_value: The reference's value (None without a reference).
        stderr: The binomial standard error of ``value`` for proportion metrics, else None.
        target: The :class:`~workbench.analysis.metrics.Target`, or None (no reference, no target).
        passed: Whether ``value`` reached the target (None without one).
    """

    name: str
    unit: str
    value: float
    reference_value: float | None = None
    stderr: float | None = None
    target: Target | None = None
    passed: bool | None = None

    def to_dict(self) -> dict:
        """``metric``, ``metric_value``, ``metric_unit``, ``metric_reference_value``,
        ``metric_stderr`` and ``target`` (its ``minimum``, ``drop``, ``source``...), strict JSON."""
        return {"metric": self.name, "metric_value": json_float(self.value), "metric_unit": self.unit,
                "metric_reference_value": json_float(self.reference_value),
                "metric_stderr": json_float(self.stderr),
                "target": None if self.target is None else self.target.to_dict()}


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
        tolerance: ``atol``, ``rtol`` and ``check_error_stat`` the per-output verdicts used.
        metric: The chosen (or default) metric's :class:`MetricResult`, or None when no metric
            applies (no labels that fit and no reference).
        verdict: What ``passed`` is based on: ``"metric"`` (the metric reached its target),
            ``"tolerance"`` (every output within ``atol``/``rtol``, when they were asked for),
            or None (nothing to judge against).
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
    metric: MetricResult | None = None
    verdict: str | None = None
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
        """The verdict: the metric reached its target (by default), or every output is within
        ``atol``/``rtol`` of the reference (when they were asked for); never with NaN/Inf
        outputs; None without a reference or a target."""
        if self.verdict is None:
            return None
        if any(o.nonfinite for o in self.outputs.values()):
            return False
        if self.verdict == "tolerance":
            return all(o.passed for o in self.outputs.values())
        return self.metric.passed

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
            ``metric``, ``metric_value``, ``metric_unit`` (and ``metric_reference_value``,
            ``metric_stderr``, ``target``) when a metric applies; ``verdict`` (what ``passed``
            is based on); ``tolerance``, ``warnings`` and ``versions``. Non-finite numbers are
            None.
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
        if self.reference is not None or self.verdict is not None:
            data["passed"] = self.passed
        if self.reference is not None:
            data["outputs"] = {name: o.to_dict() for name, o in self.outputs.items()}
            data["min_cosine"] = json_float(self.min_cosine)
            data["min_sqnr_db"] = json_float(self.min_sqnr_db)
            if self.top1_agreement is not None:
                data["top1_agreement"] = self.top1_agreement
        if self.metric is not None:
            data.update(self.metric.to_dict())
        data["verdict"] = self.verdict
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
    atol: float | None = None,
    rtol: float | None = None,
    check_error_stat: str = "elemwise",
    limit: int | None = None,
    progress: Any = False,
    metric=None,
    target: float | None = None,
    target_drop: float | None = None,
    compare_outputs: bool = True,
) -> EvaluationResult:
    """Measure a variant's accuracy on a data set, and its agreement with a reference.

    Args:
        variant: The model to evaluate: a path to an ``.onnx`` file, an
            :class:`onnx.ModelProto`, a :class:`workbench.model.LoadedModel`, or an engine
            (anything with ``run(inputs) -> {output name: array}``, used as is).
        dataset: An ``.npz`` path (one array per model input, plus optional ``labels``), or
            ``(inputs, labels)`` with ``inputs`` a mapping of input name -> array and
            ``labels`` an array or None. Labels are class indices ``[N]`` (or one-hot
            ``[N, C]``), or ``[N, T]`` per position for ``[N, T, C]`` outputs.
        reference: The model to compare outputs with (usually FP32), in any form ``variant``
            takes; None for task metrics only.
        backend: Backend name (``"onnxruntime"``, ``"tensorrt"``) or a
            :class:`workbench.backends.Backend`, used for models that are not engines yet.
        backend_options: Build options for that backend.
        batch_size: Samples per inference. A model with a fixed batch dimension uses its own
            (the last batch is padded by repeating its last sample; padded outputs are dropped).
        top_k: Which top-k accuracies to report (k below the number of classes).
        atol, rtol: Tolerances of each output's Polygraphy verdict (default 1e-5). Giving
            either makes ``passed`` the elementwise verdict instead of the metric's.
        check_error_stat: ``"elemwise"`` (every element within ``atol`` or ``rtol``), ``"max"``
            or ``"mean"`` (that statistic within ``atol`` or ``rtol``).
        limit: Evaluate only the first ``limit`` samples.
        progress: See :mod:`workbench.progress` (True or "tqdm": a bar; "log": log lines).
        metric: A :mod:`~workbench.analysis.metrics` name or :class:`Metric` (``top1``,
            ``agreement``, ``cosine``, ``sqnr``, ``psnr``, ``python:module:function``); None
            picks :func:`~workbench.analysis.metrics.default_metric` from the labels, the
            reference and the first output's shape.
        target: The minimum metric value that passes (in its unit).
        target_drop: The allowed drop from the reference's value (in its unit); with neither,
            the metric's default (0.5 points of top1/agreement, 30 dB SQNR...).
        compare_outputs: Compute the per-output agreement figures (``outputs``) when there is a
            reference; False scores only the metric (faster).

    Returns:
        The :class:`EvaluationResult`.

    Raises:
        InputDataError: The data lacks a model input, has samples of the wrong shape, NaN/Inf,
            or labels that do not match the samples.
        EvaluationError: The reference has other outputs or output shapes than the variant, a
            model fails to run, or an argument is invalid.
    """
    batch_size, top_k = _check_args(batch_size, top_k, atol, rtol, check_error_stat, limit)
    chosen = _check_metric(metric, reference, atol, rtol, target, target_drop)
    run = _prepare(variant, dataset, reference, backend, backend_options, batch_size=batch_size, limit=limit)
    if chosen is not None and chosen.needs_labels and run.raw_labels is None:
        raise EvaluationError(f"metric {chosen.name} compares with labels, and {run.source} has none: save them as "
                              "'labels' beside the inputs, or choose a metric that compares with the reference.")
    acc = _Accumulator(top_k=top_k, labels=run.labels, atol=DEFAULT_ATOL if atol is None else atol,
                       rtol=DEFAULT_RTOL if rtol is None else rtol, check_error_stat=check_error_stat,
                       metric=chosen, raw_labels=run.raw_labels, compare_outputs=compare_outputs,
                       tolerance_asked=atol is not None or rtol is not None, target=target, target_drop=target_drop)
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
    labels: np.ndarray | None  # [N] class indices (top-k), when the labels are that
    raw_labels: np.ndarray | None  # the labels as given (the metric reads them)
    source: str  # where the data came from
    samples: int
    shapes: dict | None  # the variant's declared input shapes, if it says
    batch: dict  # {"size", "fixed"} from _batch_for
    sample_axes: dict  # input name -> its sample axis, or None (fed as it is)


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
    data = load_data(dataset, engine_input_names(runner), limit=limit)
    inputs, raw, source, axes = data.inputs, data.labels, data.source, data.sample_axes
    # 1-D labels are class indices (checked now); 2-D ones are one-hot rows or per-position
    # labels, told apart by the output's shape on the first batch
    labels = check_labels(raw, data.num_samples, source) if raw is not None and raw.ndim == 1 else None
    shapes = engine_input_shapes(runner)
    check_input_shapes(inputs, shapes, source, what="variant", sample_axes=axes)
    if ref_runner is not None:
        _check_same_inputs(engine_input_names(runner), engine_input_names(ref_runner))
        check_input_shapes(inputs, engine_input_shapes(ref_runner), source, what="reference", sample_axes=axes)
    return _Run(runner, ref_runner, inputs, labels, raw, source, data.num_samples, shapes,
                _batch_for(batch_size, runner, ref_runner, axes), axes)


def _run_all(run: _Run, acc: "_Accumulator", progress: Any) -> None:
    """Run the variant (and the reference, in lockstep) over every batch into ``acc``.

    Args:
        run: The prepared evaluation.
        acc: Collects the metrics.
        progress: See :mod:`workbench.progress`.
    """
    with resolve_progress(progress).task("evaluate", run.samples, unit="sample") as task:
        for start, feed, count in iter_batches(run.inputs, run.batch["size"], pad=run.batch["fixed"],
                                               sample_axes=run.sample_axes):
            fed = run.batch["size"] if run.batch["fixed"] else count
            outputs = run_checked(run.runner, feed, run.shapes, "variant", start, count, fed)
            ref_outputs = None
            if run.ref_runner is not None:
                ref_outputs = run_checked(run.ref_runner, feed, engine_input_shapes(run.ref_runner),
                                          "reference", start, count, fed)
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
        if value is not None and not (isinstance(value, (int, float)) and value >= 0):
            raise EvaluationError(f"{name} must be a number >= 0, got {value!r}")
    if check_error_stat not in CHECK_ERROR_STATS:
        raise EvaluationError(f"check_error_stat must be one of {CHECK_ERROR_STATS}, got {check_error_stat!r} "
                              "(median and quantile cannot be combined across batches)")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise EvaluationError(f"limit must be a positive integer or None, got {limit!r}")
    return int(batch_size), ks


def _check_metric(metric, reference, atol, rtol, target, target_drop) -> Metric | None:
    """The asked metric (None: chosen on the first batch), refusing what cannot work before any run.

    Raises:
        MetricError: An unknown metric, or both ``target`` and ``target_drop``.
        EvaluationError: A reference metric or tolerances without a reference.
    """
    chosen = None if metric is None else get_metric(metric)
    if target is not None and target_drop is not None:
        raise MetricError("give a target value or an allowed drop (--target or --target-drop), not both.")
    if chosen is not None:
        check_drop_possible(chosen, target_drop)
    if reference is None:
        if chosen is not None and chosen.needs_reference:
            raise EvaluationError(f"metric {chosen.name} compares the variant's outputs with a reference's: give the "
                                  "FP32 model as the reference (--reference FP32.onnx), or use top1 with labels.")
        if atol is not None or rtol is not None:
            raise EvaluationError("atol/rtol compare each output with a reference's: give the FP32 model as the "
                                  "reference (--reference FP32.onnx).")
        if target_drop is not None:
            raise EvaluationError("a target drop is measured from the reference's value: give the FP32 model as "
                                  "the reference (--reference FP32.onnx), or an absolute --target.")
    return chosen


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
                       source: str, *, what: str = "model", sample_axes: Mapping[str, int | None] | None = None
                       ) -> None:
    """Refuse data whose per-sample shape cannot fit the model's declared input shapes.

    Args:
        inputs: Input name -> array, samples along its sample axis (0 unless ``sample_axes`` says).
        shapes: Input name -> declared shape (the batch on the sample axis); None skips the check.
        source: Where the data came from, for messages.
        what: ``"variant"`` or ``"reference"``.
        sample_axes: Input name -> the axis its samples run along, or None for an input fed as
            it is (its whole shape must fit); default axis 0.

    Raises:
        InputDataError: Naming the input, the data's shape and the expected shape.
    """
    if not shapes:
        return
    for name, array in inputs.items():
        expected = shapes.get(name)
        if expected is None:
            continue
        axis = (sample_axes or {}).get(name, 0)
        fits = len(expected) == array.ndim and all(
            not isinstance(d, int) or d == a for i, (d, a) in enumerate(zip(expected, array.shape)) if i != axis
        )
        if fits:
            continue
        if axis != 0:
            where = "fed as it is" if axis is None else f"samples along axis {axis}"
            raise InputDataError(f"{source}: input '{name}' has shape {list(array.shape)} ({where}) but the {what} "
                                 f"expects {_dims_text(expected)}. Fix the array or its data description.")
        hint = "Reshape the data so that each sample matches (the first dimension counts samples)."
        sample_size = int(np.prod(array.shape[1:]))
        fixed = expected[1:]
        if all(isinstance(d, int) for d in fixed) and int(np.prod(fixed)) == sample_size:
            hint = (f"Reshape it: array.reshape({array.shape[0]}, {', '.join(map(str, fixed))}).")
        raise InputDataError(
            f"{source}: input '{name}' has shape {list(array.shape)} but the {what} expects "
            f"{_dims_text(expected)} (first dimension = samples). {hint}"
        )


def _batch_for(batch_size: int, runner, ref_runner, sample_axes: Mapping[str, int | None] | None = None) -> dict:
    """The batch size to run with: the models' fixed batch dimension (on the sample axes) if they have one."""
    fixed = []
    axes = dict(sample_axes or {})
    for engine, what in ((runner, "variant"), (ref_runner, "reference")):
        shapes = engine_input_shapes(engine) if engine is not None else None
        dims = set()
        for name, shape in (shapes or {}).items():
            axis = axes.get(name, 0)
            if axis is not None and shape and axis < len(shape) and isinstance(shape[axis], int):
                dims.add(shape[axis])
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


def iter_batches(inputs: Mapping[str, np.ndarray], batch: int, *, pad: bool = False,
                 sample_axes: Mapping[str, int | None] | None = None
                 ) -> Iterator[tuple[int, dict[str, np.ndarray], int]]:
    """Split inputs into batches along their sample axes (inputs fed as they are go with every batch).

    Args:
        inputs: Input name -> array.
        batch: Samples per batch.
        pad: Pad the last batch to ``batch`` by repeating its last sample (fixed-batch models).
        sample_axes: The data description (default: axis 0, None for 0-d arrays).

    Yields:
        ``(start, feed, count)``: first sample index, the batch, and how many of its samples
        are real (the rest is padding).
    """
    axes = resolve_sample_axes(inputs, sample_axes)
    samples = num_samples(inputs, axes)
    for start in range(0, samples, batch):
        feed = take_batch(inputs, batch, axes, start=start)
        count = min(batch, samples - start)
        if pad and count < batch:
            feed = {n: a if axes[n] is None else np.concatenate(
                [a, np.repeat(np.take(a, [-1], axis=axes[n]), batch - count, axis=axes[n])], axis=axes[n])
                for n, a in feed.items()}
        yield start, feed, count


def run_checked(engine, feed: Mapping[str, np.ndarray], shapes: Mapping[str, list] | None,
                what: str, start: int, count: int, fed: int | None = None) -> dict[str, np.ndarray]:
    """Run one batch; turn a backend's failure into a message naming inputs and shapes.

    Args:
        engine: Runs the feed.
        feed: Input name -> batch.
        shapes: The declared input shapes, for messages.
        what: ``"variant"`` or ``"reference"``.
        start, count: The batch's first sample and its real samples.
        fed: Samples in the feed, padding included (default: the first input's axis 0).

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
    batch = fed if fed is not None else next(iter(feed.values())).shape[0]
    return {n: _trim(np.asarray(a), batch, count) for n, a in outputs.items()}


def _trim(array: np.ndarray, batch: int, count: int) -> np.ndarray:
    """Drop padded samples from an output whose first dimension is the batch."""
    if count < batch and array.ndim and array.shape[0] == batch:
        return array[:count]
    return array


class _Accumulator:
    """Collects task metrics, the chosen metric and agreement figures batch by batch."""

    def __init__(self, *, top_k, labels, atol, rtol, check_error_stat, metric=None, raw_labels=None,
                 compare_outputs=True, tolerance_asked=False, target=None, target_drop=None):
        self.top_k, self.labels, self.raw_labels = top_k, labels, raw_labels
        self.atol, self.rtol, self.check_error_stat = atol, rtol, check_error_stat
        self.compare_outputs, self.tolerance_asked = compare_outputs, tolerance_asked
        self.metric: Metric | None = metric
        self.target, self.target_drop = target, target_drop
        self.metric_acc = self.ref_acc = None
        self.classifier: str | None = None
        self.num_classes: int | None = None
        self.hits = {k: 0 for k in top_k}
        self.predictions: list[np.ndarray] = []
        self.ref_predictions: list[np.ndarray] = []
        self.stats: dict[str, OutputStats] = {}
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
        if self.metric_acc is not None:
            raw = None if self.raw_labels is None else self.raw_labels[start:start + count]
            self.metric_acc.add(outputs, ref_outputs, raw)
            if self.ref_acc is not None:
                self.ref_acc.add(ref_outputs, ref_outputs, raw)
        if ref_outputs is not None and self.compare_outputs:
            verdicts = polygraphy_compare(
                {n: outputs[n] for n in self.output_names},
                {n: ref_outputs[n] for n in self.output_names},
                atol=self.atol, rtol=self.rtol, check_error_stat=self.check_error_stat,
            )
            for name in self.output_names:
                self.stats[name].add(outputs[name], ref_outputs[name], verdicts[name])

    def _start(self, outputs, ref_outputs, count: int) -> None:
        """Decide, from the first batch, which output is scored, which are compared, and the metric."""
        self.first = False
        if not outputs:
            raise EvaluationError("the variant returned no outputs")
        self.output_names = list(outputs)
        name, first = self.output_names[0], np.asarray(outputs[self.output_names[0]])
        if first.ndim == 2 and first.shape[0] == count and first.shape[1] >= 2:
            self.classifier, self.num_classes = name, int(first.shape[1])
            raw = self.raw_labels
            if self.labels is None and raw is not None and raw.shape[1:] == (self.num_classes,):
                self.labels = check_labels(raw, raw.shape[0], "data")  # one-hot rows
            too_big = [k for k in self.top_k if k >= self.num_classes]
            if too_big and self.labels is not None:
                self.warnings.append(
                    f"top-{too_big} skipped: output '{name}' has only {self.num_classes} classes")
            if self.labels is not None and self.labels.max(initial=0) >= self.num_classes:
                raise InputDataError(
                    f"labels go up to {int(self.labels.max())} but output '{name}' scores "
                    f"{self.num_classes} classes; check that the labels belong to this model."
                )
        elif self.raw_labels is not None:
            self.warnings.append(f"the first output '{name}' has shape {list(first.shape)}, not [N, C] class "
                                 "scores: top-k accuracy is not computed")
        if self.raw_labels is None:
            self.warnings.append("the data has no 'labels' array: no task metrics (top-k)")
        if ref_outputs is not None:
            _check_same_outputs(outputs, ref_outputs)
            for n in self.output_names if self.compare_outputs else ():
                array = np.asarray(outputs[n])
                self.stats[n] = OutputStats(n, list(array.shape[1:]), str(array.dtype))
        self._start_metric(first, ref_outputs is not None)

    def _start_metric(self, first: np.ndarray, has_reference: bool) -> None:
        """The asked metric, or the default one for these labels and this output (None if none applies)."""
        if self.metric is None:
            raw = self.raw_labels
            labels_fit = raw is not None and first.ndim in (2, 3) and (
                raw.shape[1:] == first.shape[1:-1] or raw.shape[1:] == first.shape[1:])
            chosen = get_metric(default_metric(labels_fit, list(first.shape)))
            if chosen.needs_reference and not has_reference:
                return
            self.metric = chosen
        self.metric_acc = self.metric.accumulator()
        self.ref_acc = self.metric.accumulator() if has_reference else None

    def _metric_result(self, has_reference: bool) -> MetricResult | None:
        if self.metric_acc is None:
            return None
        metric, value = self.metric, self.metric_acc.value
        ref_value = self.ref_acc.value if self.ref_acc is not None else None
        target = None
        if has_reference or self.target is not None:
            try:
                target = resolve_target(metric, ref_value, target=self.target, target_drop=self.target_drop)
            except MetricError:
                if self.target is not None or self.target_drop is not None:
                    raise
                self.warnings.append(f"metric {metric.name} has no default target: give --target or --target-drop "
                                     "for a verdict")
        stderr = binomial_stderr(value, self.metric_acc.trials, metric.unit) if metric.proportion and \
            self.metric_acc.trials else None
        return MetricResult(metric.name, metric.unit, value, ref_value, stderr, target,
                            None if target is None else target.passes(value))

    def result(self, *, has_labels: bool, **fields) -> EvaluationResult:
        done = [k for k in self.top_k if self.classifier is not None and self.labels is not None
                and k < (self.num_classes or 0)]
        samples = fields["samples"]
        metric = self._metric_result(fields.get("reference") is not None)
        nonfinite = {n: s.nonfinite for n, s in self.stats.items() if s.nonfinite}
        warnings = list(self.warnings)
        if nonfinite:
            warnings.append(f"the variant produced NaN/Inf values: {nonfinite}")
        verdict = "tolerance" if self.tolerance_asked else (
            "metric" if metric is not None and metric.target is not None else None)
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
            metric=metric,
            verdict=verdict,
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
