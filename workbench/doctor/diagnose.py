"""The INT8 doctor: when INT8 loses accuracy, which layers are to blame and the smallest fix.

:func:`diagnose` runs the whole examination on an FP32 ONNX model, its calibration set and a
labelled evaluation set; :func:`doctor_command` is the ``workbench doctor ... --json`` entry.

1. **Accuracy** of the FP32 model and the naive INT8 variant (the user's recipe, by default
   ``Recipe("int8")``: minmax, per-channel weights, ONNX Runtime's Q/DQ) - two full evaluations.
2. **Layerwise pass** (:mod:`~workbench.doctor.layerwise`, on the first
   ``layerwise_samples`` evaluation samples): every tensor's accumulated error and every
   quantized node's local error (the node fed FP32 inputs through its own Q/DQ), its inputs'
   saturation/underflow, per-channel ranges and kurtosis; weight errors.
3. **Ranges** (:mod:`~workbench.doctor.ranges`): calibration-set histograms of each
   quantized activation and the clipping range each calibration method picks; flags.
4. **Calibration checks**: outlier calibration samples, calibration vs evaluation statistics,
   and (``calib_sizes``) accuracy against calibration-set size.
5. **Fix** (:mod:`~workbench.doctor.fix`), only when the top-1 drop exceeds
   ``target_drop`` percentage points: a calibration change when the evidence points at one (drop
   outlier samples; another method whose ranges differ), else the smallest set of nodes to keep
   out of INT8, found by galloping + bisection over the layerwise ranking, then pruning. Every
   full evaluation is counted.
6. **Culprits**: the nodes that add the error (confirmed by the fix search when one ran) and the
   nodes whose output range causes it (e.g. the producer of a channel that dominates a
   per-tensor scale), worst first, each with its evidence.
7. **Latency** of FP32, naive INT8 and the fix on ONNX Runtime (each node kept in high precision
   costs).

Example::

    report = doctor_command("model.onnx", "calib.npz", "eval.npz", target_drop=0.5)
    report["culprits"][0]["node"], report["recipe"]["exclude"], report["fixed_accuracy"]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import pandas as pd

from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend
from workbench.datasets.arrays import load_labelled
from workbench.doctor.fix import Config, DoctorError, Evaluator, search_exclusions
from workbench.doctor.graph import EPILOGUE_OPS
from workbench.doctor.layerwise import (
    DEFAULT_SAMPLES,
    LayerwiseResult,
    layerwise_compare,
)
from workbench.doctor.ranges import (
    activation_statistics,
    calib_vs_eval,
    calibration_outliers,
    method_clip_ranges,
    range_flags,
)
from workbench.model import load_model
from workbench.precision import Recipe
from workbench.progress import resolve_progress
from workbench.tables.results import make_row, new_row_id

METHODS = ("minmax", "entropy", "percentile", "distribution")
# Ops a per-channel range passes through unchanged when walking back to a tensor's source.
CHANNELWISE_OPS = set(EPILOGUE_OPS) | {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten",
                                       "Identity", "Dropout", "Reshape", "Squeeze", "Unsqueeze"}
SUSPICIOUS_GAP_DB = 10.0  # local SQNR this far below the median marks a node as suspicious
SUSPICIOUS_FLOOR_DB = 20.0  # ... and so does a local SQNR below this
JUMP_DB = 6.0  # the accumulated SQNR falling this much at a node's output is its own error
KERNEL_GAP_DB = 10.0  # accumulated this far below the emulated local SQNR: the runtime's kernel loses it
ERROR_FLAGS = ("channel-outlier", "heavy-tail", "underflow", "saturation")
JSON_FORMAT = "trt-workbench.doctor/1"


# --------------------------------------------------------------------------------------------
# Inputs


def _recipe(recipe, method: str | None, per_channel: bool | None):

    if recipe is None:
        base = Recipe("int8", tool="onnxruntime")
    elif isinstance(recipe, Recipe):
        base = recipe
    elif isinstance(recipe, Mapping):
        base = Recipe.from_dict(recipe)
    elif isinstance(recipe, str):
        base = Recipe(recipe, tool="onnxruntime")
    else:
        raise DoctorError(f"recipe must be a Recipe, a dict or a precision name, got {type(recipe).__name__}.")
    if base.precision not in ("int8", "fp8"):
        raise DoctorError(f"the doctor examines quantized variants; recipe precision is {base.precision!r}. Use "
                          "Recipe('int8') (or 'fp8').")
    changes = {}
    if method is not None:
        changes["method"] = method
    if per_channel is not None:
        changes["per_channel"] = bool(per_channel)
    return base.with_(**changes) if changes else base


def _check_target(target_drop) -> float:
    try:
        value = float(target_drop)
    except (TypeError, ValueError):
        raise DoctorError(f"target_drop must be a number of percentage points of top-1 (e.g. 0.5), got "
                          f"{target_drop!r}.") from None
    if not math.isfinite(value) or value < 0:
        raise DoctorError(f"target_drop must be zero or more percentage points of top-1 (e.g. 0.5), got {target_drop!r}.")
    if value > 100:
        raise DoctorError(f"target_drop is in percentage points (0-100), got {value}; for half a point give 0.5.")
    return value


# --------------------------------------------------------------------------------------------
# Progress

PHASES = ("accuracy of FP32 and naive INT8", "layerwise comparison", "ranges and clipping per method",
          "calibration checks", "fix search", "latency")


class _Progress:
    """The doctor's phases as one task of :mod:`workbench.progress` (``"log"`` on the CLI, a bar
    in a notebook)."""

    def __init__(self, progress):
        try:
            self.task = resolve_progress(progress).task("doctor", len(PHASES), unit="phase")
        except ValueError as err:
            raise DoctorError(str(err)) from None
        self.started = False

    def phase(self, name: str, detail: str = "") -> None:
        # a phase's start reports the previous one as done
        self.task.update(1 if self.started else 0, name + (f" ({detail})" if detail else ""))
        self.started = True

    def close(self, detail: str = "") -> None:
        self.task.update(self.task.total - self.task.done, detail or "done")
        self.task.close()


# --------------------------------------------------------------------------------------------
# Result


@dataclass
class Diagnosis:
    """Everything :func:`diagnose` found; :meth:`to_dict` is the JSON report.

    Attributes:
        model: The model path.
        recipe: The base recipe (dict).
        target_drop: The allowed top-1 drop in percentage points.
        fp32_accuracy, int8_accuracy: Top-1 fractions of the FP32 model and the naive variant.
        layerwise: The :class:`LayerwiseResult` of the naive variant.
        calib_stats: Calibration-set statistics and histograms per quantized activation.
        clips: Clipping range per (node, tensor, method).
        flags: Range flags (:func:`range_flags`).
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
        data: Where the ``calibration`` and ``evaluation`` data came from (a path, or ``"arrays"``),
            so the fix can be saved as a plan.
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
    data: dict = field(default_factory=dict)

    @property
    def drop_pp(self) -> float:
        """Top-1 drop of the naive variant, percentage points."""
        return 100.0 * (self.fp32_accuracy - self.int8_accuracy)

    @property
    def fixed_accuracy(self) -> float:
        """Top-1 of the fix (the naive variant's when no fix was needed)."""
        return self.fix["accuracy"]

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
            "recipe": {
                "exclude": list(self.fix["config"]["exclude"]),
                "method": self.fix["config"]["method"],
                "drop_calibration_samples": list(self.fix["config"]["drop_samples"]),
                "per_channel": self.recipe.get("per_channel"),
                "precision": self.recipe.get("precision"),
                "base": self.recipe,
            },
            "fixed_accuracy": self.fix["accuracy"],
            "fixed_drop_pp": 100.0 * (self.fp32_accuracy - self.fix["accuracy"]),
            "target_met": 100.0 * (self.fp32_accuracy - self.fix["accuracy"]) <= self.target_drop + 1e-9,
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
            "data": dict(self.data),
        }
        return jsonable(report)


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


