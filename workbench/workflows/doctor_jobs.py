"""The INT8 doctor's full evaluations as jobs, for :func:`workbench.doctor.diagnose`'s ``runner=``.

The doctor sits below the workflows, so it does not know about runners: its
:class:`~workbench.doctor.fix.Evaluator` takes a callable. :func:`evaluation_runner` makes that
callable for a :mod:`workbench.workflows.jobs` runner: each configuration becomes an accuracy
job whose inputs travel as files (the model by its fingerprint; the calibration and evaluation
arrays as content-addressed ``.npz``, each with its data description: the ``__spec__`` entry that
says which inputs are fed as they are, a scalar or a recurrent state, instead of batched along
axis 0), and which runs :meth:`Evaluator.evaluate_here` on a copy of the evaluator rebuilt from
those files, so a worker evaluates exactly as this process would.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

from workbench.datasets.arrays import load_data
from workbench.datasets.calibration_sets import CalibrationSet
from workbench.doctor.fix import Config, Evaluator
from workbench.workflows.jobs import FileRef, Job, JobError, arrays_ref


def evaluate_config(spec: Evaluator, model: str, calib: str, evaluation: str, config: Config,
                    calib_source: str | None = None, calib_selection: dict | None = None) -> dict:
    """One full evaluation, wherever it runs: ``spec`` with its arrays read from the shipped files.

    Args:
        spec: The evaluator without its arrays, log or caches.
        model: The FP32 model (a path where the job runs).
        calib: The calibration ``.npz``; ``evaluation`` the evaluation ``.npz`` (with ``labels``);
            each with its data description (``__spec__``).
        config: The configuration.
        calib_source, calib_selection: The caller's :class:`CalibrationSet`'s ``source`` and
            ``selection`` (what the variant's record names), None for plain arrays.

    Returns:
        :meth:`Evaluator.evaluate_here`'s dict.
    """
    shipped = load_data(calib, what="calibration")
    calibration = CalibrationSet(shipped.inputs, calib_source or shipped.source, calib_selection or {"mode": "all"},
                                 shipped.sample_axes)
    data = load_data(evaluation, what="evaluation")  # labels may be absent: reference metrics need none
    evaluator = dataclasses.replace(spec, model_path=Path(model), calib=calibration, inputs=data.inputs,
                                    labels=data.labels, sample_axes=spec.sample_axes or data.sample_axes)
    return evaluator.evaluate_here(config)


def _label(config: Config) -> str:
    parts = [config.method]
    if config.exclude:
        parts.append(f"{len(config.exclude)} excluded")
    if config.drop_samples:
        parts.append(f"{len(config.drop_samples)} samples dropped")
    if config.num_samples is not None:
        parts.append(f"{config.num_samples} samples")
    return "doctor " + ", ".join(parts)


def _calibration_ref(calib) -> tuple[FileRef, dict]:
    """The calibration data as a shipped ``.npz`` (with its description), and the keywords that
    rebuild the same :class:`~workbench.datasets.CalibrationSet` where the job runs."""
    if isinstance(calib, CalibrationSet):
        ref = arrays_ref(calib.inputs, name="calibration", sample_axes=calib.sample_axes)
        return ref, {"calib_source": calib.source, "calib_selection": dict(calib.selection)}
    return arrays_ref(dict(calib), name="calibration"), {}  # a plain mapping keeps its own __spec__, if any


def evaluation_runner(runner) -> Callable[[Evaluator, Sequence[Config]], list[dict]]:
    """The ``runner=`` of :func:`workbench.doctor.diagnose` that evaluates on ``runner``.

    Args:
        runner: A :mod:`workbench.workflows.jobs` runner (a cluster's, usually).

    Returns:
        ``run(evaluator, configs) -> [{"value", "seconds", "path", "worker"}]``.

    Raises:
        JobError: (from ``run``) an evaluation failed where it ran; the doctor cannot go on
            without its value.
    """
    files: dict[int, tuple] = {}

    def run(evaluator: Evaluator, configs: Sequence[Config]) -> list[dict]:
        if id(evaluator) not in files:  # written once per examination
            files[id(evaluator)] = (FileRef.for_model(evaluator.model_path), *_calibration_ref(evaluator.calib),
                                    arrays_ref(evaluator.inputs, evaluator.labels, name="evaluation",
                                               sample_axes=evaluator.sample_axes),
                                    evaluator)
        model, calib, calib_facts, evaluation, _ = files[id(evaluator)]
        # the arrays travel as files; progress and report are this process's displays
        spec = dataclasses.replace(evaluator, calib={}, inputs={}, labels=None, runner=None, log=[],
                                   _cache={}, _variants={}, progress=None, report=None)
        jobs = [Job(evaluate_config, {"spec": spec, "model": model, "calib": calib, "evaluation": evaluation,
                                      "config": config, **calib_facts}, "accuracy", _label(config))
                for config in configs]
        results = runner.run(jobs)
        failed = [r for r in results if not r.ok]
        if failed:
            where = f" on {failed[0].worker}" if failed[0].worker else ""
            raise JobError(f"{failed[0].label}{where} failed: {failed[0].error}")
        return [{**r.value, "worker": r.worker} for r in results]

    return run
