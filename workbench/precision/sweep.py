"""Deprecated alias of :mod:`workbench.workflows.sweep`, kept for one release (removed in 0.3)."""

import warnings

import workbench.workflows.sweep as _moved

warnings.warn("workbench.precision.sweep moved to workbench.workflows.sweep; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
