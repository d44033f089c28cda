"""Deprecated alias of :mod:`workbench.backends.tensorrt.runtime`, kept for one release (removed in 0.3)."""

import warnings

import workbench.backends.tensorrt.runtime as _moved

warnings.warn("workbench.backends.tensorrt_backend moved to workbench.backends.tensorrt.runtime; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
