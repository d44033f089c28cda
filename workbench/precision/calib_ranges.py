"""Range methods: ORT's ranges from the reductions the calibration passes return.

Given pass 1's per-tensor statistics (:class:`Stats`), these reproduce what ORT's calibrators
compute: ``minmax`` directly, ``entropy`` at one candidate and ``distribution``'s range from the
histogram edges alone, ``percentile`` from the exact tails kept by ``TopK``, and anything else
from full histograms handed to ORT's own ``HistogramCollector``
(:func:`thresholds_from_histograms`). :mod:`workbench.precision.calibrator` explains why each is
exact.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto
from onnxruntime.quantization.calibrate import (
    CalibrationMethod,
    HistogramCollector,
    TensorData,
    TensorsData,
)

from workbench.precision.calib_graph import (
    PREFIX,
    TAIL_K_INPUT,
    HistogramSpec,
    TailSpec,
    histogram_spec,
)
from workbench.precision.calib_options import CalibrationError, CalibrationOptions

# A percentile tail longer than this per batch is counted with a full histogram instead.
MAX_TAIL = 1 << 16


@dataclass
class Stats:
    """Pass 1 results per calibrated tensor (derived ones filled in from their sources)."""

    mins: dict
    maxs: dict
    absmins: dict
    sizes: dict


@dataclass
class TailPlan:
    """Which tails pass 1 keeps for ``percentile``.

    Attributes:
        specs: The TopK tails, in ``wb_calib_k`` order.
        by_tensor: Calibrated tensor -> {side: spec index}.
        fraction: Share of the elements beyond the cut on each side (``1 - p``, or half of it).
    """

    specs: list
    by_tensor: dict
    fraction: float


def plan_tails(tensors, derived, settings) -> TailPlan:
    """The ``TopK`` tails pass 1 keeps for ``percentile``: one per source tensor and side.

    Args:
        tensors: The calibrated tensors.
        derived: Derived tensor -> (source, kind); a ``"same"`` tensor shares its source's tails.
        settings: The resolved percentile settings (``percentile``, ``symmetric``).

    Returns:
        The :class:`TailPlan`.
    """
    q = float(settings["percentile"]) / 100.0
    symmetric = bool(settings["symmetric"])
    fraction = (1.0 - q) if symmetric else (100.0 - float(settings["percentile"])) / 200.0
    sides = ("abs",) if symmetric else ("top", "bottom")
    specs, index, by_tensor = [], {}, {}
    for name in tensors:
        src, kind = derived.get(name, (name, "same"))
        key_tensor = src if kind == "same" else name
        by_tensor[name] = {}
        for side in sides:
            key = (key_tensor, side)
            if key not in index:
                index[key] = len(specs)
                specs.append(TailSpec(key_tensor, side))
            by_tensor[name][side] = index[key]
    return TailPlan(specs, by_tensor, fraction)


def tail_count(expected: float, total: int) -> int:
    """Tail length that makes the percentile's bin exact: more elements than the CDF cut leaves."""
    return int(min(total, math.floor(expected) + 2))


def np_dtype(elem_type: int | None) -> np.dtype:
    """The numpy dtype ORT's calibrator keeps a tensor's range in: float16 for float16, else float32."""
    return np.dtype(np.float16) if elem_type == TensorProto.FLOAT16 else np.dtype(np.float32)


def minmax_ranges(tensors, stats: Stats, types, symmetric: bool) -> TensorsData:
    """MinMaxCalibrater.compute_data's result: (min, max) arrays of shape (1,), symmetrized if asked."""
    data = {}
    for name in tensors:
        dtype = np_dtype(types.get(name))
        low, high = np.array([stats.mins[name]], dtype=dtype), np.array([stats.maxs[name]], dtype=dtype)
        if symmetric:
            amax = np.nanmax([np.abs(low), np.abs(high)], axis=0)
            low, high = -amax, amax
        data[name] = TensorData(lowest=low, highest=high)
    return TensorsData(CalibrationMethod.MinMax, data)


