"""Precisions and memory formats in TensorRT's JSON, and layers left in FP32.

TensorRT names a tensor's type and layout in one text (``"Row major linear FP32"``,
``"Thirty-two wide channel vectorized row major Int8 format"``) or, since TensorRT 11, in
separate ``Datatype`` and ``Format`` keys; the helpers here normalise both, and
:func:`precision_warnings` reads the resulting layer table for layers that kept FP32.
"""

from __future__ import annotations

import re
from typing import Mapping

import pandas as pd

_DTYPE_TOKENS = {
    "fp32": "FP32",
    "float32": "FP32",
    "float": "FP32",
    "kfloat": "FP32",
    "fp16": "FP16",
    "float16": "FP16",
    "half": "FP16",
    "khalf": "FP16",
    "bf16": "BF16",
    "bfloat16": "BF16",
    "kbf16": "BF16",
    "fp8": "FP8",
    "kfp8": "FP8",
    "e4m3": "FP8",
    "fp4": "FP4",
    "kfp4": "FP4",
    "e2m1": "FP4",
    "int4": "INT4",
    "kint4": "INT4",
    "int8": "INT8",
    "kint8": "INT8",
    "uint8": "UINT8",
    "kuint8": "UINT8",
    "int32": "INT32",
    "kint32": "INT32",
    "int64": "INT64",
    "kint64": "INT64",
    "bool": "BOOL",
    "kbool": "BOOL",
}
_DTYPE_PATTERN = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(sorted(_DTYPE_TOKENS, key=len, reverse=True)) + r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_VECTOR_WIDTHS = {"two": 2, "four": 4, "eight": 8, "sixteen": 16, "thirty-two": 32}
_COMPUTE_LAYER_TYPE = re.compile(
    r"conv|gemm|matmul|matrixmultiply|fullyconnected|deconv|einsum|attention|mha|rnn|lstm",
    re.IGNORECASE,
)


def normalize_dtype(text: str | None) -> str | None:
    """Extract the data type named in TensorRT's text.

    Args:
        text: ``"Format/Datatype"`` text (``"Row major linear FP32"``), a ``Datatype`` value
            (``"FP16"``, ``"kHALF"``) or a weights ``Type`` (``"Int8"``, ``"Half"``, ``"Float"``).

    Returns:
        ``FP32``, ``FP16``, ``BF16``, ``FP8``, ``FP4``, ``INT8``, ``INT4``, ``UINT8``, ``INT32``,
        ``INT64`` or ``BOOL``; None when no known type is named.
    """
    if not text:
        return None
    match = _DTYPE_PATTERN.search(str(text))
    return _DTYPE_TOKENS[match.group(1).lower()] if match else None


def format_without_dtype(text: str | None) -> str | None:
    """Return the memory-layout part of ``"Format/Datatype"`` text.

    Args:
        text: e.g. ``"Channel major FP16 format where channel % 8 == 0"``.

    Returns:
        The text without the data type and the word "format" (``"Channel major where
        channel % 8 == 0"``); None for empty text.
    """
    if not text:
        return None
    stripped = _DTYPE_PATTERN.sub(" ", str(text))
    stripped = re.sub(r"\bformat\b", " ", stripped, flags=re.IGNORECASE)
    stripped = " ".join(stripped.split())
    return stripped or None


def layout_label(format_text: str | None, rank: int | None = None) -> str | None:
    """Name a layout the way TensorRT's ``TensorFormat`` enum does.

    Args:
        format_text: Layout text (``"Thirty-two wide channel vectorized row major"``) or an
            enum-like value (``"kCHW32"``, ``"LINEAR"``).
        rank: Number of dimensions when known; 5-D tensors get ``CDHW``/``DHWC`` labels.

    Returns:
        ``LINEAR``, ``CHW2/4/8/16/32``, ``HWC``, ``HWC4/8/16`` (``CDHW32``, ``DHWC8`` for 5-D),
        or None when the text is not recognised.
    """
    if not format_text:
        return None
    text = format_text.strip()
    if re.fullmatch(r"k?[A-Z0-9_]+", text):
        return text[1:] if text.startswith("k") else text
    lower = text.lower()
    five_d = rank == 5
    vectorized = re.search(r"([a-z-]+) wide channel vectorized", lower)
    if vectorized and vectorized.group(1) in _VECTOR_WIDTHS:
        return ("CDHW" if five_d else "CHW") + str(_VECTOR_WIDTHS[vectorized.group(1)])
    if lower.startswith("row major") or lower == "linear":  # "Row major linear", "Row major"
        return "LINEAR"
    if "channel major" in lower:
        modulo = re.search(r"channel\s*%\s*(\d+)", lower)
        return ("DHWC" if five_d else "HWC") + (modulo.group(1) if modulo else "")
    return None


