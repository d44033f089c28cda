"""Deprecated alias of :mod:`workbench.doctor.teaching`, kept for one release (removed in 0.3)."""

import warnings

import workbench.doctor.teaching as _moved

warnings.warn("workbench.analysis.doctor_teaching moved to workbench.doctor.teaching; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
