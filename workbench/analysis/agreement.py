"""How closely a variant's outputs follow a reference's, output by output, over a whole data set.

Polygraphy's :class:`~polygraphy.comparator.SimpleCompareFunc` per batch (so the figures and the
pass/fail verdict are the ones ``polygraphy run --atol --rtol`` reports), combined exactly across
batches by :class:`OutputStats`: absolute and relative error, cosine similarity (per sample and
over the whole tensor), SQNR in dB, and the count of NaN/Inf values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from workbench.analysis.metrics import cosine_per_sample, sqnr_db


@dataclass
class OutputAgreement:
    """How closely one output of the variant follows the reference's, over the whole data set.

    Attributes:
        name: Output name.
        shape: Shape of one sample's output (without the batch dimension).
        dtype: The variant's output dtype.
        max_abs_error, mean_abs_error: ``|variant - reference|`` statistics over all elements.
        max_rel_error, mean_rel_error: ``|variant - reference| / |reference|`` (Polygraphy's
            definition: reference zeros get a 2.2e-16 epsilon).
        cosine_mean, cosine_min: Cosine similarity of each sample's output, averaged / worst.
        cosine: Cosine similarity of the whole output tensor.
        sqnr_db: Signal-to-quantization-noise ratio in dB; ``inf`` for identical outputs,
            ``nan`` when the variant produced NaN/Inf.
        nonfinite: Number of NaN/Inf values the variant produced.
        passed: Polygraphy's verdict for ``check_error_stat`` with ``atol``/``rtol``.
    """

    name: str
    shape: list
    dtype: str
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    mean_rel_error: float
    cosine_mean: float
    cosine_min: float
    cosine: float
    sqnr_db: float
    nonfinite: int
    passed: bool

    @property
    def identical(self) -> bool:
        """Whether the variant's output equals the reference's exactly."""
        return self.max_abs_error == 0.0 and self.nonfinite == 0

    def to_dict(self) -> dict:
        """JSON-safe figures: non-finite numbers become None (see ``identical``)."""
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "max_abs_error": json_float(self.max_abs_error),
            "mean_abs_error": json_float(self.mean_abs_error),
            "max_rel_error": json_float(self.max_rel_error),
            "mean_rel_error": json_float(self.mean_rel_error),
            "cosine_mean": json_float(self.cosine_mean),
            "cosine_min": json_float(self.cosine_min),
            "cosine": json_float(self.cosine),
            "sqnr_db": json_float(self.sqnr_db),
            "identical": self.identical,
            "nonfinite": int(self.nonfinite),
            "passed": bool(self.passed),
        }


def json_float(value) -> float | None:
    """``value`` as a float, or None if it is None, NaN or infinite (strict JSON has neither)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def polygraphy_compare(variant: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *,
                       atol: float, rtol: float, check_error_stat: str) -> dict:
    """Polygraphy's simple comparison of one batch, quietly.

    Args:
        variant, reference: Output name -> array, same names and shapes.
        atol, rtol, check_error_stat: Polygraphy's ``SimpleCompareFunc`` settings.

    Returns:
        Output name -> :class:`polygraphy.comparator.OutputCompareResult` (``bool()`` is the
        verdict; ``max_absdiff``, ``mean_reldiff``... the statistics).
    """
    from polygraphy.comparator import IterationResult, SimpleCompareFunc
    from polygraphy.logger import G_LOGGER

    compare = SimpleCompareFunc(check_shapes=True, atol=atol, rtol=rtol,
                                check_error_stat=check_error_stat)
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL), np.errstate(all="ignore"):
        return dict(compare(IterationResult(dict(variant), runner_name="variant"),
                            IterationResult(dict(reference), runner_name="reference")))


