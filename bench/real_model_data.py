"""Calibration and evaluation data for the real models of ``bench/fetch_models.py``.

No data set can be downloaded here, so each model's data is made from its input description
and from data that ships with the project or its packages, shaped and normalized the way the
model's own package feeds it:

* OCR models (PP-OCR det/rec/cls): "text" made of real handwritten digits (the 8x8 scans in
  ``sample_models/digits_cnn.calib.npz``, scikit-learn's digits) upscaled, dark on a light
  noisy background; text lines for the recognizer and the orientation classifier (half of them
  turned 180 degrees, which gives the classifier real labels: 0 = upright, 1 = turned), pages
  with several lines for the detector. Normalized as RapidOCR does: ``(x - 0.5) / 0.5`` for
  rec/cls, ImageNet mean/std for det.
* silero-vad: 36 ms chunks (576 samples at 16 kHz, the 512-sample window plus the 64-sample
  context the package's wrapper prepends) of voiced sound (harmonics of a 90-250 Hz pitch with
  a formant-like tilt) and of noise or near-silence; the LSTM state ``[2, N, 128]`` starts at
  zero and the sample rate is a scalar: the ``.npz`` says so in its ``__spec__`` entry
  (``{"sample_axes": {"state": 1, "sr": null}}``, workbench.datasets' data description).
* magika: the byte tokens of real files (this repository's sources, notebooks and docs):
  the first and last 1024 bytes with surrounding whitespace stripped, padded with token 256,
  as magika's ``standard_v3_3`` features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "sample_models" / "digits_cnn.calib.npz"
SPEC_KEY = "__spec__"


@dataclass(frozen=True)
class DataPlan:
    """How a real model is fed in the benchmark.

    Attributes:
        batch: Samples per inference for profile/bench/build.
        calib: Calibration samples.
        eval: Evaluation samples.
        metric: The reference metric for evaluate/doctor (issue 11's names).
        sample_axes: The data description (input -> sample axis or None).
        doctor_target: The doctor's target flags, in the metric's unit (a task-level goal: the
            defaults, 0.5 points or 40 dB, ask for nearly all of the model in FP32 on these models).
    """

    batch: int
    calib: int
    eval: int
    metric: str
    sample_axes: dict = field(default_factory=dict)
    doctor_target: tuple = ()


PLANS = {
    "ocr_det": DataPlan(batch=1, calib=16, eval=24, metric="psnr", doctor_target=("--target", "30")),
    "ocr_rec": DataPlan(batch=8, calib=32, eval=64, metric="agreement", doctor_target=("--target-drop", "10")),
    "ocr_cls": DataPlan(batch=8, calib=32, eval=64, metric="top1"),
    "silero_vad": DataPlan(batch=8, calib=64, eval=128, metric="sqnr", sample_axes={"state": 1, "sr": None}),
    "magika": DataPlan(batch=8, calib=32, eval=64, metric="agreement"),
}


def _digit_glyphs() -> np.ndarray:
    """Real handwritten digits, ``[M, 8, 8]`` in [0, 1] (ink = 1)."""
    with np.load(DIGITS) as data:
        return data["input"][:, 0].astype(np.float32)


def _upscale(glyph: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an 8x8 glyph to ``size x size``."""
    src = np.linspace(0, glyph.shape[0] - 1, size)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, glyph.shape[0] - 1)
    w = (src - i0)[:, None]
    rows = glyph[i0] * (1 - w) + glyph[i1] * w
    return rows[:, i0] * (1 - w.T) + rows[:, i1] * w.T


def _draw_text(canvas: np.ndarray, glyphs: np.ndarray, rng, *, top: int, left: int, size: int, count: int) -> None:
    """Draw ``count`` random digits of height ``size`` into a grey canvas (in place)."""
    ink = rng.uniform(0.55, 0.9)
    x = left
    for _ in range(count):
        if x + size > canvas.shape[1] or top + size > canvas.shape[0]:
            break
        glyph = _upscale(glyphs[rng.integers(len(glyphs))], size)
        region = canvas[top:top + size, x:x + size]
        canvas[top:top + size, x:x + size] = region * (1 - ink * glyph)
        x += int(size * rng.uniform(0.75, 1.0))


def _background(rng, height: int, width: int) -> np.ndarray:
    return np.clip(rng.uniform(0.75, 1.0) + rng.normal(0, 0.03, (height, width)), 0, 1).astype(np.float32)


def _to_rgb(gray: np.ndarray, rng) -> np.ndarray:
    tint = rng.uniform(0.9, 1.0, size=(3, 1, 1)).astype(np.float32)
    return np.clip(gray[None] * tint, 0, 1)


