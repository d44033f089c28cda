"""Accuracy of real variants of the sample models on their real eval split.

Lower-precision variants are made with ``workbench.precision.make_variant`` (the shared
``sample_variant`` fixture: Q/DQ INT8 calibrated with minmax on the calib split; FP16 with
onnxconverter-common), and every figure is checked against an independent computation on the raw
ONNX Runtime outputs.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from workbench.analysis.accuracy import (
    EvaluationError,
    cosine_per_sample,
    evaluate,
    sqnr_db,
    topk_hits,
)
from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend
from workbench.datasets.arrays import InputDataError
from workbench.model import load_model
from workbench.samples import sample_data_path, sample_path
from workbench.workflows.evaluate import evaluate_command

CNN = sample_path("digits_cnn")
EVAL = sample_data_path("digits_cnn", "eval")


def ort_logits(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"input": x})[0]


@pytest.fixture(scope="module")
def data():
    with np.load(EVAL) as archive:
        return archive["input"], archive["labels"]


@pytest.fixture(scope="module")
def int8_path(sample_variant):
    """INT8 Q/DQ (minmax, per-channel weights); ORT's CPU provider runs it as it is."""
    variant = sample_variant("digits_cnn", "int8")
    assert variant.ort_path == variant.path
    return variant.path


@pytest.fixture(scope="module")
def fp16_path(sample_variant):
    """What stands for the FP16 variant on ORT CPU: its emulation (FP16 rounding everywhere)."""
    return sample_variant("digits_cnn", "fp16").ort_path


# --------------------------------------------------------------------------------------------
# Task metrics


def test_fp32_top1_matches_an_independent_computation(data):
    x, labels = data
    logits = ort_logits(CNN, x)
    expected = float((logits.argmax(axis=1) == labels).mean())
    expected_top5 = float(np.mean([labels[i] in np.argsort(-logits[i])[:5] for i in range(len(x))]))
    result = evaluate(CNN, EVAL)
    assert result.samples == 360 and result.correct[1] == 358
    assert result.top1 == pytest.approx(expected, abs=1e-12)
    assert result.top1 == pytest.approx(0.9944, abs=1e-4)
    assert result.top5 == pytest.approx(expected_top5, abs=1e-12)
    assert result.classifier_output == "logits" and result.num_classes == 10
    np.testing.assert_array_equal(result.predictions, logits.argmax(axis=1))
    assert result.outputs == {} and result.passed is None
    data_dict = result.to_dict()
    assert data_dict["top1"] == result.top1 and "outputs" not in data_dict


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_batch_size_does_not_change_the_figures(batch_size):
    result = evaluate(CNN, EVAL, CNN, batch_size=batch_size, top_k=(1, 3))
    assert result.correct[1] == 358 and result.samples == 360
    assert result.batch_size == batch_size
    assert result.outputs["logits"].identical


def test_every_form_of_model_and_data_is_accepted(data):
    x, labels = data
    engine = OnnxRuntimeBackend().build(CNN)
    for variant in (str(CNN), CNN, onnx.load(str(CNN)), load_model(CNN), engine):
        result = evaluate(variant, (dict(input=x[:100]), labels[:100]))
        assert result.correct[1] == int((ort_logits(CNN, x[:100]).argmax(1) == labels[:100]).sum())
    assert evaluate(engine, EVAL, limit=50).samples == 50


def test_one_hot_labels_and_no_labels(data):
    x, labels = data
    one_hot = np.eye(10, dtype=np.float32)[labels]
    assert evaluate(CNN, ({"input": x}, one_hot)).correct[1] == 358
    result = evaluate(CNN, ({"input": x}, None))
    assert result.topk == {} and result.top1 is None
    assert any("no 'labels'" in w for w in result.warnings)
    np.testing.assert_array_equal(result.predictions, ort_logits(CNN, x).argmax(1))