# --------------------------------------------------------------------------------------------
# Culprits


def rank_candidates(nodes: pd.DataFrame) -> list[dict]:
    """Quantized groups ranked by predicted accuracy cost: worst local error first.

    A node's ``rank_db`` is the lower of its local SQNR and its median output channel's local
    SQNR (so a node whose other channels drown next to one large channel still ranks high), and,
    where the accumulated SQNR drops by ``JUMP_DB`` or more at the node's output (the variant as
    the runtime runs it, integer kernels included), that accumulated SQNR;
    ``damage_db`` is how far ``rank_db`` lies below the median over all quantized nodes (0 when
    above). This is the layerwise pass's prediction, before any evaluation.

    Args:
        nodes: :attr:`LayerwiseResult.nodes`.

    Returns:
        ``{"node", "group", "local_sqnr_db", "local_channel_sqnr_db", "rank_db", "damage_db"}``
        per quantized node, worst first.
    """
    if nodes.empty:
        return []
    rows = []
    for row in nodes.to_dict("records"):
        rank = min(_finite(row.get("local_sqnr_db")), _finite(row.get("local_channel_sqnr_db")))
        if _finite(row.get("added_db"), 0.0) >= JUMP_DB:  # the error jumps here as the runtime runs it
            rank = min(rank, _finite(row.get("accum_sqnr_db")))
        rows.append({"node": row["node"], "group": list(row["group"]), "local_sqnr_db": row["local_sqnr_db"],
                     "local_channel_sqnr_db": row.get("local_channel_sqnr_db"), "rank_db": rank,
                     "_added": _finite(row.get("added_db"), 0.0)})
    median = float(np.median([r["rank_db"] for r in rows]))
    rows.sort(key=lambda r: (r["rank_db"], -r["_added"]))
    for r in rows:
        r.pop("_added")
        r["damage_db"] = max(0.0, median - r["rank_db"])
    return rows


