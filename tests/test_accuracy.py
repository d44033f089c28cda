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
