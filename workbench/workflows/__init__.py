"""Workflows: the loops that make, evaluate and benchmark (sweep, quantize, build, evaluate,
bench, doctor) and the JSON the command line prints. Nothing below this layer orchestrates.
Long loops run in process or, given a Dask client or scheduler address, on a cluster (jobs,
cluster, sweep_jobs, doctor_jobs)."""

from __future__ import annotations

from workbench._lazy import lazy_exports

_EXPORTS = {
    "measure_variants": "workbench.workflows.sweep",
    "measure_variant": "workbench.workflows.sweep",
    "accuracy_table": "workbench.workflows.sweep",
    "describe_variants": "workbench.workflows.sweep",
    "op_changes": "workbench.workflows.sweep",
    "rows_frame": "workbench.workflows.sweep",
    "evaluate_variant": "workbench.workflows.sweep",
    "quantize_command": "workbench.workflows.quantize",
    "OutputExistsError": "workbench.workflows.quantize",
    "build_command": "workbench.workflows.build",
    "evaluate_command": "workbench.workflows.evaluate",
    "bench_engine": "workbench.workflows.bench",
    "doctor_command": "workbench.workflows.doctor",
    "measure_items": "workbench.workflows.sweep_jobs",
    "MeasureItem": "workbench.workflows.sweep_jobs",
    "measure_part": "workbench.workflows.sweep",
    "sweep_items": "workbench.workflows.sweep",
    "open_runner": "workbench.workflows.cluster",
    "connect": "workbench.workflows.cluster",
    "local_cluster": "workbench.workflows.cluster",
    "ClusterRunner": "workbench.workflows.cluster",
    "LocalRunner": "workbench.workflows.jobs",
    "ClusterError": "workbench.workflows.jobs",
    "JobError": "workbench.workflows.jobs",
    "evaluation_runner": "workbench.workflows.doctor_jobs",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
