"""The INT8 doctor: which layers lose accuracy in INT8, why, and the smallest fix.

    >>> from workbench.doctor import diagnose
    >>> d = diagnose("model.onnx", calib="calib.npz", eval="eval.npz", target_drop=0.5)
    >>> d.culprits_frame(), d.recipe

Layers below it: precision (variants), analysis (accuracy), backends, datasets, model."""

from __future__ import annotations

from workbench._lazy import lazy_exports

_EXPORTS = {
    "diagnose": "workbench.doctor.diagnose",
    "Diagnosis": "workbench.doctor.diagnose",
    "results_rows": "workbench.doctor.diagnose",
    "find_culprits": "workbench.doctor.diagnose",
    "rank_candidates": "workbench.doctor.diagnose",
    "DoctorError": "workbench.doctor.fix",
    "layerwise_compare": "workbench.doctor.layerwise",
    "LayerwiseResult": "workbench.doctor.layerwise",
    "activation_statistics": "workbench.doctor.ranges",
    "calibration_outliers": "workbench.doctor.ranges",
    "join_layer_errors": "workbench.doctor.engine_join",
    "max_output_difference": "workbench.doctor.teaching",
    "teaching_answer": "workbench.doctor.teaching",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
