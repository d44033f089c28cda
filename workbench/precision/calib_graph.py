"""The in-graph half of fast calibration: which tensors, and the augmented models that reduce them.

:func:`select_tensors` picks the tensors ORT's calibrator calibrates and :func:`derivations` the
ones whose range follows from another's. :func:`build_range_model` adds per-tensor
``ReduceMin``/``ReduceMax`` (and ``TopK`` tails) to a copy of the model, and
:func:`build_histogram_model` adds exact ``np.histogram`` counts, so only a few numbers per
tensor leave the runtime. See :mod:`workbench.precision.calibrator` for how the passes use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workbench.errors import WorkbenchError
from workbench.model.normalize import default_opset, upgrade_opset

_CALIBRATED_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16)

# Ops whose output holds exactly the values of their first input (same multiset).
_VALUE_PRESERVING = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"}

# Names of everything the augmented models add start with this.
PREFIX = "wb_calib"

TAIL_K_INPUT = f"{PREFIX}_k"

# The tails' int64 Min and TopK's largest/sorted attributes need opset 12 in the range model.
TAILS_OPSET = 12
# ScatterElements' reduction="add" (the histogram counts) needs opset 16.
HISTOGRAM_OPSET = 16
# IR 4: the first where the initializers the augmented models add need not be graph inputs.
_MIN_IR = 4


class CalibrationGraphError(WorkbenchError, ValueError):
    """The calibration graph cannot be built for this model; the message says why and what to do."""


# --------------------------------------------------------------------------------------------
# Which tensors
# --------------------------------------------------------------------------------------------


def select_tensors(model: onnx.ModelProto, op_types: Sequence[str] | None) -> list[str]:
    """The tensors ORT's calibrator calibrates: float inputs/outputs of nodes of ``op_types``.

    Mirrors ``CalibraterBase.select_tensors_to_calibrate``: typed (after shape inference) float32
    or float16, not an initializer; every node when ``op_types`` is empty.

    Args:
        model: A shape-inferred model.
        op_types: Op types whose tensors are calibrated; None or empty for all.

    Returns:
        Tensor names, sorted.
    """
    value_infos = {vi.name: vi for vi in model.graph.value_info}
    value_infos.update({o.name: o for o in model.graph.output})
    value_infos.update({i.name: i for i in model.graph.input})
    initializers = {init.name for init in model.graph.initializer}
    chosen = set()
    for node in model.graph.node:
        if op_types and node.op_type not in op_types:
            continue
        for name in list(node.input) + list(node.output):
            vi = value_infos.get(name)
            if (
                vi is not None
                and vi.type.HasField("tensor_type")
                and vi.type.tensor_type.elem_type in _CALIBRATED_TYPES
                and name not in initializers
            ):
                chosen.add(name)
    return sorted(chosen)


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Tensor name -> ONNX element type, from value_info, inputs and outputs."""
    types = {}
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    return types


