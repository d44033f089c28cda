"""Deprecated alias of :mod:`workbench.backends.tensorrt.trt_json`, kept for one release (removed in 0.3)."""

import warnings

import workbench.backends.tensorrt.trt_json as _moved

warnings.warn("workbench.backends.trt_json moved to workbench.backends.tensorrt.trt_json; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
