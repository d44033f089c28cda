"""Teaching cases with a known answer: the rescale keeps FP32, breaks INT8, and the doctor finds and fixes it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from workbench.doctor.diagnose import diagnose
from workbench.doctor.teaching import (
    TeachingCase,
    TeachingCaseError,
    make_teaching_case,
    max_output_difference,
    teaching_answer,
    teaching_case,
    teaching_case_path,
    teaching_cases,
    teaching_path,
)
from workbench.samples import REPO_ROOT, sample_data_path, sample_path

CNN = sample_path("digits_cnn")
CALIB = sample_data_path("digits_cnn", "calib")
EVAL = sample_data_path("digits_cnn", "eval")
TEACHING = REPO_ROOT / "sample_models" / "teaching"
TARGET = 0.5

# (rescaled conv, channel, factor, consumer, per-channel weights): every conv of digits_cnn once, both
# consumer kinds (depthwise, 1x1, Gemm across GAP+Flatten), several channels and factors, both weight modes.
CASES = [
    ("/features/conv1/Conv", 5, 300.0, "/features/dwconv2/Conv", True),
    ("/features/conv1/Conv", 17, 150.0, "/features/dwconv2/Conv", False),
    ("/features/dwconv2/Conv", 3, 200.0, "/features/pwconv2/Conv", False),
    ("/features/pwconv2/Conv", 10, 120.0, "/features/dwconv3/Conv", True),
    ("/features/dwconv3/Conv", 20, 300.0, "/features/pwconv3/Conv", True),
    ("/features/pwconv3/Conv", 7, 500.0, "/classifier/Gemm", False),
    ("/features/pwconv3/Conv", 40, 1000.0, "/classifier/Gemm", True),
]


@pytest.fixture(scope="module")
def eval_inputs():
    return {"input": np.load(EVAL)["input"]}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return tmp_path_factory.mktemp("doctor_teaching")


def _ids(case):
    conv, channel, factor, _, per_channel = case
    return f"{conv.split('/')[2]}-c{channel}-x{factor:g}-{'pc' if per_channel else 'pt'}"


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_doctor_names_the_two_layers_and_fixes_them(case, tmp_path, ws, eval_inputs):
    conv, channel, factor, consumer, per_channel = case
    model = make_teaching_case(CNN, conv, channel, factor)
    # function-preserving: FP32 logits (O(10)) agree to float32 rounding
    assert max_output_difference(CNN, model, eval_inputs) < 1e-4
    assert teaching_answer(model)["consumer"] == consumer
    path = tmp_path / "case.onnx"
    onnx.save(model, str(path))

    d = diagnose(path, CALIB, EVAL, target_drop=TARGET, per_channel=per_channel, latency=False, workspace=ws)

    assert d.fp32_accuracy == pytest.approx(0.9944, abs=1e-3)  # unchanged by the rescale
    assert d.drop_pp > 3.0, "the rescale must break naive INT8"
    top2 = [c["node"] for c in d.culprits[:2]]
    assert set(top2) == {conv, consumer}
    assert top2[0] == consumer  # the node whose input collapses adds the most error
    roles = {c["node"]: c["role"] for c in d.culprits}
    assert "source of range" in roles[conv]
    assert "adds error" in roles[consumer]
    # the fix recovers the accuracy, keeping out only nodes of the pair
    assert 100 * (d.fp32_accuracy - d.fix["accuracy"]) <= TARGET + 1e-9
    assert consumer in d.fix["config"]["exclude"]
    assert set(d.fix["config"]["exclude"]) <= {conv, consumer}
    # the error first jumps at the consumer's output
    assert d.layerwise.first_jump()["node"] == consumer
    # few full evaluations: FP32, naive, then a short search (not one per node)
    assert d.evaluations <= 6 < 2 + len(d.layerwise.quantized) + 1


@pytest.mark.parametrize("path", sorted(TEACHING.glob("*.onnx")), ids=lambda p: p.stem)
def test_committed_teaching_models(path, ws, eval_inputs):
    model = onnx.load(str(path))
    answer = teaching_answer(model)
    assert answer is not None and {"conv", "consumer", "channel", "factor"} <= set(answer)
    assert max_output_difference(CNN, model, eval_inputs) < 1e-4
    rebuilt = make_teaching_case(CNN, answer["conv"], answer["channel"], answer["factor"])
    assert rebuilt.SerializeToString() == model.SerializeToString(), "rerun make_teaching_cases.py"
    d = diagnose(path, CALIB, EVAL, target_drop=TARGET, latency=False, workspace=ws)
    assert d.int8_accuracy < 0.5
    assert {c["node"] for c in d.culprits[:2]} == {answer["conv"], answer["consumer"]}
    assert d.fix["accuracy"] >= d.fp32_accuracy - TARGET / 100


def test_committed_teaching_cases_by_name(tmp_path):
    names = teaching_cases()
    assert names == sorted(p.stem for p in TEACHING.glob("*.onnx")) and len(names) == 3
    for name in names:
        path = teaching_case_path(name)
        assert path == TEACHING / f"{name}.onnx"
        answer = teaching_answer(onnx.load(str(path)))
        case = teaching_case(name)
        assert isinstance(case, TeachingCase) and (case.name, case.path) == (name, path)
        assert (case.conv, case.consumer, case.channel, case.factor, case.batchnorm, list(case.through)) == (
            answer["conv"], answer["consumer"], answer["channel"], answer["factor"], answer["batchnorm"],
            answer["through"])
        frame = case.frame()
        assert frame.index.tolist() == [name]
        assert list(frame.columns) == ["conv", "consumer", "channel", "factor", "batchnorm", "through"]
        assert frame.iloc[0].to_dict() == {k: answer[k] for k in frame.columns}
        assert teaching_case(path) == case  # a path works as well as a name
    first = teaching_case("digits_cnn_conv1_c5_x300")
    assert (first.conv, first.consumer, first.channel, first.factor) == (
        "/features/conv1/Conv", "/features/dwconv2/Conv", 5, 300.0)
    saved = tmp_path / "mine.onnx"
    onnx.save(make_teaching_case(CNN, "/features/dwconv3/Conv", 20, 300.0), str(saved))
    assert teaching_case(saved).consumer == "/features/pwconv3/Conv" and teaching_case(saved).name == "mine"


@pytest.mark.parametrize("given, message", [
    ("digits_cnn_conv9_c1_x2", "digits_cnn_conv1_c5_x300"),  # names the committed cases
    ("missing/case.onnx", "no such model file"),
    (CNN, "no teaching answer"),  # a model the rescale did not make
])
def test_teaching_case_refuses_unknown_cases(given, message):
    with pytest.raises(TeachingCaseError, match=message):
        teaching_case(given)
    if isinstance(given, str) and "/" not in given:
        with pytest.raises(TeachingCaseError, match="make_teaching_cases.py"):
            teaching_case_path(given)


def test_teaching_readme_names_each_model():
    text = (TEACHING / "README.md").read_text()
    for path in TEACHING.glob("*.onnx"):
        assert path.name in text


def test_rescale_math_bn_and_next_layer():
    model = make_teaching_case(CNN, "/features/dwconv2/Conv", 3, 7.0)
    from onnx import numpy_helper

    before = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(CNN)).graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    np.testing.assert_allclose(after["features.dwconv2.weight"][3], 7 * before["features.dwconv2.weight"][3], rtol=1e-6)
    np.testing.assert_allclose(after["features.dwconv2.weight"][4], before["features.dwconv2.weight"][4])
    np.testing.assert_allclose(after["features.bn2.running_mean"][3], 7 * before["features.bn2.running_mean"][3],
                               rtol=1e-6)
    np.testing.assert_allclose(after["features.bn2.bias"][3], 7 * before["features.bn2.bias"][3], rtol=1e-6)
    np.testing.assert_allclose(after["features.bn2.weight"], before["features.bn2.weight"])  # gamma unchanged
    np.testing.assert_allclose(after["features.pwconv2.weight"][:, 3], before["features.pwconv2.weight"][:, 3] / 7,
                               rtol=1e-6)
    np.testing.assert_allclose(after["features.pwconv2.weight"][:, 4], before["features.pwconv2.weight"][:, 4])


def test_teaching_path_follows_bn_relu_pool_flatten():
    path = teaching_path(CNN, "/features/pwconv3/Conv")
    assert path.batchnorm == "/features/bn5/BatchNormalization"
    assert path.consumer == "/classifier/Gemm"
    assert "/Flatten" in path.through and path.flatten_block == 1
    path = teaching_path(CNN, "/features/pwconv2/Conv")
    assert "/features/pool1/MaxPool" in path.through and path.consumer == "/features/dwconv3/Conv"


@pytest.mark.parametrize("kwargs, message", [
    ({"conv": "/features/nope/Conv", "channel": 0, "factor": 10.0}, "Conv nodes are"),
    ({"conv": "/classifier/Gemm", "channel": 0, "factor": 10.0}, "give a Conv node"),
    ({"conv": "/features/conv1/Conv", "channel": 32, "factor": 10.0}, "out of range"),
    ({"conv": "/features/conv1/Conv", "channel": 0, "factor": -2.0}, "positive"),
    ({"conv": "/features/conv1/Conv", "channel": 0, "factor": float("nan")}, "positive"),
])
def test_teaching_case_refuses_bad_arguments(kwargs, message):
    with pytest.raises(TeachingCaseError, match=message):
        make_teaching_case(CNN, **kwargs)


def test_teaching_case_refuses_path_it_cannot_undo():
    # the transformer has no Conv; a made-up branch: Conv output used twice
    from onnx import TensorProto, helper

    w = onnx.numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
         helper.make_node("Relu", ["y"], ["a"], name="r1"), helper.make_node("Sigmoid", ["y"], ["b"], name="s1")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(TeachingCaseError, match="2 consumers"):
        make_teaching_case(model, "conv", 0, 10.0)
