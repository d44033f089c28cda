"""Calibration sets: the samples a quantizer runs through the model to measure activation ranges.

A :class:`CalibrationSet` holds one array per model input, samples first, and comes from

- an ``.npz`` file (arrays named after the model's inputs, see
  :func:`workbench.datasets.arrays.load_npz`): :func:`from_npz`;
- a folder of images with a declared preprocessing (:class:`Preprocess`): :func:`from_image_folder`.
  ``.npy``, ``.pgm`` and ``.ppm`` files are read with numpy alone; ``.png``/``.jpg``/... need
  Pillow, which is used only when it is installed;
- a Python iterable of ``{input name: array}`` dicts, one sample (or one batch) each:
  :func:`from_iterable`;
- arrays already in memory: :func:`from_arrays`.

Pick a size and a subset with :meth:`CalibrationSet.subset` (first N or random N with a seed),
preview it with :meth:`CalibrationSet.stats`, check it against the model with
:meth:`CalibrationSet.check_against` (shapes, dtypes, NaN/Inf, naming the sample and the input),
and key caches on :meth:`CalibrationSet.content_hash`.

Example::

    calib = load_calibration_set("digits_cnn.calib.npz", model, num_samples=128, random=True)
    calib.stats()
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from workbench.datasets.arrays import (
    LABELS_KEY,
    SPEC_KEY,
    InputDataError,
    arrays_sha256,
    check_inputs,
    check_model_inputs,
    iter_batches,
    load_data,
    num_samples,
    resolve_sample_axes,
    select_samples,
    take_batch,
)
from workbench.model import load_model

NUMPY_IMAGE_SUFFIXES = (".npy", ".pgm", ".ppm", ".pnm")
PIL_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DEFAULT_PERCENTILES = (0.1, 1.0, 50.0, 99.0, 99.9)

# ONNX element type names as ModelSummary reports them -> numpy dtypes a feed may have.
_FLOAT_KINDS = "f"


def pil_available() -> bool:
    """Whether Pillow can be imported (it is optional; only image formats numpy cannot read need it)."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# The set
# --------------------------------------------------------------------------------------------


