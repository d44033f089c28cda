"""Metrics: how good a variant's outputs are, as one small interface for every task.

A :class:`Metric` is a function of the variant's outputs, the reference's (the FP32 model's)
outputs and the labels when there are any; higher is always better; it has a name and a unit.
``evaluate``, the sweep, the results table, the tradeoff plot and the doctor all use it.

Built in (:data:`BUILT_IN`), each on the model's first output:

* ``top1`` (%): the share of samples whose arg-max over the last axis is the label: labels
  ``[N]`` (or one-hot ``[N, C]``) for ``[N, C]`` scores, and ``[N, T]`` for per-position
  ``[N, T, C]`` scores (a negative label marks a padded position, which is not counted).
* ``agreement`` (%): the share of arg-maxes over the last axis that equal the reference's, per
  position for sequence outputs ``[N, T, C]``; no labels needed.
* ``cosine``: the mean over samples of the cosine similarity of each sample's output with the
  reference's (1 = same direction).
* ``sqnr`` (dB): ``10 log10(sum r^2 / sum (v - r)^2)`` over the whole data set.
* ``psnr`` (dB): ``10 log10(range^2 / mean (v - r)^2)``, ``range`` = the reference's max - min
  over the data set (torchmetrics' default when no data range is given).
* ``python:module:function`` (or ``python:path/to/file.py:function``): a user's own,
  ``function(outputs, reference, labels)`` -> a number (the batch's mean) or one number per
  sample; the values are averaged over samples. Optional attributes on the function:
  ``unit``, ``proportion`` (a share of samples: binomial noise applies), ``needs_labels``,
  ``needs_reference``, ``default_drop``, ``default_target``.

Metrics stream: :meth:`Metric.accumulator` adds one batch at a time (memory: one batch), and
the value over many batches equals the value over all samples at once.

Example::

    metric = get_metric("agreement")
    acc = metric.accumulator()
    for batch in batches:
        acc.add(variant_outputs, reference_outputs, labels)
    acc.value, metric.unit      # 99.2, "%"
    target = resolve_target(metric, reference_value=100.0, target_drop=0.5)
    target.passes(acc.value)
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from workbench.errors import WorkbenchError

PERCENT = "%"
DB = "dB"
PYTHON_PREFIX = "python:"
SPEC_HELP = ("choose top1, agreement, cosine, sqnr, psnr, or python:module:function for your own "
             "(function(outputs, reference, labels) -> float)")


class MetricError(WorkbenchError, ValueError):
    """A metric that cannot be made or computed as asked; the message says why and the fix."""


# --------------------------------------------------------------------------------------------
# Helpers shared with the agreement figures of evaluate
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


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One way to score a variant's outputs; higher is better.

    A metric is two functions: ``batch(outputs, reference, labels) -> {name: number}`` gives one
    batch's partial sums, ``finish(sums) -> float`` turns the sums over every batch into the
    value. Sums add up across batches, except the keys in ``maxima``/``minima`` (a running max
    or min).

    Attributes:
        name: The name users give (``"top1"``, ``"python:mymetrics:ctc_match"``).
        unit: ``"%"``, ``"dB"``, ``""`` (a pure number) or the user's.
        description: One line for reports.
        batch, finish: See above.
        needs_labels: Refuse data without labels.
        needs_reference: Refuse to run without a reference (the FP32 model).
        uses_reference: Pass the reference's outputs when there is one (user metrics).
        proportion: The value is a share of samples (positions) that are right, in ``unit``
            ("%" or a fraction): the binomial standard error tells its noise.
        default_drop: The allowed drop from the reference's value when no target is given.
        default_target: The minimum value when no target is given and a drop cannot be used
            (the reference's own value is infinite, as SQNR against itself).
        maxima, minima: Sum keys combined by max / min instead of addition.
    """

    name: str
    unit: str
    description: str
    batch: Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray] | None, np.ndarray | None], dict]
    finish: Callable[[Mapping[str, float]], float]
    needs_labels: bool = False
    needs_reference: bool = False
    uses_reference: bool = False
    proportion: bool = False
    default_drop: float | None = None
    default_target: float | None = None
    maxima: tuple[str, ...] = ()
    minima: tuple[str, ...] = ()

    def accumulator(self) -> "MetricAccumulator":
        """An empty accumulator: ``add`` batches, read ``value``."""
        return MetricAccumulator(self)

    def __call__(self, outputs, reference=None, labels=None) -> float:
        """The metric on one set of outputs (all samples at once)."""
        acc = self.accumulator()
        acc.add(outputs, reference, labels)
        return acc.value

    @property
    def wants_reference(self) -> bool:
        """Whether a reference's outputs are passed to it (needed, or used when there)."""
        return self.needs_reference or self.uses_reference

    def to_dict(self) -> dict:
        """``name``, ``unit``, ``description``, ``proportion``, ``needs_labels``, ``needs_reference``."""
        return {"name": self.name, "unit": self.unit, "description": self.description,
                "proportion": self.proportion, "needs_labels": self.needs_labels,
                "needs_reference": self.needs_reference}

    def format(self, value) -> str:
        """``value`` with its unit, for messages (``"97.50 %"``, ``"31.2 dB"``, ``"0.9990"``)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        if math.isinf(value):
            return f"{'' if value > 0 else '-'}inf{' ' + self.unit if self.unit else ''}"
        if self.unit == PERCENT:
            return f"{value:.2f} %"
        if self.unit == DB:
            return f"{value:.2f} dB"
        return f"{value:.4g}{' ' + self.unit if self.unit else ''}"


@dataclass
class MetricAccumulator:
    """A metric's partial sums over the batches seen so far (see :class:`Metric`).

    Attributes:
        metric: The metric.
        sums: Key -> running sum (or max/min).
        samples: Samples seen (the first dimension of each batch's first output).
    """

    metric: Metric
    sums: dict = field(default_factory=dict)
    samples: int = 0

    def add(self, outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray] | None = None,
            labels: np.ndarray | None = None) -> None:
        """Add one batch.

        Args:
            outputs: The variant's output name -> array (samples first).
            reference: The reference's outputs on the same batch, or None.
            labels: The batch's labels, or None.

        Raises:
            MetricError: The metric needs labels or a reference that are missing, or cannot be
                computed on these outputs (the message names the output and its shape).
        """
        metric = self.metric
        if metric.needs_labels and labels is None:
            raise MetricError(f"metric {metric.name} compares with labels, and the data has none: save the labels "
                              "beside the inputs (numpy.savez(path, ..., labels=...)) or choose a metric that "
                              "compares with the FP32 reference (agreement, cosine, sqnr, psnr).")
        if metric.needs_reference and reference is None:
            raise MetricError(f"metric {metric.name} compares with a reference model's outputs, and none was given: "
                              "give the FP32 model as the reference (evaluate --reference FP32.onnx).")
        part = metric.batch(outputs, reference if metric.wants_reference else None, labels)
        for key, value in part.items():
            value = float(value)
            if key not in self.sums:
                self.sums[key] = value
            elif key in metric.maxima:
                self.sums[key] = max(self.sums[key], value)
            elif key in metric.minima:
                self.sums[key] = min(self.sums[key], value)
            else:
                self.sums[key] += value
        first = first_output(outputs, metric.name)[1]
        self.samples += int(first.shape[0]) if first.ndim else 1

    @property
    def value(self) -> float:
        """The metric over every batch added (NaN before any)."""
        return float(self.metric.finish(self.sums)) if self.sums else float("nan")

    @property
    def trials(self) -> int | None:
        """For proportion metrics, the independent trials (samples) behind the value; else None."""
        return self.samples if self.metric.proportion else None


def first_output(outputs: Mapping[str, np.ndarray], metric: str = "metric") -> tuple[str, np.ndarray]:
    """The first output (the one built-in metrics score): ``(name, array)``.

    Raises:
        MetricError: No outputs.
    """
    if not outputs:
        raise MetricError(f"metric {metric}: the model returned no outputs.")
    name = next(iter(outputs))
    return name, np.asarray(outputs[name])


# --------------------------------------------------------------------------------------------
# Built-in metrics
# --------------------------------------------------------------------------------------------


def _share(sums: Mapping[str, float]) -> float:
    return 100.0 * sums["hits"] / sums["count"] if sums.get("count") else float("nan")


def _scores(outputs, metric: str) -> tuple[str, np.ndarray]:
    """The first output as class scores on its last axis, or a one-line refusal."""
    name, scores = first_output(outputs, metric)
    if scores.ndim < 2 or scores.shape[-1] < 2:
        raise MetricError(
            f"metric {metric} takes the arg-max over the last axis of output '{name}', which has shape "
            f"{list(scores.shape)}: it needs class scores [N, C] or [N, T, C] with C >= 2. For other outputs "
            "(a probability per sample, an image, a map) use --metric sqnr, psnr or cosine.")
    return name, scores


def sequence_labels(labels: np.ndarray, scores_shape: Sequence[int], output: str = "output") -> np.ndarray:
    """Labels shaped like the scores without their class axis: ``[N]`` for ``[N, C]``, ``[N, T]``
    for ``[N, T, C]``; one-hot ``[N, C]`` rows become class indices.

    Args:
        labels: The batch's labels.
        scores_shape: The scores' shape.
        output: The output's name, for messages.

    Returns:
        Integer labels (negative = a position not counted).

    Raises:
        MetricError: Labels that fit neither form, or non-integer labels.
    """
    labels = np.asarray(labels)
    shape = tuple(scores_shape)
    if labels.shape == shape and len(shape) == 2:  # one-hot rows
        labels = labels.argmax(axis=-1)
    if labels.shape != shape[:-1]:
        raise MetricError(
            f"labels shaped {list(labels.shape)} do not fit output '{output}' {list(shape)}: top1 needs one class "
            f"index per sample ([N]) for [N, C] scores, or one per position ([N, T]) for [N, T, C] scores "
            "(negative labels mark padded positions).")
    if not np.issubdtype(labels.dtype, np.integer):
        if not (np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels))
                and np.all(labels == np.round(labels))):
            raise MetricError(f"labels must be integer class indices, got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.size and labels.max() >= shape[-1]:
        raise MetricError(f"labels go up to {int(labels.max())} but output '{output}' scores {shape[-1]} classes; "
                          "check that the labels belong to this model.")
    return labels


def _top1_batch(outputs, reference, labels) -> dict:
    name, scores = _scores(outputs, "top1")
    labels = sequence_labels(labels, scores.shape, name)
    counted = labels >= 0
    hits = (scores.argmax(axis=-1) == labels) & counted
    return {"hits": int(hits.sum()), "count": int(counted.sum())}


def _agreement_batch(outputs, reference, labels) -> dict:
    name, scores = _scores(outputs, "agreement")
    ref = np.asarray(reference[name])
    return {"hits": int((scores.argmax(axis=-1) == ref.argmax(axis=-1)).sum()), "count": int(ref[..., 0].size)}


def _cosine_batch(outputs, reference, labels) -> dict:
    name, out = first_output(outputs, "cosine")
    ref = np.asarray(reference[name])
    if out.ndim == 0:
        out, ref = out.reshape(1), ref.reshape(1)
    with np.errstate(all="ignore"):
        cos = cosine_per_sample(out.reshape(out.shape[0], -1), ref.reshape(ref.shape[0], -1))
    return {"total": float(cos.sum()), "count": int(cos.size)}


def _error_batch(outputs, reference) -> tuple[np.ndarray, np.ndarray]:
    name, out = first_output(outputs, "sqnr")
    with np.errstate(all="ignore"):
        return out.astype(np.float64), np.asarray(reference[name], np.float64)


def _sqnr_batch(outputs, reference, labels) -> dict:
    v, r = _error_batch(outputs, reference)
    with np.errstate(all="ignore"):
        return {"signal": float(np.sum(r * r)), "noise": float(np.sum((v - r) ** 2))}


def _psnr_batch(outputs, reference, labels) -> dict:
    v, r = _error_batch(outputs, reference)
    with np.errstate(all="ignore"):
        return {"noise": float(np.sum((v - r) ** 2)), "count": int(r.size),
                "peak": float(r.max()) if r.size else -math.inf, "floor": float(r.min()) if r.size else math.inf}


def _psnr(sums) -> float:
    data_range = sums["peak"] - sums["floor"]
    if not sums.get("count") or not math.isfinite(data_range):
        return float("nan")
    if data_range == 0:
        data_range = abs(sums["peak"]) or 1.0
    return sqnr_db(data_range ** 2, sums["noise"] / sums["count"])


BUILT_IN: dict[str, Metric] = {m.name: m for m in (
    Metric("top1", PERCENT, "share of samples (positions) whose arg-max is the label", _top1_batch, _share,
           needs_labels=True, proportion=True, default_drop=0.5),
    Metric("agreement", PERCENT, "share of arg-maxes (per position for [N, T, C]) equal to the reference's",
           _agreement_batch, _share, needs_reference=True, proportion=True, default_drop=0.5),
    Metric("cosine", "", "mean per-sample cosine similarity with the reference", _cosine_batch,
           lambda s: s["total"] / s["count"] if s.get("count") else float("nan"), needs_reference=True,
           default_drop=0.001),
    Metric("sqnr", DB, "signal-to-quantization-noise ratio against the reference", _sqnr_batch,
           lambda s: sqnr_db(s["signal"], s["noise"]), needs_reference=True, default_target=30.0),
    Metric("psnr", DB, "peak signal-to-noise ratio against the reference (peak: its data range)", _psnr_batch,
           _psnr, needs_reference=True, default_target=40.0, maxima=("peak",), minima=("floor",)),
)}


# --------------------------------------------------------------------------------------------
# User metrics: python:module:function
# --------------------------------------------------------------------------------------------


def _load_function(spec: str) -> Callable:
    """Import ``module:function`` (or ``path/to/file.py:function``) from a ``python:`` spec."""
    body = spec[len(PYTHON_PREFIX):]
    module_name, _, function_name = body.rpartition(":")
    if not module_name or not function_name:
        raise MetricError(f"metric {spec!r}: write python:module:function (e.g. python:mymetrics:ctc_match), "
                          "the module importable or a .py file.")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser()
            if not path.is_file():
                raise MetricError(f"metric {spec!r}: {path} is not a file.")
            loader_spec = importlib.util.spec_from_file_location(f"workbench_user_metric_{path.stem}", path)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            added = "" not in sys.path and "." not in sys.path
            if added:  # a module beside the user's working directory, as `python -m` would find it
                sys.path.insert(0, "")
            try:
                module = importlib.import_module(module_name)
            finally:
                if added:
                    sys.path.remove("")
    except MetricError:
        raise
    except Exception as err:  # the user's module: any import error is theirs to fix
        raise MetricError(f"metric {spec!r}: cannot import {module_name} ({type(err).__name__}: {err}).") from err
    function = getattr(module, function_name, None)
    if not callable(function):
        raise MetricError(f"metric {spec!r}: {module_name} has no function {function_name!r}.")
    return function


def user_metric(spec: str) -> Metric:
    """A :class:`Metric` from ``python:module:function``.

    The function takes ``(outputs, reference, labels)`` (dicts of output name -> batch array,
    the reference's or None, the batch's labels or None) and returns the batch's mean or one
    value per sample; higher must be better. Its optional attributes (``unit``, ``proportion``,
    ``needs_labels``, ``needs_reference``, ``default_drop``, ``default_target``) describe it.

    Args:
        spec: ``"python:module:function"`` or ``"python:path/to/file.py:function"``.

    Returns:
        The metric (its values averaged over samples).

    Raises:
        MetricError: The module or function cannot be found.
    """
    function = _load_function(spec)

    def batch(outputs, reference, labels) -> dict:
        _, first = first_output(outputs, spec)
        count = int(first.shape[0]) if first.ndim else 1
        try:
            value = function(outputs, reference, labels)
        except MetricError:
            raise
        except Exception as err:
            raise MetricError(f"metric {spec} failed on a batch of {count}: {type(err).__name__}: {err}") from err
        values = np.asarray(value, dtype=np.float64)
        if values.ndim == 0:
            return {"total": float(values) * count, "count": count}
        if values.shape != (count,):
            raise MetricError(f"metric {spec} returned shape {list(values.shape)} for a batch of {count}; return one "
                              "number (the batch's mean) or one per sample.")
        return {"total": float(values.sum()), "count": count}

    def number(attribute):
        value = getattr(function, attribute, None)
        return None if value is None else float(value)

    return Metric(
        spec, str(getattr(function, "unit", "")), (function.__doc__ or spec).strip().splitlines()[0], batch,
        lambda s: s["total"] / s["count"] if s.get("count") else float("nan"),
        needs_labels=bool(getattr(function, "needs_labels", False)),
        needs_reference=bool(getattr(function, "needs_reference", False)),
        uses_reference=getattr(function, "needs_reference", None) is not False,
        proportion=bool(getattr(function, "proportion", False)),
        default_drop=number("default_drop"), default_target=number("default_target"))


def get_metric(spec) -> Metric:
    """The metric a name or spec means.

    Args:
        spec: A built-in name (``top1``, ``agreement``, ``cosine``, ``sqnr``, ``psnr``),
            ``python:module:function``, or a :class:`Metric` (returned as it is).

    Returns:
        The :class:`Metric`.

    Raises:
        MetricError: An unknown name or a spec that cannot be imported, in one line.
    """
    if isinstance(spec, Metric):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise MetricError(f"metric must be a name, got {spec!r}; {SPEC_HELP}.")
    spec = spec.strip()
    if spec.startswith(PYTHON_PREFIX):
        return user_metric(spec)
    if spec.lower() in BUILT_IN:
        return BUILT_IN[spec.lower()]
    raise MetricError(f"unknown metric {spec!r}; {SPEC_HELP}.")


def default_metric(has_labels: bool, output_shape: Sequence | None = None) -> str:
    """The metric used when none is asked for: ``top1`` with labels and class scores; else
    ``agreement`` for class scores (``[N, C]``, ``[N, T, C]``), and ``sqnr`` for outputs whose last
    axis is not a class axis (a probability per sample ``[N, 1]``, an image or a map
    ``[N, C, H, W]``), labels or not.

    Args:
        has_labels: Whether the data has labels.
        output_shape: The first output's shape if known (symbolic dimensions as str or None).

    Returns:
        A built-in metric name.
    """
    class_scores = True
    if output_shape is not None:
        shape = list(output_shape)
        last = shape[-1] if shape else None
        class_scores = len(shape) in (2, 3) and not (isinstance(last, (int, np.integer)) and last < 2)
    if not class_scores:
        return "sqnr"
    return "top1" if has_labels else "agreement"


# --------------------------------------------------------------------------------------------
# Targets and noise
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a variant's metric value must reach.

    Attributes:
        metric: The metric's name.
        unit: Its unit.
        minimum: The lowest passing value.
        reference_value: The reference's value it was set from (None for an absolute target).
        drop: The allowed drop from ``reference_value`` (None for an absolute target).
        source: ``"target"`` (an absolute value was given), ``"target_drop"``, or ``"default"``.
    """

    metric: str
    unit: str
    minimum: float
    reference_value: float | None = None
    drop: float | None = None
    source: str = "default"

    def passes(self, value) -> bool:
        """Whether ``value`` reaches the target (NaN never does)."""
        return value is not None and not math.isnan(value) and value >= self.minimum - 1e-9

    def to_dict(self) -> dict:
        """JSON-safe: ``metric``, ``unit``, ``minimum``, ``reference_value``, ``drop``, ``source``."""
        def plain(v):
            return None if v is None or not math.isfinite(v) else float(v)
        return {"metric": self.metric, "unit": self.unit, "minimum": plain(self.minimum),
                "reference_value": plain(self.reference_value), "drop": plain(self.drop), "source": self.source}


def resolve_target(metric: Metric, reference_value: float | None, *, target: float | None = None,
                   target_drop: float | None = None) -> Target:
    """The minimum value a variant must reach, from an absolute ``target`` or an allowed drop.

    Args:
        metric: The metric.
        reference_value: The reference's (FP32's) value of the metric, if known: the drop is
            taken from it (for reference metrics it is their value at identical outputs).
        target: The minimum value, in the metric's unit.
        target_drop: The allowed drop from ``reference_value``, in the metric's unit.

    Returns:
        The :class:`Target`; with neither given, the metric's default drop or default target.

    Raises:
        MetricError: Both given, a value that is not a finite number (a negative drop), or a
            drop from an infinite reference value (SQNR of FP32 against itself).
    """
    if target is not None and target_drop is not None:
        raise MetricError("give a target value or an allowed drop (--target or --target-drop), not both.")
    for label, value in (("target", target), ("target drop", target_drop)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise MetricError(f"the {label} must be a finite number in the metric's unit ({metric.unit or 'none'}), "
                              f"got {value!r}.")
    if target is not None:
        return Target(metric.name, metric.unit, float(target), reference_value, None, "target")
    source = "target_drop"
    if target_drop is None:
        finite = reference_value is not None and math.isfinite(reference_value)
        if metric.default_drop is not None and (finite or metric.default_target is None):
            target_drop, source = metric.default_drop, "default"
        elif metric.default_target is not None:
            return Target(metric.name, metric.unit, metric.default_target, reference_value, None, "default")
        else:
            raise MetricError(f"metric {metric.name} has no default target: give --target (its minimum value) or "
                              f"--target-drop (the allowed drop from FP32), in its unit ({metric.unit or 'none'}).")
    if target_drop < 0:
        raise MetricError(f"the target drop must be zero or more (in {metric.unit or 'the metric unit'}), "
                          f"got {target_drop}.")
    if reference_value is None or not math.isfinite(reference_value):
        raise MetricError(
            f"the FP32 value of {metric.name} is {metric.format(reference_value)}, so a drop from it means nothing: "
            f"give --target, the minimum {metric.name} the variant must reach"
            + (f" (e.g. {metric.default_target:g} {metric.unit})." if metric.default_target is not None else "."))
    return Target(metric.name, metric.unit, float(reference_value) - float(target_drop), float(reference_value),
                  float(target_drop), source)


def _fraction(value: float, unit: str) -> float:
    return value / 100.0 if unit == PERCENT else value


def binomial_stderr(value: float, trials: int, unit: str = PERCENT) -> float:
    """The binomial standard error of a share measured on ``trials`` samples, in ``unit``.

    Args:
        value: The share (in ``unit``: percent or a fraction).
        trials: The samples behind it.
        unit: ``"%"`` or anything else for a fraction.

    Returns:
        ``sqrt(p (1 - p) / n)`` in the same unit; a share of exactly 0 or 1 counts as one sample
        away from it (the smallest difference the set can show).
    """
    n = max(int(trials), 1)
    p = min(max(_fraction(value, unit), 0.0), 1.0)
    if p * (1 - p) == 0:
        p = 1.0 - 1.0 / n if n > 1 else 0.5
    se = math.sqrt(p * (1 - p) / n)
    return 100.0 * se if unit == PERCENT else se


def samples_to_resolve(value: float, margin: float, unit: str = PERCENT) -> int:
    """How many samples make the binomial standard error of ``value`` no larger than ``margin``.

    Args:
        value: The share (percent or fraction, as ``unit``).
        margin: The difference to resolve, in the same unit (> 0).
        unit: ``"%"`` or anything else for a fraction.

    Returns:
        The sample count ``ceil(p (1 - p) / margin^2)`` (at least 1).
    """
    p = min(max(_fraction(value, unit), 0.0), 1.0)
    m = _fraction(margin, unit)
    if m <= 0:
        return sys.maxsize
    variance = p * (1 - p) if p * (1 - p) > 0 else 0.25
    return max(1, math.ceil(variance / (m * m)))


def noise_warning(metric: Metric, trials: int, target: Target) -> dict | None:
    """A warning when the allowed drop is below the evaluation set's noise (proportion metrics).

    The allowed drop is ``reference value - target minimum``; the noise is the binomial standard
    error of a share at the target (the value a fix must be told apart from FP32 at) measured on
    ``trials`` samples.

    Args:
        metric: The metric.
        trials: Samples in the evaluation set.
        target: The target (with the reference value it was set from).

    Returns:
        ``{"message", "stderr", "allowed_drop", "samples", "samples_needed"}`` or None (not a
        proportion metric, an absolute target without a finite reference value, or a drop at
        least as large as the noise).
    """
    if not metric.proportion or target.reference_value is None or not math.isfinite(target.reference_value):
        return None
    p = target.minimum
    stderr = binomial_stderr(p, trials, metric.unit)
    allowed = target.reference_value - target.minimum
    if allowed >= stderr:
        return None
    needed = samples_to_resolve(p, allowed, metric.unit) if allowed > 0 else None
    points = "points" if metric.unit == PERCENT else metric.unit or "units"
    message = (f"the target allows a drop of {allowed:.3g} {points} of {metric.name}, below the evaluation set's noise: "
               f"the binomial standard error of {metric.format(p)} on {trials} samples is {stderr:.3g} {points}, so "
               "the fix may keep nodes out of INT8 to chase noise. ")
    message += (f"About {needed} samples would resolve a drop of {allowed:.3g} {points}; or allow a drop of at "
                f"least {stderr:.2g}." if needed else f"Allow a drop of at least {stderr:.2g} {points}.")
    return {"message": message, "stderr": stderr, "allowed_drop": allowed, "samples": int(trials),
            "samples_needed": needed}


def check_drop_possible(metric: Metric, target_drop) -> None:
    """Refuse, before anything runs, a drop from a value known to be infinite (SQNR, PSNR of the
    reference against itself).

    Raises:
        MetricError: Naming ``--target`` as the fix.
    """
    known = reference_value(metric)
    if target_drop is not None and known is not None and not math.isfinite(known):
        raise MetricError(
            f"the FP32 value of {metric.name} is infinite (the reference against itself), so a drop from it means "
            f"nothing: give --target, the minimum {metric.name} the variant must reach"
            + (f" (e.g. {metric.default_target:g} {metric.unit})." if metric.default_target is not None else "."))


def reference_value(metric: Metric) -> float | None:
    """A reference metric's value for the reference itself (identical outputs): 100 % agreement,
    cosine 1, infinite SQNR/PSNR; None for metrics measured against labels (top1, user's)."""
    return {"agreement": 100.0, "cosine": 1.0, "sqnr": math.inf, "psnr": math.inf}.get(metric.name) \
        if metric.name in BUILT_IN else None


def describe(metric: Metric, value: Any) -> dict:
    """``{"metric", "metric_value", "metric_unit"}`` for reports (non-finite values as None)."""
    v = None if value is None or not math.isfinite(float(value)) else float(value)
    return {"metric": metric.name, "metric_value": v, "metric_unit": metric.unit}
