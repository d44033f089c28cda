"""Plans from the notebooks: what a person chose interactively, written so CI re-creates it bit for bit.

:func:`plan_from_row` turns a results row (the variant selected in the tradeoff explorer) into a
plan: the variant's full recipe as its record holds it, the model and calibration data the
variant was made from, pinned by their hashes (``model_sha256``; per variant ``expect:`` the
calibration samples' and the variant file's sha256), the backend and batch sizes it was measured
at, and a gate that keeps its accuracy. :func:`plan_from_doctor` does the same for the doctor's
fix (its recipe: method, nodes kept out of INT8, dropped calibration samples).
:func:`save_plan` validates the plan against the schema and writes it as YAML, paths relative to
the plan file where the two share a folder, never over an existing file.
"""

from __future__ import annotations

import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from workbench.errors import WorkbenchError
from workbench.precision.recipe import Recipe
from workbench.precision.variants import VariantError, load_variant
from workbench.workflows.plan import plan_from_data
from workbench.workflows.plan_metric import as_number
from workbench.workflows.quantize import OutputExistsError
from workbench.workspace import workspace_dir, write_atomic

DROP_MARGIN = 0.5  # points of slack a saved accuracy gate leaves above the drop that was measured
PATH_KEYS = ("model", "calibration", "evaluation")


class PlanSaveError(WorkbenchError, ValueError):
    """A selection that cannot become a plan; the message says what is missing and how to give it."""


def _variant_record(path) -> dict:
    if not path or (isinstance(path, float) and math.isnan(path)):
        raise PlanSaveError("the selected row has no variant file (variant_path); select a row that "
                            "measure_variants (or workbench run) measured.")
    try:
        return load_variant(path).record
    except VariantError as err:
        raise PlanSaveError(f"{err} The plan needs the variant's record to copy its recipe and hashes; "
                            "measure the variant again.") from err


def _calibration_path(record: Mapping, given) -> str | None:
    if given is not None:
        return str(given)
    source = (record.get("calibration") or {}).get("source")
    if source and source != "arrays" and Path(source).is_file():
        return str(Path(source).resolve())
    return None


def _recipe_entry(recipe: Mapping[str, Any], name: str, expect: Mapping[str, Any],
                  drop_samples: Sequence[int] = ()) -> dict:
    """The variant as a plan entry: its name, then the full recipe, then the pinned hashes."""
    settings = Recipe.from_dict({k: v for k, v in recipe.items() if k != "name"}).to_dict()
    settings.pop("name", None)
    entry = {"name": name, **settings}
    if drop_samples:
        entry["drop_calibration_samples"] = [int(i) for i in drop_samples]
    pinned = {k: v for k, v in expect.items() if v}
    if pinned:
        entry["expect"] = pinned
    return entry


def _pinned_tool(record: Mapping[str, Any]) -> dict:
    """The recipe with ``tool: auto`` replaced by the tool that made the variant, so that CI with
    another set of tools installed (ModelOpt) makes the same variant."""
    recipe = dict(record["recipe"])
    made_by = str((record.get("tool") or {}).get("name") or "")
    if recipe.get("tool") == "auto" and Recipe.from_dict(recipe).needs_calibration:
        recipe["tool"] = "modelopt" if made_by.startswith("modelopt") else "onnxruntime"
    return recipe


def _accuracy_gate(drop_points: float | None) -> float:
    """A saved gate's ``max_accuracy_drop``: the drop measured plus :data:`DROP_MARGIN`, rounded up."""
    if drop_points is None:
        return 1.0
    return math.ceil((max(drop_points, 0.0) + DROP_MARGIN) * 10 - 1e-9) / 10


