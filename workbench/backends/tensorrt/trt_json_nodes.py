"""Which ONNX nodes a TensorRT layer implements, and which layers TensorRT inserted.

TensorRT 10+ records the ONNX nodes in a layer's ``Metadata``
(:func:`onnx_nodes_from_metadata`); TensorRT 8.x only joins them into the layer's name
(``Conv_5 + Add_6 + Relu_7``, ``PWN(...)``, ``{ForeignNode[first...last]}``), read by
:func:`onnx_nodes_from_name`. :func:`is_inserted_layer` decides which layers no ONNX node
asked for (reformats, copies).
"""

from __future__ import annotations

import re

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
