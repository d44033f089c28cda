"""The INT8 doctor: when INT8 loses accuracy, which layers are to blame and the smallest fix.

:func:`diagnose` runs the whole examination on an FP32 ONNX model, its calibration set and an
evaluation set; :func:`doctor_command` is the ``workbench doctor ... --json`` entry.

Any task: the doctor scores variants with a :mod:`~workbench.analysis.metrics` metric, ``top1``
against labels (class indices ``[N]``, or ``[N, T]`` per position for sequence outputs), or,
without labels, against the FP32 model's outputs: ``agreement`` (arg-max agreement, per position
for ``[N, T, C]``), ``cosine``, ``sqnr``, ``psnr``, or the user's ``python:module:function``. The
target is a minimum value of the metric (``target``) or an allowed drop from FP32 (``target_drop``,
in the metric's unit); a target below the evaluation set's noise (binomial standard error, for
shares such as top1) is warned about, with the sample count that would resolve it.

1. **Accuracy** of the FP32 model and the naive INT8 variant (the user's recipe, by default
   ``Recipe("int8")``: minmax, per-channel weights, ONNX Runtime's Q/DQ) - two full evaluations
   (one for reference metrics: FP32 agrees with itself).
2. **Layerwise pass** (:mod:`~workbench.doctor.layerwise`, on the first
   ``layerwise_samples`` evaluation samples): every tensor's accumulated error and every
   quantized node's local error (the node fed FP32 inputs through its own Q/DQ), its inputs'
   saturation/underflow, per-channel ranges and kurtosis; weight errors.
3. **Ranges** (:mod:`~workbench.doctor.ranges`): calibration-set histograms of each
   quantized activation and the clipping range each calibration method picks; flags.
4. **Calibration checks**: outlier calibration samples, calibration vs evaluation statistics,
   and (``calib_sizes``) accuracy against calibration-set size.
5. **Fix** (:mod:`~workbench.doctor.fix`), only when the naive variant misses the target: a
   calibration change when the evidence points at one (drop outlier samples; another method
   whose ranges differ), else the smallest set of nodes to keep out of INT8, found by galloping
   + bisection over the layerwise ranking, then pruning. Every full evaluation is counted.
6. **Culprits** (:mod:`~workbench.doctor.culprits`): the nodes that add the error (confirmed
   by the fix search when one ran) and the nodes whose output range causes it (e.g. the
   producer of a channel that dominates a per-tensor scale), worst first, each with its evidence.
7. **Latency** of FP32, naive INT8 and the fix on ONNX Runtime (each node kept in high precision
   costs).

The result is a :class:`~workbench.doctor.report.Diagnosis` (JSON report and tables).

Memory stays bounded: the layerwise pass and the range statistics size their batches to the
model (see :data:`~workbench.doctor.layerwise.MEMORY_BUDGET`), evaluations run in batches sized
to the inputs, and progress is reported as it goes (the CLI logs it on stderr, also with --json).

Example::

    report = doctor_command("model.onnx", "calib.npz", "eval.npz", target_drop=0.5)
    report["culprits"][0]["node"], report["recipe"]["exclude"], report["fixed_accuracy"]
    report = doctor_command("sr.onnx", "calib.npz", "eval.npz", metric="psnr", target=35)
    report["fixed_value"], report["metric_unit"]   # 41.2, "dB"
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import onnx
import pandas as pd

from workbench.analysis.metrics import (
    Metric,
    MetricError,
    Target,
    check_drop_possible,
    default_metric,
    get_metric,
    noise_warning,
    resolve_target,
)
from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend
from workbench.datasets.arrays import (
    load_data,
    num_samples,
    resolve_sample_axes,
    take_batch,
)
from workbench.datasets.calibration_sets import CalibrationSet

# CHANNELWISE_OPS ... source_of, jsonable, results_rows: moved to culprits.py and report.py; re-exported
# (``name as name``) because the deprecated alias workbench.analysis.doctor reads names off this module.
from workbench.doctor.culprits import CHANNELWISE_OPS as CHANNELWISE_OPS
from workbench.doctor.culprits import ERROR_FLAGS as ERROR_FLAGS
from workbench.doctor.culprits import JUMP_DB as JUMP_DB
from workbench.doctor.culprits import KERNEL_GAP_DB as KERNEL_GAP_DB
from workbench.doctor.culprits import SUSPICIOUS_FLOOR_DB as SUSPICIOUS_FLOOR_DB
from workbench.doctor.culprits import SUSPICIOUS_GAP_DB as SUSPICIOUS_GAP_DB
from workbench.doctor.culprits import confirmed_costs, find_culprits, rank_candidates
from workbench.doctor.culprits import source_of as source_of
from workbench.doctor.fix import (
    Config,
    DoctorError,
    Evaluator,
    search_exclusions,
    top1_of,
)
from workbench.doctor.layerwise import (
    DEFAULT_SAMPLES,
    LayerwiseResult,
    layerwise_compare,
    tensor_bytes_per_sample,
)
from workbench.doctor.ranges import (
    activation_statistics,
    calib_vs_eval,
    calibration_outliers,
    method_clip_ranges,
    range_flags,
)
from workbench.doctor.report import JSON_FORMAT as JSON_FORMAT
from workbench.doctor.report import Diagnosis
from workbench.doctor.report import jsonable as jsonable
from workbench.doctor.report import results_rows as results_rows
from workbench.model import load_model
from workbench.model.normalize import default_opset, upgrade_opset
from workbench.precision import Recipe
from workbench.progress import resolve_progress

METHODS = ("minmax", "entropy", "percentile", "distribution")
EVAL_BATCH_BYTES = 16 * 2**20  # input bytes per evaluation batch (up to 256 samples)
CALIB_BATCH_BYTES = 128 * 2**20  # bytes of tensors per calibration batch of the doctor's default recipe
LOG = logging.getLogger("workbench")


# --------------------------------------------------------------------------------------------
# Inputs


def _recipe(recipe, method: str | None, per_channel: bool | None):

    if recipe is None:
        base = Recipe("int8", tool="onnxruntime")
    elif isinstance(recipe, Recipe):
        base = recipe
    elif isinstance(recipe, Mapping):
        base = Recipe.from_dict(recipe)
    elif isinstance(recipe, str):
        base = Recipe(recipe, tool="onnxruntime")
    else:
        raise DoctorError(f"recipe must be a Recipe, a dict or a precision name, got {type(recipe).__name__}.")
    if base.precision not in ("int8", "fp8"):
        raise DoctorError(f"the doctor examines quantized variants; recipe precision is {base.precision!r}. Use "
                          "Recipe('int8') (or 'fp8').")
    changes = {}
    if method is not None:
        changes["method"] = method
    if per_channel is not None:
        changes["per_channel"] = bool(per_channel)
    return base.with_(**changes) if changes else base


def _check_target(target_drop, target=None, unit: str = "%") -> tuple[float | None, float | None]:
    """Check ``target_drop`` (and ``target``): numbers, a drop of zero or more, one of the two.

    Returns:
        ``(target_drop, target)`` as floats (or None).

    Raises:
        DoctorError: Naming the argument and the fix.
    """
    if target is not None and target_drop is not None:
        raise DoctorError("give target (the minimum metric value) or target_drop (the allowed drop from FP32), "
                          "not both.")
    if target is not None:
        try:
            value = float(target)
        except (TypeError, ValueError):
            raise DoctorError(f"target must be a number in the metric's unit, got {target!r}.") from None
        if not math.isfinite(value):
            raise DoctorError(f"target must be a finite number in the metric's unit, got {target!r}.")
        return None, value
    if target_drop is None:
        return None, None
    points = "percentage points" if unit == "%" else f"{unit or 'units'} of the metric"
    try:
        value = float(target_drop)
    except (TypeError, ValueError):
        raise DoctorError(f"target_drop must be a number of {points} (e.g. 0.5), got {target_drop!r}.") from None
    if not math.isfinite(value) or value < 0:
        raise DoctorError(f"target_drop must be zero or more {points} (e.g. 0.5), got {target_drop!r}.")
    if unit == "%" and value > 100:
        raise DoctorError(f"target_drop is in percentage points (0-100), got {value}; for half a point give 0.5.")
    return value, None


# --------------------------------------------------------------------------------------------
# Progress

PHASES = ("accuracy of FP32 and naive INT8", "layerwise comparison", "ranges and clipping per method",
          "calibration checks", "fix search", "latency")


class _Progress:
    """The doctor's phases as one task of :mod:`workbench.progress` (``"log"`` on the CLI, a bar
    in a notebook); ``reporter`` reports the long phases' own steps (samples, evaluations)."""

    def __init__(self, progress):
        try:
            self.reporter = resolve_progress(progress)
        except ValueError as err:
            raise DoctorError(str(err)) from None
        self.task = self.reporter.task("doctor", len(PHASES), unit="phase")
        self.started = False

    def phase(self, name: str, detail: str = "") -> None:
        # a phase's start reports the previous one as done
        self.task.update(1 if self.started else 0, name + (f" ({detail})" if detail else ""))
        self.started = True

    def note(self, message: str) -> None:
        """Report something within the current phase (an evaluation's result)."""
        self.task.update(0, message)

    def close(self, detail: str = "") -> None:
        self.task.update(self.task.total - self.task.done, detail or "done")
        self.task.close()


