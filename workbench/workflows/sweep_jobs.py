"""Measurements (a variant on a backend) as jobs: what ``measure_variants(client=...)`` and plans submit.

A :class:`MeasureItem` is one results row to be: the FP32 model, a recipe, the data, a backend
and the benchmark settings. :func:`measure_items` runs a list of them on a runner
(:mod:`workbench.workflows.jobs`):

- in this process (:class:`~workbench.workflows.jobs.LocalRunner`): one job per item, accuracy
  and latency together, as :func:`workbench.workflows.sweep.measure_variant` always measured;
- on a cluster: an accuracy job (free to run anywhere, at once) and a latency job (holding the
  worker's ``bench``/``GPU`` resource) per item, merged into one row
  (:func:`~workbench.workflows.jobs.merge_parts`).

The job function itself (:func:`workbench.workflows.sweep.measure_part`) makes or reuses the
variant where it runs, by the same cache key as here. Rows carry where and when they were
measured (:func:`~workbench.workflows.jobs.attach_facts`); an item whose job failed comes back as
a row with ``error`` and no figures, and the others go on.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from workbench.datasets.arrays import load_data
from workbench.datasets.calibration_sets import CalibrationSet, load_calibration_set
from workbench.progress import resolve_progress
from workbench.workflows.jobs import (
    FileRef,
    Job,
    JobResult,
    Progressor,
    arrays_ref,
    attach_facts,
    merge_parts,
)


@dataclass(frozen=True)
class MeasureItem:
    """One measurement to make: a recipe's variant of a model on a backend.

    Attributes:
        model: The FP32 ONNX model file.
        recipe: The recipe (``Recipe.to_dict()``).
        calib: Calibration data (path, arrays or a CalibrationSet), None when the recipe uses none.
        eval_data: Labelled evaluation data (an ``.npz`` path or ``(inputs, labels)``).
        backend: ``"onnxruntime"`` or ``"tensorrt"``.
        model_name: The rows' ``model`` column.
        label: The variant's label (progress lines, error rows).
        settings: Further keywords of the job function (``batch_sizes``, ``iterations``,
            ``warmup``, ``threads``, ``rounds``, ``workspace``, ...).
    """

    model: Any
    recipe: dict
    calib: Any
    eval_data: Any
    backend: str
    model_name: str
    label: str
    settings: dict = field(default_factory=dict)


class _Shipped:
    """Each input turned into a :class:`FileRef` once per run (arrays become content-addressed ``.npz``)."""

    def __init__(self):
        self.refs: dict[int, FileRef] = {}
        self.keep: list = []  # the objects whose ids key ``refs`` stay alive

    def model(self, path) -> FileRef:
        return self._once(path, lambda: FileRef.for_model(Path(getattr(path, "path", path))))

    def data(self, data, kind: str) -> FileRef | None:
        if data is None:
            return None
        return self._once(data, lambda: _data_ref(data, kind))

    def _once(self, obj, make: Callable[[], FileRef]) -> FileRef:
        key = id(obj)
        if key not in self.refs:
            self.refs[key] = make()
            self.keep.append(obj)
        return self.refs[key]


def _data_ref(data, kind: str) -> FileRef:
    """A data argument as a file: a path as it is, arrays as a content-addressed ``.npz``."""
    if isinstance(data, (str, os.PathLike)) and Path(data).expanduser().is_file():
        return FileRef.for_file(data)
    if kind == "calibration":
        calib = data if isinstance(data, CalibrationSet) else load_calibration_set(data)
        return arrays_ref(calib.inputs, name="calibration", shown=calib.source, sample_axes=calib.sample_axes)
    loaded = load_data(data, what=kind)  # labels checked where the job evaluates
    return arrays_ref(loaded.inputs, loaded.labels, name=kind, shown=loaded.source, sample_axes=loaded.sample_axes)


def _jobs_for(item: MeasureItem, job: Callable, files: _Shipped | None, remote: bool, latency: bool) -> list[Job]:
    """The jobs of one item: accuracy and latency apart on a cluster, one combined job in process."""
    parts = ("accuracy", "latency") if latency else ("accuracy",)
    if files is None:
        model, calib, eval_data = item.model, item.calib, item.eval_data
    else:
        model, calib = files.model(item.model), files.data(item.calib, "calibration")
        eval_data = files.data(item.eval_data, "evaluation")
    base = dict(model=model, recipe=dict(item.recipe), calib=calib, eval_data=eval_data, backend=item.backend,
                model_name=item.model_name, **item.settings)
    label = f"{item.model_name} {item.label} on {item.backend}"
    if remote:  # the latency job follows the accuracy job (offset 0: this item's first job)
        return [Job(job, {**base, "parts": (part,)}, part, label, item.backend, after=None if k == 0 else 0)
                for k, part in enumerate(parts)]
    return [Job(job, {**base, "parts": parts}, "measure" if latency else "accuracy", label, item.backend)]


def error_row(item: MeasureItem, error: str) -> dict:
    """The row of an item none of whose jobs returned: what was asked, and ``error``."""
    precision = str(item.recipe.get("precision") or "").upper() or None
    return {"model": item.model_name, "variant": item.label, "recipe_label": item.label, "precision": precision,
            "backend": item.backend, "recipe": dict(item.recipe), "error": error}


def _row(item: MeasureItem, results: Sequence[JobResult]) -> dict:
    """One item's row from its jobs' results (accuracy first), with where and when they ran."""
    values = [r.value for r in results if r.ok]
    failed = "; ".join(f"{r.kind} job: {r.error}" for r in results if not r.ok)
    if not values:
        return attach_facts(error_row(item, failed), results)
    row = dict(values[0])
    for value in values[1:]:
        row = merge_parts(row, value)
    if failed:
        row["error"] = failed
    return attach_facts(row, results)


def measure_items(runner, items: Sequence[MeasureItem], *, job: Callable[..., dict], latency: bool = True,
                  progress: Any = None) -> list[dict]:
    """Measure every item on ``runner``; one row per item, in order.

    Args:
        runner: A :class:`~workbench.workflows.jobs.LocalRunner` or
            :class:`~workbench.workflows.cluster.ClusterRunner`.
        items: The measurements.
        job: The job function (:func:`workbench.workflows.sweep.measure_part`): keywords
            ``model, recipe, calib, eval_data, backend, model_name, parts`` and the items'
            settings; returns a results row.
        latency: Also benchmark (False: accuracy only).
        progress: See :mod:`workbench.progress`; on a cluster the Dask dashboard's link is reported too.

    Returns:
        Results rows with ``worker``, ``host``, ``machine``, ``hardware``, ``started``,
        ``finished`` and ``jobs``; rows of failed items carry ``error``.
    """
    files = _Shipped() if runner.remote else None
    jobs, owners = [], []
    for n, item in enumerate(items):
        first = len(jobs)
        for made in _jobs_for(item, job, files, runner.remote, latency):
            jobs.append(made if made.after is None else dataclasses.replace(made, after=first + made.after))
            owners.append(n)
    reporter = resolve_progress(progress)
    where = f"on the cluster at {runner.address}" if runner.remote else "in process"
    with reporter.task(f"measure {len(items)} variant(s) {where}", len(jobs), unit="job") as task:
        if runner.dashboard_link:
            reporter.link("Dask dashboard", runner.dashboard_link)
        progressor = Progressor(task)
        results = runner.run(jobs, on_result=progressor)
        task.update(0, f"{len(progressor.failures)} of {len(jobs)} jobs failed" if progressor.failures else "")
    return [_row(item, [r for r, owner in zip(results, owners) if owner == n]) for n, item in enumerate(items)]


def items_for(model, recipes: Sequence, calib, eval_data, *, backends: Sequence[str], model_name: str,
              label: Callable[[Any], str], uses_calib: Callable[[Any], bool],
              settings: Mapping[str, Any]) -> list[MeasureItem]:
    """The grid of a sweep (every recipe on every backend) as items, recipe order then backend order."""
    return [MeasureItem(model, recipe.to_dict(), calib if uses_calib(recipe) else None, eval_data, backend,
                        model_name, label(recipe), dict(settings))
            for recipe in recipes for backend in backends]
