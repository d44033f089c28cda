"""Calibration sets from .npz, iterables and image folders, checked against the sample models."""

from __future__ import annotations

import sys

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


# Preprocessing by value: tiny images whose every output pixel is worked out by hand below.


def _write_ppm(path, pixels: np.ndarray, maxval: int = 255) -> None:
    h, w, _ = pixels.shape
    path.write_bytes(f"P6\n{w} {h}\n{maxval}\n".encode() + pixels.astype(np.uint8).tobytes())


def test_bilinear_upscale_then_normalize_by_hand(tmp_path):
    """2x2 -> 4x4, half-pixel centres: output row/column i samples input coordinate
    (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1], so each row [a, b] becomes
    [a, 0.75a + 0.25b, 0.25a + 0.75b, b], and likewise down the columns."""
    _write_pgm(tmp_path / "a.pgm", np.array([[0, 100], [200, 255]]), maxval=255)
    calib = from_image_folder(tmp_path, Preprocess(size=(4, 4), mean=0.5, std=0.25, color="L"), "x")
    by_hand = np.array([
        [0.0, 25.0, 75.0, 100.0],  # row 0: [0, 100] spread
        [50.0, 72.1875, 116.5625, 138.75],  # 0.75 * row 0 + 0.25 * row 3
        [150.0, 166.5625, 199.6875, 216.25],  # 0.25 * row 0 + 0.75 * row 3
        [200.0, 213.75, 241.25, 255.0],  # row 3: [200, 255] spread
    ]) / 255.0
    assert calib.inputs["x"].shape == (1, 1, 4, 4) and calib.inputs["x"].dtype == np.float32
    np.testing.assert_allclose(calib.inputs["x"][0, 0], ((by_hand - 0.5) / 0.25).astype(np.float32), rtol=0, atol=1e-6)


def test_shorter_side_resize_and_center_crop_by_hand(tmp_path):
    """A 4x8 image with pixel (r, c) = 10r + c: size=2 resizes the shorter side to 2 (2x4, so
    every output pixel is the mean of a 2x2 block, 20i + 2j + 5.5), crop=2 keeps columns 1-2."""
    rows, cols = np.mgrid[0:4, 0:8]
    _write_pgm(tmp_path / "a.pgm", 10 * rows + cols, maxval=255)
    calib = from_image_folder(tmp_path, Preprocess(size=2, crop=2, color="L"), "x")
    by_hand = np.array([[7.5, 9.5], [27.5, 29.5]]) / 255.0
    np.testing.assert_allclose(calib.inputs["x"][0, 0], by_hand.astype(np.float32), rtol=0, atol=1e-7)


def test_rgb_channels_mean_std_and_layouts_by_hand(tmp_path):
    """Per-channel (x - mean) / std on a 1x2 RGB image, in both layouts; grayscale is ITU-R 601."""
    pixels = np.array([[[255, 0, 51], [0, 102, 255]]])  # red-ish, blue-ish
    _write_ppm(tmp_path / "a.ppm", pixels)
    mean, std = (0.5, 0.25, 0.0), (0.5, 0.25, 2.0)
    nchw = from_image_folder(tmp_path, Preprocess(mean=mean, std=std), "x").inputs["x"]
    nhwc = from_image_folder(tmp_path, Preprocess(mean=mean, std=std, layout="NHWC"), "x").inputs["x"]
    by_hand = np.array([  # channel, then the two pixels: (v / 255 - mean) / std
        [(1.0 - 0.5) / 0.5, (0.0 - 0.5) / 0.5],  # R: 1.0, -1.0
        [(0.0 - 0.25) / 0.25, (0.4 - 0.25) / 0.25],  # G: -1.0, 0.6
        [0.2 / 2.0, 1.0 / 2.0],  # B: 0.1, 0.5
    ])
    assert nchw.shape == (1, 3, 1, 2) and nhwc.shape == (1, 1, 2, 3)
    np.testing.assert_allclose(nchw[0, :, 0, :], by_hand, rtol=0, atol=1e-6)
    np.testing.assert_allclose(nhwc[0, 0].T, by_hand, rtol=0, atol=1e-6)
    gray = from_image_folder(tmp_path, Preprocess(color="L"), "x").inputs["x"]
    np.testing.assert_allclose(gray[0, 0, 0], [0.299 * 1.0 + 0.114 * 0.2, 0.587 * 0.4 + 0.114 * 1.0], atol=1e-6)


def test_sixteen_bit_pgm_and_npy_scale_by_hand(tmp_path):
    """A 16-bit PGM divides by its maxval (big-endian samples); a CHW .npy is transposed and
    multiplied by ``scale``, not divided."""
    (tmp_path / "deep.pgm").write_bytes(b"P5\n2 1\n1000\n" + np.array([250, 1000], ">u2").tobytes())
    deep = from_image_folder(tmp_path, Preprocess(color="L"), "x").inputs["x"]
    np.testing.assert_allclose(deep[0, 0, 0], [0.25, 1.0])
    npy = tmp_path / "npy"
    npy.mkdir()
    np.save(npy / "a.npy", np.arange(12, dtype=np.float64).reshape(3, 2, 2))  # C, H, W
    x = from_image_folder(npy, Preprocess(scale=0.5, layout="NHWC"), "x").inputs["x"]
    assert x.shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(x[0, 1, 0], [1.0, 3.0, 5.0])  # pixel (1, 0): values 2, 6, 10 halved


def test_image_folder_needs_declared_preprocessing(tmp_path, cnn):
    _write_pgm(tmp_path / "a.pgm", np.zeros((8, 8)), 255)
    with pytest.raises(InputDataError, match="declared preprocessing"):
        load_calibration_set(tmp_path, cnn)


def test_png_without_pillow_is_refused_with_the_fix(tmp_path, monkeypatch):
    """Pillow is optional: without it (its import blocked here, so this runs with or without
    Pillow installed) a PNG is refused naming the file and the fix."""
    for module in ("PIL", "PIL.Image"):
        monkeypatch.setitem(sys.modules, module, None)  # import PIL.Image now raises ImportError
    assert not pil_available()
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InputDataError, match=r"'img.png' need Pillow.*pip install pillow"):
        from_image_folder(tmp_path, Preprocess(), "input")


def test_npz_without_input_array_refused(tmp_path, cnn):
    np.savez(tmp_path / "bad.npz", pixels=np.zeros((4, 1, 8, 8), np.float32))
    with pytest.raises(InputDataError, match="has no array for model input"):
        from_npz(tmp_path / "bad.npz", cnn.input_names)