@dataclass
class CalibrationSet:
    """Calibration samples: one array per model input, samples along its sample axis.

    Attributes:
        inputs: Input name -> array, ``[num_samples, ...]`` unless ``sample_axes`` says otherwise.
        source: Where the samples came from (a path or a description), for messages and records.
        selection: How the samples were picked from the source (``{"mode", "n", "seed"}``).
        sample_axes: The data description: input name -> the axis its samples run along, or
            None for an input fed as it is to every batch (see :mod:`workbench.datasets.arrays`);
            filled in for every input.
    """

    inputs: dict[str, np.ndarray]
    source: str = "arrays"
    selection: dict = field(default_factory=lambda: {"mode": "all"})
    sample_axes: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.inputs:
            raise InputDataError(f"{self.source}: the calibration set holds no inputs.")
        self.sample_axes = resolve_sample_axes(self.inputs, self.sample_axes, source=self.source)
        check_inputs(self.inputs, source=self.source, sample_axes=self.sample_axes)

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def num_samples(self) -> int:
        return num_samples(self.inputs, self.sample_axes, source=self.source)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.inputs.values()))

    def __len__(self) -> int:
        return self.num_samples

    def subset(self, n: int | None = None, *, random: bool = False, seed: int = 0) -> "CalibrationSet":
        """A set of ``n`` of these samples: the first ``n``, or ``n`` drawn at random with ``seed``.

        Args:
            n: How many samples; None or more than there are keeps them all.
            random: Draw at random (without replacement, kept in their original order) instead of
                taking the first ``n``.
            seed: Random seed, so the same call picks the same samples.

        Returns:
            The new set (arrays are views or copies; this set is unchanged).

        Raises:
            InputDataError: ``n`` is below 1.
        """
        if n is not None and int(n) < 1:
            raise InputDataError(f"{self.source}: asked for {n} calibration samples; give 1 or more.")
        total = self.num_samples
        if n is None or int(n) >= total:
            return CalibrationSet(dict(self.inputs), self.source, {"mode": "all", "n": total}, self.sample_axes)
        n = int(n)
        if random:
            picked = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
            inputs = select_samples(self.inputs, picked, self.sample_axes)
            selection = {"mode": "random", "n": n, "seed": int(seed), "of": total}
        else:
            inputs = take_batch(self.inputs, n, self.sample_axes)
            selection = {"mode": "first", "n": n, "of": total}
        return CalibrationSet(inputs, self.source, selection, self.sample_axes)

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Yield feeds of ``batch_size`` samples (the last may be smaller), contiguous arrays."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for feed in iter_batches(self.inputs, batch_size, self.sample_axes):
            yield {k: np.asarray(a, order="C") for k, a in feed.items()}  # keeps 0-d inputs 0-d

    def content_hash(self) -> str:
        """sha256 of the samples (names, dtypes, shapes and bytes): equal data, equal hash."""
        digest = arrays_sha256(self.inputs)
        if any(axis != 0 for axis in self.sample_axes.values()):  # the default layout keeps old hashes
            digest.update(json.dumps(self.sample_axes, sort_keys=True).encode())
        return digest.hexdigest()

    def stats(self, percentiles: Sequence[float] = DEFAULT_PERCENTILES):
        """Per-input statistics for a preview: shape, dtype, min, max, mean, std and percentiles.

        Args:
            percentiles: Percentiles (0-100) to report, as columns ``p<value>``.

        Returns:
            A pandas DataFrame, one row per input.
        """
        import pandas as pd

        rows = []
        for name, array in self.inputs.items():
            values = array.astype(np.float64, copy=False).ravel()
            row = {
                "input": name,
                "samples": 1 if self.sample_axes.get(name) is None else array.shape[self.sample_axes[name]],
                "sample_shape": _sample_shape(array, self.sample_axes.get(name)),
                "dtype": array.dtype.name,
                "min": float(values.min()),
                "max": float(values.max()),
                "mean": float(values.mean()),
                "std": float(values.std()),
            }
            for p, v in zip(percentiles, np.percentile(values, list(percentiles))):
                row[f"p{p:g}"] = float(v)
            rows.append(row)
        return pd.DataFrame(rows).set_index("input")

    def check_against(self, input_specs: Sequence[Mapping]) -> None:
        """Refuse samples the model cannot take, naming the input (and sample) and the fix.

        Args:
            input_specs: The model's inputs as ``{"name", "dtype", "shape"}`` dicts
                (``workbench.model.load_model(path).summary.inputs``). A symbolic dim (a string)
                accepts any size; the first dim is the batch: a fixed batch size must divide the
                number of samples.

        Raises:
            InputDataError: An input is missing, has the wrong dtype or sample shape, or holds
                NaN/Inf.
        """
        check_inputs(self.inputs, source=self.source, sample_axes=self.sample_axes)
        names = [spec["name"] for spec in input_specs]
        missing = [n for n in names if n not in self.inputs]
        if missing:
            raise InputDataError(
                f"{self.source}: no samples for model input(s) {missing}; the set holds "
                f"{sorted(self.inputs)}. Name each array after the model input it feeds."
            )
        extra = sorted(set(self.inputs) - set(names))
        if extra:
            raise InputDataError(
                f"{self.source}: array(s) {extra} match no model input (inputs: {names}). "
                "Rename or drop them."
            )
        check_model_inputs(self.inputs, input_specs, self.sample_axes, source=self.source)

    def to_dict(self) -> dict:
        """A JSON-able description: source, selection, samples, per-input shape/dtype, hash."""
        return {
            "source": self.source,
            "selection": dict(self.selection),
            "num_samples": self.num_samples,
            "nbytes": self.nbytes,
            "inputs": {
                k: {"shape": _sample_shape(a, self.sample_axes.get(k)), "dtype": a.dtype.name}
                for k, a in self.inputs.items()
            },
            "sample_axes": dict(self.sample_axes),
            "sha256": self.content_hash(),
        }

    def _repr_html_(self) -> str:
        head = (f"<b>Calibration set</b> {self.num_samples} samples from <code>{self.source}</code> "
                f"({self.selection.get('mode')})")
        return head + self.stats().to_html(float_format=lambda v: f"{v:.4g}")


