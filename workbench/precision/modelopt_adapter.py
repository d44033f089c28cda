"""NVIDIA ModelOpt (``modelopt.onnx.quantization.quantize``) as an optional INT8/FP8 path.

ModelOpt places Q/DQ with TensorRT-specific patterns. It is heavy (torch, CuPy,
onnxruntime-gpu) and optional (``pip install "trt-workbench[modelopt]"``); nothing here imports it
until a variant asks for it. Two of its defaults are overridden on purpose:

- with no calibration data ModelOpt calibrates on **random** inputs without complaint; here a
  missing calibration set is refused;
- ModelOpt casts everything it does not quantize to **FP16** (``high_precision_dtype="fp16"``);
  here the rest stays FP32 unless the recipe asks for ``high_precision="fp16"``/``"bf16"``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

MODULE = "modelopt.onnx.quantization"
# recipe calibration method -> ModelOpt's name (ModelOpt int8/fp8 offers 'max' and 'entropy')
_METHODS = {"minmax": "max", "entropy": "entropy"}


class ModelOptError(WorkbenchError, ValueError):
    """ModelOpt cannot be used as asked; the message says why and what to do."""


def modelopt_available() -> bool:
    """Whether ``modelopt.onnx.quantization`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("modelopt") is not None and importlib.util.find_spec(MODULE) is not None
    except (ImportError, ValueError):
        return False


def modelopt_version() -> str | None:
    """The installed nvidia-modelopt version, or None."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("nvidia-modelopt")
    except (ImportError, PackageNotFoundError):
        return None


def modelopt_kwargs(model_path, recipe, calib, output_path) -> dict[str, Any]:
    """The keyword arguments for ``modelopt.onnx.quantization.quantize`` that carry out ``recipe``.

    Args:
        model_path: The FP32 ONNX file.
        recipe: An int8/fp8 :class:`workbench.precision.recipe.Recipe`.
        calib: The calibration set (required).
        output_path: Where ModelOpt writes the quantized model.

    Returns:
        The arguments (calibration data as a dict of arrays, FP32 for the unquantized parts
        unless the recipe asks otherwise, excluded node names as anchored regular expressions).

    Raises:
        ModelOptError: No calibration data, a precision or method ModelOpt does not offer.
    """
    if calib is None:
        raise ModelOptError(
            "ModelOpt needs calibration data: without it, it silently calibrates on random inputs. "
            "Pass calib= (an .npz with one array per model input, or a CalibrationSet)."
        )
    if recipe.precision not in ("int8", "fp8"):
        raise ModelOptError(f"the ModelOpt path makes int8 or fp8 variants, not {recipe.precision}.")
    method = _METHODS.get(recipe.method)
    if method is None:
        raise ModelOptError(
            f"ModelOpt calibrates {recipe.precision} with 'max' (minmax) or 'entropy', not "
            f"'{recipe.method}'. Choose one of those, or tool='onnxruntime'."
        )
    inputs = calib.inputs if hasattr(calib, "inputs") else dict(calib)
    kwargs = {
        "onnx_path": str(model_path),
        "quantize_mode": recipe.precision,
        "calibration_data": {name: array for name, array in inputs.items()},
        "calibration_method": method,
        "output_path": str(output_path),
        "high_precision_dtype": recipe.high_precision,
        "nodes_to_exclude": [f"^{re.escape(name)}$" for name in recipe.exclude_nodes] or None,
        "op_types_to_exclude": list(recipe.exclude_op_types) or None,
        "op_types_to_quantize": list(recipe.op_types_to_quantize) if recipe.op_types_to_quantize else None,
        "op_types_to_exclude_fp16": list(recipe.keep_fp32_op_types) or None,
    }
    return {k: v for k, v in kwargs.items() if v is not None}


def run_modelopt(model_path, recipe, calib, output_path) -> dict:
    """Quantize with ModelOpt into ``output_path``.

    Returns:
        ``{"tool": "modelopt", "version": ..., "arguments": {...}}`` (arrays left out).

    Raises:
        ModelOptError: ModelOpt is not installed, refuses the arguments, or writes nothing.
    """
    kwargs = modelopt_kwargs(model_path, recipe, calib, output_path)
    if not modelopt_available():
        raise ModelOptError(
            "nvidia-modelopt is not installed. Install it (pip install 'trt-workbench[modelopt]', "
            "needs torch and onnxruntime-gpu) or use tool='onnxruntime'."
        )
    quantize = importlib.import_module(MODULE).quantize
    accepted = inspect.signature(quantize).parameters
    if "high_precision_dtype" not in accepted and recipe.high_precision != "fp32":
        raise ModelOptError("this ModelOpt version has no high_precision_dtype; upgrade it for fp16 mixed precision.")
    dropped = sorted(k for k in kwargs if k not in accepted and not any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in accepted.values()))
    call = {k: v for k, v in kwargs.items() if k not in dropped}
    quantize(**call)
    if not Path(output_path).is_file():
        raise ModelOptError(f"ModelOpt finished without writing {output_path}; see its log above.")
    shown = {k: v for k, v in call.items() if k != "calibration_data"}
    return {"tool": "modelopt", "version": modelopt_version(), "arguments": shown, "ignored_arguments": dropped}
