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

from workbench.analysis.metrics import Target
from workbench.doctor.fix import DoctorError
from workbench.doctor.layerwise import LayerwiseResult
from workbench.tables.results import make_row, new_row_id

JSON_FORMAT = "trt-workbench.doctor/1"
# culprit evidence shown as columns of culprits_frame (NaN where a culprit has none, e.g. an
# unquantized source of range)
CULPRIT_EVIDENCE = ("local_sqnr_db", "local_channel_sqnr_db", "accum_sqnr_db", "added_db", "damage_db",
                    "confirmed_cost_pp", "confirmed_cost")
CULPRIT_COLUMNS = ("node", "op_type", "role") + CULPRIT_EVIDENCE + ("excluded_by_fix", "flags", "reason")
SUMMARY_COLUMNS = ("fp32_accuracy", "int8_accuracy", "fixed_accuracy", "drop_pp", "fixed_drop_pp", "target_drop",
                   "target_met", "fix_needed", "exclude", "method", "drop_calibration_samples", "evaluations",
                   "eval_samples", "metric", "metric_unit", "fp32_value", "int8_value", "fixed_value", "target_value")
FLAG_COLUMNS = ("kind", "node", "tensor", "value", "channel", "message")
CONFIG_KEYS = ("exclude", "method", "drop_samples", "num_samples")
EVALUATION_COLUMNS = ("what", "value", "top1", "seconds") + CONFIG_KEYS + ("path",)