def _sample_shape(array: np.ndarray, axis: int | None) -> list[int]:
    """One sample's shape: the array's without its sample axis (the whole shape if fed as is)."""
    return list(array.shape) if axis is None else [d for i, d in enumerate(array.shape) if i != axis]


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def from_arrays(inputs: Mapping[str, np.ndarray], *, source: str = "arrays", sample_axes=None) -> CalibrationSet:
    """A calibration set from in-memory arrays (input name -> ``[samples, ...]`` array).

    Args:
        inputs: Input name -> array (a ``__spec__`` entry is read as the data description;
            ``labels`` is ignored).
        source: Description for messages.
        sample_axes: Input name -> sample axis or None (wins over ``__spec__``).

    Returns:
        The set.
    """
    names = [k for k in inputs if k not in (LABELS_KEY, SPEC_KEY)]  # keep the caller's order
    data = load_data(dict(inputs), names, sample_axes=sample_axes, what="calibration")
    return CalibrationSet(data.inputs, source, {"mode": "all"}, data.sample_axes)


def from_npz(path, input_names: Sequence[str] | None = None, *, sample_axes=None) -> CalibrationSet:
    """A calibration set from an ``.npz`` file with one array per model input (``labels`` ignored).

    Args:
        path: The ``.npz`` file (its ``__spec__`` entry, if any, is the data description).
        input_names: The model's input names (each must be in the file); None takes every array
            but ``labels``.
        sample_axes: Input name -> sample axis or None (wins over the file's ``__spec__``).

    Returns:
        The set.

    Raises:
        InputDataError: See :func:`workbench.datasets.arrays.load_data`.
    """
    data = load_data(Path(path).expanduser(), input_names, sample_axes=sample_axes, what="calibration")
    return CalibrationSet(data.inputs, data.source, {"mode": "all"}, data.sample_axes)


def from_iterable(
    samples: Iterable[Mapping[str, Any]],
    *,
    input_names: Sequence[str] | None = None,
    batched: bool = False,
    limit: int | None = None,
    source: str = "iterable",
) -> CalibrationSet:
    """A calibration set from an iterable of ``{input name: array}`` dicts.

    Args:
        samples: Each item is one sample (arrays without the batch axis), or one batch of samples
            if ``batched`` (arrays with a leading batch axis).
        input_names: Keys to keep (every one must be in every item); None keeps the first item's.
        batched: Items hold batches, concatenated along axis 0.
        limit: Stop after this many items.
        source: Description for messages.

    Returns:
        The set.

    Raises:
        InputDataError: No items, an item that is not a dict, a missing key, or items whose
            shapes or dtypes disagree (naming the item and the input).
    """
    collected: dict[str, list[np.ndarray]] = {}
    names = list(input_names) if input_names is not None else None
    count = 0
    for index, item in enumerate(samples):
        if limit is not None and index >= limit:
            break
        if not isinstance(item, Mapping):
            raise InputDataError(
                f"{source}: item {index} is a {type(item).__name__}, not a dict of input name -> array."
            )
        if names is None:
            names = list(item)
        for name in names:
            if name not in item:
                raise InputDataError(f"{source}: item {index} has no array for input '{name}' (has {sorted(item)}).")
            array = np.asarray(item[name])
            if not batched:
                array = array[np.newaxis]
            previous = collected.setdefault(name, [])
            if previous and (previous[0].shape[1:] != array.shape[1:] or previous[0].dtype != array.dtype):
                raise InputDataError(
                    f"{source}: item {index}, input '{name}' is {array.dtype.name} "
                    f"{list(array.shape[1:])} but item 0 was {previous[0].dtype.name} "
                    f"{list(previous[0].shape[1:])}; every sample must have the same shape and dtype."
                )
            previous.append(array)
        count += 1
    if not count:
        raise InputDataError(f"{source}: the iterable yielded no samples.")
    inputs = {name: np.concatenate(parts, axis=0) for name, parts in collected.items()}
    return CalibrationSet(inputs, source, {"mode": "all"})