def check_finite(tensors, stats: Stats) -> None:
    """Refuse NaN/Inf ranges before a histogram method bins them.

    Raises:
        CalibrationError: Naming the tensors and what to do.
    """
    bad = [t for t in tensors if not (np.isfinite(stats.mins[t]) and np.isfinite(stats.maxs[t]))]
    if bad:
        raise CalibrationError(
            f"tensor(s) {bad[:5]}{' ...' if len(bad) > 5 else ''} reach NaN or Inf on the calibration "
            "data, so no histogram range exists. Check the samples' preprocessing, or use minmax "
            "calibration and exclude those nodes."
        )


def spec_for(name, stats: Stats, settings, abs_hist) -> HistogramSpec:
    """The edges ORT's collector bins ``name`` with, from its pass-1 range."""
    bins = int(settings["num_bins"])
    low, high = np.float32(stats.mins[name]), np.float32(stats.maxs[name])
    if abs_hist:  # collect_absolute_value: np.histogram(|x|, bins) over [min |x|, max |x|]
        return histogram_spec(name, stats.absmins[name], max(abs(low), abs(high)), bins, absolute=True)
    threshold = np.float32(max(abs(low), abs(high)))  # collect_value: range (-t, t)
    return histogram_spec(name, -threshold, threshold, bins, absolute=False)


def single_candidate_entropy(name, stats: Stats, types) -> TensorData:
    """Entropy with num_bins // 2 == num_quantized_bins // 2: the one candidate, clipped to (min, max)."""
    dtype = np_dtype(types.get(name))
    return TensorData(lowest=np.array(stats.mins[name], dtype=dtype), highest=np.array(stats.maxs[name], dtype=dtype))


def distribution_range(spec: HistogramSpec, elem_type) -> TensorData:
    """Distribution's (edges.min(), edges.max()) without the histogram-derived avg/std."""
    dtype = np_dtype(elem_type)
    edges = spec.edges.astype(dtype)
    return TensorData(lowest=edges.min(), highest=edges.max())


def percentile_from_tails(tensors, stats: Stats, specs, settings, plan: TailPlan, named, extra):
    """Percentile ranges from pass 1's tails, as ORT's ``compute_percentile`` finds them.

    Args:
        tensors: The calibrated tensors.
        stats: Pass 1's statistics (with element counts).
        specs: Tensor -> its :class:`~workbench.precision.calib_graph.HistogramSpec`.
        settings: The resolved percentile settings.
        plan: The tails pass 1 kept.
        named: Pass 1's fetched outputs per batch (``wb_calib_tail_<k>``).
        extra: Pass 1's extra feed (``wb_calib_k``: each tail's length).

    Returns:
        ``(results, full)``: tensor -> ``TensorData``, and the tensors whose tail was too short
        or whose CDF was ambiguous (they need a full histogram).
    """
    q = float(settings["percentile"]) / 100.0
    symmetric = bool(settings["symmetric"])
    one_side = (100.0 - float(settings["percentile"])) / 200.0
    ks = extra[TAIL_K_INPUT]
    tails = {k: named[f"{PREFIX}_tail_{k}"] for k in range(len(plan.specs))}
    results, full = {}, []
    for name in tensors:
        total = int(stats.sizes[name])
        need = tail_count(plan.fraction * total, total)
        values = {}
        complete = True
        for side, k in plan.by_tensor[name].items():
            per_batch = tails[k]
            # each batch kept min(K, its size) values: enough if K >= need, or if it kept them all
            if need > MAX_TAIL or not (ks[k] >= need or all(v.size < ks[k] for v in per_batch)):
                complete = False
                break
            merged = np.concatenate(per_batch)
            if merged.size > need:
                merged = (np.partition(merged, merged.size - need)[merged.size - need:] if side != "bottom"
                          else np.partition(merged, need - 1)[:need])
            values[side] = merged
        result = _percentile_threshold(name, stats, specs[name], values, q, one_side, symmetric, total) \
            if complete else None
        if result is None:
            full.append(name)
        else:
            results[name] = result
    return results, full


