"""Triton model configs, built with Triton's own protobuf and read back to check them.

The config of a model in a Triton repository (``config.pbtxt``) is a ``ModelConfig`` message of
``model_config.proto``. It is built here as that message (``tritonclient.grpc.model_config_pb2``)
and written with protobuf's ``text_format``, never from a string template, then parsed back
(:func:`parse_config`) so what Triton will read is what was meant. What Triton cannot express is
refused with the reason and the fix (:class:`TritonExportError`): FP8/FP4/INT4 I/O (Triton has
no such data types), an input or output without a name, a tensor of unknown rank.

The tensors come from the ONNX graph (:func:`onnx_io`) or from a TensorRT engine's metadata
(:func:`engine_io`: the I/O tensors the engine reports, else the engine's layer information,
else the ONNX I/O, which for a strongly typed network are the engine's I/O types).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import onnx

from workbench.backends.tensorrt.trt_json import (
    normalize_dtype,
    parse_tensor,
    split_layer_document,
)
from workbench.errors import WorkbenchError

ONNX_PLATFORM = "onnxruntime_onnx"
TENSORRT_PLATFORM = "tensorrt_plan"
CONFIG_FILE = "config.pbtxt"

# ONNX TensorProto element type -> Triton data type name (model_config.proto DataType).
ONNX_TO_TRITON = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT16: "TYPE_INT16",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32",
    onnx.TensorProto.UINT64: "TYPE_UINT64",
    onnx.TensorProto.BOOL: "TYPE_BOOL",
    onnx.TensorProto.STRING: "TYPE_STRING",
}
# TensorRT DataType names (``str(trt.DataType.HALF)`` -> "HALF", what the backend records) and
# the normalized names of TensorRT's layer information (:func:`normalize_dtype`).
TENSORRT_TO_TRITON = {
    "FLOAT": "TYPE_FP32", "FP32": "TYPE_FP32",
    "HALF": "TYPE_FP16", "FP16": "TYPE_FP16",
    "BF16": "TYPE_BF16",
    "INT8": "TYPE_INT8",
    "UINT8": "TYPE_UINT8",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "BOOL": "TYPE_BOOL",
}
TRITON_TO_NUMPY = {
    "TYPE_FP32": "float32", "TYPE_FP16": "float16", "TYPE_FP64": "float64", "TYPE_INT8": "int8",
    "TYPE_INT16": "int16", "TYPE_INT32": "int32", "TYPE_INT64": "int64", "TYPE_UINT8": "uint8",
    "TYPE_UINT16": "uint16", "TYPE_UINT32": "uint32", "TYPE_UINT64": "uint64", "TYPE_BOOL": "bool",
}
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TritonExportError(WorkbenchError, ValueError):
    """A model or option Triton cannot serve as asked; the message names the reason and the fix."""


class TritonUnavailable(WorkbenchError, RuntimeError):
    """tritonclient (or a tritonserver) is missing; the message says how to install it."""


def pb():
    """Triton's ``model_config_pb2`` module (from ``tritonclient``), imported on first use.

    Raises:
        TritonUnavailable: tritonclient is not installed.
    """
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as err:
        raise TritonUnavailable(
            f"tritonclient is not installed ({err}). Fix: pip install -e '.[triton]' "
            "(the tritonclient[http,grpc] package)."
        ) from err
    return model_config_pb2


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as Triton sees it.

    Attributes:
        name: The tensor name (Triton matches requests by it).
        data_type: A Triton data type name (``"TYPE_FP32"``...).
        shape: The full shape, batch dimension included; -1 for a dynamic dimension.
    """

    name: str
    data_type: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "data_type": self.data_type, "shape": list(self.shape)}


# --------------------------------------------------------------------------------------------
# I/O from an ONNX graph or a TensorRT engine
# --------------------------------------------------------------------------------------------


