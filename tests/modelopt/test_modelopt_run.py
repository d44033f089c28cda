"""Real NVIDIA ModelOpt runs, in the venv `make test-modelopt` makes (ModelOpt pins onnx and pulls
onnxruntime-gpu, so it gets its own environment; `make test` runs both)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from workbench.precision import Recipe, make_variant
from workbench.precision.modelopt_adapter import modelopt_available
from workbench.precision.variants import VariantError
from workbench.samples import sample_data_path, sample_path
from workbench.workflows import evaluate_variant


def test_modelopt_is_installed_here():
    assert modelopt_available(), "run these tests with `make test-modelopt` (its venv has nvidia-modelopt)"


@pytest.fixture(scope="module")
def modelopt_int8(tmp_path_factory):
    return make_variant(sample_path("digits_cnn"), Recipe("int8", tool="modelopt"),
                        sample_data_path("digits_cnn", "calib"), workspace=tmp_path_factory.mktemp("ws"),
                        progress=False)


def test_int8_variant_is_qdq_keeps_the_rest_fp32_and_records_the_tool(modelopt_int8):
    model = onnx.load(str(modelopt_int8.path))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert modelopt_int8.record["tool"]["name"] == "modelopt" and modelopt_int8.record["tool"]["version"]
    # ModelOpt's default casts what it does not quantize to FP16; the workbench keeps it FP32
    floats = [i for i in model.graph.initializer if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert floats and all(i.data_type == onnx.TensorProto.FLOAT for i in floats)
    assert not any(n.op_type == "Cast" for n in model.graph.node)


def test_int8_variant_keeps_the_accuracy(modelopt_int8, tmp_path):
    top1 = evaluate_variant(modelopt_int8, sample_data_path("digits_cnn", "eval"))["top1"]
    fp32_variant = make_variant(sample_path("digits_cnn"), "fp32", workspace=tmp_path, progress=False)
    fp32 = evaluate_variant(fp32_variant, sample_data_path("digits_cnn", "eval"))["top1"]
    assert fp32 - 0.01 <= top1 <= fp32 + 0.01


def test_modelopt_is_never_run_on_random_data(tmp_path):
    with pytest.raises(VariantError, match="needs calibration data"):
        make_variant(sample_path("digits_cnn"), Recipe("int8", tool="modelopt"), None, workspace=tmp_path,
                     progress=False)


def _snapshot(folder):
    import hashlib

    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_modelopt_runs_on_a_copy_and_writes_nothing_beside_the_users_model(tmp_path, monkeypatch):
    """ModelOpt writes its input in place and ORT's tools drop <model>-inferred.onnx beside it: both
    run on a copy in a temporary folder, so the user's folder is left as it was."""
    import shutil

    from workbench.workflows.quantize import quantize_command

    user = tmp_path / "user"
    user.mkdir()
    model = shutil.copyfile(sample_path("digits_cnn"), user / "model.onnx")
    calib = shutil.copyfile(sample_data_path("digits_cnn", "calib"), user / "calib.npz")
    before = _snapshot(user)
    result = quantize_command(model, "int8", calib, tool="modelopt", workspace=tmp_path / "ws")
    assert result["tool"] == "modelopt" and result["output"] is None
    assert _snapshot(user) == before
    record = json.loads(Path(result["record"]).read_text())
    assert record["details"]["modelopt"]["ignored_arguments"] == []
    assert record["validation"]["onnx_checker"].startswith("passed")
