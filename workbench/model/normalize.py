"""The model normalizer: what :func:`workbench.model.load_model` does to a model before any tool sees it.

Real exports differ in ways that break tools further down (quantizers, FP16 converters, the
layer table), so a loaded model is brought to one form, step by step, and each step is recorded
(``ModelSummary.normalization``, a list of ``{"step", "detail"}``; ``load_model(path,
normalize=False)`` gives the model as stored):

- ``ir_version``: the IR version is raised to the lowest one the model's opsets need (at least
  4, the first where weights need not be listed as graph inputs).
- ``node_names``: unnamed or duplicate-named top-level nodes are named by the one rule of
  :mod:`workbench.model.names`, on the graph as stored, so the names are those the ONNX Runtime
  layer table, ``--exclude``, the doctor and the TensorRT join use for the stored file too.
- ``fold_constants``: ``Constant`` nodes (in the main graph and in If/Loop/Scan bodies) become
  initializers of the same name, so every tool treats their tensors as the weights they are
  (the nodes they feed keep their names).
- ``initializer_inputs``: initializers are removed from the graph inputs (old exporters list
  them there, which makes them overridable inputs: ONNX Runtime then neither folds nor fuses them).

The opset is not raised on load; :func:`upgrade_opset` raises it when a variant needs a higher one
(13 for per-channel Q/DQ), with ONNX's version converter, and refuses clearly where it cannot.
"""

from __future__ import annotations

import onnx
from onnx import helper, version_converter

from workbench.errors import ModelLoadError
from workbench.model.names import ensure_node_names

# IR 4 is the first where initializers need not be graph inputs.
MIN_IR_VERSION = 4
_BODY_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})  # the ai.onnx ops with graph attributes
_PROTOBUF_LIMIT = 2**31 - 1


def normalize_model(proto: onnx.ModelProto) -> tuple[list[dict], dict[str, str]]:
    """Normalize a model in place (see the module docstring for the steps).

    Args:
        proto: The model as parsed, with external data loaded (or not: tensors are moved, not
            read).

    Returns:
        ``(steps, renamed)``: the steps taken as ``{"step", "detail"}`` dicts (empty when the
        model was already normal), and new node name -> old name (``""`` for unnamed nodes).
    """
    steps = []
    step = _upgrade_ir(proto)
    if step:
        steps.append(step)
    renamed = ensure_node_names(proto.graph)  # before folding: indices follow the stored graph
    folded, values = fold_constants(proto.graph)
    if renamed:  # the Constant nodes among them are gone: only the names that stay are news
        renamed = {node.name: renamed[node.name] for node in proto.graph.node if node.name in renamed}
    if renamed:
        unnamed = sum(1 for old in renamed.values() if not old)
        steps.append({"step": "node_names", "detail": (
            f"named {unnamed} unnamed node(s) and renamed {len(renamed) - unnamed} duplicate(s) "
            f"by the rule <op_type>_<index> (e.g. {next(iter(renamed))!r})")})
    if folded:
        steps.append({"step": "fold_constants", "detail": (
            f"{folded} Constant node(s) folded into initializers of the same name ({values:,} values)")})
    removed = remove_initializer_inputs(proto.graph)
    if removed:
        steps.append({"step": "initializer_inputs", "detail": (
            f"{removed} initializer(s) removed from the graph inputs (they are weights, not inputs)")})
    return steps, renamed


def _upgrade_ir(proto: onnx.ModelProto) -> dict | None:
    wanted = max(MIN_IR_VERSION, _min_ir_version(proto))
    if proto.ir_version >= wanted:
        return None
    old = proto.ir_version
    proto.ir_version = wanted
    return {"step": "ir_version", "detail": f"IR version {old} -> {wanted} (the lowest its opsets allow, at least "
                                            f"{MIN_IR_VERSION})"}


