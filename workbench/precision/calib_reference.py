"""ONNX Runtime's own calibration, for reference: its calibrator, its model preparation, and a
comparison of two sets of ranges (the tests and ``bench/bench_calibration.py`` check the fast
calibrator against ORT's with these)."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnxruntime.quantization.calibrate import (
    CalibrationDataReader,
    TensorsData,
    create_calibrator,
)

from workbench.backends.onnxruntime.session import MAX_PROTO_BYTES
from workbench.precision.calib_graph import fixed_batch_size
from workbench.precision.calib_options import CalibrationOptions
from workbench.precision.calib_run import iter_batches


class ArrayReader(CalibrationDataReader):
    """An ORT ``CalibrationDataReader`` over in-memory batches."""

    def __init__(self, calib, batch_size: int):
        self._calib, self._batch_size = calib, batch_size
        self.rewind()

    def rewind(self) -> None:
        self._iter, self._total = iter_batches(self._calib, self._batch_size)

    def get_next(self):
        return next(self._iter, None)

    def __len__(self):
        return -(-self._total // self._batch_size)


def ort_calibrate(
    model: onnx.ModelProto,
    calib,
    options: CalibrationOptions | str = "minmax",
    *,
    op_types: Sequence[str] | None = None,
    batch_size: int = 16,
) -> TensorsData:
    """ORT's own calibrator (``create_calibrator`` + ``collect_data`` + ``compute_data``) on the same data.

    Args:
        model: A shape-inferred model (saved to a temporary file for ORT).
        calib: The samples (see :func:`calibrate`).
        options: The method and settings.
        op_types: ORT's ``op_types_to_calibrate``.
        batch_size: Samples per run (histogram methods need it to divide the sample count: ORT
            stacks all batches into one array).

    Returns:
        ORT's ranges.
    """
    options = CalibrationOptions(options) if isinstance(options, str) else options
    batch_size = fixed_batch_size(model) or batch_size
    large = model.ByteSize() >= MAX_PROTO_BYTES
    with tempfile.TemporaryDirectory(prefix="wb_ortcal_") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save_model(model, str(path), save_as_external_data=large)
        calibrator = create_calibrator(
            path,
            list(op_types or []),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=options.ort_method,
            use_external_data_format=large,
            extra_options=options.ort_extra_options(),
        )
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            calibrator.collect_data(ArrayReader(calib, batch_size))
            result = calibrator.compute_data()
        del calibrator
    return result


def compare_ranges(ours: TensorsData, theirs: TensorsData, *, fields: Sequence[str] = ()) -> dict:
    """How far two sets of ranges are apart.

    Args:
        ours: Ranges to check.
        theirs: Reference ranges (ORT's).
        fields: Other TensorData fields to compare too (``hist``, ``hist_edges``, ``avg``, ``std``).

    Returns:
        ``{"tensors", "missing", "extra", "exact", "max_abs_diff", "max_rel_diff", "worst",
        "fields_equal"}``; ``exact`` is True when every tensor's low and high are equal (and the
        tensor sets match); ``fields_equal`` when every requested field is equal too.
    """
    ours_keys, theirs_keys = set(ours.keys()), set(theirs.keys())
    worst, max_abs, max_rel, exact = None, 0.0, 0.0, ours_keys == theirs_keys
    fields_equal = True
    for name in sorted(ours_keys & theirs_keys):
        a = np.concatenate([np.ravel(x).astype(np.float64) for x in ours[name].range_value])
        b = np.concatenate([np.ravel(x).astype(np.float64) for x in theirs[name].range_value])
        diff, rel = _range_difference(a, b)
        if diff != 0.0:  # 0 only when the ranges are equal
            exact = False
        if diff > max_abs:
            max_abs, worst = diff, name
        max_rel = max(max_rel, rel)
        for key in fields:
            x, y = getattr(ours[name], key, None), getattr(theirs[name], key, None)
            if x is None or y is None or not np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True):
                fields_equal = False
    return {
        "tensors": len(theirs_keys),
        "missing": sorted(theirs_keys - ours_keys),
        "extra": sorted(ours_keys - theirs_keys),
        "exact": exact,
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "worst": worst,
        "fields_equal": fields_equal,
    }


def _range_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Largest absolute and relative difference of two flattened ranges (``b`` the reference).

    Ranges of different sizes (per-channel against per-tensor), and NaN or infinite values
    that differ, are infinitely far apart: a broken range must never look close.
    """
    if np.array_equal(a, b):
        return 0.0, 0.0
    if a.shape != b.shape:
        return float("inf"), float("inf")
    with np.errstate(invalid="ignore"):
        diff = float(np.max(np.abs(a - b)))
        rel = diff / max(float(np.max(np.abs(b))), 1e-12)
    if np.isnan(diff) or np.isnan(rel) or not np.isfinite(a).all() or not np.isfinite(b).all():
        return float("inf"), float("inf")
    return diff, rel


def prepare_for_calibration(model: onnx.ModelProto, *, fp8: bool = False) -> onnx.ModelProto:
    """The model ORT's ``quantize_static`` calibrates: shape-inferred, opset updated.

    Mirrors ``load_model_with_shape_infer`` + ``update_opset_version``: opset raised to 11 when
    below 10, and to 19 for float8 (``fp8=True``).
    """
    from onnxruntime.quantization.quant_utils import QuantType, update_opset_version

    with tempfile.TemporaryDirectory(prefix="wb_prep_") as tmp:
        path = Path(tmp) / "model.onnx"
        large = model.ByteSize() >= MAX_PROTO_BYTES
        onnx.save_model(model, str(path), save_as_external_data=large)
        inferred = Path(tmp) / "inferred.onnx"
        onnx.shape_inference.infer_shapes_path(str(path), str(inferred))
        prepared = onnx.load(str(inferred))
    qtype = QuantType.QFLOAT8E4M3FN if fp8 else QuantType.QInt8
    with contextlib.redirect_stdout(io.StringIO()):
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            return update_opset_version(prepared, qtype, qtype)
        finally:
            logging.disable(previous)
