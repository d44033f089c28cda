"""A TensorRT engine's inputs and outputs: names, types and shapes, and the checks on what is fed.

:func:`read_engine_io` reads the I/O tensors once when an engine loads (TensorRT 10/11's
name-based API: ``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``...). The rest is
pure and tested without TensorRT: :func:`check_input_shape` and :func:`prepare_feed` check
inputs against the engine's optimization profile, :func:`inputs_for_engine` and
:func:`random_inputs` make inputs up from it. ``tensorrt`` is imported inside functions only.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from workbench.backends.tensorrt.shapes import ShapeRange, profile_from_dict
from workbench.datasets.arrays import synthetic_inputs
from workbench.errors import WorkbenchError

if TYPE_CHECKING:  # names for annotations only; tensorrt is imported inside functions
    import tensorrt as trt


class InputShapeError(WorkbenchError, ValueError):
    """Inputs that do not fit the engine; the message names the input and the fix."""


@dataclasses.dataclass
class EngineIO:
    """An engine's I/O tensors, in engine order.

    Attributes:
        input_names, output_names: Tensor names.
        dtypes: TensorRT ``DataType`` per tensor.
        fixed_shapes: Shape of each static input.
        shape_profile: Min/opt/max of each dynamic input (optimization profile 0).
    """

    input_names: list[str] = dataclasses.field(default_factory=list)
    output_names: list[str] = dataclasses.field(default_factory=list)
    dtypes: dict[str, Any] = dataclasses.field(default_factory=dict)
    fixed_shapes: dict[str, tuple] = dataclasses.field(default_factory=dict)
    shape_profile: dict[str, ShapeRange] = dataclasses.field(default_factory=dict)

    def numpy_dtype(self, name: str) -> np.dtype:
        """The numpy type of tensor ``name`` (``trt.nptype``; raises for types numpy lacks)."""
        import tensorrt as trt

        return np.dtype(trt.nptype(self.dtypes[name]))


def read_engine_io(engine: trt.ICudaEngine) -> EngineIO:
    """Read an engine's I/O tensors.

    Args:
        engine: The deserialized engine.

    Returns:
        Its inputs and outputs; dynamic inputs get profile 0's min/opt/max.

    Raises:
        InputShapeError: The engine has a shape tensor (this backend runs execution tensors only).
    """
    import tensorrt as trt

    io = EngineIO()
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        if engine.is_shape_inference_io(name):
            raise InputShapeError(f"tensor {name!r} is a shape tensor; this backend runs execution tensors only")
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        (io.input_names if is_input else io.output_names).append(name)
        io.dtypes[name] = engine.get_tensor_dtype(name)
        shape = tuple(engine.get_tensor_shape(name))
        if is_input and any(d < 0 for d in shape):
            lo, opt, hi = (tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
            io.shape_profile[name] = ShapeRange(lo, opt, hi)
        elif is_input:
            io.fixed_shapes[name] = shape
    return io


def check_input_shape(name: str, shape: Sequence[int], shape_range: ShapeRange | None, fixed_shape: Sequence[int] | None = None) -> None:
    """Refuse an input shape the engine cannot run, naming the input and the fix.

    Args:
        name: The input.
        shape: The data's shape.
        shape_range: The engine's min/opt/max for it; None for a static input.
        fixed_shape: The static input's shape (when ``shape_range`` is None).

    Raises:
        InputShapeError: Wrong rank, a fixed dimension that differs, or a size outside the
            profile's [min, max].
    """
    shape = [int(d) for d in shape]
    if shape_range is None:
        if fixed_shape is not None and list(fixed_shape) != shape:
            raise InputShapeError(f"input {name!r} has shape {shape}; the engine takes exactly {list(fixed_shape)}")
        return
    if len(shape) != len(shape_range.min):
        raise InputShapeError(f"input {name!r} has rank {len(shape)} ({shape}); the engine expects rank {len(shape_range.min)}")
    for i, (lo, d, hi) in enumerate(zip(shape_range.min, shape, shape_range.max)):
        if not lo <= d <= hi:
            what = "batch" if i == 0 else f"dimension {i}"
            raise InputShapeError(
                f"input {name!r} {what} {d} is outside the engine's profile ({lo} to {hi}; "
                f"shape {shape}): rebuild the engine with a range that covers it "
                "(recipe 'max_batch' or 'shapes'), or feed fewer samples per inference"
            )


def prepare_feed(io: EngineIO, inputs: Mapping[str, Any], numpy_dtype: Callable[[str], np.dtype]) -> dict[str, np.ndarray]:
    """Check inputs against the engine and convert them to its types (C-contiguous).

    Args:
        io: The engine's I/O tensors.
        inputs: Input name -> array-like, for every engine input.
        numpy_dtype: Tensor name -> numpy type (:meth:`EngineIO.numpy_dtype`), called once per
            input, in engine order.

    Returns:
        Input name -> array, in engine order.

    Raises:
        ValueError: Unknown input names. KeyError: A missing input.
        InputShapeError: A shape the engine cannot run.
    """
    unknown = sorted(set(inputs) - set(io.input_names))
    if unknown:
        raise ValueError(f"unknown input name(s) {unknown}; engine inputs: {io.input_names}")
    feed = {}
    for name in io.input_names:
        if name not in inputs:
            raise KeyError(f"missing input {name!r}; engine inputs: {io.input_names}")
        array = np.ascontiguousarray(inputs[name], dtype=numpy_dtype(name))
        check_input_shape(name, array.shape, io.shape_profile.get(name), io.fixed_shapes.get(name))
        feed[name] = array
    return feed


def batch_size_of(feed: Mapping[str, np.ndarray], input_names: Sequence[str]) -> int:
    """Samples per inference: the first input's first dimension (1 without inputs or for a scalar)."""
    return int(feed[input_names[0]].shape[0]) if input_names and feed[input_names[0]].ndim else 1


def random_inputs(io: EngineIO, numpy_dtype: Callable[[str], np.dtype], *, batch: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal inputs at the engine's own shapes, for engines without metadata.

    Args:
        io: The engine's I/O tensors.
        numpy_dtype: Tensor name -> numpy type (:meth:`EngineIO.numpy_dtype`).
        batch: Replaces the first dimension of dynamic inputs.
        seed: Random seed.

    Returns:
        Input name -> array: dynamic inputs at the profile's opt shape, static ones at theirs.
    """
    rng = np.random.default_rng(seed)
    inputs = {}
    for name in io.input_names:
        shape = list(io.shape_profile[name].opt) if name in io.shape_profile else list(io.fixed_shapes[name])
        if batch is not None and name in io.shape_profile:
            shape[0] = int(batch)
        inputs[name] = rng.standard_normal(shape).astype(numpy_dtype(name))
    return inputs


def inputs_for_engine(metadata: Mapping, *, batch: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs the engine accepts: the profile's opt shapes (batch replaced if given).

    Args:
        metadata: The engine's metadata (``inputs`` and ``profile``).
        batch: Samples per inference (replaces a dynamic first dimension).
        seed: Random seed.

    Returns:
        Input name -> array.
    """

    profile = profile_from_dict(metadata.get("profile") or {})
    specs = []
    for spec in metadata["inputs"]:
        shape = list(spec["shape"])
        if spec["name"] in profile:
            shape = list(profile[spec["name"]].opt)
            if batch is not None and not isinstance(spec["shape"][0], int):
                shape[0] = int(batch)
        specs.append({**spec, "shape": shape})
    return synthetic_inputs(specs, batch=batch or 1, seed=seed)
