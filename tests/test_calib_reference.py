"""The oracle of the calibration tests, ``compare_ranges``, on ranges that differ.

Every calibration test passes when ``compare_ranges`` says two sets of ranges agree, so these
feed it ONNX Runtime's real ranges of the sample CNN (minmax and entropy calibration on its
calibration split) next to copies that differ in one way each: one value moved by one float32
step, a tensor missing or extra, a NaN, a histogram bin. Each difference must show in the
result, and the conditions the calibration tests assert (``exact``, ``max_rel_diff < 1e-5``,
``fields_equal``) must be false for it.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnxruntime.quantization.calibrate import TensorData, TensorsData

from workbench.datasets.calibration_sets import from_npz
from workbench.precision.calibrator import (
    compare_ranges,
    ort_calibrate,
    prepare_for_calibration,
)
from workbench.samples import sample_data_path, sample_path


@pytest.fixture(scope="module")
def cnn():
    model = prepare_for_calibration(onnx.load(str(sample_path("digits_cnn"))))
    calib = from_npz(sample_data_path("digits_cnn", "calib"), ["input"]).subset(64)
    return model, calib


@pytest.fixture(scope="module")
def minmax(cnn):
    return ort_calibrate(*cnn, "minmax", batch_size=32)


@pytest.fixture(scope="module")
def histogram(cnn):
    """ORT's distribution calibration: ranges with their histograms, edges, mean and std."""
    return ort_calibrate(*cnn, "distribution", batch_size=32)


def _copy(data: TensorsData, change=None) -> TensorsData:
    """A deep copy of ``data``; ``change(name, fields) -> fields or None`` edits or drops tensors."""
    tensors = {}
    for name in data.keys():
        item = data[name]
        fields = {key: np.array(getattr(item, key), copy=True) for key in item._attrs}
        if change is not None:
            fields = change(name, fields)
        if fields is not None:
            tensors[name] = TensorData(**fields)
    return TensorsData(data.calibration_method, tensors)


def _passes_the_calibration_tests(result: dict) -> bool:
    """What test_calibration_fast.py asserts of ranges it calls equal (exact or within rounding)."""
    return (result["exact"] or result["max_rel_diff"] < 1e-5) and not result["missing"] and not result["extra"]


def test_equal_ranges_are_exact(minmax):
    result = compare_ranges(_copy(minmax), minmax)
    assert result["exact"] and result["max_abs_diff"] == result["max_rel_diff"] == 0.0
    assert result["tensors"] == len(minmax.keys()) > 5 and result["missing"] == result["extra"] == []
    assert result["worst"] is None and _passes_the_calibration_tests(result)


@pytest.mark.parametrize("field", ["lowest", "highest"])
def test_one_float32_step_is_not_exact_and_is_measured(minmax, field):
    name = sorted(minmax.keys())[3]
    reference = np.asarray(getattr(minmax[name], field), np.float32)
    moved = np.nextafter(reference, np.float32(np.inf), dtype=np.float32)
    low, high = (np.float64(np.ravel(minmax[name].range_value[i])[0]) for i in (0, 1))

    def nudge(tensor, fields):
        if tensor == name:
            fields[field] = moved
        return fields

    result = compare_ranges(_copy(minmax, nudge), minmax)
    step = abs(float(moved.ravel()[0]) - float(reference.ravel()[0]))
    assert not result["exact"] and result["worst"] == name
    assert result["max_abs_diff"] == pytest.approx(step, rel=1e-12)
    assert result["max_rel_diff"] == pytest.approx(step / max(abs(low), abs(high)), rel=1e-12)


def test_a_real_difference_fails_the_rounding_tolerance(minmax):
    name = sorted(minmax.keys())[-1]

    def widen(tensor, fields):
        if tensor == name:
            fields["highest"] = fields["highest"] * np.float32(1.001)
        return fields

    result = compare_ranges(_copy(minmax, widen), minmax)
    assert result["worst"] == name and result["max_rel_diff"] == pytest.approx(1e-3, rel=1e-3)
    assert not _passes_the_calibration_tests(result)


def test_missing_and_extra_tensors_are_named_and_not_exact(minmax):
    gone = sorted(minmax.keys())[0]
    fewer = _copy(minmax, lambda tensor, fields: None if tensor == gone else fields)
    result = compare_ranges(fewer, minmax)
    assert result["missing"] == [gone] and result["extra"] == [] and not result["exact"]
    assert result["max_rel_diff"] == 0.0  # the tensors both have agree ...
    assert not _passes_the_calibration_tests(result)  # ... but one is missing
    swapped = compare_ranges(minmax, fewer)
    assert swapped["extra"] == [gone] and swapped["missing"] == [] and not swapped["exact"]
    assert swapped["tensors"] == len(minmax.keys()) - 1


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
def test_a_nan_or_infinite_range_is_as_far_apart_as_ranges_get(minmax, bad):
    name = sorted(minmax.keys())[2]

    def spoil(tensor, fields):
        if tensor == name:
            fields["highest"] = np.full_like(fields["highest"], bad)
        return fields

    spoiled = _copy(minmax, spoil)
    for ours, theirs in ((spoiled, minmax), (minmax, spoiled)):
        result = compare_ranges(ours, theirs)
        assert not result["exact"] and result["worst"] == name
        assert result["max_abs_diff"] == result["max_rel_diff"] == math.inf
        assert not _passes_the_calibration_tests(result)
    both = compare_ranges(spoiled, _copy(spoiled))
    assert not both["exact"] if bad != bad else both["exact"]  # NaN equals nothing, not even NaN


def test_per_channel_against_per_tensor_ranges_differ(minmax):
    name = sorted(minmax.keys())[1]

    def per_channel(tensor, fields):
        if tensor == name:
            fields = {key: np.repeat(np.ravel(value), 4) for key, value in fields.items()}
        return fields

    result = compare_ranges(_copy(minmax, per_channel), minmax)
    assert not result["exact"] and result["worst"] == name and result["max_rel_diff"] == math.inf


@pytest.mark.parametrize("field", ["hist", "hist_edges", "avg", "std"])
def test_fields_compare_histograms_bin_for_bin(histogram, field):
    assert compare_ranges(_copy(histogram), histogram, fields=(field,))["fields_equal"]
    name = sorted(histogram.keys())[0]

    def move_one_bin(tensor, fields):
        if tensor == name:
            values = fields[field].reshape(-1)
            middle = len(values) // 2
            if values.dtype.kind == "f":  # one float step
                values[middle] = np.nextafter(values[middle], values.dtype.type(np.inf))
            else:  # one count
                values[middle] += 1
        return fields

    changed = _copy(histogram, move_one_bin)
    result = compare_ranges(changed, histogram, fields=(field,))
    assert result["exact"]  # the ranges are untouched
    assert not result["fields_equal"]
    assert compare_ranges(changed, histogram)["fields_equal"]  # not asked: not compared


def test_a_field_one_side_lacks_is_not_equal(minmax, histogram):
    result = compare_ranges(_copy(minmax), minmax, fields=("hist",))
    assert not result["fields_equal"]  # minmax ranges carry no histogram to compare
    assert compare_ranges(_copy(histogram), histogram, fields=("hist", "hist_edges"))["fields_equal"]