def test_fixed_batch_model_is_run_in_its_batch_with_padding(tmp_path, data):
    """A model exported with batch 16: 360 samples = 22 full batches + 8 padded ones."""
    model = onnx.load(str(CNN))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 16
    path = tmp_path / "fixed16.onnx"
    onnx.save(model, str(path))
    result = evaluate(path, EVAL, reference=CNN, batch_size=64)
    assert result.batch_size == 16 and result.samples == 360
    assert result.correct[1] == 358
    assert result.outputs["logits"].max_abs_error < 1e-5


def test_topk_hits_by_hand():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 0])
    np.testing.assert_array_equal(topk_hits(scores, labels, 1), [True, False, False])
    np.testing.assert_array_equal(topk_hits(scores, labels, 2), [True, True, False])


# --------------------------------------------------------------------------------------------
# Agreement with a reference


def test_a_model_against_itself_agrees_exactly():
    result = evaluate(CNN, EVAL, reference=CNN)
    out = result.outputs["logits"]
    assert out.max_abs_error == 0 and out.mean_abs_error == 0
    assert out.max_rel_error == 0 and out.mean_rel_error == 0
    assert out.cosine == 1.0 and out.cosine_mean == 1.0 and out.cosine_min == 1.0
    assert out.sqnr_db == float("inf") and out.identical and out.passed
    assert out.shape == [10] and out.dtype == "float32" and out.nonfinite == 0
    assert result.top1_agreement == 1.0 and result.passed is True
    data = result.to_dict()
    json.dumps(data, allow_nan=False)  # strict JSON: infinite SQNR is null, marked identical
    assert data["outputs"]["logits"]["sqnr_db"] is None
    assert data["outputs"]["logits"]["identical"] is True
    assert data["min_cosine"] == 1.0


def test_int8_variant_agreement_matches_independent_figures(int8_path, data):
    x, labels = data
    ref, var = ort_logits(CNN, x).astype(np.float64), ort_logits(int8_path, x).astype(np.float64)
    result = evaluate(int8_path, EVAL, reference=CNN, batch_size=50)  # 7 full + 1 partial batch
    out = result.outputs["logits"]

    fp32_top1 = (ref.argmax(1) == labels).mean()
    assert result.top1 == pytest.approx((var.argmax(1) == labels).mean(), abs=1e-12)
    assert abs(result.top1 - fp32_top1) <= 0.03
    diff = np.abs(var - ref)
    expected_sqnr = 10 * np.log10(np.sum(ref ** 2) / np.sum((var - ref) ** 2))
    assert np.isfinite(out.sqnr_db) and out.sqnr_db > 10
    assert out.sqnr_db == pytest.approx(expected_sqnr, rel=1e-6)
    assert out.max_abs_error == pytest.approx(diff.max(), rel=1e-5)
    assert out.mean_abs_error == pytest.approx(diff.mean(), rel=1e-5)
    assert out.max_rel_error == pytest.approx((diff / np.abs(ref)).max(), rel=1e-4)
    per_sample = np.sum(var * ref, 1) / np.sqrt(np.sum(var ** 2, 1) * np.sum(ref ** 2, 1))
    assert out.cosine_mean == pytest.approx(per_sample.mean(), rel=1e-9)
    assert out.cosine_min == pytest.approx(per_sample.min(), rel=1e-9)
    assert out.cosine == pytest.approx(np.sum(var * ref) / np.sqrt(np.sum(var ** 2) * np.sum(ref ** 2)),
                                       rel=1e-9)
    assert 0.9 < out.cosine_min < 1.0
    assert not out.passed  # INT8 is not within Polygraphy's default 1e-5 tolerances
    assert result.top1_agreement == pytest.approx((var.argmax(1) == ref.argmax(1)).mean())
    frame = result.outputs_frame()  # the --json figures as a table, one column per output
    assert list(frame.columns) == ["logits"]
    assert frame["logits"].to_dict() == result.to_dict()["outputs"]["logits"]
    assert frame.loc["sqnr_db", "logits"] == pytest.approx(expected_sqnr, rel=1e-6)
    assert evaluate(int8_path, EVAL).outputs_frame().empty  # no reference, nothing to compare
    loose = evaluate(int8_path, EVAL, reference=CNN, atol=10.0, rtol=10.0, check_error_stat="max")
    assert loose.outputs["logits"].passed


