"""Timing a TensorRT engine: per-layer times from IProfiler, and trace statistics of a benchmark."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from workbench.backends.base import BenchmarkResult
from workbench.backends.tensorrt.trt_json_profile import trtexec_percentile

SOURCE = "tensorrt"

DEFAULT_PERCENTILES = (90.0, 95.0, 99.0)


class LayerTimeRecorder:
    """Collects ``IProfiler.report_layer_time(layer_name, ms)`` calls, grouped by inference.

    With ``enqueue_emits_profile`` left True, TensorRT reports every layer of an inference
    during ``execute_async_v3``; the engine calls :meth:`begin_run` before each profiled
    inference and leaves the recorder inactive during warm-up.
    """

    def __init__(self):
        self.runs: list[dict[str, float]] = []
        self.active = False
        self._lock = threading.Lock()

    def begin_run(self) -> None:
        """Start collecting a new inference."""
        with self._lock:
            self.active = True
            self.runs.append({})

    def stop(self) -> None:
        self.active = False

    def record(self, layer_name: str, ms: float) -> None:
        """One ``report_layer_time`` call. Repeated names within a run are summed."""
        with self._lock:
            if not self.active or not self.runs:
                return
            run = self.runs[-1]
            run[layer_name] = run.get(layer_name, 0.0) + float(ms)


def profiled_runs(recorder: LayerTimeRecorder, *, warmup: int, iterations: int) -> Iterator[int]:
    """Pace a profiling session: one step per inference, the first ``warmup`` unrecorded.

    Before each of the ``iterations`` recorded inferences the recorder starts a new run; after
    the last one it stops, so late ``report_layer_time`` calls are dropped.

    Args:
        recorder: Collects the profiler's calls.
        warmup: Inferences first that are not recorded (negative counts as 0).
        iterations: Recorded inferences.

    Yields:
        The inference's index (warm-up included); run one inference per step.
    """
    warmup = max(0, int(warmup))
    for index in range(warmup + int(iterations)):
        if index >= warmup:
            recorder.begin_run()
        yield index
    recorder.stop()


def profile_document(runs: Sequence[Mapping[str, float]]) -> list[dict]:
    """Aggregate per-inference layer times into trtexec's ``--exportProfile`` document.

    Args:
        runs: One ``{layer name: ms}`` per profiled inference. A layer missing from a run
            counts 0 ms there (TensorRT reports every layer of every run, so this only matters
            for partial data).

    Returns:
        ``[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, ...]`` with
        layers in first-reported order: ``timeMs`` the total over the N runs, ``averageMs``
        ``timeMs / N``, ``medianMs`` the median per run, ``percentage`` of the summed ``timeMs``
        (trtexec's definitions, so :func:`~workbench.backends.tensorrt.trt_json.import_trt` reads it).

    Raises:
        ValueError: No runs.
    """
    if not runs:
        raise ValueError("no profiled inferences: run at least one iteration")
    names = list(dict.fromkeys(name for run in runs for name in run))
    count = len(runs)
    per_layer = {name: np.array([run.get(name, 0.0) for run in runs], dtype=float) for name in names}
    totals = {name: float(values.sum()) for name, values in per_layer.items()}
    grand_total = sum(totals.values())
    document: list[dict] = [{"count": count}]
    for name in names:
        document.append({
            "name": name,
            "timeMs": totals[name],
            "averageMs": totals[name] / count,
            "medianMs": float(np.median(per_layer[name])),
            "percentage": 100.0 * totals[name] / grand_total if grand_total > 0 else 0.0,
        })
    return document


def _profiler_class():
    """The ``trt.IProfiler`` subclass, created only when TensorRT imports."""
    import tensorrt as trt

    class LayerProfiler(trt.IProfiler):
        """Forwards TensorRT's per-layer times to a :class:`LayerTimeRecorder`."""

        def __init__(self, recorder: LayerTimeRecorder):
            super().__init__()  # pybind11 needs the base initialised explicitly
            self.recorder = recorder

        def report_layer_time(self, layer_name, ms):
            self.recorder.record(layer_name, ms)

    return LayerProfiler


def trace_record(
    h2d_start: float,
    h2d_end: float,
    compute_start: float,
    compute_end: float,
    d2h_start: float,
    d2h_end: float,
    enqueue_start: float,
    enqueue_end: float,
) -> dict:
    """One inference's times (ms from a common origin) as a trtexec ``--exportTimes`` record.

    Returns:
        ``{"startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs",
        "endComputeMs", "startD2hMs", "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs"}``;
        ``latencyMs`` is D2H end minus H2D start, as trtexec's "Latency".
    """
    return {
        "startEnqMs": enqueue_start,
        "endEnqMs": enqueue_end,
        "startH2dMs": h2d_start,
        "endH2dMs": h2d_end,
        "startComputeMs": compute_start,
        "endComputeMs": compute_end,
        "startD2hMs": d2h_start,
        "endD2hMs": d2h_end,
        "h2dMs": h2d_end - h2d_start,
        "computeMs": compute_end - compute_start,
        "d2hMs": d2h_end - d2h_start,
        "latencyMs": d2h_end - h2d_start,
    }


def event_record(stage_ms: Sequence[float], enqueue_start_s: float, enqueue_end_s: float, host_base_s: float) -> dict:
    """One benchmarked inference's record from its four CUDA events and host enqueue times.

    The engine records events before the H2D copies, after them, after the engine's work and
    after the D2H copies; compute starts when H2D ends and D2H starts when compute ends (one
    stream, nothing in between).

    Args:
        stage_ms: The four events' times in ms since the base event (``Event.time_since``).
        enqueue_start_s, enqueue_end_s: ``time.perf_counter()`` around the enqueue call.
        host_base_s: ``time.perf_counter()`` when the base event was recorded.

    Returns:
        The :func:`trace_record`; enqueue times in ms since ``host_base_s``.
    """
    h2d_start, h2d_end, compute_end, d2h_end = stage_ms
    return trace_record(
        h2d_start, h2d_end, h2d_end, compute_end, compute_end, d2h_end,
        1000.0 * (enqueue_start_s - host_base_s), 1000.0 * (enqueue_end_s - host_base_s),
    )


def keep_timing(done: int, iterations: int, elapsed_s: float, duration_s: float | None) -> bool:
    """Whether a benchmark runs another inference: until ``iterations`` are done and, when
    ``duration_s`` is given, that many seconds have passed as well."""
    return done < int(iterations) or (duration_s is not None and elapsed_s < duration_s)


def _statistics(values: np.ndarray, percentiles: Sequence[float]) -> dict:
    ordered = np.sort(np.asarray(values, dtype=float))
    return {
        "min_ms": float(ordered[0]),
        "max_ms": float(ordered[-1]),
        "mean_ms": float(ordered.mean()),
        "median_ms": float(np.median(ordered)),
        "percentiles_ms": {float(p): trtexec_percentile(ordered, p) for p in percentiles},
    }


def summarize_trace(
    records: Sequence[Mapping],
    *,
    warmup_ms: float = 0.0,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> dict:
    """Summarise per-inference records the way trtexec prints its performance summary.

    trtexec exports warm-up inferences too; its summary skips those whose compute started
    before ``warmup_ms``, and its throughput is the timed inferences over the wall time from
    the first timed H2D start to the last D2H end.

    Args:
        records: ``--exportTimes`` records (:func:`trace_record` or a trtexec file).
        warmup_ms: trtexec's ``--warmUp`` (200 ms by default; 0 for workbench traces, which
            hold timed inferences only).
        percentiles: Percentiles to report.

    Returns:
        The shape :func:`~workbench.backends.tensorrt.trtexec_log.parse_trtexec_log` gives a printed
        summary: ``throughput_qps``; ``latency``, ``enqueue_time``, ``h2d_latency``,
        ``gpu_compute_time``, ``d2h_latency`` (each ``{"min_ms", "max_ms", "mean_ms",
        "median_ms", "percentiles_ms"}``); ``total_host_walltime_s``,
        ``total_gpu_compute_time_s``; plus ``count`` and ``warmups``.

    Raises:
        ValueError: No record after the warm-up.
    """
    records = list(records)
    first_timed = next((i for i, r in enumerate(records) if r["startComputeMs"] >= warmup_ms), len(records))
    timed = records[first_timed:]
    if not timed:
        raise ValueError(f"no inference started after the {warmup_ms} ms warm-up; run longer")
    column = {key: np.array([r[key] for r in timed], dtype=float) for key in ("latencyMs", "h2dMs", "computeMs", "d2hMs")}
    enqueue = np.array([r["endEnqMs"] - r["startEnqMs"] for r in timed], dtype=float)
    wall_ms = timed[-1]["endD2hMs"] - timed[0]["startH2dMs"]
    return {
        "count": len(timed),
        "warmups": first_timed,
        "throughput_qps": 1000.0 * len(timed) / wall_ms if wall_ms > 0 else float("inf"),
        "latency": _statistics(column["latencyMs"], percentiles),
        "enqueue_time": _statistics(enqueue, percentiles),
        "h2d_latency": _statistics(column["h2dMs"], percentiles),
        "gpu_compute_time": _statistics(column["computeMs"], percentiles),
        "d2h_latency": _statistics(column["d2hMs"], percentiles),
        "total_host_walltime_s": wall_ms / 1000.0,
        "total_gpu_compute_time_s": float(column["computeMs"].sum()) / 1000.0,
    }


def benchmark_result(
    records: Sequence[Mapping],
    *,
    batch_size: int,
    warmup: int,
    warmup_ms: float = 0.0,
    settings: Mapping[str, Any] | None = None,
) -> BenchmarkResult:
    """A :class:`BenchmarkResult` from per-inference records.

    Latency statistics are over ``latencyMs`` (H2D start to D2H end); ``h2d_ms``,
    ``compute_ms``, ``d2h_ms`` are the means of each stage; ``throughput`` is samples per second
    over wall time (trtexec's queries per second times the batch). The trtexec-style summary is
    in ``settings["trtexec_summary"]``.

    Args:
        records: Per-inference records (:func:`trace_record`).
        batch_size: Samples per inference.
        warmup: Untimed warm-up iterations that ran before the records.
        warmup_ms: Records that started compute before this are skipped (trtexec files).
        settings: What was configured, reported as is.

    Returns:
        The result.
    """
    summary = summarize_trace(records, warmup_ms=warmup_ms)
    timed = list(records)[summary["warmups"]:]
    result = BenchmarkResult.from_latencies(
        [r["latencyMs"] for r in timed],
        backend=SOURCE,
        warmup=warmup,
        batch_size=batch_size,
        settings={**dict(settings or {}), "trtexec_summary": summary},
        h2d_ms=summary["h2d_latency"]["mean_ms"],
        compute_ms=summary["gpu_compute_time"]["mean_ms"],
        d2h_ms=summary["d2h_latency"]["mean_ms"],
    )
    return dataclasses.replace(result, throughput=summary["throughput_qps"] * batch_size)
