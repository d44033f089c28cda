"""Deprecated alias of :mod:`workbench.tables.results`, kept for one release (removed in 0.3)."""

import warnings

import workbench.tables.results as _moved

warnings.warn("workbench.analysis.results moved to workbench.tables.results; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
