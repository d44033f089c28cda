"""Analysis: measurements of models and engines (accuracy, fusion, engine comparison); it never
orchestrates (the loops live in :mod:`workbench.workflows`)."""

from __future__ import annotations

from workbench._lazy import lazy_exports

_EXPORTS = {
    "evaluate": "workbench.analysis.accuracy",
    "EvaluationResult": "workbench.analysis.accuracy",
    "EvaluationError": "workbench.analysis.accuracy",
    "top1_accuracy": "workbench.analysis.accuracy",
    "sqnr_db": "workbench.analysis.metrics",
    "Metric": "workbench.analysis.metrics",
    "MetricError": "workbench.analysis.metrics",
    "Target": "workbench.analysis.metrics",
    "get_metric": "workbench.analysis.metrics",
    "default_metric": "workbench.analysis.metrics",
    "resolve_target": "workbench.analysis.metrics",
    "noise_warning": "workbench.analysis.metrics",
    "fusion_summary": "workbench.analysis.fusion",
    "node_to_layer": "workbench.analysis.fusion",
    "compare_engines": "workbench.analysis.compare",
    "compare_totals": "workbench.analysis.compare",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
