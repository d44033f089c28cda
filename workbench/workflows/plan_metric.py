"""The metric a plan scores variants by: one small table, so it can later point at the metric registry.

A plan's ``metric:`` names the accuracy figure that ``max_accuracy_drop`` compares with the FP32
model and that the report plots against latency. Every metric here is read from a results row
(:func:`workbench.tables.results.make_row`, filled by :func:`workbench.analysis.accuracy.evaluate`)
and higher is better for all of them.

=================  ==================  =======================================================
metric             results column      meaning
=================  ==================  =======================================================
``top1``           ``top1``            top-1 accuracy against the labels (fraction 0..1)
``top5``           ``top5``            top-5 accuracy against the labels
``top1_agreement`` ``top1_agreement``  same class as the FP32 model (no labels needed)
``cosine``         ``min_cosine``      worst per-sample cosine similarity to the FP32 outputs
``sqnr``           ``min_sqnr_db``     lowest SQNR (dB) of the outputs against FP32
=================  ==================  =======================================================

Accuracy drops of fraction metrics are in percentage points (``top1`` 0.994 -> 0.990 is a
0.4-point drop); of ``cosine`` in cosine units. ``sqnr`` has no drop: FP32 against itself is
infinite (gate it with ``min_sqnr_db``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class PlanMetric:
    """One metric a plan may name.

    Attributes:
        name: The plan's spelling.
        column: The results-row column holding it.
        needs_labels: The evaluation data must have ``labels``.
        points: Multiplier from a difference of values to the drop's unit (100: fractions to
            percentage points), or None when a drop against FP32 has no meaning.
        unit: The drop's unit, for messages.
    """

    name: str
    column: str
    needs_labels: bool
    points: float | None
    unit: str


PLAN_METRICS: dict[str, PlanMetric] = {
    "top1": PlanMetric("top1", "top1", True, 100.0, "points"),
    "top5": PlanMetric("top5", "top5", True, 100.0, "points"),
    "top1_agreement": PlanMetric("top1_agreement", "top1_agreement", False, 100.0, "points"),
    "cosine": PlanMetric("cosine", "min_cosine", False, 1.0, "cosine"),
    "sqnr": PlanMetric("sqnr", "min_sqnr_db", False, None, "dB"),
}


def metric_names() -> list[str]:
    """The metric names a plan accepts."""
    return list(PLAN_METRICS)


def plan_metric(name: str) -> PlanMetric:
    """The metric called ``name``.

    Raises:
        KeyError: No such metric (the plan schema refuses it before this is reached).
    """
    return PLAN_METRICS[name]


def default_metric(has_labels: bool) -> str:
    """``top1`` when the evaluation data has labels, else ``cosine`` (agreement with FP32)."""
    return "top1" if has_labels else "cosine"


def metric_value(row: Mapping[str, Any], name: str) -> float | None:
    """The metric's value in a results row or run entry (None when missing or not a number)."""
    return as_number(row.get(plan_metric(name).column))


def as_number(value) -> float | None:
    """A results-table cell as a float (None when missing, a bool, not a number, or NaN)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def accuracy_drop(value: float | None, baseline: float | None, name: str) -> float | None:
    """How far ``value`` falls below the FP32 ``baseline``, in the metric's drop unit.

    Returns:
        The drop (negative when the variant scores higher), or None when either is missing or
        the metric has no drop.
    """
    points = plan_metric(name).points
    if value is None or baseline is None or points is None:
        return None
    return (baseline - value) * points
