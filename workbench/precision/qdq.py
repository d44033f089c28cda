"""Explicit quantization (Q/DQ) for TensorRT, made with ONNX Runtime's quantizer and our ranges.

``quantize_static`` = calibrate + ``QDQQuantizer(model, ..., tensors_range, ...).quantize_model()``.
Here the ranges come from :mod:`workbench.precision.calibrator` (equal to ORT's calibrator's) and go
into the same ``QDQQuantizer`` call with the settings TensorRT needs:

- QDQ format, ``ActivationSymmetric`` and ``WeightSymmetric``: every zero point is 0;
- activations per tensor; weights per output channel (``per_channel``; axis 0 for Conv/Gemm, 1
  for MatMul's ``[K, N]`` weights) or per tensor;
- Q/DQ on the inputs of the weighted ops only (``OpTypesToExcludeOutputQuantization``),
  ``DedicatedQDQPair`` (TensorRT cannot share a Q/DQ pair between consumers), biases left in float
  (``QuantizeBias=False``: TensorRT fuses float biases).

**FP8 (E4M3)**: ORT's own float8 path derives scales from a Gaussian fit of each tensor
(``std / std(E4M3 values)``), only with the ``distribution`` calibrator; on ``digits_cnn`` it
keeps 23 % top-1 (FP32: 99.4 %), and it fails on models with Softmax (ORT gives Softmax's output a
fixed range without a std). So the FP8 variant takes the INT8 graph ORT makes (same Q/DQ
placement) and converts every Q/DQ pair to ``float8e4m3fn`` with TensorRT's / ModelOpt's max
scaling, ``scale = amax / 448`` (amax from the calibrated range; weights per channel from the
float weights), zero points float8 0, opset 19: 99.4 % on ``digits_cnn``.

ONNX Runtime 1.32's CPU provider runs float8 Q/DQ, but at graph optimization level 2 and above
it drops a Relu that feeds a float8 QuantizeLinear (the Relu -> QuantizeLinear fusion among its
level-2 rewrite rules; disabling ``Level2_RuleBasedTransformer`` restores the results), so FP8
variants must run there with graph optimizations at ``basic`` (10.8 % instead of 99.4 % on
``digits_cnn`` otherwise); variant records carry that setting.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.calibrate import TensorsData

from workbench.errors import WorkbenchError

FP8_MAX = 448.0  # largest finite float8e4m3fn
INT8_QMAX = 127.0  # ORT's symmetric int8 range is [-127, 127]


class QuantizationError(WorkbenchError, ValueError):
    """Quantization could not be done as asked; the message says what and how to fix it."""


@contextlib.contextmanager
def quiet_ort_logging():
    """Silence ORT quantization's root-logger warnings (pre-processing advice etc.) for a block."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def tensorrt_extra_options(op_types: Sequence[str]) -> dict:
    """``extra_options`` for ORT's QDQ quantizer that make a TensorRT-ready graph."""
    return {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "DedicatedQDQPair": True,
        "QuantizeBias": False,
        "OpTypesToExcludeOutputQuantization": list(op_types),
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
    }


def check_node_names(model: onnx.ModelProto, names: Sequence[str], what: str = "exclude") -> None:
    """Refuse node names the model does not have, suggesting close ones.

    Raises:
        QuantizationError: Names not in the model's main graph.
    """
    import difflib

    known = [n.name for n in model.graph.node]
    missing = [n for n in names if n not in set(known)]
    if missing:
        hints = []
        for name in missing[:5]:
            close = difflib.get_close_matches(name, known, n=2)
            hints.append(f"'{name}'" + (f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""))
        raise QuantizationError(
            f"node(s) to {what} not in the model: {', '.join(hints)}. Node names are listed by "
            "`workbench inspect MODEL --nodes` (--json: key 'nodes') and LoadedModel.node_names."
        )


def check_op_types(model: onnx.ModelProto, op_types: Sequence[str]) -> list[str]:
    """The op types (of ``op_types``) the model actually has; refuses when it has none of them.

    Raises:
        QuantizationError: None of the op types occur in the model.
    """
    present = {n.op_type for n in model.graph.node}
    found = [op for op in op_types if op in present]
    if not found:
        raise QuantizationError(
            f"the model has none of the op types to quantize {list(op_types)} (it has "
            f"{sorted(present)}). Choose some of these (op_types_to_quantize= in a Recipe, op_types= in "
            "quantize_command), or make an FP16 variant instead."
        )
    return found