def test_fp16_variant_is_close(fp16_path):
    result = evaluate(fp16_path, EVAL, reference=CNN)
    out = result.outputs["logits"]
    assert out.sqnr_db > 40 and np.isfinite(out.sqnr_db)
    assert out.cosine_min > 0.9999
    assert result.top1 == pytest.approx(0.9944, abs=0.006)


def test_metric_helpers_by_hand():
    assert sqnr_db(100.0, 1.0) == pytest.approx(20.0)
    assert sqnr_db(1.0, 0.0) == float("inf") and sqnr_db(0.0, 1.0) == float("-inf")
    cos = cosine_per_sample(np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
                            np.array([[0.0, 2.0], [0.0, 0.0], [2.0, 2.0]]))
    np.testing.assert_allclose(cos, [0.0, 1.0, 1.0])


# --------------------------------------------------------------------------------------------
# Bad input


def test_data_without_the_model_input(tmp_path, data):
    path = tmp_path / "wrong_name.npz"
    np.savez(path, pixels=data[0], labels=data[1])
    with pytest.raises(InputDataError, match=r"input\(s\) \['input'\].*pixels"):
        evaluate(CNN, path)
    with pytest.raises(InputDataError, match="'input'"):
        evaluate(CNN, ({"pixels": data[0]}, data[1]))


def test_data_of_the_wrong_shape_names_input_and_expected_shape(data):
    flat = data[0].reshape(360, 64)
    with pytest.raises(InputDataError) as err:
        evaluate(CNN, ({"input": flat}, data[1]))
    message = str(err.value)
    assert "'input'" in message and "[360, 64]" in message and "[batch, 1, 8, 8]" in message
    assert "reshape(360, 1, 8, 8)" in message


def test_backend_errors_become_messages_naming_the_input(data):
    """An engine that does not declare shapes: ONNX Runtime's own error is translated."""

    class BareEngine:  # only run(), like a user's own wrapper
        def __init__(self):
            self.session = None
            self._session = ort.InferenceSession(str(CNN), providers=["CPUExecutionProvider"])

        def run(self, inputs):
            return {"logits": self._session.run(["logits"], dict(inputs))[0]}

    with pytest.raises(EvaluationError) as err:
        evaluate(BareEngine(), ({"input": data[0][:, :, :4, :]}, None))
    message = str(err.value)
    assert "variant failed on samples 0..63" in message
    assert "'input' [64, 1, 4, 8] float32" in message


def test_reference_with_other_outputs_is_refused(tmp_path):
    model = onnx.load(str(CNN))
    old = model.graph.output[0].name
    model.graph.output[0].name = "scores"
    for node in model.graph.node:
        node.output[:] = ["scores" if o == old else o for o in node.output]
    path = tmp_path / "renamed.onnx"
    onnx.save(model, str(path))
    with pytest.raises(EvaluationError, match=r"\['scores'\] differ from the variant's \['logits'\]"):
        evaluate(CNN, EVAL, reference=path)

    model = onnx.load(str(CNN))
    model.graph.input[0].name = "pixels"
    for node in model.graph.node:
        node.input[:] = ["pixels" if i == "input" else i for i in node.input]
    onnx.save(model, str(path))
    with pytest.raises(EvaluationError, match=r"inputs \['pixels'\] differ from the variant's \['input'\]"):
        evaluate(CNN, EVAL, reference=path)


