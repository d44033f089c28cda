"""Calibration sets from .npz, iterables and image folders, checked against the sample models."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.datasets.arrays import InputDataError
from workbench.datasets.calibration_sets import (
    CalibrationSet,
    Preprocess,
    from_image_folder,
    from_iterable,
    from_npz,
    load_calibration_set,
    pil_available,
)
from workbench.model import load_model
from workbench.samples import sample_data_path, sample_path


@pytest.fixture(scope="module")
def cnn():
    return load_model(sample_path("digits_cnn"))


@pytest.fixture(scope="module")
def calib_arrays():
    with np.load(sample_data_path("digits_cnn", "calib")) as data:
        return {"input": data["input"]}


def test_npz_loads_and_checks_against_model(cnn):
    calib = load_calibration_set(sample_data_path("digits_cnn", "calib"), cnn)
    assert calib.num_samples == 256
    assert calib.input_names == ["input"]
    assert calib.inputs["input"].shape == (256, 1, 8, 8)


def test_subset_first_and_random_with_seed(calib_arrays):
    calib = CalibrationSet(calib_arrays, "calib")
    first = calib.subset(10)
    assert np.array_equal(first.inputs["input"], calib_arrays["input"][:10])
    assert first.selection == {"mode": "first", "n": 10, "of": 256}
    a, b = calib.subset(32, random=True, seed=3), calib.subset(32, random=True, seed=3)
    assert np.array_equal(a.inputs["input"], b.inputs["input"])
    assert not np.array_equal(a.inputs["input"], calib.subset(32, random=True, seed=4).inputs["input"])
    assert calib.subset(10_000).num_samples == 256
    with pytest.raises(InputDataError, match="give 1 or more"):
        calib.subset(0)


def test_content_hash_follows_the_data(calib_arrays):
    calib = CalibrationSet(calib_arrays, "calib")
    assert calib.content_hash() == CalibrationSet({"input": calib_arrays["input"].copy()}, "other").content_hash()
    assert calib.content_hash() != calib.subset(255).content_hash()


def test_stats_preview(calib_arrays):
    stats = CalibrationSet(calib_arrays, "calib").stats()
    row = stats.loc["input"]
    x = calib_arrays["input"]
    assert row["min"] == pytest.approx(float(x.min()))
    assert row["max"] == pytest.approx(float(x.max()))
    assert row["mean"] == pytest.approx(float(x.mean()), rel=1e-6)
    assert row["p50"] == pytest.approx(float(np.percentile(x, 50)))
    assert row["sample_shape"] == [1, 8, 8]


def test_nan_refused_naming_sample_and_input(cnn, calib_arrays):
    bad = calib_arrays["input"].copy()
    bad[7, 0, 3, 3] = np.nan
    with pytest.raises(InputDataError, match=r"input 'input'.*sample\(s\) \[7\]"):
        load_calibration_set({"input": bad}, cnn)


def test_inf_refused(cnn, calib_arrays):
    bad = calib_arrays["input"].copy()
    bad[2, 0, 0, 0] = np.inf
    with pytest.raises(InputDataError, match=r"\[2\]"):
        load_calibration_set({"input": bad}, cnn)


def test_wrong_shape_refused(cnn, calib_arrays):
    with pytest.raises(InputDataError, match=r"input 'input' has dim 2 of size 7"):
        load_calibration_set({"input": calib_arrays["input"][:, :, :7, :]}, cnn)
    with pytest.raises(InputDataError, match="wrong rank"):
        load_calibration_set({"input": calib_arrays["input"][:, 0]}, cnn)


def test_wrong_dtype_and_names_refused(cnn, calib_arrays):
    with pytest.raises(InputDataError, match="is float64 but the model takes float32"):
        load_calibration_set({"input": calib_arrays["input"].astype(np.float64)}, cnn)
    with pytest.raises(InputDataError, match="no samples for model input"):
        load_calibration_set({"pixels": calib_arrays["input"]}, cnn)


def test_iterable_of_dicts(cnn, calib_arrays):
    samples = ({"input": x} for x in calib_arrays["input"][:20])
    calib = load_calibration_set(samples, cnn)
    assert np.array_equal(calib.inputs["input"], calib_arrays["input"][:20])
    batched = from_iterable(({"input": calib_arrays["input"][i:i + 8]} for i in range(0, 24, 8)), batched=True)
    assert batched.num_samples == 24


def test_iterable_with_mismatched_sample_refused(calib_arrays):
    items = [{"input": calib_arrays["input"][0]}, {"input": calib_arrays["input"][1][:, :4]}]
    with pytest.raises(InputDataError, match="item 1, input 'input'"):
        from_iterable(items)


def _write_pgm(path, pixels: np.ndarray, maxval: int) -> None:
    h, w = pixels.shape
    path.write_bytes(f"P5\n{w} {h}\n{maxval}\n".encode() + pixels.astype(np.uint8).tobytes())


def test_image_folder_of_pgm_digits_round_trips(tmp_path, cnn):
    with np.load(sample_data_path("digits_cnn", "eval")) as data:
        x = data["input"][:12]
    for i, image in enumerate(x):  # the split's pixels are 0..16 divided by 16
        _write_pgm(tmp_path / f"digit_{i:03d}.pgm", np.rint(image[0] * 16), maxval=16)
    calib = load_calibration_set(tmp_path, cnn, preprocess=Preprocess(color="L", layout="NCHW"))
    assert calib.inputs["input"].dtype == np.float32
    assert np.array_equal(calib.inputs["input"], x)


def test_image_folder_resize_crop_normalize_nhwc(tmp_path):
    with np.load(sample_data_path("digits_cnn", "eval")) as data:
        x = data["input"][:3]
    for i, image in enumerate(x):
        _write_pgm(tmp_path / f"d{i}.pgm", np.rint(image[0] * 16), maxval=16)
    pre = Preprocess(size=16, crop=12, mean=0.5, std=0.25, layout="NHWC", color="RGB")
    calib = from_image_folder(tmp_path, pre, "input")
    assert calib.inputs["input"].shape == (3, 12, 12, 3)
    assert np.allclose(calib.inputs["input"][..., 0], calib.inputs["input"][..., 2])


def test_image_folder_needs_declared_preprocessing(tmp_path, cnn):
    _write_pgm(tmp_path / "a.pgm", np.zeros((8, 8)), 255)
    with pytest.raises(InputDataError, match="declared preprocessing"):
        load_calibration_set(tmp_path, cnn)


@pytest.mark.skipif(pil_available(), reason="Pillow is installed, so PNG files are readable")
def test_png_without_pillow_is_refused_with_the_fix(tmp_path):
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InputDataError, match="need Pillow"):
        from_image_folder(tmp_path, Preprocess(), "input")


def test_npz_without_input_array_refused(tmp_path, cnn):
    np.savez(tmp_path / "bad.npz", pixels=np.zeros((4, 1, 8, 8), np.float32))
    with pytest.raises(InputDataError, match="has no array for model input"):
        from_npz(tmp_path / "bad.npz", cnn.input_names)
