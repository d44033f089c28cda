"""The `workbench profile` and `workbench bench` JSON contracts, on real models and fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.backends import tensorrt_status
from workbench.samples import sample_data_path, sample_path

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "trt"


# Why TensorRT cannot run here (None on a machine where it can): tests of the tensorrt backend
# branch on it, so they check the refusal on CPU machines and the real command on GPU ones.
TRT_PROBLEM = tensorrt_status()


def _cli(*args, env=None):
    result = subprocess.run(
        [sys.executable, "-m", "workbench.cli", *map(str, args)], capture_output=True, text=True, timeout=900,
        env=None if env is None else {**os.environ, **env},
    )
    return result


def _json(*args):
    result = _cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_profile_onnxruntime_records():
    data = _json("profile", sample_path("digits_cnn"), "--data", sample_data_path("digits_cnn"), "--batch", 4,
                 "--iterations", 5)
    layers = data["layers"]
    assert layers and all({"name", "type", "onnx_nodes", "time_ms", "share"} <= set(r) for r in layers)
    assert sum(r["share"] for r in layers) == pytest.approx(100.0, abs=0.01)
    claimed = [n for r in layers for n in r["onnx_nodes"]]
    assert "/features/conv1/Conv" in claimed and "/classifier/Gemm" in claimed
    assert data["totals"]["layers"] == len(layers)
    assert data["totals"]["total_layer_time_ms"] == pytest.approx(sum(r["time_ms"] for r in layers))


def test_profile_trt_fixture_records():
    folder = FIXTURES / "resnet18-a100-qat"
    data = _json("profile", "--trt-layers", folder / "engine.graph.json",
                 "--trt-profile", folder / "engine.profile.json")
    raw_layers = json.loads((folder / "engine.graph.json").read_text())["Layers"]
    assert len(data["layers"]) == len(raw_layers) == 37
    by_name = {r["name"]: r for r in data["layers"]}
    fused = by_name["layer1.0.conv2.weight + QuantizeLinear_32 + Conv_34 + Add_36 + Relu_37"]
    assert fused["onnx_nodes"] == ["QuantizeLinear_32", "Conv_34", "Add_36", "Relu_37"]
    assert fused["precision"] == "INT8"
    assert sum(r["share"] for r in data["layers"]) == pytest.approx(100.0, abs=0.01)


def test_profile_layers_only_has_no_times():
    folder = FIXTURES / "resnet18-a100-fp16"
    data = _json("profile", "--trt-layers", folder / "engine.graph.json")
    assert all("time_ms" not in r for r in data["layers"])
    assert "total_layer_time_ms" not in data["totals"]


@pytest.mark.parametrize("case", ["layers not JSON", "profile given as layers", "layers missing", "profile not JSON"])
def test_profile_with_a_bad_trt_file_exits_2_in_one_line(tmp_path, case):
    # TrtJsonError is a WorkbenchError: the CLI answers bad TensorRT JSON with exit 2, one line
    # naming the file and the trtexec command that makes a good one, and {"error"} with --json.
    folder = FIXTURES / "resnet18-a100-fp32"
    not_json = tmp_path / "layers.json"
    not_json.write_text("[TensorRT] this is a log, not JSON\n")
    layers, profile = {
        "layers not JSON": (not_json, None),
        "profile given as layers": (folder / "engine.profile.json", None),
        "layers missing": (tmp_path / "missing.json", None),
        "profile not JSON": (folder / "engine.graph.json", not_json),
    }[case]
    args = ["profile", "--trt-layers", layers] + (["--trt-profile", profile] if profile else [])
    for result in (_cli(*args), _cli(*args, "--json")):
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        message = result.stderr.strip()
        assert "\n" not in message and message.startswith("workbench profile: error: ")
        bad = profile or layers
        assert str(bad) in message and "Produce it with: trtexec" in message
    assert json.loads(result.stdout) == {"error": message.removeprefix("workbench profile: error: ")}
    assert not_json.read_text() == "[TensorRT] this is a log, not JSON\n"  # never rewritten


def test_bench_onnxruntime_contract():
    data = _json("bench", sample_path("digits_transformer"), "--batch", 8, "--iterations", 30, "--warmup", 5)
    for key in ("mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms", "throughput",
                "batch_size", "settings", "iterations"):
        assert key in data
    assert data["batch_size"] == 8 and data["iterations"] == 30
    assert data["min_ms"] <= data["median_ms"] <= data["p90_ms"] <= data["p95_ms"] <= data["p99_ms"] <= data["max_ms"]
    assert data["throughput"] == pytest.approx(1000 * 8 / data["mean_ms"])
    assert data["settings"]["graph_optimization_level"] == "all"


def _assert_refused_with_the_fix(result):
    """Exit 2 and one line on stderr: the reason TensorRT cannot run here and the fix."""
    assert result.returncode == 2, result.stderr
    assert TRT_PROBLEM in result.stderr and "gpu" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_bench_tensorrt_runs_or_says_why_and_the_fix(tmp_path):
    env = {"WORKBENCH_WORKSPACE": str(tmp_path)}
    if TRT_PROBLEM is not None:
        _assert_refused_with_the_fix(_cli("bench", sample_path("digits_cnn"), "--backend", "tensorrt", env=env))
    else:  # TensorRT and a GPU here: build an engine and benchmark it
        built = _cli("build", sample_path("digits_cnn"), "--json", env=env)
        assert built.returncode == 0, built.stderr
        engine = json.loads(built.stdout)["engine"]
        result = _cli("bench", engine, "--backend", "tensorrt", "--iterations", 20, "--json", env=env)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert 0 < data["min_ms"] <= data["median_ms"] <= data["max_ms"] and data["throughput"] > 0


def test_profile_without_model_or_trt_files_is_refused():
    result = _cli("profile")
    assert result.returncode == 2 and "--trt-layers" in result.stderr


def test_bench_refuses_nan_data(tmp_path):
    data = np.load(sample_data_path("digits_cnn"))
    x = data["input"][:4].copy()
    x[2, 0, 3, 3] = np.nan
    bad = tmp_path / "bad.npz"
    np.savez(bad, input=x)
    result = _cli("bench", sample_path("digits_cnn"), "--data", bad)
    assert result.returncode == 2
    assert "'input'" in result.stderr and "sample(s) [2]" in result.stderr


@pytest.mark.parametrize("sub", ["profile", "bench"])
def test_help(sub):
    result = _cli(sub, "--help")
    assert result.returncode == 0 and "--json" in result.stdout


def test_evaluate_contract():
    data = _json("evaluate", sample_path("digits_cnn"), "--data", sample_data_path("digits_cnn"),
                 "--reference", sample_path("digits_cnn"))
    labels = np.load(sample_data_path("digits_cnn"))["labels"]
    assert data["top1"] == pytest.approx(358 / len(labels))
    assert data["outputs"]["logits"]["max_abs_error"] == 0.0
    assert data["outputs"]["logits"]["cosine"] == pytest.approx(1.0)


def test_evaluate_without_labels_or_reference_has_neither_key(tmp_path):
    x = np.load(sample_data_path("digits_cnn"))["input"][:16]
    path = tmp_path / "nolabels.npz"
    np.savez(path, input=x)
    data = _json("evaluate", sample_path("digits_cnn"), "--data", path)
    assert "top1" not in data and not data.get("outputs")


def test_build_plan_only_gives_the_trtexec_command():
    data = _json("build", sample_path("digits_cnn"), "--plan-only", "--batch", 16)
    assert data["built"] is False
    assert data["plan"]["profile"]["input"]["opt"] == [16, 1, 8, 8]
    command = " ".join(data["plan"]["trtexec_command"])
    assert "--stronglyTyped" in command and "--optShapes=input:16x1x8x8" in command


def test_build_tensorrt_builds_or_says_why_and_the_fix(tmp_path):
    result = _cli("build", sample_path("digits_cnn"), "--json", env={"WORKBENCH_WORKSPACE": str(tmp_path)})
    if TRT_PROBLEM is not None:
        _assert_refused_with_the_fix(result)
        assert TRT_PROBLEM in json.loads(result.stdout)["error"]
    else:  # TensorRT and a GPU here: a real engine, in the workspace
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["built"] is True and Path(data["engine"]).is_file() and tmp_path in Path(data["engine"]).parents