def derivations(model: onnx.ModelProto, tensors: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Calibrated tensors whose values follow from another calibrated tensor's.

    Args:
        model: The model.
        tensors: The calibrated tensors.

    Returns:
        tensor -> (source tensor, kind): ``"same"`` when the tensor holds exactly the source's
        values (a value-preserving op), ``"relu"`` when it is ``Relu(source)``. Sources are
        themselves calibrated and not derived (chains are followed to their root).
    """
    wanted = set(tensors)
    types = tensor_types(model)
    direct = {}
    for node in model.graph.node:
        if not node.input or not node.output or node.domain not in ("", "ai.onnx"):
            continue
        src, out = node.input[0], node.output[0]
        if out not in wanted or src not in wanted or types.get(src) != types.get(out):
            continue
        if node.op_type in _VALUE_PRESERVING:
            direct[out] = (src, "same")
        elif node.op_type == "Relu":
            direct[out] = (src, "relu")
    resolved = {}
    for name in direct:
        src, kind = direct[name]
        seen = {name}
        while src in direct and src not in seen:
            seen.add(src)
            parent, parent_kind = direct[src]
            if parent_kind == "relu" and kind == "relu":
                kind = "relu"  # relu(relu(x)) == relu(x)
            elif parent_kind == "relu" or kind == "relu":
                kind = "relu"  # relu commutes with value-preserving ops
            src = parent
        resolved[name] = (src, kind)
    return resolved


def fixed_batch_size(model: onnx.ModelProto) -> int | None:
    """The model's fixed batch size (first dim of its first input) if it is a number, else None."""
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            return int(dims[0].dim_value)
        return None
    return None


def elements_per_sample(model: onnx.ModelProto, tensor: str) -> int | None:
    """Elements of ``tensor`` per sample, from shape inference: dim 0 is the input's symbolic batch
    dim and every other dim is a number. None when that is not known statically."""
    batch_dims = set()
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_param"):
            batch_dims.add(dims[0].dim_param)
    infos = {vi.name: vi for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    vi = infos.get(tensor)
    if vi is None or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = vi.type.tensor_type.shape.dim
    if not dims or not dims[0].HasField("dim_param") or dims[0].dim_param not in batch_dims:
        return None
    rest = [d.dim_value if d.HasField("dim_value") else None for d in dims[1:]]
    if any(v is None for v in rest):
        return None
    return int(np.prod(rest, dtype=np.int64)) if rest else 1


# --------------------------------------------------------------------------------------------
# Augmented graphs
# --------------------------------------------------------------------------------------------


def _float32(name: str, elem_type: int, nodes: list, tag: str) -> str:
    """``name`` as float32 (a Cast node appended for float16 tensors)."""
    if elem_type == TensorProto.FLOAT:
        return name
    out = f"{PREFIX}_{tag}_f32"
    nodes.append(helper.make_node("Cast", [name], [out], to=TensorProto.FLOAT, name=out))
    return out


def _copy(model: onnx.ModelProto, *, opset: int = 0) -> onnx.ModelProto:
    """A copy to augment: IR raised to 4 (added initializers are not graph inputs), the opset to
    ``opset`` when the added nodes need it (ONNX's version converter; the copy is never saved).

    Raises:
        CalibrationGraphError: The model cannot be converted to ``opset``.
    """
    if opset and default_opset(model) < opset:
        try:
            model = upgrade_opset(model, opset)
        except WorkbenchError as err:
            raise CalibrationGraphError(
                f"the calibration graph needs opset {opset} (percentile tails {TAILS_OPSET}, full histograms "
                f"{HISTOGRAM_OPSET}); the model is at opset {default_opset(model)} and cannot be upgraded "
                f"({err}). Use --method minmax (or entropy at its default bins), or export the model at a "
                "newer opset.") from err
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    augmented.ir_version = max(augmented.ir_version, _MIN_IR)
    return augmented


def build_range_model(
    model: onnx.ModelProto,
    tensors: Sequence[str],
    *,
    abs_min: bool = False,
    sizes: bool = False,
    tails: Sequence["TailSpec"] = (),
) -> onnx.ModelProto:
    """The model plus min/max (and optionally ``min |x|``, element counts and tails) of tensors.

    Args:
        model: A shape-inferred model (not modified).
        tensors: Tensors to reduce.
        abs_min: Also compute ``min(|x|)`` (symmetric percentile needs it).
        sizes: Also output each tensor's element count.
        tails: Also keep, per spec, the tensor's ``k`` largest ``|x|`` / largest / smallest values
            (``TopK``); ``k`` per spec comes from the int64 input ``wb_calib_k`` ``[len(tails)]``,
            capped at the tensor's size.

    Returns:
        A copy with outputs ``wb_calib_min``, ``wb_calib_max`` (float32 ``[len(tensors)]``, in
        ``tensors`` order), ``wb_calib_absmin``, ``wb_calib_size`` (int64) and
        ``wb_calib_tail_<k>`` if asked.
    """
    augmented = _copy(model, opset=TAILS_OPSET if tails else 0)
    graph = augmented.graph
    types = tensor_types(model)
    nodes, stats = [], {"min": [], "max": [], "absmin": [], "size": []}
    shape_name = f"{PREFIX}_shape1"
    graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), shape_name))
    flat_shape = f"{PREFIX}_flat1"
    graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), flat_shape))
    for index, name in enumerate(tensors):
        tag = f"r{index}"
        source = _float32(name, types.get(name, TensorProto.FLOAT), nodes, tag)
        flat = f"{PREFIX}_{tag}_flat"  # rank 1, so each reduction is a [1] ready to concatenate
        nodes.append(helper.make_node("Reshape", [source, flat_shape], [flat], name=flat))
        reductions = [("min", "ReduceMin", flat), ("max", "ReduceMax", flat)]
        if abs_min:
            absolute = f"{PREFIX}_{tag}_abs"
            nodes.append(helper.make_node("Abs", [flat], [absolute], name=absolute))
            reductions.append(("absmin", "ReduceMin", absolute))
        for stat, op, value in reductions:
            reduced = f"{PREFIX}_{tag}_{stat}"
            nodes.append(helper.make_node(op, [value], [reduced], keepdims=1, name=reduced))
            stats[stat].append(reduced)
        if sizes:
            size = f"{PREFIX}_{tag}_size"
            nodes.append(helper.make_node("Size", [name], [size], name=size))
            flat = f"{size}_1"
            nodes.append(helper.make_node("Reshape", [size, shape_name], [flat], name=flat))
            stats["size"].append(flat)
    for stat, parts in stats.items():
        if not parts:
            continue
        out = f"{PREFIX}_{stat}"
        nodes.append(helper.make_node("Concat", parts, [out], axis=0, name=out))
        elem = TensorProto.INT64 if stat == "size" else TensorProto.FLOAT
        graph.output.append(helper.make_tensor_value_info(out, elem, [len(parts)]))
    if tails:
        _add_tails(graph, nodes, types, tails)
    graph.node.extend(nodes)
    return augmented


