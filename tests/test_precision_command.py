"""quantize_command: what `workbench quantize` runs; JSON out, never overwriting a user's file."""

from __future__ import annotations

import json

import onnx
import pytest

from workbench.samples import sample_data_path, sample_path
from workbench.workflows.quantize import OutputExistsError, quantize_command


def test_quantize_command_writes_output_and_record(tmp_path):
    out = tmp_path / "out" / "cnn.int8.onnx"
    result = quantize_command(sample_path("digits_cnn"), "int8", sample_data_path("digits_cnn", "calib"),
                              method="percentile", exclude=["/classifier/Gemm"], output=out,
                              workspace=tmp_path / "ws")
    json.dumps(result)  # a JSON-able dict
    assert result["output"] == str(out) and out.is_file()
    assert result["tool"] == "onnxruntime.quantization" and result["tool_version"]
    assert result["calibration_samples"] == 256 and result["cached"] is False
    assert result["recipe"]["method"] == "percentile" and result["kept_fp32"] == ["/classifier/Gemm"]
    record = json.loads((tmp_path / "out" / "cnn.int8.json").read_text())
    assert record["file"]["path"] == "cnn.int8.onnx" and record["copied_from"] == result["variant"]
    onnx.checker.check_model(str(out))
    again = quantize_command(sample_path("digits_cnn"), "int8", sample_data_path("digits_cnn", "calib"),
                             method="percentile", exclude=["/classifier/Gemm"], workspace=tmp_path / "ws")
    assert again["cached"] is True and again["variant"] == result["variant"] and again["output"] is None


def test_quantize_command_never_overwrites(tmp_path):
    out = tmp_path / "mine.onnx"
    out.write_bytes(b"user data")
    with pytest.raises(OutputExistsError, match="does not overwrite"):
        quantize_command(sample_path("digits_cnn"), "fp16", output=out, workspace=tmp_path / "ws")
    assert out.read_bytes() == b"user data"
    result = quantize_command(sample_path("digits_cnn"), "fp16", output=out, workspace=tmp_path / "ws", overwrite=True)
    assert result["precision"] == "fp16" and out.read_bytes() != b"user data"


def test_quantize_command_bf16_copies_its_emulation(tmp_path):
    out = tmp_path / "cnn.bf16.onnx"
    result = quantize_command(sample_path("digits_cnn"), "bf16", output=out, workspace=tmp_path / "ws")
    assert result["runs_on_ort_cpu"] is False
    assert result["emulation"] == str(tmp_path / "cnn.bf16.ort-emulation.onnx")
    assert (tmp_path / "cnn.bf16.ort-emulation.onnx").is_file()


def _cli(*args, env_workspace):
    import os
    import subprocess
    import sys

    env = {**os.environ, "WORKBENCH_WORKSPACE": str(env_workspace)}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env)


def test_cli_quantize_json_contract(tmp_path):
    out = tmp_path / "cnn.int8.onnx"
    run = _cli("quantize", sample_path("digits_cnn"), "--precision", "int8", "--calib",
               sample_data_path("digits_cnn", "calib"), "--method", "entropy", "--exclude", "/classifier/Gemm",
               "--samples", "64", "-o", out, "--json", env_workspace=tmp_path / "ws")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["output"] == str(out) and out.is_file()
    assert data["precision"] == "int8" and data["recipe"]["method"] == "entropy"
    assert data["calibration_samples"] == 64 and data["kept_fp32"] == ["/classifier/Gemm"]
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # a second run to the same path is refused, and the file is left as it was
    before = out.read_bytes()
    again = _cli("quantize", sample_path("digits_cnn"), "--calib", sample_data_path("digits_cnn", "calib"),
                 "-o", out, "--json", env_workspace=tmp_path / "ws")
    assert again.returncode == 2 and "does not overwrite" in json.loads(again.stdout)["error"]
    assert out.read_bytes() == before


def test_cli_quantize_int8_without_calibration_data_says_what_to_pass(tmp_path):
    run = _cli("quantize", sample_path("digits_cnn"), "--precision", "int8", "--json",
               env_workspace=tmp_path / "ws")
    assert run.returncode == 2
    assert "calib" in json.loads(run.stdout)["error"].lower()
