"""Deprecated alias of :mod:`workbench.workflows.quantize`, kept for one release (removed in 0.3)."""

import warnings

import workbench.workflows.quantize as _moved

warnings.warn("workbench.precision.command moved to workbench.workflows.quantize; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
