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
import tempfile
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
        model_path: The FP32 ONNX file ModelOpt reads (a staged copy: see :func:`run_modelopt`).
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


def unaccepted_arguments(kwargs, parameters) -> list[str]:
    """The arguments ``quantize`` does not name among its parameters.

    ModelOpt's ``quantize`` ends in ``**kwargs``, so an argument an older (or newer) version does
    not know is swallowed there without a word: each must be named by the signature.

    Args:
        kwargs: The arguments the workbench would pass.
        parameters: ``inspect.signature(quantize).parameters``.

    Returns:
        The names not among the named parameters, sorted.
    """
    named = {name for name, p in parameters.items()
             if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}
    return sorted(k for k in kwargs if k not in named)


def _stage(model, folder: Path) -> Path:
    """Write the model ModelOpt will read into ``folder`` (ModelOpt and ORT's quantization tools
    write beside their input: ``*-inferred.onnx``, intermediate models; never beside the user's file).

    Args:
        model: A path (external data read with it) or an ``onnx.ModelProto``.
        folder: A temporary folder of the workbench's.

    Returns:
        The staged model's path.
    """
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    staged = folder / "model.onnx"
    large = proto.ByteSize() >= 2**31 - 1
    onnx.save_model(proto, str(staged), save_as_external_data=large, location="model.onnx.data")
    return staged


def run_modelopt(model, recipe, calib, output_path) -> dict:
    """Quantize with ModelOpt into ``output_path``, on a copy of the model in a temporary folder.

    Args:
        model: The FP32 model: a path (never written: ModelOpt runs on a copy) or an
            ``onnx.ModelProto`` (the normalized model :func:`workbench.model.load_model` gives).
        recipe: An int8/fp8 recipe.
        calib: The calibration set (required).
        output_path: Where the quantized model goes.

    Returns:
        ``{"tool": "modelopt", "version": ..., "arguments": {...}, "ignored_arguments": []}``
        (arrays and the temporary paths left out; nothing is ever ignored: see Raises).

    Raises:
        ModelOptError: ModelOpt is not installed, the installed version does not take an argument
            the recipe needs (it would swallow it silently), or it writes nothing.
    """
    kwargs = modelopt_kwargs("model.onnx", recipe, calib, output_path)
    if not modelopt_available():
        raise ModelOptError(
            "nvidia-modelopt is not installed. Install it (pip install 'trt-workbench[modelopt]', "
            "needs torch and onnxruntime-gpu) or use tool='onnxruntime'."
        )
    quantize = importlib.import_module(MODULE).quantize
    missing = unaccepted_arguments(kwargs, inspect.signature(quantize).parameters)
    if missing:
        raise ModelOptError(
            f"nvidia-modelopt {modelopt_version()} does not take {missing}, which this recipe needs (it would "
            "swallow them in **kwargs and ignore them). Upgrade nvidia-modelopt, or use tool='onnxruntime'.")
    with tempfile.TemporaryDirectory(prefix="wb_modelopt_") as tmp:
        folder = Path(tmp)
        staged_out = folder / "quantized.onnx"
        call = {**kwargs, "onnx_path": str(_stage(model, folder)), "output_path": str(staged_out)}
        quantize(**call)
        if not staged_out.is_file():
            raise ModelOptError("ModelOpt finished without writing its output; see its log above.")
        _save_output(staged_out, Path(output_path))
    shown = {k: v for k, v in kwargs.items() if k not in ("calibration_data", "onnx_path", "output_path")}
    return {"tool": "modelopt", "version": modelopt_version(), "arguments": shown, "ignored_arguments": []}


def _save_output(staged: Path, output_path: Path) -> None:
    """ModelOpt's output, moved from its temporary folder to ``output_path`` (external data too)."""
    import onnx

    model = onnx.load(str(staged))
    large = model.ByteSize() >= 2**31 - 1
    output_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(output_path), save_as_external_data=large,
                    location=f"{output_path.name}.data")
