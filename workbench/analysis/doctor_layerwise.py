"""Deprecated alias of :mod:`workbench.doctor.layerwise`, kept for one release (removed in 0.3)."""

import warnings

import workbench.doctor.layerwise as _moved

warnings.warn("workbench.analysis.doctor_layerwise moved to workbench.doctor.layerwise; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