def onnx_io(proto: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph inputs (initializers excluded) and outputs as Triton tensors.

    Raises:
        TritonExportError: A tensor without a name, of unknown rank, or of a type Triton has not.
    """
    initializers = {t.name for t in proto.graph.initializer}
    specs = []
    for kind, values in (("input", [v for v in proto.graph.input if v.name not in initializers]),
                         ("output", list(proto.graph.output))):
        tensors = []
        for index, value in enumerate(values):
            tensor_type = value.type.tensor_type
            type_name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
            dtype = ONNX_TO_TRITON.get(tensor_type.elem_type)
            if dtype is None:
                raise TritonExportError(_unsupported_type(kind, value.name or f"#{index}", type_name))
            if not value.name:
                raise TritonExportError(_unnamed(kind, index))
            if not tensor_type.HasField("shape"):
                raise TritonExportError(
                    f"the model's {kind} '{value.name}' has no shape (unknown rank); Triton needs the "
                    "rank of every tensor. Fix: give the graph's inputs and outputs shapes (run ONNX "
                    "shape inference, or re-export with shapes)."
                )
            shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
                          for d in tensor_type.shape.dim)
            tensors.append(TensorSpec(value.name, dtype, shape))
        specs.append(tensors)
    return specs[0], specs[1]


def _unsupported_type(kind: str, name: str, type_name: str) -> str:
    low_precision = type_name.startswith(("FLOAT8", "FLOAT4", "FLOAT6", "INT4", "UINT4", "INT2", "UINT2", "FP8",
                                          "FP4"))
    fix = ("keep the model's inputs and outputs in FP32/FP16 and the FP8/INT4 tensors inside the graph "
           "(quantize after the input and dequantize before the output)" if low_precision
           else "cast the tensor to a supported type at the graph boundary")
    return (f"the model's {kind} '{name}' is {type_name}, which Triton cannot carry (its data types are "
            f"{', '.join(sorted(set(ONNX_TO_TRITON.values())))}). Fix: {fix}.")


def _unnamed(kind: str, index: int) -> str:
    return (f"the model's {kind} #{index} has no name; Triton addresses every input and output by name. "
            "Fix: name it in the graph (onnx: graph.input[i].name = '...') and export again.")


def engine_io(metadata: Mapping[str, Any], layer_info: Any = None) -> tuple[list[TensorSpec], list[TensorSpec], str]:
    """An engine's I/O tensors with the data types the engine itself uses at its boundary.

    Args:
        metadata: The engine's metadata (:func:`workbench.backends.tensorrt.build.engine_metadata`).
        layer_info: The engine's layer information (parsed JSON of ``layers.json`` /
            ``trtexec --exportLayerInfo``), used when the metadata has no ``io_tensors``.

    Returns:
        ``(inputs, outputs, source)`` where ``source`` says where the types came from:
        ``"engine"`` (the engine's I/O tensors), ``"layer info"``, or ``"onnx"`` (strongly typed
        networks keep the ONNX graph's I/O types).

    Raises:
        TritonExportError: No I/O found, or a type Triton has not (FP8 I/O...).
    """
    io_tensors = list(metadata.get("io_tensors") or [])
    if io_tensors:
        inputs = [_engine_tensor(t, "input") for t in io_tensors if t.get("mode") == "input"]
        outputs = [_engine_tensor(t, "output") for t in io_tensors if t.get("mode") != "input"]
        return inputs, outputs, "engine"
    if layer_info is not None:
        found = io_from_layer_info(layer_info)
        if found is not None:
            return found[0], found[1], "layer info"
    inputs = [_onnx_summary_tensor(t, "input", i) for i, t in enumerate(metadata.get("inputs") or [])]
    outputs = [_onnx_summary_tensor(t, "output", i) for i, t in enumerate(metadata.get("outputs") or [])]
    if not inputs or not outputs:
        raise TritonExportError(
            "the engine's metadata names no inputs or outputs. Fix: rebuild the engine with "
            "`workbench build MODEL` (it records its I/O tensors in metadata.json)."
        )
    return inputs, outputs, "onnx"


def _engine_tensor(tensor: Mapping, kind: str) -> TensorSpec:
    name = tensor.get("name")
    raw = str(tensor.get("dtype") or "")
    key = raw.split(".")[-1].upper()
    dtype = TENSORRT_TO_TRITON.get(key) or TENSORRT_TO_TRITON.get(normalize_dtype(raw) or "")
    if not name:
        raise TritonExportError(_unnamed(kind, 0))
    if dtype is None:
        raise TritonExportError(
            f"the engine's {kind} '{name}' is {raw or 'of unknown type'}, which Triton cannot carry. Fix: "
            "build the engine with FP32/FP16/INT32/INT64/BOOL I/O: keep FP8/FP4/INT4 tensors inside the "
            "network (quantize after the input, dequantize before the output)."
        )
    return TensorSpec(str(name), dtype, tuple(int(d) for d in tensor.get("shape") or ()))


def _onnx_summary_tensor(tensor: Mapping, kind: str, index: int) -> TensorSpec:
    """A tensor of ``ModelSummary.inputs`` (dtype like ``float32``, names for dynamic dims)."""
    if not tensor.get("name"):
        raise TritonExportError(_unnamed(kind, index))
    dtype = str(tensor.get("dtype"))
    mapping = {v: k for k, v in TRITON_TO_NUMPY.items()}
    if dtype not in mapping:
        raise TritonExportError(_unsupported_type(kind, tensor["name"], dtype.upper()))
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in tensor.get("shape") or ())
    return TensorSpec(tensor["name"], mapping[dtype], shape)


def io_from_layer_info(document: Any) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
    """Engine I/O from TensorRT's layer information (inspector JSON or ``--exportLayerInfo``).

    The bindings (TensorRT 8-10 ``Bindings``, TensorRT 11 I/O tensors) name the I/O tensors;
    their types and shapes are where a layer reads them (inputs) or writes them (outputs).

    Returns:
        ``(inputs, outputs)``, or None when the document lists no bindings or is at the default
        profiling verbosity (layer names only, no tensor types).
    """
    layers, bindings, io_tensors = split_layer_document(document, "layer information")
    names = [b if isinstance(b, str) else (b or {}).get("Name") for b in (bindings or io_tensors or [])]
    if not names or not all(isinstance(layer, dict) for layer in layers):
        return None
    read, written = {}, {}
    for layer in layers:
        for tensor in layer.get("Inputs") or []:
            parsed = parse_tensor(tensor)
            read.setdefault(parsed["name"], parsed)
        for tensor in layer.get("Outputs") or []:
            parsed = parse_tensor(tensor)
            written.setdefault(parsed["name"], parsed)
    inputs, outputs = [], []
    for name in names:
        is_output = name in written
        parsed = written.get(name) or read.get(name)
        if parsed is None or parsed["dtype"] is None:
            return None
        spec = _engine_tensor({"name": name, "dtype": parsed["dtype"], "shape": parsed["shape"] or []},
                              "output" if is_output else "input")
        (outputs if is_output else inputs).append(spec)
    return inputs, outputs


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------


def batchable(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> bool:
    """Whether the first dimension of every input and output is a dynamic batch dimension."""
    return all(t.shape and t.shape[0] == -1 for t in [*inputs, *outputs])


def resolve_max_batch_size(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], requested: int | None,
                           *, default: int, limit: int | None = None, limit_reason: str = "") -> int:
    """``max_batch_size``: 0 when the model has no batch dimension, else the request or the default.

    Args:
        inputs, outputs: The model's tensors.
        requested: The ``--max-batch-size`` flag (None: derive it).
        default: The value for a batchable model without a request.
        limit: The largest batch the model accepts (a TensorRT profile's max), if any.
        limit_reason: What sets ``limit``, for the message.

    Raises:
        TritonExportError: A batch size for a model without a batch dimension, a negative one, or
            one over ``limit``.
    """
    can_batch = batchable(inputs, outputs)
    if requested is not None and int(requested) < 0:
        raise TritonExportError(f"--max-batch-size must be 0 or more, got {requested}.")
    if not can_batch:
        if requested:
            fixed = [f"{t.name} {list(t.shape)}" for t in [*inputs, *outputs] if not t.shape or t.shape[0] != -1]
            raise TritonExportError(
                f"max_batch_size {requested} needs a dynamic first (batch) dimension on every input and "
                f"output, but these have none: {', '.join(fixed)}. Fix: export with --max-batch-size 0 "
                "(Triton then sends whole tensors), or re-export the model with a dynamic batch dimension."
            )
        return 0
    if requested is None:
        value = default if limit is None else min(default, limit)
    else:
        value = int(requested)
    if limit is not None and value > limit:
        raise TritonExportError(
            f"max_batch_size {value} is over the {limit} that {limit_reason} allows. Fix: pass "
            f"--max-batch-size {limit} or less, or rebuild the engine with a larger batch range."
        )
    return value


def preferred_batch_sizes(sweep: Mapping[Any, Any] | None, max_batch_size: int) -> list[int]:
    """Preferred sizes for the dynamic batcher from a measured batch sweep.

    Args:
        sweep: Batch size -> measurement (a dict with ``throughput``, samples/s), as the results
            table's ``latency`` column holds it; None or empty for no sweep.
        max_batch_size: The config's ``max_batch_size`` (preferred sizes may not exceed it).

    Returns:
        The measured batch sizes above 1 and up to ``max_batch_size`` whose throughput beats every
        smaller measured size (where batching pays); [] without a usable sweep.
    """
    points = []
    for size, measured in (sweep or {}).items():
        try:
            batch = int(size)
            throughput = float(measured.get("throughput") if isinstance(measured, Mapping) else measured)
        except (TypeError, ValueError, AttributeError):
            continue
        if batch >= 1 and throughput == throughput:  # not NaN
            points.append((batch, throughput))
    preferred, best = [], float("-inf")
    for batch, throughput in sorted(points):
        if throughput > best:
            if 1 < batch <= max_batch_size:
                preferred.append(batch)
            best = throughput
    return preferred


# --------------------------------------------------------------------------------------------
# The config message
# --------------------------------------------------------------------------------------------


@dataclass
class ConfigRequest:
    """Everything a config is built from (see :func:`build_config`).

    Attributes:
        name: The model name in the repository.
        platform: ``"onnxruntime_onnx"`` or ``"tensorrt_plan"``.
        inputs, outputs: The model's tensors, batch dimension included.
        max_batch_size: 0 for no batching, else the largest batch (dims then drop the first).
        instances: Model instances (``instance_group.count``).
        instance_kind: ``"KIND_GPU"``, ``"KIND_CPU"`` or ``"KIND_AUTO"`` (Triton picks).
        dynamic_batching: Add a ``dynamic_batching`` section.
        preferred_batch_sizes: Its preferred sizes.
        max_queue_delay_us: How long the batcher may hold a request to form a batch.
        warmup: ``(name, batch_size, {input: (file name in warmup/, dims)})`` per warm-up request;
            ``dims`` are one sample's concrete dims (batch dimension excluded when batching).
        cc_model_filenames: Compute capability -> file name (TensorRT plans).
        default_model_filename: The file in each version folder (None: Triton's default).
    """

    name: str
    platform: str
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]
    max_batch_size: int = 0
    instances: int = 1
    instance_kind: str = "KIND_AUTO"
    dynamic_batching: bool = False
    preferred_batch_sizes: Sequence[int] = ()
    max_queue_delay_us: int = 100
    warmup: Sequence[tuple[str, int, Mapping[str, tuple[str, Sequence[int]]]]] = ()
    cc_model_filenames: Mapping[str, str] | None = None
    default_model_filename: str | None = None


def check_model_name(name: str) -> str:
    """A repository model name: letters, digits, ``_ . -`` (it is a folder and a URL segment)."""
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.match(name):
        raise TritonExportError(
            f"model name {name!r} cannot be a Triton model folder: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit. Fix: pass --name NAME."
        )
    return name


def build_config(request: ConfigRequest):
    """The ``ModelConfig`` message for a request.

    Returns:
        A ``model_config_pb2.ModelConfig``.

    Raises:
        TritonExportError: Dynamic batching without a batch dimension, fewer than 1 instance,
            preferred sizes over ``max_batch_size``.
    """
    mc = pb()
    check_model_name(request.name)
    if int(request.instances) < 1:
        raise TritonExportError(f"--instances must be at least 1, got {request.instances}.")
    if request.dynamic_batching and request.max_batch_size < 1:
        raise TritonExportError(
            "dynamic batching needs max_batch_size > 0, and this model exports with 0 (no batch dimension "
            "or --max-batch-size 0). Fix: drop --dynamic-batching, or give the model a dynamic batch dimension."
        )
    too_big = [b for b in request.preferred_batch_sizes if not 0 < int(b) <= request.max_batch_size]
    if too_big:
        raise TritonExportError(
            f"preferred batch sizes {too_big} are not within 1..max_batch_size {request.max_batch_size}."
        )
    config = mc.ModelConfig(name=request.name, platform=request.platform, max_batch_size=request.max_batch_size)
    batched = request.max_batch_size > 0
    for spec in request.inputs:
        tensor = config.input.add(name=spec.name, data_type=mc.DataType.Value(spec.data_type))
        _set_dims(tensor, spec, batched)
    for spec in request.outputs:
        tensor = config.output.add(name=spec.name, data_type=mc.DataType.Value(spec.data_type))
        _set_dims(tensor, spec, batched)
    config.instance_group.add(count=int(request.instances),
                              kind=mc.ModelInstanceGroup.Kind.Value(request.instance_kind))
    if request.dynamic_batching:
        config.dynamic_batching.preferred_batch_size.extend(int(b) for b in request.preferred_batch_sizes)
        config.dynamic_batching.max_queue_delay_microseconds = int(request.max_queue_delay_us)
    by_name = {s.name: s for s in request.inputs}
    for warm_name, batch_size, files in request.warmup:
        warm = config.model_warmup.add(name=warm_name, batch_size=int(batch_size))
        for input_name, (file_name, dims) in files.items():
            warm.inputs[input_name].CopyFrom(mc.ModelWarmup.Input(
                data_type=mc.DataType.Value(by_name[input_name].data_type), dims=[int(d) for d in dims],
                input_data_file=file_name))
    for capability, file_name in (request.cc_model_filenames or {}).items():
        config.cc_model_filenames[str(capability)] = str(file_name)
    if request.default_model_filename:
        config.default_model_filename = request.default_model_filename
    return config


def _set_dims(tensor, spec: TensorSpec, batched: bool) -> None:
    """Dims without the batch dimension when batching; a scalar per sample is ``[1]`` reshaped to ``[]``."""
    dims = list(spec.shape[1:] if batched else spec.shape)
    if dims:
        tensor.dims.extend(dims)
    else:
        tensor.dims.append(1)
        tensor.reshape.SetInParent()  # reshape { shape: [] }: the model's tensor has no dims


def config_text(config) -> str:
    """The ``config.pbtxt`` text of a config message (protobuf text format)."""
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def parse_config(text: str):
    """Parse ``config.pbtxt`` text as Triton does (``ModelConfig`` in protobuf text format).

    Raises:
        TritonExportError: The text is not a valid ModelConfig, with protobuf's message.
    """
    from google.protobuf import text_format

    config = pb().ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise TritonExportError(f"not a valid Triton model config: {err}") from err
    return config


def config_dict(config) -> dict:
    """A config message as a JSON-ready dict: proto field names, enums by name, numbers as numbers
    (protobuf's JSON mapping would write int64 fields such as ``dims`` as strings)."""
    out = {}
    for field, value in config.ListFields():
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            out[field.name] = {key: _plain_value(value_field, item) for key, item in value.items()}
        elif _is_repeated(field):
            out[field.name] = [_plain_value(field, item) for item in value]
        else:
            out[field.name] = _plain_value(field, value)
    return out


def _is_repeated(field) -> bool:
    repeated = getattr(field, "is_repeated", None)
    return bool(repeated) if repeated is not None else field.label == field.LABEL_REPEATED


def _plain_value(field, value):
    if field.message_type is not None:
        return config_dict(value)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return value


def read_back(text: str, expected) -> None:
    """Parse ``text`` and check it is the message that was meant (what Triton will read).

    Raises:
        TritonExportError: The text does not parse back to ``expected``.
    """
    parsed = parse_config(text)
    if parsed != expected:
        raise TritonExportError("the written config does not read back as built; this is a bug, please report it")


def tensor_names(tensors: Iterable[TensorSpec]) -> list[str]:
    return [t.name for t in tensors]
