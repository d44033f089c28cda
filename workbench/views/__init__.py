"""Views: plotly figures (pure functions of data) and ipywidgets controllers that wire them.

Figure modules (``*_figures``) never import ipywidgets; widgets are thin controllers."""

from __future__ import annotations

from workbench._lazy import lazy_exports

_EXPORTS = {
    "ModelPicker": "workbench.views.model_picker",
    "netron_view": "workbench.views.netron_view",
    "ChunkedUpload": "workbench.views.upload",
    "fusion_picked": "workbench.views.picked_steps",
    "tradeoff_picked": "workbench.views.picked_steps",
    "EngineExplorer": "workbench.views.engine_explorer",
    "CalibrationPreview": "workbench.views.calibration_view",
    "DoctorExplorer": "workbench.views.doctor_widgets",
    "zoom_for": "workbench.views.doctor_widgets",
    "TradeoffExplorer": "workbench.views.tradeoff",
    "DoctorApp": "workbench.views.apps",  # app mode (workbench app doctor / tradeoffs)
    "TradeoffsApp": "workbench.views.apps",
    "tradeoff_figure": "workbench.views.tradeoff_figures",
    "write_html": "workbench.views.tradeoff_figures",
    "op_histogram_figure": "workbench.views.model_figures",
    "layer_time_bar": "workbench.views.engine_figures",
    "fusion_graph": "workbench.views.engine_figures",
    "compare_figure": "workbench.views.engine_figures",
    "time_by_precision": "workbench.views.engine_figures",
    "time_treemap": "workbench.views.engine_figures",
    "error_curve_figure": "workbench.views.doctor_figures",
    "channel_ranges_figure": "workbench.views.doctor_figures",
    "distribution_figure": "workbench.views.doctor_figures",
    "histogram_figure": "workbench.views.doctor_figures",
    "search_figure": "workbench.views.doctor_figures",
    "sensitivity_figure": "workbench.views.doctor_figures",
    "calibration_size_figure": "workbench.views.doctor_figures",
    "before_after_figure": "workbench.views.doctor_figures",
    "layer_error_figure": "workbench.views.doctor_figures",
    "check": "workbench.views.exercises",
    "exercise_names": "workbench.views.exercises",
    "expected_answer": "workbench.views.exercises",
    "PARETO_GRID": "workbench.views.exercises",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