def plan_from_row(
    row: Mapping[str, Any],
    *,
    evaluation=None,
    calibration=None,
    reference_row: Mapping[str, Any] | None = None,
    gates: Mapping[str, Any] | None = None,
    backends: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
    name: str | None = None,
) -> dict:
    """A plan that re-creates one measured variant: what the tradeoff explorer's "Save as plan" writes.

    Args:
        row: A results row (:class:`~workbench.tables.results.ResultsTable`) with a
            ``variant_path`` whose record is beside it.
        evaluation: The labelled evaluation data (default: the row's ``evaluation_data``).
        calibration: The calibration data (default: the file the variant was calibrated on).
        reference_row: The FP32 row of the same model and backend: the saved accuracy gate
            allows the drop measured against it plus 0.5 points (without it, 1 point).
        gates: The plan's gates instead of that default.
        backends: Default: the row's backend.
        batch_sizes: Default: the batch sizes the row was measured at.
        name: The plan's name (default ``<model>-<variant>``).

    Returns:
        The plan as a dict (save it with :func:`save_plan`).

    Raises:
        PlanSaveError: The row has no variant record, or the data cannot be found (pass it).
    """
    record = _variant_record(row.get("variant_path"))
    source = record["source_model"]
    recipe = _pinned_tool(record)
    variant_name = str(row.get("variant") or recipe.get("name") or Recipe.from_dict(recipe).label)
    evaluation = evaluation if evaluation is not None else row.get("evaluation_data")
    if not isinstance(evaluation, (str, os.PathLike)) or not str(evaluation):
        raise PlanSaveError("the row does not say which data it was evaluated on (rows measured before this "
                            "workbench version); pass evaluation='path/to/eval.npz'.")
    calib = _calibration_path(record, calibration)
    needs_calib = Recipe.from_dict(recipe).needs_calibration
    if needs_calib and calib is None:
        raise PlanSaveError(f"{variant_name} was calibrated on data that is not a file ("
                            f"{(record.get('calibration') or {}).get('source')}); pass calibration='path.npz'.")
    expect = {"calibration_sha256": (record.get("calibration") or {}).get("sha256"),
              "sha256": record["file"]["sha256"]}
    latency = row.get("latency") if isinstance(row.get("latency"), Mapping) else {}
    sizes = [int(b) for b in batch_sizes] if batch_sizes else (
        sorted(int(b) for b in latency) if latency else [int(as_number(row.get("batch")) or 1)])
    top1 = as_number(row.get("top1"))
    if gates is None:
        ref = as_number((reference_row or {}).get("top1"))
        drop = None if ref is None or top1 is None else 100 * (ref - top1)
        gates = {"max_accuracy_drop": _accuracy_gate(drop)} if top1 is not None else {}
    model = Path(source["path"])
    plan = {
        "version": 1,
        "name": name or f"{model.stem}-{variant_name}",
        "model": str(model),
        "model_sha256": source["sha256"],
        "calibration": calib,
        "evaluation": str(Path(evaluation).expanduser().resolve()),
        "metric": "top1" if top1 is not None else "cosine",
        "variants": [_recipe_entry(recipe, variant_name, expect)],
        "backends": list(backends or [str(row.get("backend") or "onnxruntime")]),
        "batch_sizes": sizes,
        "gates": dict(gates),
    }
    if plan["calibration"] is None:
        del plan["calibration"]
    return plan