def test_bad_labels_and_arguments(data):
    x, labels = data
    with pytest.raises(InputDataError, match="359 labels for 360 samples"):
        evaluate(CNN, ({"input": x}, labels[:-1]))
    with pytest.raises(InputDataError, match="labels go up to 12"):
        evaluate(CNN, ({"input": x}, np.full(360, 12)))
    with pytest.raises(InputDataError, match="NaN or Inf"):
        evaluate(CNN, ({"input": np.where(x > 0.5, np.nan, x).astype(np.float32)}, labels))
    with pytest.raises(EvaluationError, match="batch_size"):
        evaluate(CNN, EVAL, batch_size=0)
    with pytest.raises(EvaluationError, match="check_error_stat"):
        evaluate(CNN, EVAL, CNN, check_error_stat="median")
    with pytest.raises(EvaluationError, match="no such variant model file"):
        evaluate("/nonexistent/model.onnx", EVAL)
    with pytest.raises(InputDataError, match="no such data file"):
        evaluate(CNN, "/nonexistent/data.npz")


def test_output_that_is_not_class_scores(tmp_path, data):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["features"])], "relu",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 1, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    result = evaluate(path, EVAL, reference=path)
    assert result.top1 is None and result.classifier_output is None
    assert any("'features' has shape [64, 1, 8, 8], not [N, C]" in w for w in result.warnings)
    assert result.outputs["features"].identical and result.outputs["features"].shape == [1, 8, 8]


# --------------------------------------------------------------------------------------------
# The CLI's function


def test_evaluate_command_json(int8_path, tmp_path, data):
    out = evaluate_command(str(int8_path), str(EVAL), reference=str(CNN), batch_size=32)
    json.dumps(out, allow_nan=False)
    assert 0.95 < out["top1"] <= 1 and out["samples"] == 360 and out["batch_size"] == 32
    logits = out["outputs"]["logits"]
    assert {"max_abs_error", "mean_abs_error", "max_rel_error", "mean_rel_error", "cosine_mean",
            "cosine_min", "cosine", "sqnr_db", "passed"} <= set(logits)
    assert logits["sqnr_db"] > 10
    assert out["versions"]["onnxruntime"] == ort.__version__

    unlabeled = tmp_path / "unlabeled.npz"
    np.savez(unlabeled, input=data[0][:20])
    out = evaluate_command(str(CNN), str(unlabeled))
    assert "top1" not in out and "outputs" not in out and out["samples"] == 20
    with pytest.raises(EvaluationError, match="no such reference file"):
        evaluate_command(str(CNN), str(EVAL), reference=str(tmp_path / "missing.onnx"))


def test_nan_outputs_are_counted_and_fail(data):
    """An engine whose output overflows on some samples (as FP16 can): NaN/Inf are reported."""

    class Overflowing:
        def __init__(self):
            self.inner = OnnxRuntimeBackend().build(CNN)
            self.input_names, self.output_names = ["input"], ["logits"]

        def run(self, inputs):
            logits = self.inner.run(inputs)["logits"].copy()
            logits[:2, 0] = np.inf  # the first two samples of every batch
            return {"logits": logits}

    result = evaluate(Overflowing(), EVAL, reference=CNN, batch_size=100)
    out = result.outputs["logits"]
    assert out.nonfinite == 8 and not out.passed and not out.identical
    assert np.isnan(out.sqnr_db) and np.isnan(out.cosine) and np.isnan(out.cosine_min)
    assert not np.isfinite(out.max_abs_error)
    assert any("NaN/Inf" in w for w in result.warnings)
    data_dict = result.to_dict()
    json.dumps(data_dict, allow_nan=False)
    assert data_dict["outputs"]["logits"]["nonfinite"] == 8 and data_dict["passed"] is False


# --------------------------------------------------------------------------------------------
# The metric and the verdict


