"""Fast calibration: the same ranges as ONNX Runtime's calibrators, reduced inside the graph.

ONNX Runtime's calibrators (``onnxruntime.quantization.calibrate``) make every calibrated tensor a
graph output, copy it to Python for every batch, and (for the histogram methods) keep all of them
in memory until ``np.histogram`` runs over the lot. Here the reductions run inside the graph, so
only a few numbers per tensor leave the runtime:

**Pass 1, ranges** (every method): the model plus ``ReduceMin``/``ReduceMax`` per calibrated
tensor, concatenated into two small outputs. Tensors whose range follows exactly from another's
are not reduced twice: outputs of value-preserving ops (Reshape, Flatten, Transpose, Squeeze,
Unsqueeze, Identity) share their input's range, and ``min/max(Relu(x)) = max(min/max(x), 0)``.

**What the histogram methods need**, reproducing ORT's ``HistogramCollector``. ORT histograms all
batches at once over the range of all of them (``[-t, t]``, ``t = max(|min|, |max|)``; symmetric
``percentile``: ``|x|`` over ``[min |x|, max |x|]``), so after pass 1 the bin edges are known
exactly, and:

- ``entropy`` with ``num_bins // 2 == num_quantized_bins // 2`` (ORT's defaults, 128/128) has one
  candidate threshold, ``(edges[0], edges[-1])``, which ORT clips to ``(min, max)``: the result is
  the min/max range and needs no histogram.
- ``distribution``'s range is ``(edges.min(), edges.max()) = (-t, t)``: known after pass 1. Its
  ``avg``/``std`` (used only by ORT's float8 scale) need the histogram: ``histograms="full"``.
- ``percentile`` keeps the bin where the CDF crosses the percentile; only the tail beyond it
  matters, so pass 1 also keeps, per tensor and batch, the ``M = floor((1 - p) * count) + 2``
  largest ``|x|`` (two-sided: largest and smallest ``x``) with ``TopK``. Merged, they give the
  exact count of every bin in the tail, hence the same bin as ORT's CDF: one pass in all. If a
  tail turns out too short, or the CDF lands within float rounding of the percentile (ORT's float
  cumsum could go either way), that tensor falls back to a full histogram.
- anything else (``entropy`` with more bins than quantized bins, ``histograms="full"``, the
  fall-backs): **pass 2, full histograms**: each value's bin is computed in the graph with
  numpy's float32 arithmetic and its +-1 edge corrections, counted with
  ``ScatterElements(reduction="add")``, and handed to ORT's own ``HistogramCollector``.

The result is a :class:`onnxruntime.quantization.calibrate.TensorsData` that ORT's quantizer takes
as is. By default (``exact=False``) ORT optimizes the augmented graph as it does any model (its
default for inference): about 1.4x faster on convolutional models, whose NCHWc convolution
kernels round differently from the unoptimized ones, so ranges match ORT's calibrator to ~1e-6
relative. ``exact=True`` runs every pass with graph optimizations off, as ORT's calibrator does:
every tensor then holds bit for bit the values it holds there and the ranges are equal (the
tests check this). Float16 tensors are binned in float32.

This module runs the passes (:func:`calibrate`); the pieces live beside it and are importable
from here as before:

- :mod:`~workbench.precision.calib_options`: methods, :class:`CalibrationOptions`,
  :class:`CalibrationResult`, :class:`CalibrationError`;
- :mod:`~workbench.precision.calib_graph`: which tensors, and the augmented range and histogram
  models;
- :mod:`~workbench.precision.calib_ranges`: each method's ranges from what the passes return;
- :mod:`~workbench.precision.calib_run`: sessions and batches;
- :mod:`~workbench.precision.calib_reference`: ORT's own calibrator, its model preparation, and
  :func:`compare_ranges`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import onnx
from onnxruntime.quantization.calibrate import TensorsData

from workbench.precision.calib_graph import (
    PREFIX,
    TAIL_K_INPUT,
    HistogramSpec,
    TailSpec,
    build_histogram_model,
    build_range_model,
    derivations,
    elements_per_sample,
    fixed_batch_size,
    histogram_spec,
    select_tensors,
    tensor_types,
)
from workbench.precision.calib_options import (
    HISTOGRAM_METHODS,
    METHODS,
    CalibrationError,
    CalibrationOptions,
    CalibrationResult,
    canonical_method,
)
from workbench.precision.calib_ranges import (
    MAX_TAIL,
    Stats,
    TailPlan,
    check_finite,
    distribution_range,
    minmax_ranges,
    np_dtype,
    percentile_from_tails,
    plan_tails,
    single_candidate_entropy,
    spec_for,
    tail_count,
    thresholds_from_histograms,
)
from workbench.precision.calib_reference import (
    ArrayReader,
    compare_ranges,
    ort_calibrate,
    prepare_for_calibration,
)
from workbench.precision.calib_run import (
    MEMORY_BUDGET,
    bounded_batch_size,
    count_samples,
    iter_batches,
    make_session,
    run_batches,
    tensor_bytes_per_sample,
)

# Bytes a pass holds per byte of the calibrated tensors it reads (measured on PP-OCR's detector and
# recognizer: ORT runs the added nodes after the model's, so each pass's copies are alive at once):
# min/max reads the tensors as they are; |x| is a copy; the percentile tails' TopK and the full
# histograms' bin arithmetic hold a few more.
PASS_FACTORS = {"ranges": 1.0, "abs": 1.0, "tails": 2.0, "histograms": 3.0}

# The public names this module has always offered; they live in the calib_* modules now.
__all__ = [
    "MAX_TAIL", "METHODS", "HISTOGRAM_METHODS", "TAIL_K_INPUT",
    "CalibrationError", "CalibrationOptions", "CalibrationResult", "canonical_method",
    "select_tensors", "tensor_types", "derivations", "fixed_batch_size", "elements_per_sample",
    "build_range_model", "TailSpec", "HistogramSpec", "histogram_spec", "build_histogram_model",
    "make_session", "calibrate", "thresholds_from_histograms",
    "ArrayReader", "ort_calibrate", "compare_ranges", "prepare_for_calibration",
]


@dataclass(frozen=True)
class _Job:
    """One calibration, decided before any pass runs.

    Attributes:
        options: The method and its settings; ``settings`` is ``options.resolved()``.
        tensors: The calibrated tensors; ``sources`` those not derived from another one, whose
            derivation ``derived`` gives (see :func:`derivations`); ``types`` their element types.
        batch_size: Samples per run; ``num_samples`` the samples in all.
        sample_bytes: Source tensor -> bytes one sample makes (empty when the batch is not bounded).
        memory_budget: Bytes a run may hold (None: no bound).
        abs_hist: The histogram is of ``|x|`` (symmetric percentile).
        plan: The percentile tails pass 1 keeps, or None.
        histograms, progress, threads, exact: As :func:`calibrate` takes them.
    """

    options: CalibrationOptions
    settings: dict
    tensors: list
    sources: list
    derived: dict
    types: dict
    batch_size: int
    num_samples: int
    sample_bytes: dict
    memory_budget: int | None
    abs_hist: bool
    plan: TailPlan | None
    histograms: str
    progress: Any
    threads: int | None
    exact: bool


def calibrate(
    model: onnx.ModelProto,
    calib,
    options: CalibrationOptions | str = "minmax",
    *,
    op_types: Sequence[str] | None = None,
    batch_size: int = 16,
    progress: Any = True,
    threads: int | None = None,
    histograms: str = "auto",
    exact: bool = False,
    memory_budget: int | None = MEMORY_BUDGET,
) -> CalibrationResult:
    """Ranges of the model's calibrated tensors over the calibration samples, equal to ORT's.

    Args:
        model: A shape-inferred model (:func:`prepare_for_calibration` gives the one ORT's
            ``quantize_static`` calibrates).
        calib: A :class:`workbench.datasets.calibration_sets.CalibrationSet` or a mapping of input
            name -> ``[samples, ...]`` array.
        options: A method name or :class:`CalibrationOptions`.
        op_types: Calibrate the tensors of these op types (ORT's ``op_types_to_calibrate``);
            None or empty for every node.
        batch_size: The most samples per run (a model with a fixed batch size uses that); fewer
            when a batch's calibrated tensors would take more than ``memory_budget`` bytes.
        progress: See :mod:`workbench.progress` (True or "tqdm": a bar; "log": log lines).
        threads: ORT intra-op threads (None: ORT's default).
        histograms: ``"auto"`` computes only what the ranges depend on; ``"full"`` also builds
            every histogram method's full histogram, so the result carries ORT's ``hist``,
            ``hist_edges``, ``avg`` and ``std`` too.
        exact: Run with graph optimizations off, as ORT's calibrator does (ranges bit-equal to
            ORT's); the default False lets ORT optimize (faster; ranges equal to ~1e-6 relative).
        memory_budget: Bytes of calibrated tensors (times each pass's :data:`PASS_FACTORS`) one
            run may hold, measured on one sample; None for no bound. The ranges do not depend on it.

    Returns:
        The ranges and timings.

    Raises:
        CalibrationError: No tensor to calibrate, or a histogram range is not finite.
    """
    started = time.perf_counter()
    job = _plan(model, calib, options, op_types=op_types, batch_size=batch_size, progress=progress,
                threads=threads, histograms=histograms, exact=exact, memory_budget=memory_budget)
    t0 = time.perf_counter()
    stats, named, extra = _range_pass(model, calib, job)
    pass_seconds = {"ranges": time.perf_counter() - t0}

    if job.options.method == "minmax":
        tensors_range = minmax_ranges(job.tensors, stats, job.types, bool(job.settings["symmetric"]))
        return CalibrationResult(tensors_range, job.options, job.tensors, job.num_samples, job.batch_size,
                                 time.perf_counter() - started, pass_seconds)

    check_finite(job.tensors, stats)
    specs = {name: spec_for(name, stats, job.settings, job.abs_hist) for name in job.tensors}
    results, full = _ranges_from_pass1(job, stats, specs, named, extra)
    kept = {}
    if full:
        t2 = time.perf_counter()
        hist_results, kept = _full_histograms(model, calib, full, job, stats, specs)
        results.update(hist_results)
        pass_seconds["histograms"] = time.perf_counter() - t2
    tensors_range = TensorsData(job.options.ort_method, {n: results[n] for n in job.tensors})
    return CalibrationResult(tensors_range, job.options, job.tensors, job.num_samples, job.batch_size,
                             time.perf_counter() - started, pass_seconds, kept)


def _plan(model, calib, options, *, op_types, batch_size, progress, threads, histograms, exact,
          memory_budget) -> _Job:
    """Check the arguments and decide what the passes compute, and in batches of what size.

    Args:
        model, calib, options, op_types, batch_size, progress, threads, histograms, exact,
            memory_budget: As :func:`calibrate` takes them.

    Returns:
        The :class:`_Job`.

    Raises:
        CalibrationError: A bad ``histograms`` or method, or no tensor to calibrate.
    """
    if histograms not in ("auto", "full"):
        raise CalibrationError(f"histograms must be 'auto' or 'full', got {histograms!r}")
    options = CalibrationOptions(options) if isinstance(options, str) else options
    settings = options.resolved()
    tensors = select_tensors(model, op_types)
    if not tensors:
        raise CalibrationError(
            f"no float tensor to calibrate among the op types {list(op_types or [])}; check the op "
            "types to quantize against the model's op histogram."
        )
    derived = derivations(model, tensors)
    percentile_tails = options.method == "percentile" and histograms == "auto"
    sources = [t for t in tensors if t not in derived]
    abs_hist = options.method == "percentile" and bool(settings["symmetric"])
    batch_size = fixed_batch_size(model) or max(1, int(batch_size))
    sample_bytes = {}
    if memory_budget is not None and batch_size > 1 and not fixed_batch_size(model) and count_samples(calib) > 1:
        sample_bytes = tensor_bytes_per_sample(model, calib, sources)
        factor = PASS_FACTORS["ranges"] + PASS_FACTORS["abs"] * abs_hist + PASS_FACTORS["tails"] * percentile_tails
        batch_size = bounded_batch_size(batch_size, sample_bytes, factor, memory_budget)
    return _Job(
        options=options,
        settings=settings,
        tensors=tensors,
        sources=sources,
        derived=derived,
        types=tensor_types(model),
        batch_size=batch_size,
        num_samples=count_samples(calib),
        sample_bytes=sample_bytes,
        memory_budget=memory_budget,
        abs_hist=abs_hist,
        plan=plan_tails(tensors, derived, settings) if percentile_tails else None,
        histograms=histograms,
        progress=progress,
        threads=threads,
        exact=exact,
    )


def _range_pass(model, calib, job: _Job) -> tuple[Stats, dict, dict | None]:
    """Pass 1: min/max (and percentile tails) of the source tensors over every batch.

    Args:
        model: The shape-inferred model.
        calib: The samples.
        job: What to compute.

    Returns:
        ``(stats, named, extra)``: every calibrated tensor's statistics (derived ones from their
        sources), each fetched output's per-batch values by name, and the extra feed (the tail
        lengths) or None.
    """
    plan = job.plan
    range_model = build_range_model(model, job.sources, abs_min=job.abs_hist, sizes=plan is not None,
                                    tails=plan.specs if plan else ())
    session = make_session(range_model, optimized=not job.exact, threads=job.threads)
    fetch = [f"{PREFIX}_min", f"{PREFIX}_max"]
    fetch += [f"{PREFIX}_absmin"] if job.abs_hist else []
    fetch += [f"{PREFIX}_size"] if plan else []
    extra = None
    if plan:
        fetch += [f"{PREFIX}_tail_{k}" for k in range(len(plan.specs))]
        extra = {TAIL_K_INPUT: _tail_ks(model, session, calib, job.batch_size, plan, job.sources, job.derived,
                                        job.num_samples)}
    per_batch, _counts = run_batches(session, calib, job.batch_size, fetch, "calibration: ranges",
                                     progress=job.progress, extra_feed=extra)
    del session
    named = {name: [b[j] for b in per_batch] for j, name in enumerate(fetch)}
    return _pass1_stats(job.sources, job.derived, named, job.abs_hist), named, extra


def _ranges_from_pass1(job: _Job, stats: Stats, specs: dict, named: dict, extra) -> tuple[dict, list]:
    """The ranges each histogram method gets from pass 1 alone, and the tensors it cannot.

    Args:
        job: The calibration.
        stats: Pass 1's statistics.
        specs: Tensor -> the :class:`HistogramSpec` ORT's collector would bin it with.
        named: Pass 1's fetched outputs per batch (the percentile tails).
        extra: Pass 1's extra feed (the tail lengths), or None.

    Returns:
        ``(results, full)``: tensor -> :class:`TensorData`, and the tensors that need a full
        histogram (pass 2).
    """
    tensors, settings, types = job.tensors, job.settings, job.types
    if job.histograms == "full":
        return {}, list(tensors)
    if job.options.method == "entropy":
        if settings["num_bins"] // 2 == settings["num_quantized_bins"] // 2:
            return {n: single_candidate_entropy(n, stats, types) for n in tensors}, []
        return {}, list(tensors)
    if job.options.method == "distribution":
        return {n: distribution_range(specs[n], types.get(n)) for n in tensors}, []
    return percentile_from_tails(tensors, stats, specs, settings, job.plan, named, extra)


def _tail_ks(model, session, calib, batch_size, plan: TailPlan, sources, derived, num_samples) -> np.ndarray:
    """How many extreme values each tail keeps per batch: enough for every tensor's whole cut.

    Each tensor's element count over all samples comes from shape inference (per-sample size
    times samples), or, when a shape is not static, from running the first batch once: its size
    times the number of batches, an upper bound (exact for tensors that do not grow with the
    batch). Too short a tail is detected afterwards and falls back to a full histogram.

    Args:
        model: The shape-inferred model.
        session: A session of the range model (it outputs ``wb_calib_size``).
        calib: The samples.
        batch_size: Samples per run.
        plan: The tails to keep.
        sources: The tensors the range model reduces, in its output order.
        derived: Derived tensor -> (source, kind).
        num_samples: Samples in all.

    Returns:
        The int64 ``wb_calib_k`` feed: the length of each tail in ``plan.specs`` order.
    """
    totals = {}
    for spec in plan.specs:
        per_sample = elements_per_sample(model, spec.tensor)
        if per_sample is not None:
            totals[spec.tensor] = per_sample * num_samples
    if len(totals) < len({spec.tensor for spec in plan.specs}):
        feeds, _ = iter_batches(calib, batch_size)
        first = next(feeds)
        batches = -(-num_samples // batch_size)
        probe = {TAIL_K_INPUT: np.ones(len(plan.specs), dtype=np.int64)}
        sizes = session.run([f"{PREFIX}_size"], {**first, **probe})[0]
        by_source = dict(zip(sources, sizes))
        for spec in plan.specs:
            if spec.tensor not in totals:
                src = derived.get(spec.tensor, (spec.tensor, "same"))[0]
                totals[spec.tensor] = int(by_source[src]) * batches
    ks = [max(1, min(tail_count(plan.fraction * totals[s.tensor], totals[s.tensor]), MAX_TAIL)) for s in plan.specs]
    return np.array(ks, dtype=np.int64)


def _pass1_stats(sources, derived, named, abs_hist) -> Stats:
    """Pass 1's per-batch reductions merged into every calibrated tensor's statistics.

    Args:
        sources: The reduced tensors, in the range model's output order.
        derived: Derived tensor -> (source, kind): ``"same"`` copies the source's statistics,
            ``"relu"`` clamps them at 0.
        named: Fetched output name -> its value per batch.
        abs_hist: ``min |x|`` was reduced too.

    Returns:
        The :class:`Stats`.
    """
    mins = dict(zip(sources, np.nanmin(np.stack(named[f"{PREFIX}_min"]), axis=0)))
    maxs = dict(zip(sources, np.nanmax(np.stack(named[f"{PREFIX}_max"]), axis=0)))
    absmins = dict(zip(sources, np.nanmin(np.stack(named[f"{PREFIX}_absmin"]), axis=0))) if abs_hist else {}
    sizes = (dict(zip(sources, np.stack(named[f"{PREFIX}_size"]).sum(axis=0)))
             if f"{PREFIX}_size" in named else {})
    zero = np.float32(0)
    for name, (src, kind) in derived.items():
        if kind == "same":
            mins[name], maxs[name] = mins[src], maxs[src]
            if abs_hist:
                absmins[name] = absmins[src]
        else:  # relu: min/max(relu(x)) = relu(min/max(x)); min |relu(x)| = relu(min(x))
            mins[name], maxs[name] = max(mins[src], zero), max(maxs[src], zero)
            if abs_hist:
                absmins[name] = mins[name]
        if sizes:
            sizes[name] = sizes[src]
    return Stats(mins, maxs, absmins, sizes)


def _full_histograms(model, calib, names, job: _Job, stats: Stats, specs) -> tuple[dict, dict]:
    """Pass 2: exact histograms for ``names`` in one pass, thresholds by ORT's collector.

    Args:
        model: The shape-inferred model.
        calib: The samples.
        names: The tensors to histogram (derived ones share their source's histogram when they
            hold the same values).
        job: The calibration.
        stats: Pass 1's statistics.
        specs: Tensor -> its :class:`HistogramSpec`.

    Returns:
        ``(ranges, histograms)``: tensor -> :class:`TensorData` as ORT's collector computes it,
        and tensor -> (counts, edges).
    """
    derived, types = job.derived, job.types
    sources = []
    for name in names:
        src, kind = derived.get(name, (name, "same"))
        key = src if kind == "same" else name
        if key not in sources:
            sources.append(key)
    hist_model = build_histogram_model(model, [specs[s] for s in sources])
    session = make_session(hist_model, optimized=not job.exact, threads=job.threads)
    fetch = [f"{PREFIX}_hist_{k}" for k in range(len(sources))]
    batch_size = job.batch_size
    if job.sample_bytes:  # only the histogrammed tensors' arithmetic, at most the first pass's batch
        hist_bytes = sum(job.sample_bytes.get(derived.get(s, (s, "same"))[0], 0) for s in sources)
        batch_size = bounded_batch_size(batch_size, hist_bytes, PASS_FACTORS["histograms"], job.memory_budget)
    per_batch, _ = run_batches(session, calib, batch_size, fetch, "calibration: histograms",
                               progress=job.progress)
    del session
    counts = {s: np.sum([b[j] for b in per_batch], axis=0, dtype=np.int64) for j, s in enumerate(sources)}
    histogram_dict = {}
    for name in names:
        src, kind = derived.get(name, (name, "same"))
        key = src if kind == "same" else name
        dtype = np_dtype(types.get(name))
        low, high = dtype.type(stats.mins[name]), dtype.type(stats.maxs[name])
        edges = specs[name].edges.astype(dtype)
        if specs[name].absolute:
            histogram_dict[name] = (counts[key], edges, low, high)
        else:
            threshold = np.array(max(abs(low), abs(high)), dtype=dtype)
            histogram_dict[name] = (counts[key], edges, low, high, threshold)
    result = thresholds_from_histograms(histogram_dict, job.options)
    return dict(result.items()), {k: (v[0], v[1]) for k, v in histogram_dict.items()}
