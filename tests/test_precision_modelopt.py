"""The optional NVIDIA ModelOpt path: the arguments the workbench gives it (real runs: tests/modelopt/)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.datasets.calibration_sets import from_npz
from workbench.precision import Recipe
from workbench.precision.modelopt_adapter import (
    ModelOptError,
    modelopt_available,
    modelopt_kwargs,
    run_modelopt,
)
from workbench.precision.variants import resolve_tool
from workbench.samples import sample_data_path, sample_path


@pytest.fixture(scope="module")
def calib():
    return from_npz(sample_data_path("digits_cnn", "calib"), ["input"])


def test_refuses_to_run_without_calibration_data(tmp_path):
    with pytest.raises(ModelOptError, match="silently calibrates on random inputs"):
        modelopt_kwargs(sample_path("digits_cnn"), Recipe("int8"), None, tmp_path / "q.onnx")
    with pytest.raises(ModelOptError, match="silently calibrates on random inputs"):
        run_modelopt(sample_path("digits_cnn"), Recipe("int8"), None, tmp_path / "q.onnx")


def test_keeps_the_rest_fp32_unless_the_recipe_asks(calib, tmp_path):
    kwargs = modelopt_kwargs(sample_path("digits_cnn"), Recipe("int8"), calib, tmp_path / "q.onnx")
    assert kwargs["high_precision_dtype"] == "fp32"  # ModelOpt's own default is fp16
    assert kwargs["calibration_method"] == "max" and kwargs["quantize_mode"] == "int8"
    assert np.array_equal(kwargs["calibration_data"]["input"], calib.inputs["input"])
    fp16 = modelopt_kwargs(sample_path("digits_cnn"), Recipe("int8", high_precision="fp16"), calib, tmp_path / "q.onnx")
    assert fp16["high_precision_dtype"] == "fp16"


def test_excluded_nodes_become_anchored_regexes(calib, tmp_path):
    recipe = Recipe("fp8", method="entropy", exclude_nodes=("/features/conv1/Conv",))
    kwargs = modelopt_kwargs(sample_path("digits_cnn"), recipe, calib, tmp_path / "q.onnx")
    assert kwargs["nodes_to_exclude"] == [r"^/features/conv1/Conv$"]
    assert kwargs["quantize_mode"] == "fp8" and kwargs["calibration_method"] == "entropy"
    with pytest.raises(ModelOptError, match="'max' \\(minmax\\) or 'entropy'"):
        modelopt_kwargs(sample_path("digits_cnn"), Recipe("int8", method="percentile"), calib, tmp_path / "q.onnx")


def test_auto_tool_falls_back_to_onnxruntime_without_modelopt():
    if modelopt_available():
        assert resolve_tool(Recipe("int8")) == "modelopt"
    else:
        assert resolve_tool(Recipe("int8")) == "onnxruntime"
    assert resolve_tool(Recipe("int8", method="percentile", tool="auto")) == "onnxruntime"


def _quantize_without_high_precision(onnx_path, quantize_mode="int8", calibration_data=None, calibration_method=None,
                                     op_types_to_quantize=None, op_types_to_exclude=None, nodes_to_exclude=None,
                                     output_path=None, **kwargs):
    """The signature of a ModelOpt ``quantize`` that predates ``high_precision_dtype`` (ends in **kwargs)."""


def test_arguments_modelopt_would_swallow_in_kwargs_are_named(calib, tmp_path):
    import inspect

    from workbench.precision.modelopt_adapter import unaccepted_arguments

    parameters = inspect.signature(_quantize_without_high_precision).parameters
    kwargs = modelopt_kwargs(sample_path("digits_cnn"), Recipe("int8"), calib, tmp_path / "q.onnx")
    assert unaccepted_arguments(kwargs, parameters) == ["high_precision_dtype"]
    keep = modelopt_kwargs(sample_path("digits_cnn"), Recipe("int8", keep_fp32_op_types=("Softmax",)), calib,
                           tmp_path / "q.onnx")
    assert unaccepted_arguments(keep, parameters) == ["high_precision_dtype", "op_types_to_exclude_fp16"]
    assert unaccepted_arguments({"onnx_path": "m.onnx", "output_path": "q.onnx"}, parameters) == []
