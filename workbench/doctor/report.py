"""The doctor's result: :class:`Diagnosis`, its JSON report, its tables and its results rows.

:meth:`Diagnosis.to_dict` is the ``workbench doctor --json`` report (keys are a contract);
:meth:`Diagnosis.culprits_frame`, :meth:`~Diagnosis.summary_frame`, :meth:`~Diagnosis.flags_frame`
and :meth:`~Diagnosis.evaluations_frame` give the same facts as pandas tables for notebooks;
:func:`results_rows` turns a report into FP32 / naive INT8 / fixed rows for the tradeoff plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from workbench.doctor.fix import DoctorError
from workbench.doctor.layerwise import LayerwiseResult
from workbench.tables.results import make_row, new_row_id

JSON_FORMAT = "trt-workbench.doctor/1"
# culprit evidence shown as columns of culprits_frame (NaN where a culprit has none, e.g. an
# unquantized source of range)
CULPRIT_EVIDENCE = ("local_sqnr_db", "local_channel_sqnr_db", "accum_sqnr_db", "added_db", "damage_db",
                    "confirmed_cost_pp")
CULPRIT_COLUMNS = ("node", "op_type", "role") + CULPRIT_EVIDENCE + ("excluded_by_fix", "flags", "reason")
SUMMARY_COLUMNS = ("fp32_accuracy", "int8_accuracy", "fixed_accuracy", "drop_pp", "fixed_drop_pp", "target_drop",
                   "target_met", "fix_needed", "exclude", "method", "drop_calibration_samples", "evaluations",
                   "eval_samples")
FLAG_COLUMNS = ("kind", "node", "tensor", "value", "channel", "message")
CONFIG_KEYS = ("exclude", "method", "drop_samples", "num_samples")
EVALUATION_COLUMNS = ("what", "top1", "seconds") + CONFIG_KEYS + ("path",)


@dataclass
class Diagnosis:
    """Everything :func:`~workbench.doctor.diagnose.diagnose` found; :meth:`to_dict` is the JSON
    report, and :meth:`summary_frame`, :meth:`culprits_frame`, :meth:`flags_frame` and
    :meth:`evaluations_frame` are its parts as tables.

    Attributes:
        model: The model path.
        recipe: The base recipe (dict).
        target_drop: The allowed top-1 drop in percentage points.
        fp32_accuracy, int8_accuracy: Top-1 fractions of the FP32 model and the naive variant.
        layerwise: The :class:`LayerwiseResult` of the naive variant.
        calib_stats: Calibration-set statistics and histograms per quantized activation.
        clips: Clipping range per (node, tensor, method).
        flags: Range flags (:func:`~workbench.doctor.ranges.range_flags`).
        calib_outliers: Outlier calibration samples.
        calib_eval: Calibration vs evaluation statistics.
        calib_curve: Accuracy against calibration-set size (when asked), else None.
        ranking: Candidates, worst local error first: ``{"node", "group", "local_sqnr_db",
            "damage_db", "confirmed_cost_pp"}``.
        search: The fix search: ``{"alternatives", "steps", "evaluations", "base"}``.
        culprits: Ranked culprits with evidence.
        fix: ``{"config", "accuracy", "path", "needed"}``.
        latency: Median latency (ms) per configuration (``fp32``, ``int8``, ``fixed``).
        evaluations: Full passes over the evaluation set.
        evaluation_log: One entry per evaluation.
        variants: Paths of the naive and fixed variants.
        seconds: Wall time.
        eval_samples: Samples in the evaluation set (one full evaluation's size).
        timings: Seconds per phase: ``evaluations`` (all full passes, with making their variants),
            ``layerwise``, ``ranges``
            (method variants, calibration statistics, flags), ``calibration_checks``,
            ``latency``.
    """

    model: str
    recipe: dict
    target_drop: float
    fp32_accuracy: float
    int8_accuracy: float
    layerwise: LayerwiseResult
    calib_stats: dict
    clips: pd.DataFrame
    flags: list
    calib_outliers: list
    calib_eval: pd.DataFrame
    calib_curve: list | None
    ranking: list
    search: dict
    culprits: list
    fix: dict
    latency: dict
    evaluations: int
    evaluation_log: list
    variants: dict
    seconds: float
    eval_samples: int = 0
    timings: dict = field(default_factory=dict)

    @property
    def drop_pp(self) -> float:
        """Top-1 drop of the naive variant, percentage points."""
        return 100.0 * (self.fp32_accuracy - self.int8_accuracy)

    @property
    def fixed_accuracy(self) -> float:
        """Top-1 of the fix (the naive variant's when no fix was needed)."""
        return self.fix["accuracy"]

    @property
    def fixed_drop_pp(self) -> float:
        """Top-1 drop of the fix, percentage points."""
        return 100.0 * (self.fp32_accuracy - self.fix["accuracy"])

    @property
    def target_met(self) -> bool:
        """Whether the fix (or the naive variant, when none was needed) is within ``target_drop``."""
        return self.fixed_drop_pp <= self.target_drop + 1e-9

    def fixed_recipe(self) -> dict:
        """The fix as the report's ``recipe``: ``exclude``, ``method``, ``drop_calibration_samples``,
        ``per_channel``, ``precision`` and the naive ``base`` recipe."""
        config = self.fix["config"]
        return {
            "exclude": list(config["exclude"]),
            "method": config["method"],
            "drop_calibration_samples": list(config["drop_samples"]),
            "per_channel": self.recipe.get("per_channel"),
            "precision": self.recipe.get("precision"),
            "base": self.recipe,
        }

    def summary(self) -> list[str]:
        """A few sentences: the drop, where the error jumps, the culprits, the fix and its price."""
        lines = [f"naive {self.recipe.get('precision', 'int8').upper()} ({self.recipe.get('method')}, "
                 f"{'per-channel' if self.recipe.get('per_channel') else 'per-tensor'} weights): top-1 "
                 f"{100 * self.fp32_accuracy:.2f}% -> {100 * self.int8_accuracy:.2f}% ({self.drop_pp:.2f} pp drop; "
                 f"target {self.target_drop:g} pp)"]
        jump = self.layerwise.first_jump()
        if jump is not None:
            lost = ("its inputs are exact" if not math.isfinite(jump["input_sqnr_db"])
                    else f"{jump['added_db']:.1f} dB lost there")
            lines.append(f"error first jumps at {jump['tensor']} (written by {jump['node']}): accumulated SQNR "
                         f"{jump['accum_sqnr_db']:.1f} dB, {lost}")
        if self.culprits:
            lines.append("culprits: " + ", ".join(f"{c['node']} ({c['role']})" for c in self.culprits[:5]))
        config = self.fix["config"]
        if not self.fix["needed"]:
            lines.append("no fix needed: the naive variant is within the target")
        else:
            changes = []
            if config["exclude"]:
                changes.append(f"keep {len(config['exclude'])} node(s) out of INT8: {', '.join(config['exclude'])}")
            if config["method"] != self.recipe.get("method"):
                changes.append(f"calibrate with {config['method']}")
            if config["drop_samples"]:
                changes.append(f"drop calibration sample(s) {config['drop_samples']}")
            lines.append(f"fix: {'; '.join(changes) or 'none found'} -> top-1 {100 * self.fix['accuracy']:.2f}% "
                         f"({self.evaluations} full evaluations in all)")
        if self.latency:
            lat = {k: v["median_ms"] for k, v in self.latency.items()}
            lines.append("ONNX Runtime CPU median latency (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in lat.items()))
        return lines

    def to_dict(self) -> dict:
        """The JSON report (``doctor_command``'s output); keys are a contract: added to, never renamed."""
        lw = self.layerwise
        jump = lw.first_jump()
        report = {
            "format": JSON_FORMAT,
            "model": self.model,
            "target_drop": self.target_drop,
            "fp32_accuracy": self.fp32_accuracy,
            "int8_accuracy": self.int8_accuracy,
            "drop_pp": self.drop_pp,
            "culprits": self.culprits,
            "recipe": self.fixed_recipe(),
            "fixed_accuracy": self.fix["accuracy"],
            "fixed_drop_pp": self.fixed_drop_pp,
            "target_met": self.target_met,
            "fix_needed": self.fix["needed"],
            "summary": self.summary(),
            "evaluations": self.evaluations,
            "eval_samples": self.eval_samples,
            "evaluation_log": self.evaluation_log,
            "layerwise": {
                "passes": 1,
                "samples": lw.num_samples,
                "first_jump": None if jump is None else {k: jump[k] for k in ("tensor", "node", "accum_sqnr_db",
                                                                              "added_db")},
                "nodes": _records(lw.nodes),
                "tensors": _records(lw.tensors),
            },
            "sensitivity": {"ranking": self.ranking, **self.search},
            "ranges": {"flags": self.flags, "clips": _records(self.clips)},
            "calibration": {
                "outlier_samples": self.calib_outliers,
                "vs_eval": _records(self.calib_eval),
                "size_curve": self.calib_curve,
            },
            "latency": self.latency,
            "variants": self.variants,
            "seconds": self.seconds,
            "timings": self.timings,
        }
        return jsonable(report)

    # ----------------------------------------------------------------------------------------
    # Tables for notebooks: the same facts as to_dict(), one row per item, in the same order

    def culprits_frame(self) -> pd.DataFrame:
        """The culprits as a table, worst first.

        Returns:
            One row per culprit, indexed by ``rank`` (1 = worst), columns ``node``, ``op_type``,
            ``role``, the evidence's ``local_sqnr_db``, ``local_channel_sqnr_db``,
            ``accum_sqnr_db``, ``added_db``, ``damage_db``, ``confirmed_cost_pp`` (NaN where the
            culprit has none, e.g. an unquantized source of range), ``excluded_by_fix``, ``flags``
            (the flag kinds, comma-separated) and ``reason``.
        """
        rows = []
        for culprit in self.culprits:
            evidence = culprit.get("evidence") or {}
            rows.append({"node": culprit["node"], "op_type": culprit.get("op_type"), "role": culprit["role"],
                         **{key: evidence.get(key, math.nan) for key in CULPRIT_EVIDENCE},
                         "excluded_by_fix": bool(evidence.get("excluded_by_fix", False)),
                         "flags": ", ".join(evidence.get("flags", [])), "reason": culprit["reason"]})
        frame = pd.DataFrame(rows, columns=list(CULPRIT_COLUMNS))
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="rank")
        return frame

    def summary_frame(self) -> pd.DataFrame:
        """Accuracy before and after, the fix's recipe and its price in evaluations, as one row.

        Returns:
            One row indexed by the model file's stem (so several diagnoses concatenate), columns
            ``fp32_accuracy``, ``int8_accuracy``, ``fixed_accuracy`` (top-1 fractions),
            ``drop_pp``, ``fixed_drop_pp``, ``target_drop`` (percentage points), ``target_met``,
            ``fix_needed``, the fix's ``exclude`` (list of nodes), ``method`` and
            ``drop_calibration_samples``, ``evaluations`` and ``eval_samples``.
        """
        recipe = self.fixed_recipe()
        row = {"fp32_accuracy": self.fp32_accuracy, "int8_accuracy": self.int8_accuracy,
               "fixed_accuracy": self.fixed_accuracy, "drop_pp": self.drop_pp, "fixed_drop_pp": self.fixed_drop_pp,
               "target_drop": self.target_drop, "target_met": self.target_met, "fix_needed": self.fix["needed"],
               "exclude": recipe["exclude"], "method": recipe["method"],
               "drop_calibration_samples": recipe["drop_calibration_samples"], "evaluations": self.evaluations,
               "eval_samples": self.eval_samples}
        return pd.DataFrame([row], columns=list(SUMMARY_COLUMNS), index=pd.Index([Path(self.model).stem], name="model"))

    def flags_frame(self) -> pd.DataFrame:
        """The range flags (:func:`~workbench.doctor.ranges.range_flags`) as a table.

        Returns:
            One row per flag in the report's order, columns ``kind``, ``node``, ``tensor``,
            ``value``, ``channel`` (nullable integer: only channel outliers name one) and
            ``message``, then any other keys the flags carry.
        """
        extra = [k for flag in self.flags for k in flag if k not in FLAG_COLUMNS]
        frame = pd.DataFrame(self.flags, columns=list(FLAG_COLUMNS) + list(dict.fromkeys(extra)))
        frame["channel"] = frame["channel"].astype("Int64")
        return frame

    def evaluations_frame(self) -> pd.DataFrame:
        """Every full pass over the evaluation set, in the order they ran.

        Returns:
            One row per :attr:`evaluation_log` entry, columns ``what``, ``top1``, ``seconds``,
            the configuration's ``exclude``, ``method``, ``drop_samples`` and ``num_samples``
            (None for the FP32 model, which has no configuration; ``num_samples`` a nullable
            integer, missing when the whole calibration set was used) and the evaluated ``path``.
        """
        rows = []
        for entry in self.evaluation_log:
            config = entry.get("config") or {}
            rows.append({"what": entry["what"], "top1": entry["top1"], "seconds": entry["seconds"],
                         **{key: config.get(key) for key in CONFIG_KEYS}, "path": entry.get("path")})
        frame = pd.DataFrame(rows, columns=list(EVALUATION_COLUMNS))
        frame["num_samples"] = frame["num_samples"].astype("Int64")
        return frame


def jsonable(value):
    """``value`` with numpy scalars/arrays as Python values and NaN/inf as None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def results_rows(report: Mapping[str, Any], *, model_name: str | None = None) -> list[dict]:
    """FP32, the naive INT8 variant and the fix as :class:`~workbench.tables.results.ResultsTable` rows.

    Each row carries ``top1`` and, when the report measured latency, the ONNX Runtime CPU
    ``median_ms``/``mean_ms``/``p90_ms``, so :func:`workbench.views.tradeoff.tradeoff_figure`
    shows the before/after (and ``ResultsTable().add(row)`` keeps them beside other experiments).

    Args:
        report: ``doctor_command`` output or ``Diagnosis.to_dict()``.
        model_name: The model's name in the rows (default: the model file's stem).

    Returns:
        Three row dicts (with ``id``), ``variant`` = ``"fp32"``, ``"int8 naive"``, ``"int8 fixed"``.

    Raises:
        DoctorError: ``report`` is not a doctor report.
    """

    missing = [k for k in ("model", "fp32_accuracy", "int8_accuracy", "fixed_accuracy", "recipe") if k not in report]
    if missing:
        raise DoctorError(f"not a doctor report: it lacks {missing}; pass doctor_command(...) or "
                          "Diagnosis.to_dict() output.")
    name = model_name or Path(report["model"]).stem
    latency = report.get("latency") or {}
    recipe = report["recipe"]
    base = dict(recipe.get("base") or {})
    fixed_recipe = {**base, "method": recipe["method"], "exclude_nodes": list(recipe["exclude"])}
    samples = report.get("eval_samples")
    variants = report.get("variants") or {}
    entries = [
        ("fp32", "FP32", report["fp32_accuracy"], None, report["model"], None),
        ("int8 naive", "INT8", report["int8_accuracy"], base, variants.get("naive"), base.get("method")),
        ("int8 fixed", "INT8" if not recipe["exclude"] else "INT8 + FP32", report["fixed_accuracy"], fixed_recipe,
         variants.get("fixed"), recipe["method"]),
    ]
    rows = []
    for (variant, precision, top1, rec, path, method), key in zip(entries, ("fp32", "int8", "fixed")):
        bench = dict(latency.get(key) or {})
        if bench:
            bench = {"backend": "onnxruntime", "batch_size": bench.get("batch"), **bench}
        row = make_row(model=name, variant=variant, precision=precision, backend="onnxruntime",
                       evaluation={"top1": top1, "samples": samples}, benchmark=bench or None, recipe=rec,
                       calibration_method=method, variant_path=path, source="doctor")
        row["id"] = new_row_id()
        rows.append(row)
    return rows

