"""Deprecated alias of :mod:`workbench.tables.engine_table`, kept for one release (removed in 0.3)."""

import warnings

import workbench.tables.engine_table as _moved

warnings.warn("workbench.analysis.engine_table moved to workbench.tables.engine_table; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
