"""Which backends can run on this machine, and why not (in one line with the fix)."""

from __future__ import annotations

import importlib.util

TENSORRT_FIX = (
    "install the gpu extra on an NVIDIA GPU machine (pip install -e '.[gpu]') or use the Docker "
    "image; meanwhile the notebooks use ONNX Runtime, and TensorRT engines built elsewhere can "
    "be analysed with workbench.import_trt()."
)

def tensorrt_status() -> str | None:
    """Why the TensorRT backend cannot run here, in one line with the fix; None if it can."""
    if importlib.util.find_spec("tensorrt") is None:
        return f"TensorRT is not installed: {TENSORRT_FIX}"
    try:
        import tensorrt  # noqa: F401  (import errors say which library is missing)
    except Exception as err:  # a broken install raises all sorts of errors
        return f"TensorRT is installed but does not import ({err}): {TENSORRT_FIX}"
    if importlib.util.find_spec("pycuda") is None:
        return f"pycuda is not installed: {TENSORRT_FIX}"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            return f"no NVIDIA GPU is visible to CUDA: {TENSORRT_FIX}"
    except Exception as err:
        return f"CUDA is not usable ({err}): {TENSORRT_FIX}"
    return None

def available_backends() -> list[str]:
    """Names of the backends that can run on this machine, best first."""
    names = ["onnxruntime"]
    if tensorrt_status() is None:
        names.insert(0, "tensorrt")
    return names
