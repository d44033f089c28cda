"""Data in: model inputs from ``.npz`` files (the one labelled-data loader) and calibration sets."""

from __future__ import annotations

from workbench._lazy import lazy_exports

_EXPORTS = {
    "load_npz": "workbench.datasets.arrays",
    "load_labelled": "workbench.datasets.arrays",
    "check_labels": "workbench.datasets.arrays",
    "InputDataError": "workbench.datasets.arrays",
    "synthetic_inputs": "workbench.datasets.arrays",
    "load_data": "workbench.datasets.arrays",
    "ModelData": "workbench.datasets.arrays",
    "save_npz": "workbench.datasets.arrays",
    "spec_array": "workbench.datasets.arrays",
    "read_sample_axes": "workbench.datasets.arrays",
    "take_batch": "workbench.datasets.arrays",
    "iter_batches": "workbench.datasets.arrays",
    "num_samples": "workbench.datasets.arrays",
    "check_model_inputs": "workbench.datasets.arrays",
    "load_calibration_set": "workbench.datasets.calibration_sets",
    "CalibrationSet": "workbench.datasets.calibration_sets",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
