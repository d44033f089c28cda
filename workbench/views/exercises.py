"""Exercises for the notebooks: ``check(name, answer)`` says right or wrong.

Each exercise's expected answer is computed from the sample models and data (or from the model the
exercise names), never written down, so the checker stays right when a sample is retrained or the
machine's kernels differ. The notebooks show the question in a "your turn" cell and the solution in
a ``<details>`` block the reader can open.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.backends import get_backend
from workbench.datasets import load_npz
from workbench.doctor import teaching_case
from workbench.errors import WorkbenchError
from workbench.model import load_model
from workbench.samples import sample_data_path, sample_path
from workbench.tables import pareto_front
from workbench.workflows.triton.config import ONNX_TO_TRITON

TEACHING_CASE = "digits_cnn_conv1_c5_x300"

# The small grid of exercise "pareto-front": (variant, median_ms, top1).
PARETO_GRID = pd.DataFrame(
    [("fp32", 0.30, 0.994), ("fp16", 0.18, 0.994), ("int8-a", 0.12, 0.990), ("int8-b", 0.15, 0.986),
     ("int8-c", 0.10, 0.950)],
    columns=["variant", "median_ms", "top1"],
)


class ExerciseError(WorkbenchError, KeyError):
    """No exercise of that name."""


@dataclass(frozen=True)
class Verdict:
    """The checker's answer: right or wrong, with a message; renders as a coloured line."""

    name: str
    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        return f"{'Right' if self.correct else 'Not yet'}: {self.message}"

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.correct else "#b3261e"
        mark = "&#10004; Right" if self.correct else "&#10008; Not yet"
        return (f'<div class="workbench-exercise" data-correct="{str(self.correct).lower()}" '
                f'style="color:{colour};font-weight:600">{mark}: {html.escape(self.message)}</div>')


@dataclass(frozen=True)
class _Exercise:
    question: str
    expected: Callable[[str | None], object]  # the model path (when the exercise takes one) -> answer
    tolerance: float = 0.0  # relative, for numbers
    hint: str = ""


def _parameters(path):
    return load_model(path or sample_path("digits_cnn")).summary.parameters


def _batch_dim(path):
    return str(load_model(path or sample_path("digits_transformer")).summary.inputs[0]["shape"][0])


def _top_op(path):
    histogram = load_model(path or sample_path("digits_transformer")).summary.op_histogram
    return max(histogram, key=histogram.get)


def _wrong_images(path):
    model = load_model(path or sample_path("digits_cnn"))
    inputs, labels = load_npz(sample_data_path(model.name, "eval"), model.input_names)
    logits = next(iter(get_backend("onnxruntime").build(model).run(inputs).values()))
    return int((logits.argmax(axis=1) != labels).sum())


def _inserted_layer(path):
    layers = get_backend("onnxruntime").build(load_model(path or sample_path("digits_cnn"))).layers()
    inserted = sorted(set(layers.loc[layers["inserted"], "type"]))
    return inserted[0] if inserted else "none"


def _int8_scale(path):
    data = np.load(sample_data_path("digits_cnn", "calib"))["input"]
    return float(np.abs(data).max() / 127)


def _drop_in_images(path):
    _, labels = load_npz(sample_data_path("digits_cnn", "eval"), ["input"])
    return 0.005 * len(labels)  # a 0.5-point drop, in images


def _binomial_error(path):
    _, labels = load_npz(sample_data_path("digits_cnn", "eval"), ["input"])
    p = 1 - _wrong_images(path) / len(labels)
    return 100 * math.sqrt(p * (1 - p) / len(labels))


def _triton_type(path):
    proto = load_model(path or sample_path("digits_cnn")).proto
    return ONNX_TO_TRITON[proto.graph.input[0].type.tensor_type.elem_type]


def _triton_dims(path):
    return [int(d) for d in load_model(path or sample_path("digits_cnn")).summary.inputs[0]["shape"][1:]]


def _opset(path):
    return load_model(path).summary.opset


