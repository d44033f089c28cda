"""trtexec's per-layer profile (``--exportProfile``) and per-inference times (``--exportTimes``).

``percentage`` and the table's ``share`` are shares of the *summed layer times*, not of
end-to-end latency: H2D/D2H copies, enqueue overhead and gaps between kernels are in neither.
End-to-end numbers come from the times file (:func:`summarize_times`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from workbench.backends.tensorrt.trt_json_files import (
    PROFILE_EXPECTED,
    PROFILE_HOW_TO,
    TIMES_EXPECTED,
    TIMES_HOW_TO,
    load_json_input,
    shape_error,
)

PERCENTAGE_SUM_TOLERANCE = 1.0  # percentage points around 100
TIME_RELATIVE_TOLERANCE = 1e-3  # timeMs vs averageMs * count
TIME_ABSOLUTE_TOLERANCE_MS = 1e-3


def split_profile(document: Any, label: str) -> tuple[int | None, list[dict]]:
    """Separate the ``{"count": N}`` record from the per-layer records of a profile.

    Args:
        document: Parsed ``--exportProfile`` JSON.
        label: Its file name, for messages.

    Returns:
        ``(count, layer_records)``; ``count`` is None when the record is missing.

    Raises:
        TrtJsonError: Not a list of dicts with ``name`` and ``averageMs`` (or ``timeMs``).
    """
    if not isinstance(document, list) or not document:
        raise shape_error(label, "not a non-empty list", PROFILE_EXPECTED, PROFILE_HOW_TO)
    count = None
    records = document
    if isinstance(document[0], dict) and "count" in document[0] and "name" not in document[0]:
        count = document[0]["count"]
        records = document[1:]
    for i, record in enumerate(records):
        if not (
            isinstance(record, dict)
            and isinstance(record.get("name"), str)
            and ("averageMs" in record or "timeMs" in record)
        ):
            raise shape_error(
                label,
                f"record {i} has no 'name' and 'averageMs' ({str(record)[:80]!r})",
                PROFILE_EXPECTED,
                PROFILE_HOW_TO,
            )
    return count, list(records)


def check_profile(count: Any, records: list[dict]) -> dict:
    """Validate a profile the way NVIDIA's trt-perf-analysis does.

    Checks that the iteration count is present and positive, that ``percentage`` sums to 100
    within :data:`PERCENTAGE_SUM_TOLERANCE` points, and that each layer's ``timeMs`` (total
    over all iterations) equals ``averageMs * count`` within tolerance.

    Args:
        count: The ``{"count": N}`` value (None when absent).
        records: The per-layer records.

    Returns:
        ``{"count", "count_ok", "percentage_sum", "percentage_sum_ok", "time_mismatches",
        "time_consistent", "ok", "messages"}``; ``time_mismatches`` lists
        ``{"name", "timeMs", "expected_ms"}``; ``messages`` explains each failed check.
    """
    messages = []
    count_ok = isinstance(count, (int, float)) and not isinstance(count, bool) and count > 0
    if not count_ok:
        messages.append(f"profile iteration count is missing or not positive ({count!r})")
    percentages = [r.get("percentage") for r in records if r.get("percentage") is not None]
    percentage_sum = float(sum(percentages)) if percentages else None
    percentage_sum_ok = percentage_sum is not None and abs(percentage_sum - 100.0) <= PERCENTAGE_SUM_TOLERANCE
    if percentage_sum is None:
        messages.append("profile has no 'percentage' values")
    elif not percentage_sum_ok:
        messages.append(f"profile percentages sum to {percentage_sum:.3f}, not 100")
    mismatches = []
    if count_ok:
        for record in records:
            total, average = record.get("timeMs"), record.get("averageMs")
            if total is None or average is None:
                continue
            expected = average * count
            tolerance = max(TIME_RELATIVE_TOLERANCE * abs(total), TIME_ABSOLUTE_TOLERANCE_MS)
            if abs(total - expected) > tolerance:
                mismatches.append({"name": record["name"], "timeMs": total, "expected_ms": expected})
                messages.append(
                    f"profile layer {record['name']!r}: timeMs {total} != averageMs*count {expected:.6g}"
                )
    return {
        "count": count,
        "count_ok": count_ok,
        "percentage_sum": percentage_sum,
        "percentage_sum_ok": percentage_sum_ok,
        "time_mismatches": mismatches,
        "time_consistent": count_ok and not mismatches,
        "ok": count_ok and percentage_sum_ok and not mismatches,
        "messages": messages,
    }


def profile_by_name(records: list[dict], count: Any) -> tuple[dict[str, dict], list[str]]:
    """Index profile records by layer name.

    Args:
        records: The per-layer profile records.
        count: The iteration count (used when ``averageMs`` is missing).

    Returns:
        ``(times_by_name, duplicate_names)``; each value is ``{"time_ms", "median_ms",
        "trt_percentage"}``; the first record of a duplicated name wins.
    """
    by_name, duplicates = {}, []
    for record in records:
        name = record["name"]
        if name in by_name:
            duplicates.append(name)
            continue
        average = record.get("averageMs")
        if average is None and count:
            average = record["timeMs"] / count
        by_name[name] = {
            "time_ms": float(average) if average is not None else math.nan,
            "median_ms": float(record["medianMs"]) if record.get("medianMs") is not None else math.nan,
            "trt_percentage": float(record["percentage"]) if record.get("percentage") is not None else math.nan,
        }
    return by_name, duplicates


def join_profile(records: list[dict], by_name: Mapping[str, dict]) -> tuple[list[dict], dict]:
    """Attach profile times to layer records by name (never by position).

    Args:
        records: Layer records.
        by_name: Output of :func:`profile_by_name`.

    Returns:
        ``(records_with_times, mismatches)``; ``mismatches`` is
        ``{"profile_without_layer": [...], "layers_without_profile": [...]}``. Layers without
        a profile entry get NaN times.
    """
    layer_names = {r["name"] for r in records}
    joined, missing = [], []
    for record in records:
        times = by_name.get(record["name"])
        if times is None:
            missing.append(record["name"])
            times = {"time_ms": math.nan, "median_ms": math.nan, "trt_percentage": math.nan}
        joined.append({**record, **times, "share": math.nan})
    unknown = [name for name in by_name if name not in layer_names]
    return joined, {"profile_without_layer": unknown, "layers_without_profile": missing}


# --------------------------------------------------------------------------------------------
# End-to-end timings


def trtexec_percentile(sorted_values: np.ndarray, percentile: float) -> float:
    """Percentile the way trtexec reports it (nearest rank, no interpolation).

    trtexec drops the top ``int((1 - p/100) * n)`` values and reports the largest remaining
    one, so the numbers match its ``percentile(p%)`` output for the same run.

    Args:
        sorted_values: Values in ascending order (non-empty).
        percentile: 0-100.

    Returns:
        The percentile value.
    """
    n = len(sorted_values)
    excluded = int((1.0 - percentile / 100.0) * n)
    return float(sorted_values[max(n - 1 - excluded, 0)])


def summarize_times(times: Any, label: str | None = None) -> dict:
    """Summarise ``trtexec --exportTimes`` records (one per inference).

    ``latencyMs`` is trtexec's end-to-end host latency (H2D + compute + D2H); the profile's
    ``percentage`` is a share of summed layer time, not of this latency. Percentiles use
    trtexec's rule (:func:`trtexec_percentile`); median is the middle value (mean of the two
    middle values for even counts), as trtexec computes it.

    Args:
        times: The parsed records (a list of dicts), or a path to the JSON file.
        label: Name of the file for messages when ``times`` is already parsed.

    Returns:
        ``{"count", "latency_mean_ms", "latency_median_ms", "latency_p90_ms", "latency_p95_ms",
        "latency_p99_ms", "latency_min_ms", "latency_max_ms", "h2d_mean_ms",
        "compute_mean_ms", "d2h_mean_ms", "enqueue_mean_ms"}``; a mean is None when no record
        has that field.

    Raises:
        TrtJsonError: Not a non-empty list of records with ``latencyMs``.
    """
    document, loaded_label = load_json_input(times, TIMES_EXPECTED, TIMES_HOW_TO)
    label = label or loaded_label
    if not isinstance(document, list) or not document:
        raise shape_error(label, "not a non-empty list", TIMES_EXPECTED, TIMES_HOW_TO)
    if not all(isinstance(r, dict) and "latencyMs" in r for r in document):
        raise shape_error(label, "a record has no 'latencyMs'", TIMES_EXPECTED, TIMES_HOW_TO)
    latency = np.sort(np.array([r["latencyMs"] for r in document], dtype=float))

    def mean_of(values: list) -> float | None:
        return float(np.mean(values)) if values else None

    enqueue = [r["endEnqMs"] - r["startEnqMs"] for r in document if "endEnqMs" in r and "startEnqMs" in r]
    return {
        "count": int(latency.size),
        "latency_mean_ms": float(latency.mean()),
        "latency_median_ms": float(np.median(latency)),
        "latency_p90_ms": trtexec_percentile(latency, 90),
        "latency_p95_ms": trtexec_percentile(latency, 95),
        "latency_p99_ms": trtexec_percentile(latency, 99),
        "latency_min_ms": float(latency[0]),
        "latency_max_ms": float(latency[-1]),
        "h2d_mean_ms": mean_of([r["h2dMs"] for r in document if "h2dMs" in r]),
        "compute_mean_ms": mean_of([r["computeMs"] for r in document if "computeMs" in r]),
        "d2h_mean_ms": mean_of([r["d2hMs"] for r in document if "d2hMs" in r]),
        "enqueue_mean_ms": mean_of(enqueue),
    }
