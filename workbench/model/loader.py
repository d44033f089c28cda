"""Load an ONNX model from disk, validate it, and explain what is wrong when it is not valid."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from workbench.errors import ModelLoadError
from workbench.model.normalize import normalize_model
from workbench.model.summary import ModelSummary, summarize

# Domains ONNX Runtime or TensorRT can execute without a user-supplied plugin library.
_RUNTIME_DOMAINS = {"com.microsoft", "com.microsoft.nchwc", "com.ms.internal.nhwc", "trt.plugins"}


@functools.lru_cache(maxsize=1)
def known_domains() -> frozenset[str]:
    """The operator domains the default install can run: ONNX's own and ONNX Runtime's."""
    domains = {schema.domain for schema in onnx.defs.get_all_schemas_with_history()}
    return frozenset(domains | {"ai.onnx"} | _RUNTIME_DOMAINS)


@dataclass
class LoadedModel:
    """A validated ONNX model and its summary.

    Attributes:
        path: Where the model was loaded from.
        proto: The model, external data loaded into it, normalized unless loaded with
            ``normalize=False`` (``summary.normalization`` lists what was changed).
        inferred: The model after ONNX shape inference (used for shapes and FLOPs).
        summary: What is in it (see :class:`workbench.model.summary.ModelSummary`).
        warnings: Messages gathered while loading (also in the summary).
        renamed_nodes: New node name -> name as stored (``""`` for unnamed nodes), from the
            naming rule of :mod:`workbench.model.names`.
    """

    path: Path
    proto: onnx.ModelProto
    inferred: onnx.ModelProto
    summary: ModelSummary
    warnings: list[str] = field(default_factory=list)
    renamed_nodes: dict[str, str] = field(default_factory=dict)

    @property
    def normalized(self) -> bool:
        """Whether ``proto`` differs from the file as stored (normalization changed something)."""
        return bool(self.summary.normalization)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def input_names(self) -> list[str]:
        return [t["name"] for t in self.summary.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t["name"] for t in self.summary.outputs]

    @property
    def node_names(self) -> list[str]:
        """Names of the main graph's nodes, in graph order."""
        return [node.name for node in self.proto.graph.node]

    def _repr_html_(self) -> str:  # shown when a notebook cell ends with the model
        return self.summary.to_html()


def load_model(path, *, allow_unknown_domains: bool = False, normalize: bool = True) -> LoadedModel:
    """Load, check, normalize and summarize an ONNX model.

    Args:
        path: Path to a ``.onnx`` file. External data files are looked up relative to it.
        allow_unknown_domains: Accept operators from domains neither ONNX nor ONNX Runtime
            knows (custom ops that need a plugin library); they are listed in the summary's
            warnings instead of raising.
        normalize: Bring the model to the workbench's one form (see
            :mod:`workbench.model.normalize`: IR version, node names, Constant weights as
            initializers, no initializers among the inputs), recorded in
            ``summary.normalization``; False keeps the model as stored.

    Returns:
        The loaded model with its summary.

    Raises:
        ModelLoadError: The file is missing, is not ONNX, is truncated, misses an external
            data file, fails the ONNX checker, or uses an operator from an unknown domain.
    """
    path = Path(path).expanduser()
    _check_is_file(path)
    proto = _parse(path)
    uses_external_data = _load_external_data(proto, path)
    _check(proto, path)
    unknown = _unknown_domain_ops(proto)
    warnings = []
    if unknown:
        listing = ", ".join(f"{op} (domain '{domain}')" for domain, op in unknown)
        if not allow_unknown_domains:
            raise ModelLoadError(
                path,
                f"uses operators from a domain neither ONNX nor ONNX Runtime knows: {listing}.",
                "These are custom ops: load their plugin library in the backend, or pass "
                "allow_unknown_domains=True to inspect the model anyway.",
            )
        warnings.append(f"custom operators need a plugin library to run: {listing}")
    steps, renamed = normalize_model(proto) if normalize else ([], {})
    inferred, inference_warning = _infer_shapes(proto)
    if inference_warning:
        warnings.append(inference_warning)
    summary = summarize(proto, inferred, path=path, warnings=warnings)
    summary.uses_external_data = uses_external_data
    summary.normalization = steps
    return LoadedModel(path=path, proto=proto, inferred=inferred, summary=summary, warnings=warnings,
                       renamed_nodes=renamed)


