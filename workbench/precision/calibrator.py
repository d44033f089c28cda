"""Fast calibration: the same ranges as ONNX Runtime's calibrators, reduced inside the graph.

ONNX Runtime's calibrators (``onnxruntime.quantization.calibrate``) make every calibrated tensor a
graph output, copy it to Python for every batch, and (for the histogram methods) keep all of them
in memory until ``np.histogram`` runs over the lot. Here the reductions run inside the graph, so
only a few numbers per tensor leave the runtime:

**Pass 1, ranges** (every method): the model plus ``ReduceMin``/``ReduceMax`` per calibrated
tensor, concatenated into two small outputs. Tensors whose range follows exactly from another's
are not reduced twice: outputs of value-preserving ops (Reshape, Flatten, Transpose, Squeeze,
Unsqueeze, Identity) share their input's range, and ``min/max(Relu(x)) = max(min/max(x), 0)``.

**What the histogram methods need**, reproducing ORT's ``HistogramCollector``. ORT histograms all
batches at once over the range of all of them (``[-t, t]``, ``t = max(|min|, |max|)``; symmetric
``percentile``: ``|x|`` over ``[min |x|, max |x|]``), so after pass 1 the bin edges are known
exactly, and:

- ``entropy`` with ``num_bins // 2 == num_quantized_bins // 2`` (ORT's defaults, 128/128) has one
  candidate threshold, ``(edges[0], edges[-1])``, which ORT clips to ``(min, max)``: the result is
  the min/max range and needs no histogram.
- ``distribution``'s range is ``(edges.min(), edges.max()) = (-t, t)``: known after pass 1. Its
  ``avg``/``std`` (used only by ORT's float8 scale) need the histogram: ``histograms="full"``.
- ``percentile`` keeps the bin where the CDF crosses the percentile; only the tail beyond it
  matters, so pass 1 also keeps, per tensor and batch, the ``M = floor((1 - p) * count) + 2``
  largest ``|x|`` (two-sided: largest and smallest ``x``) with ``TopK``. Merged, they give the
  exact count of every bin in the tail, hence the same bin as ORT's CDF: one pass in all. If a
  tail turns out too short, or the CDF lands within float rounding of the percentile (ORT's float
  cumsum could go either way), that tensor falls back to a full histogram.
- anything else (``entropy`` with more bins than quantized bins, ``histograms="full"``, the
  fall-backs): **pass 2, full histograms**: each value's bin is computed in the graph with
  numpy's float32 arithmetic and its +-1 edge corrections, counted with
  ``ScatterElements(reduction="add")``, and handed to ORT's own ``HistogramCollector``.

The result is a :class:`onnxruntime.quantization.calibrate.TensorsData` that ORT's quantizer takes
as is. By default (``exact=False``) ORT optimizes the augmented graph as it does any model (its
default for inference): about 1.4x faster on convolutional models, whose NCHWc convolution
kernels round differently from the unoptimized ones, so ranges match ORT's calibrator to ~1e-6
relative. ``exact=True`` runs every pass with graph optimizations off, as ORT's calibrator does:
every tensor then holds bit for bit the values it holds there and the ranges are equal (the
tests check this). Float16 tensors are binned in float32.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.calibrate import (
    CalibrationDataReader,
    CalibrationMethod,
    HistogramCollector,
    TensorData,
    TensorsData,
    create_calibrator,
)

from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "max": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
    "distribution": CalibrationMethod.Distribution,
}
HISTOGRAM_METHODS = ("entropy", "percentile", "distribution")
# ORT's create_calibrator defaults per method (onnxruntime/quantization/calibrate.py).
_ORT_DEFAULTS = {
    "minmax": {"symmetric": False},
    "entropy": {"symmetric": False, "num_bins": 128, "num_quantized_bins": 128},
    "percentile": {"symmetric": True, "num_bins": 2048, "percentile": 99.999},
    "distribution": {"symmetric": False, "num_bins": 2048, "scenario": "same"},
}
_CALIBRATED_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16)
# Ops whose output holds exactly the values of their first input (same multiset).
_VALUE_PRESERVING = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"}
_PREFIX = "wb_calib"
from workbench.backends.onnxruntime.session import (
    MAX_PROTO_BYTES,
    ort_session,
    session_options,
)
from workbench.progress import resolve_progress

# A percentile tail longer than this per batch is counted with a full histogram instead.
MAX_TAIL = 1 << 16


class CalibrationError(WorkbenchError, ValueError):
    """Calibration could not run or gave unusable ranges; the message says why and what to do."""


def canonical_method(method: str) -> str:
    """``"minmax"``/``"max"`` -> ``"minmax"``; other known names lower-cased.

    Raises:
        CalibrationError: An unknown method.
    """
    name = str(method).strip().lower()
    if name not in METHODS:
        raise CalibrationError(
            f"unknown calibration method {method!r}; choose one of minmax (or max), entropy, "
            "percentile, distribution."
        )
    return "minmax" if name == "max" else name


@dataclass(frozen=True)
class CalibrationOptions:
    """A calibration method and its settings, with ORT's defaults for anything left None.

    Attributes:
        method: ``minmax`` (alias ``max``), ``entropy``, ``percentile`` or ``distribution``.
        symmetric: Symmetrize the range (ORT's ``CalibTensorRangeSymmetric``; for ``percentile``
            it selects the histogram of ``|x|``, ORT's default there).
        num_bins: Histogram bins (entropy 128, percentile/distribution 2048 by default).
        num_quantized_bins: Entropy's quantized bins (128).
        percentile: Percentile kept by ``percentile`` (99.999).
        scenario: ``distribution``'s ``"same"`` or ``"p3"``.
    """

    method: str = "minmax"
    symmetric: bool | None = None
    num_bins: int | None = None
    num_quantized_bins: int | None = None
    percentile: float | None = None
    scenario: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "method", canonical_method(self.method))
        if self.num_bins is not None and int(self.num_bins) < 1:
            raise CalibrationError(f"num_bins must be at least 1, got {self.num_bins}")
        settings = self.resolved()
        if self.method == "distribution" and settings["num_bins"] < 512:
            raise CalibrationError("distribution calibration needs num_bins >= 512 (ORT's rule).")
        if self.method == "entropy" and settings["num_bins"] // 2 < settings["num_quantized_bins"] // 2:
            raise CalibrationError(
                f"entropy needs num_bins ({settings['num_bins']}) >= num_quantized_bins "
                f"({settings['num_quantized_bins']})."
            )
        if self.percentile is not None and not 0 <= float(self.percentile) <= 100:
            raise CalibrationError(f"percentile must be within [0, 100], got {self.percentile}")
        if self.scenario is not None and self.scenario not in ("same", "p3"):
            raise CalibrationError(f"scenario must be 'same' or 'p3', got {self.scenario!r}")

    @property
    def ort_method(self) -> CalibrationMethod:
        return METHODS[self.method]

    @property
    def uses_histogram(self) -> bool:
        return self.method in HISTOGRAM_METHODS

    def resolved(self) -> dict:
        """Every setting the method uses, ORT's default where this left None."""
        values = dict(_ORT_DEFAULTS[self.method])
        for key in ("symmetric", "num_bins", "num_quantized_bins", "percentile", "scenario"):
            value = getattr(self, key)
            if value is not None and key in values:
                values[key] = value
        return values

    def ort_extra_options(self) -> dict:
        """The ``extra_options`` ORT's ``create_calibrator`` takes for the same calibration."""
        return dict(self.resolved())

    def to_dict(self) -> dict:
        return {"method": self.method, **self.resolved()}


@dataclass
class CalibrationResult:
    """Ranges from :func:`calibrate`.

    Attributes:
        tensors_range: Tensor name -> range, as ORT's calibrators return it.
        options: The method and settings used.
        tensors: The calibrated tensor names.
        num_samples: Samples run.
        batch_size: Samples per run.
        seconds: Wall time of the whole calibration (every pass, post-processing included).
        pass_seconds: Wall time per pass (``ranges``, ``tails``, ``histograms``).
        histograms: Tensor name -> (counts, edges) for tensors histogrammed in full.
    """

    tensors_range: TensorsData
    options: CalibrationOptions
    tensors: list[str]
    num_samples: int
    batch_size: int
    seconds: float
    pass_seconds: dict = field(default_factory=dict)
    histograms: dict = field(default_factory=dict)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Tensor name -> (low, high) as floats."""
        return {k: (float(np.ravel(v.range_value[0])[0]), float(np.ravel(v.range_value[1])[0]))
                for k, v in self.tensors_range.items()}


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


# --------------------------------------------------------------------------------------------
# Augmented graphs
# --------------------------------------------------------------------------------------------


def _float32(name: str, elem_type: int, nodes: list, tag: str) -> str:
    """``name`` as float32 (a Cast node appended for float16 tensors)."""
    if elem_type == TensorProto.FLOAT:
        return name
    out = f"{_PREFIX}_{tag}_f32"
    nodes.append(helper.make_node("Cast", [name], [out], to=TensorProto.FLOAT, name=out))
    return out


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
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
    augmented = _copy(model)
    graph = augmented.graph
    types = tensor_types(model)
    nodes, stats = [], {"min": [], "max": [], "absmin": [], "size": []}
    shape_name = f"{_PREFIX}_shape1"
    graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), shape_name))
    flat_shape = f"{_PREFIX}_flat1"
    graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), flat_shape))
    for index, name in enumerate(tensors):
        tag = f"r{index}"
        source = _float32(name, types.get(name, TensorProto.FLOAT), nodes, tag)
        flat = f"{_PREFIX}_{tag}_flat"  # rank 1, so each reduction is a [1] ready to concatenate
        nodes.append(helper.make_node("Reshape", [source, flat_shape], [flat], name=flat))
        reductions = [("min", "ReduceMin", flat), ("max", "ReduceMax", flat)]
        if abs_min:
            absolute = f"{_PREFIX}_{tag}_abs"
            nodes.append(helper.make_node("Abs", [flat], [absolute], name=absolute))
            reductions.append(("absmin", "ReduceMin", absolute))
        for stat, op, value in reductions:
            reduced = f"{_PREFIX}_{tag}_{stat}"
            nodes.append(helper.make_node(op, [value], [reduced], keepdims=1, name=reduced))
            stats[stat].append(reduced)
        if sizes:
            size = f"{_PREFIX}_{tag}_size"
            nodes.append(helper.make_node("Size", [name], [size], name=size))
            flat = f"{size}_1"
            nodes.append(helper.make_node("Reshape", [size, shape_name], [flat], name=flat))
            stats["size"].append(flat)
    for stat, parts in stats.items():
        if not parts:
            continue
        out = f"{_PREFIX}_{stat}"
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


TAIL_K_INPUT = f"{_PREFIX}_k"


def _add_tails(graph, nodes, types, specs: Sequence[TailSpec]) -> None:
    """Append ``TopK`` tails (k from the ``wb_calib_k`` input) and their outputs to ``graph``."""
    graph.input.append(helper.make_tensor_value_info(TAIL_K_INPUT, TensorProto.INT64, [len(specs)]))
    flat_shape, one_shape = f"{_PREFIX}_tflat", f"{_PREFIX}_tone"
    graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), flat_shape))
    graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), one_shape))
    for k, spec in enumerate(specs):
        p = f"{_PREFIX}_t{k}"
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
        out = f"{_PREFIX}_tail_{k}"
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
    augmented = _copy(model)
    graph = augmented.graph
    types = tensor_types(model)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    flat_shape = const(f"{_PREFIX}_flat", np.array([-1], dtype=np.int64))
    zero_i = const(f"{_PREFIX}_zero_i32", np.array(0, dtype=np.int32))
    for k, spec in enumerate(specs):
        p = f"{_PREFIX}_h{k}"
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
        out = f"{_PREFIX}_hist_{k}"
        nodes.append(helper.make_node("ScatterElements", [zeros, index, counts], [out], name=out, axis=0,
                                      reduction="add"))
        graph.output.append(helper.make_tensor_value_info(out, TensorProto.INT32, [n]))
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    _ensure_opset(augmented, 16)  # ScatterElements reduction="add" needs opset 16+
    return augmented


def _ensure_opset(model: onnx.ModelProto, minimum: int) -> None:
    """Raise the default-domain opset to ``minimum`` (ONNX's version converter) when below it.

    Only models below opset 16 (ScatterElements' ``reduction``) are converted; the histogram
    model is never saved.
    """
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version < minimum:
            model.CopyFrom(onnx.version_converter.convert_version(model, minimum))
            return


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def make_session(model: onnx.ModelProto, *, optimized: bool = False, threads: int | None = None) -> ort.InferenceSession:
    """A CPU session for ``model`` (graph optimizations off unless ``optimized``, like ORT's calibrator)."""
    return ort_session(model, session_options("all" if optimized else "disable", threads=threads))


def _batches(calib, batch_size: int):
    if hasattr(calib, "batches"):
        return calib.batches(batch_size), calib.num_samples
    inputs = dict(calib)
    total = int(next(iter(inputs.values())).shape[0])

    def gen():
        for start in range(0, total, batch_size):
            yield {k: np.ascontiguousarray(a[start:start + batch_size]) for k, a in inputs.items()}

    return gen(), total


def _run(session, calib, batch_size, fetch, desc, *, progress, extra_feed=None):
    """Run ``session`` over every batch; returns (fetched outputs per batch, samples per batch)."""
    feeds, total = _batches(calib, batch_size)
    results, counts = [], []
    with resolve_progress(progress).task(desc, total, unit="sample") as task:
        for feed in feeds:
            n = next(iter(feed.values())).shape[0]
            if extra_feed:
                feed = {**feed, **extra_feed}
            results.append(session.run(fetch, feed))
            counts.append(n)
            task.update(n)
    return results, counts


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


@dataclass
class _Stats:
    """Pass 1 results per calibrated tensor (derived ones filled in from their sources)."""

    mins: dict
    maxs: dict
    absmins: dict
    sizes: dict


@dataclass
class _TailPlan:
    """Which tails pass 1 keeps for ``percentile``.

    Attributes:
        specs: The TopK tails, in ``wb_calib_k`` order.
        by_tensor: Calibrated tensor -> {side: spec index}.
        fraction: Share of the elements beyond the cut on each side (``1 - p``, or half of it).
    """

    specs: list
    by_tensor: dict
    fraction: float


def _plan_tails(tensors, derived, settings) -> _TailPlan:
    q = float(settings["percentile"]) / 100.0
    symmetric = bool(settings["symmetric"])
    fraction = (1.0 - q) if symmetric else (100.0 - float(settings["percentile"])) / 200.0
    sides = ("abs",) if symmetric else ("top", "bottom")
    specs, index, by_tensor = [], {}, {}
    for name in tensors:
        src, kind = derived.get(name, (name, "same"))
        key_tensor = src if kind == "same" else name
        by_tensor[name] = {}
        for side in sides:
            key = (key_tensor, side)
            if key not in index:
                index[key] = len(specs)
                specs.append(TailSpec(key_tensor, side))
            by_tensor[name][side] = index[key]
    return _TailPlan(specs, by_tensor, fraction)


def calibrate(
    model: onnx.ModelProto,
    calib,
    options: CalibrationOptions | str = "minmax",
    *,
    op_types: Sequence[str] | None = None,
    batch_size: int = 16,
    progress: Any = True,
    threads: int | None = None,
    histograms: str = "auto",
    exact: bool = False,
) -> CalibrationResult:
    """Ranges of the model's calibrated tensors over the calibration samples, equal to ORT's.

    Args:
        model: A shape-inferred model (:func:`prepare_for_calibration` gives the one ORT's
            ``quantize_static`` calibrates).
        calib: A :class:`workbench.datasets.calibration_sets.CalibrationSet` or a mapping of input
            name -> ``[samples, ...]`` array.
        options: A method name or :class:`CalibrationOptions`.
        op_types: Calibrate the tensors of these op types (ORT's ``op_types_to_calibrate``);
            None or empty for every node.
        batch_size: Samples per run (a model with a fixed batch size uses that).
        progress: See :mod:`workbench.progress` (True or "tqdm": a bar; "log": log lines).
        threads: ORT intra-op threads (None: ORT's default).
        histograms: ``"auto"`` computes only what the ranges depend on; ``"full"`` also builds
            every histogram method's full histogram, so the result carries ORT's ``hist``,
            ``hist_edges``, ``avg`` and ``std`` too.
        exact: Run with graph optimizations off, as ORT's calibrator does (ranges bit-equal to
            ORT's); the default False lets ORT optimize (faster; ranges equal to ~1e-6 relative).

    Returns:
        The ranges and timings.

    Raises:
        CalibrationError: No tensor to calibrate, or a histogram range is not finite.
    """
    started = time.perf_counter()
    if histograms not in ("auto", "full"):
        raise CalibrationError(f"histograms must be 'auto' or 'full', got {histograms!r}")
    options = CalibrationOptions(options) if isinstance(options, str) else options
    settings = options.resolved()
    tensors = select_tensors(model, op_types)
    if not tensors:
        raise CalibrationError(
            f"no float tensor to calibrate among the op types {list(op_types or [])}; check the op "
            "types to quantize against the model's op histogram."
        )
    batch_size = fixed_batch_size(model) or max(1, int(batch_size))
    num_samples = _count_samples(calib)
    types = tensor_types(model)
    method = options.method
    abs_hist = method == "percentile" and bool(settings["symmetric"])
    derived = derivations(model, tensors)
    plan = _plan_tails(tensors, derived, settings) if method == "percentile" and histograms == "auto" else None

    # pass 1: ranges (and percentile tails), on source tensors only
    t0 = time.perf_counter()
    sources = [t for t in tensors if t not in derived]
    range_model = build_range_model(model, sources, abs_min=abs_hist, sizes=plan is not None,
                                    tails=plan.specs if plan else ())
    session = make_session(range_model, optimized=not exact, threads=threads)
    fetch = [f"{_PREFIX}_min", f"{_PREFIX}_max"]
    fetch += [f"{_PREFIX}_absmin"] if abs_hist else []
    fetch += [f"{_PREFIX}_size"] if plan else []
    extra = None
    if plan:
        fetch += [f"{_PREFIX}_tail_{k}" for k in range(len(plan.specs))]
        extra = {TAIL_K_INPUT: _tail_ks(model, session, calib, batch_size, plan, sources, derived, num_samples)}
    per_batch, counts = _run(session, calib, batch_size, fetch, "calibration: ranges", progress=progress,
                             extra_feed=extra)
    del session
    named = {name: [b[j] for b in per_batch] for j, name in enumerate(fetch)}
    stats = _pass1_stats(sources, derived, named, abs_hist)
    pass_seconds = {"ranges": time.perf_counter() - t0}

    if method == "minmax":
        tensors_range = _minmax_ranges(tensors, stats, types, bool(settings["symmetric"]))
        return CalibrationResult(tensors_range, options, tensors, num_samples, batch_size,
                                 time.perf_counter() - started, pass_seconds)

    _check_finite(tensors, stats)
    specs = {name: _spec_for(name, stats, types, settings, abs_hist) for name in tensors}
    results: dict[str, TensorData] = {}
    full: list[str] = []
    if histograms == "full":
        full = list(tensors)
    elif method == "entropy":
        if settings["num_bins"] // 2 == settings["num_quantized_bins"] // 2:
            results = {n: _single_candidate_entropy(n, stats, types) for n in tensors}
        else:
            full = list(tensors)
    elif method == "distribution":
        results = {n: _distribution_range(specs[n], types.get(n)) for n in tensors}
    else:
        results, full = _percentile_from_tails(tensors, stats, specs, settings, plan, named, extra)

    kept = {}
    if full:
        t2 = time.perf_counter()
        run = dict(batch_size=batch_size, progress=progress, exact=exact, threads=threads)
        hist_results, kept = _full_histograms(model, calib, full, derived, stats, specs, options, types, run)
        results.update(hist_results)
        pass_seconds["histograms"] = time.perf_counter() - t2
    tensors_range = TensorsData(options.ort_method, {n: results[n] for n in tensors})
    return CalibrationResult(tensors_range, options, tensors, num_samples, batch_size,
                             time.perf_counter() - started, pass_seconds, kept)


def _count_samples(calib) -> int:
    if hasattr(calib, "num_samples"):
        return int(calib.num_samples)
    return int(next(iter(dict(calib).values())).shape[0])


def _tail_ks(model, session, calib, batch_size, plan: _TailPlan, sources, derived, num_samples) -> np.ndarray:
    """How many extreme values each tail keeps per batch: enough for every tensor's whole cut.

    Each tensor's element count over all samples comes from shape inference (per-sample size
    times samples), or, when a shape is not static, from running the first batch once: its size
    times the number of batches, an upper bound (exact for tensors that do not grow with the
    batch). Too short a tail is detected afterwards and falls back to a full histogram.
    """
    totals = {}
    for spec in plan.specs:
        per_sample = elements_per_sample(model, spec.tensor)
        if per_sample is not None:
            totals[spec.tensor] = per_sample * num_samples
    if len(totals) < len({spec.tensor for spec in plan.specs}):
        feeds, _ = _batches(calib, batch_size)
        first = next(feeds)
        batches = -(-num_samples // batch_size)
        probe = {TAIL_K_INPUT: np.ones(len(plan.specs), dtype=np.int64)}
        sizes = session.run([f"{_PREFIX}_size"], {**first, **probe})[0]
        by_source = dict(zip(sources, sizes))
        for spec in plan.specs:
            if spec.tensor not in totals:
                src = derived.get(spec.tensor, (spec.tensor, "same"))[0]
                totals[spec.tensor] = int(by_source[src]) * batches
    ks = [max(1, min(_tail_count(plan.fraction * totals[s.tensor], totals[s.tensor]), MAX_TAIL)) for s in plan.specs]
    return np.array(ks, dtype=np.int64)


def _pass1_stats(sources, derived, named, abs_hist) -> _Stats:
    mins = dict(zip(sources, np.nanmin(np.stack(named[f"{_PREFIX}_min"]), axis=0)))
    maxs = dict(zip(sources, np.nanmax(np.stack(named[f"{_PREFIX}_max"]), axis=0)))
    absmins = dict(zip(sources, np.nanmin(np.stack(named[f"{_PREFIX}_absmin"]), axis=0))) if abs_hist else {}
    sizes = (dict(zip(sources, np.stack(named[f"{_PREFIX}_size"]).sum(axis=0)))
             if f"{_PREFIX}_size" in named else {})
    zero = np.float32(0)
    for name, (src, kind) in derived.items():
        if kind == "same":
            mins[name], maxs[name] = mins[src], maxs[src]
            if abs_hist:
                absmins[name] = absmins[src]
        else:  # relu: min/max(relu(x)) = relu(min/max(x)); min |relu(x)| = relu(min(x))
            mins[name], maxs[name] = max(mins[src], zero), max(maxs[src], zero)
            if abs_hist:
                absmins[name] = mins[name]
        if sizes:
            sizes[name] = sizes[src]
    return _Stats(mins, maxs, absmins, sizes)


def _np_dtype(elem_type: int | None) -> np.dtype:
    return np.dtype(np.float16) if elem_type == TensorProto.FLOAT16 else np.dtype(np.float32)


def _minmax_ranges(tensors, stats: _Stats, types, symmetric: bool) -> TensorsData:
    """MinMaxCalibrater.compute_data's result: (min, max) arrays of shape (1,), symmetrized if asked."""
    data = {}
    for name in tensors:
        dtype = _np_dtype(types.get(name))
        low, high = np.array([stats.mins[name]], dtype=dtype), np.array([stats.maxs[name]], dtype=dtype)
        if symmetric:
            amax = np.nanmax([np.abs(low), np.abs(high)], axis=0)
            low, high = -amax, amax
        data[name] = TensorData(lowest=low, highest=high)
    return TensorsData(CalibrationMethod.MinMax, data)


def _check_finite(tensors, stats: _Stats) -> None:
    bad = [t for t in tensors if not (np.isfinite(stats.mins[t]) and np.isfinite(stats.maxs[t]))]
    if bad:
        raise CalibrationError(
            f"tensor(s) {bad[:5]}{' ...' if len(bad) > 5 else ''} reach NaN or Inf on the calibration "
            "data, so no histogram range exists. Check the samples' preprocessing, or use minmax "
            "calibration and exclude those nodes."
        )


def _spec_for(name, stats: _Stats, types, settings, abs_hist) -> HistogramSpec:
    """The edges ORT's collector bins ``name`` with, from its pass-1 range."""
    bins = int(settings["num_bins"])
    low, high = np.float32(stats.mins[name]), np.float32(stats.maxs[name])
    if abs_hist:  # collect_absolute_value: np.histogram(|x|, bins) over [min |x|, max |x|]
        return histogram_spec(name, stats.absmins[name], max(abs(low), abs(high)), bins, absolute=True)
    threshold = np.float32(max(abs(low), abs(high)))  # collect_value: range (-t, t)
    return histogram_spec(name, -threshold, threshold, bins, absolute=False)


def _single_candidate_entropy(name, stats: _Stats, types) -> TensorData:
    """Entropy with num_bins // 2 == num_quantized_bins // 2: the one candidate, clipped to (min, max)."""
    dtype = _np_dtype(types.get(name))
    return TensorData(lowest=np.array(stats.mins[name], dtype=dtype), highest=np.array(stats.maxs[name], dtype=dtype))


def _distribution_range(spec: HistogramSpec, elem_type) -> TensorData:
    """Distribution's (edges.min(), edges.max()) without the histogram-derived avg/std."""
    dtype = _np_dtype(elem_type)
    edges = spec.edges.astype(dtype)
    return TensorData(lowest=edges.min(), highest=edges.max())


def _percentile_from_tails(tensors, stats: _Stats, specs, settings, plan: _TailPlan, named, extra):
    """Percentile ranges from pass 1's tails; returns (results, tensors needing a full histogram)."""
    q = float(settings["percentile"]) / 100.0
    symmetric = bool(settings["symmetric"])
    one_side = (100.0 - float(settings["percentile"])) / 200.0
    ks = extra[TAIL_K_INPUT]
    tails = {k: named[f"{_PREFIX}_tail_{k}"] for k in range(len(plan.specs))}
    results, full = {}, []
    for name in tensors:
        total = int(stats.sizes[name])
        need = _tail_count(plan.fraction * total, total)
        values = {}
        complete = True
        for side, k in plan.by_tensor[name].items():
            per_batch = tails[k]
            # each batch kept min(K, its size) values: enough if K >= need, or if it kept them all
            if need > MAX_TAIL or not (ks[k] >= need or all(v.size < ks[k] for v in per_batch)):
                complete = False
                break
            merged = np.concatenate(per_batch)
            if merged.size > need:
                merged = (np.partition(merged, merged.size - need)[merged.size - need:] if side != "bottom"
                          else np.partition(merged, need - 1)[:need])
            values[side] = merged
        result = _percentile_threshold(name, stats, specs[name], values, q, one_side, symmetric, total) \
            if complete else None
        if result is None:
            full.append(name)
        else:
            results[name] = result
    return results, full


def _tail_count(expected: float, total: int) -> int:
    """Tail length that makes the percentile's bin exact: more elements than the CDF cut leaves."""
    return int(min(total, math.floor(expected) + 2))


def _percentile_threshold(name, stats: _Stats, spec: HistogramSpec, tails, q, one_side, symmetric, total):
    """ORT's compute_percentile for one tensor from its exact tails; None when ORT's float CDF is ambiguous."""
    edges = spec.edges
    tol = 1e-12 * total + 1e-9
    if symmetric:
        idx = _right_index(spec, tails["abs"], q, total, tol)
        if idx is None:
            return None
        low = -np.array(edges[idx], dtype=edges.dtype)
        high = np.array(edges[idx], dtype=edges.dtype)
    else:
        right = _right_index(spec, tails["top"], 1.0 - one_side, total, tol)
        left = _left_index(spec, tails["bottom"], one_side, total, tol)
        if right is None or left is None:
            return None
        low = np.array(edges[left], dtype=edges.dtype)
        high = np.array(edges[right], dtype=edges.dtype)
    min_value, max_value = np.float32(stats.mins[name]), np.float32(stats.maxs[name])
    if low < min_value:
        low = min_value
    if high > max_value:
        high = max_value
    return TensorData(lowest=np.asarray(low, dtype=np.float32), highest=np.asarray(high, dtype=np.float32))


def _right_index(spec: HistogramSpec, top: np.ndarray, level: float, total: int, tol: float) -> int | None:
    """First bin i with count(bins <= i) >= level * total, knowing the largest values exactly."""
    counts = spec.counts(top)
    nonzero = np.flatnonzero(counts)
    lowest_bin = int(nonzero[0]) if nonzero.size else spec.bins - 1
    above = np.concatenate([np.cumsum(counts[::-1])[::-1][1:], [0]])  # elements in bins > i
    # Below the lowest bin of the tail more than the cut lies above, unless the tail is everything.
    start = 0 if top.size >= total else lowest_bin
    at_or_below = total - above[start:].astype(np.float64)
    return _first_crossing(at_or_below, level * total, tol, start)


def _left_index(spec: HistogramSpec, bottom: np.ndarray, level: float, total: int, tol: float) -> int | None:
    """First bin i with count(bins <= i) >= level * total, knowing the smallest values exactly."""
    counts = spec.counts(bottom)
    nonzero = np.flatnonzero(counts)
    highest_bin = int(nonzero[-1]) if nonzero.size else 0
    running = np.cumsum(counts)[: highest_bin + 1].astype(np.float64)
    return _first_crossing(running, level * total, tol, 0)


def _first_crossing(counts: np.ndarray, target: float, tol: float, offset: int) -> int | None:
    """offset + first index with counts >= target; None if none, or if any count up to it lies
    within ``tol`` of the target (ORT's float CDF could decide either way there)."""
    reached = np.flatnonzero(counts >= target)
    if not reached.size:
        return None
    first = int(reached[0])
    if np.any(np.abs(counts[: first + 1] - target) <= tol):
        return None
    return offset + first


def _full_histograms(model, calib, names, derived, stats: _Stats, specs, options, types, run):
    """Exact histograms for ``names`` in one pass, thresholds by ORT's collector."""
    sources = []
    for name in names:
        src, kind = derived.get(name, (name, "same"))
        key = src if kind == "same" else name
        if key not in sources:
            sources.append(key)
    hist_model = build_histogram_model(model, [specs[s] for s in sources])
    session = make_session(hist_model, optimized=not run["exact"], threads=run["threads"])
    fetch = [f"{_PREFIX}_hist_{k}" for k in range(len(sources))]
    per_batch, _ = _run(session, calib, run["batch_size"], fetch, "calibration: histograms", progress=run["progress"])
    del session
    counts = {s: np.sum([b[j] for b in per_batch], axis=0, dtype=np.int64) for j, s in enumerate(sources)}
    histogram_dict = {}
    for name in names:
        src, kind = derived.get(name, (name, "same"))
        key = src if kind == "same" else name
        dtype = _np_dtype(types.get(name))
        low, high = dtype.type(stats.mins[name]), dtype.type(stats.maxs[name])
        edges = specs[name].edges.astype(dtype)
        if specs[name].absolute:
            histogram_dict[name] = (counts[key], edges, low, high)
        else:
            threshold = np.array(max(abs(low), abs(high)), dtype=dtype)
            histogram_dict[name] = (counts[key], edges, low, high, threshold)
    result = thresholds_from_histograms(histogram_dict, options)
    return dict(result.items()), {k: (v[0], v[1]) for k, v in histogram_dict.items()}


def thresholds_from_histograms(histogram_dict: dict, options: CalibrationOptions) -> TensorsData:
    """Ranges from histograms, computed by ORT's own ``HistogramCollector`` (quietly).

    Args:
        histogram_dict: Tensor -> the tuple ORT's collector keeps (``collect_value``:
            counts, edges, min, max, threshold; ``collect_absolute_value``: counts, edges, min, max).
        options: The histogram method and its settings.

    Returns:
        The ranges, as ``HistogramCalibrater.compute_data`` returns them.
    """
    s = options.resolved()
    collector = HistogramCollector(
        method=options.method,
        symmetric=s["symmetric"],
        num_bins=s.get("num_bins", 128),
        num_quantized_bins=s.get("num_quantized_bins", 128),
        percentile=s.get("percentile", 99.999),
        scenario=s.get("scenario", "same"),
    )
    collector.histogram_dict = histogram_dict
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        result = collector.compute_collection_result()
    return TensorsData(options.ort_method, result)


# --------------------------------------------------------------------------------------------
# ORT's own calibrator, for reference and comparison
# --------------------------------------------------------------------------------------------


class ArrayReader(CalibrationDataReader):
    """An ORT ``CalibrationDataReader`` over in-memory batches."""

    def __init__(self, calib, batch_size: int):
        self._calib, self._batch_size = calib, batch_size
        self.rewind()

    def rewind(self) -> None:
        self._iter, self._total = _batches(self._calib, self._batch_size)

    def get_next(self):
        return next(self._iter, None)

    def __len__(self):
        return -(-self._total // self._batch_size)


def ort_calibrate(
    model: onnx.ModelProto,
    calib,
    options: CalibrationOptions | str = "minmax",
    *,
    op_types: Sequence[str] | None = None,
    batch_size: int = 16,
) -> TensorsData:
    """ORT's own calibrator (``create_calibrator`` + ``collect_data`` + ``compute_data``) on the same data.

    Args:
        model: A shape-inferred model (saved to a temporary file for ORT).
        calib: The samples (see :func:`calibrate`).
        options: The method and settings.
        op_types: ORT's ``op_types_to_calibrate``.
        batch_size: Samples per run (histogram methods need it to divide the sample count: ORT
            stacks all batches into one array).

    Returns:
        ORT's ranges.
    """
    options = CalibrationOptions(options) if isinstance(options, str) else options
    batch_size = fixed_batch_size(model) or batch_size
    large = model.ByteSize() >= MAX_PROTO_BYTES
    with tempfile.TemporaryDirectory(prefix="wb_ortcal_") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save_model(model, str(path), save_as_external_data=large)
        calibrator = create_calibrator(
            path,
            list(op_types or []),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=options.ort_method,
            use_external_data_format=large,
            extra_options=options.ort_extra_options(),
        )
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            calibrator.collect_data(ArrayReader(calib, batch_size))
            result = calibrator.compute_data()
        del calibrator
    return result


def compare_ranges(ours: TensorsData, theirs: TensorsData, *, fields: Sequence[str] = ()) -> dict:
    """How far two sets of ranges are apart.

    Args:
        ours: Ranges to check.
        theirs: Reference ranges (ORT's).
        fields: Other TensorData fields to compare too (``hist``, ``hist_edges``, ``avg``, ``std``).

    Returns:
        ``{"tensors", "missing", "extra", "exact", "max_abs_diff", "max_rel_diff", "worst",
        "fields_equal"}``; ``exact`` is True when every tensor's low and high are equal (and the
        tensor sets match); ``fields_equal`` when every requested field is equal too.
    """
    ours_keys, theirs_keys = set(ours.keys()), set(theirs.keys())
    worst, max_abs, max_rel, exact = None, 0.0, 0.0, ours_keys == theirs_keys
    fields_equal = True
    for name in sorted(ours_keys & theirs_keys):
        a = np.concatenate([np.ravel(x).astype(np.float64) for x in ours[name].range_value])
        b = np.concatenate([np.ravel(x).astype(np.float64) for x in theirs[name].range_value])
        if not np.array_equal(a, b):
            exact = False
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        rel = diff / max(float(np.max(np.abs(b))), 1e-12)
        if diff > max_abs:
            max_abs, worst = diff, name
        max_rel = max(max_rel, rel)
        for key in fields:
            x, y = getattr(ours[name], key, None), getattr(theirs[name], key, None)
            if x is None or y is None or not np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True):
                fields_equal = False
    return {
        "tensors": len(theirs_keys),
        "missing": sorted(theirs_keys - ours_keys),
        "extra": sorted(ours_keys - theirs_keys),
        "exact": exact,
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "worst": worst,
        "fields_equal": fields_equal,
    }


def prepare_for_calibration(model: onnx.ModelProto, *, fp8: bool = False) -> onnx.ModelProto:
    """The model ORT's ``quantize_static`` calibrates: shape-inferred, opset updated.

    Mirrors ``load_model_with_shape_infer`` + ``update_opset_version``: opset raised to 11 when
    below 10, and to 19 for float8 (``fp8=True``).
    """
    from onnxruntime.quantization.quant_utils import QuantType, update_opset_version

    with tempfile.TemporaryDirectory(prefix="wb_prep_") as tmp:
        path = Path(tmp) / "model.onnx"
        large = model.ByteSize() >= MAX_PROTO_BYTES
        onnx.save_model(model, str(path), save_as_external_data=large)
        inferred = Path(tmp) / "inferred.onnx"
        onnx.shape_inference.infer_shapes_path(str(path), str(inferred))
        prepared = onnx.load(str(inferred))
    qtype = QuantType.QFLOAT8E4M3FN if fp8 else QuantType.QInt8
    with contextlib.redirect_stdout(io.StringIO()):
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            return update_opset_version(prepared, qtype, qtype)
        finally:
            logging.disable(previous)
