"""Recipes: validation messages, to_dict round trip, a stable hash."""

from __future__ import annotations

import json

import pytest

from workbench.precision.recipe import TENSORRT_OP_TYPES, Recipe, RecipeError


def test_hash_is_stable_and_ignores_the_label():
    a = Recipe("int8", method="entropy", exclude_nodes=["/a", "/b"])
    b = Recipe("INT8", method="entropy", exclude_nodes=("/a", "/b"), name="mine")
    assert a.hash() == b.hash() and len(a.hash()) == 16
    assert a.hash() != Recipe("int8", method="percentile").hash()
    assert a.hash() != Recipe("int8", method="entropy", exclude_nodes=("/a",)).hash()
    assert Recipe("int8", method="max").method == "minmax"


def test_to_dict_round_trip_is_json():
    recipe = Recipe("fp8", method="percentile", percentile=99.9, num_samples=64, sample_selection="random", seed=3)
    data = json.loads(json.dumps(recipe.to_dict()))
    assert Recipe.from_dict(data) == recipe
    with pytest.raises(RecipeError, match=r"unknown recipe setting\(s\) \['bogus'\]"):
        Recipe.from_dict({**data, "bogus": 1})


def test_defaults_follow_tensorrt_guidance():
    recipe = Recipe("int8")
    assert recipe.quantized_op_types == TENSORRT_OP_TYPES
    assert recipe.per_channel and recipe.high_precision == "fp32"
    assert Recipe("int8", exclude_op_types=("Gemm",)).quantized_op_types == ("Conv", "ConvTranspose", "MatMul")


def test_fp16_keep_lists_merge_exclusions():
    recipe = Recipe("fp16", exclude_nodes=("/a",), keep_fp32_nodes=("/b",), keep_fp32_op_types=("Softmax",))
    assert recipe.fp32_nodes == ("/a", "/b") and recipe.fp32_op_types == ("Softmax",)
    # calibration settings do not change an fp16 variant
    assert Recipe("fp16", method="entropy").hash() == Recipe("fp16").hash()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precision": "int4"}, "precision 'int4' is not one of"),
        ({"precision": "int8", "method": "kl"}, "unknown calibration method 'kl'"),
        ({"precision": "int8", "num_samples": 0}, "num_samples must be at least 1"),
        ({"precision": "int8", "sample_selection": "last"}, "sample_selection must be"),
        ({"precision": "int8", "tool": "tensorrt"}, "tool must be one of"),
        ({"precision": "int8", "method": "distribution", "num_bins": 128}, "num_bins >= 512"),
        ({"precision": "int8", "method": "percentile", "percentile": 120}, r"within \[0, 100\]"),
        ({"precision": "int8", "op_types_to_quantize": ()}, "op_types_to_quantize is empty"),
        ({"precision": "int8", "high_precision": "int4"}, "high_precision must be one of"),
    ],
)
def test_invalid_settings_named(kwargs, message):
    with pytest.raises(RecipeError, match=message):
        Recipe(**kwargs)
