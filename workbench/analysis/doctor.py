"""Deprecated alias of :mod:`workbench.doctor.diagnose`, kept for one release (removed in 0.3)."""

import warnings

import workbench.doctor.diagnose as _moved

warnings.warn("workbench.analysis.doctor moved to workbench.doctor.diagnose; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
