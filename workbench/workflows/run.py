"""``workbench run PLAN``: every step of a plan, headless, with a verdict.

:func:`run_plan` loads and checks the model, makes each variant (the workspace's variant cache:
same model, recipe and calibration data give the same file), evaluates it against the FP32 model
and the labels, plans or builds its TensorRT engine (without TensorRT: the equivalent trtexec
command, and a note that no engine was built), benchmarks it on each backend, profiles its
per-layer time, runs the INT8 doctor when the plan asks, checks the gates, and adds one results
row per (variant, backend) to the results table.

On a Dask cluster (``client=``, ``workbench run --scheduler``, or the plan's ``scheduler:``) the
measurements the results table lacks go to the workers as jobs of one submission
(:mod:`workbench.workflows.sweep_jobs`), and so do the doctor's evaluations; the variants are
still made here (their hashes key the results table; a worker's copy must hash the same). Each
entry says where and when it was measured (``worker``, ``host``, ``machine``, ``started``,
``finished``; ``worker`` is None in process).

Resuming: a measurement is keyed by the variant file's hash, the backend and every measurement
setting; a key already in the results table is taken from there instead of measured again, so an
interrupted run picks up where it stopped (``remeasure=True`` measures anyway).

The report (HTML) is rendered above this layer (:mod:`workbench.reports`) from the
:class:`RunResult`; the JUnit XML comes from :func:`workbench.workflows.gates.junit_xml`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from workbench import __version__
from workbench.analysis.accuracy import DEFAULT_ATOL, DEFAULT_RTOL
from workbench.backends import get_backend, tensorrt_status
from workbench.datasets.arrays import load_data, num_samples, take_batch
from workbench.errors import WorkbenchError
from workbench.model.fingerprint import file_sha256
from workbench.precision.recipe import Recipe
from workbench.precision.variants import make_variant
from workbench.progress import resolve_progress
from workbench.tables.machine import cpu_name
from workbench.tables.results import ResultsTable, tool_versions
from workbench.workflows.build import build_command
from workbench.workflows.cluster import connect, open_runner
from workbench.workflows.doctor import doctor_command
from workbench.workflows.gates import (
    check_gates,
    gates_passed,
    junit_xml,
    tolerance_for,
)
from workbench.workflows.jobs import ClusterError, JobError, in_process_facts, utc_now
from workbench.workflows.plan import (
    Plan,
    PlanError,
    PlanFacts,
    Problem,
    VariantSpec,
    load_plan,
    validate_plan,
    variant_calibration,
)
from workbench.workflows.plan_metric import accuracy_drop, metric_value, plan_metric
from workbench.workflows.sweep import measure_part, measure_variant
from workbench.workflows.sweep_jobs import MeasureItem, measure_items
from workbench.workspace import write_atomic

LOGGER = logging.getLogger("workbench")
REPORT_MARKER = '<meta name="generator" content="trt-workbench run report">'
JUNIT_MARKER = 'name="trt-workbench run"'
BASELINE_NAME = "fp32-reference"
PROFILE_ITERATIONS = 10
METRIC_COLUMNS = ("top1", "top5", "top1_agreement", "min_cosine", "min_sqnr_db")
# Where and when a measurement ran (the Dask worker's address, None in process; its host and machine).
WHERE_COLUMNS = ("worker", "host", "machine", "started", "finished")


@dataclass
class RunResult:
    """Everything a run measured and decided; :meth:`to_dict` is the ``--json`` contract.

    Attributes:
        plan: The plan.
        facts: What validating the plan learned (model, metric, calibration hashes).
        entries: One dict per (variant, backend), plan order, the FP32 reference first.
        gates: The gate results.
        builds: Variant name -> TensorRT build step (engine or trtexec command).
        layers: ``(variant, backend)`` -> profiled layer table (pandas), when profiled.
        doctor: The doctor's report when the plan asked for it.
        environment: Tool versions, machine, TensorRT.
        results_table: The results file the rows went to.
        warnings: Steps that could not run, in one line each.
        started: When the run started (UTC).
        seconds: Wall time.
        report, junit: Where they were written (set by the caller), or None.
    """

    plan: Plan
    facts: PlanFacts
    entries: list[dict]
    gates: list
    builds: dict
    layers: dict
    doctor: dict | None
    environment: dict
    results_table: str
    warnings: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    seconds: float = 0.0
    report: str | None = None
    junit: str | None = None

    @property
    def passed(self) -> bool:
        """Every gate holds (skipped gates neither hold nor fail)."""
        return gates_passed(self.gates)

    @property
    def metric(self) -> str:
        return self.facts.metric

    def variant_entries(self) -> list[dict]:
        """The plan's variants' entries (without the FP32 reference unless the plan lists it)."""
        return [e for e in self.entries if e["in_plan"]]

    def to_dict(self) -> dict:
        """The JSON contract of ``workbench run --json`` (keys are added, never renamed).

        Returns:
            ``passed``, ``gates`` (``{gate, variant, backend, value, limit, passed, ...}``),
            ``variants`` (``name``, ``precision``, ``recipe``, ``file``, the metric values,
            ``median_ms``, ``p99_ms``, ``throughput``, ``backend``, where and when it was measured:
            ``worker`` (None in process), ``host``, ``machine``, ``started``, ``finished``, ...),
            ``baseline`` (the FP32
            reference's entries), ``report``, ``junit``, ``environment``, ``plan``, ``model``,
            ``metric``, ``tensorrt``, ``doctor``, ``results``, ``warnings``, ``seconds``.
        """
        summary = self.facts.model.summary
        return _json_safe({
            "passed": self.passed,
            "gates": [g.to_dict() for g in self.gates],
            "variants": [_public(e) for e in self.variant_entries()],
            "baseline": [_public(e) for e in self.entries if e["baseline"]],
            "report": self.report,
            "junit": self.junit,
            "environment": self.environment,
            "plan": self.plan.to_dict(),
            "model": {"path": str(self.plan.model), "sha256": self.facts.model_sha256,
                      "name": self.plan.model.stem, "inputs": summary.inputs, "outputs": summary.outputs,
                      "node_count": summary.node_count, "parameters": summary.parameters,
                      "flops": summary.flops},
            "metric": self.metric,
            "tensorrt": self.tensorrt(),
            "builds": self.builds,
            "doctor": _doctor_summary(self.doctor),
            "results": self.results_table,
            "warnings": list(self.warnings),
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": round(self.seconds, 3),
        })

    def tensorrt(self) -> dict:
        """Whether TensorRT ran here, and if not why (one line)."""
        problem = self.environment["tensorrt"]["problem"]
        return {"available": problem is None, "problem": problem, "required": self.plan.require_tensorrt,
                "measured": "tensorrt" in self.plan.backends and problem is None,
                "engines_built": sum(bool(b.get("engine_built")) for b in self.builds.values())}

    def junit_xml(self) -> str:
        """The gates as JUnit XML (one test case per gate result)."""
        env = self.environment
        properties = {"model": self.plan.model, "model_sha256": self.facts.model_sha256, "metric": self.metric,
                      "plan": self.plan.path, "passed": self.passed, "cpu": env.get("cpu"),
                      "tensorrt": env["tensorrt"].get("version") or f"absent: {env['tensorrt']['problem']}",
                      **{f"version.{k}": v for k, v in env.get("tools", {}).items()}}
        return junit_xml(self.gates, suite=self.plan.name, properties=properties, seconds=self.seconds,
                         timestamp=self.started)


_PUBLIC_SKIP = ("in_plan", "row", "emulation_path")


def _public(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in _PUBLIC_SKIP}


def _json_safe(value):
    """Non-finite floats as None (strict JSON), recursively."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _doctor_summary(report: dict | None) -> dict | None:
    if report is None:
        return None
    keys = ("fp32_accuracy", "int8_accuracy", "drop_pp", "culprits", "recipe", "fixed_accuracy", "fixed_drop_pp",
            "target_drop", "target_met", "fix_needed", "summary", "evaluations", "variants")
    return {k: report.get(k) for k in keys}


# --------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------


def run_environment() -> dict:
    """Tool versions, the machine, and TensorRT's version and GPU (or why there is none).

    Returns:
        ``workbench``, ``python``, ``platform``, ``cpu``, ``cpu_count``, ``tools`` (package ->
        version), ``tensorrt`` (``available``, ``version``, ``problem``), ``gpu`` (name and
        compute capability, or None).
    """
    problem = tensorrt_status()
    tools = tool_versions()
    trt = {"available": problem is None, "version": tools.get("tensorrt"), "problem": problem}
    gpu = None
    if problem is None:
        from workbench.backends.tensorrt.build import current_platform

        here = current_platform()
        trt["version"] = here.tensorrt_version
        gpu = {"name": here.gpu_name, "compute_capability": here.compute_capability}
    return {
        "workbench": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "tools": tools,
        "tensorrt": trt,
        "gpu": gpu,
    }


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def run_plan(plan, *, facts: PlanFacts | None = None, remeasure: bool = False, progress: Any = None,
             client: Any = None) -> RunResult:
    """Run every step of a plan and check its gates.

    Args:
        plan: A :class:`Plan` or the path of a plan file.
        facts: :func:`validate_plan`'s result when the caller already validated the plan.
        remeasure: Measure again even when the results table holds this exact measurement.
        progress: See :mod:`workbench.progress` (the CLI passes ``"log"``: lines on stderr).
        client: Where the measurements and the doctor's evaluations run: None (the plan's
            ``scheduler:``, else this process), a scheduler address (``tcp://HOST:PORT``), a
            ``dask.distributed.Client`` or a runner (:mod:`workbench.workflows.cluster`). The
            variants are made here too (their hashes key the results table); the TensorRT build
            step and the per-layer profile run here.

    Returns:
        The :class:`RunResult` (``passed`` says whether every gate held).

    Raises:
        PlanError: The plan is invalid (nothing was run).
        ClusterError: The scheduler cannot be used (nothing was run).
        WorkbenchError: A step failed on bad input (the message names it and the fix).
    """
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    plan = plan if isinstance(plan, Plan) else load_plan(plan)
    facts = facts or validate_plan(plan)
    with _open_runner(plan, client) as runner:
        return _run(plan, facts, remeasure, progress, runner, started, clock)


@contextlib.contextmanager
def _open_runner(plan: Plan, client: Any) -> Iterator[Any]:
    """The runner of ``client``, else of the plan's ``scheduler:`` (a problem there names its key and line)."""
    if client is not None or not plan.scheduler:
        with open_runner(client) as runner:
            yield runner
        return
    try:
        runner = connect(plan.scheduler)
    except ClusterError as err:
        raise PlanError([plan.problem(("scheduler",), str(err))], plan.path) from None
    with runner:
        yield runner


def _run(plan: Plan, facts: PlanFacts, remeasure: bool, progress: Any, runner, started: datetime,
         clock: float) -> RunResult:
    """:func:`run_plan` once the plan is checked and the runner (None: this process) is open."""
    environment = run_environment()
    trt_problem = environment["tensorrt"]["problem"]
    backends = [b for b in plan.backends if b != "tensorrt" or trt_problem is None]
    warnings = []
    skipped = {}
    if "tensorrt" in plan.backends and trt_problem:
        skipped["tensorrt"] = f"TensorRT cannot run here: {trt_problem}"
        warnings.append(f"the TensorRT steps were skipped: {trt_problem}")
        LOGGER.warning("%s", warnings[-1])
    table = ResultsTable(plan.results)
    specs = _specs(plan)
    evaluation = load_data(plan.evaluation, facts.model.input_names, what="evaluation")
    measured = {} if remeasure else {r["run_key"]: r for r in table.load() if r.get("run_key")}
    context = _Context(plan, facts, table, evaluation.inputs, file_sha256(plan.evaluation), measured,
                       evaluation.sample_axes)
    entries, builds, layers = [], {}, {}
    reporter = resolve_progress(progress)
    with reporter.task(f"run {plan.name}", total=len(specs) * (1 + len(backends)), unit="step") as task:
        made = []
        for spec, in_plan in specs:
            task.update(0, f"{spec.name}: make the variant")
            variant = make_variant(facts.model, spec.recipe, variant_calibration(plan, spec), progress=False)
            builds[spec.name] = _build_step(plan, variant, trt_problem)
            made.append((spec, in_plan, variant))
            task.update(1, f"{spec.name}: made ({'cached' if variant.cached else 'new'})")
        remote = _measure_remote(context, runner, made, backends, progress) if runner is not None else {}
        for spec, in_plan, variant in made:
            for backend in backends:
                entry = _measured_entry(context, spec, variant, backend, in_plan, builds[spec.name], warnings,
                                        remote.get((spec.name, backend)))
                entries.append(entry)
                if plan.profile_layers and not entry.get("error"):
                    layers[(spec.name, backend)] = _profile(context, variant, entry, warnings)
                task.update(1, f"{spec.name} on {backend}: {_headline(entry, facts.metric)}")
    _add_drops(entries, facts.metric)
    doctor = _doctor(plan, facts, progress, runner) if plan.doctor else None
    gates = check_gates(plan.gates, entries, variants=[v.name for v in plan.variants], backends=plan.backends,
                        batch_sizes=plan.batch_sizes, skipped_backends=skipped)
    result = RunResult(plan, facts, entries, gates, builds, layers, doctor, environment, str(table.path),
                       warnings, started, time.perf_counter() - clock)
    failed = [g for g in gates if g.passed is False]
    LOGGER.info("run %s: %d gate(s), %d failed%s", plan.name, len(gates), len(failed),
                "".join(f"\n  FAILED {g.name}: {g.message}" for g in failed))
    return result


def _measured_entry(context: "_Context", spec: VariantSpec, variant, backend: str, in_plan: bool, build: dict,
                    warnings: list, remote: dict | None) -> dict:
    """One (variant, backend) entry: from the results table, the cluster's row, or measured here.

    A TensorRT measurement that fails gives an entry with ``error`` (its gates fail with the
    reason; the rest runs); any other failure is raised, here or from a worker alike.
    """
    try:
        return _measure(context, spec, variant, backend, in_plan, build, remote)
    except WorkbenchError as err:
        if backend != "tensorrt":
            raise
        entry = _entry(context, spec, variant, {}, backend, in_plan, build, False)
        entry.update(error=str(err), notes=f"not measured: {err}")
        warnings.append(f"{spec.name} on tensorrt: {err}")
        return entry


@dataclass
class _Context:
    plan: Plan
    facts: PlanFacts
    table: ResultsTable
    inputs: dict
    eval_sha256: str
    measured: dict  # run key -> results row already in the table
    sample_axes: dict | None = None  # the evaluation data's description (None: samples along axis 0)


def _specs(plan: Plan) -> list[tuple[VariantSpec, bool]]:
    """The FP32 reference first (the plan's own fp32 variant when it lists one), then the plan's variants."""
    reference = Recipe("fp32").hash()
    own = next((v for v in plan.variants if v.recipe.hash() == reference), None)
    specs = [] if own is not None else [(VariantSpec(BASELINE_NAME, Recipe("fp32", name=BASELINE_NAME)), False)]
    if own is not None:
        specs.append((own, True))
    return specs + [(v, True) for v in plan.variants if v is not own]


def _headline(entry: dict, metric: str) -> str:
    value = metric_value(entry, metric)
    shown = "-" if value is None else (f"{value:.4f}" if math.isfinite(value) else "exact")
    return f"{metric} {shown}, median {entry.get('median_ms') or float('nan'):.4f} ms" + \
        (" (from the results table)" if entry.get("measured_cached") else "")


def run_key(context: _Context, variant_sha: str, backend: str, atol: float, rtol: float) -> str:
    """What a measurement depends on, hashed: the variant file, backend, data and every setting."""
    plan = context.plan
    payload = {"variant_sha256": variant_sha, "backend": backend, "batch_sizes": list(plan.batch_sizes),
               "benchmark": plan.benchmark, "atol": atol, "rtol": rtol, "evaluation_sha256": context.eval_sha256,
               "model": plan.model.stem}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _settings(context: _Context, spec: VariantSpec, backend: str) -> dict:
    """The measurement settings of (variant, backend): the plan's benchmark and the gates' tolerances."""
    plan = context.plan
    atol, rtol = tolerance_for(plan.gates, spec.name, backend) or (DEFAULT_ATOL, DEFAULT_RTOL)
    bench = plan.benchmark
    return dict(batch_sizes=plan.batch_sizes, iterations=bench["iterations"], warmup=bench["warmup"],
                threads=bench["threads"], rounds=bench["rounds"], atol=atol, rtol=rtol)


def _measure_remote(context: _Context, runner, made: list, backends: list[str], progress) -> dict:
    """The measurements not in the results table, as jobs on ``runner``: ``(variant, backend) -> row``.

    Each job makes (or reuses) the variant where it runs, by the same cache key as here, and
    measures it (:func:`~workbench.workflows.sweep.measure_part`); rows come back with where
    and when they were measured.
    """
    plan, items, keys = context.plan, [], set(context.measured)
    for spec, _in_plan, variant in made:
        for backend in backends:
            settings = _settings(context, spec, backend)
            key = run_key(context, variant.record["file"]["sha256"], backend, settings["atol"], settings["rtol"])
            if key not in keys:  # once per key: a second variant with the same file takes the first's row
                keys.add(key)
                items.append(MeasureItem(plan.model, spec.recipe.to_dict(), variant_calibration(plan, spec),
                                         plan.evaluation, backend, plan.model.stem, spec.name, settings))
    if not items:
        return {}
    rows = measure_items(runner, items, job=measure_part, progress=progress)
    return {(item.label, item.backend): row for item, row in zip(items, rows)}


def _measure(context: _Context, spec: VariantSpec, variant, backend: str, in_plan: bool, build: dict,
             remote: dict | None = None) -> dict:
    plan = context.plan
    settings = _settings(context, spec, backend)
    sha = variant.record["file"]["sha256"]
    key = run_key(context, sha, backend, settings["atol"], settings["rtol"])
    row = context.measured.get(key)
    cached = row is not None
    if row is None:
        row = _remote_row(spec, backend, sha, remote) if remote is not None else _measure_here(
            context, variant, backend, settings)
        row.update(variant=spec.name, run_key=key, plan=None if plan.path is None else str(plan.path),
                   variant_sha256=sha, source="workbench run")
        row["id"] = context.table.add(row)
        context.measured[key] = row
    return _entry(context, spec, variant, row, backend, in_plan, build, cached)


def _measure_here(context: _Context, variant, backend: str, settings: dict) -> dict:
    """:func:`measure_variant` in this process, the row noting where (no worker) and when."""
    started, clock = utc_now(), time.perf_counter()
    row = measure_variant(variant, context.plan.model.stem, context.plan.model, context.plan.evaluation,
                          context.inputs, backend=backend, sample_axes=context.sample_axes, **settings)
    return {**row, **in_process_facts(started, clock)}


def _remote_row(spec: VariantSpec, backend: str, sha: str, row: dict) -> dict:
    """A worker's row, checked: it measured without error, and the variant it made is the one made here.

    Raises:
        JobError: The job failed where it ran, or the worker's variant has other bytes.
    """
    where = f" on {row.get('worker')}" if row.get("worker") else ""
    if row.get("error"):
        raise JobError(f"{spec.name} on {backend}{where}: {row['error']}")
    theirs = row.get("variant_sha256")
    if theirs != sha:
        raise JobError(f"{spec.name}: the variant made{where} has sha256 {str(theirs)[:12]}, not {sha[:12]} as "
                       "made here; give the workers the same tool versions as this machine (see the row's versions).")
    return dict(row)


def _entry(context: _Context, spec: VariantSpec, variant, row: dict, backend: str, in_plan: bool,
           build: dict, cached: bool) -> dict:
    record = variant.record
    outputs = row.get("outputs") or {}
    expected = spec.expect.get("sha256")
    entry = {
        "name": spec.name,
        "precision": variant.precision,
        "recipe": spec.recipe.to_dict(),
        "file": str(variant.path),
        "sha256": record["file"]["sha256"],
        "calibration_sha256": (record.get("calibration") or {}).get("sha256"),
        "backend": backend,
        "metric": context.facts.metric,
        "metric_value": metric_value(row, context.facts.metric),
        **{c: row.get(c) for c in METRIC_COLUMNS},
        "accuracy_drop": None,
        "metric_unit": plan_metric(context.facts.metric).unit,
        "max_abs_error": max((o.get("max_abs_error") or 0.0 for o in outputs.values()), default=None),
        "max_rel_error": max((o.get("max_rel_error") or 0.0 for o in outputs.values()), default=None),
        "outputs": outputs,
        "tolerance": row.get("tolerance"),
        "samples": row.get("samples"),
        **{c: row.get(c) for c in ("median_ms", "p90_ms", "p99_ms", "throughput", "batch", "latency",
                                   "size_bytes", "accuracy_on", "latency_on", "tool", "notes")},
        "model_mb": None if row.get("size_bytes") is None else row["size_bytes"] / 1e6,
        "variant_cached": variant.cached,
        "measured_cached": cached,
        **{c: row.get(c) for c in WHERE_COLUMNS},
        "row_id": row.get("id"),
        "expected_sha256": expected,
        "reproduced": None if not expected else expected == record["file"]["sha256"],
        "trtexec_command_line": build.get("trtexec_command_line"),
        "engine": build.get("engine"),
        "baseline": spec.name == BASELINE_NAME or not in_plan or spec.recipe.hash() == Recipe("fp32").hash(),
        "in_plan": in_plan,
        "emulation_path": None if variant.emulation_path is None else str(variant.emulation_path),
    }
    return entry


def _add_drops(entries: list[dict], metric: str) -> None:
    """Each entry's metric drop against the FP32 reference on the same backend."""
    baselines = {e["backend"]: e for e in entries if e["baseline"]}
    for entry in entries:
        base = baselines.get(entry["backend"])
        entry["accuracy_drop"] = accuracy_drop(entry["metric_value"], base and base["metric_value"], metric)


def _build_step(plan: Plan, variant, trt_problem: str | None) -> dict:
    """The TensorRT engine where TensorRT runs; elsewhere its plan and the equivalent trtexec command."""
    batch = max(plan.batch_sizes)
    try:
        result = build_command(variant.path, plan.build_recipe, batch=batch, data=plan.evaluation,
                               plan_only=trt_problem is not None, progress=None)
    except WorkbenchError as err:
        LOGGER.warning("TensorRT build of %s failed: %s", variant.path.name, err)
        return {"engine_built": False, "engine": None, "error": str(err), "trtexec_command": None,
                "trtexec_command_line": None, "note": f"the TensorRT build failed: {err}"}
    argv = result.get("trtexec_command") or result["plan"]["trtexec_command"]
    built = bool(result.get("built"))
    return {
        "engine_built": built,
        "engine": result.get("engine") if built else None,
        "cached": result.get("cached") if built else None,
        "trtexec_command": argv,
        "trtexec_command_line": result["plan"]["trtexec_command_line"] if not built else " ".join(argv),
        "note": None if built else f"no engine built: {trt_problem}",
    }


def _profile(context: _Context, variant, entry: dict, warnings: list):
    """Per-layer time of what the benchmark timed, at the first batch size (a short profile)."""
    backend = entry["backend"]
    plan = context.plan
    if backend == "onnxruntime":
        path = variant.path if entry.get("latency_on") == "variant" else variant.ort_path
        options = dict(variant.ort_session_options)
        if plan.benchmark["threads"] is not None:
            options["intra_op_num_threads"] = plan.benchmark["threads"]
    else:
        path, options = variant.path, {}
    size = plan.batch_sizes[0]
    if num_samples(context.inputs, context.sample_axes) < size:
        return None
    feed = take_batch(context.inputs, size, context.sample_axes)
    try:
        engine = get_backend(backend).build(path, options or None)
        return engine.profile(feed, iterations=PROFILE_ITERATIONS, warmup=2)
    except WorkbenchError as err:
        warnings.append(f"per-layer profile of {entry['name']} on {backend} failed: {err}")
        return None


def _doctor(plan: Plan, facts: PlanFacts, progress, runner=None) -> dict:
    settings = plan.doctor
    recipe = None
    if settings.get("variant"):
        recipe = plan.variant(settings["variant"]).recipe.with_(name=None).to_dict()
    return doctor_command(plan.model, plan.calibration, plan.evaluation, target_drop=settings["target_drop"],
                          recipe=recipe, layerwise_samples=settings["layerwise_samples"],
                          progress=progress if progress in (None, "log", "tqdm") else None, client=runner)


# --------------------------------------------------------------------------------------------
# Outputs: never over a user's file
# --------------------------------------------------------------------------------------------


def check_output(path, marker: str, key: str, plan: Plan | None = None) -> Problem | None:
    """Refuse an output path that holds a file a run did not write (a user's file).

    Args:
        path: The output path.
        marker: Text every file of this kind that a run writes contains.
        key: The plan key or option that names it, for the message.
        plan: The plan (for the line of ``key``).

    Returns:
        None when the path is free or holds an earlier run's output; else the problem.
    """
    path = Path(path)
    if not path.exists():
        return None
    if path.is_file():
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                if marker in handle.read(1 << 16):
                    return None
        except OSError:
            pass
    message = (f"{path} exists and was not written by `workbench run`; a run never overwrites other files. "
               "Choose another path (or move that file).")
    return plan.problem((key,), message) if plan is not None and key in plan.data else Problem(key, message)


def check_outputs(plan: Plan, report=None, junit=None) -> None:
    """:func:`check_output` for the report and JUnit paths.

    Raises:
        PlanError: One of them holds another file.
    """
    problems = [p for p in (check_output(report, REPORT_MARKER, "report", plan) if report else None,
                            check_output(junit, JUNIT_MARKER, "junit", plan) if junit else None) if p]
    if problems:
        raise PlanError(problems, plan.path)


def write_junit(result: RunResult, path) -> Path:
    """Write the run's JUnit XML atomically (see :func:`check_outputs` first)."""
    path = write_atomic(Path(path).expanduser(), result.junit_xml())
    result.junit = str(path)
    return path
