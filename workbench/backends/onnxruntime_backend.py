"""Deprecated alias of :mod:`workbench.backends.onnxruntime.engine`, kept for one release (removed in 0.3)."""

import warnings

import workbench.backends.onnxruntime.engine as _moved

warnings.warn("workbench.backends.onnxruntime_backend moved to workbench.backends.onnxruntime.engine; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
