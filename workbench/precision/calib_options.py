"""Calibration methods, their settings (ONNX Runtime's defaults) and what a calibration returns.

The method names and defaults are ONNX Runtime's (``onnxruntime.quantization.calibrate``):
:class:`CalibrationOptions` validates a method and its settings as ORT's calibrators would, and
:class:`CalibrationResult` carries the ranges in the form ORT's quantizer takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

from workbench.errors import WorkbenchError

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "max": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
    "distribution": CalibrationMethod.Distribution,
}
HISTOGRAM_METHODS = ("entropy", "percentile", "distribution")

# ORT's create_calibrator defaults per method (onnxruntime/quantization/calibrate.py).
_ORT_DEFAULTS = {
    "minmax": {"symmetric": False},
    "entropy": {"symmetric": False, "num_bins": 128, "num_quantized_bins": 128},
    "percentile": {"symmetric": True, "num_bins": 2048, "percentile": 99.999},
    "distribution": {"symmetric": False, "num_bins": 2048, "scenario": "same"},
}


class CalibrationError(WorkbenchError, ValueError):
    """Calibration could not run or gave unusable ranges; the message says why and what to do."""


def canonical_method(method: str) -> str:
    """``"minmax"``/``"max"`` -> ``"minmax"``; other known names lower-cased.

    Raises:
        CalibrationError: An unknown method.
    """
    name = str(method).strip().lower()
    if name not in METHODS:
        raise CalibrationError(
            f"unknown calibration method {method!r}; choose one of minmax (or max), entropy, "
            "percentile, distribution."
        )
    return "minmax" if name == "max" else name


@dataclass(frozen=True)
class CalibrationOptions:
    """A calibration method and its settings, with ORT's defaults for anything left None.

    Attributes:
        method: ``minmax`` (alias ``max``), ``entropy``, ``percentile`` or ``distribution``.
        symmetric: Symmetrize the range (ORT's ``CalibTensorRangeSymmetric``; for ``percentile``
            it selects the histogram of ``|x|``, ORT's default there).
        num_bins: Histogram bins (entropy 128, percentile/distribution 2048 by default).
        num_quantized_bins: Entropy's quantized bins (128).
        percentile: Percentile kept by ``percentile`` (99.999).
        scenario: ``distribution``'s ``"same"`` or ``"p3"``.
    """

    method: str = "minmax"
    symmetric: bool | None = None
    num_bins: int | None = None
    num_quantized_bins: int | None = None
    percentile: float | None = None
    scenario: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "method", canonical_method(self.method))
        if self.num_bins is not None and int(self.num_bins) < 1:
            raise CalibrationError(f"num_bins must be at least 1, got {self.num_bins}")
        settings = self.resolved()
        if self.method == "distribution" and settings["num_bins"] < 512:
            raise CalibrationError("distribution calibration needs num_bins >= 512 (ORT's rule).")
        if self.method == "entropy" and settings["num_bins"] // 2 < settings["num_quantized_bins"] // 2:
            raise CalibrationError(
                f"entropy needs num_bins ({settings['num_bins']}) >= num_quantized_bins "
                f"({settings['num_quantized_bins']})."
            )
        if self.percentile is not None and not 0 <= float(self.percentile) <= 100:
            raise CalibrationError(f"percentile must be within [0, 100], got {self.percentile}")
        if self.scenario is not None and self.scenario not in ("same", "p3"):
            raise CalibrationError(f"scenario must be 'same' or 'p3', got {self.scenario!r}")

    @property
    def ort_method(self) -> CalibrationMethod:
        return METHODS[self.method]

    @property
    def uses_histogram(self) -> bool:
        return self.method in HISTOGRAM_METHODS

    def resolved(self) -> dict:
        """Every setting the method uses, ORT's default where this left None."""
        values = dict(_ORT_DEFAULTS[self.method])
        for key in ("symmetric", "num_bins", "num_quantized_bins", "percentile", "scenario"):
            value = getattr(self, key)
            if value is not None and key in values:
                values[key] = value
        return values

    def ort_extra_options(self) -> dict:
        """The ``extra_options`` ORT's ``create_calibrator`` takes for the same calibration."""
        return dict(self.resolved())

    def to_dict(self) -> dict:
        return {"method": self.method, **self.resolved()}

    def sameness(self) -> dict:
        """Whether these settings give the Q/DQ variant the same ranges as another method.

        With symmetric activations (zero points 0, as TensorRT needs), a range's scale is
        ``max(|low|, |high|) / 127``. ORT's ``entropy`` with ``num_bins // 2 == num_quantized_bins
        // 2`` (its defaults, 128/128) has a single candidate threshold, the histogram's edges,
        clipped to the min/max range: minmax's range. ORT's ``distribution`` range is the
        histogram's edges, ``+-max |x|``, at every setting: minmax's scale.

        Returns:
            ``{"same_ranges_as": method or None, "why": ..., "differs_with": ...}``; the last two
            only when there is a match. ``differs_with`` names the settings that make the method
            differ, or says that none does.
        """
        settings = self.resolved()
        if self.method == "entropy" and settings["num_bins"] // 2 == settings["num_quantized_bins"] // 2:
            return {
                "same_ranges_as": "minmax",
                "why": (f"entropy with num_bins {settings['num_bins']} and num_quantized_bins "
                        f"{settings['num_quantized_bins']} has one candidate threshold, the histogram's own "
                        "edges, which ORT clips to the min/max range"),
                "differs_with": (f"num_bins above num_quantized_bins ({settings['num_quantized_bins']}), e.g. "
                                 "num_bins=2048 (--num-bins 2048)"),
            }
        if self.method == "distribution":
            return {
                "same_ranges_as": "minmax",
                "why": ("ORT's distribution range is its histogram's edges, +-max|x|; with symmetric activation "
                        "scales (zero points 0) that is minmax's scale"),
                "differs_with": ("no setting: num_bins and scenario change only the mean/std ORT's own float8 "
                                 "path uses, which the workbench does not; for ranges that clip outliers use "
                                 "percentile (--percentile) or entropy with --num-bins 2048"),
            }
        return {"same_ranges_as": None}


@dataclass
class CalibrationResult:
    """Ranges from :func:`calibrate`.

    Attributes:
        tensors_range: Tensor name -> range, as ORT's calibrators return it.
        options: The method and settings used.
        tensors: The calibrated tensor names.
        num_samples: Samples run.
        batch_size: Samples per run.
        seconds: Wall time of the whole calibration (every pass, post-processing included).
        pass_seconds: Wall time per pass (``ranges``, ``tails``, ``histograms``).
        histograms: Tensor name -> (counts, edges) for tensors histogrammed in full.
    """

    tensors_range: TensorsData
    options: CalibrationOptions
    tensors: list[str]
    num_samples: int
    batch_size: int
    seconds: float
    pass_seconds: dict = field(default_factory=dict)
    histograms: dict = field(default_factory=dict)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Tensor name -> (low, high) as floats."""
        return {k: (float(np.ravel(v.range_value[0])[0]), float(np.ravel(v.range_value[1])[0]))
                for k, v in self.tensors_range.items()}
