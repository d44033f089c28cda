"""The doctor for any task: a sequence model and a regression (super-resolution-like) model, fixed by a
reference metric without labels; per-position labels; the noise warning; progress on stderr with --json;
a fix that keeps as much of the model in INT8 as the target allows; inputs fed as they are.

The models are made here (random weights, so nothing is trained) and turned into teaching cases with
:func:`workbench.doctor.make_teaching_case`: one output channel of the first convolution multiplied by
300 and divided back in the convolution that reads it. The function is the same; the INT8 variant
starves that convolution's per-tensor input scale, so the known answer is: it adds the error (the fix
keeps it out of INT8) and the first convolution is the source of the range.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.analysis.metrics import binomial_stderr, samples_to_resolve
from workbench.doctor.diagnose import diagnose
from workbench.doctor.fix import search_exclusions
from workbench.doctor.teaching import make_teaching_case
from workbench.workflows.doctor import doctor_command

STEPS, CLASSES = 16, 12


def _conv(name, x, out, weight, bias, pads, nodes, inits):
    nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [out], name=name, pads=pads))
    inits += [numpy_helper.from_array(weight.astype(np.float32), f"{name}.w"),
              numpy_helper.from_array(bias.astype(np.float32), f"{name}.b")]


def _model(nodes, inits, inputs, outputs) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "task", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def sequence_model(seed: int = 0) -> onnx.ModelProto:
    """A recognizer-like model: features [N, 8, T] -> three 1-D convolutions -> logits [N, T, C]."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    for name, cin, cout, k, x, out in (("c1", 8, 32, 3, "features", "h1"), ("c2", 32, 32, 3, "r1", "h2"),
                                       ("c3", 32, CLASSES, 1, "r2", "h3")):
        _conv(name, x, out, rng.normal(0, math.sqrt(2 / (cin * k)), (cout, cin, k)), rng.normal(0, 0.1, cout),
              [k // 2, k // 2], nodes, inits)
        if name != "c3":
            nodes.append(helper.make_node("Relu", [out], ["r" + out[1]], name=f"relu{out[1]}"))
    nodes.append(helper.make_node("Transpose", ["h3"], ["logits"], name="to_ntc", perm=[0, 2, 1]))
    return _model(nodes, inits, [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 8, STEPS])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", STEPS, CLASSES])])


def regression_model(seed: int = 0, gain_input: bool = False) -> onnx.ModelProto:
    """A super-resolution-like model: image [N, 1, 12, 12] -> three 3x3 convolutions -> DepthToSpace(2)
    -> [N, 1, 24, 24]; with ``gain_input``, a scalar ``gain`` multiplies the output (fed as it is)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    for name, cin, cout, x, out in (("conv1", 1, 16, "image", "h1"), ("conv2", 16, 16, "r1", "h2"),
                                    ("conv3", 16, 4, "r2", "h3")):
        _conv(name, x, out, rng.normal(0, math.sqrt(2 / (cin * 9)), (cout, cin, 3, 3)), rng.normal(0, 0.05, cout),
              [1, 1, 1, 1], nodes, inits)
        if name != "conv3":
            nodes.append(helper.make_node("Relu", [out], ["r" + out[1]], name=f"relu{out[1]}"))
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 12, 12])]
    last = "upscaled"
    if gain_input:
        inputs.append(helper.make_tensor_value_info("gain", TensorProto.FLOAT, []))
        last = "shuffled"
    nodes.append(helper.make_node("DepthToSpace", ["h3"], [last], name="shuffle", blocksize=2))
    if gain_input:
        nodes.append(helper.make_node("Mul", ["shuffled", "gain"], ["upscaled"], name="apply_gain"))
    return _model(nodes, inits, inputs, [helper.make_tensor_value_info("upscaled", TensorProto.FLOAT,
                                                                       ["N", 1, 24, 24])])


def blocky_images(count: int, seed: int) -> np.ndarray:
    """Low-resolution-like content: 4x4 random levels, each repeated over 3x3 pixels."""
    x = np.random.default_rng(seed).random((count, 1, 4, 4))
    return np.repeat(np.repeat(x, 3, axis=2), 3, axis=3).astype(np.float32)


def ort_run(path, feed):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return tmp_path_factory.mktemp("doctor_tasks_ws")


@pytest.fixture(scope="module")
def sequence_case(tmp_path_factory):
    """The sequence case, its calibration and evaluation files (no labels) and labelled ones ([N, T])."""
    folder = tmp_path_factory.mktemp("sequence")
    path = folder / "sequence_c1_c5_x300.onnx"
    onnx.save(make_teaching_case(sequence_model(), "c1", 5, 300.0), str(path))
    rng = np.random.default_rng(1)
    calib, evaluation = (rng.normal(size=(n, 8, STEPS)).astype(np.float32) for n in (128, 300))
    np.savez(folder / "calib.npz", features=calib)
    np.savez(folder / "eval.npz", features=evaluation)
    labels = ort_run(path, {"features": evaluation}).argmax(-1)  # what the FP32 model reads ...
    flip = rng.random(labels.shape) < 0.05
    labels[flip] = (labels[flip] + 1) % CLASSES  # ... with 5 % of the positions labelled otherwise
    labels[::4, -3:] = -1  # and padded positions, which are not counted
    np.savez(folder / "labelled.npz", features=evaluation, labels=labels)
    return {"model": path, "calib": folder / "calib.npz", "eval": folder / "eval.npz",
            "labelled": folder / "labelled.npz", "labels": labels, "inputs": evaluation}


@pytest.fixture(scope="module")
def regression_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regression")
    path = folder / "upscaler_conv1_c3_x300.onnx"
    onnx.save(make_teaching_case(regression_model(), "conv1", 3, 300.0), str(path))
    np.savez(folder / "calib.npz", image=blocky_images(96, 1))
    np.savez(folder / "eval.npz", image=blocky_images(200, 2))
    return {"model": path, "calib": folder / "calib.npz", "eval": folder / "eval.npz"}


# --------------------------------------------------------------------------------------------
# A sequence model, by agreement with FP32 (no labels)


def test_sequence_model_fixed_by_agreement_without_labels(sequence_case, ws):
    report = doctor_command(sequence_case["model"], sequence_case["calib"], sequence_case["eval"], target_drop=2.5,
                            latency=False, workspace=ws)
    json.dumps(report, allow_nan=False)
    assert report["metric"] == "agreement" and report["metric_unit"] == "%"  # the default without labels
    assert report["fp32_value"] == 100.0 and report["int8_value"] < 50  # per position, collapsed
    assert report["fp32_accuracy"] is None and report["fixed_accuracy"] is None  # top-1 keys: not this metric
    assert report["recipe"]["exclude"] == ["c2"]  # the consumer of the rescaled channel, alone
    assert report["culprits"][0]["node"] == "c2" and report["culprits"][0]["role"] == "adds error"
    assert next(c for c in report["culprits"] if c["node"] == "c1")["role"] == "source of range"
    assert report["fixed_value"] >= 97.5 and report["target_met"] and report["target_value"] == 97.5
    # the fix's value is the agreement of its variant's arg-max with FP32's, position by position
    fixed = ort_run(report["variants"]["fixed"], {"features": sequence_case["inputs"]}).argmax(-1)
    fp32 = ort_run(sequence_case["model"], {"features": sequence_case["inputs"]}).argmax(-1)
    assert report["fixed_value"] == pytest.approx(100 * np.mean(fixed == fp32))
    cost = report["culprits"][0]["evidence"]["confirmed_cost_pp"]
    assert cost == pytest.approx(report["fixed_value"] - report["int8_value"])
    assert report["evaluations"] == len(report["evaluation_log"]) == 2  # naive + the fix; FP32 agrees with itself


def test_sequence_labels_per_position_score_top1(sequence_case, ws):
    """[N, T] labels with an [N, T, C] output: top-1 per position (it crashed with a float() of None)."""
    report = doctor_command(sequence_case["model"], sequence_case["calib"], sequence_case["labelled"],
                            target_drop=3.0, latency=False, workspace=ws)
    labels = sequence_case["labels"]
    counted = labels >= 0
    fp32 = ort_run(sequence_case["model"], {"features": sequence_case["inputs"]}).argmax(-1)
    assert report["metric"] == "top1"
    assert report["fp32_value"] == pytest.approx(100 * np.sum((fp32 == labels) & counted) / counted.sum())
    assert report["fp32_accuracy"] == pytest.approx(report["fp32_value"] / 100)
    assert "c2" in report["recipe"]["exclude"] and report["target_met"]


# --------------------------------------------------------------------------------------------
# A regression model, by PSNR and by SQNR (no labels)


def test_regression_model_fixed_by_psnr(regression_case, ws):
    d = diagnose(regression_case["model"], regression_case["calib"], regression_case["eval"], metric="psnr",
                 target=35.0, latency=False, workspace=ws)
    assert d.metric_name == "psnr" and d.metric_unit == "dB"
    assert math.isinf(d.fp32_value) and d.int8_value < 30  # the naive variant is far off
    assert d.fix["config"]["exclude"] == ["conv2"] and d.fixed_value >= 35.0 and d.target_met
    assert [c["node"] for c in d.culprits[:2]] == ["conv2", "conv1"]
    images = np.load(regression_case["eval"])["image"]
    ref = ort_run(regression_case["model"], {"image": images}).astype(np.float64)
    out = ort_run(d.fix["path"], {"image": images}).astype(np.float64)
    psnr = 10 * np.log10((ref.max() - ref.min()) ** 2 / np.mean((out - ref) ** 2))
    assert d.fixed_value == pytest.approx(psnr, abs=1e-6)
    report = d.to_dict()
    assert report["fp32_value"] is None  # infinite: strict JSON has no inf
    assert report["target"] == {"metric": "psnr", "unit": "dB", "minimum": 35.0, "reference_value": None,
                                "drop": None, "source": "target"}
    assert "psnr" in report["summary"][0] and "dB" in report["summary"][-1]


def test_regression_model_fixed_by_sqnr_default_target(regression_case, ws):
    d = diagnose(regression_case["model"], regression_case["calib"], regression_case["eval"], metric="sqnr",
                 latency=False, workspace=ws)
    assert d.target.minimum == 30.0 and d.target.source == "default"
    assert d.int8_value < 30 <= d.fixed_value and "conv2" in d.fix["config"]["exclude"]
    assert d.culprits[0]["node"] == "conv2"


def test_inputs_fed_as_they_are(tmp_path, ws):
    """A scalar input (a gain) beside the image: described as fed as it is, it goes with every batch."""
    path = tmp_path / "upscaler_gain.onnx"
    onnx.save(make_teaching_case(regression_model(gain_input=True), "conv1", 3, 300.0), str(path))
    gain = np.array(2.0, np.float32)  # a 0-d array: fed as it is by default
    d = diagnose(path, {"image": blocky_images(64, 1), "gain": gain}, {"image": blocky_images(80, 2), "gain": gain},
                 metric="psnr", target=35.0, latency=True, latency_iterations=3, workspace=ws)
    assert d.eval_samples == 80 and d.fix["config"]["exclude"] == ["conv2"] and d.target_met
    assert d.latency["fp32"]["batch"] == 32


# --------------------------------------------------------------------------------------------
# Noise, progress, and a fix that keeps as much INT8 as it can


def test_noise_warning_names_the_samples_that_would_resolve_the_target(sequence_case, ws):
    report = doctor_command(sequence_case["model"], sequence_case["calib"], sequence_case["labelled"],
                            target_drop=0.5, latency=False, workspace=ws)
    warning = next(w for w in report["warnings"] if w["kind"] == "target-below-noise")
    minimum = report["fp32_value"] - 0.5
    assert warning["stderr"] == pytest.approx(binomial_stderr(minimum, 300))  # 300 samples, not 4,500 positions
    assert warning["stderr"] > 0.5 and warning["samples_needed"] == samples_to_resolve(minimum, 0.5)
    assert f"{warning['samples_needed']} samples" in warning["message"]
    assert any(line.startswith("warning: the target allows") for line in report["summary"])
    quiet = doctor_command(sequence_case["model"], sequence_case["calib"], sequence_case["labelled"],
                           target_drop=5.0, latency=False, workspace=ws)
    assert not [w for w in quiet["warnings"] if w["kind"] == "target-below-noise"]


def test_cli_logs_progress_on_stderr_with_json(sequence_case, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "doctor", str(sequence_case["model"]), "--calib",
         str(sequence_case["calib"]), "--eval", str(sequence_case["eval"]), "--metric", "agreement",
         "--target-drop", "2.5", "--no-latency", "--json"],
        capture_output=True, text=True, timeout=600, env={**_env(), "WORKBENCH_WORKSPACE": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)  # stdout holds the JSON only
    assert report["metric"] == "agreement" and report["recipe"]["exclude"] == ["c2"]
    for line in ("doctor: layerwise comparison: started", "doctor: layerwise comparison: done",
                 "doctor: evaluation 1 (naive int8)", "doctor: evaluation 2 (search, 1 node(s) kept out of INT8)",
                 "doctor: done"):
        assert line in done.stderr, line
    assert "Traceback" not in done.stderr


def _env():
    import os

    return dict(os.environ)


def test_long_prefix_is_pruned_in_groups():
    """Culprits ranked 4th and 31st of 40: the passing prefix holds 31 nodes; pruning in groups puts 29 of them
    back into INT8 with fewer evaluations than one at a time."""
    ranked = [f"n{i}" for i in range(40)]
    culprits = {"n3", "n30"}
    calls = []

    def score(exclude):
        calls.append(list(exclude))
        return 99.0 - 20.0 * len(culprits - set(exclude))

    result = search_exclusions(ranked, score, lambda value: value >= 98.5)
    assert sorted(result.exclude) == ["n3", "n30"] and result.value == 99.0
    pruning = [s for s in result.steps if s["phase"] == "prune"]
    assert len(pruning) < 31 - 2  # fewer than trying each of the 31 alone
    assert result.evaluations == len(calls) <= 6 + 4 + 24


def test_tensors_read_for_their_shape_or_as_integers(tmp_path, ws):
    """A quantized activation also read by Shape (its shape only) and ArgMax (integer output): the layerwise
    pass measures the float outputs and leaves those alone."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    _conv("conv1", "image", "h1", rng.normal(0, 0.5, (8, 1, 3, 3)), np.zeros(8), [1, 1, 1, 1], nodes, inits)
    nodes.append(helper.make_node("Relu", ["h1"], ["r1"], name="relu1"))
    _conv("conv2", "r1", "out", rng.normal(0, 0.3, (4, 8, 3, 3)), np.zeros(4), [1, 1, 1, 1], nodes, inits)
    nodes += [helper.make_node("Shape", ["r1"], ["r1_shape"], name="shape"),
              helper.make_node("ArgMax", ["r1"], ["r1_argmax"], name="argmax", axis=1)]
    model = _model(nodes, inits, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 12, 12])],
                   [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4, 12, 12]),
                    helper.make_tensor_value_info("r1_shape", TensorProto.INT64, [4]),
                    helper.make_tensor_value_info("r1_argmax", TensorProto.INT64, ["N", 1, 12, 12])])
    path = tmp_path / "shapes.onnx"
    onnx.save(model, str(path))
    d = diagnose(path, {"image": blocky_images(32, 1)}, {"image": blocky_images(40, 2)}, metric="sqnr", target=0.0,
                 latency=False, workspace=ws)
    assert "shape" not in d.layerwise.quantized and "conv2" in d.layerwise.quantized
    measured = set(d.layerwise.tensors["tensor"])
    assert {"out", "r1"} <= measured and not {"r1_shape", "r1_argmax"} & measured
    assert d.target_met and not d.fix["needed"]
