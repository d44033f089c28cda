"""Shared fixtures: precision variants of the sample models, made once per test session.

Variants are made the way users make them, with :func:`workbench.precision.make_variant`
(INT8: Q/DQ from ONNX Runtime's quantizer fed by the workbench calibrator, calibrated on the
model's ``calib`` split; FP16: onnxconverter-common with the overflow safeguard), into a
session-wide temporary variants folder, so the tests' own workspaces stay empty.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sample_variant(tmp_path_factory):
    """``make(model_name, precision, **recipe_settings) -> Variant`` for a sample model.

    int8/fp8/fp16 variants are calibrated on ``sample_data_path(model_name, "calib")``. Equal
    arguments return the same variant (made once; later calls come from the cache).
    """
    from workbench.precision import Recipe, make_variant
    from workbench.samples import sample_data_path, sample_path

    folder = tmp_path_factory.mktemp("sample-variants")
    made = {}

    def make(model_name: str, precision: str, **settings):
        key = (model_name, precision, tuple(sorted(settings.items())))
        if key not in made:
            recipe = Recipe(precision, **settings)
            uses_calib = recipe.needs_calibration or recipe.precision == "fp16"
            calib = sample_data_path(model_name, "calib") if uses_calib else None
            made[key] = make_variant(sample_path(model_name), recipe, calib, workspace=folder, progress=False)
        return made[key]

    return make