def _finite(value, default=120.0) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(value) else min(value, 120.0)


def source_of(model: onnx.ModelProto, tensor: str, heads: Sequence[str]) -> str | None:
    """The node that gives ``tensor`` its per-channel ranges: walk back through channel-wise ops.

    From the tensor's producer, follow first inputs through :data:`CHANNELWISE_OPS` (BN, ReLU,
    pooling, Flatten...) until a quantized group head (``heads``) or any other op; that node is
    the source (a graph input gives None).

    Args:
        model: The FP32 model.
        tensor: A tensor a quantized node reads.
        heads: Quantized group heads (the walk stops there).

    Returns:
        The source node's name, or None.
    """
    producers = {out: node for node in model.graph.node for out in node.output}
    heads = set(heads)
    node = producers.get(tensor)
    visited = set()
    while node is not None and node.name not in visited:
        visited.add(node.name)
        if node.name in heads or node.op_type not in CHANNELWISE_OPS:
            return node.name
        node = producers.get(node.input[0]) if node.input else None
    return None


def find_culprits(
    model: onnx.ModelProto,
    layerwise: LayerwiseResult,
    flags: Sequence[Mapping],
    ranking: Sequence[Mapping],
    *,
    fix_exclude: Sequence[str] = (),
    costs: Mapping[str, float] | None = None,
    outliers: Sequence[Mapping] = (),
) -> list[dict]:
    """The culprits, worst first, each with its evidence.

    Order: the nodes the confirmed fix keeps out of INT8 (by local SQNR), then the sources of
    the flagged ranges those (or other suspicious) nodes read, then other suspicious nodes
    (local SQNR ``SUSPICIOUS_GAP_DB`` below the median, or under ``SUSPICIOUS_FLOOR_DB``).

    Args:
        model: The FP32 model.
        layerwise: The layerwise result of the naive variant.
        flags: :func:`range_flags` output.
        ranking: :func:`rank_candidates` output.
        fix_exclude: The fix's excluded nodes (confirmed by evaluations).
        costs: Node -> confirmed accuracy cost in percentage points, where measured.
        outliers: :func:`calibration_outliers` output (their inflated ranges are named in the
            reasons of the nodes reading them).

    Returns:
        ``{"node", "op_type", "role", "group", "evidence": {...}, "reason"}`` dicts; ``role`` is
        ``"adds error"``, ``"source of range"`` or ``"adds error; source of range"``.
    """
    costs = dict(costs or {})
    nodes = layerwise.nodes.set_index("node") if not layerwise.nodes.empty else pd.DataFrame()
    inputs = layerwise.inputs
    weights = layerwise.weights
    heads = list(layerwise.quantized)
    op_of = {n.name: n.op_type for n in model.graph.node}
    by_node = {r["node"]: r for r in ranking}
    median = float(np.median([r["rank_db"] for r in ranking])) if ranking else 120.0
    suspicious = [r["node"] for r in ranking
                  if r["rank_db"] < median - SUSPICIOUS_GAP_DB or r["rank_db"] < SUSPICIOUS_FLOOR_DB]
    error_nodes = list(dict.fromkeys(sorted(fix_exclude, key=lambda n: by_node.get(n, {}).get("rank_db", 120.0))
                                     + suspicious))
    node_flags: dict[str, list] = {}
    for flag in flags:
        node_flags.setdefault(flag["node"], []).append(flag)
    inflated: dict[str, list] = {}  # tensor -> [(sample, factor)]
    for entry in outliers:
        for tensor, factor in (entry.get("inflated") or {}).items():
            inflated.setdefault(tensor, []).append((entry["sample"], factor))
    reads = {name: [qi.tensor for qi in qn.activations] for name, qn in layerwise.quantized.items()}

    def row_of(name: str) -> dict:
        return nodes.loc[name].to_dict() if name in nodes.index else {}

    def evidence(name: str) -> dict:
        ev: dict[str, Any] = {}
        if name in nodes.index:
            row = nodes.loc[name]
            ev.update(local_sqnr_db=row["local_sqnr_db"], local_channel_sqnr_db=row["local_channel_sqnr_db"],
                      local_cosine=row["local_cosine"],
                      accum_sqnr_db=row["accum_sqnr_db"], added_db=row["added_db"],
                      weight_sqnr_db=row["weight_sqnr_db"])
        if name in by_node:
            ev["damage_db"] = by_node[name]["damage_db"]
        if not inputs.empty:
            rows = inputs[inputs["node"] == name]
            ev["inputs"] = [{k: r[k] for k in ("tensor", "scale", "clip", "saturation_rate", "underflow_rate",
                                               "kurtosis", "dominant_channel", "channel_dominance", "qdq_sqnr_db")}
                            for r in rows.to_dict("records")]
        if not weights.empty:
            rows = weights[weights["node"] == name]
            ev["weights"] = [{k: r[k] for k in ("weight", "sqnr_db", "per_channel", "dominant_channel",
                                                "channel_dominance")} for r in rows.to_dict("records")]
        ev["flags"] = [f["kind"] for f in node_flags.get(name, [])]
        ev["excluded_by_fix"] = name in fix_exclude
        if name in costs:
            ev["confirmed_cost_pp"] = costs[name]
        return ev

    culprits: dict[str, dict] = {}

    def add(name: str, role: str, reason: str):
        if name in culprits:
            if role not in culprits[name]["role"]:
                culprits[name]["role"] += f"; {role}"
                culprits[name]["reason"] += f"; {reason}"
            return
        culprits[name] = {"node": name, "op_type": op_of.get(name), "role": role,
                          "group": by_node.get(name, {}).get("group", [name]), "evidence": evidence(name),
                          "reason": reason}

    sources: list[tuple[str, str]] = []
    for name in error_nodes:
        ev_flags = [f for f in node_flags.get(name, []) if f["kind"] in ERROR_FLAGS]
        entry = by_node.get(name, {})
        local_db = _finite(entry.get("local_sqnr_db"))
        channel_db = _finite(entry.get("local_channel_sqnr_db"))
        text = f"local SQNR {local_db:.1f} dB"
        if channel_db < local_db - 3:
            text += f", {channel_db:.1f} dB in its median output channel"
        parts = [f"{text} (median node {median:.1f} dB)"]
        accum_db, added_db = _finite(row_of(name).get("accum_sqnr_db")), _finite(row_of(name).get("added_db"), 0.0)
        if added_db >= JUMP_DB and accum_db < local_db - KERNEL_GAP_DB:
            parts.append(f"as ONNX Runtime runs the variant ({layerwise.variant_level} optimizations: integer "
                         f"kernels) the accumulated SQNR falls to {accum_db:.1f} dB here, far below the "
                         f"{local_db:.1f} dB Q/DQ emulation predicts: the kernel (e.g. u8s8 saturation on CPUs "
                         "without VNNI), not the ranges, loses the accuracy")
        parts += [f["message"] for f in ev_flags]
        parts += [f["message"] for f in node_flags.get(name, []) if f["kind"] == "weight-channel-outlier"]
        for tensor in reads.get(name, []):
            if tensor in inflated:
                samples = sorted(s for s, _ in inflated[tensor])
                factor = max(f for _, f in inflated[tensor])
                parts.append(f"calibration sample(s) {samples} widen {tensor}'s calibrated range {factor:.0f}x")
        if name in fix_exclude:
            cost = costs.get(name)
            parts.append("keeping it out of INT8 is part of the confirmed fix"
                         + (f" (worth {cost:.1f} pp of top-1)" if cost is not None else ""))
        add(name, "adds error", "; ".join(parts))
        for f in ev_flags:
            if f["kind"] in ("channel-outlier", "heavy-tail"):
                src = source_of(model, f["tensor"], heads)
                if src is not None and src != name:
                    sources.append((src, f"{f['message']}; the tensor is produced by {src}'s group and read by {name}"))
    for src, reason in sources:
        add(src, "source of range", reason)
    return list(culprits.values())