def plan_from_doctor(report: Mapping[str, Any], *, evaluation=None, calibration=None,
                     backends: Sequence[str] = ("onnxruntime",), batch_sizes: Sequence[int] = (1, 32),
                     name: str | None = None) -> dict:
    """A plan that re-creates the doctor's fix: what the doctor explorer's "Save as plan" writes.

    Args:
        report: ``Diagnosis.to_dict()`` (or ``workbench doctor --json``).
        evaluation, calibration: The data (default: the files the doctor ran on, ``report["data"]``).
        backends, batch_sizes: What to measure.
        name: The plan's name (default ``<model>-int8-doctor-fix``).

    Returns:
        The plan as a dict: the fixed recipe (the naive recipe with the fix's method, nodes kept
        out of INT8 and dropped calibration samples), pinned hashes, and ``max_accuracy_drop`` at
        the doctor's target.

    Raises:
        PlanSaveError: The report lacks the fix or its data is not in files (pass them).
    """
    fix = report.get("recipe") or {}
    data = report.get("data") or {}
    evaluation = evaluation or data.get("evaluation")
    calibration = calibration or data.get("calibration")
    for what, value in (("evaluation", evaluation), ("calibration", calibration)):
        if not value or value == "arrays":
            raise PlanSaveError(f"the doctor ran on {what} data given as arrays, not a file; pass "
                                f"{what}='path/to/{what}.npz'.")
    base = dict(fix.get("base") or {"precision": "int8"})
    exclude = list(dict.fromkeys(list(base.get("exclude_nodes") or []) + list(fix.get("exclude") or [])))
    fixed = {**base, "method": fix.get("method") or base.get("method", "minmax"), "exclude_nodes": exclude}
    expect: dict = {}
    pins: dict = {}
    fixed_path = (report.get("variants") or {}).get("fixed")
    if fixed_path:
        record = _variant_record(fixed_path)
        expect = {"calibration_sha256": (record.get("calibration") or {}).get("sha256"),
                  "sha256": record["file"]["sha256"]}
        pins["model_sha256"] = record["source_model"]["sha256"]
    model = Path(report["model"])
    variant_name = "int8-doctor-fix"
    return {
        "version": 1,
        "name": name or f"{model.stem}-{variant_name}",
        "model": str(model),
        **pins,
        "calibration": str(calibration),
        "evaluation": str(evaluation),
        "metric": "top1",
        "variants": [_recipe_entry(fixed, variant_name, expect, fix.get("drop_calibration_samples") or ())],
        "backends": list(backends),
        "batch_sizes": [int(b) for b in batch_sizes],
        "gates": {"max_accuracy_drop": float(report.get("target_drop", 0.5))},
    }


def _portable(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` when they share a folder below the file-system root, else absolute."""
    target = Path(path).expanduser().resolve()
    folder = folder.resolve()
    common = Path(os.path.commonpath([target, folder]))
    if common == Path(common.anchor):
        return str(target)
    return os.path.relpath(target, folder)


def default_plan_path(plan: Mapping[str, Any]) -> Path:
    """``<workspace>/plans/<name>.plan.yaml`` (``<name>-2.plan.yaml``... when taken): never an existing file."""
    folder = workspace_dir("plans")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(plan.get("name") or "plan")).strip("-") or "plan"
    candidate, n = folder / f"{name}.plan.yaml", 2
    while candidate.exists():
        candidate, n = folder / f"{name}-{n}.plan.yaml", n + 1
    return candidate


def save_plan(plan: Mapping[str, Any], path=None, *, overwrite: bool = False, source: str = "") -> Path:
    """Validate a plan against the schema and write it as YAML (atomically, never over a file).

    Paths (model, data) are written relative to the plan file when the two share a folder (so a
    plan saved in a repository runs in that repository's CI), else absolute. ``report`` and
    ``junit`` default to ``<name>.report.html`` and ``<name>.junit.xml`` beside the plan.

    Args:
        plan: The plan as a dict (:func:`plan_from_row`, :func:`plan_from_doctor`, or your own).
        path: Where to write it (default :func:`default_plan_path`).
        overwrite: Replace an existing file.
        source: A line for the header comment (where the plan came from).

    Returns:
        The path written.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        PlanError: The plan breaks the schema.
    """
    path = Path(path).expanduser() if path is not None else default_plan_path(plan)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; the workbench does not overwrite files. Choose another path.")
    data = dict(plan)
    for key in PATH_KEYS:
        if data.get(key):
            data[key] = _portable(data[key], path.parent)
    stem = path.name.removesuffix(".yaml").removesuffix(".yml").removesuffix(".plan")
    data.setdefault("report", f"{stem}.report.html")
    data.setdefault("junit", f"{stem}.junit.xml")
    plan_from_data(data, base=path.parent, path=path)  # the schema and the plan's own consistency
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = [f"# trt-workbench plan, saved {when}" + (f" from {source}" if source else ""),
              f"# run it: workbench run {path.name} --json   (check it: workbench plan check {path.name})"]
    text = "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    return write_atomic(path, text)
