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

The parts live in their own modules and are re-exported here, so this module stays the one
place to import them from: reading the files and the error (:mod:`.trt_json_files`), types and
layouts and FP32 fallbacks (:mod:`.trt_json_precision`), ONNX node attribution
(:mod:`.trt_json_nodes`), layer records (:mod:`.trt_json_layers`), profiles and times
(:mod:`.trt_json_profile`). :func:`import_trt` ties them together, one phase per input file.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import pandas as pd

from workbench.backends.tensorrt.trt_json_files import (
    LAYERS_EXPECTED,
    LAYERS_HOW_TO,
    PROFILE_EXPECTED,
    PROFILE_HOW_TO,
    TIMES_EXPECTED,
    TIMES_HOW_TO,
    TrtJsonError,
    load_json_input,
    shape_error,
)
from workbench.backends.tensorrt.trt_json_layers import (
    NAMES_ONLY_WARNING,
    SOURCE,
    detailed_record,
    names_only_record,
    split_layer_document,
    tactic_of,
    weights_dtype,
)
from workbench.backends.tensorrt.trt_json_nodes import (
    HELPER_PREFIXES,
    PARAMETER_SUFFIXES,
    foreign_node_range,
    is_inserted_by_name,
    is_inserted_layer,
    is_tensorrt_internal_name,
    looks_like_initializer,
    name_parts,
    onnx_nodes_from_metadata,
    onnx_nodes_from_name,
    split_outside_brackets,
    strip_generated_affixes,
)
from workbench.backends.tensorrt.trt_json_precision import (
    format_without_dtype,
    layout_label,
    normalize_dtype,
    parse_tensor,
    precision_warnings,
)
from workbench.backends.tensorrt.trt_json_profile import (
    PERCENTAGE_SUM_TOLERANCE,
    TIME_ABSOLUTE_TOLERANCE_MS,
    TIME_RELATIVE_TOLERANCE,
    check_profile,
    join_profile,
    profile_by_name,
    split_profile,
    summarize_times,
    trtexec_percentile,
)
from workbench.tables.engine_table import add_shares, make_layer_table

__all__ = [
    # files and errors
    "LAYERS_EXPECTED", "LAYERS_HOW_TO", "PROFILE_EXPECTED", "PROFILE_HOW_TO", "TIMES_EXPECTED",
    "TIMES_HOW_TO", "TrtJsonError", "load_json_input", "shape_error",
    # layer records
    "NAMES_ONLY_WARNING", "SOURCE", "detailed_record", "names_only_record", "split_layer_document",
    "tactic_of", "weights_dtype",
    # ONNX node attribution
    "HELPER_PREFIXES", "PARAMETER_SUFFIXES", "foreign_node_range", "is_inserted_by_name",
    "is_inserted_layer", "is_tensorrt_internal_name", "looks_like_initializer", "name_parts",
    "onnx_nodes_from_metadata", "onnx_nodes_from_name", "split_outside_brackets",
    "strip_generated_affixes",
    # types, layouts, FP32 fallbacks
    "format_without_dtype", "layout_label", "normalize_dtype", "parse_tensor", "precision_warnings",
    # profiles and times
    "PERCENTAGE_SUM_TOLERANCE", "TIME_ABSOLUTE_TOLERANCE_MS", "TIME_RELATIVE_TOLERANCE",
    "check_profile", "join_profile", "profile_by_name", "split_profile", "summarize_times",
    "trtexec_percentile",
    # the importer and its phases
    "import_trt", "read_layers", "add_profile", "read_times",
]


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
    records, attrs = read_layers(layers_json, names)
    if profile_json is not None:
        records = add_profile(records, profile_json, attrs)
    if times_json is not None:
        attrs.update(read_times(times_json))
    table = make_layer_table(records, attrs)
    if "time_ms" in table:
        table = add_shares(table)
    return table


def read_layers(layers_json: Any, onnx_node_names: set[str] | None) -> tuple[list[dict], dict[str, Any]]:
    """First phase of :func:`import_trt`: the layer records and the table's attrs.

    Args:
        layers_json: ``--exportLayerInfo`` JSON (path or parsed object).
        onnx_node_names: The ONNX model's node names, when known.

    Returns:
        ``(records, attrs)``: one record per layer (:func:`names_only_record` or
        :func:`detailed_record`); ``attrs`` with ``source``, ``layers_file``, ``verbosity``,
        ``bindings``, ``io_tensors``, ``warnings`` (names-only verbosity, repeated layer names)
        and, when ``onnx_node_names`` is given, ``onnx_unmatched``.

    Raises:
        TrtJsonError: The file is missing, not JSON, or not layer information.
    """
    document, layers_label = load_json_input(layers_json, LAYERS_EXPECTED, LAYERS_HOW_TO)
    layers, bindings, io_tensors = split_layer_document(document, layers_label)
    records = [
        names_only_record(layer, onnx_node_names)
        if isinstance(layer, str)
        else detailed_record(layer, onnx_node_names)
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
    if onnx_node_names is not None:
        attrs["onnx_unmatched"] = {r["name"]: r["onnx_unmatched"] for r in records if r["onnx_unmatched"]}
    return records, attrs


def add_profile(records: list[dict], profile_json: Any, attrs: dict[str, Any]) -> list[dict]:
    """Second phase of :func:`import_trt`: join a per-layer profile to the records by name.

    Args:
        records: The layer records from :func:`read_layers`.
        profile_json: ``--exportProfile`` JSON (path or parsed object).
        attrs: The table's attrs; gets ``profile_file``, ``profile_checks`` and
            ``profile_mismatches``, and its ``warnings`` get the failed checks, repeated profile
            names and names found on one side only.

    Returns:
        The records with ``time_ms``, ``median_ms``, ``trt_percentage`` (NaN without a profile
        entry) and ``share`` (NaN until the table computes it).

    Raises:
        TrtJsonError: The file is missing, not JSON, or not a per-layer profile.
    """
    warnings = attrs["warnings"]
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
    return records


def read_times(times_json: Any) -> dict[str, Any]:
    """Last phase of :func:`import_trt`: the end-to-end summary of per-inference times.

    Args:
        times_json: ``--exportTimes`` JSON (path or parsed object).

    Returns:
        ``{"times_file", "end_to_end"}`` for the table's attrs (:func:`summarize_times`).

    Raises:
        TrtJsonError: The file is missing, not JSON, or not per-inference times.
    """
    times_document, times_label = load_json_input(times_json, TIMES_EXPECTED, TIMES_HOW_TO)
    return {"times_file": times_label, "end_to_end": summarize_times(times_document, times_label)}