@dataclass(frozen=True)
class Preprocess:
    """How image files become model input: decode, resize, center crop, scale, normalize, layout.

    Pixels are first scaled to [0, 1] (8-bit images divide by 255; ``.pgm``/``.ppm`` by their
    declared maxval; ``.npy`` arrays are taken as they are, times ``scale`` only if given), then
    ``(x - mean) / std`` per channel.

    Attributes:
        size: Resize to this: an int resizes the shorter side to it (keeping aspect), a pair is
            (height, width). None keeps the size.
        crop: Center crop to this (int for a square, or (height, width)); None skips it.
        mean: Per-channel (or single) mean subtracted after scaling; None skips it.
        std: Per-channel (or single) std divided by; None skips it.
        layout: ``"NCHW"`` or ``"NHWC"``.
        color: ``"RGB"`` (3 channels) or ``"L"`` (grayscale, 1 channel).
        scale: Multiplier applied to ``.npy`` arrays (other formats are scaled to [0, 1]).
        dtype: Output dtype.
    """

    size: int | tuple[int, int] | None = None
    crop: int | tuple[int, int] | None = None
    mean: tuple[float, ...] | float | None = None
    std: tuple[float, ...] | float | None = None
    layout: str = "NCHW"
    color: str = "RGB"
    scale: float | None = None
    dtype: str = "float32"

    def __post_init__(self):
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {self.layout!r}")
        if self.color not in ("RGB", "L"):
            raise ValueError(f"color must be 'RGB' or 'L' (grayscale), got {self.color!r}")
        if self.std is not None and np.any(np.asarray(self.std, dtype=np.float64) == 0):
            raise ValueError("std has a zero entry; every std must be non-zero")

    def to_dict(self) -> dict:
        return {
            "size": self.size, "crop": self.crop, "mean": self.mean, "std": self.std,
            "layout": self.layout, "color": self.color, "scale": self.scale, "dtype": self.dtype,
        }

    @property
    def channels(self) -> int:
        return 3 if self.color == "RGB" else 1


def from_image_folder(
    folder,
    preprocess: Preprocess,
    input_name: str,
    *,
    limit: int | None = None,
    recursive: bool = False,
) -> CalibrationSet:
    """A calibration set from the image files in a folder (sorted by name), preprocessed.

    Args:
        folder: The folder.
        preprocess: The declared preprocessing (see :class:`Preprocess`).
        input_name: The model input the images feed.
        limit: Read at most this many files (the first in sorted order).
        recursive: Also read sub-folders.

    Returns:
        The set, ``[images, C, H, W]`` or ``[images, H, W, C]``.

    Raises:
        InputDataError: The folder is missing or holds no readable images; an image needs Pillow
            (png/jpg...) and Pillow is not installed; images end up with different sizes (give
            ``size`` and/or ``crop``); a file cannot be decoded (naming it).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputDataError(f"{folder}: no such folder of calibration images.")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))
    readable = NUMPY_IMAGE_SUFFIXES + PIL_IMAGE_SUFFIXES
    files = [p for p in files if p.suffix.lower() in readable]
    if not files:
        raise InputDataError(
            f"{folder}: no image files ({', '.join(readable)}). Put the calibration images there."
        )
    needs_pil = [p for p in files if p.suffix.lower() in PIL_IMAGE_SUFFIXES]
    if needs_pil and not pil_available():
        raise InputDataError(
            f"{folder}: {len(needs_pil)} file(s) such as '{needs_pil[0].name}' need Pillow to decode, "
            "and Pillow is not installed. Install it (pip install pillow) or convert the images to "
            ".npy / .pgm / .ppm."
        )
    if limit is not None:
        files = files[:limit]
    images = []
    for path in files:
        try:
            pixels = _read_image(path, preprocess)
            images.append(_preprocess_image(pixels, preprocess))
        except InputDataError:
            raise
        except Exception as err:  # a corrupt or odd file: name it
            raise InputDataError(f"{path}: could not read this image ({type(err).__name__}: {err}).") from err
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        by_shape = {}
        for path, img in zip(files, images):
            by_shape.setdefault(img.shape, path.name)
        raise InputDataError(
            f"{folder}: images end up with different shapes {dict((str(k), v) for k, v in by_shape.items())} "
            "after preprocessing. Declare Preprocess(size=..., crop=...) so they all match the model."
        )
    batch = np.stack(images).astype(preprocess.dtype, copy=False)
    return CalibrationSet({input_name: batch}, str(folder), {"mode": "all", "preprocess": preprocess.to_dict()})


def _read_image(path: Path, preprocess: Preprocess) -> np.ndarray:
    """Decode to float64 HxWxC in [0, 1] (or the raw .npy values times ``scale``)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False).astype(np.float64)
        if array.ndim == 2:
            array = array[:, :, None]
        elif array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
            array = array.transpose(1, 2, 0)  # CHW file -> HWC
        if array.ndim != 3:
            raise InputDataError(f"{path}: a .npy image must be HxW, HxWxC or CxHxW; got shape {array.shape}.")
        if preprocess.scale is not None:
            array = array * preprocess.scale
    elif suffix in (".pgm", ".ppm", ".pnm"):
        array = _read_netpbm(path)
    else:
        import PIL.Image

        with PIL.Image.open(path) as image:
            image = image.convert("RGB" if preprocess.color == "RGB" else "L")
            array = np.asarray(image, dtype=np.float64) / 255.0
        if array.ndim == 2:
            array = array[:, :, None]
    return _to_color(array, preprocess.color, path)


