"""Precision variants for TensorRT: FP16, BF16, INT8 and FP8 with the precision in the ONNX graph.

TensorRT 11 has no weak typing (no FP16/INT8 builder flags, no INT8 calibrators): what runs in
which precision is written in the model, as converted weights and Cast nodes (FP16/BF16) or as
explicit QuantizeLinear/DequantizeLinear pairs (INT8/FP8). This package makes those variants,
calibrates fast (the same ranges as ONNX Runtime's calibrators, computed inside the graph) and
keeps a record of each.

    >>> from workbench.precision import Recipe, make_variant
    >>> v = make_variant("model.onnx", Recipe("int8", method="entropy"), calib="calib.npz")
    >>> v.path, v.cached, v.record["tool"]

Public names are imported lazily (onnxruntime's quantization tooling loads on first use).
"""

from __future__ import annotations

from workbench._lazy import lazy_exports

_EXPORTS = {
    "Recipe": "workbench.precision.recipe",
    "RecipeError": "workbench.precision.recipe",
    "PRECISIONS": "workbench.precision.recipe",
    "TENSORRT_OP_TYPES": "workbench.precision.recipe",
    "Variant": "workbench.precision.variants",
    "VariantError": "workbench.precision.variants",
    "InvalidVariantError": "workbench.precision.validate",
    "validate_model": "workbench.precision.validate",
    "make_variant": "workbench.precision.variants",
    "load_variant": "workbench.precision.variants",
    "list_variants": "workbench.precision.variants",
    "variants_frame": "workbench.precision.variants",
    "CalibrationOptions": "workbench.precision.calib_options",
    "CalibrationResult": "workbench.precision.calib_options",
    "CalibrationError": "workbench.precision.calib_options",
    "calibrate": "workbench.precision.calibrator",
    "ort_calibrate": "workbench.precision.calib_reference",
    "compare_ranges": "workbench.precision.calib_reference",
    "prepare_for_calibration": "workbench.precision.calib_reference",
    "evaluate_variant": "workbench.precision.evaluate",
    "top1_accuracy": "workbench.precision.evaluate",
    "quantize_command": "workbench.precision.command",
    "OutputExistsError": "workbench.precision.command",
    "modelopt_available": "workbench.precision.modelopt_adapter",
    "measure_variants": "workbench.precision.sweep",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