# --------------------------------------------------------------------------------------------
# Latency


def measure_latency(path, inputs: Mapping[str, np.ndarray], *, options: Mapping | None = None, batch: int = 32,
                    iterations: int = 30, warmup: int = 5, sample_axes: Mapping | None = None) -> dict:
    """Latency of one model on ONNX Runtime's CPU provider (the workbench backend's benchmark).

    Args:
        path: The ONNX file.
        inputs: Input arrays; the first ``batch`` samples are timed.
        options: ``{"graph_optimization_level": ...}`` (a variant's ``ort_session_options``).
        batch: Samples per inference.
        iterations, warmup: Timed and untimed runs.
        sample_axes: The inputs' data description (default: samples along axis 0).

    Returns:
        ``{"median_ms", "mean_ms", "p90_ms", "batch", "iterations"}``.
    """

    engine = OnnxRuntimeBackend().build(str(path), dict(options or {}))
    feed = take_batch(inputs, batch, sample_axes)
    result = engine.benchmark(feed, iterations=iterations, warmup=warmup)
    return {"median_ms": result.median_ms, "mean_ms": result.mean_ms, "p90_ms": result.p90_ms,
            "batch": min(int(batch), num_samples(inputs, sample_axes)), "iterations": result.iterations}



# --------------------------------------------------------------------------------------------
# The examination, phase by phase


