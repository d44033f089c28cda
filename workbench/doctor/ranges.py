"""Ranges: what the quantized tensors hold, what each calibration method would clip, what looks wrong.

- :func:`activation_statistics`: two FP32 passes over the calibration data for the tensors the
  variant quantizes: per-sample max ``|x|`` (for outlier samples), min/max/mean/std, and a
  histogram over ``[min, max]``.
- :func:`method_clip_ranges`: the clipping range (``scale * 127``) each calibration method's
  variant gives every quantized activation.
- :func:`range_flags`: outliers, each with a message: one channel dominating a per-tensor range,
  heavy tails (excess kurtosis), saturation, values starved of levels (underflow to 0), and a
  weight channel dominating a per-tensor weight scale.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import onnx
import pandas as pd

from workbench.backends.onnxruntime.session import ort_session
from workbench.datasets.arrays import num_samples, resolve_sample_axes, take_batch
from workbench.doctor.graph import add_outputs, quantized_nodes

HISTOGRAM_BINS = 128
# Flag thresholds (documented in range_flags).
CHANNEL_DOMINANCE = 16.0
KURTOSIS = 20.0
SATURATION = 1e-3
UNDERFLOW = 0.5
WEIGHT_DOMINANCE = 16.0


def activation_statistics(
    model: onnx.ModelProto,
    inputs: Mapping[str, np.ndarray],
    tensors: Sequence[str],
    *,
    batch_size: int = 64,
    bins: int = HISTOGRAM_BINS,
    memory_budget: int = 256 * 2**20,
    sample_axes: Mapping[str, int | None] | None = None,
) -> dict[str, dict]:
    """FP32 statistics of ``tensors`` over ``inputs`` (two passes: ranges, then histograms).

    Args:
        model: The FP32 model.
        inputs: Input name -> ``[samples, ...]`` (the calibration set).
        tensors: Tensor names (graph inputs or node outputs).
        batch_size: The most samples per run (fewer when the exposed tensors of a batch would
            take more than ``memory_budget`` bytes; one sample is run first to measure them).
        bins: Histogram bins over ``[min, max]``.
        memory_budget: Bytes the exposed tensors of one batch may take.
        sample_axes: The inputs' data description (input -> sample axis or None); default axis 0.
            A tensor whose first axis is not the batch's gets the batch's max ``|x|`` for each
            of its samples.

    Returns:
        Tensor -> ``{"sample_amax": [N] array, "min", "max", "mean", "std", "count",
        "hist": counts, "edges": bin edges}``.
    """
    graph_inputs = [t for t in tensors if t in inputs]
    exposed = [t for t in tensors if t not in inputs]
    session = ort_session(add_outputs(model, exposed), {"graph_optimization_level": "disable"})
    axes = resolve_sample_axes(inputs, sample_axes)
    total = num_samples(inputs, axes)
    if exposed and total:
        one = {k: np.ascontiguousarray(v) for k, v in take_batch(inputs, 1, axes).items()}
        sample_bytes = sum(a.nbytes for a in session.run(exposed, one)) + sum(a.nbytes for a in one.values())
        batch_size = max(1, min(int(batch_size), int(memory_budget) // max(int(sample_bytes), 1)))
    stats = {t: {"sample_amax": [], "min": math.inf, "max": -math.inf, "sum": 0.0, "sq": 0.0, "count": 0}
             for t in tensors}

    def batches():
        for start in range(0, total, batch_size):
            feed = {k: np.ascontiguousarray(v) for k, v in take_batch(inputs, batch_size, axes, start=start).items()}
            values = dict(zip(exposed, session.run(exposed, feed))) if exposed else {}
            values.update({t: feed[t] for t in graph_inputs})
            yield min(batch_size, total - start), values

    for count, values in batches():
        for t in tensors:
            _add_range(stats[t], np.asarray(values[t], np.float64), count)
    for t in tensors:
        s = stats[t]
        low, high = s["min"], s["max"]
        if high <= low:
            high = low + 1e-12
        s["edges"] = np.linspace(low, high, bins + 1)
        s["hist"] = np.zeros(bins, np.int64)
    for _, values in batches():
        for t in tensors:
            s = stats[t]
            s["hist"] += np.histogram(np.asarray(values[t]).ravel(), bins=s["edges"])[0]
    out = {}
    for t, s in stats.items():
        n = max(s["count"], 1)
        mean = s["sum"] / n
        out[t] = {
            "sample_amax": np.concatenate(s["sample_amax"]),
            "min": s["min"],
            "max": s["max"],
            "mean": mean,
            "std": math.sqrt(max(s["sq"] / n - mean * mean, 0.0)),
            "count": s["count"],
            "hist": s["hist"],
            "edges": s["edges"],
        }
    return out


def _add_range(s: dict, x: np.ndarray, count: int) -> None:
    """Add one batch of a tensor to its running range statistics (``count`` samples)."""
    if x.ndim and x.shape[0] == count:
        s["sample_amax"].append(np.abs(x.reshape(count, -1)).max(axis=1))
    else:  # not batched on axis 0 (a recurrent state, a constant-like input): the batch's max
        s["sample_amax"].append(np.full(count, np.abs(x).max() if x.size else 0.0))
    s["min"] = min(s["min"], float(x.min()))
    s["max"] = max(s["max"], float(x.max()))
    s["sum"] += float(x.sum())
    s["sq"] += float((x * x).sum())
    s["count"] += int(x.size)


def method_clip_ranges(variants: Mapping[str, onnx.ModelProto]) -> pd.DataFrame:
    """The clipping range each method's variant gives each quantized activation.

    Args:
        variants: Method label -> its Q/DQ variant (same model, same placement).

    Returns:
        Rows ``node``, ``tensor``, ``method``, ``scale``, ``clip`` (``scale * 127``; the
        symmetric range ``[-clip, clip]`` is what Q/DQ keeps without saturating).
    """
    rows = []
    for method, model in variants.items():
        for name, qn in quantized_nodes(model).items():
            for qi in qn.activations:
                scale = float(np.max(qi.scale))
                rows.append({"node": name, "tensor": qi.tensor, "method": method, "scale": scale,
                             "clip": float(np.max(qi.clip_range()))})
    return pd.DataFrame(rows, columns=["node", "tensor", "method", "scale", "clip"])


def range_flags(inputs_table: pd.DataFrame, weights_table: pd.DataFrame, *,
                channel_dominance: float = CHANNEL_DOMINANCE, kurtosis: float = KURTOSIS,
                saturation: float = SATURATION, underflow: float = UNDERFLOW,
                weight_dominance: float = WEIGHT_DOMINANCE) -> list[dict]:
    """Outliers in the quantized activations and weights, each with a one-line explanation.

    Args:
        inputs_table: :attr:`LayerwiseResult.inputs` (per quantized activation, on the
            evaluation samples, with the variant's scales).
        weights_table: :attr:`LayerwiseResult.weights`.
        channel_dominance: Flag an activation whose largest channel range is this many times the
            median channel's (one channel sets the per-tensor scale).
        kurtosis: Flag excess kurtosis above this (heavy tails: a few huge values set the range).
        saturation: Flag a saturation rate (values beyond the clipping range) above this.
        underflow: Flag when more than this share of non-zero values rounds to 0.
        weight_dominance: Flag a per-tensor weight scale whose largest output channel is this
            many times the median channel's.

    Returns:
        Dicts ``{"kind", "node", "tensor", "value", "channel"?, "message"}``; kinds:
        ``channel-outlier``, ``heavy-tail``, ``saturation``, ``underflow``,
        ``weight-channel-outlier``.
    """
    flags = []
    for row in inputs_table.to_dict("records"):
        node, tensor = row["node"], row["tensor"]
        dom = row.get("channel_dominance")
        if dom is not None and not _nan(dom) and dom >= channel_dominance:
            ch = int(row["dominant_channel"])
            flags.append({"kind": "channel-outlier", "node": node, "tensor": tensor, "value": float(dom), "channel": ch,
                          "message": f"channel {ch} of {tensor} reaches {dom:.0f}x the median channel's range and "
                                     f"sets the per-tensor scale for all of them"})
        if not _nan(row.get("kurtosis")) and row["kurtosis"] >= kurtosis:
            flags.append({"kind": "heavy-tail", "node": node, "tensor": tensor, "value": float(row["kurtosis"]),
                          "message": f"{tensor} is heavy-tailed (excess kurtosis {row['kurtosis']:.0f}): a few large "
                                     "values set the range"})
        if row.get("saturation_rate", 0) >= saturation:
            flags.append({"kind": "saturation", "node": node, "tensor": tensor, "value": float(row["saturation_rate"]),
                          "message": f"{100 * row['saturation_rate']:.2f}% of {tensor}'s values lie beyond the "
                                     "calibrated range and saturate"})
        if row.get("underflow_rate", 0) >= underflow:
            flags.append({"kind": "underflow", "node": node, "tensor": tensor, "value": float(row["underflow_rate"]),
                          "message": f"{100 * row['underflow_rate']:.0f}% of {tensor}'s non-zero values round to 0 "
                                     f"at scale {row['scale']:.3g}"})
    for row in weights_table.to_dict("records"):
        dom = row.get("channel_dominance")
        if not row.get("per_channel") and dom is not None and not _nan(dom) and dom >= weight_dominance:
            ch = int(row["dominant_channel"])
            flags.append({"kind": "weight-channel-outlier", "node": row["node"], "tensor": row["weight"],
                          "value": float(dom), "channel": ch,
                          "message": f"output channel {ch} of {row['weight']} is {dom:.0f}x the median channel's "
                                     "range and sets its per-tensor weight scale"})
    return flags


def _nan(value) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def calibration_outliers(sample_amax: Mapping[str, np.ndarray], *, factor: float = 4.0,
                         quantile: float = 0.9) -> list[dict]:
    """Calibration samples far outside the rest (one bad sample can ruin max calibration).

    A sample is flagged on a tensor when its max ``|x|`` exceeds ``factor`` times the
    ``quantile`` of the per-sample maxima (a robust "typical large" value that a few bad samples
    do not move).

    Args:
        sample_amax: Tensor -> ``[samples]`` per-sample max ``|x|`` (from
            :func:`activation_statistics` on the calibration set).
        factor: How many times the reference makes an outlier.
        quantile: The reference quantile.

    Returns:
        One dict per flagged sample, worst first: ``{"sample", "ratio", "tensor", "tensors"
        (how many tensors flag it), "range_inflation", "inflated"}`` where ``range_inflation`` is
        how many times wider the max-calibrated range of ``tensor`` is because of the flagged
        samples, and ``inflated`` maps every tensor the sample flags to that factor.
    """
    by_sample: dict[int, dict] = {}
    for tensor, amax in sample_amax.items():
        amax = np.asarray(amax, np.float64)
        if amax.size < 4:
            continue
        ref = float(np.quantile(amax, quantile))
        if ref <= 0:
            continue
        ratios = amax / ref
        flagged = np.flatnonzero(ratios > factor)
        if flagged.size == 0:
            continue
        rest = np.delete(amax, flagged)
        inflation = float(amax.max() / rest.max()) if rest.size and rest.max() > 0 else math.inf
        for index in flagged:
            entry = by_sample.setdefault(int(index), {"sample": int(index), "ratio": 0.0, "tensor": None,
                                                      "tensors": 0, "range_inflation": 1.0, "inflated": {}})
            entry["tensors"] += 1
            entry["inflated"][tensor] = inflation
            if ratios[index] > entry["ratio"]:
                entry.update(ratio=float(ratios[index]), tensor=tensor, range_inflation=inflation)
    return sorted(by_sample.values(), key=lambda e: -e["ratio"])


def calib_vs_eval(calib_stats: Mapping[str, dict], eval_inputs: pd.DataFrame) -> pd.DataFrame:
    """Calibration vs evaluation statistics of each quantized activation.

    Args:
        calib_stats: :func:`activation_statistics` on the calibration set.
        eval_inputs: :attr:`LayerwiseResult.inputs` (evaluation samples).

    Returns:
        Rows ``tensor``, ``calib_min``/``calib_max``/``calib_mean``/``calib_std``,
        ``eval_min``/``eval_max``/``eval_mean``/``eval_std``, ``max_ratio`` (eval max ``|x|`` /
        calib max ``|x|``: above 1, evaluation data goes beyond what calibration saw),
        ``eval_saturation_rate``.
    """
    rows = []
    seen = set()
    for row in eval_inputs.to_dict("records"):
        tensor = row["tensor"]
        if tensor in seen or tensor not in calib_stats:
            continue
        seen.add(tensor)
        c = calib_stats[tensor]
        calib_amax = max(abs(c["min"]), abs(c["max"]))
        eval_amax = max(abs(row["min"]), abs(row["max"]))
        rows.append({
            "tensor": tensor,
            "calib_min": c["min"], "calib_max": c["max"], "calib_mean": c["mean"], "calib_std": c["std"],
            "eval_min": row["min"], "eval_max": row["max"], "eval_mean": row["mean"], "eval_std": row["std"],
            "max_ratio": eval_amax / calib_amax if calib_amax > 0 else math.inf,
            "eval_saturation_rate": row["saturation_rate"],
        })
    return pd.DataFrame(rows)