def test_fp16_passes_by_its_metric_and_fails_elementwise_tolerances(fp16_path, data, tmp_path):
    """FP16 at 40+ dB: passed by default (top-1 within half a point of the reference, or arg-max agreement
    without labels); not passed only when elementwise tolerances are asked for."""
    result = evaluate(fp16_path, EVAL, reference=CNN)
    assert result.verdict == "metric" and result.passed is True
    assert result.metric.name == "top1" and result.metric.unit == "%"
    assert result.metric.value == pytest.approx(100 * result.top1)
    assert result.metric.reference_value == pytest.approx(100 * 358 / 360)
    assert result.metric.target.minimum == pytest.approx(result.metric.reference_value - 0.5)
    assert result.metric.stderr == pytest.approx(100 * np.sqrt(result.top1 * (1 - result.top1) / 360))
    unlabeled = tmp_path / "unlabeled.npz"
    np.savez(unlabeled, input=data[0])
    plain = evaluate(fp16_path, unlabeled, reference=CNN)
    assert plain.metric.name == "agreement" and plain.metric.value == 100.0 and plain.passed is True
    strict = evaluate(fp16_path, EVAL, reference=CNN, atol=1e-5, rtol=1e-5)
    assert strict.verdict == "tolerance" and strict.passed is False
    assert strict.outputs["logits"].passed is False
    by_sqnr = evaluate(fp16_path, EVAL, reference=CNN, metric="sqnr")
    assert by_sqnr.metric.value == pytest.approx(by_sqnr.outputs["logits"].sqnr_db)
    assert by_sqnr.metric.target.minimum == 30.0 and by_sqnr.passed is True
    assert evaluate(fp16_path, EVAL, reference=CNN, metric="sqnr", target=200.0).passed is False


def test_int8_verdict_by_metric_and_target(int8_path):
    result = evaluate(int8_path, EVAL, reference=CNN)
    drop = result.metric.reference_value - result.metric.value
    assert result.passed is (drop <= 0.5 + 1e-9)
    assert evaluate(int8_path, EVAL, reference=CNN, target_drop=5.0).passed is True
    assert evaluate(int8_path, EVAL, target=99.9).passed is (result.metric.value >= 99.9)  # no reference needed
    no_verdict = evaluate(int8_path, EVAL)  # no reference, no target: nothing to judge by
    assert no_verdict.passed is None and no_verdict.verdict is None and no_verdict.metric.name == "top1"
    assert "passed" not in no_verdict.to_dict()


def _sequence_model(path):
    """features [N, 4, 6] -> Conv1d -> logits [N, 6, 5] (per-position class scores)."""
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(3).normal(size=(5, 4, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["features", "w"], ["h"], name="conv"),
         helper.make_node("Transpose", ["h"], ["logits"], name="ntc", perm=[0, 2, 1])], "seq",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 6, 5])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_sequence_outputs_per_position_labels_and_agreement(tmp_path):
    path = tmp_path / "seq.onnx"
    _sequence_model(path)
    x = np.random.default_rng(4).normal(size=(30, 4, 6)).astype(np.float32)
    scores = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"features": x})[0]
    labels = scores.argmax(-1)
    labels[:10, 0] = (labels[:10, 0] + 1) % 5
    result = evaluate(path, ({"features": x}, labels), reference=path)
    assert result.metric.name == "top1" and result.metric.value == pytest.approx(100 * (1 - 10 / 180))
    assert result.topk == {} and result.passed is True
    engine = _Noisy(path)
    noisy = evaluate(engine, ({"features": x}, None), reference=path, metric="agreement", batch_size=8)
    expected = 100 * np.mean(np.concatenate(engine.returned).argmax(-1) == scores.argmax(-1))  # per position
    assert noisy.metric.value == pytest.approx(expected) and 0 < noisy.metric.value < 100


class _Noisy:
    """An engine adding noise to the model's scores (a lossy variant), remembering what it returned."""

    def __init__(self, path):
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.rng = np.random.default_rng(5)
        self.returned = []

    def run(self, inputs):
        out = self.session.run(None, dict(inputs))[0]
        out = out + self.rng.normal(scale=0.5, size=out.shape).astype(np.float32)
        self.returned.append(out)
        return {"logits": out}