@dataclass
class _Data:
    """The checked inputs: the model, the naive recipe, calibration and evaluation arrays, the metric."""

    loaded: object  # workbench.model.LoadedModel
    base: Recipe
    calib: CalibrationSet  # with its data description
    eval: dict
    labels: np.ndarray | None  # as given: [N] classes, [N, C] one-hot, [N, T] per position
    metric: Metric
    eval_axes: dict  # input name -> sample axis of the evaluation arrays, or None (fed as it is)

    @property
    def samples(self) -> int:
        return num_samples(self.eval, self.eval_axes)


@dataclass(frozen=True)
class _Options:
    """How :func:`diagnose` examines (its keyword arguments, checked): ``target_drop`` or
    ``target_value`` (or neither: the metric's default)."""

    target_drop: float | None
    target_value: float | None
    methods: tuple[str, ...]
    layerwise_samples: int | None
    calib_sizes: Sequence[int] | None
    outlier_factor: float
    latency: bool
    latency_iterations: int
    fix: bool
    workspace: object
    runner: Callable | None = None  # where full evaluations run (None: here; see Evaluator)


@dataclass
class _Naive:
    """Phase 1: the FP32 model's and the naive variant's metric values, the naive configuration and variant."""

    fp32: float
    int8: float
    config: Config
    variant: object  # workbench.precision.Variant
    proto: onnx.ModelProto


@dataclass
class _Ranges:
    """Phase 3: clipping range per (node, tensor, method), calibration statistics, range flags."""

    clips: pd.DataFrame
    calib_stats: dict
    flags: list


@dataclass
class _Checks:
    """Phase 4: outlier calibration samples, calibration vs evaluation, accuracy vs calibration size."""

    outliers: list
    calib_eval: pd.DataFrame
    curve: list | None


@dataclass
class _Fix:
    """Phase 5: the chosen configuration, its metric value, confirmed costs (metric unit) and the search record."""

    config: Config
    value: float
    costs: dict
    search: dict


@contextmanager
def _timed(timings: dict, key: str):
    """Add the block's wall time to ``timings[key]`` (seconds)."""
    clock = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = time.perf_counter() - clock


def _load_data(model, calib, eval, *, recipe, method, per_channel, methods, calib_sizes, metric) -> _Data:  # noqa: A002
    """Load the model and data, choose the metric and check the recipe, methods and calibration sizes.

    Args:
        model, calib, eval, recipe, method, per_channel, methods, calib_sizes, metric: As
            :func:`diagnose`.

    Returns:
        The :class:`_Data`.

    Raises:
        ModelLoadError, InputDataError, DoctorError, MetricError: As :func:`diagnose`.
    """
    loaded = load_model(model)
    base = _recipe(recipe, method, per_channel)
    calibration = load_data(calib, loaded.input_names, what="calibration")
    calib_set = CalibrationSet(calibration.inputs, calibration.source, {"mode": "all"}, calibration.sample_axes)
    if recipe is None:  # the default recipe: calibrate in batches the model's tensors fit in memory
        base = base.with_(batch_size=calibration_batch_size(loaded.proto, calib_set, base.batch_size))
    evaluation = load_data(eval, loaded.input_names, what="evaluation")
    labels = evaluation.labels
    outputs = loaded.summary.outputs
    chosen = get_metric(metric if metric is not None else default_metric(
        labels is not None, outputs[0]["shape"] if outputs else None))
    if chosen.needs_labels and labels is None:
        raise DoctorError(f"metric {chosen.name} compares with labels, and {evaluation.source} has no 'labels' array: "
                          "save them beside the inputs, or use a metric that compares with the FP32 model "
                          "(--metric agreement, cosine, sqnr or psnr; the default without labels).")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise DoctorError(f"unknown calibration method(s) {unknown}; choose from {list(METHODS)}.")
    if calib_sizes and any(int(n) < 1 for n in calib_sizes):
        raise DoctorError(f"calibration sizes must be at least 1, got {list(calib_sizes)}.")
    return _Data(loaded, base, calib_set, evaluation.inputs, labels, chosen, evaluation.sample_axes)


