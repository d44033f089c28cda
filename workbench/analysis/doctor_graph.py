"""Deprecated alias of :mod:`workbench.doctor.graph`, kept for one release (removed in 0.3)."""

import warnings

import workbench.doctor.graph as _moved

warnings.warn("workbench.analysis.doctor_graph moved to workbench.doctor.graph; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