def _read_netpbm(path: Path) -> np.ndarray:
    """Binary PGM (P5) / PPM (P6) to HxWxC float64 in [0, 1]."""
    data = path.read_bytes()
    tokens, pos = [], 0
    while len(tokens) < 4:
        while pos < len(data) and chr(data[pos]).isspace():
            pos += 1
        if pos < len(data) and data[pos:pos + 1] == b"#":
            while pos < len(data) and data[pos:pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(data) and not chr(data[pos]).isspace():
            pos += 1
        if start == pos:
            raise InputDataError(f"{path}: truncated PGM/PPM header.")
        tokens.append(data[start:pos].decode("ascii"))
    pos += 1  # the single whitespace after maxval
    magic, width, height, maxval = tokens[0], int(tokens[1]), int(tokens[2]), int(tokens[3])
    if magic not in ("P5", "P6"):
        raise InputDataError(f"{path}: only binary PGM (P5) and PPM (P6) are read; this is {magic}.")
    channels = 1 if magic == "P5" else 3
    dtype = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
    count = width * height * channels
    pixels = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
    return pixels.reshape(height, width, channels).astype(np.float64) / maxval


def _to_color(array: np.ndarray, color: str, path: Path) -> np.ndarray:
    channels = array.shape[2]
    if color == "L":
        if channels == 1:
            return array
        if channels == 3:
            return (array @ np.array([0.299, 0.587, 0.114]))[:, :, None]  # ITU-R 601, as Pillow
    else:
        if channels == 3:
            return array
        if channels == 1:
            return np.repeat(array, 3, axis=2)
    raise InputDataError(f"{path}: has {channels} channels; expected 1 (grayscale) or 3 (RGB).")


def _preprocess_image(pixels: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    if preprocess.size is not None:
        pixels = _resize(pixels, _target_size(pixels.shape[:2], preprocess.size))
    if preprocess.crop is not None:
        pixels = _center_crop(pixels, preprocess.crop)
    if preprocess.mean is not None:
        pixels = pixels - np.asarray(preprocess.mean, dtype=np.float64).reshape(1, 1, -1)
    if preprocess.std is not None:
        pixels = pixels / np.asarray(preprocess.std, dtype=np.float64).reshape(1, 1, -1)
    if preprocess.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels)


def _target_size(hw: tuple[int, int], size) -> tuple[int, int]:
    height, width = hw
    if isinstance(size, int):
        if height <= width:
            return size, max(1, round(width * size / height))
        return max(1, round(height * size / width)), size
    return int(size[0]), int(size[1])


def _resize(pixels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (half-pixel centres, edge clamp), HxWxC float64, numpy only."""
    out_h, out_w = hw
    in_h, in_w = pixels.shape[:2]
    if (in_h, in_w) == (out_h, out_w):
        return pixels

    def coords(n_out, n_in):
        x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        x = np.clip(x, 0, n_in - 1)
        lo = np.floor(x).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, x - lo

    y0, y1, wy = coords(out_h, in_h)
    x0, x1, wx = coords(out_w, in_w)
    top = pixels[y0][:, x0] * (1 - wx)[None, :, None] + pixels[y0][:, x1] * wx[None, :, None]
    bottom = pixels[y1][:, x0] * (1 - wx)[None, :, None] + pixels[y1][:, x1] * wx[None, :, None]
    return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


def _center_crop(pixels: np.ndarray, crop) -> np.ndarray:
    ch, cw = (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))
    h, w = pixels.shape[:2]
    if ch > h or cw > w:
        raise InputDataError(
            f"center crop {ch}x{cw} is larger than the (resized) image {h}x{w}; resize first with size=."
        )
    top, left = (h - ch) // 2, (w - cw) // 2
    return pixels[top:top + ch, left:left + cw]


# --------------------------------------------------------------------------------------------
# One entry point
# --------------------------------------------------------------------------------------------


def load_calibration_set(
    source,
    model=None,
    *,
    num_samples: int | None = None,
    random: bool = False,
    seed: int = 0,
    preprocess: Preprocess | None = None,
    sample_axes=None,
) -> CalibrationSet:
    """Load, subset and validate a calibration set for a model.

    Args:
        source: A :class:`CalibrationSet`, an ``.npz`` path, a folder of images (needs
            ``preprocess``), a mapping of input name -> array, or an iterable of per-sample dicts.
        model: The model it is for (a path, or a :class:`workbench.model.LoadedModel`); when given
            the set is checked against its inputs (names, dtypes, shapes, NaN/Inf).
        num_samples: Keep this many samples (None keeps all).
        random: Pick them at random with ``seed`` instead of the first ones.
        seed: Random seed.
        preprocess: The preprocessing for an image folder.
        sample_axes: Input name -> the axis its samples run along, or None for an input fed as
            it is (a scalar, a recurrent state); wins over an ``.npz``'s ``__spec__``.

    Returns:
        The validated set.

    Raises:
        InputDataError: The data does not fit the model; the message names the input, the sample
            and the fix.
    """
    specs = _input_specs(model) if model is not None else None
    names = [s["name"] for s in specs] if specs is not None else None
    if isinstance(source, CalibrationSet):
        calib = source
        if sample_axes is not None:
            calib = CalibrationSet(calib.inputs, calib.source, calib.selection, {**calib.sample_axes, **sample_axes})
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.is_dir():
            if preprocess is None:
                raise InputDataError(
                    f"{path}: a folder of images needs a declared preprocessing; pass "
                    "preprocess=Preprocess(size=..., crop=..., mean=..., std=..., layout=..., color=...)."
                )
            if names is not None and len(names) != 1:
                raise InputDataError(f"{path}: images can feed a single-input model; this one has inputs {names}.")
            calib = from_image_folder(path, preprocess, names[0] if names else "input")
        else:
            calib = from_npz(path, names, sample_axes=sample_axes)
    elif isinstance(source, Mapping):
        calib = from_arrays(source, sample_axes=sample_axes)
    elif isinstance(source, Iterable):
        calib = from_iterable(source, input_names=names)
    else:
        raise InputDataError(
            f"cannot make a calibration set from a {type(source).__name__}; give an .npz path, an "
            "image folder, a dict of arrays or an iterable of dicts."
        )
    if num_samples is not None:
        calib = calib.subset(num_samples, random=random, seed=seed)
    if specs is not None:
        calib.check_against(specs)
    return calib


def _input_specs(model) -> list[dict]:
    if hasattr(model, "summary"):
        return list(model.summary.inputs)

    return list(load_model(model).summary.inputs)