def _min_ir_version(proto: onnx.ModelProto) -> int:
    try:
        return int(helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True))
    except (ValueError, KeyError, TypeError):  # an opset newer than this onnx knows: keep what is stored
        return proto.ir_version


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor a Constant node produces, named after its output (None for sparse values)."""
    if len(node.attribute) != 1 or len(node.output) != 1:
        return None
    attr, name = node.attribute[0], node.output[0]
    if attr.name == "value":
        tensor = onnx.TensorProto()
        tensor.CopyFrom(attr.t)
    elif attr.name == "value_float":
        tensor = helper.make_tensor(name, onnx.TensorProto.FLOAT, [], [attr.f])
    elif attr.name == "value_floats":
        tensor = helper.make_tensor(name, onnx.TensorProto.FLOAT, [len(attr.floats)], list(attr.floats))
    elif attr.name == "value_int":
        tensor = helper.make_tensor(name, onnx.TensorProto.INT64, [], [attr.i])
    elif attr.name == "value_ints":
        tensor = helper.make_tensor(name, onnx.TensorProto.INT64, [len(attr.ints)], list(attr.ints))
    elif attr.name == "value_string":
        tensor = helper.make_tensor(name, onnx.TensorProto.STRING, [], [attr.s])
    elif attr.name == "value_strings":
        tensor = helper.make_tensor(name, onnx.TensorProto.STRING, [len(attr.strings)], list(attr.strings))
    else:  # sparse_value: left as a node
        return None
    tensor.name = name
    return tensor


def fold_constants(graph: onnx.GraphProto) -> tuple[int, int]:
    """Turn the graph's Constant nodes (and its subgraphs') into initializers, in place.

    A Constant whose output is also a graph output stays a node (an output must be computed).

    Args:
        graph: The graph to edit.

    Returns:
        (Constant nodes folded, values they hold).
    """
    folded = values = 0
    outputs = {o.name for o in graph.output}
    drop = []
    for index, node in enumerate(graph.node):
        op_type = node.op_type
        if op_type != "Constant" and op_type not in _BODY_OPS and node.domain in ("", "ai.onnx"):
            continue  # the common case: nothing to fold, no subgraph inside
        for attr in node.attribute:
            for body in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs):
                inner, inner_values = fold_constants(body)
                folded, values = folded + inner, values + inner_values
        tensor = _constant_tensor(node) if op_type == "Constant" and node.domain in ("", "ai.onnx") else None
        if tensor is None or node.output[0] in outputs:
            continue
        graph.initializer.append(tensor)
        drop.append(index)
        folded += 1
        values += _size(tensor)
    if drop:
        dropped = set(drop)
        keep = [node for index, node in enumerate(graph.node) if index not in dropped]
        del graph.node[:]
        graph.node.extend(keep)
    return folded, values


def _size(tensor: onnx.TensorProto) -> int:
    size = 1
    for dim in tensor.dims:
        size *= int(dim)
    return size


def remove_initializer_inputs(graph: onnx.GraphProto) -> int:
    """Drop graph inputs that are initializers (main graph only). Returns how many."""
    weights = {init.name for init in graph.initializer}
    keep = [value for value in graph.input if value.name not in weights]
    removed = len(graph.input) - len(keep)
    if removed:
        del graph.input[:]
        graph.input.extend(keep)
    return removed


def default_opset(proto: onnx.ModelProto) -> int:
    """The model's ``ai.onnx`` opset version (0 if it imports none)."""
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def upgrade_opset(proto: onnx.ModelProto, minimum: int, *, path=None) -> onnx.ModelProto:
    """The model at ``ai.onnx`` opset ``minimum`` or higher, converted by ONNX's version converter.

    The converted model passes the full ONNX checker, its IR version is raised to what the new
    opset needs, unnamed nodes the converter adds are named by the one rule, and the Constant
    nodes its adapters add (Resize scales, Slice starts...) are folded into initializers.

    Args:
        proto: The model (normalized, as :func:`workbench.model.load_model` returns it); not changed.
        minimum: The lowest opset the caller needs (e.g. 13 for per-channel Q/DQ).
        path: The model's file, for messages.

    Returns:
        ``proto`` itself when its opset is already ``minimum`` or higher, else a converted copy.

    Raises:
        ModelLoadError: The converter cannot convert this model (an op it has no adapter for,
            a model over 2 GB) or its result fails the checker; the message names the opsets.
    """
    current = default_opset(proto)
    if current >= minimum:
        return proto
    where = str(path) if path else (proto.graph.name or "model")
    fix = (f"Export the model again at opset {minimum} or higher (e.g. torch.onnx.export(..., "
           f"opset_version={max(minimum, 17)})), or choose a variant that opset {current} allows.")
    if proto.ByteSize() >= _PROTOBUF_LIMIT:
        raise ModelLoadError(where, f"is over 2 GB, so its opset {current} cannot be upgraded to {minimum} "
                                    "in memory.", fix)
    try:
        converted = version_converter.convert_version(proto, int(minimum))
        converted.ir_version = max(converted.ir_version, _min_ir_version(converted), MIN_IR_VERSION)
        ensure_node_names(converted.graph)
        fold_constants(converted.graph)
        onnx.checker.check_model(converted, full_check=True)
    except Exception as err:  # the converter raises RuntimeError/ValidationError/C++ errors alike
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        first = first.split("failed: ", 1)[-1].replace("$", "")  # the C++ assertion's prefix says nothing
        raise ModelLoadError(where, f"needs opset {minimum} for this, and ONNX's version converter cannot "
                                    f"upgrade it from opset {current}: {first[:300]}", fix) from err
    return converted
