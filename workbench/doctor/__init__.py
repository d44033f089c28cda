"""The INT8 doctor: which layers lose accuracy in INT8, why, and the smallest fix.

    >>> from workbench.doctor import diagnose, teaching_case
    >>> d = diagnose("model.onnx", calib="calib.npz", eval="eval.npz", target_drop=0.5)
    >>> d.summary_frame(), d.culprits_frame(), d.flags_frame(), d.evaluations_frame()
    >>> case = teaching_case("digits_cnn_conv1_c5_x300")  # a committed model with a known answer

Layers below it: precision (variants), analysis (accuracy), backends, datasets, model."""

from __future__ import annotations

from workbench._lazy import lazy_exports

_EXPORTS = {
    "diagnose": "workbench.doctor.diagnose",
    "Diagnosis": "workbench.doctor.report",
    "results_rows": "workbench.doctor.report",
    "find_culprits": "workbench.doctor.culprits",
    "rank_candidates": "workbench.doctor.culprits",
    "DoctorError": "workbench.doctor.fix",
    "layerwise_compare": "workbench.doctor.layerwise",
    "LayerwiseResult": "workbench.doctor.layerwise",
    "activation_statistics": "workbench.doctor.ranges",
    "calibration_outliers": "workbench.doctor.ranges",
    "join_layer_errors": "workbench.doctor.engine_join",
    "max_output_difference": "workbench.doctor.teaching",
    "teaching_answer": "workbench.doctor.teaching",
    "make_teaching_case": "workbench.doctor.teaching",
    "teaching_cases": "workbench.doctor.teaching",
    "teaching_case": "workbench.doctor.teaching",
    "teaching_case_path": "workbench.doctor.teaching",
    "TeachingCase": "workbench.doctor.teaching",
    "TeachingCaseError": "workbench.doctor.teaching",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
