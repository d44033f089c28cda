"""Measure a grid of variants: make each, score it on labelled data, time it, one results row each.

:func:`measure_variants` is the loop behind the tradeoff notebook and ``bench/bench_variants.py``:
for every recipe it makes (or reuses) the variant (:func:`workbench.precision.make_variant`),
evaluates it against the labels and the FP32 reference (:func:`workbench.evaluate`), benchmarks
it at one or more batch sizes, and returns :func:`workbench.tables.results.make_row` rows,
added to a :class:`~workbench.tables.results.ResultsTable` when one is given.

What runs where, per backend:

- ``onnxruntime`` (CPU): accuracy on ``variant.ort_path`` (the variant, or its emulation when
  ORT's CPU provider cannot run it in its own precision: BF16, FP16 on x86) with the variant's
  session options (FP8 needs ``basic``); latency on the variant itself when ORT's CPU provider
  runs it, else on the emulation. The row's ``accuracy_on``/``latency_on`` columns say which.
- ``tensorrt``: the variant file itself, for both (TensorRT reads the precision from the graph).

Example::

    recipes = [Recipe("fp32"), Recipe("fp16"), Recipe("int8", method="entropy", num_samples=256)]
    rows = measure_variants(sample_path("digits_cnn"), recipes, calib=calib_npz, eval_data=eval_npz,
                            table=ResultsTable(), batch_sizes=(1, 32))
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from workbench.analysis.accuracy import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    evaluate,
    top1_accuracy,
)
from workbench.backends import get_backend, tensorrt_status
from workbench.datasets.arrays import (
    ModelData,
    load_data,
    load_labelled,
    resolve_sample_axes,
)
from workbench.errors import WorkbenchError
from workbench.model import load_model
from workbench.precision.variants import Variant, as_recipe, cache_key_of, make_variant
from workbench.progress import resolve_progress
from workbench.tables.results import make_row
from workbench.workflows.cluster import open_runner
from workbench.workflows.jobs import in_process_facts, utc_now
from workbench.workflows.sweep_jobs import items_for, measure_items

BACKENDS = ("onnxruntime", "tensorrt")


class SweepError(WorkbenchError, ValueError):
    """A sweep argument is invalid; the message names it and the fix."""


def _check_args(recipes, backends, batch_sizes, iterations, warmup, rounds=1, *,
                here: bool = True) -> tuple[list, tuple, tuple]:
    if isinstance(recipes, (str, Mapping)) or not isinstance(recipes, Iterable):
        raise SweepError("recipes must be a list of Recipe objects (or precision names / recipe dicts); "
                         f"got {type(recipes).__name__}. Wrap a single recipe in a list.")
    recipes = [as_recipe(r) for r in recipes]
    if not recipes:
        raise SweepError("recipes is empty; give at least one, e.g. [Recipe('fp32'), Recipe('int8')].")
    backends = (backends,) if isinstance(backends, str) else tuple(backends)
    bad = [b for b in backends if b not in BACKENDS]
    if bad or not backends:
        raise SweepError(f"backends {list(backends)}: each must be one of {BACKENDS}.")
    if "tensorrt" in backends and here:  # on a cluster the workers must have it, not this machine
        problem = tensorrt_status()
        if problem:
            raise SweepError(f"backend 'tensorrt' asked for but cannot run here: {problem}")
    try:
        batch_sizes = tuple(int(b) for b in batch_sizes)
    except (TypeError, ValueError) as err:
        raise SweepError(f"batch_sizes must be a list of positive integers, got {batch_sizes!r}") from err
    if not batch_sizes or min(batch_sizes) < 1:
        raise SweepError(f"batch_sizes must be a non-empty list of positive integers, got {list(batch_sizes)}.")
    if int(iterations) < 1 or int(warmup) < 0 or int(rounds) < 1:
        raise SweepError(f"iterations and rounds must be >= 1 and warmup >= 0, got {iterations}, {rounds} "
                         f"and {warmup}.")
    return recipes, backends, batch_sizes


def _eval_inputs(eval_data, input_names: Sequence[str]) -> ModelData:
    return load_data(eval_data, input_names, what="evaluation")


def _batch(inputs: Mapping[str, np.ndarray], size: int, sample_axes=None) -> dict[str, np.ndarray]:
    """The first ``size`` samples of every input along its sample axis, repeated when there are
    fewer; inputs fed as they are (a scalar, a state without samples) pass unchanged."""
    axes = resolve_sample_axes(inputs, sample_axes)
    out = {}
    for name, array in inputs.items():
        axis = axes[name]
        if axis is None:
            out[name] = np.ascontiguousarray(array)
            continue
        reps = -(-size // array.shape[axis])
        whole = np.concatenate([array] * reps, axis=axis) if reps > 1 else array
        out[name] = np.ascontiguousarray(np.take(whole, np.arange(size), axis=axis))
    return out


def measure_variant(
    variant,
    model_name: str,
    reference,
    eval_data,
    inputs: Mapping[str, np.ndarray],
    *,
    backend: str = "onnxruntime",
    batch_sizes: Sequence[int] = (32,),
    iterations: int = 50,
    warmup: int = 5,
    threads: int | None = None,
    rounds: int = 1,
    parts: Sequence[str] = ("accuracy", "latency"),
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    metric=None,
    sample_axes=None,
) -> dict:
    """Evaluate and benchmark one variant on one backend; return its results row.

    Args:
        variant: A :class:`workbench.precision.Variant`.
        model_name: The original model's name for the ``model`` column.
        reference: The FP32 model (path) the outputs are compared with.
        eval_data: Labelled data for :func:`workbench.evaluate` (an ``.npz`` path or
            ``(inputs, labels)``).
        inputs: Input name -> samples to cut benchmark batches from, along ``sample_axes`` (None: axis 0).
        backend: ``"onnxruntime"`` or ``"tensorrt"``.
        batch_sizes: Benchmark batch sizes; the first fills the row's latency columns, all go
            to ``latency`` (batch size -> median/p90/p99 ms and throughput).
        iterations, warmup: Timed and untimed benchmark iterations per batch size.
        threads: ORT ``intra_op_num_threads`` (None: ORT's default).
        rounds: Benchmark each batch size this many times and keep the run with the lowest
            median (on a shared machine other work only ever adds time).
        parts: ``"accuracy"`` and/or ``"latency"``: what to measure (a cluster runs them as
            separate jobs; the row of one part has no figures of the other).
        atol, rtol: Tolerances of the outputs' Polygraphy verdict (``outputs[...]["passed"]``).
        metric: The :mod:`~workbench.analysis.metrics` metric of the row's ``metric``,
            ``metric_value`` and ``metric_unit`` columns (None: top1 with labels, else agreement).

    Returns:
        A :func:`~workbench.tables.results.make_row` row with extra columns ``accuracy_on``,
        ``latency_on``, ``tool``, ``calibration_samples``, ``latency``, ``notes``,
        ``tolerance`` (the atol/rtol of the verdicts) and ``evaluation_data`` (the data's path,
        when it is a file).
    """
    accuracy_path, latency_path, options = _where_it_runs(variant, backend, threads)
    evaluation, latency, first = None, {}, None
    if "accuracy" in parts:
        evaluation = evaluate(accuracy_path, eval_data, reference=reference, backend=backend,
                              backend_options=options or None, atol=atol, rtol=rtol, metric=metric)
    if "latency" in parts:
        engine = get_backend(backend).build(latency_path, options or None)
        latency, first = _benchmark(engine, inputs, batch_sizes, iterations=iterations, warmup=warmup, rounds=rounds,
                                    sample_axes=sample_axes)
    record = variant.record
    calib = record.get("calibration") or {}
    tool = record.get("tool") or {}
    return make_row(
        model=model_name,
        variant=_label(variant.recipe),
        precision=variant.precision,
        backend=backend,
        evaluation=evaluation,
        benchmark=first,
        recipe=variant.recipe.to_dict(),
        calibration=calib.get("source"),
        calibration_method=calib.get("method") if variant.recipe.needs_calibration else None,
        variant_path=variant.path,
        recipe_label=_label(variant.recipe),
        accuracy_on="variant" if accuracy_path == variant.path else "emulation",
        latency_on="variant" if latency_path == variant.path else "emulation",
        tool=f"{tool.get('name')} {tool.get('version') or ''}".strip(),
        calibration_samples=calib.get("num_samples") if variant.recipe.needs_calibration else None,
        latency=latency,
        notes=_emulation_note(variant, accuracy_path, latency_path),
        tolerance={"atol": float(atol), "rtol": float(rtol)},
        evaluation_data=str(Path(eval_data).expanduser().resolve()) if isinstance(eval_data, (str, Path)) else None,
    )


def _where_it_runs(variant, backend: str, threads: int | None) -> tuple[Path, Path, dict[str, Any]]:
    """Which file stands for the variant on ``backend``, for accuracy and for latency.

    Args:
        variant: The variant.
        backend: ``"onnxruntime"`` (the variant, or its emulation where ORT's CPU provider
            cannot run it in its own precision) or ``"tensorrt"`` (always the variant).
        threads: ORT ``intra_op_num_threads`` (None: ORT's default).

    Returns:
        ``(accuracy_path, latency_path, options)``: the files, and the backend's build options.
    """
    if backend != "onnxruntime":
        return variant.path, variant.path, {}
    latency_path = variant.path if variant.runs_on_ort_cpu else variant.ort_path
    options: dict[str, Any] = dict(variant.ort_session_options)
    if threads is not None:
        options["intra_op_num_threads"] = int(threads)
    return variant.ort_path, latency_path, options


def _benchmark(engine, inputs: Mapping[str, np.ndarray], batch_sizes: Sequence[int], *, iterations: int,
               warmup: int, rounds: int, sample_axes=None) -> tuple[dict, Any]:
    """Benchmark ``engine`` at each batch size, keeping the round with the lowest median.

    Args:
        engine: A built engine (``benchmark(feed, iterations=, warmup=)``).
        inputs: Input name -> samples to cut the batches from.
        batch_sizes: The batch sizes, the first one's result returned apart.
        iterations, warmup, rounds: As :func:`measure_variant` takes them.

    Returns:
        ``(latency, first)``: batch size (str) -> median/p90/p99 ms and throughput, and the
        first batch size's benchmark result.
    """
    latency, first = {}, None
    for size in batch_sizes:
        feed = _batch(inputs, size, sample_axes)
        result = min((engine.benchmark(feed, iterations=iterations, warmup=warmup) for _ in range(max(1, int(rounds)))),
                     key=lambda r: r.median_ms)
        first = first or result
        latency[str(size)] = {k: float(getattr(result, k)) for k in ("median_ms", "p90_ms", "p99_ms", "throughput")}
    return latency, first


def _emulation_note(variant, accuracy_path: Path, latency_path: Path) -> str | None:
    """The row's ``notes``: what stood in for the variant, or None when it ran itself."""
    if latency_path != variant.path:
        return (f"ORT CPU cannot run {variant.precision} here: latency and accuracy on its FP32 emulation "
                "(the precision's rounding, not its speed)")
    if accuracy_path != variant.path:
        return f"accuracy on the emulation (ORT CPU computes {variant.precision} ops in FP32)"
    return None


def _label(recipe) -> str:
    """``int8-entropy-256``-style label: precision, method and calibration size where they matter."""
    label = recipe.label
    if recipe.needs_calibration and not recipe.name:
        label += f"-{recipe.num_samples}" if recipe.num_samples else "-all"
    if recipe.exclude_nodes or recipe.exclude_op_types or recipe.keep_fp32_nodes or recipe.keep_fp32_op_types:
        label += "-mixed"
    return label


# long: most of it documents its 16 arguments; the body hands the grid to a runner or runs it here
def measure_variants(
    model,
    recipes,
    calib=None,
    eval_data=None,
    *,
    model_name: str | None = None,
    backends: Sequence[str] | str = ("onnxruntime",),
    batch_sizes: Sequence[int] = (32,),
    iterations: int = 50,
    warmup: int = 5,
    threads: int | None = None,
    rounds: int = 1,
    table=None,
    remeasure: bool = False,
    workspace=None,
    progress: bool = True,
    client=None,
    metric=None,
) -> list[dict]:
    """Make, evaluate and benchmark every recipe's variant of ``model``: one results row each.

    Args:
        model: The FP32 ONNX model (path); also the reference for output agreement.
        recipes: :class:`~workbench.precision.Recipe` objects (or precision names / dicts).
        calib: Calibration data for the int8/fp8 recipes (an ``.npz`` path, a
            :class:`~workbench.datasets.calibration_sets.CalibrationSet`, ...). Each recipe's
            ``num_samples`` picks its subset.
        eval_data: Labelled evaluation data (an ``.npz`` with the model inputs and ``labels``, or
            ``(inputs, labels)``); its samples also feed the benchmark.
        model_name: The ``model`` column (default: the file's stem).
        backends: ``"onnxruntime"`` and/or ``"tensorrt"`` (refused with the reason when TensorRT
            cannot run here).
        batch_sizes: Benchmark batch sizes (the first fills the row's latency columns).
        iterations, warmup: Benchmark iterations per batch size.
        threads: ORT threads per operator (None: ORT's default).
        rounds: Benchmark rounds per batch size; the lowest median is kept.
        table: A :class:`~workbench.tables.results.ResultsTable` to add the rows to, or None.
        remeasure: With a ``table``, a variant already measured there (same variant file, backend
            and batch sizes) is returned from the table instead of measured and added again, so
            re-running a notebook does not duplicate rows (on a cluster too: found by the variant's cache
            key before any job is sent); True measures and adds it anyway.
        workspace: Folder for the variants (default: the workspace's ``variants``; each worker's on a cluster).
        progress: Show a progress bar over the grid (with a cluster, also the Dask dashboard's link).
        client: None to run here; a ``dask.distributed.Client`` or scheduler address to run there
            (:mod:`~workbench.workflows.sweep_jobs`: rows of failed jobs have ``error``, not in ``table``).
        metric: The metric of every row's ``metric``/``metric_value``/``metric_unit`` columns
            (``top1``, ``agreement``, ``cosine``, ``sqnr``, ``psnr``, ``python:module:function``;
            None: top1 with labels, else agreement).

    Returns:
        The rows, in recipe order then backend order; each has an ``id`` when it is in ``table``.

    Raises:
        SweepError: Invalid arguments (no recipes, unknown backend, TensorRT unavailable...).
        VariantError, RecipeError, InputDataError, ClusterError: From making or evaluating a
            variant, or a ``client`` that cannot be used (unreachable, no ``bench`` resource...).
    """
    recipes, backends, batch_sizes = _check_args(recipes, backends, batch_sizes, iterations, warmup, rounds,
                                                 here=client is None)
    _check_data(recipes, calib, eval_data)
    model_path = Path(getattr(model, "path", model))
    name = model_name or model_path.stem
    loaded = load_model(model_path)
    data = _eval_inputs(eval_data, [i["name"] for i in loaded.summary.inputs])
    measured = _measured_rows(table, batch_sizes) if table is not None and not remeasure else {}
    bench = dict(batch_sizes=batch_sizes, iterations=iterations, warmup=warmup, threads=threads, rounds=rounds,
                 metric=metric)
    if client is not None:
        return _measure_on(client, model_path, loaded, name, recipes, calib, eval_data, backends=backends,
                           settings={**bench, "workspace": workspace}, table=table, measured=measured,
                           progress=progress)
    rows = []
    with resolve_progress(progress).task(f"measure {name}", len(recipes) * len(backends), unit="variant") as task:
        for recipe in recipes:
            task.update(0, message=_label(recipe))
            variant = make_variant(loaded, recipe, calib if _uses_calib(recipe) else None, workspace=workspace,
                                   progress=False)
            for backend in backends:
                row = _already(measured, variant.record.get("key"), backend, path=variant.path)
                if row is None:
                    row = _measure_here(variant, name, model_path, eval_data, data, backend, bench)
                    if table is not None:
                        row["id"] = table.add(row)
                rows.append(row)
                task.update(1)
    return rows


def _measure_here(variant, name: str, model_path, eval_data, data: ModelData, backend: str, bench: dict) -> dict:
    """:func:`measure_variant` in this process, the row noting where and when, and the variant's hashes."""
    started, clock = utc_now(), time.perf_counter()
    row = measure_variant(variant, name, model_path, eval_data, data.inputs, backend=backend,
                          sample_axes=data.sample_axes, **bench)
    return {**row, **in_process_facts(started, clock), **variant_facts(variant)}


def _uses_calib(recipe) -> bool:
    """Whether a recipe's variant is made with the calibration data (fp16: its range safeguard)."""
    return recipe.needs_calibration or recipe.precision == "fp16"


def variant_facts(variant) -> dict:
    """The columns that name a variant by content: its cache key and its file's SHA-256."""
    return {"variant_key": variant.record.get("key"), "variant_sha256": variant.record["file"]["sha256"]}


def measure_part(model, recipe, calib, eval_data, *, backend: str, model_name: str,
                 parts: Sequence[str] = ("accuracy", "latency"), workspace=None, **bench) -> dict:
    """One job of a sweep, wherever it runs: make (or reuse) the variant, then measure ``parts`` of it.

    Args:
        model: The FP32 model file (a path where the job runs).
        recipe: The recipe (dict or Recipe).
        calib: Calibration data (a path where the job runs), or None when the recipe uses none.
        eval_data: Labelled evaluation data (a path where the job runs).
        backend, model_name, parts: As :func:`measure_variant` takes them.
        workspace: Folder for the variants (None: the workspace's ``variants`` where the job runs).
        **bench: ``batch_sizes``, ``iterations``, ``warmup``, ``threads``, ``rounds``.

    Returns:
        :func:`measure_variant`'s row, with :func:`variant_facts`.
    """
    loaded = load_model(model)
    variant = make_variant(loaded, as_recipe(recipe), calib, workspace=workspace, progress=False)
    data = _eval_inputs(eval_data, [i["name"] for i in loaded.summary.inputs])
    row = measure_variant(variant, model_name, loaded.path, eval_data, data.inputs, backend=backend, parts=parts,
                          sample_axes=data.sample_axes, **bench)
    row.update(variant_facts(variant))
    return row


def sweep_items(model, recipes, calib=None, eval_data=None, *, model_name: str | None = None,
                backends: Sequence[str] = ("onnxruntime",), **settings) -> list:
    """A sweep's grid (every recipe on every backend) as items for :func:`~workbench.workflows.sweep_jobs.measure_items`.

    Args:
        model, recipes, calib, eval_data, model_name, backends: As :func:`measure_variants`.
        **settings: Keywords of :func:`measure_part` (``batch_sizes``, ``threads``, ``workspace``...).

    Returns:
        :class:`~workbench.workflows.sweep_jobs.MeasureItem` objects, recipe order then backend order.
    """
    model_path = Path(getattr(model, "path", model))
    return items_for(model_path, [as_recipe(r) for r in recipes], calib, eval_data, backends=backends,
                     model_name=model_name or model_path.stem, label=_label, uses_calib=_uses_calib,
                     settings=settings)


def _measure_on(client, model_path: Path, loaded, name: str, recipes, calib, eval_data, *, backends, settings: dict,
                table, measured: Mapping[tuple, dict], progress) -> list[dict]:
    """:func:`measure_variants` on a cluster: the grid as jobs (see :mod:`workbench.workflows.sweep_jobs`).

    A variant already measured in ``measured`` (found by its cache key, computed here without
    making the variant) is taken from there, as in process; only the others become jobs.
    """
    items = sweep_items(model_path, recipes, calib, eval_data, model_name=name, backends=backends, **settings)
    per_recipe = [cache_key_of(loaded, recipe, calib if _uses_calib(recipe) else None) if measured else None
                  for recipe in recipes]
    keys = [key for key in per_recipe for _ in backends]  # the items' order: recipe, then backend
    found = [_already(measured, key, item.backend) for key, item in zip(keys, items)]
    with open_runner(client) as runner:  # opened even when every row is found: a bad address is refused alike
        todo = [item for item, row in zip(items, found) if row is None]
        new = iter(measure_items(runner, todo, job=measure_part, progress=progress) if todo else [])
    rows = []
    for row in found:
        if row is None:
            row = next(new)
            if table is not None and not row.get("error"):
                row["id"] = table.add(row)
        rows.append(row)
    return rows


def _check_data(recipes, calib, eval_data) -> None:
    """Refuse a sweep without evaluation data, or without calibration data its recipes need.

    Raises:
        SweepError: Naming the missing data and what to pass.
    """
    if eval_data is None:
        raise SweepError("eval_data is required: labelled data (an .npz with the model inputs and 'labels') "
                         "to score each variant on.")
    if any(r.needs_calibration for r in recipes) and calib is None:
        raise SweepError("int8/fp8 recipes need calibration data: pass calib= (an .npz path or a CalibrationSet).")


def _measured_rows(table, batch_sizes: Sequence[int]) -> dict[tuple, dict]:
    """Rows already in ``table`` measured at exactly these batch sizes, to reuse instead of re-measuring.

    Args:
        table: The :class:`~workbench.tables.results.ResultsTable`.
        batch_sizes: The sweep's batch sizes (order does not matter).

    Returns:
        ``("path", variant file, backend) -> row`` and ``("key", variant cache key, backend) -> row``
        (the last such row when there are several): a row measured on a cluster names the
        worker's copy of the variant, found again by its cache key.
    """
    wanted = sorted(str(b) for b in batch_sizes)
    found = {}
    for row in table.load():
        if sorted(row.get("latency") or {}) == wanted:
            found[("path", row.get("variant_path"), row.get("backend"))] = row
            if row.get("variant_key"):
                found[("key", row["variant_key"], row.get("backend"))] = row
    return found


def _already(measured: Mapping[tuple, dict], key: str | None, backend: str, *, path=None) -> dict | None:
    """The row of ``measured`` (:func:`_measured_rows`) for a variant (by file or cache key) on ``backend``."""
    if not measured:
        return None
    row = measured.get(("path", str(path), backend)) if path is not None else None
    return row if row is not None else measured.get(("key", key, backend))


def rows_frame(rows: Sequence[Mapping[str, Any]], batch_sizes: Sequence[int] | None = None):
    """A compact table of sweep rows: variant, precision, calibration, accuracy, latency, size.

    Args:
        rows: Rows from :func:`measure_variants`.
        batch_sizes: Add a ``median_ms@b<size>`` column per batch size from each row's ``latency``
            (default: those of the first row).

    Returns:
        A pandas DataFrame, one row per input row.
    """
    import pandas as pd

    if batch_sizes is None:
        batch_sizes = [int(b) for b in (rows[0].get("latency") or {})] if rows else []
    out = []
    for row in rows:
        entry = {
            "model": row.get("model"),
            "variant": row.get("recipe_label"),
            "precision": row.get("precision"),
            "backend": row.get("backend"),
            "calib": row.get("calibration_samples"),
            "top1": row.get("top1"),
            "top1_agreement": row.get("top1_agreement"),
            "min_sqnr_db": row.get("min_sqnr_db"),
            "metric": row.get("metric"),
            "metric_value": row.get("metric_value"),
        }
        for size in batch_sizes:
            entry[f"median_ms@b{size}"] = ((row.get("latency") or {}).get(str(size)) or {}).get("median_ms")
        entry["size_kb"] = None if row.get("size_bytes") is None else round(row["size_bytes"] / 1024, 1)
        entry["measured_on"] = row.get("latency_on")
        out.append(entry)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# Tables for notebooks: what a variant changed, and how accurate it is
# --------------------------------------------------------------------------------------------


def _variants_dict(variants) -> dict:
    if isinstance(variants, Mapping):
        return dict(variants)

    if isinstance(variants, Variant):
        variants = [variants]
    return {_label(v.recipe): v for v in variants}


def describe_variants(variants):
    """One row per variant: how it was made and what is in its graph.

    Args:
        variants: :class:`~workbench.precision.Variant` objects, a list or a label -> variant dict.

    Returns:
        A DataFrame with the label, precision, tool and version, Q/DQ node counts, Cast nodes,
        calibration method and samples, nodes kept in FP32, whether it runs on ORT CPU itself
        (else: measured on its emulation), file size, and whether it came from the cache.
    """
    import onnx
    import pandas as pd

    rows = []
    for label, variant in _variants_dict(variants).items():
        record = variant.record
        ops = [n.op_type for n in onnx.load(str(variant.path), load_external_data=False).graph.node]
        calib = record.get("calibration") or {}
        tool = record.get("tool") or {}
        rows.append({
            "variant": label,
            "precision": variant.precision,
            "tool": f"{tool.get('name')} {tool.get('version') or ''}".strip(),
            "QuantizeLinear": ops.count("QuantizeLinear"),
            "DequantizeLinear": ops.count("DequantizeLinear"),
            "Cast": ops.count("Cast"),
            "calibration": (f"{calib.get('method')} on {calib.get('num_samples')}"
                            if variant.recipe.needs_calibration and calib else ""),
            "kept_fp32": ", ".join(sorted(record.get("kept_fp32") or {})),
            "measured on (ORT CPU)": "variant" if variant.accuracy_on == "variant" else "emulation",
            "size_kb": round(record["file"]["bytes"] / 1024, 1),
            "cached": variant.cached,
        })
    return pd.DataFrame(rows)


def op_changes(model, variants):
    """Node count per op type in the model and in each variant (only op types that differ).

    Args:
        model: The original ONNX file (path or LoadedModel).
        variants: Variants, a list or a label -> variant dict.

    Returns:
        A DataFrame indexed by op type, a column for the model and one per variant.
    """
    import collections

    import onnx
    import pandas as pd

    path = getattr(model, "path", model)
    counts = {"original": collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)}
    for label, variant in _variants_dict(variants).items():
        graph = onnx.load(str(variant.path), load_external_data=False).graph
        counts[label] = collections.Counter(n.op_type for n in graph.node)
    frame = pd.DataFrame(counts).fillna(0).astype(int)
    frame.index.name = "op type"
    return frame[frame.nunique(axis=1) > 1].sort_index()


def accuracy_table(variants, eval_data, reference, *, progress: bool = False, metric=None):
    """Evaluate each variant on labelled data against the FP32 reference, on ORT CPU.

    Each variant runs as :func:`measure_variant` runs it: ``variant.ort_path`` (the variant or
    its emulation) with ``variant.ort_session_options``.

    Args:
        variants: Variants, a list or a label -> variant dict.
        eval_data: An ``.npz`` with the model inputs and ``labels`` (or ``(inputs, labels)``).
        reference: The FP32 model (path) to compare outputs with.
        progress: Show a progress bar per evaluation.
        metric: The metric of the ``metric``/``metric_value``/``metric_unit``/``passed``
            columns (None: top1 with labels, else agreement).

    Returns:
        A DataFrame: top-1, top-5, top-1 agreement with the reference, worst cosine similarity,
        lowest SQNR (dB), max abs error, the metric, its value and unit, whether it passed its
        default target, and what ran (variant or emulation).
    """
    import pandas as pd

    rows = []
    for label, variant in _variants_dict(variants).items():
        result = evaluate(variant.ort_path, eval_data, reference=reference,
                          backend_options=variant.ort_session_options or None, progress=progress, metric=metric)
        scored = result.metric
        rows.append({
            "variant": label,
            "top1": result.top1,
            "top5": result.top5,
            "top1_agreement": result.top1_agreement,
            "min_cosine": result.min_cosine,
            "min_sqnr_db": result.min_sqnr_db,
            "max_abs_error": max((o.max_abs_error for o in result.outputs.values()), default=None),
            "metric": None if scored is None else scored.name,
            "metric_value": None if scored is None else scored.value,
            "metric_unit": None if scored is None else scored.unit,
            "passed": result.passed,
            "ran": variant.accuracy_on,
        })
    return pd.DataFrame(rows)


def evaluate_variant(variant, data, *, batch_size: int = 128) -> dict:
    """Top-1 of a variant on labelled data (an ``.npz`` with the inputs and ``labels``).

    Runs the variant itself when ORT's CPU provider executes it in its own precision, else its
    emulation (BF16; FP16 where ORT CPU has no float16 kernels).

    Returns:
        ``{"top1", "samples", "ran", "path"}``; ``ran`` is ``"variant"`` or ``"emulation"``.
    """
    inputs, labels, _ = load_labelled(data, need_labels=True, what="evaluation")
    top1 = top1_accuracy(variant.ort_path, inputs, labels, options=variant.ort_session_options, batch_size=batch_size)
    return {"top1": top1, "samples": int(len(labels)), "ran": variant.accuracy_on, "path": str(variant.ort_path)}