def calibration_batch_size(model: onnx.ModelProto, calib: CalibrationSet, most: int,
                           budget: int = CALIB_BATCH_BYTES) -> int:
    """Samples per calibration run: as many as ``budget`` bytes of the model's tensors hold (1 to ``most``).

    The calibration graph exposes every quantized activation (and histograms them), so its
    memory grows with the batch times the tensors one sample makes, measured on one sample.

    Args:
        model: The FP32 model.
        calib: The calibration set.
        most: The recipe's batch size (the largest used).
        budget: Bytes of tensors per batch.

    Returns:
        The batch size.
    """
    per_sample = tensor_bytes_per_sample(model, calib.inputs, calib.sample_axes)
    return max(1, min(int(most), int(budget) // max(per_sample, 1)))


def eval_batch_size(inputs: Mapping[str, np.ndarray], sample_axes: Mapping | None = None,
                    budget: int = EVAL_BATCH_BYTES, cap: int = 256) -> int:
    """Samples per evaluation batch: as many as ``budget`` bytes of inputs hold, 1 to ``cap``.

    Args:
        inputs: Input name -> array.
        sample_axes: The data description (inputs fed as they are do not count).
        budget: Input bytes per batch.
        cap: The most samples per batch.

    Returns:
        The batch size.
    """
    axes = resolve_sample_axes(inputs, sample_axes)
    per_sample = sum(a.nbytes // max(a.shape[axes[n]], 1) for n, a in inputs.items() if axes[n] is not None)
    return max(1, min(cap, int(budget) // max(per_sample, 1)))


def _naive_accuracy(evaluator: Evaluator, base: Recipe, phases: _Progress) -> _Naive:
    """Phase 1: the metric of the FP32 model and of the naive variant (two full evaluations, one
    for reference metrics: the FP32 model's value is known).

    Args:
        evaluator: The doctor's evaluator.
        base: The naive recipe.
        phases: Reports the values.

    Returns:
        The :class:`_Naive` (its ``proto`` is the naive variant, loaded).
    """
    metric = evaluator.metric
    before = evaluator.evaluations
    fp32 = evaluator.fp32()
    if evaluator.evaluations == before:  # known without an evaluation (a reference metric)
        phases.note(f"FP32 {metric.name} {metric.format(fp32)} (the reference itself)")
    config = Config.make(method=base.method)
    variant = evaluator.variant(config)
    int8 = evaluator(config, "naive int8")
    return _Naive(fp32, int8, config, variant, onnx.load(str(variant.path)))


def _compare_layers(data: _Data, naive: _Naive, evaluator: Evaluator, samples: int | None,
                    progress=None) -> LayerwiseResult:
    """Phase 2: the layerwise comparison, the variant run as its evaluation runs it.

    Args:
        data: The checked inputs.
        naive: Phase 1's result.
        evaluator: The doctor's evaluator (learns the quantized nodes: excluding all is FP32).
        samples: Evaluation samples compared (None: all).
        progress: Reports the samples compared.

    Returns:
        The :class:`LayerwiseResult`.
    """
    level = naive.variant.ort_session_options.get("graph_optimization_level", "all")
    fp32 = data.loaded.proto
    if default_opset(fp32) < default_opset(naive.proto):  # the variant was made at the opset Q/DQ needs
        fp32 = upgrade_opset(fp32, default_opset(naive.proto), path=data.loaded.path)
    layerwise = layerwise_compare(fp32, naive.proto, data.eval, max_samples=samples,
                                  variant_level=level, progress=progress, sample_axes=data.eval_axes)
    evaluator.all_nodes = frozenset(layerwise.quantized)
    return layerwise


def _examine_ranges(data: _Data, naive: _Naive, evaluator: Evaluator, layerwise: LayerwiseResult,
            methods: Sequence[str]) -> _Ranges:
    """Phase 3: each method's clipping ranges (its variants share the placement), calibration
    statistics of every quantized activation, and range flags.

    Args:
        data: The checked inputs.
        naive: Phase 1's result (the base method's variant).
        evaluator: Makes the other methods' variants (no evaluation).
        layerwise: Phase 2's result.
        methods: Calibration methods to compare.

    Returns:
        The :class:`_Ranges`.
    """
    method_variants = {data.base.method: naive.proto}
    for m in methods:
        if m not in method_variants:
            method_variants[m] = onnx.load(str(evaluator.variant(Config.make(method=m)).path))
    clips = method_clip_ranges(method_variants)
    q_tensors = list(dict.fromkeys(layerwise.inputs["tensor"])) if not layerwise.inputs.empty else []
    calib_stats = activation_statistics(data.loaded.proto, data.calib.inputs, q_tensors,
                                        sample_axes=data.calib.sample_axes)
    return _Ranges(clips, calib_stats, range_flags(layerwise.inputs, layerwise.weights))


def _check_calibration(data: _Data, evaluator: Evaluator, calib_stats: dict, layerwise: LayerwiseResult,
                        options: _Options) -> _Checks:
    """Phase 4: outlier calibration samples, calibration vs evaluation statistics and, when asked,
    accuracy against calibration-set size (one evaluation per size).

    Args:
        data: The checked inputs.
        evaluator: The doctor's evaluator.
        calib_stats: Phase 3's calibration statistics.
        layerwise: Phase 2's result (evaluation statistics).
        options: ``outlier_factor`` and ``calib_sizes``.

    Returns:
        The :class:`_Checks`.
    """
    amax = {t: s["sample_amax"] for t, s in calib_stats.items()}
    outliers = calibration_outliers(amax, factor=options.outlier_factor)
    calib_eval = calib_vs_eval(calib_stats, layerwise.inputs)
    curve = None
    if options.calib_sizes:
        curve = accuracy_vs_calibration_size(evaluator, options.calib_sizes, data.base.method,
                                             data.calib.num_samples)
    return _Checks(outliers, calib_eval, curve)


def _find_fix(evaluator: Evaluator, naive: _Naive, ranking: list[dict], ranges: _Ranges, checks: _Checks,
         methods: Sequence[str], passes: Callable[[float], bool], *, search: bool) -> _Fix:
    """Phase 5: search for the fix (when ``search``), and note each confirmed cost on the ranking.

    Args:
        evaluator: The doctor's evaluator.
        naive: Phase 1's result.
        ranking: :func:`rank_candidates` output; members of the fix get ``confirmed_cost`` (the
            metric's unit; ``confirmed_cost_pp`` too for percent metrics).
        ranges: Phase 3's result (flags and clips point at calibration alternatives).
        checks: Phase 4's result (outlier samples to drop).
        methods: Calibration methods that may be tried.
        passes: Whether a metric value meets the target.
        search: Search (the drop exceeds the target and a fix was asked for); else keep the naive variant.

    Returns:
        The :class:`_Fix`.
    """
    found = _Fix(naive.config, naive.int8, {},
                 {"alternatives": [], "steps": [], "evaluations": 0, "base": naive.config.to_dict()})
    if search:
        before = evaluator.evaluations
        found = _Fix(*_search_fix(evaluator, naive.config, naive.int8, ranking, ranges.flags, checks.outliers,
                                  ranges.clips, naive.config.method, methods, passes))
        found.search["evaluations"] = evaluator.evaluations - before
    metric = evaluator.metric
    for step in found.search["steps"]:
        step["top1"] = top1_of(metric, step["value"])
    for r in ranking:
        if r["node"] in found.costs:
            r["confirmed_cost"] = found.costs[r["node"]]
            if metric.unit == "%":
                r["confirmed_cost_pp"] = found.costs[r["node"]]
    return found


def _measure_latencies(data: _Data, naive: _Naive, fixed: Config, fixed_variant, iterations: int) -> dict:
    """Phase 6: ORT CPU latency of FP32, the naive variant and the fix (measured once each).

    Args:
        data: The checked inputs (the model and the timed samples).
        naive: Phase 1's result.
        fixed: The fix's configuration.
        fixed_variant: Its variant, or None when it keeps every node out of INT8 (the FP32 model).
        iterations: Timed runs per measurement.

    Returns:
        ``{"fp32", "int8", "fixed"}`` -> :func:`measure_latency` output.
    """
    axes = data.eval_axes
    lat = {"fp32": measure_latency(data.loaded.path, data.eval, iterations=iterations, sample_axes=axes),
           "int8": measure_latency(naive.variant.ort_path, data.eval, options=naive.variant.ort_session_options,
                                   iterations=iterations, sample_axes=axes)}
    if fixed == naive.config:
        lat["fixed"] = lat["int8"]
    elif fixed_variant is None:
        lat["fixed"] = lat["fp32"]
    else:
        lat["fixed"] = measure_latency(fixed_variant.ort_path, data.eval, options=fixed_variant.ort_session_options,
                                       iterations=iterations, sample_axes=axes)
    return lat


def _set_target(data: _Data, naive: _Naive, options: _Options) -> tuple[Target, list[dict]]:
    """The target the fix must reach, from the FP32 value, and a warning when it is below noise.

    Args:
        data: The checked inputs (the metric, the evaluation samples).
        naive: Phase 1's result (the FP32 value a drop is taken from).
        options: ``target_value`` or ``target_drop``.

    Returns:
        ``(target, warnings)``: warnings as ``{"kind", "message", ...}`` dicts.

    Raises:
        DoctorError: A drop from an infinite FP32 value (SQNR/PSNR), or a metric with no default.
    """
    try:
        target = resolve_target(data.metric, naive.fp32, target=options.target_value, target_drop=options.target_drop)
    except MetricError as err:
        raise DoctorError(str(err)) from None
    warnings = []
    noise = noise_warning(data.metric, data.samples, target)
    if noise is not None:
        warnings.append({"kind": "target-below-noise", **noise})
    if data.metric.unit == "%" and target.source == "target" and 0 < target.minimum <= 1:
        warnings.append({"kind": "target-unit", "message": f"target {target.minimum:g} is in percent for "
                         f"{data.metric.name} ({target.minimum:g} %); for {100 * target.minimum:g} % give "
                         f"{100 * target.minimum:g}."})
    if not target.passes(naive.fp32):
        warnings.append({"kind": "target-above-fp32", "message": f"the FP32 model itself reaches "
                         f"{data.metric.format(naive.fp32)} {data.metric.name}, below the target "
                         f"{data.metric.format(target.minimum)}: no INT8 configuration can meet it."})
    for warning in warnings:
        LOG.warning("doctor: %s", warning["message"])
    return target, warnings


def _examine(data: _Data, options: _Options, phases: _Progress, started: float) -> Diagnosis:
    """Run the phases in order (see the module docstring), reporting each and timing most.

    Args:
        data: The checked inputs.
        options: How to examine.
        phases: The progress task.
        started: :func:`time.perf_counter` when :func:`diagnose` was called.

    Returns:
        The :class:`Diagnosis`.
    """
    metric = data.metric
    phases.phase(PHASES[0], f"{data.samples} evaluation samples, metric {metric.name}")
    evaluator = Evaluator(data.loaded.path, data.calib, data.eval, data.labels, recipe=data.base,
                          workspace=options.workspace, metric=metric, sample_axes=data.eval_axes,
                          batch_size=eval_batch_size(data.eval, data.eval_axes),
                          progress=phases.reporter, report=phases.note, runner=options.runner)
    naive = _naive_accuracy(evaluator, data.base, phases)
    target, warnings = _set_target(data, naive, options)
    phases.phase(PHASES[1], f"FP32 {metric.format(naive.fp32)}, naive INT8 {metric.format(naive.int8)} {metric.name}")
    timings: dict[str, float] = {}
    with _timed(timings, "layerwise"):
        layerwise = _compare_layers(data, naive, evaluator, options.layerwise_samples, phases.reporter)
    phases.phase(PHASES[2], f"{len(layerwise.quantized)} quantized nodes, methods {', '.join(options.methods)}")
    with _timed(timings, "ranges"):
        ranges = _examine_ranges(data, naive, evaluator, layerwise, options.methods)
    phases.phase(PHASES[3])
    with _timed(timings, "calibration_checks"):
        checks = _check_calibration(data, evaluator, ranges.calib_stats, layerwise, options)

    ranking = rank_candidates(layerwise.nodes)
    needed = not target.passes(naive.int8)
    phases.phase(PHASES[4], "needed" if needed else "not needed: the naive variant meets the target")
    fixed = _find_fix(evaluator, naive, ranking, ranges, checks, options.methods, target.passes,
                      search=needed and options.fix)
    culprits = find_culprits(data.loaded.proto, layerwise, ranges.flags, ranking, fix_exclude=fixed.config.exclude,
                             costs=fixed.costs, outliers=checks.outliers, metric=metric.name, unit=metric.unit)
    all_excluded = set(fixed.config.exclude) >= set(layerwise.quantized)  # the fix is the FP32 model
    fixed_variant = None if all_excluded else evaluator.variant(fixed.config)
    fix_info = {"config": fixed.config.to_dict(), "value": fixed.value, "accuracy": top1_of(metric, fixed.value),
                "needed": needed,
                "path": str(fixed_variant.path) if fixed_variant is not None else str(data.loaded.path)}

    phases.phase(PHASES[5], "on" if options.latency else "skipped")
    with _timed(timings, "latency"):
        lat = (_measure_latencies(data, naive, fixed.config, fixed_variant, options.latency_iterations)
               if options.latency else {})
    timings["evaluations"] = sum(e.seconds for e in evaluator.log)
    phases.close(f"{evaluator.evaluations} full evaluations")
    return Diagnosis(
        model=str(data.loaded.path), recipe=data.base.to_dict(), target_drop=target.drop,
        fp32_accuracy=top1_of(metric, naive.fp32), int8_accuracy=top1_of(metric, naive.int8), layerwise=layerwise,
        calib_stats=ranges.calib_stats, clips=ranges.clips, flags=ranges.flags, calib_outliers=checks.outliers,
        calib_eval=checks.calib_eval, calib_curve=checks.curve, ranking=ranking, search=fixed.search,
        culprits=culprits, fix=fix_info, latency=lat, evaluations=evaluator.evaluations,
        evaluation_log=evaluator.log_dicts(), variants={"naive": str(naive.variant.path), "fixed": fix_info["path"]},
        seconds=time.perf_counter() - started, eval_samples=data.samples, timings=timings,
        metric=metric.to_dict(), fp32_value=naive.fp32, int8_value=naive.int8, target=target, warnings=warnings)


def diagnose(
    model,
    calib,
    eval,  # noqa: A002  (the CLI's name)
    *,
    target_drop: float | None = None,
    target: float | None = None,
    metric=None,
    recipe=None,
    method: str | None = None,
    per_channel: bool | None = None,
    layerwise_samples: int | None = DEFAULT_SAMPLES,
    methods: Sequence[str] = METHODS,
    calib_sizes: Sequence[int] | None = None,
    outlier_factor: float = 4.0,
    latency: bool = True,
    latency_iterations: int = 30,
    fix: bool = True,
    workspace=None,
    progress=None,
    runner: Callable | None = None,
) -> Diagnosis:
    """Examine a model's INT8 variant: accuracy, layerwise error, ranges, calibration, culprits, fix.

    Args:
        model: The FP32 ONNX model file.
        calib: Calibration data: an ``.npz`` (one array per model input) or a dict of arrays.
        eval: Evaluation data: an ``.npz`` or dict with the inputs and, optionally, ``labels``
            (``[N]`` classes, ``[N, C]`` one-hot, or ``[N, T]`` per position).
        target_drop: The allowed drop from the FP32 model's value, in the metric's unit (0.5 =
            half a point of top-1); None with no ``target``: the metric's default (0.5 points of
            top1/agreement, 0.001 of cosine; SQNR and PSNR have a default minimum, 30 and 40 dB).
        target: The minimum metric value the fix must reach, in its unit (instead of a drop).
        metric: A :mod:`~workbench.analysis.metrics` name (``top1``, ``agreement``, ``cosine``,
            ``sqnr``, ``psnr``, ``python:module:function``) or :class:`Metric`; None: top1 with
            labels, else agreement (sqnr for outputs that are not class scores).
        recipe: The naive recipe (a :class:`workbench.precision.Recipe`, dict or None for
            ``Recipe("int8", tool="onnxruntime")``: minmax, per-channel weights).
        method: Override the recipe's calibration method.
        per_channel: Override the recipe's per-channel weights.
        layerwise_samples: Evaluation samples the layerwise pass compares (None: all).
        methods: Calibration methods whose clipping ranges are shown (and tried as a fix when
            they differ and the ranges are flagged).
        calib_sizes: Calibration-set sizes to measure the metric at (one evaluation each); None
            skips the curve.
        outlier_factor: A calibration sample is an outlier when its max ``|x|`` on some
            quantized tensor exceeds this many times the 90th percentile of all samples'.
        latency: Measure ORT latency of FP32, naive INT8 and the fix.
        latency_iterations: Timed runs per latency measurement.
        fix: Search for a fix when the naive variant misses the target.
        workspace: Folder for variants (default: the workspace's ``variants``).
        progress: ``None`` (silent), ``"log"`` (INFO lines per phase, evaluation and quarter of
            the long passes on the ``workbench`` logger, as the CLI shows), ``"tqdm"`` (progress
            bars, for notebooks) or a callable taking each :class:`~workbench.progress.ProgressUpdate`.

    Returns:
        The :class:`Diagnosis`.

    Raises:
        ModelLoadError: The model cannot be loaded.
        InputDataError, DoctorError, MetricError: Bad data, recipe, metric or target (the
            message names the fix).
    """
    started = time.perf_counter()
    unit = get_metric(metric).unit if metric is not None else "%"
    target_drop, target = _check_target(target_drop, target, unit)
    if metric is not None:
        try:
            check_drop_possible(get_metric(metric), target_drop)
        except MetricError as err:
            raise DoctorError(str(err)) from None
    phases = _Progress(progress)
    data = _load_data(model, calib, eval, recipe=recipe, method=method, per_channel=per_channel, methods=methods,
                      calib_sizes=calib_sizes, metric=metric)
    options = _Options(target_drop, target, tuple(methods), layerwise_samples, calib_sizes, outlier_factor, latency,
                       latency_iterations, fix, workspace, runner)
    diagnosis = _examine(data, options, phases, started)
    diagnosis.data = {"calibration": _data_source(calib), "evaluation": _data_source(eval)}
    return diagnosis


def _data_source(data) -> str:
    """Where data came from, for a saved plan: an absolute path, or ``"arrays"``."""
    return str(Path(data).expanduser().resolve()) if isinstance(data, (str, Path)) else "arrays"


def _search_fix(evaluator, naive_config, int8_acc, ranking, flags, outliers, clips, base_method, methods, passes):
    """Calibration alternatives the evidence points at, then the exclusion search."""
    candidates = []  # (config, what, why): independent, so evaluated together (in parallel with a runner)
    if outliers:
        candidates.append((Config.make(method=base_method, drop_samples=[o["sample"] for o in outliers]),
                           "drop outlier calibration samples",
                           f"{len(outliers)} calibration sample(s) far outside the rest"))
    flagged = {(f["node"], f["tensor"]) for f in flags if f["kind"] in ("heavy-tail", "saturation", "channel-outlier")}
    if flagged:
        candidates += [(Config.make(method=m), f"method {m}",
                        f"{m} clips a flagged range at least 2x tighter than {base_method}")
                       for m in methods if m != base_method and method_helps(clips, base_method, m, flagged)]
    values = evaluator.evaluate_many([c for c, _, _ in candidates], [w for _, w, _ in candidates])
    alternatives = [{"config": config.to_dict(), "value": value, "top1": top1_of(evaluator.metric, value),
                     "passed": passes(value), "why": why}
                    for (config, _, why), value in zip(candidates, values)]
    tried: list[tuple[Config, float]] = [(naive_config, int8_acc)] + [(c, v) for (c, _, _), v in zip(candidates, values)]
    passing = [(c, v) for c, v in tried[1:] if passes(v)]
    if passing:
        config, value = max(passing, key=lambda cv: cv[1])
        return config, value, {}, {"alternatives": alternatives, "steps": [], "base": config.to_dict()}
    # exclusions on the base (with outlier samples dropped when that helped)
    start_config, start_acc = naive_config, int8_acc
    if outliers and tried[1][1] > int8_acc:
        start_config, start_acc = tried[1]
    candidates = [r["node"] for r in ranking]

    def with_exclude(exclude):
        return Config.make(exclude=exclude, method=start_config.method, drop_samples=start_config.drop_samples)

    result = search_exclusions(candidates, lambda ex: evaluator(with_exclude(ex)), passes,
                               known=lambda ex: evaluator.known(with_exclude(ex)))
    info = {"alternatives": alternatives, "steps": result.steps, "base": start_config.to_dict()}
    if result.exclude is None:  # only a target the FP32 model itself misses: keep the start
        return start_config, start_acc, {}, info
    config = with_exclude(result.exclude)
    costs = confirmed_costs(result.steps, result.exclude, start_acc)
    return config, result.value, costs, info


def method_helps(clips: pd.DataFrame, base: str, other: str, flagged, *, gain: float = 2.0) -> bool:
    """Whether ``other`` clips some flagged (node, tensor) at least ``gain`` times tighter than ``base``.

    A tighter clip gives the other values ``log2(gain)`` more bits; a method that clips a
    flagged range less than 2x tighter cannot rescue values starved of levels, so the doctor
    does not spend an evaluation on it.

    Args:
        clips: :func:`method_clip_ranges` output.
        base, other: Method names.
        flagged: (node, tensor) pairs with range flags.
        gain: How many times tighter counts.

    Returns:
        True when some flagged clip shrinks by ``gain`` or more.
    """
    if clips.empty:
        return False
    table = clips.set_index(["node", "tensor", "method"])["clip"]
    for node, tensor in flagged:
        a, b = table.get((node, tensor, base)), table.get((node, tensor, other))
        if a is not None and b is not None and b > 0 and a / b >= gain:
            return True
    return False


def accuracy_vs_calibration_size(evaluator: Evaluator, sizes: Sequence[int], method: str, available: int) -> list[dict]:
    """The metric of the recipe calibrated on the first N samples, for each N (one evaluation each).

    Args:
        evaluator: The doctor's evaluator (counts the evaluations).
        sizes: Calibration-set sizes; sizes above the available count are skipped.
        method: Calibration method.
        available: Calibration samples available.

    Returns:
        ``{"num_samples", "value", "top1"}`` per size, ascending (``top1`` a fraction when the
        metric is top1, else None).
    """
    bad = [s for s in sizes if int(s) < 1]
    if bad:
        raise DoctorError(f"calibration sizes must be at least 1, got {bad}.")
    counts = sorted({int(s) for s in sizes if int(s) <= available})
    configs = [Config.make(method=method, num_samples=None if n == available else n) for n in counts]
    values = evaluator.evaluate_many(configs, [f"calibration size {n}" for n in counts])  # together on a runner
    return [{"num_samples": n, "value": value, "top1": top1_of(evaluator.metric, value)}
            for n, value in zip(counts, values)]