def confirmed_costs(steps: Sequence[Mapping], chosen: Sequence[str], naive: float) -> dict[str, float]:
    """Each fix member's confirmed accuracy cost (pp): fix top-1 minus top-1 without that member excluded.

    Uses only evaluations the search already ran (no new ones); a single-member fix is compared
    with the naive variant.

    Args:
        steps: :attr:`SearchResult.steps`.
        chosen: The fix's excluded nodes.
        naive: Top-1 of the configuration the search started from.

    Returns:
        Node -> cost in percentage points, for the members whose counterpart was scored.
    """
    if not chosen:
        return {}
    chosen_set = set(chosen)
    scored = {frozenset(s["exclude"]): s["top1"] for s in steps}
    fix_top1 = scored.get(frozenset(chosen_set))
    if fix_top1 is None:
        return {}
    costs = {}
    for node in chosen:
        rest = frozenset(chosen_set - {node})
        other = naive if not rest else scored.get(rest)
        if other is not None:
            costs[node] = 100.0 * (fix_top1 - other)
    return costs


# --------------------------------------------------------------------------------------------
# Latency


def measure_latency(path, inputs: Mapping[str, np.ndarray], *, options: Mapping | None = None, batch: int = 32,
                    iterations: int = 30, warmup: int = 5) -> dict:
    """Latency of one model on ONNX Runtime's CPU provider (the workbench backend's benchmark).

    Args:
        path: The ONNX file.
        inputs: Input arrays; the first ``batch`` samples are timed.
        options: ``{"graph_optimization_level": ...}`` (a variant's ``ort_session_options``).
        batch: Samples per inference.
        iterations, warmup: Timed and untimed runs.

    Returns:
        ``{"median_ms", "mean_ms", "p90_ms", "batch", "iterations"}``.
    """

    engine = OnnxRuntimeBackend().build(str(path), dict(options or {}))
    feed = {k: v[:batch] for k, v in inputs.items()}
    result = engine.benchmark(feed, iterations=iterations, warmup=warmup)
    return {"median_ms": result.median_ms, "mean_ms": result.mean_ms, "p90_ms": result.p90_ms,
            "batch": int(next(iter(feed.values())).shape[0]), "iterations": result.iterations}


