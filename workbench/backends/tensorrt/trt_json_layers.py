"""TensorRT's layer information (``--exportLayerInfo`` or the engine inspector) as table records.

:func:`split_layer_document` finds the layers and I/O tensors in any TensorRT 8-11 layout;
:func:`names_only_record` and :func:`detailed_record` turn each layer (a bare name at the
default profiling verbosity, a dict at ``--profilingVerbosity=detailed``) into a record of
:func:`workbench.tables.engine_table.make_layer_table`.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from workbench.backends.tensorrt.trt_json_files import (
    LAYERS_EXPECTED,
    LAYERS_HOW_TO,
    shape_error,
)
from workbench.backends.tensorrt.trt_json_nodes import (
    is_inserted_by_name,
    is_inserted_layer,
    onnx_nodes_from_metadata,
    onnx_nodes_from_name,
)
from workbench.backends.tensorrt.trt_json_precision import normalize_dtype, parse_tensor
from workbench.tables.engine_table import precision_of

SOURCE = "trt-json"

NAMES_ONLY_WARNING = (
    "layer information holds layer names only (the engine was built with the default "
    "profiling verbosity): layer types, tensor formats, precisions and tactics are unknown. "
    "Build the engine with detailed verbosity to get them: "
    "trtexec --onnx=model.onnx --profilingVerbosity=detailed --exportLayerInfo=layers.json"
)


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
        A record for :func:`~workbench.tables.engine_table.make_layer_table`.
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
        A record for :func:`~workbench.tables.engine_table.make_layer_table`.
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