EXERCISES: dict[str, _Exercise] = {
    "tour-parameters": _Exercise("How many parameters does digits_cnn have?", _parameters,
                                 hint="model.summary holds it."),
    "tour-wrong-images": _Exercise("How many of the held-out digits does FP32 digits_cnn get wrong?",
                                   _wrong_images, hint="compare logits.argmax(axis=1) with labels."),
    "explore-batch-dim": _Exercise("What is the name of digits_transformer's symbolic batch dimension?",
                                   _batch_dim, hint="summary.inputs lists each input's shape."),
    "explore-top-op": _Exercise("Which op type occurs most often in digits_transformer?", _top_op,
                                hint="summary.op_histogram counts them."),
    "precision-fp16-mantissa": _Exercise("How many mantissa bits does FP16 store?",
                                         lambda path: int(np.finfo(np.float16).nmant),
                                         hint="np.finfo(np.float16)"),
    "precision-int8-scale": _Exercise(
        "With symmetric INT8 (127 levels each side), what scale does minmax calibration give "
        "digits_cnn's input on its calibration set?", _int8_scale, tolerance=1e-3,
        hint="scale = max|x| / 127 over the calibration samples."),
    "fusion-inserted-layer": _Exercise(
        "Which layer type did ONNX Runtime insert into digits_cnn (a layer that runs no ONNX node)?",
        _inserted_layer, hint="the layer table's `inserted` column."),
    "fusion-layer-count": _Exercise(
        "How many layers does ONNX Runtime (all optimizations) run for digits_cnn?",
        lambda path: len(get_backend("onnxruntime").build(load_model(path or sample_path("digits_cnn"))).layers()),
        hint="len(engine.layers())"),
    "doctor-culprit": _Exercise(
        "Which node adds the error in the teaching case (the consumer of the scaled channel)?",
        lambda path: teaching_case(TEACHING_CASE).consumer, hint="the culprit with role 'adds error'."),
    "doctor-drop-images": _Exercise(
        "A 0.5-point top-1 drop on digits_cnn's evaluation split is how many images?", _drop_in_images,
        tolerance=1e-6, hint="0.5 % of the number of evaluation samples."),
    "pareto-front": _Exercise(
        "Which variants of PARETO_GRID are on the Pareto front (faster and at least as "
        "accurate as no other)? A list of names.",
        lambda path: sorted(pareto_front(PARETO_GRID)["variant"]), hint="no other row is both faster and more accurate."),
    "tradeoff-noise": _Exercise(
        "The binomial standard error of digits_cnn's FP32 top-1 on its evaluation split, in points?",
        _binomial_error, tolerance=0.02, hint="sqrt(p (1 - p) / n), times 100."),
    "triton-datatype": _Exercise("Which Triton data type does config.pbtxt give digits_cnn's input?",
                                 _triton_type, hint="float32 in ONNX; Triton names types TYPE_..."),
    "triton-dims": _Exercise("Which dims does config.pbtxt list for digits_cnn's input? A list, without "
                             "the batch dimension (Triton adds it from max_batch_size).", _triton_dims,
                             hint="the input's shape without its first (batch) dimension."),
    "pytorch-opset": _Exercise("Which opset did your export write?", _opset, hint="summary.opset"),
    "pytorch-batch-dim": _Exercise("What is the name of your exported model's dynamic batch dimension?",
                                   _batch_dim, hint="the dynamic_axes (or dynamic_shapes) you passed."),
}


def exercise_names() -> list[str]:
    """The names of all exercises."""
    return list(EXERCISES)


def expected_answer(name: str, model=None):
    """The answer exercise ``name`` expects, computed now.

    Args:
        name: The exercise.
        model: The model path, for exercises about your own model (``pytorch-*``).

    Returns:
        The expected value (a number, a string or a sorted list).
    """
    if name not in EXERCISES:
        raise ExerciseError(f"no exercise {name!r}; the exercises are: {', '.join(EXERCISES)}")
    return EXERCISES[name].expected(None if model is None else str(model))


def _matches(answer, expected, tolerance: float) -> bool:
    if isinstance(expected, list):
        try:
            return sorted(str(a) for a in answer) == [str(e) for e in expected]
        except TypeError:
            return False
    if isinstance(expected, str):
        return isinstance(answer, str) and answer.strip().strip("`").lower() == expected.lower()
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return False
    return math.isclose(value, float(expected), rel_tol=tolerance, abs_tol=tolerance * 1e-3)


def check(name: str, answer, model=None) -> Verdict:
    """Check a student's answer to exercise ``name``.

    Args:
        name: The exercise (see :func:`exercise_names`).
        answer: What the student wrote (``...`` or None: not answered yet).
        model: The model path, for exercises about your own model (``pytorch-*``).

    Returns:
        A :class:`Verdict`: truthy when right; displays as a green or red line in a notebook.

    Raises:
        ExerciseError: No exercise of that name.
    """
    exercise = EXERCISES.get(name)
    if exercise is None:
        raise ExerciseError(f"no exercise {name!r}; the exercises are: {', '.join(EXERCISES)}")
    if answer is None or answer is Ellipsis:
        return Verdict(name, False, f"replace ... with your answer. {exercise.question} Hint: {exercise.hint}")
    expected = expected_answer(name, model)
    if _matches(answer, expected, exercise.tolerance):
        return Verdict(name, True, f"{answer!r} is right.")
    return Verdict(name, False, f"{answer!r} is not it. {exercise.question} Hint: {exercise.hint}")
