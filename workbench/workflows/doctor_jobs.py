"""The INT8 doctor's full evaluations as jobs, for :func:`workbench.doctor.diagnose`'s ``runner=``.

The doctor sits below the workflows, so it does not know about runners: its
:class:`~workbench.doctor.fix.Evaluator` takes a callable. :func:`evaluation_runner` makes that
callable for a :mod:`workbench.workflows.jobs` runner: each configuration becomes an accuracy
job whose inputs travel as files (the model by its fingerprint; the calibration and evaluation
arrays as content-addressed ``.npz``), and which runs :meth:`Evaluator.evaluate_here` on a copy
of the evaluator rebuilt from those files, so a worker evaluates exactly as this process would.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

from workbench.doctor.fix import Config, Evaluator
from workbench.workflows.jobs import FileRef, Job, JobError, arrays_ref, load_arrays


def evaluate_config(spec: Evaluator, model: str, calib: str, evaluation: str, config: Config) -> dict:
    """One full evaluation, wherever it runs: ``spec`` with its arrays read from the shipped files.

    Args:
        spec: The evaluator without its arrays, log or caches.
        model: The FP32 model (a path where the job runs).
        calib: The calibration ``.npz``; ``evaluation`` the evaluation ``.npz`` (with ``labels``).
        config: The configuration.

    Returns:
        :meth:`Evaluator.evaluate_here`'s dict.
    """
    data = load_arrays(evaluation)
    labels = data.pop("labels", None)  # reference metrics need none
    evaluator = dataclasses.replace(spec, model_path=Path(model), calib=load_arrays(calib), inputs=data,
                                    labels=labels)
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


def _calibration_arrays(calib) -> dict:
    """The calibration arrays of a :class:`~workbench.datasets.CalibrationSet` or a plain mapping."""
    return dict(calib.inputs) if hasattr(calib, "inputs") else dict(calib)


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
            files[id(evaluator)] = (FileRef.for_model(evaluator.model_path),
                                    arrays_ref(_calibration_arrays(evaluator.calib), name="calibration"),
                                    arrays_ref(evaluator.inputs, evaluator.labels, name="evaluation"),
                                    evaluator)
        model, calib, evaluation, _ = files[id(evaluator)]
        # the arrays travel as files; progress and report are this process's displays
        spec = dataclasses.replace(evaluator, calib={}, inputs={}, labels=None, runner=None, log=[],
                                   _cache={}, _variants={}, progress=None, report=None)
        jobs = [Job(evaluate_config, {"spec": spec, "model": model, "calib": calib, "evaluation": evaluation,
                                      "config": config}, "accuracy", _label(config)) for config in configs]
        results = runner.run(jobs)
        failed = [r for r in results if not r.ok]
        if failed:
            where = f" on {failed[0].worker}" if failed[0].worker else ""
            raise JobError(f"{failed[0].label}{where} failed: {failed[0].error}")
        return [{**r.value, "worker": r.worker} for r in results]

    return run
