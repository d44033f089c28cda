"""The exercise checker: expected answers come from the models and data, right and wrong both said."""

from __future__ import annotations

import numpy as np
import pytest

import workbench
from workbench.views import check, exercise_names, expected_answer


def test_every_exercise_has_a_computable_answer_except_own_model_ones():
    for name in exercise_names():
        if name.startswith("pytorch-"):
            continue
        assert expected_answer(name) is not None, name


def test_a_right_and_a_wrong_answer():
    params = workbench.load_model(workbench.sample_path("digits_cnn")).summary.parameters
    right = check("tour-parameters", params)
    wrong = check("tour-parameters", params + 1)
    assert right and not wrong
    assert 'data-correct="true"' in right._repr_html_() and 'data-correct="false"' in wrong._repr_html_()
    assert "Hint" in str(wrong)


def test_unanswered_says_what_to_do():
    verdict = check("precision-fp16-mantissa", ...)
    assert not verdict and "replace ..." in verdict.message


def test_expected_answers_follow_the_data():
    assert check("precision-fp16-mantissa", 10)
    calib = np.load(workbench.sample_data_path("digits_cnn", "calib"))["input"]
    assert check("precision-int8-scale", float(np.abs(calib).max()) / 127)
    assert not check("precision-int8-scale", float(np.abs(calib).max()) / 255)
    assert check("explore-batch-dim", "batch") and not check("explore-batch-dim", "N")
    assert check("explore-top-op", "Add")  # 16 Add nodes against 13 MatMul in the sample
    assert check("doctor-culprit", "/features/dwconv2/Conv") and not check("doctor-culprit", "/features/conv1/Conv")
    assert check("pareto-front", ["int8-c", "fp16", "int8-a"])  # fp32 is dominated by fp16, int8-b by int8-a
    assert not check("pareto-front", ["fp32", "fp16"])


def test_an_unknown_exercise_is_refused():
    with pytest.raises(KeyError, match="no exercise 'nope'"):
        check("nope", 1)


def test_own_model_exercises_read_the_model():
    path = workbench.sample_path("digits_transformer")
    opset = workbench.load_model(path).summary.opset
    assert check("pytorch-opset", opset, model=path) and not check("pytorch-opset", opset - 1, model=path)