class OutputStats:
    """Running sums of one output's agreement figures, combined exactly across batches."""

    def __init__(self, name: str, shape: list, dtype: str):
        self.name, self.shape, self.dtype = name, shape, dtype
        self.elements = 0
        self.max_abs = self.max_rel = 0.0
        self.sum_abs = self.sum_rel = 0.0
        self.sum_signal = self.sum_noise = 0.0
        self.dot = self.norm_v = self.norm_r = 0.0
        self.cos_sum, self.cos_min, self.cos_count = 0.0, float("inf"), 0
        self.nonfinite = 0
        self.elemwise_passed = True

    def add(self, variant: np.ndarray, reference: np.ndarray, verdict) -> None:
        n = variant.size
        self.elements += n
        self.max_abs = _nanmax(self.max_abs, verdict.max_absdiff)
        self.max_rel = _nanmax(self.max_rel, verdict.max_reldiff)
        self.sum_abs += verdict.mean_absdiff * n
        self.sum_rel += verdict.mean_reldiff * n
        self.elemwise_passed &= bool(verdict)
        v, r = variant.astype(np.float64), reference.astype(np.float64)
        self.nonfinite += int(np.size(v) - np.count_nonzero(np.isfinite(v)))
        with np.errstate(all="ignore"):  # NaN/Inf outputs propagate into the figures
            self._add_sums(v, r)

    def _add_sums(self, v: np.ndarray, r: np.ndarray) -> None:
        self.sum_signal += float(np.sum(r * r))
        self.sum_noise += float(np.sum((v - r) ** 2))
        self.dot += float(np.sum(v * r))
        self.norm_v += float(np.sum(v * v))
        self.norm_r += float(np.sum(r * r))
        if v.ndim and v.shape[0]:
            cos = cosine_per_sample(v, r)
            self.cos_sum += float(cos.sum())
            self.cos_min = _nanmin(self.cos_min, cos.min())
            self.cos_count += cos.size

    def result(self, atol: float, rtol: float, check_error_stat: str) -> OutputAgreement:
        from polygraphy.comparator import SimpleThreshold

        mean_abs = self.sum_abs / self.elements if self.elements else float("nan")
        mean_rel = self.sum_rel / self.elements if self.elements else float("nan")
        if check_error_stat == "elemwise":
            passed = self.elemwise_passed
        else:  # Polygraphy's own threshold on the whole-data-set statistics
            passed = SimpleThreshold(check_error_stat, atol, rtol).passed({
                "max_absdiff": self.max_abs, "max_reldiff": self.max_rel,
                "mean_absdiff": mean_abs, "mean_reldiff": mean_rel,
            })
        if not all(map(math.isfinite, (self.dot, self.norm_v, self.norm_r))):
            cosine = float("nan")
        elif self.norm_v == 0 and self.norm_r == 0:
            cosine = 1.0
        elif self.norm_v == 0 or self.norm_r == 0:
            cosine = 0.0
        else:
            cosine = max(-1.0, min(1.0, self.dot / math.sqrt(self.norm_v * self.norm_r)))
        return OutputAgreement(
            name=self.name, shape=self.shape, dtype=self.dtype,
            max_abs_error=float(self.max_abs), mean_abs_error=float(mean_abs),
            max_rel_error=float(self.max_rel), mean_rel_error=float(mean_rel),
            cosine_mean=self.cos_sum / self.cos_count if self.cos_count else float("nan"),
            cosine_min=self.cos_min if self.cos_count else float("nan"),
            cosine=float(cosine),
            sqnr_db=sqnr_db(self.sum_signal, self.sum_noise),
            nonfinite=self.nonfinite, passed=bool(passed),
        )


def _nanmax(current: float, value) -> float:
    """``max`` that propagates NaN (a NaN error anywhere makes the statistic NaN)."""
    value = float(value)
    return float("nan") if math.isnan(current) or math.isnan(value) else max(current, value)


def _nanmin(current: float, value) -> float:
    """``min`` that propagates NaN."""
    value = float(value)
    return float("nan") if math.isnan(current) or math.isnan(value) else min(current, value)
