"""Recipes: what precision a variant gets, how it is calibrated, and what stays in higher precision.

A :class:`Recipe` is a frozen, validated description; its :meth:`Recipe.hash` (over the canonical
JSON of :meth:`Recipe.to_dict`) keys the variant cache, so equal recipes give the same variant.

    Recipe("int8", method="entropy", exclude_nodes=("/classifier/Gemm",))
    Recipe("fp16", keep_fp32_op_types=("Softmax",))
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from workbench.errors import WorkbenchError
from workbench.precision.calib_options import CalibrationOptions, canonical_method

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "fp8")
QUANTIZED = ("int8", "fp8")
FLOAT_REDUCED = ("fp16", "bf16")
TOOLS = ("auto", "onnxruntime", "modelopt")
HIGH_PRECISIONS = ("fp32", "fp16", "bf16")
# TensorRT's explicit-quantization guidance: quantize the inputs of weighted ops; not their outputs.
TENSORRT_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")
RECIPE_VERSION = 1


class RecipeError(WorkbenchError, ValueError):
    """A recipe setting is invalid; the message names it and the allowed values."""


def _tuple(value, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    try:
        items = tuple(str(v) for v in value)
    except TypeError as err:
        raise RecipeError(f"{name} must be a list of strings, got {value!r}") from err
    return tuple(dict.fromkeys(items))  # de-duplicated, order kept


@dataclass(frozen=True)
class Recipe:
    """How to make a variant.

    Attributes:
        precision: ``fp32`` (a reference copy), ``fp16``, ``bf16``, ``int8`` or ``fp8`` (E4M3).
        method: Calibration method for int8/fp8: ``minmax`` (alias ``max``), ``entropy``,
            ``percentile``, ``distribution``.
        num_samples: Calibration samples to use; None uses all.
        sample_selection: ``"first"`` N samples or ``"random"`` N with ``seed``.
        seed: Random seed for ``"random"``.
        per_channel: int8/fp8 weights per output channel (axis 0 for Conv/Gemm, 1 for MatMul);
            False for one scale per tensor. Activations are always per tensor.
        op_types_to_quantize: Op types given Q/DQ on their inputs; None uses TensorRT's guidance
            (Conv, ConvTranspose, Gemm, MatMul).
        exclude_nodes: Node names kept out of the reduced precision (int8/fp8: not quantized;
            fp16/bf16: kept in FP32).
        exclude_op_types: Op types kept out of the reduced precision, likewise.
        keep_fp32_nodes: For fp16/bf16 (and quantized recipes whose ``high_precision`` is
            fp16/bf16): nodes kept in FP32.
        keep_fp32_op_types: Op types kept in FP32, likewise.
        high_precision: For int8/fp8, the precision of the parts left unquantized: ``fp32``
            (default) or ``fp16``/``bf16`` (ModelOpt only).
        num_bins: Histogram bins (entropy 128, percentile/distribution 2048 by default, as ORT).
        num_quantized_bins: Entropy's quantized bins (128).
        percentile: Percentile kept by ``percentile`` (99.999).
        symmetric_range: Symmetrize calibrated ranges (ORT's ``CalibTensorRangeSymmetric``).
            Scales are symmetric regardless (zero points are 0).
        batch_size: Samples per calibration run.
        exact_calibration: Calibrate with graph optimizations off, as ORT's calibrator does
            (ranges bit-equal to ORT's, the variant bit-equal to ``quantize_static``'s); the
            default False lets ORT optimize the calibration graph (~1.4x faster on CNNs, ranges
            equal to ~1e-6 relative).
        tool: ``"auto"`` (ModelOpt for int8/fp8 when installed, else ONNX Runtime),
            ``"onnxruntime"`` or ``"modelopt"``.
        name: A label for the variant (not part of the hash).
    """

    precision: str
    method: str = "minmax"
    num_samples: int | None = None
    sample_selection: str = "first"
    seed: int = 0
    per_channel: bool = True
    op_types_to_quantize: tuple[str, ...] | None = None
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    keep_fp32_nodes: tuple[str, ...] = ()
    keep_fp32_op_types: tuple[str, ...] = ()
    high_precision: str = "fp32"
    num_bins: int | None = None
    num_quantized_bins: int | None = None
    percentile: float | None = None
    symmetric_range: bool | None = None
    batch_size: int = 16
    exact_calibration: bool = False
    tool: str = "auto"
    name: str | None = field(default=None, compare=False)

    def __post_init__(self):
        set_ = lambda key, value: object.__setattr__(self, key, value)  # noqa: E731  (frozen)
        precision = str(self.precision).strip().lower()
        if precision not in PRECISIONS:
            raise RecipeError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}.")
        set_("precision", precision)
        try:
            set_("method", canonical_method(self.method))
        except WorkbenchError as err:
            raise RecipeError(str(err)) from err
        if self.num_samples is not None:
            if int(self.num_samples) < 1:
                raise RecipeError(f"num_samples must be at least 1 (or None for all), got {self.num_samples}.")
            set_("num_samples", int(self.num_samples))
        if self.sample_selection not in ("first", "random"):
            raise RecipeError(f"sample_selection must be 'first' or 'random', got {self.sample_selection!r}.")
        if int(self.batch_size) < 1:
            raise RecipeError(f"batch_size must be at least 1, got {self.batch_size}.")
        set_("batch_size", int(self.batch_size))
        set_("seed", int(self.seed))
        if self.op_types_to_quantize is not None:
            ops = _tuple(self.op_types_to_quantize, "op_types_to_quantize")
            if not ops:
                raise RecipeError("op_types_to_quantize is empty; give op types, or None for TensorRT's default.")
            set_("op_types_to_quantize", ops)
        for key in ("exclude_nodes", "exclude_op_types", "keep_fp32_nodes", "keep_fp32_op_types"):
            set_(key, _tuple(getattr(self, key), key))
        if self.high_precision not in HIGH_PRECISIONS:
            raise RecipeError(f"high_precision must be one of {HIGH_PRECISIONS}, got {self.high_precision!r}.")
        if self.tool not in TOOLS:
            raise RecipeError(f"tool must be one of {TOOLS}, got {self.tool!r}.")
        if self.precision == "fp8" and self.method == "distribution" and self.tool == "modelopt":
            raise RecipeError("ModelOpt calibrates fp8 with 'max' or 'entropy'; choose one of those.")
        self.calibration_options()  # validates the calibration settings

    # ---- derived settings ----------------------------------------------------------------

    @property
    def needs_calibration(self) -> bool:
        """int8/fp8 need calibration data; fp16 uses it (optionally) for its range safeguard."""
        return self.precision in QUANTIZED

    @property
    def quantized_op_types(self) -> tuple[str, ...]:
        """Op types that get Q/DQ: ``op_types_to_quantize`` (or TensorRT's) minus ``exclude_op_types``."""
        ops = self.op_types_to_quantize or TENSORRT_OP_TYPES
        return tuple(op for op in ops if op not in self.exclude_op_types)

    @property
    def fp32_nodes(self) -> tuple[str, ...]:
        """For fp16/bf16: every node name kept in FP32 by the recipe."""
        return tuple(dict.fromkeys(self.exclude_nodes + self.keep_fp32_nodes))

    @property
    def fp32_op_types(self) -> tuple[str, ...]:
        """For fp16/bf16: every op type kept in FP32 by the recipe."""
        return tuple(dict.fromkeys(self.exclude_op_types + self.keep_fp32_op_types))

    def calibration_options(self) -> CalibrationOptions:
        """The calibration method and settings (ORT's defaults where the recipe leaves None)."""
        try:
            return CalibrationOptions(
                self.method,
                symmetric=self.symmetric_range,
                num_bins=self.num_bins,
                num_quantized_bins=self.num_quantized_bins,
                percentile=self.percentile,
            )
        except WorkbenchError as err:
            raise RecipeError(str(err)) from err

    # ---- records -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Every setting, JSON-able (tuples as lists)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        """A recipe from :meth:`to_dict` output (unknown keys refused, naming them)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(f"unknown recipe setting(s) {unknown}; known: {sorted(known)}.")
        return cls(**dict(data))

    def hash_dict(self) -> dict:
        """The settings that change the variant (``name`` left out), with the recipe format version."""
        data = self.to_dict()
        data.pop("name", None)
        data["recipe_version"] = RECIPE_VERSION
        if self.precision not in QUANTIZED:  # calibration settings do not matter
            for key in ("method", "per_channel", "op_types_to_quantize", "num_bins", "num_quantized_bins",
                        "percentile", "symmetric_range", "high_precision", "exclude_op_types", "exclude_nodes"):
                data.pop(key, None)
            data["fp32_nodes"] = list(self.fp32_nodes)
            data["fp32_op_types"] = list(self.fp32_op_types)
        return data

    def hash(self) -> str:
        """A stable hash of the recipe (sha256 of its canonical JSON), 16 hex digits."""
        text = json.dumps(self.hash_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """``name`` or a short description like ``int8-minmax``."""
        if self.name:
            return self.name
        if self.precision in QUANTIZED:
            return f"{self.precision}-{self.method}"
        return self.precision

    def with_(self, **changes) -> "Recipe":
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)
