"""Deprecated alias of :mod:`workbench.doctor.engine_join`, kept for one release (removed in 0.3)."""

import warnings

import workbench.doctor.engine_join as _moved

warnings.warn("workbench.analysis.doctor_trt moved to workbench.doctor.engine_join; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