def _percentile_threshold(name, stats: Stats, spec: HistogramSpec, tails, q, one_side, symmetric, total):
    """ORT's compute_percentile for one tensor from its exact tails; None when ORT's float CDF is ambiguous."""
    edges = spec.edges
    tol = 1e-12 * total + 1e-9
    if symmetric:
        idx = _right_index(spec, tails["abs"], q, total, tol)
        if idx is None:
            return None
        low = -np.array(edges[idx], dtype=edges.dtype)
        high = np.array(edges[idx], dtype=edges.dtype)
    else:
        right = _right_index(spec, tails["top"], 1.0 - one_side, total, tol)
        left = _left_index(spec, tails["bottom"], one_side, total, tol)
        if right is None or left is None:
            return None
        low = np.array(edges[left], dtype=edges.dtype)
        high = np.array(edges[right], dtype=edges.dtype)
    min_value, max_value = np.float32(stats.mins[name]), np.float32(stats.maxs[name])
    if low < min_value:
        low = min_value
    if high > max_value:
        high = max_value
    return TensorData(lowest=np.asarray(low, dtype=np.float32), highest=np.asarray(high, dtype=np.float32))


def _right_index(spec: HistogramSpec, top: np.ndarray, level: float, total: int, tol: float) -> int | None:
    """First bin i with count(bins <= i) >= level * total, knowing the largest values exactly."""
    counts = spec.counts(top)
    nonzero = np.flatnonzero(counts)
    lowest_bin = int(nonzero[0]) if nonzero.size else spec.bins - 1
    above = np.concatenate([np.cumsum(counts[::-1])[::-1][1:], [0]])  # elements in bins > i
    # Below the lowest bin of the tail more than the cut lies above, unless the tail is everything.
    start = 0 if top.size >= total else lowest_bin
    at_or_below = total - above[start:].astype(np.float64)
    return _first_crossing(at_or_below, level * total, tol, start)


def _left_index(spec: HistogramSpec, bottom: np.ndarray, level: float, total: int, tol: float) -> int | None:
    """First bin i with count(bins <= i) >= level * total, knowing the smallest values exactly."""
    counts = spec.counts(bottom)
    nonzero = np.flatnonzero(counts)
    highest_bin = int(nonzero[-1]) if nonzero.size else 0
    running = np.cumsum(counts)[: highest_bin + 1].astype(np.float64)
    return _first_crossing(running, level * total, tol, 0)


def _first_crossing(counts: np.ndarray, target: float, tol: float, offset: int) -> int | None:
    """offset + first index with counts >= target; None if none, or if any count up to it lies
    within ``tol`` of the target (ORT's float CDF could decide either way there)."""
    reached = np.flatnonzero(counts >= target)
    if not reached.size:
        return None
    first = int(reached[0])
    if np.any(np.abs(counts[: first + 1] - target) <= tol):
        return None
    return offset + first


def thresholds_from_histograms(histogram_dict: dict, options: CalibrationOptions) -> TensorsData:
    """Ranges from histograms, computed by ORT's own ``HistogramCollector`` (quietly).

    Args:
        histogram_dict: Tensor -> the tuple ORT's collector keeps (``collect_value``:
            counts, edges, min, max, threshold; ``collect_absolute_value``: counts, edges, min, max).
        options: The histogram method and its settings.

    Returns:
        The ranges, as ``HistogramCalibrater.compute_data`` returns them.
    """
    s = options.resolved()
    collector = HistogramCollector(
        method=options.method,
        symmetric=s["symmetric"],
        num_bins=s.get("num_bins", 128),
        num_quantized_bins=s.get("num_quantized_bins", 128),
        percentile=s.get("percentile", 99.999),
        scenario=s.get("scenario", "same"),
    )
    collector.histogram_dict = histogram_dict
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        result = collector.compute_collection_result()
    return TensorsData(options.ort_method, result)