def text_lines(n: int, rng, *, height: int = 48, width: int = 320) -> np.ndarray:
    """``[n, 3, height, width]`` text lines in [0, 1]."""
    glyphs = _digit_glyphs()
    out = np.empty((n, 3, height, width), np.float32)
    for k in range(n):
        gray = _background(rng, height, width)
        size = int(rng.integers(height * 5 // 8, height * 7 // 8))
        count = int(rng.integers(3, max(4, width // size)))
        _draw_text(gray, glyphs, rng, top=(height - size) // 2, left=int(rng.integers(2, 12)), size=size, count=count)
        out[k] = _to_rgb(gray, rng)
    return out


def pages(n: int, rng, *, size: int = 320) -> np.ndarray:
    """``[n, 3, size, size]`` pages with 2-5 lines of digits, in [0, 1]."""
    glyphs = _digit_glyphs()
    out = np.empty((n, 3, size, size), np.float32)
    for k in range(n):
        gray = _background(rng, size, size)
        for _ in range(int(rng.integers(2, 6))):
            glyph = int(rng.integers(16, 40))
            _draw_text(gray, glyphs, rng, top=int(rng.integers(0, size - glyph)), left=int(rng.integers(0, size // 2)),
                       size=glyph, count=int(rng.integers(3, 10)))
        out[k] = _to_rgb(gray, rng)
    return out


def ocr_rec_data(n: int, seed: int) -> tuple[dict, np.ndarray | None]:
    lines = text_lines(n, np.random.default_rng(seed))
    return {"x": (lines - 0.5) / 0.5}, None


def ocr_cls_data(n: int, seed: int) -> tuple[dict, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    lines = text_lines(n, rng, height=48, width=192)
    labels = (np.arange(n) % 2).astype(np.int64)  # 0 = upright, 1 = turned 180 degrees
    lines[labels == 1] = lines[labels == 1][:, :, ::-1, ::-1]
    return {"x": (lines - 0.5) / 0.5}, labels


def ocr_det_data(n: int, seed: int) -> tuple[dict, np.ndarray | None]:
    images = pages(n, np.random.default_rng(seed))
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    return {"x": (images - mean) / std}, None


def vad_chunks(n: int, rng, *, samples: int = 576, rate: int = 16000) -> np.ndarray:
    """``[n, samples]`` audio in [-1, 1]: every other chunk voiced, the rest noise or near-silence."""
    t = np.arange(samples) / rate
    audio = np.empty((n, samples), np.float32)
    for k in range(n):
        if k % 2 == 0:
            f0 = rng.uniform(90, 250)
            wave = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h ** rng.uniform(0.8, 1.6)
                       for h in range(1, 16) if f0 * h < rate / 2)
            wave = wave / np.abs(wave).max() * rng.uniform(0.1, 0.6) + rng.normal(0, 0.005, samples)
        else:
            wave = rng.normal(0, rng.choice([0.001, 0.01, 0.05]), samples)
        audio[k] = np.clip(wave, -1, 1)
    return audio


def silero_vad_data(n: int, seed: int) -> tuple[dict, np.ndarray | None]:
    audio = vad_chunks(n, np.random.default_rng(seed))
    return {"input": audio, "state": np.zeros((2, n, 128), np.float32), "sr": np.array(16000, np.int64)}, None


def _repo_files() -> list[Path]:
    files = []
    for pattern in ("workbench/**/*.py", "notebooks/*.ipynb", "*.md", "docs/**/*.md", "sample_models/*.md",
                    "bench/*.py", "tests/*.py", "pyproject.toml", "Makefile", "Dockerfile", "docs/**/*.png",
                    "sample_models/*.onnx"):
        files += sorted(p for p in REPO.glob(pattern) if p.is_file())
    return files


def magika_features(content: bytes, size: int = 1024, padding: int = 256) -> np.ndarray:
    """magika standard_v3 features: first and last ``size`` bytes (whitespace stripped), padded."""
    beg = list(content.lstrip()[:size])
    end = list(content.rstrip()[-size:]) if content.strip() else []
    beg = beg + [padding] * (size - len(beg))
    end = [padding] * (size - len(end)) + end
    return np.array(beg + end, np.int32)


def magika_data(n: int, seed: int) -> tuple[dict, np.ndarray | None]:
    files = _repo_files()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(files), size=n, replace=len(files) < n)
    return {"bytes": np.stack([magika_features(files[i].read_bytes()) for i in chosen])}, None


MAKERS = {
    "ocr_det": ocr_det_data,
    "ocr_rec": ocr_rec_data,
    "ocr_cls": ocr_cls_data,
    "silero_vad": silero_vad_data,
    "magika": magika_data,
}


def save_data(path: Path, inputs: dict, labels, sample_axes: dict) -> Path:
    """Save inputs (+ labels, + the ``__spec__`` data description when needed) as ``.npz``."""
    arrays = dict(inputs)
    if labels is not None:
        arrays["labels"] = labels
    if sample_axes:
        arrays[SPEC_KEY] = np.array(json.dumps({"sample_axes": sample_axes}))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp.npz")
    np.savez(partial, **arrays)
    partial.replace(path)
    return path


def make_model_data(name: str, folder: Path, *, calib: int | None = None, eval: int | None = None) -> dict:
    """Write ``<name>.calib.npz`` and ``<name>.eval.npz`` for a real model into ``folder``.

    Args:
        name: A model of :data:`PLANS`.
        folder: Where to write.
        calib, eval: Sample counts (default: the plan's).

    Returns:
        ``{"calib": path, "eval": path, "plan": DataPlan, "labels": bool}``.
    """
    plan = PLANS[name]
    make = MAKERS[name]
    calib_inputs, calib_labels = make(calib or plan.calib, seed=1)
    eval_inputs, eval_labels = make(eval or plan.eval, seed=2)
    return {
        "calib": save_data(folder / f"{name}.calib.npz", calib_inputs, calib_labels, plan.sample_axes),
        "eval": save_data(folder / f"{name}.eval.npz", eval_inputs, eval_labels, plan.sample_axes),
        "plan": plan,
        "labels": eval_labels is not None,
    }