# --------------------------------------------------------------------------------------------
# Results rows (the tradeoff plot)


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


# --------------------------------------------------------------------------------------------
# The examination


def diagnose(
    model,
    calib,
    eval,  # noqa: A002  (the CLI's name)
    *,
    target_drop: float = 0.5,
    recipe=None,
    method: str | None = None,
    per_channel: bool | None = None,
    layerwise_samples: int | None = DEFAULT_SAMPLES,
    methods: Sequence[str] = METHODS,
    calib_sizes: Sequence[int] | None = None,
    outlier_factor: float = 4.0,
    latency: bool = True,
    latency_iterations: int = 30,
    fix: bool = True,
    workspace=None,
    progress=None,
) -> Diagnosis:
    """Examine a model's INT8 variant: accuracy, layerwise error, ranges, calibration, culprits, fix.

    Args:
        model: The FP32 ONNX model file.
        calib: Calibration data: an ``.npz`` (one array per model input) or a dict of arrays.
        eval: Labelled evaluation data: an ``.npz`` or dict with the inputs and ``labels``.
        target_drop: Allowed top-1 drop of the fix, in percentage points (0.5 = half a point).
        recipe: The naive recipe (a :class:`workbench.precision.Recipe`, dict or None for
            ``Recipe("int8", tool="onnxruntime")``: minmax, per-channel weights).
        method: Override the recipe's calibration method.
        per_channel: Override the recipe's per-channel weights.
        layerwise_samples: Evaluation samples the layerwise pass compares (None: all).
        methods: Calibration methods whose clipping ranges are shown (and tried as a fix when
            they differ and the ranges are flagged).
        calib_sizes: Calibration-set sizes to measure accuracy at (one evaluation each); None
            skips the curve.
        outlier_factor: A calibration sample is an outlier when its max ``|x|`` on some
            quantized tensor exceeds this many times the 90th percentile of all samples'.
        latency: Measure ORT latency of FP32, naive INT8 and the fix.
        latency_iterations: Timed runs per latency measurement.
        fix: Search for a fix when the drop exceeds the target.
        workspace: Folder for variants (default: the workspace's ``variants``).
        progress: ``None`` (silent), ``"log"`` (one INFO line per phase on the ``workbench``
            logger, as the CLI shows), ``"tqdm"`` (a progress bar, for notebooks) or a callable
            taking one message per phase.

    Returns:
        The :class:`Diagnosis`.

    Raises:
        ModelLoadError: The model cannot be loaded.
        InputDataError, DoctorError: Bad data, recipe or target (the message names the fix).
    """

    started = time.perf_counter()
    target = _check_target(target_drop)
    report = _Progress(progress)
    loaded = load_model(model)
    base = _recipe(recipe, method, per_channel)
    calib_inputs, _, calib_source = load_labelled(calib, loaded.input_names, what="calibration")
    eval_inputs, labels, eval_source = load_labelled(eval, loaded.input_names, what="evaluation", need_labels=True)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise DoctorError(f"unknown calibration method(s) {unknown}; choose from {list(METHODS)}.")
    if calib_sizes and any(int(n) < 1 for n in calib_sizes):
        raise DoctorError(f"calibration sizes must be at least 1, got {list(calib_sizes)}.")

    report.phase(PHASES[0], f"{labels.shape[0]} evaluation samples")
    evaluator = Evaluator(loaded.path, calib_inputs, eval_inputs, labels, recipe=base, workspace=workspace)
    fp32_acc = evaluator.fp32()
    naive_config = Config.make(method=base.method)
    naive_variant = evaluator.variant(naive_config)
    int8_acc = evaluator(naive_config, "naive int8")
    variant_proto = onnx.load(str(naive_variant.path))
    fp32_proto = loaded.proto

    # 2. layerwise
    report.phase(PHASES[1], f"FP32 {100 * fp32_acc:.2f}%, naive INT8 {100 * int8_acc:.2f}% top-1")
    clock = time.perf_counter()
    level = naive_variant.ort_session_options.get("graph_optimization_level", "all")
    layerwise = layerwise_compare(fp32_proto, variant_proto, eval_inputs, max_samples=layerwise_samples,
                                  variant_level=level)
    evaluator.all_nodes = frozenset(layerwise.quantized)
    timings = {"layerwise": time.perf_counter() - clock}
    report.phase(PHASES[2], f"{len(layerwise.quantized)} quantized nodes, methods {', '.join(methods)}")
    clock = time.perf_counter()

    # 3. ranges: clipping per method (variants share the placement), calibration statistics
    method_variants = {base.method: variant_proto}
    for m in methods:
        if m not in method_variants:
            method_variants[m] = onnx.load(str(evaluator.variant(Config.make(method=m)).path))
    clips = method_clip_ranges(method_variants)
    q_tensors = list(dict.fromkeys(layerwise.inputs["tensor"])) if not layerwise.inputs.empty else []
    calib_stats = activation_statistics(fp32_proto, calib_inputs, q_tensors)
    flags = range_flags(layerwise.inputs, layerwise.weights)
    timings["ranges"] = time.perf_counter() - clock
    clock = time.perf_counter()

    # 4. calibration checks
    report.phase(PHASES[3])
    outliers = calibration_outliers({t: s["sample_amax"] for t, s in calib_stats.items()}, factor=outlier_factor)
    calib_eval = calib_vs_eval(calib_stats, layerwise.inputs)
    curve = None
    if calib_sizes:
        curve = accuracy_vs_calibration_size(evaluator, calib_sizes, base.method,
                                             next(iter(calib_inputs.values())).shape[0])

    timings["calibration_checks"] = time.perf_counter() - clock
    # 5. fix
    ranking = rank_candidates(layerwise.nodes)
    passes = lambda top1: 100.0 * (fp32_acc - top1) <= target + 1e-9  # noqa: E731
    search_info: dict = {"alternatives": [], "steps": [], "evaluations": 0, "base": naive_config.to_dict()}
    chosen_config, chosen_acc, needed = naive_config, int8_acc, not passes(int8_acc)
    costs: dict[str, float] = {}
    report.phase(PHASES[4], "needed" if needed else "not needed: the naive variant meets the target")
    if needed and fix:
        before = evaluator.evaluations
        chosen_config, chosen_acc, costs, search_info = _search_fix(
            evaluator, naive_config, int8_acc, ranking, flags, outliers, clips, base.method, methods, passes)
        search_info["evaluations"] = evaluator.evaluations - before
    for r in ranking:
        if r["node"] in costs:
            r["confirmed_cost_pp"] = costs[r["node"]]
    culprits = find_culprits(fp32_proto, layerwise, flags, ranking, fix_exclude=chosen_config.exclude, costs=costs,
                             outliers=outliers)

    all_excluded = set(chosen_config.exclude) >= set(layerwise.quantized)
    fixed_variant = None if all_excluded else evaluator.variant(chosen_config)
    fix_info = {"config": chosen_config.to_dict(), "accuracy": chosen_acc, "needed": needed,
                "path": str(fixed_variant.path) if fixed_variant is not None else str(loaded.path)}

    # 7. latency
    report.phase(PHASES[5], "on" if latency else "skipped")
    clock = time.perf_counter()
    lat = {}
    if latency:
        lat["fp32"] = measure_latency(loaded.path, eval_inputs, iterations=latency_iterations)
        lat["int8"] = measure_latency(naive_variant.ort_path, eval_inputs, options=naive_variant.ort_session_options,
                                      iterations=latency_iterations)
        if chosen_config == naive_config:
            lat["fixed"] = lat["int8"]
        elif fixed_variant is None:
            lat["fixed"] = lat["fp32"]
        else:
            lat["fixed"] = measure_latency(fixed_variant.ort_path, eval_inputs,
                                           options=fixed_variant.ort_session_options, iterations=latency_iterations)
    timings["latency"] = time.perf_counter() - clock
    timings["evaluations"] = sum(e.seconds for e in evaluator.log)
    variants = {"naive": str(naive_variant.path), "fixed": fix_info["path"]}
    report.close(f"{evaluator.evaluations} full evaluations")
    return Diagnosis(
        model=str(loaded.path), recipe=base.to_dict(), target_drop=target, fp32_accuracy=fp32_acc,
        int8_accuracy=int8_acc, layerwise=layerwise, calib_stats=calib_stats, clips=clips, flags=flags,
        calib_outliers=outliers, calib_eval=calib_eval, calib_curve=curve, ranking=ranking, search=search_info,
        culprits=culprits, fix=fix_info, latency=lat, evaluations=evaluator.evaluations,
        evaluation_log=evaluator.log_dicts(), variants=variants, seconds=time.perf_counter() - started,
        eval_samples=int(labels.shape[0]), timings=timings,
        data={"calibration": _abspath(calib_source), "evaluation": _abspath(eval_source)})


