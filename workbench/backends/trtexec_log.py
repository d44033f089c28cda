"""Deprecated alias of :mod:`workbench.backends.tensorrt.trtexec_log`, kept for one release (removed in 0.3)."""

import warnings

import workbench.backends.tensorrt.trtexec_log as _moved

warnings.warn("workbench.backends.trtexec_log moved to workbench.backends.tensorrt.trtexec_log; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_moved, name)