@dataclass(frozen=True)
class TailSpec:
    """The extreme values of one tensor to keep per batch.

    Attributes:
        tensor: The tensor.
        kind: ``"abs"`` (largest ``|x|``), ``"top"`` (largest ``x``) or ``"bottom"`` (smallest ``x``).
    """

    tensor: str
    kind: str


def _add_tails(graph, nodes, types, specs: Sequence[TailSpec]) -> None:
    """Append ``TopK`` tails (k from the ``wb_calib_k`` input) and their outputs to ``graph``."""
    graph.input.append(helper.make_tensor_value_info(TAIL_K_INPUT, TensorProto.INT64, [len(specs)]))
    flat_shape, one_shape = f"{PREFIX}_tflat", f"{PREFIX}_tone"
    graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), flat_shape))
    graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), one_shape))
    for k, spec in enumerate(specs):
        p = f"{PREFIX}_t{k}"
        x = _float32(spec.tensor, types.get(spec.tensor, TensorProto.FLOAT), nodes, f"t{k}")
        flat = f"{p}_flat"
        nodes.append(helper.make_node("Reshape", [x, flat_shape], [flat], name=flat))
        if spec.kind == "abs":
            nodes.append(helper.make_node("Abs", [flat], [f"{p}_abs"], name=f"{p}_abs"))
            flat = f"{p}_abs"
        index = f"{p}_index"
        graph.initializer.append(numpy_helper.from_array(np.array([k], dtype=np.int64), index))
        nodes += [
            helper.make_node("Gather", [TAIL_K_INPUT, index], [f"{p}_want"], name=f"{p}_want", axis=0),
            helper.make_node("Size", [flat], [f"{p}_size"], name=f"{p}_size"),
            helper.make_node("Reshape", [f"{p}_size", one_shape], [f"{p}_size1"], name=f"{p}_size1"),
            helper.make_node("Min", [f"{p}_want", f"{p}_size1"], [f"{p}_k"], name=f"{p}_k"),
        ]
        out = f"{PREFIX}_tail_{k}"
        nodes.append(helper.make_node("TopK", [flat, f"{p}_k"], [out, f"{p}_idx"], name=out, axis=0,
                                      largest=0 if spec.kind == "bottom" else 1, sorted=1))
        graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [None]))


@dataclass(frozen=True)
class HistogramSpec:
    """One tensor's histogram as ``np.histogram`` would bin it.

    Attributes:
        tensor: The tensor.
        absolute: Histogram of ``|x|`` instead of ``x``.
        first_edge: numpy's first outer edge (float32).
        last_edge: numpy's last outer edge (float32).
        edges: The ``bins + 1`` float32 edges numpy makes.
    """

    tensor: str
    absolute: bool
    first_edge: np.float32
    last_edge: np.float32
    edges: np.ndarray

    @property
    def bins(self) -> int:
        return self.edges.size - 1

    def counts(self, values: np.ndarray) -> np.ndarray:
        """``np.histogram`` of ``values`` (float32) over these edges."""
        return np.histogram(values.astype(np.float32), self.bins, range=(self.first_edge, self.last_edge))[0]