def _abspath(source: str) -> str:
    """A data source as an absolute path (``"arrays"`` stays as it is)."""
    return source if source == "arrays" else str(Path(source).expanduser().resolve())


def _search_fix(evaluator, naive_config, int8_acc, ranking, flags, outliers, clips, base_method, methods, passes):
    """Calibration alternatives the evidence points at, then the exclusion search."""
    alternatives = []
    tried: list[tuple[Config, float]] = [(naive_config, int8_acc)]
    if outliers:
        config = Config.make(method=base_method, drop_samples=[o["sample"] for o in outliers])
        value = evaluator(config, "drop outlier calibration samples")
        alternatives.append({"config": config.to_dict(), "top1": value, "passed": passes(value),
                             "why": f"{len(outliers)} calibration sample(s) far outside the rest"})
        tried.append((config, value))
    flagged = {(f["node"], f["tensor"]) for f in flags if f["kind"] in ("heavy-tail", "saturation", "channel-outlier")}
    if flagged:
        for m in methods:
            if m == base_method or not method_helps(clips, base_method, m, flagged):
                continue
            config = Config.make(method=m)
            value = evaluator(config, f"method {m}")
            alternatives.append({"config": config.to_dict(), "top1": value, "passed": passes(value),
                                 "why": f"{m} clips a flagged range at least 2x tighter than {base_method}"})
            tried.append((config, value))
    passing = [(c, v) for c, v in tried[1:] if passes(v)]
    if passing:
        config, value = max(passing, key=lambda cv: cv[1])
        return config, value, {}, {"alternatives": alternatives, "steps": [], "base": config.to_dict()}
    # exclusions on the base (with outlier samples dropped when that helped)
    start_config, start_acc = naive_config, int8_acc
    if outliers and tried[1][1] > int8_acc:
        start_config, start_acc = tried[1]
    candidates = [r["node"] for r in ranking]

    def with_exclude(exclude):
        return Config.make(exclude=exclude, method=start_config.method, drop_samples=start_config.drop_samples)

    result = search_exclusions(candidates, lambda ex: evaluator(with_exclude(ex)), passes,
                               known=lambda ex: evaluator.known(with_exclude(ex)))
    info = {"alternatives": alternatives, "steps": result.steps, "base": start_config.to_dict()}
    if result.exclude is None:  # cannot happen with target >= 0 (all excluded = FP32), kept for safety
        return start_config, start_acc, {}, info
    config = with_exclude(result.exclude)
    costs = confirmed_costs(result.steps, result.exclude, start_acc)
    return config, result.top1, costs, info


