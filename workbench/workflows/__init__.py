"""Workflows: the loops that make, evaluate and benchmark (sweep, quantize, build, evaluate,
bench, doctor, plan runs with their gates; serving with Triton: export, serve, perf) and the JSON the command line prints.
Long loops run in process or, given a Dask client or scheduler address, on a cluster (jobs, cluster,
sweep_jobs, doctor_jobs).
Nothing below this layer orchestrates."""

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
    "load_plan": "workbench.workflows.plan",
    "validate_plan": "workbench.workflows.plan",
    "plan_from_data": "workbench.workflows.plan",
    "PlanError": "workbench.workflows.plan_schema",
    "PLAN_SCHEMA": "workbench.workflows.plan_schema",
    "run_plan": "workbench.workflows.run",
    "RunResult": "workbench.workflows.run",
    "plan_from_row": "workbench.workflows.plan_save",
    "plan_from_doctor": "workbench.workflows.plan_save",
    "save_plan": "workbench.workflows.plan_save",
    "check_gates": "workbench.workflows.gates",
    "junit_xml": "workbench.workflows.gates",
    "export_triton": "workbench.workflows.triton.export",
    "serve_triton": "workbench.workflows.triton.serve",
    "TritonServer": "workbench.workflows.triton.serve",
    "docker_command": "workbench.workflows.triton.serve",
    "find_runtime": "workbench.workflows.triton.serve",
    "TritonEngine": "workbench.workflows.triton.perf",
    "triton_perf": "workbench.workflows.triton.perf",
    "perf_rows": "workbench.workflows.triton.perf",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
