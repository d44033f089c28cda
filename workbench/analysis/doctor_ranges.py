"""Deprecated alias of :mod:`workbench.doctor.ranges`, kept for one release (removed in 0.3)."""

import warnings

import workbench.doctor.ranges as _moved

warnings.warn("workbench.analysis.doctor_ranges moved to workbench.doctor.ranges; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