def quantize_int8_qdq(
    model: onnx.ModelProto,
    tensors_range: TensorsData,
    *,
    op_types: Sequence[str],
    per_channel: bool = True,
    nodes_to_exclude: Sequence[str] = (),
) -> onnx.ModelProto:
    """INT8 Q/DQ with ORT's ``QDQQuantizer``, fed our calibrated ranges (``quantize_static``'s path).

    Args:
        model: The model ``quantize_static`` would quantize (shape-inferred, opset-updated:
            :func:`workbench.precision.calibrator.prepare_for_calibration`). Not modified.
        tensors_range: Calibrated ranges.
        op_types: Op types to quantize.
        per_channel: Per-channel weight scales.
        nodes_to_exclude: Node names left unquantized.

    Returns:
        The quantized model (topologically sorted, as ``quantize_static`` saves it).
    """
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import QuantType

    working = onnx.ModelProto()
    working.CopyFrom(model)
    with quiet_ort_logging():
        quantizer = QDQQuantizer(
            working,
            per_channel,
            False,  # reduce_range
            QuantType.QInt8,
            QuantType.QInt8,
            tensors_range,
            [],  # nodes_to_quantize: all
            list(nodes_to_exclude),
            list(op_types),
            tensorrt_extra_options(op_types),
        )
        quantizer.quantize_model()
        quantizer.model.topological_sort()
    return quantizer.model.model


def convert_qdq_to_fp8(
    qdq_model: onnx.ModelProto,
    float_model: onnx.ModelProto,
    tensors_range: TensorsData | None = None,
) -> onnx.ModelProto:
    """Turn an INT8 Q/DQ graph into FP8 (E4M3) Q/DQ with max scaling (``amax / 448``).

    Args:
        qdq_model: ORT's symmetric INT8 Q/DQ model (opset >= 19 for float8 Q/DQ).
        float_model: The float model it came from (for the float weights).
        tensors_range: The calibrated ranges (activation amax); without them amax is recovered
            from the INT8 scale (``scale * 127``).

    Returns:
        A new model: activation Q/DQ pairs and weight DQs in float8e4m3fn, zero points float8 0.

    Raises:
        QuantizationError: The model's opset is below 19.
    """
    import ml_dtypes

    model = onnx.ModelProto()
    model.CopyFrom(qdq_model)
    if _opset(model) < 19:
        raise QuantizationError(
            f"float8 Q/DQ needs opset 19 or later; this model is at {_opset(model)}. Prepare it with "
            "prepare_for_calibration(model, fp8=True)."
        )
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    float_weights = {init.name: init for init in float_model.graph.initializer}
    replaced: dict[str, onnx.TensorProto] = {}
    done_scales: set[str] = set()
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        data, scale_name, zp_name = node.input[0], node.input[1], node.input[2]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if node.op_type == "DequantizeLinear" and data in inits and inits[data].data_type == TensorProto.INT8:
            # a quantized weight: re-quantize the float weights to E4M3
            source = data[: -len("_quantized")] if data.endswith("_quantized") else None
            int8_scale = numpy_helper.to_array(inits[scale_name]).astype(np.float32)
            if source in float_weights:
                weight = numpy_helper.to_array(float_weights[source]).astype(np.float32)
            else:  # recover the weights from the int8 values
                q = numpy_helper.to_array(inits[data]).astype(np.float32)
                weight = q * _broadcast(int8_scale, q.ndim, axis)
            scale = _weight_scale(weight, int8_scale.ndim > 0 and int8_scale.size > 1, axis)
            fp8 = _to_fp8(weight / _broadcast(scale, weight.ndim, axis), ml_dtypes)
            replaced[data] = _fp8_tensor(data, fp8)
            replaced[scale_name] = numpy_helper.from_array(scale.reshape(int8_scale.shape), scale_name)
            replaced[zp_name] = _fp8_zero(zp_name, int8_scale.shape)
            continue
        if scale_name in done_scales:
            continue
        # an activation: Q and DQ share scale and zero point initializers
        int8_scale = numpy_helper.to_array(inits[scale_name]).astype(np.float32)
        amax = None
        if tensors_range is not None and data in tensors_range:
            low, high = tensors_range[data].range_value
            amax = float(max(abs(float(np.ravel(low)[0])), abs(float(np.ravel(high)[0]))))
        if amax is None:
            amax = float(np.max(int8_scale)) * INT8_QMAX
        scale = np.array(amax / FP8_MAX if amax > 0 else 1.0, dtype=np.float32).reshape(int8_scale.shape)
        replaced[scale_name] = numpy_helper.from_array(scale, scale_name)
        replaced[zp_name] = _fp8_zero(zp_name, int8_scale.shape)
        done_scales.add(scale_name)
    for index, init in enumerate(graph.initializer):
        if init.name in replaced:
            graph.initializer[index].CopyFrom(replaced[init.name])
    # value_info for the quantized tensors still says int8
    int8_outputs = {out for n in graph.node if n.op_type == "QuantizeLinear" for out in n.output}
    for vi in graph.value_info:
        if vi.name in int8_outputs:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT8E4M3FN
    return model


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _broadcast(scale: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    if scale.ndim == 0 or scale.size == 1:
        return scale.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = scale.size
    return scale.reshape(shape)


def _weight_scale(weight: np.ndarray, per_channel: bool, axis: int) -> np.ndarray:
    """amax / 448 per channel along ``axis`` (or one for the tensor); 1.0 where amax is 0."""
    if per_channel:
        axes = tuple(i for i in range(weight.ndim) if i != axis % weight.ndim)
        amax = np.max(np.abs(weight), axis=axes)
    else:
        amax = np.array(np.max(np.abs(weight)))
    scale = (amax / FP8_MAX).astype(np.float32)
    return np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)