def parse_tensor(tensor: Mapping | str) -> dict:
    """Normalise one tensor of a layer's ``Inputs``/``Outputs``.

    Args:
        tensor: A TensorRT tensor dict (``Name``, ``Dimensions``, ``Location`` and either
            ``Format/Datatype`` or ``Datatype`` + ``Format``), or a bare tensor name.

    Returns:
        ``{"name", "dtype", "format", "layout", "shape", "location"}``.
    """
    if not isinstance(tensor, Mapping):
        return {"name": str(tensor), "dtype": None, "format": None, "layout": None, "shape": None,
                "location": None}
    shape = tensor.get("Dimensions", tensor.get("Shape"))
    shape = list(shape) if isinstance(shape, (list, tuple)) else None
    if "Format/Datatype" in tensor:
        combined = tensor.get("Format/Datatype")
        dtype = normalize_dtype(combined)
        layout_text = format_without_dtype(combined)
    else:
        dtype = normalize_dtype(tensor.get("Datatype", tensor.get("DataType")))
        layout_text = format_without_dtype(tensor.get("Format"))
    return {
        "name": tensor.get("Name"),
        "dtype": dtype,
        "format": layout_text,
        "layout": layout_label(layout_text, len(shape) if shape is not None else None),
        "shape": shape,
        "location": tensor.get("Location"),
    }


def precision_warnings(table: pd.DataFrame, intended: str) -> pd.DataFrame:
    """List layers that run in FP32 although the user asked for a lower precision.

    TensorRT treats ``--fp16``/``--int8`` as permissions, and (TensorRT 11 with strongly
    typed networks, or when no faster kernel exists) may silently keep layers in FP32. A layer
    is reported when all hold:

    * it was not inserted by TensorRT;
    * it has weights, or is a compute layer: its ``type`` contains ``Conv``, ``Gemm``,
      ``MatMul``/``MatrixMultiply``, ``FullyConnected``, ``Deconv``, ``Einsum``,
      ``Attention``/``MHA``, ``RNN`` or ``LSTM`` (case-insensitive);
    * its ``precision`` is ``FP32``.

    Layers whose precision is unknown (names-only verbosity, myelin regions) are not
    reported; an FP16 layer in an INT8 build is not reported either.

    Args:
        table: A table from :func:`~workbench.backends.tensorrt.trt_json.import_trt`.
        intended: The precision the user meant: ``"FP16"``, ``"INT8"``, ``"BF16"``, ``"FP8"``
            (any spelling :func:`normalize_dtype` understands).

    Returns:
        A DataFrame with ``name``, ``type``, ``precision``, ``weights_dtype``, ``onnx_nodes``,
        ``reason`` (and ``time_ms`` when profiled), one row per flagged layer, in table order.
    """
    wanted = normalize_dtype(intended)
    if wanted is None:
        raise ValueError(f"unknown precision {intended!r}: use FP16, BF16, INT8 or FP8")
    columns = ["name", "type", "precision", "weights_dtype", "onnx_nodes", "reason"]
    if "time_ms" in table:
        columns.append("time_ms")
    if wanted == "FP32" or table.empty:
        return pd.DataFrame(columns=columns)
    weights = table["weights_dtype"] if "weights_dtype" in table else pd.Series(None, index=table.index)
    has_weights = weights.notna()
    is_compute = table["type"].map(lambda t: isinstance(t, str) and bool(_COMPUTE_LAYER_TYPE.search(t)))
    flagged = table[(~table["inserted"]) & (has_weights | is_compute) & (table["precision"] == "FP32")].copy()
    flagged["weights_dtype"] = weights[flagged.index]
    flagged["reason"] = [
        f"{'has FP32 weights' if w == 'FP32' else 'compute layer'} running in FP32; {wanted} was intended"
        for w in flagged["weights_dtype"]
    ]
    return flagged[columns].reset_index(drop=True)