def test_evaluate_with_a_user_metric_and_bad_metric_arguments(int8_path, tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(
        "import numpy as np\n"
        "def margin(outputs, reference, labels):\n"
        "    top2 = np.sort(outputs['logits'], axis=1)[:, -2:]\n"
        "    return top2[:, 1] - top2[:, 0]\n"
        "margin.unit = 'logit'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = evaluate(int8_path, EVAL, reference=CNN, metric="python:my_metrics:margin", target=0.0)
    logits = ort_logits(int8_path, np.load(EVAL)["input"])
    top2 = np.sort(logits, axis=1)[:, -2:]
    assert result.metric.value == pytest.approx(float(np.mean(top2[:, 1] - top2[:, 0])), rel=1e-6)
    assert result.metric.unit == "logit" and result.passed is True
    with pytest.raises(EvaluationError, match="metric sqnr compares the variant's outputs with a reference"):
        evaluate(int8_path, EVAL, metric="sqnr")
    with pytest.raises(EvaluationError, match="atol/rtol compare each output with a reference"):
        evaluate(int8_path, EVAL, atol=0.1)


def test_evaluate_command_metric_json(fp16_path, tmp_path):
    out = evaluate_command(str(fp16_path), str(EVAL), reference=str(CNN), metric="sqnr")
    json.dumps(out, allow_nan=False)
    for key in ("top1", "top5", "outputs", "passed", "min_cosine", "min_sqnr_db", "top1_agreement", "tolerance",
                "warnings", "versions"):  # every key of before, kept
        assert key in out, key
    assert out["metric"] == "sqnr" and out["metric_unit"] == "dB" and out["metric_value"] > 40
    assert out["metric_reference_value"] is None  # infinite SQNR of the reference against itself
    assert out["verdict"] == "metric" and out["passed"] is True
    assert out["target"]["minimum"] == 30.0 and out["target"]["source"] == "default"


def test_evaluate_cli_metric_and_tolerances(fp16_path, capsys):
    from workbench.cli import main

    assert main(["evaluate", str(fp16_path), "--data", str(EVAL), "--reference", str(CNN), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == "top1" and out["passed"] is True and out["verdict"] == "metric"
    assert main(["evaluate", str(fp16_path), "--data", str(EVAL), "--reference", str(CNN), "--atol", "1e-5",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "tolerance" and out["passed"] is False
    assert main(["evaluate", str(fp16_path), "--data", str(EVAL), "--reference", str(CNN), "--metric", "cosine"]) == 0
    printed = capsys.readouterr().out
    assert "cosine: " in printed and "passed (by metric)" in printed


def test_inputs_with_a_sample_axis_and_inputs_fed_as_they_are(tmp_path):
    """A state [2, N, 3] (samples on axis 1) and a scalar gain (fed as it is) beside the samples."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Transpose", ["state"], ["t"], perm=[1, 0, 2], name="nf"),
         helper.make_node("Reshape", ["t", "shape"], ["flat"], name="flat"),
         helper.make_node("Mul", ["flat", "gain"], ["scaled"], name="gain"),
         helper.make_node("Concat", ["x", "scaled"], ["scores"], axis=1, name="cat")], "stateful",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "N", 3]),
         helper.make_tensor_value_info("gain", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])],
        [onnx.numpy_helper.from_array(np.array([0, 6], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "stateful.onnx"
    onnx.save(model, str(path))
    rng = np.random.default_rng(0)
    x, state = rng.normal(size=(20, 4)).astype(np.float32), rng.normal(size=(2, 20, 3)).astype(np.float32)
    data = {"x": x, "state": state, "gain": np.array(3.0, np.float32), "__spec__": np.array(
        json.dumps({"sample_axes": {"state": 1}}))}
    scores = np.concatenate([x, 3.0 * state.transpose(1, 0, 2).reshape(20, 6)], axis=1)
    labels = scores.argmax(1)
    result = evaluate(path, {**data, "labels": labels}, reference=path, batch_size=7)  # 3 batches
    assert result.samples == 20 and result.top1 == 1.0 and result.passed is True
    np.testing.assert_array_equal(result.predictions, labels)