def _check_is_file(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError(path, "no such file.", "Check the path, or pick a sample model.")
    if path.is_dir():
        raise ModelLoadError(path, "is a folder, not an ONNX file.", "Give the path of the .onnx file.")
    if path.stat().st_size == 0:
        raise ModelLoadError(path, "the file is empty.", "Export the model again.")


def _parse(path: Path) -> onnx.ModelProto:
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip()
    if head.startswith((b"{", b"[")):
        raise ModelLoadError(
            path,
            "is a JSON file, not an ONNX model.",
            "Give the .onnx file; for TensorRT's JSON exports (engine.graph.json, profile.json) use "
            "`workbench profile --trt-layers FILE [--trt-profile FILE]` or workbench.import_trt().",
        )
    try:
        # always protobuf: onnx.load would read a *.json name as ONNX's JSON text format
        proto = onnx.load(str(path), format="protobuf", load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, TypeError, UnicodeDecodeError) as err:
        raise ModelLoadError(
            path,
            f"is not a readable ONNX model ({type(err).__name__}: {err}); the file is not ONNX "
            "or it is truncated.",
            "Export the model again (torch.onnx.export, tf2onnx...) and copy the whole file.",
        ) from err
    if not proto.HasField("graph") or not proto.graph.node:
        raise ModelLoadError(
            path,
            "parsed, but holds no graph nodes: the file is not an ONNX model or it is truncated.",
            "Export the model again and copy the whole file.",
        )
    return proto


def _load_external_data(proto: onnx.ModelProto, path: Path) -> bool:
    """Check and load the model's external data files. Returns whether it had any."""
    base_dir = path.parent
    found = False
    for tensor in external_data_helper._get_all_tensors(proto):
        if not external_data_helper.uses_external_data(tensor):
            continue
        found = True
        info = external_data_helper.ExternalDataInfo(tensor)
        location = base_dir / info.location
        if not location.is_file():
            raise ModelLoadError(
                path,
                f"initializer '{tensor.name}' keeps its data in '{info.location}', which is "
                f"missing (looked for {location}).",
                "Copy the external data file next to the model, keeping its name.",
            )
        end = (info.offset or 0) + (info.length or 0)
        if info.length and end > location.stat().st_size:
            raise ModelLoadError(
                path,
                f"external data file '{info.location}' is shorter than initializer "
                f"'{tensor.name}' needs ({location.stat().st_size} < {end} bytes): it is truncated.",
                "Copy the whole external data file again.",
            )
    try:
        external_data_helper.load_external_data_for_model(proto, str(base_dir))
    except (OSError, ValueError) as err:
        raise ModelLoadError(path, f"could not read external data: {err}", "Check the data files.") from err
    return found


def _check(proto: onnx.ModelProto, path: Path) -> None:
    try:
        if proto.ByteSize() < 2**31 - 1:
            onnx.checker.check_model(proto)
        else:  # protobuf cannot serialize >2 GB in memory; the checker reads from the path
            onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(
            path,
            f"fails the ONNX checker: {first_line}",
            "Fix the exporter's output (onnx.checker.check_model shows the details).",
        ) from err


def _unknown_domain_ops(proto: onnx.ModelProto) -> list[tuple[str, str]]:
    local_functions = {(f.domain, f.name) for f in proto.functions}
    known = known_domains()
    found = []
    for node in _all_nodes(proto.graph):
        if node.domain not in known and (node.domain, node.op_type) not in local_functions:
            found.append((node.domain, node.op_type))
    return sorted(set(found))


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _all_nodes(g)


def _infer_shapes(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Shape inference for the summary, one sample at a time: the inputs' leading dynamic dims
    are set to 1 while it runs (a ``-1`` in a Reshape would otherwise leave every later dim
    unknown), so per-sample FLOPs can be counted. ``proto`` is left as it was."""
    if proto.ByteSize() >= 2**31 - 1:
        return proto, "model over 2 GB: shape inference skipped, FLOPs may be missing"
    pinned = []
    for value in proto.graph.input:
        ttype = value.type.tensor_type
        dims = ttype.shape.dim if ttype.HasField("shape") else []
        if dims and not (dims[0].HasField("dim_value") and dims[0].dim_value >= 0):  # -1: dynamic too
            dim = dims[0]
            pinned.append((dim, onnx.TensorShapeProto.Dimension.FromString(dim.SerializeToString())))
            dim.dim_value = 1
    try:
        return onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True), None
    except Exception as err:  # inference is best effort; the checker already passed
        return proto, f"shape inference failed ({err}); FLOPs and shapes may be incomplete"
    finally:
        for dim, stored in pinned:
            dim.CopyFrom(stored)


def is_onnx_path(path) -> bool:
    return os.fspath(path).lower().endswith(".onnx")
