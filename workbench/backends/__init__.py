"""Backends: ONNX Runtime (everywhere), TensorRT (NVIDIA GPUs), and TensorRT JSON imports.

Backends are imported lazily so that ``import workbench`` never needs TensorRT. The readers of
TensorRT's JSON exports never import TensorRT either; their public names (``precision_warnings``)
load on first use (PEP 562).
"""

from __future__ import annotations

from workbench._lazy import lazy_exports
from workbench.backends.availability import (
    TENSORRT_FIX,
    available_backends,
    tensorrt_status,
)
from workbench.backends.base import Backend, BackendUnavailable, BenchmarkResult, Engine
from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend

# public name -> module that defines it; resolved on first use
_EXPORTS = {
    "precision_warnings": "workbench.backends.tensorrt.trt_json_precision",
}

__getattr__, __dir__, _lazy_names = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Backend",
    "BackendUnavailable",
    "BenchmarkResult",
    "Engine",
    "OnnxRuntimeBackend",
    "TENSORRT_FIX",
    "available_backends",
    "get_backend",
    "tensorrt_status",
    *_lazy_names,
]


def get_backend(name: str = "onnxruntime") -> Backend:
    """A backend by name.

    Args:
        name: ``"onnxruntime"`` or ``"tensorrt"``.

    Returns:
        The backend.

    Raises:
        BackendUnavailable: The backend cannot run here; the message says why and the fix.
        ValueError: Unknown name.
    """
    if name in ("onnxruntime", "ort"):
        return OnnxRuntimeBackend()
    if name in ("tensorrt", "trt"):
        problem = tensorrt_status()
        if problem:
            raise BackendUnavailable(problem)
        from workbench.backends.tensorrt.runtime import (
            TensorRTBackend,  # imports tensorrt: only when asked for
        )

        return TensorRTBackend()
    raise ValueError(f"unknown backend {name!r}; expected 'onnxruntime' or 'tensorrt'")