def _to_fp8(values: np.ndarray, ml_dtypes) -> np.ndarray:
    """Round to E4M3 (nearest even), saturating at +-448 as QuantizeLinear(saturate=1) does."""
    return np.clip(values, -FP8_MAX, FP8_MAX).astype(ml_dtypes.float8_e4m3fn)


def _fp8_tensor(name: str, values: np.ndarray) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT8E4M3FN, values.shape, values.view(np.uint8).tobytes(), raw=True)


def _fp8_zero(name: str, shape) -> onnx.TensorProto:
    shape = tuple(shape)
    size = int(np.prod(shape)) if shape else 1
    return helper.make_tensor(name, TensorProto.FLOAT8E4M3FN, shape, bytes(size), raw=True)


def qdq_summary(model: onnx.ModelProto) -> dict:
    """Counts and types of the Q/DQ nodes: for records and checks.

    Returns:
        ``{"quantize": n, "dequantize": n, "types": [...], "zero_points_all_zero": bool,
        "quantized_nodes": [names of nodes fed by a DequantizeLinear]}``.
    """
    inits = {init.name: init for init in model.graph.initializer}
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    types, zero = set(), True
    for node in q + dq:
        if len(node.input) > 2 and node.input[2] in inits:
            zp = inits[node.input[2]]
            types.add(TensorProto.DataType.Name(zp.data_type))
            values = numpy_helper.to_array(zp)
            if np.any(values.astype(np.float32) != 0):
                zero = False
    dq_outputs = {out for n in dq for out in n.output}
    quantized = sorted({n.name for n in model.graph.node
                        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(i in dq_outputs for i in n.input)})
    return {"quantize": len(q), "dequantize": len(dq), "types": sorted(types), "zero_points_all_zero": zero,
            "quantized_nodes": quantized}


def weight_scales(qdq_model: onnx.ModelProto, float_model: onnx.ModelProto, op_types: Sequence[str],
                  excluded: Sequence[str] = ()) -> dict:
    """How the weights of a Q/DQ variant are actually quantized (what its record claims is checked here).

    Args:
        qdq_model: The quantized model.
        float_model: The model it was quantized from.
        op_types: The op types quantized.
        excluded: Node names left unquantized.

    Returns:
        ``{"per_channel": n, "per_tensor": n, "computed_at_run_time": [node names]}``: weight
        DequantizeLinear nodes with one scale per channel or one for the tensor, and the quantized
        nodes whose weight input (input 1) is not an initializer, so ORT's quantizer treats it as an
        activation (per tensor, at run time).
    """
    inits = {init.name: init for init in qdq_model.graph.initializer}
    per_channel = per_tensor = 0
    for node in qdq_model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        if inits[node.input[0]].data_type not in (TensorProto.INT8, TensorProto.UINT8, TensorProto.FLOAT8E4M3FN):
            continue
        scale = inits.get(node.input[1])
        if scale is not None and int(np.prod(scale.dims)) > 1:
            per_channel += 1
        else:
            per_tensor += 1
    weights = {init.name for init in float_model.graph.initializer}
    skip = set(excluded)
    runtime = [node.name for node in float_model.graph.node
               if node.op_type in op_types and node.name not in skip and len(node.input) > 1
               and node.input[1] not in weights]
    return {"per_channel": per_channel, "per_tensor": per_tensor, "computed_at_run_time": runtime}