def histogram_spec(tensor: str, low, high, bins: int, *, absolute: bool) -> HistogramSpec:
    """numpy's outer edges and bin edges for ``np.histogram(a, bins, range=(low, high))`` of float32 data.

    Args:
        tensor: The tensor name.
        low: Lower end (a float32 scalar or 0-d array).
        high: Upper end.
        bins: Number of bins.
        absolute: The data histogrammed is ``|x|``.

    Returns:
        The spec, with numpy's zero-width widening (``+-0.5``) applied.
    """
    first = np.float32(low)
    last = np.float32(high)
    if first == last:
        first = np.float32(first - 0.5)
        last = np.float32(last + 0.5)
    _, edges = np.histogram(np.zeros(0, dtype=np.float32), bins, range=(first, last))
    return HistogramSpec(tensor, absolute, first, last, edges.astype(np.float32))


def build_histogram_model(model: onnx.ModelProto, specs: Sequence[HistogramSpec]) -> onnx.ModelProto:
    """The model plus, per spec, the tensor's histogram counts (int32 ``[bins]``) as an output.

    Bin of each value, exactly as ``np.histogram`` computes it for uniform bins::

        i = int((x - first) / (last - first) * bins)    # float32 arithmetic, truncation
        i = min(i, bins - 1)
        i -= x < edges[i];  i += x >= edges[i + 1] (never past the last bin)

    Values outside ``[first, last]`` and NaN are not counted (numpy drops them too).

    Args:
        model: A shape-inferred model (not modified).
        specs: The histograms to add.

    Returns:
        A copy with outputs ``wb_calib_hist_<k>`` in ``specs`` order.
    """
    augmented = _copy(model, opset=HISTOGRAM_OPSET)
    graph = augmented.graph
    types = tensor_types(model)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    flat_shape = const(f"{PREFIX}_flat", np.array([-1], dtype=np.int64))
    zero_i = const(f"{PREFIX}_zero_i32", np.array(0, dtype=np.int32))
    for k, spec in enumerate(specs):
        p = f"{PREFIX}_h{k}"
        n = spec.bins
        denom = np.subtract(spec.last_edge, spec.first_edge, dtype=np.float32)
        first = const(f"{p}_first", np.array(spec.first_edge, dtype=np.float32))
        last = const(f"{p}_last", np.array(spec.last_edge, dtype=np.float32))
        den = const(f"{p}_denom", np.array(denom, dtype=np.float32))
        nbins = const(f"{p}_nbins", np.array(n, dtype=np.float32))
        top = const(f"{p}_top", np.array(n - 1, dtype=np.int32))
        lower = const(f"{p}_lower", spec.edges[:-1].astype(np.float32))
        upper_edges = spec.edges[1:].astype(np.float32).copy()
        upper_edges[-1] = np.inf  # the last bin includes its right edge
        upper = const(f"{p}_upper", upper_edges)
        zeros = const(f"{p}_zeros", np.zeros(n, dtype=np.int32))

        def node(op, inputs, suffix, **attrs):
            out = f"{p}_{suffix}"
            nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
            return out

        x = _float32(spec.tensor, types.get(spec.tensor, TensorProto.FLOAT), nodes, f"h{k}")
        x = node("Reshape", [x, flat_shape], "x")
        if spec.absolute:
            x = node("Abs", [x], "abs")
        keep = node("And", [node("GreaterOrEqual", [x, first], "ge"), node("LessOrEqual", [x, last], "le")], "keep")
        f = node("Mul", [node("Div", [node("Sub", [x, first], "sub"), den], "div"), nbins], "f")
        i0 = node("Min", [node("Cast", [f], "i", to=TensorProto.INT32), top], "imin")
        i0 = node("Where", [keep, i0, zero_i], "isafe")
        dec = node("Cast", [node("Less", [x, node("Gather", [lower, i0], "lo", axis=0)], "lt")], "dec",
                   to=TensorProto.INT32)
        inc = node("Cast", [node("GreaterOrEqual", [x, node("Gather", [upper, i0], "hi", axis=0)], "ge2")],
                   "inc", to=TensorProto.INT32)
        index = node("Add", [node("Sub", [i0, dec], "idec"), inc], "index")
        counts = node("Cast", [keep], "ones", to=TensorProto.INT32)
        out = f"{PREFIX}_hist_{k}"
        nodes.append(helper.make_node("ScatterElements", [zeros, index, counts], [out], name=out, axis=0,
                                      reduction="add"))
        graph.output.append(helper.make_tensor_value_info(out, TensorProto.INT32, [n]))
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    return augmented