def method_helps(clips: pd.DataFrame, base: str, other: str, flagged, *, gain: float = 2.0) -> bool:
    """Whether ``other`` clips some flagged (node, tensor) at least ``gain`` times tighter than ``base``.

    A tighter clip gives the other values ``log2(gain)`` more bits; a method that clips a
    flagged range less than 2x tighter cannot rescue values starved of levels, so the doctor
    does not spend an evaluation on it.

    Args:
        clips: :func:`method_clip_ranges` output.
        base, other: Method names.
        flagged: (node, tensor) pairs with range flags.
        gain: How many times tighter counts.

    Returns:
        True when some flagged clip shrinks by ``gain`` or more.
    """
    if clips.empty:
        return False
    table = clips.set_index(["node", "tensor", "method"])["clip"]
    for node, tensor in flagged:
        a, b = table.get((node, tensor, base)), table.get((node, tensor, other))
        if a is not None and b is not None and b > 0 and a / b >= gain:
            return True
    return False


def accuracy_vs_calibration_size(evaluator: Evaluator, sizes: Sequence[int], method: str, available: int) -> list[dict]:
    """Top-1 of the recipe calibrated on the first N samples, for each N (one evaluation each).

    Args:
        evaluator: The doctor's evaluator (counts the evaluations).
        sizes: Calibration-set sizes; sizes above the available count are skipped.
        method: Calibration method.
        available: Calibration samples available.

    Returns:
        ``{"num_samples", "top1"}`` per size, ascending.
    """
    bad = [s for s in sizes if int(s) < 1]
    if bad:
        raise DoctorError(f"calibration sizes must be at least 1, got {bad}.")
    curve = []
    for n in sorted({int(s) for s in sizes if int(s) <= available}):
        config = Config.make(method=method, num_samples=None if n == available else n)
        curve.append({"num_samples": n, "top1": evaluator(config, f"calibration size {n}")})
    return curve


