"""Read the JSON files TensorRT and trtexec write into the shared layer table.

TensorRT is not needed: this module only parses files a TensorRT run produced:

* layer information: ``trtexec --exportLayerInfo=layers.json`` or the engine inspector's
  ``get_engine_information(LayerInformationFormat.JSON)``;
* the per-layer profile: ``trtexec --exportProfile=profile.json``;
* per-inference timings: ``trtexec --exportTimes=times.json``.

:func:`import_trt` turns them into the table of :mod:`workbench.tables.engine_table`
(``source="trt-json"``). Every TensorRT variant goes through one normalizer:

Layer documents
    A bare list of layers, ``{"Layers": [...], "Bindings": [...]}`` (TensorRT 8-10) or
    ``{"Layers": [...], "I/O Tensors": [...]}`` (TensorRT 11; ``"IOTensors"``/``"IO Tensors"``
    are accepted too). A layer is either its name only (the default profiling verbosity) or a
    dict (``--profilingVerbosity=detailed``).

Tensors
    ``"Format/Datatype"`` text (``"Row major linear FP32"``, ``"Thirty-two wide channel
    vectorized row major Int8 format"``, ``"Channel major FP16 format where channel % 8 == 0"``)
    or separate ``"Datatype"`` and ``"Format"`` keys (TensorRT 11). Each becomes
    ``{"name", "dtype", "format", "layout", "shape", "location"}`` where ``dtype`` is one of
    ``FP32 FP16 BF16 FP8 FP4 INT8 INT4 UINT8 INT32 INT64 BOOL``, ``format`` the layout text
    without the type, and ``layout`` a short TensorRT-style label (``LINEAR``, ``CHW32``,
    ``HWC8``...; None when the text is not recognised).

ONNX nodes
    From ``Metadata`` (TensorRT 10+) when present, else from the fused name; the rules are in
    :func:`onnx_nodes_from_name`, the "inserted" rules in :func:`is_inserted_layer`.

Profiles
    ``percentage`` and the table's ``share`` are shares of the *summed layer times*, not of
    end-to-end latency: H2D/D2H copies, enqueue overhead and gaps between kernels are in
    neither. End-to-end numbers come from the times file (:func:`summarize_times`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.tables.engine_table import add_shares, make_layer_table, precision_of

SOURCE = "trt-json"

LAYERS_HOW_TO = (
    "trtexec --onnx=model.onnx --profilingVerbosity=detailed "
    "--exportLayerInfo=layers.json (or the engine inspector's "
    "get_engine_information(LayerInformationFormat.JSON))"
)
PROFILE_HOW_TO = "trtexec --loadEngine=model.engine --exportProfile=profile.json --separateProfileRun"
TIMES_HOW_TO = "trtexec --loadEngine=model.engine --exportTimes=times.json"

LAYERS_EXPECTED = (
    'TensorRT layer information: a list of layers or {"Layers": [...], "Bindings": [...]} '
    '(TensorRT 11: "I/O Tensors" instead of "Bindings"), each layer a name or a dict with "Name"'
)
PROFILE_EXPECTED = (
    'a trtexec per-layer profile: a list [{"count": N}, {"name", "timeMs", "averageMs", '
    '"medianMs", "percentage"}, ...]'
)
TIMES_EXPECTED = (
    'trtexec per-inference timings: a list of records with "latencyMs" (and "h2dMs", '
    '"computeMs", "d2hMs", "startEnqMs", "endEnqMs"...)'
)

NAMES_ONLY_WARNING = (
    "layer information holds layer names only (the engine was built with the default "
    "profiling verbosity): layer types, tensor formats, precisions and tactics are unknown. "
    "Build the engine with detailed verbosity to get them: "
    "trtexec --onnx=model.onnx --profilingVerbosity=detailed --exportLayerInfo=layers.json"
)

PERCENTAGE_SUM_TOLERANCE = 1.0  # percentage points around 100
TIME_RELATIVE_TOLERANCE = 1e-3  # timeMs vs averageMs * count
TIME_ABSOLUTE_TOLERANCE_MS = 1e-3

# Last dotted component of a PyTorch/Keras parameter (initializer) name.
PARAMETER_SUFFIXES = frozenset(
    {
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
        "kernel",
        "scale",
        "zero_point",
        "_amax",
        "amax",
    }
)
# Prefixes TensorRT's ONNX parser gives to helper layers it creates for a node (Gemm -> conv).
HELPER_PREFIXES = (
    "copied_squeeze_after_",
    "unsqueeze_node_after_",
    "squeeze_after_",
    "reshape_after_",
    "reshape_before_",
)

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


class TrtJsonError(WorkbenchError, ValueError):
    """A TensorRT JSON input is missing, not JSON, or not of a recognised shape.

    The message names the file, says what was expected and how to produce it.
    """


# --------------------------------------------------------------------------------------------
# Loading


def load_json_input(source: Any, expected: str, how_to: str) -> tuple[Any, str]:
    """Return the parsed JSON of ``source`` and a label naming it for messages.

    Args:
        source: A path (``str`` or :class:`os.PathLike`) to a JSON file, or an already parsed
            JSON object (list or dict).
        expected: What the file should contain, for error messages.
        how_to: The command that produces such a file, for error messages.

    Returns:
        ``(document, label)``; ``label`` is the path, or ``"<in-memory object>"``.

    Raises:
        TrtJsonError: The file is missing or unreadable, or is not JSON.
    """
    if not isinstance(source, (str, os.PathLike)):
        return source, "<in-memory object>"
    path = Path(source)
    if not path.is_file():
        raise TrtJsonError(
            f"{path}: file not found. Expected {expected}. Produce it with: {how_to}"
        )
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        return json.loads(text), str(path)
    except json.JSONDecodeError as err:
        raise TrtJsonError(
            f"{path}: not JSON ({err.msg} at line {err.lineno} column {err.colno}). "
            f"Expected {expected}. Produce it with: {how_to}"
        ) from err
    except OSError as err:
        raise TrtJsonError(f"{path}: cannot be read ({err}). Expected {expected}.") from err


def shape_error(label: str, problem: str, expected: str, how_to: str) -> TrtJsonError:
    """Build the error for JSON of an unrecognised shape.

    Args:
        label: The file (or ``"<in-memory object>"``).
        problem: What is wrong with it.
        expected: What it should contain.
        how_to: The command that produces such a file.

    Returns:
        The exception, to be raised by the caller.
    """
    return TrtJsonError(f"{label}: {problem}. Expected {expected}. Produce it with: {how_to}")


def _normalized_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def split_layer_document(document: Any, label: str) -> tuple[list, list | None, list | None]:
    """Find the layer list and the engine's I/O tensors in a layer-information document.

    Args:
        document: Parsed layer-information JSON.
        label: Its file name, for messages.

    Returns:
        ``(layers, bindings, io_tensors)``: ``bindings`` is the TensorRT 8-10 ``Bindings`` list,
        ``io_tensors`` the TensorRT 11 I/O tensor list; each None when absent.

    Raises:
        TrtJsonError: The document is not a layer list nor a dict with ``Layers``, or is a
            profile or timing file passed by mistake.
    """
    bindings = io_tensors = None
    if isinstance(document, dict):
        keys = {_normalized_key(k): k for k in document}
        if "layers" not in keys:
            raise shape_error(
                label, f"no 'Layers' key (keys: {sorted(document)[:8]})", LAYERS_EXPECTED, LAYERS_HOW_TO
            )
        layers = document[keys["layers"]]
        if "bindings" in keys:
            bindings = document[keys["bindings"]]
        io_key = next((keys[k] for k in ("iotensors", "iotensor") if k in keys), None)
        if io_key is not None:
            io_tensors = document[io_key]
    elif isinstance(document, list):
        layers = document
    else:
        raise shape_error(
            label, f"top level is a {type(document).__name__}", LAYERS_EXPECTED, LAYERS_HOW_TO
        )
    if not isinstance(layers, list) or not layers:
        raise shape_error(label, "'Layers' is empty or not a list", LAYERS_EXPECTED, LAYERS_HOW_TO)
    first = layers[0]
    if isinstance(first, dict) and "count" in first and "Name" not in first:
        raise shape_error(
            label,
            "this looks like a --exportProfile file (first record is {\"count\": N}); "
            "pass it as profile_json",
            LAYERS_EXPECTED,
            LAYERS_HOW_TO,
        )
    if isinstance(first, dict) and "latencyMs" in first:
        raise shape_error(
            label,
            "this looks like an --exportTimes file; pass it as times_json",
            LAYERS_EXPECTED,
            LAYERS_HOW_TO,
        )
    for i, layer in enumerate(layers):
        if isinstance(layer, str):
            continue
        if not isinstance(layer, dict) or not isinstance(layer.get("Name"), str):
            raise shape_error(
                label,
                f"layer {i} is neither a name nor a dict with a 'Name' ({str(layer)[:80]!r})",
                LAYERS_EXPECTED,
                LAYERS_HOW_TO,
            )
    return layers, bindings, io_tensors


# --------------------------------------------------------------------------------------------
# Tensors


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


# --------------------------------------------------------------------------------------------
# ONNX node attribution


def onnx_nodes_from_metadata(metadata: str | None) -> list[str]:
    """Read the ONNX node names TensorRT 10+ records in a layer's ``Metadata``.

    The text holds ``[ONNX Layer: <node name>]`` entries joined by ASCII unit separators
    (0x1F); record separators (0x1E) are accepted too. Other entries are ignored.

    Args:
        metadata: The layer's ``Metadata`` string (may be empty or None).

    Returns:
        Node names in order, without duplicates.
    """
    if not metadata:
        return []
    names = []
    for entry in re.split(r"[\x1e\x1f]", str(metadata)):
        entry = entry.strip()
        if entry.startswith("[ONNX Layer:") and entry.endswith("]"):
            name = entry[len("[ONNX Layer:"):-1].strip()
            if name:
                names.append(name)
    return list(dict.fromkeys(names))


def split_outside_brackets(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` where it is not inside (), [] or {}.

    Args:
        text: e.g. ``"Conv_5 + PWN(a + b, c) + Relu_7"``.
        separator: e.g. ``" + "``.

    Returns:
        The stripped, non-empty pieces (``["Conv_5", "PWN(a + b, c)", "Relu_7"]``).
    """
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif depth == 0 and text.startswith(separator, i):
            pieces.append(text[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def foreign_node_range(name: str) -> list[str] | None:
    """Return the endpoints of a myelin ``{ForeignNode[first...last]}`` name, else None.

    Args:
        name: A layer name.

    Returns:
        ``[first, last]`` as TensorRT wrote them (one element when there is no ``...``), or
        None when ``name`` is not a ForeignNode.
    """
    match = re.fullmatch(r"\{ForeignNode\[(.*)\]\}", name.strip())
    if not match:
        return None
    inner = match.group(1)
    ends = [part.strip() for part in inner.split("...", 1)] if "..." in inner else [inner.strip()]
    return [end for end in ends if end]


def name_parts(name: str) -> list[str]:
    """Break a TensorRT 8.x fused layer name into the names it joins.

    ``" + "`` joins fused parts; ``PWN(a, b)`` (pointwise fusions, possibly nested, with
    ``" + "`` inside) is unwrapped into its arguments.

    Args:
        name: e.g. ``"features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)"``.

    Returns:
        The parts in order (``["features.0.0.weight", "QuantizeLinear_8", "Conv_12",
        "Clip_16"]``), not yet filtered.
    """
    parts = []
    for piece in split_outside_brackets(name, " + "):
        if piece.startswith("PWN(") and piece.endswith(")"):
            for argument in split_outside_brackets(piece[4:-1], ", "):
                parts.extend(name_parts(argument))
        else:
            parts.append(piece)
    return parts


def strip_generated_affixes(part: str) -> str:
    """Map a name TensorRT derived from an ONNX node back to that node's name.

    Removes helper prefixes the ONNX parser adds (``reshape_after_Gemm_48`` -> ``Gemm_48``,
    ``unsqueeze_node_after_fc.bias`` -> ``fc.bias``) and the ``_clone_<n>`` suffix of nodes
    TensorRT duplicated (``.../QuantizeLinear_clone_1`` -> ``.../QuantizeLinear``).

    Args:
        part: One part of a layer name.

    Returns:
        The underlying name (``part`` itself when nothing applies).
    """
    for prefix in HELPER_PREFIXES:
        if part.startswith(prefix):
            part = part[len(prefix):]
            break
    return re.sub(r"_clone_\d+$", "", part)


def is_inserted_by_name(name: str) -> bool:
    """True when a layer's name alone shows TensorRT inserted it.

    Args:
        name: A layer name (or one part of a fused name).

    Returns:
        True for ``Reformatting CopyNode for ...``, ``[trainStationN]``, concat ``... copy``
        layers and ``...[DevicetoShapeHostCopy]`` layers.
    """
    return (
        name.startswith("Reformatting CopyNode")
        or re.fullmatch(r"\[trainStation\d*\]", name) is not None
        or name.endswith(" copy")
        or name.endswith("[DevicetoShapeHostCopy]")
    )


def is_tensorrt_internal_name(part: str) -> bool:
    """True for name parts TensorRT made up rather than took from the ONNX graph.

    Args:
        part: One part of a layer name.

    Returns:
        True for ``(Unnamed Layer* N) [Type]`` and anything built from it, and for the names
        of inserted layers (:func:`is_inserted_by_name`).
    """
    return "(Unnamed Layer*" in part or is_inserted_by_name(part)


def looks_like_initializer(part: str) -> bool:
    """Guess whether a name part is a weight/initializer rather than an ONNX node.

    PyTorch names parameters by module path: a dotted name without ``/`` whose last component
    is a parameter word (``conv1.weight``, ``backbone.layer2.0.downsample.1.running_var``,
    ``fc.bias``); PyTorch's exporter names unnamed tensors ``onnx::...``. Node names are
    ``Conv_34`` or ``/backbone/conv1/Conv``. This is a heuristic: pass the model's node names
    to :func:`onnx_nodes_from_name` for an exact answer.

    Args:
        part: One part of a layer name.

    Returns:
        True when ``part`` looks like an initializer or tensor name.
    """
    if part.startswith("onnx::"):
        return True
    if "/" in part or " " in part or "." not in part:
        return False
    return part.rsplit(".", 1)[1] in PARAMETER_SUFFIXES


def onnx_nodes_from_name(
    name: str, onnx_node_names: set[str] | None = None
) -> tuple[list[str], list[str], bool]:
    """Attribute a TensorRT 8.x layer to ONNX nodes from its name.

    Rules, in order:

    1. ``{ForeignNode[first...last]}`` (a myelin region): the range's two endpoints as given,
       with the range flag set; the nodes in between are not listed in the name.
    2. Otherwise the name is split on ``" + "`` outside brackets and ``PWN(...)`` is unwrapped
       (:func:`name_parts`); helper prefixes and ``_clone_N`` suffixes are mapped back to the
       node they came from (:func:`strip_generated_affixes`).
    3. Without ``onnx_node_names``, parts TensorRT made up (:func:`is_tensorrt_internal_name`)
       and parts that look like initializers (:func:`looks_like_initializer`) are dropped.
       With ``onnx_node_names``, a part is kept only if it (or its mapped name) is a real
       node name; every other part is reported as unmatched.

    Args:
        name: The layer's name.
        onnx_node_names: The ONNX model's node names, when known.

    Returns:
        ``(onnx_nodes, unmatched_parts, is_range)``; ``unmatched_parts`` is empty without
        ``onnx_node_names``.
    """
    endpoints = foreign_node_range(name)
    parts = endpoints if endpoints is not None else name_parts(name)
    nodes, unmatched = [], []
    for part in parts:
        mapped = strip_generated_affixes(part)
        if onnx_node_names is not None:
            if part in onnx_node_names:
                nodes.append(part)
            elif mapped in onnx_node_names:
                nodes.append(mapped)
            else:
                unmatched.append(part)
        elif not (
            is_tensorrt_internal_name(part)
            or is_tensorrt_internal_name(mapped)
            or looks_like_initializer(mapped)
        ):
            nodes.append(mapped)
    return list(dict.fromkeys(nodes)), unmatched, endpoints is not None


def is_inserted_layer(name: str, layer_type: str | None, origin: str | None, has_onnx_nodes: bool) -> bool:
    """Decide whether TensorRT inserted a layer that no ONNX node asked for.

    Args:
        name: The layer's name.
        layer_type: Its ``LayerType`` (None at names-only verbosity).
        origin: Its ``Origin`` (``"REFORMAT"``, ``"QDQ"``...; None when absent).
        has_onnx_nodes: Whether ``Metadata`` or the name attributed it to ONNX nodes.

    Returns:
        True for layers :func:`is_inserted_by_name` recognises (``Reformatting CopyNode ...``
        whether ``Reformat`` or ``NoOp``, ``[trainStationN]``...), layers whose ``Origin`` is
        ``REFORMAT``, and ``Reformat`` layers that are not Q/DQ and have no ONNX node. A Q/DQ
        ``Reformat`` (``Origin: QDQ``, e.g. ``QuantizeLinear_2``) implements its ONNX node and
        is not inserted.
    """
    if is_inserted_by_name(name):
        return True
    origin_upper = (origin or "").upper()
    if origin_upper == "REFORMAT":
        return True
    return layer_type == "Reformat" and origin_upper != "QDQ" and not has_onnx_nodes


# --------------------------------------------------------------------------------------------
# Layers


def weights_dtype(layer: Mapping) -> str | None:
    """Return the normalised type of a layer's weights, or None if it has none.

    Args:
        layer: A detailed layer dict; weights are under ``Weights`` or, for fused layers such
            as ``ConvActPool``, a ``<Prefix>Weights`` key (``ConvWeights``).

    Returns:
        e.g. ``"INT8"`` for ``{"Type": "Int8", "Count": 9408}``.
    """
    candidates = [layer.get("Weights")] + [
        value for key, value in layer.items() if key.endswith("Weights") and key != "Weights"
    ]
    for value in candidates:
        if isinstance(value, Mapping) and value.get("Type"):
            return normalize_dtype(value["Type"])
    return None


def tactic_of(layer: Mapping) -> str | None:
    """Return ``TacticName`` if non-empty, else ``TacticValue``, else None.

    Args:
        layer: A detailed layer dict.

    Returns:
        The tactic as text.
    """
    name = layer.get("TacticName")
    if name:
        return str(name)
    value = layer.get("TacticValue")
    return None if value in (None, "") else str(value)


def names_only_record(name: str, onnx_node_names: set[str] | None) -> dict:
    """Build the table record of a layer known by name only.

    Args:
        name: The layer name.
        onnx_node_names: The ONNX model's node names, when known.

    Returns:
        A record for :func:`make_layer_table`.
    """
    if is_inserted_by_name(name):
        nodes, unmatched, is_range = [], [], False
    else:
        nodes, unmatched, is_range = onnx_nodes_from_name(name, onnx_node_names)
    inserted = is_inserted_layer(name, None, None, bool(nodes))
    return {
        "name": name,
        "onnx_nodes": [] if inserted else nodes,
        "inserted": inserted,
        "source": SOURCE,
        "weights_dtype": None,
        "origin": None,
        "onnx_nodes_are_range": is_range and not inserted,
        "onnx_unmatched": unmatched,
    }


def detailed_record(layer: Mapping, onnx_node_names: set[str] | None) -> dict:
    """Build the table record of a detailed layer dict.

    ONNX nodes come from ``Metadata`` when it names any (TensorRT 10+; kept as TensorRT
    wrote them, parts not in ``onnx_node_names`` reported as unmatched), else from the name
    (:func:`onnx_nodes_from_name`). ``precision`` is the weights' type when the layer has
    weights, else its first input's dtype.

    Args:
        layer: One entry of ``Layers``.
        onnx_node_names: The ONNX model's node names, when known.

    Returns:
        A record for :func:`make_layer_table`.
    """
    name = layer["Name"]
    inputs = [parse_tensor(t) for t in layer.get("Inputs") or []]
    outputs = [parse_tensor(t) for t in layer.get("Outputs") or []]
    metadata_nodes = onnx_nodes_from_metadata(layer.get("Metadata"))
    if metadata_nodes:
        nodes, is_range = metadata_nodes, False
        unmatched = [n for n in nodes if onnx_node_names is not None and n not in onnx_node_names]
    elif is_inserted_by_name(name):
        nodes, unmatched, is_range = [], [], False
    else:
        nodes, unmatched, is_range = onnx_nodes_from_name(name, onnx_node_names)
    layer_type = layer.get("LayerType")
    origin = layer.get("Origin")
    inserted = is_inserted_layer(name, layer_type, origin, bool(nodes))
    weights = weights_dtype(layer)
    first_input_dtype = inputs[0]["dtype"] if inputs else None
    return {
        "name": name,
        "type": layer_type,
        "inputs": inputs,
        "outputs": outputs,
        "input_precision": precision_of(t["dtype"] for t in inputs),
        "output_precision": precision_of(t["dtype"] for t in outputs),
        "precision": weights or first_input_dtype,
        "tactic": tactic_of(layer),
        "onnx_nodes": [] if inserted else nodes,
        "inserted": inserted,
        "source": SOURCE,
        "weights_dtype": weights,
        "origin": origin,
        "onnx_nodes_are_range": is_range and not inserted,
        "onnx_unmatched": unmatched,
    }


# --------------------------------------------------------------------------------------------
# Profiles


def split_profile(document: Any, label: str) -> tuple[int | None, list[dict]]:
    """Separate the ``{"count": N}`` record from the per-layer records of a profile.

    Args:
        document: Parsed ``--exportProfile`` JSON.
        label: Its file name, for messages.

    Returns:
        ``(count, layer_records)``; ``count`` is None when the record is missing.

    Raises:
        TrtJsonError: Not a list of dicts with ``name`` and ``averageMs`` (or ``timeMs``).
    """
    if not isinstance(document, list) or not document:
        raise shape_error(label, "not a non-empty list", PROFILE_EXPECTED, PROFILE_HOW_TO)
    count = None
    records = document
    if isinstance(document[0], dict) and "count" in document[0] and "name" not in document[0]:
        count = document[0]["count"]
        records = document[1:]
    for i, record in enumerate(records):
        if not (
            isinstance(record, dict)
            and isinstance(record.get("name"), str)
            and ("averageMs" in record or "timeMs" in record)
        ):
            raise shape_error(
                label,
                f"record {i} has no 'name' and 'averageMs' ({str(record)[:80]!r})",
                PROFILE_EXPECTED,
                PROFILE_HOW_TO,
            )
    return count, list(records)


def check_profile(count: Any, records: list[dict]) -> dict:
    """Validate a profile the way NVIDIA's trt-perf-analysis does.

    Checks that the iteration count is present and positive, that ``percentage`` sums to 100
    within :data:`PERCENTAGE_SUM_TOLERANCE` points, and that each layer's ``timeMs`` (total
    over all iterations) equals ``averageMs * count`` within tolerance.

    Args:
        count: The ``{"count": N}`` value (None when absent).
        records: The per-layer records.

    Returns:
        ``{"count", "count_ok", "percentage_sum", "percentage_sum_ok", "time_mismatches",
        "time_consistent", "ok", "messages"}``; ``time_mismatches`` lists
        ``{"name", "timeMs", "expected_ms"}``; ``messages`` explains each failed check.
    """
    messages = []
    count_ok = isinstance(count, (int, float)) and not isinstance(count, bool) and count > 0
    if not count_ok:
        messages.append(f"profile iteration count is missing or not positive ({count!r})")
    percentages = [r.get("percentage") for r in records if r.get("percentage") is not None]
    percentage_sum = float(sum(percentages)) if percentages else None
    percentage_sum_ok = percentage_sum is not None and abs(percentage_sum - 100.0) <= PERCENTAGE_SUM_TOLERANCE
    if percentage_sum is None:
        messages.append("profile has no 'percentage' values")
    elif not percentage_sum_ok:
        messages.append(f"profile percentages sum to {percentage_sum:.3f}, not 100")
    mismatches = []
    if count_ok:
        for record in records:
            total, average = record.get("timeMs"), record.get("averageMs")
            if total is None or average is None:
                continue
            expected = average * count
            tolerance = max(TIME_RELATIVE_TOLERANCE * abs(total), TIME_ABSOLUTE_TOLERANCE_MS)
            if abs(total - expected) > tolerance:
                mismatches.append({"name": record["name"], "timeMs": total, "expected_ms": expected})
                messages.append(
                    f"profile layer {record['name']!r}: timeMs {total} != averageMs*count {expected:.6g}"
                )
    return {
        "count": count,
        "count_ok": count_ok,
        "percentage_sum": percentage_sum,
        "percentage_sum_ok": percentage_sum_ok,
        "time_mismatches": mismatches,
        "time_consistent": count_ok and not mismatches,
        "ok": count_ok and percentage_sum_ok and not mismatches,
        "messages": messages,
    }


def profile_by_name(records: list[dict], count: Any) -> tuple[dict[str, dict], list[str]]:
    """Index profile records by layer name.

    Args:
        records: The per-layer profile records.
        count: The iteration count (used when ``averageMs`` is missing).

    Returns:
        ``(times_by_name, duplicate_names)``; each value is ``{"time_ms", "median_ms",
        "trt_percentage"}``; the first record of a duplicated name wins.
    """
    by_name, duplicates = {}, []
    for record in records:
        name = record["name"]
        if name in by_name:
            duplicates.append(name)
            continue
        average = record.get("averageMs")
        if average is None and count:
            average = record["timeMs"] / count
        by_name[name] = {
            "time_ms": float(average) if average is not None else math.nan,
            "median_ms": float(record["medianMs"]) if record.get("medianMs") is not None else math.nan,
            "trt_percentage": float(record["percentage"]) if record.get("percentage") is not None else math.nan,
        }
    return by_name, duplicates


def join_profile(records: list[dict], by_name: Mapping[str, dict]) -> tuple[list[dict], dict]:
    """Attach profile times to layer records by name (never by position).

    Args:
        records: Layer records.
        by_name: Output of :func:`profile_by_name`.

    Returns:
        ``(records_with_times, mismatches)``; ``mismatches`` is
        ``{"profile_without_layer": [...], "layers_without_profile": [...]}``. Layers without
        a profile entry get NaN times.
    """
    layer_names = {r["name"] for r in records}
    joined, missing = [], []
    for record in records:
        times = by_name.get(record["name"])
        if times is None:
            missing.append(record["name"])
            times = {"time_ms": math.nan, "median_ms": math.nan, "trt_percentage": math.nan}
        joined.append({**record, **times, "share": math.nan})
    unknown = [name for name in by_name if name not in layer_names]
    return joined, {"profile_without_layer": unknown, "layers_without_profile": missing}


# --------------------------------------------------------------------------------------------
# End-to-end timings


def trtexec_percentile(sorted_values: np.ndarray, percentile: float) -> float:
    """Percentile the way trtexec reports it (nearest rank, no interpolation).

    trtexec drops the top ``int((1 - p/100) * n)`` values and reports the largest remaining
    one, so the numbers match its ``percentile(p%)`` output for the same run.

    Args:
        sorted_values: Values in ascending order (non-empty).
        percentile: 0-100.

    Returns:
        The percentile value.
    """
    n = len(sorted_values)
    excluded = int((1.0 - percentile / 100.0) * n)
    return float(sorted_values[max(n - 1 - excluded, 0)])


def summarize_times(times: Any, label: str | None = None) -> dict:
    """Summarise ``trtexec --exportTimes`` records (one per inference).

    ``latencyMs`` is trtexec's end-to-end host latency (H2D + compute + D2H); the profile's
    ``percentage`` is a share of summed layer time, not of this latency. Percentiles use
    trtexec's rule (:func:`trtexec_percentile`); median is the middle value (mean of the two
    middle values for even counts), as trtexec computes it.

    Args:
        times: The parsed records (a list of dicts), or a path to the JSON file.
        label: Name of the file for messages when ``times`` is already parsed.

    Returns:
        ``{"count", "latency_mean_ms", "latency_median_ms", "latency_p90_ms", "latency_p95_ms",
        "latency_p99_ms", "latency_min_ms", "latency_max_ms", "h2d_mean_ms",
        "compute_mean_ms", "d2h_mean_ms", "enqueue_mean_ms"}``; a mean is None when no record
        has that field.

    Raises:
        TrtJsonError: Not a non-empty list of records with ``latencyMs``.
    """
    document, loaded_label = load_json_input(times, TIMES_EXPECTED, TIMES_HOW_TO)
    label = label or loaded_label
    if not isinstance(document, list) or not document:
        raise shape_error(label, "not a non-empty list", TIMES_EXPECTED, TIMES_HOW_TO)
    if not all(isinstance(r, dict) and "latencyMs" in r for r in document):
        raise shape_error(label, "a record has no 'latencyMs'", TIMES_EXPECTED, TIMES_HOW_TO)
    latency = np.sort(np.array([r["latencyMs"] for r in document], dtype=float))

    def mean_of(values: list) -> float | None:
        return float(np.mean(values)) if values else None

    enqueue = [r["endEnqMs"] - r["startEnqMs"] for r in document if "endEnqMs" in r and "startEnqMs" in r]
    return {
        "count": int(latency.size),
        "latency_mean_ms": float(latency.mean()),
        "latency_median_ms": float(np.median(latency)),
        "latency_p90_ms": trtexec_percentile(latency, 90),
        "latency_p95_ms": trtexec_percentile(latency, 95),
        "latency_p99_ms": trtexec_percentile(latency, 99),
        "latency_min_ms": float(latency[0]),
        "latency_max_ms": float(latency[-1]),
        "h2d_mean_ms": mean_of([r["h2dMs"] for r in document if "h2dMs" in r]),
        "compute_mean_ms": mean_of([r["computeMs"] for r in document if "computeMs" in r]),
        "d2h_mean_ms": mean_of([r["d2hMs"] for r in document if "d2hMs" in r]),
        "enqueue_mean_ms": mean_of(enqueue),
    }


# --------------------------------------------------------------------------------------------
# Entry point


def import_trt(
    layers_json: Any,
    profile_json: Any = None,
    times_json: Any = None,
    *,
    onnx_node_names: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Build the layer table from TensorRT's layer information, profile and timings.

    Args:
        layers_json: ``--exportLayerInfo`` JSON (path or parsed object), at any profiling
            verbosity and TensorRT 8-11 layout (see the module docstring).
        profile_json: ``--exportProfile`` JSON (path or parsed), joined to layers by name.
            ``time_ms`` is ``averageMs`` (mean per inference), ``median_ms`` is ``medianMs``,
            ``share`` is recomputed as percent of the summed ``time_ms`` of the table's layers
            and TensorRT's own ``percentage`` is kept as ``trt_percentage``. Both are shares of
            summed layer time, not of end-to-end latency.
        times_json: ``--exportTimes`` JSON (path or parsed), summarised into
            ``attrs["end_to_end"]`` by :func:`summarize_times`.
        onnx_node_names: The ONNX model's node names. When given, a TensorRT 8.x name part
            is kept only if it is a real node name, and the others are reported; when absent,
            a heuristic separates nodes from initializers (:func:`onnx_nodes_from_name`).

    Returns:
        The layer table (``source="trt-json"``) with extra columns ``weights_dtype``,
        ``origin``, ``onnx_nodes_are_range``, ``onnx_unmatched`` (and ``trt_percentage`` with a
        profile). ``attrs`` holds ``source``, ``layers_file``, ``verbosity``
        (``"detailed"``, ``"names-only"`` or ``"mixed"``), ``bindings``, ``io_tensors``,
        ``warnings``; ``onnx_unmatched`` (when ``onnx_node_names`` is given); with a profile
        ``profile_file``, ``profile_checks``, ``profile_mismatches``; with times
        ``times_file`` and ``end_to_end``.

    Raises:
        TrtJsonError: (a ``ValueError``) a file is missing, not JSON, or of the wrong shape.
    """
    names = set(onnx_node_names) if onnx_node_names is not None else None
    document, layers_label = load_json_input(layers_json, LAYERS_EXPECTED, LAYERS_HOW_TO)
    layers, bindings, io_tensors = split_layer_document(document, layers_label)
    records = [
        names_only_record(layer, names) if isinstance(layer, str) else detailed_record(layer, names)
        for layer in layers
    ]
    name_only_count = sum(isinstance(layer, str) for layer in layers)
    verbosity = "names-only" if name_only_count == len(layers) else "detailed" if not name_only_count else "mixed"
    warnings: list[str] = []
    if name_only_count:
        warnings.append(NAMES_ONLY_WARNING)
    attrs: dict[str, Any] = {
        "source": SOURCE,
        "layers_file": layers_label,
        "verbosity": verbosity,
        "bindings": bindings,
        "io_tensors": io_tensors if io_tensors is not None else bindings,
        "warnings": warnings,
    }
    duplicate_layers = sorted(name for name, n in Counter(r["name"] for r in records).items() if n > 1)
    if duplicate_layers:
        warnings.append(f"layer names are not unique: {duplicate_layers[:5]}")
    if names is not None:
        attrs["onnx_unmatched"] = {r["name"]: r["onnx_unmatched"] for r in records if r["onnx_unmatched"]}

    if profile_json is not None:
        profile_document, profile_label = load_json_input(profile_json, PROFILE_EXPECTED, PROFILE_HOW_TO)
        count, profile_records = split_profile(profile_document, profile_label)
        checks = check_profile(count, profile_records)
        warnings.extend(checks["messages"])
        by_name, duplicates = profile_by_name(profile_records, count)
        if duplicates:
            warnings.append(f"profile names repeat (first entry used): {duplicates[:5]}")
        records, mismatches = join_profile(records, by_name)
        if mismatches["profile_without_layer"]:
            warnings.append(
                f"{len(mismatches['profile_without_layer'])} profile entries match no layer: "
                f"{mismatches['profile_without_layer'][:5]}"
            )
        if mismatches["layers_without_profile"]:
            warnings.append(
                f"{len(mismatches['layers_without_profile'])} layers have no profile entry: "
                f"{mismatches['layers_without_profile'][:5]}"
            )
        attrs.update(profile_file=profile_label, profile_checks=checks, profile_mismatches=mismatches)

    if times_json is not None:
        times_document, times_label = load_json_input(times_json, TIMES_EXPECTED, TIMES_HOW_TO)
        attrs.update(times_file=times_label, end_to_end=summarize_times(times_document, times_label))

    table = make_layer_table(records, attrs)
    if "time_ms" in table:
        table = add_shares(table)
    return table


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
        table: A table from :func:`import_trt`.
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
