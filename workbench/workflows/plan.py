"""Plan files: one YAML file that names everything a CI run needs, validated before any work starts.

A plan names the model, the calibration and evaluation data, the metric, the variants (the same
:class:`~workbench.precision.Recipe` settings the notebooks and ``workbench quantize`` use), the
backends and batch sizes to measure, the gates that give the verdict, and where the report goes.
The smallest plan every version accepts (keys are added, never renamed)::

    model: model.onnx
    calibration: model.calib.npz
    evaluation: model.eval.npz
    metric: top1
    variants:
      - precision: fp16
      - precision: int8
        method: minmax
    backends: [onnxruntime]
    batch_sizes: [1, 32]
    gates:
      max_accuracy_drop: 1.0
    report: report.html

Validation happens in two steps, both before any work: :func:`load_plan` parses the YAML
(keeping each key's line), checks it against :data:`~workbench.workflows.plan_schema.PLAN_SCHEMA`
(JSON Schema: unknown keys,
wrong types and missing keys are refused) and resolves paths relative to the plan file;
:func:`validate_plan` then checks what needs the files (they exist, the model loads, the data
fits it, every recipe applies to it, pinned hashes still match). Each problem names its key
(``variants[1].method``), its line and the fix; :class:`PlanError` carries them all.

Saving plans from the notebooks (the tradeoff explorer, the doctor) is :mod:`workbench.workflows.plan_save`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from workbench.backends import tensorrt_status
from workbench.backends.tensorrt.recipe import load_recipe
from workbench.datasets.arrays import (
    load_data,
    load_labelled,
    num_samples,
    select_samples,
)
from workbench.datasets.calibration_sets import from_arrays, load_calibration_set
from workbench.errors import WorkbenchError
from workbench.model import load_model
from workbench.model.fingerprint import model_sha256
from workbench.precision.qdq import QuantizationError, check_node_names, check_op_types
from workbench.precision.recipe import Recipe, RecipeError
from workbench.workflows.plan_metric import default_metric, plan_metric
from workbench.workflows.plan_schema import (
    VARIANT_EXTRA_KEYS,
    PlanError,
    Problem,
    key_text,
    line_of,
    parse_yaml,
    schema_problems,
    yaml_type,
)

# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


@dataclass
class VariantSpec:
    """One variant of the plan.

    Attributes:
        name: Its name (``name:``, else the recipe's label); unique within the plan.
        recipe: The :class:`Recipe` (``name`` set to the variant's name).
        drop_calibration_samples: Calibration sample indices left out (what a doctor fix may need).
        expect: Pinned hashes: ``calibration_sha256``, ``sha256`` (the variant file).
        index: Position in ``variants:`` (for messages).
    """

    name: str
    recipe: Recipe
    drop_calibration_samples: tuple[int, ...] = ()
    expect: dict = field(default_factory=dict)
    index: int = -1

    def to_dict(self) -> dict:
        data = self.recipe.to_dict()
        if self.drop_calibration_samples:
            data["drop_calibration_samples"] = list(self.drop_calibration_samples)
        if self.expect:
            data["expect"] = dict(self.expect)
        return data


@dataclass
class GateSpec:
    """One gate: a limit on one figure, for all variants or named ones, on one backend or all.

    Attributes:
        gate: The gate's key (``max_accuracy_drop``...).
        limit: The limit.
        variants: Variant names it applies to; None for all.
        backend: The backend it applies to; None for every measured backend.
        percentile: ``median``/``p50``/``p90``/``p99`` (``max_latency_ms`` only).
        batch: Batch size (``max_latency_ms``, ``min_throughput``); None: the first of ``batch_sizes``.
        key: Where it is in the plan (``gates.max_latency_ms[1]``).
        path: The same as a key path (``("gates", "max_latency_ms", 1)``), for lines.
    """

    gate: str
    limit: float
    variants: tuple[str, ...] | None = None
    backend: str | None = None
    percentile: str | None = None
    batch: int | None = None
    key: str = ""
    path: tuple = ()

    def applies_to(self, variant: str, backend: str) -> bool:
        return (self.variants is None or variant in self.variants) and self.backend in (None, backend)

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"limit": self.limit}
        if self.variants is not None:
            data["variants"] = list(self.variants)
        for key in ("backend", "percentile", "batch"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


@dataclass
class Plan:
    """A parsed plan with paths resolved against the plan file's folder.

    Attributes:
        path: The plan file (None for a plan given as data).
        data: The plan as parsed.
        lines: Key path -> line in the file.
        name: ``name:``, else the file's stem.
        model, calibration, evaluation: Resolved paths (``calibration`` may be None).
        model_sha256: Pinned model hash, or None.
        metric: The metric name (:mod:`workbench.workflows.plan_metric`).
        variants: The variants, in plan order.
        backends: Backends to measure.
        batch_sizes: Benchmark batch sizes (the first fills the headline latency).
        benchmark: ``iterations``, ``warmup``, ``rounds``, ``threads``.
        gates: The gates.
        report, junit, results: Output paths or None.
        require_tensorrt: Refuse to run where TensorRT cannot.
        build_recipe: TensorRT build recipe (preset name or resolved ``.json`` path), or None.
        doctor: ``{"target_drop", "variant", "layerwise_samples"}`` when the doctor should run.
        profile_layers: Profile per-layer time of each variant.
        scheduler: The Dask scheduler (``tcp://HOST:PORT``) the measurements and the doctor's
            evaluations run on, or None (this process); ``workbench run --scheduler`` wins over it.
    """

    path: Path | None
    data: dict
    lines: dict
    name: str
    model: Path
    evaluation: Path
    calibration: Path | None
    model_sha256: str | None
    metric: str | None
    variants: list[VariantSpec]
    backends: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    benchmark: dict
    gates: list[GateSpec]
    report: Path | None
    junit: Path | None
    results: Path | None
    require_tensorrt: bool
    build_recipe: str | None
    doctor: dict | None
    profile_layers: bool
    scheduler: str | None = None

    def line(self, *path) -> int | None:
        """The line of a key path in the plan file."""
        return line_of(self.lines, path)

    def problem(self, path: Sequence, message: str) -> Problem:
        """A :class:`Problem` at ``path`` (a key path tuple)."""
        return Problem(key_text(path), message, self.line(*path))

    def variant(self, name: str) -> VariantSpec:
        return next(v for v in self.variants if v.name == name)

    def to_dict(self) -> dict:
        """The plan as resolved (absolute paths, full recipes), JSON-ready."""
        return {
            "plan": None if self.path is None else str(self.path),
            "name": self.name,
            "model": str(self.model),
            "calibration": None if self.calibration is None else str(self.calibration),
            "evaluation": str(self.evaluation),
            "metric": self.metric,
            "variants": [{"name": v.name, **v.to_dict()} for v in self.variants],
            "backends": list(self.backends),
            "batch_sizes": list(self.batch_sizes),
            "benchmark": dict(self.benchmark),
            "gates": [{"gate": g.gate, **g.to_dict()} for g in self.gates],
            "report": None if self.report is None else str(self.report),
            "junit": None if self.junit is None else str(self.junit),
            "results": None if self.results is None else str(self.results),
            "require_tensorrt": self.require_tensorrt,
            "build_recipe": self.build_recipe,
            "doctor": self.doctor,
            "profile_layers": self.profile_layers,
            "scheduler": self.scheduler,
        }


DEFAULT_BENCHMARK = {"iterations": 50, "warmup": 5, "rounds": 1, "threads": None}


def load_plan(path) -> Plan:
    """Read and schema-check a plan file; resolve its paths against the file's folder.

    Args:
        path: The ``.yaml`` plan file.

    Returns:
        The :class:`Plan` (not yet checked against its files: see :func:`validate_plan`).

    Raises:
        PlanError: No such file, not YAML, or it breaks the schema (every problem, with lines).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise PlanError([Problem("", "no such plan file. Give the path of a .yaml plan "
                                     "(see the README's 'From the notebook to CI').")], path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError([Problem("", f"cannot be read ({err}).")], path) from err
    data, lines = parse_yaml(text, str(path))
    return plan_from_data(data, base=path.parent.resolve(), lines=lines, path=path)


def plan_from_data(data: Any, *, base=None, lines: Mapping[tuple, int] | None = None, path=None) -> Plan:
    """A :class:`Plan` from parsed plan data (what :func:`load_plan` does after reading YAML).

    Args:
        data: The plan as a mapping.
        base: Folder that relative paths are relative to (default: the current folder).
        lines: Key path -> line, for messages.
        path: The plan file, for messages.

    Raises:
        PlanError: The data breaks the schema or names the same variant twice, or a gate names a
            variant, backend or batch size the plan does not have.
    """
    lines = dict(lines or {})
    source = None if path is None else str(path)
    if not isinstance(data, dict):
        raise PlanError([Problem("", f"a plan is a YAML mapping of keys (model:, variants:, ...), got "
                                     f"{yaml_type(data)}.", lines.get(()))], source)
    problems = schema_problems(data, lines)
    if problems:
        raise PlanError(problems, source)
    base = Path(base) if base is not None else Path.cwd()

    def resolve(value):
        return None if value is None else _resolve(base, value)

    variants, problems = _variants(data["variants"], lines)
    names = [v.name for v in variants]
    plan = Plan(
        path=None if path is None else Path(path),
        data=data,
        lines=lines,
        name=data.get("name") or (Path(path).stem.removesuffix(".plan") if path is not None else "plan"),
        model=resolve(data["model"]),
        evaluation=resolve(data["evaluation"]),
        calibration=resolve(data.get("calibration")),
        model_sha256=data.get("model_sha256"),
        metric=data.get("metric"),
        variants=variants,
        backends=tuple(data.get("backends") or ("onnxruntime",)),
        batch_sizes=tuple(data.get("batch_sizes") or (1,)),
        benchmark={**DEFAULT_BENCHMARK, **(data.get("benchmark") or {})},
        gates=[],
        report=resolve(data.get("report")),
        junit=resolve(data.get("junit")),
        results=resolve(data.get("results")),
        require_tensorrt=bool(data.get("require_tensorrt", False)),
        build_recipe=_build_recipe(base, data.get("build_recipe")),
        doctor=None,
        profile_layers=bool(data.get("profile_layers", True)),
        scheduler=data.get("scheduler"),
    )
    plan.gates, gate_problems = _gates(plan, data.get("gates") or {})
    problems += gate_problems
    plan.doctor, doctor_problems = _doctor(plan, data.get("doctor"), names)
    problems += doctor_problems
    if plan.metric is not None and plan_metric(plan.metric).points is None:
        problems += [plan.problem(g.path, f"the metric '{plan.metric}' has no drop against FP32 (FP32 "
                                  "against itself is exact); gate it with min_sqnr_db instead.")
                     for g in plan.gates if g.gate == "max_accuracy_drop"]
    if problems:
        raise PlanError(problems, source)
    return plan


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _build_recipe(base: Path, value: str | None) -> str | None:
    if value is None or not str(value).endswith(".json"):
        return value
    return str(_resolve(base, value))


def _variants(items: list, lines: Mapping) -> tuple[list[VariantSpec], list[Problem]]:
    variants, problems, seen = [], [], {}
    for index, item in enumerate(items):
        where = ("variants", index)
        settings = {"precision": item} if isinstance(item, str) else dict(item)
        extra = {k: settings.pop(k) for k in VARIANT_EXTRA_KEYS if k in settings}
        try:
            recipe = Recipe.from_dict(settings)
        except RecipeError as err:
            key = next((k for k in settings if str(err).startswith(k) or f" {k} " in f" {err} "), None)
            path = where + ((key,) if key else ())
            problems.append(Problem(key_text(path), f"{err}", line_of(lines, path)))
            continue
        name = recipe.label
        recipe = recipe.with_(name=name)
        if name in seen:
            problems.append(Problem(key_text(where), f"a second variant named '{name}' (the first is variants"
                                    f"[{seen[name]}]); give each a distinct `name:`.", line_of(lines, where)))
            continue
        seen[name] = index
        variants.append(VariantSpec(name, recipe, tuple(int(i) for i in extra.get("drop_calibration_samples", ())),
                                    dict(extra.get("expect") or {}), index))
        if extra.get("drop_calibration_samples") and not recipe.needs_calibration:
            path = where + ("drop_calibration_samples",)
            problems.append(Problem(key_text(path), f"{recipe.precision} is not calibrated; remove this key.",
                                    line_of(lines, path)))
    return variants, problems


def _gate_entries(value) -> list[tuple[int | None, dict]]:
    if isinstance(value, (int, float)):
        return [(None, {"limit": value})]
    if isinstance(value, dict):
        return [(None, value)]
    return list(enumerate(value))


def _gates(plan: Plan, gates: Mapping) -> tuple[list[GateSpec], list[Problem]]:
    specs, problems = [], []
    names = {v.name for v in plan.variants}
    for gate, value in gates.items():
        for index, entry in _gate_entries(value):
            where = ("gates", gate) + (() if index is None else (index,))
            spec = GateSpec(gate, float(entry["limit"]), tuple(entry["variants"]) if "variants" in entry else None,
                            entry.get("backend"), entry.get("percentile"), entry.get("batch"), key_text(where), where)
            unknown = [n for n in spec.variants or () if n not in names]
            if unknown:
                problems.append(plan.problem(where + ("variants",), f"no variant named {unknown}; the plan's "
                                             f"variants are {sorted(names)}."))
            if spec.backend is not None and spec.backend not in plan.backends:
                problems.append(plan.problem(where + ("backend",), f"'{spec.backend}' is not in backends "
                                             f"{list(plan.backends)}; add it there or drop this key."))
            if spec.batch is not None and spec.batch not in plan.batch_sizes:
                problems.append(plan.problem(where + ("batch",), f"batch {spec.batch} is not measured; add it to "
                                             f"batch_sizes {list(plan.batch_sizes)}."))
            if gate in ("atol", "rtol", "max_model_mb") and spec.limit < 0:
                problems.append(plan.problem(where, f"the limit must not be negative, got {spec.limit}."))
            specs.append(spec)
    for gate in ("atol", "rtol"):
        for variant in names:
            hits = [g for g in specs if g.gate == gate and (g.variants is None or variant in g.variants)]
            for backend in plan.backends:
                on_backend = [g for g in hits if g.backend in (None, backend)]
                if len(on_backend) > 1:
                    problems.append(plan.problem(on_backend[1].path, f"a second {gate} for variant "
                                                 f"'{variant}' on {backend}; give each variant one tolerance."))
    return specs, problems


def _doctor(plan: Plan, value, names) -> tuple[dict | None, list[Problem]]:
    if not value:
        return None, []
    settings = {"target_drop": 0.5, "variant": None, "layerwise_samples": 256}
    if isinstance(value, dict):
        settings.update(value)
    if settings["variant"] is not None:
        if settings["variant"] not in names:
            return None, [plan.problem(("doctor", "variant"), f"no variant named '{settings['variant']}'; the "
                                       f"plan's variants are {sorted(names)}.")]
        if plan.variant(settings["variant"]).recipe.precision != "int8":
            return None, [plan.problem(("doctor", "variant"), "the doctor examines INT8 variants; name one.")]
    return settings, []


# --------------------------------------------------------------------------------------------
# Checks that need the files
# --------------------------------------------------------------------------------------------


@dataclass
class PlanFacts:
    """What validating a plan learned from its files (reused by the run).

    Attributes:
        model: The :class:`~workbench.model.LoadedModel`.
        model_sha256: Its hash.
        eval_samples: Samples in the evaluation data.
        has_labels: Whether it has ``labels``.
        metric: The metric (the plan's, or the default for the data).
        calibration_sha256: Variant name -> sha256 of the calibration samples it will use (None
            for variants without calibration).
        tensorrt_problem: Why TensorRT cannot run here, or None.
    """

    model: Any
    model_sha256: str
    eval_samples: int
    has_labels: bool
    metric: str
    calibration_sha256: dict
    tensorrt_problem: str | None

    def to_dict(self) -> dict:
        return {
            "model": str(self.model.path),
            "model_sha256": self.model_sha256,
            "evaluation_samples": self.eval_samples,
            "labels": self.has_labels,
            "metric": self.metric,
            "calibration_sha256": dict(self.calibration_sha256),
            "tensorrt": self.tensorrt_problem is None,
            "tensorrt_problem": self.tensorrt_problem,
        }


def variant_calibration(plan: Plan, spec: VariantSpec):
    """The calibration data a variant is made from: the plan's file, minus dropped samples.

    Returns:
        None (no calibration), the ``.npz`` path, or a CalibrationSet (with the file's sample
        axes) when samples are dropped.
    """
    uses = spec.recipe.needs_calibration or spec.recipe.precision == "fp16"  # fp16: its range safeguard
    if plan.calibration is None or not uses:
        return None
    if not spec.drop_calibration_samples:
        return plan.calibration
    data = load_data(plan.calibration, what="calibration")  # its description says where the samples are
    keep = np.setdiff1d(np.arange(num_samples(data.inputs, data.sample_axes)),
                        np.asarray(spec.drop_calibration_samples))
    kept = select_samples(data.inputs, keep, data.sample_axes)
    return from_arrays(kept, source=f"{plan.calibration} without samples {list(spec.drop_calibration_samples)}",
                       sample_axes=data.sample_axes)


def validate_plan(plan: Plan) -> PlanFacts:
    """Check a plan against its files, before any work: every problem at once.

    Checks that the model, calibration and evaluation files exist and load, the data fits the
    model (and has labels when the metric needs them), int8/fp8 variants have calibration data,
    every recipe applies to the model (node names, op types), pinned hashes still match, batch
    sizes fit the model's batch dimension, the TensorRT build recipe loads, and TensorRT is
    here when the plan requires it.

    Returns:
        The :class:`PlanFacts` the run reuses.

    Raises:
        PlanError: Every problem found, each naming its key, line and fix.
    """
    problems: list[Problem] = []
    for key in ("model", "evaluation", "calibration"):
        value = getattr(plan, key)
        if value is not None and not value.is_file():
            problems.append(plan.problem((key,), f"{value} does not exist; give the path of the file "
                                         "(relative to the plan file, or absolute)."))
    if problems:
        raise PlanError(problems, plan.path)
    try:
        loaded = load_model(plan.model)
    except WorkbenchError as err:
        raise PlanError([plan.problem(("model",), str(err))], plan.path) from err
    sha = model_sha256(loaded.path)
    if plan.model_sha256 and plan.model_sha256 != sha:
        problems.append(plan.problem(("model_sha256",), f"the model's sha256 is {sha}, not the one pinned: the "
                                     "model changed since the plan was saved. Save the plan again from the "
                                     "notebook, or update model_sha256."))
    has_labels, samples = _check_evaluation(plan, loaded, problems)
    metric = plan.metric or default_metric(has_labels)
    if plan_metric(metric).needs_labels and not has_labels and samples:
        problems.append(plan.problem(("metric",), f"'{metric}' needs labels, and {plan.evaluation.name} has no "
                                     "'labels' array; add one, or use metric: cosine."))
    calib_sha = _check_variants(plan, loaded, problems)
    _check_batches(plan, loaded, problems)
    trt_problem = tensorrt_status() if ("tensorrt" in plan.backends or plan.require_tensorrt) else None
    if plan.require_tensorrt and trt_problem:
        problems.append(plan.problem(("require_tensorrt",), f"the plan requires TensorRT, which cannot run here: "
                                     f"{trt_problem}"))
    if plan.build_recipe is not None:
        try:
            load_recipe(plan.build_recipe)
        except WorkbenchError as err:
            problems.append(plan.problem(("build_recipe",), str(err)))
    if plan.doctor is not None and plan.calibration is None:
        problems.append(plan.problem(("doctor",), "the doctor calibrates INT8: add `calibration:`."))
    if problems:
        raise PlanError(problems, plan.path)
    return PlanFacts(loaded, sha, samples, has_labels, metric, calib_sha, trt_problem)


def _check_evaluation(plan: Plan, loaded, problems: list) -> tuple[bool, int]:
    try:
        inputs, labels, _ = load_labelled(plan.evaluation, loaded.input_names, what="evaluation")
    except WorkbenchError as err:
        problems.append(plan.problem(("evaluation",), str(err)))
        return False, 0
    return labels is not None, int(next(iter(inputs.values())).shape[0])


def _check_variants(plan: Plan, loaded, problems: list) -> dict:
    hashes = {}
    for spec in plan.variants:
        where = ("variants", spec.index)
        recipe = spec.recipe
        try:
            check_node_names(loaded.proto, sorted(set(recipe.exclude_nodes) | set(recipe.keep_fp32_nodes)),
                             "keep out of the reduced precision")
        except QuantizationError as err:
            key = "exclude_nodes" if set(recipe.exclude_nodes) - set(loaded.node_names) else "keep_fp32_nodes"
            problems.append(plan.problem(where + (key,), str(err)))
        if recipe.needs_calibration:
            try:
                check_op_types(loaded.proto, recipe.quantized_op_types)
            except QuantizationError as err:
                problems.append(plan.problem(where + ("op_types_to_quantize",), str(err)))
            if plan.calibration is None:
                problems.append(plan.problem(where + ("precision",), f"{recipe.precision} needs calibration data: "
                                             "add `calibration: data.npz` (one array per model input)."))
                continue
        hashes[spec.name] = _calibration_hash(plan, spec, loaded, problems)
        pinned = spec.expect.get("calibration_sha256")
        if pinned and hashes[spec.name] and pinned != hashes[spec.name]:
            problems.append(plan.problem(where + ("expect", "calibration_sha256"), "the calibration samples this "
                                         f"variant uses hash to {hashes[spec.name]}, not the pinned one: the data "
                                         "changed since the plan was saved. Restore it, or save the plan again."))
    return hashes


def _calibration_hash(plan: Plan, spec: VariantSpec, loaded, problems: list) -> str | None:
    calib = variant_calibration(plan, spec)
    if calib is None:
        return None
    recipe = spec.recipe
    try:
        return load_calibration_set(calib, loaded, num_samples=recipe.num_samples,
                                    random=recipe.sample_selection == "random", seed=recipe.seed).content_hash()
    except WorkbenchError as err:
        key = ("calibration",) if not spec.drop_calibration_samples else ("variants", spec.index)
        problems.append(plan.problem(key, str(err)))
        return None


def _check_batches(plan: Plan, loaded, problems: list) -> None:
    for spec in loaded.summary.inputs:
        shape = spec.get("shape") or []
        if shape and isinstance(shape[0], int) and shape[0] > 0:
            wrong = [b for b in plan.batch_sizes if b != shape[0]]
            if wrong:
                problems.append(plan.problem(("batch_sizes",), f"the model's input '{spec['name']}' has a fixed "
                                             f"batch of {shape[0]}; batch sizes {wrong} cannot run. Use "
                                             f"[{shape[0]}]."))
                return