@dataclass
class Diagnosis:
    """Everything :func:`~workbench.doctor.diagnose.diagnose` found; :meth:`to_dict` is the JSON
    report, and :meth:`summary_frame`, :meth:`culprits_frame`, :meth:`flags_frame` and
    :meth:`evaluations_frame` are its parts as tables.

    Attributes:
        model: The model path.
        recipe: The base recipe (dict).
        target_drop: The allowed drop from FP32 in the metric's unit (percentage points of top-1),
            or None when an absolute target was given.
        fp32_accuracy, int8_accuracy: Top-1 fractions of the FP32 model and the naive variant
            (None when the metric is not top1).
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
        fix: ``{"config", "value", "accuracy", "path", "needed"}`` (``accuracy``: top-1 fraction
            or None).
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
        metric: The metric (:meth:`~workbench.analysis.metrics.Metric.to_dict`: name, unit...).
        fp32_value, int8_value: The metric's value for the FP32 model and the naive variant.
        target: The :class:`~workbench.analysis.metrics.Target` the fix had to reach.
        warnings: ``{"kind", "message", ...}``: a target below the evaluation set's noise...
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
    data: dict = field(default_factory=dict)  # where the calibration and evaluation data came from
    metric: dict = field(default_factory=lambda: {"name": "top1", "unit": "%"})
    fp32_value: float | None = None
    int8_value: float | None = None
    target: Target | None = None
    warnings: list = field(default_factory=list)

    @property
    def metric_name(self) -> str:
        return self.metric.get("name", "top1")

    @property
    def metric_unit(self) -> str:
        return self.metric.get("unit", "%")

    @property
    def fixed_value(self) -> float | None:
        """The metric's value for the fix (the naive variant's when no fix was needed)."""
        return self.fix.get("value")

    @property
    def drop(self) -> float | None:
        """The naive variant's drop from FP32, in the metric's unit."""
        return None if self.fp32_value is None or self.int8_value is None else self.fp32_value - self.int8_value

    @property
    def fixed_drop(self) -> float | None:
        """The fix's drop from FP32, in the metric's unit."""
        return None if self.fp32_value is None or self.fixed_value is None else self.fp32_value - self.fixed_value

    @property
    def drop_pp(self) -> float | None:
        """The naive variant's drop in percentage points (percent metrics: top1, agreement; else None)."""
        return self.drop if self.metric_unit == "%" else None

    @property
    def fixed_accuracy(self) -> float | None:
        """Top-1 fraction of the fix (the naive variant's when no fix was needed); None for other metrics."""
        return self.fix.get("accuracy")

    @property
    def fixed_drop_pp(self) -> float | None:
        """The fix's drop in percentage points (percent metrics; else None)."""
        return self.fixed_drop if self.metric_unit == "%" else None

    @property
    def target_value(self) -> float | None:
        """The minimum metric value the fix had to reach."""
        return None if self.target is None else self.target.minimum

    @property
    def target_met(self) -> bool:
        """Whether the fix (or the naive variant, when none was needed) reaches the target."""
        if self.target is None:  # a report made before targets had values: a drop in points of top-1
            return self.fixed_drop is not None and self.fixed_drop <= (self.target_drop or 0.0) + 1e-9
        return self.target.passes(self.fixed_value)

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

    def _format(self, value) -> str:
        """A value of the metric with its unit (``97.50 %``, ``31.2 dB``)."""
        if value is None or not math.isfinite(value):
            return "n/a" if value is None or math.isnan(value) else ("inf" if value > 0 else "-inf")
        unit = self.metric_unit
        return f"{value:.2f} %" if unit == "%" else f"{value:.2f} {unit}".rstrip()

    def summary(self) -> list[str]:
        """A few sentences: the drop, where the error jumps, the culprits, the fix and its price."""
        name = self.metric_name
        target = (f"target {self.target_drop:g} {'pp' if self.metric_unit == '%' else self.metric_unit} drop"
                  if self.target_drop is not None else f"target {name} >= {self._format(self.target_value)}")
        drop = self.drop
        lines = [f"naive {self.recipe.get('precision', 'int8').upper()} ({self.recipe.get('method')}, "
                 f"{'per-channel' if self.recipe.get('per_channel') else 'per-tensor'} weights): {name} "
                 f"{self._format(self.fp32_value)} -> {self._format(self.int8_value)}"
                 + (f" ({self._format(drop).replace(' %', ' pp')} drop; {target})" if drop is not None
                    and math.isfinite(drop) else f" ({target})")]
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
            lines.append(f"fix: {'; '.join(changes) or 'none found'} -> {name} {self._format(self.fixed_value)} "
                         f"({self.evaluations} full evaluations in all)")
        lines += [f"warning: {w['message']}" for w in self.warnings]
        if self.latency:
            lat = {k: v["median_ms"] for k, v in self.latency.items()}
            lines.append("ONNX Runtime CPU median latency (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in lat.items()))
        return lines

    def to_dict(self) -> dict:
        """The JSON report (``doctor_command``'s output); keys are a contract: added to, never renamed.

        The metric's figures: ``metric`` (its name), ``metric_unit``, ``fp32_value``,
        ``int8_value``, ``fixed_value``, ``drop``/``fixed_drop`` (from FP32), ``target`` and
        ``target_value`` (the minimum the fix had to reach), ``warnings``; the older
        ``fp32_accuracy``, ``int8_accuracy``, ``fixed_accuracy`` (top-1 fractions) and
        ``drop_pp``/``fixed_drop_pp`` are None when the metric is not top1 (not percent).
        """
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
            "fixed_accuracy": self.fixed_accuracy,
            "fixed_drop_pp": self.fixed_drop_pp,
            "target_met": self.target_met,
            "fix_needed": self.fix["needed"],
            "metric": self.metric_name,
            "metric_unit": self.metric_unit,
            "metric_info": self.metric,
            "fp32_value": self.fp32_value,
            "int8_value": self.int8_value,
            "fixed_value": self.fixed_value,
            "drop": self.drop,
            "fixed_drop": self.fixed_drop,
            "target": None if self.target is None else self.target.to_dict(),
            "target_value": self.target_value,
            "warnings": self.warnings,
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
            "data": dict(self.data),
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
            ``drop_calibration_samples``, ``evaluations`` and ``eval_samples``; then the
            ``metric``, its ``metric_unit``, ``fp32_value``, ``int8_value``, ``fixed_value`` and
            ``target_value`` (the top-1 columns are None for other metrics).
        """
        recipe = self.fixed_recipe()
        row = {"fp32_accuracy": self.fp32_accuracy, "int8_accuracy": self.int8_accuracy,
               "fixed_accuracy": self.fixed_accuracy, "drop_pp": self.drop_pp, "fixed_drop_pp": self.fixed_drop_pp,
               "target_drop": self.target_drop, "target_met": self.target_met, "fix_needed": self.fix["needed"],
               "exclude": recipe["exclude"], "method": recipe["method"],
               "drop_calibration_samples": recipe["drop_calibration_samples"], "evaluations": self.evaluations,
               "eval_samples": self.eval_samples, "metric": self.metric_name, "metric_unit": self.metric_unit,
               "fp32_value": self.fp32_value, "int8_value": self.int8_value, "fixed_value": self.fixed_value,
               "target_value": self.target_value}
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
            One row per :attr:`evaluation_log` entry, columns ``what``, ``value`` (the metric's),
            ``top1`` (a fraction when the metric is top1, else None), ``seconds``,
            the configuration's ``exclude``, ``method``, ``drop_samples`` and ``num_samples``
            (None for the FP32 model, which has no configuration; ``num_samples`` a nullable
            integer, missing when the whole calibration set was used) and the evaluated ``path``.
        """
        rows = []
        for entry in self.evaluation_log:
            config = entry.get("config") or {}
            rows.append({"what": entry["what"], "value": entry.get("value"), "top1": entry.get("top1"),
                         "seconds": entry["seconds"],
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

    Each row carries ``top1`` (top1 reports), the metric's ``metric``, ``metric_value`` and
    ``metric_unit`` (every report), and, when the report measured latency, the ONNX Runtime CPU
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
    metric = report.get("metric") or "top1"
    unit = report.get("metric_unit", "%")
    values = {"fp32": report.get("fp32_value"), "int8": report.get("int8_value"), "fixed": report.get("fixed_value")}
    if report.get("fp32_value") is None and metric == "top1":  # a report from before metric values
        values = {k: None if report.get(f) is None else 100.0 * report[f]
                  for k, f in (("fp32", "fp32_accuracy"), ("int8", "int8_accuracy"), ("fixed", "fixed_accuracy"))}
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
                       evaluation={"top1": top1, "samples": samples, "metric": metric,
                                   "metric_value": values[key], "metric_unit": unit},
                       benchmark=bench or None, recipe=rec,
                       calibration_method=method, variant_path=path, source="doctor")
        row["id"] = new_row_id()
        rows.append(row)
    return rows

