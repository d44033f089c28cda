"""Optimization profiles: min/opt/max shapes for every input, from the model, the data and overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from workbench.backends.tensorrt.recipe import (
    DEFAULT_MAX_BATCH,
    BuildRecipeError,
)


@dataclass(frozen=True)
class ShapeRange:
    """The min/opt/max shapes of one input in an optimization profile."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def contains(self, shape: Sequence[int]) -> bool:
        """Whether ``shape`` is within ``[min, max]`` in every dimension."""
        return len(shape) == len(self.min) and all(
            lo <= int(d) <= hi for lo, d, hi in zip(self.min, shape, self.max)
        )

def is_static_dim(dim: Any) -> bool:
    """Whether a model dimension is a fixed size (an int > 0), not a name or unknown."""
    return isinstance(dim, int) and not isinstance(dim, bool) and dim > 0

def _dim_name(dim: Any) -> str | None:
    """A dynamic dimension's symbolic name, or None for an anonymous one (``?``, ``-1``, ``""``)."""
    return dim if isinstance(dim, str) and dim not in ("", "?") else None

@dataclass(frozen=True)
class DynamicDim:
    """How the profile sets one dynamic dimension of one input (stated in the build plan).

    Attributes:
        input: The input name.
        axis: The dimension.
        name: Its symbolic name in the model (``"?"`` when anonymous).
        role: ``"batch"`` (the samples' axis) or ``"other"`` (a width, a sequence length...).
        min, opt, max: The profile's range for it.
        source: Where the range came from: ``"recipe"`` (explicit shapes), ``"batch"`` (the
            batch given), ``"default batch"`` (1: no batch given), ``"data"`` (pinned to the
            data's size).
    """

    input: str
    axis: int
    name: str
    role: str
    min: int
    opt: int
    max: int
    source: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)

@dataclass
class ProfilePlan:
    """An optimization profile with what it decided about each dynamic dimension, and warnings."""

    profile: dict[str, ShapeRange]
    dims: list[DynamicDim]
    warnings: list[str]

def _batch_axes(input_specs: Sequence[Mapping], sample_axes: Mapping[str, int | None]) -> dict[str, int | None]:
    """Each input's batch axis: its sample axis (default 0; None for inputs fed as they are)."""
    axes = {}
    for spec in input_specs:
        shape = spec.get("shape")
        rank = len(shape) if shape is not None else None
        axis = sample_axes.get(spec["name"], 0 if rank else None)
        if axis is not None and rank is not None:
            axis = axis + rank if axis < 0 else axis
            if not 0 <= axis < rank:
                raise BuildRecipeError(
                    f"input {spec['name']!r} has rank {rank} ({list(shape)}), so it has no axis {axis} for its samples"
                )
        axes[spec["name"]] = axis
    return axes

def _batch_dim_names(input_specs: Sequence[Mapping], batch_axes: Mapping[str, int | None]) -> set[str]:
    """Symbolic names of the dynamic batch dimensions (a dimension elsewhere with the same name,
    such as a recurrent state's ``[2, "batch", 128]``, is the batch too)."""
    names = set()
    for spec in input_specs:
        axis, shape = batch_axes.get(spec["name"]), spec.get("shape")
        if axis is not None and shape is not None and not is_static_dim(shape[axis]) and _dim_name(shape[axis]):
            names.add(shape[axis])
    return names

def plan_profile(
    input_specs: Sequence[Mapping],
    *,
    data_shapes: Mapping[str, Sequence[int]] | None = None,
    sample_axes: Mapping[str, int | None] | None = None,
    batch: int | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    overrides: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
) -> ProfilePlan:
    """Choose min/opt/max shapes for every input with a dynamic dimension, and say how.

    Per dynamic dimension of each input:

    * the batch (the input's sample axis, 0 unless ``sample_axes`` says otherwise, and any
      dimension sharing its symbolic name): min 1, opt ``batch`` (1 when not given: the number
      of samples in the data is not a batch size), max ``max(opt, max_batch)``;
    * any other dimension: min = opt = max = the data's size for it, with a warning that the
      engine will take no other size; without data this is an error naming the input and
      dimension (there is no sensible default for a width or a sequence length).

    Explicit ``overrides`` win; ``{"opt": [...]}`` alone means min = opt = max (as trtexec).

    Args:
        input_specs: ``{"name", "shape"}`` per model input (``ModelSummary.inputs``); a shape
            holds ints for fixed dimensions and names (``"batch"``, ``"?"``) for dynamic ones.
        data_shapes: The shapes of the data the engine will run (any number of samples along
            each input's sample axis), by input name: they set the non-batch dimensions.
        sample_axes: Input -> the axis its samples run along, or None for an input fed as it
            is (the data description); inputs not named: axis 0.
        batch: The batch the engine will mostly run (the profile's opt); default 1.
        max_batch: Cap for the batch range.
        overrides: Explicit shapes per input.

    Returns:
        The plan: ``profile`` (input name -> :class:`ShapeRange`, for dynamic and overridden
        inputs only, in model input order), ``dims`` (one :class:`DynamicDim` per dynamic
        dimension) and ``warnings``.

    Raises:
        BuildRecipeError: Overrides or data that do not fit the model, or a dynamic non-batch
            dimension without data.
    """
    data_shapes = dict(data_shapes or {})
    overrides = dict(overrides or {})
    names = [spec["name"] for spec in input_specs]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise BuildRecipeError(f"shapes given for {unknown}, which are not model inputs; inputs: {names}")
    if batch is not None and int(batch) < 1:
        raise BuildRecipeError(f"batch must be at least 1, got {batch!r}")
    opt_batch = int(batch) if batch is not None else 1
    batch_axes = _batch_axes(input_specs, dict(sample_axes or {}))
    batch_names = _batch_dim_names(input_specs, batch_axes)
    plan = ProfilePlan({}, [], [])
    for spec in input_specs:
        name, shape = spec["name"], spec.get("shape")
        if name in overrides:
            plan.profile[name] = _shape_range_from_override(name, shape, overrides[name])
            plan.dims += _override_dims(name, shape, plan.profile[name])
            continue
        if shape is None:
            raise BuildRecipeError(
                f"input {name!r} has an unknown rank; give its shapes in the recipe: "
                f'"shapes": {{"{name}": {{"min": [...], "opt": [...], "max": [...]}}}}'
            )
        if all(is_static_dim(d) for d in shape):
            continue
        data = data_shapes.get(name)
        if data is not None:
            _check_data_shape(name, shape, data, batch_axes[name])
        plan.profile[name], dims = _input_range(
            name, shape, data, batch_axis=batch_axes[name], batch_names=batch_names,
            batch=(opt_batch, max(opt_batch, int(max_batch)), "batch" if batch is not None else "default batch"),
        )
        plan.dims += dims
    plan.warnings += _profile_warnings(plan, batch_given=batch is not None, data_given=bool(data_shapes))
    return plan

def _input_range(name: str, shape: Sequence, data: Sequence[int] | None, *, batch_axis: int | None,
                 batch_names: set[str], batch: tuple[int, int, str]) -> tuple[ShapeRange, list[DynamicDim]]:
    """One input's range and its dynamic dimensions; ``batch`` is (opt, max, source)."""
    lo, opt, hi, dims = [], [], [], []
    for i, dim in enumerate(shape):
        if is_static_dim(dim):
            size = (dim, dim, dim)
        elif i == batch_axis or _dim_name(dim) in batch_names:
            size, source = (1, batch[0], batch[1]), batch[2]
            dims.append(DynamicDim(name, i, str(_dim_name(dim) or "?"), "batch", *size, source))
        elif data is not None:
            size = (int(data[i]),) * 3
            dims.append(DynamicDim(name, i, str(_dim_name(dim) or "?"), "other", *size, "data"))
        else:
            raise BuildRecipeError(
                f"input {name!r} dimension {i} ({dim!r}) is dynamic and is not the batch "
                f"dimension, so its size cannot be guessed: pass data for {name!r} (--data), one "
                f"feed's shape (--shapes {name}:{'x'.join(str(d) if is_static_dim(d) else '<' + str(d) + '>' for d in shape)}), "
                f'or its range in the recipe ("shapes": {{"{name}": {{"min", "opt", "max"}}}})'
            )
        lo.append(size[0])
        opt.append(size[1])
        hi.append(size[2])
    return ShapeRange(tuple(lo), tuple(opt), tuple(hi)), dims

def _override_dims(name: str, shape: Sequence | None, r: ShapeRange) -> list[DynamicDim]:
    dims = shape if shape is not None else [None] * len(r.opt)
    return [
        DynamicDim(name, i, str(_dim_name(d) or "?"), "other", r.min[i], r.opt[i], r.max[i], "recipe")
        for i, d in enumerate(dims) if not is_static_dim(d)
    ]

def _profile_warnings(plan: ProfilePlan, *, batch_given: bool, data_given: bool) -> list[str]:
    """Say what the user may not expect: pinned dynamic sizes, and the default batch."""
    warnings = []
    pinned: dict[str, list[DynamicDim]] = {}
    for dim in plan.dims:
        if dim.source == "data":
            pinned.setdefault(dim.input, []).append(dim)
    for name, dims in pinned.items():
        r = plan.profile[name]
        which = ", ".join(f"dimension {d.axis} ({d.name!r}) = {d.opt}" for d in dims)
        them = "them" if len(dims) > 1 else "it"
        warnings.append(
            f"input {name!r} is dynamic in {which}: the profile pins {them} to the size in the data (or "
            f"--shapes), so the "
            f"engine will refuse other sizes; to accept a range, give one in a recipe: "
            f'{{"shapes": {{"{name}": {{"min": {list(r.min)}, "opt": {list(r.opt)}, "max": {list(r.max)}}}}}}} '
            f"with {'those dimensions' if len(dims) > 1 else 'that dimension'} widened in min and max"
        )
    if data_given and not batch_given and any(d.role == "batch" for d in plan.dims):
        warnings.append(
            "no batch given: the profile's opt batch is 1 (the number of samples in the data is not a batch "
            "size); pass --batch N (batch=N) for the batch the engine will mostly run"
        )
    return warnings

def choose_profile(
    input_specs: Sequence[Mapping],
    *,
    data_shapes: Mapping[str, Sequence[int]] | None = None,
    sample_axes: Mapping[str, int | None] | None = None,
    batch: int | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    overrides: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
) -> dict[str, ShapeRange]:
    """The optimization profile alone: :func:`plan_profile` (same arguments) without its notes.

    Returns:
        Input name -> :class:`ShapeRange`, for dynamic inputs and overridden ones only.

    Raises:
        BuildRecipeError: As :func:`plan_profile`.
    """
    return plan_profile(
        input_specs, data_shapes=data_shapes, sample_axes=sample_axes, batch=batch, max_batch=max_batch,
        overrides=overrides,
    ).profile

def _check_data_shape(name: str, shape: Sequence, data: Sequence[int], sample_axis: int | None) -> None:
    """Data fits the model: same rank, the model's fixed sizes (the sample axis holds any count)."""
    if len(data) != len(shape):
        raise BuildRecipeError(f"data for input {name!r} has rank {len(data)} ({list(data)}); the model expects {list(shape)}")
    for i, (dim, size) in enumerate(zip(shape, data)):
        if i != sample_axis and is_static_dim(dim) and int(size) != dim:
            raise BuildRecipeError(
                f"data for input {name!r} has size {size} in dimension {i}; the model fixes it at {dim} "
                f"(model shape {list(shape)})"
            )

def _shape_range_from_override(name: str, shape: Sequence | None, override: Mapping) -> ShapeRange:
    if not isinstance(override, Mapping) or "opt" not in override:
        raise BuildRecipeError(f"shapes for {name!r} need at least 'opt' (and 'min', 'max'): got {override!r}")
    if ("min" in override) != ("max" in override):
        raise BuildRecipeError(f"shapes for {name!r}: give both 'min' and 'max', or only 'opt'")
    opt = tuple(int(d) for d in override["opt"])
    lo = tuple(int(d) for d in override.get("min", opt))
    hi = tuple(int(d) for d in override.get("max", opt))
    if not len(lo) == len(opt) == len(hi):
        raise BuildRecipeError(f"shapes for {name!r}: min, opt and max differ in rank ({list(lo)}, {list(opt)}, {list(hi)})")
    if shape is not None:
        if len(shape) != len(opt):
            raise BuildRecipeError(f"shapes for {name!r} have rank {len(opt)}; the model input has shape {list(shape)}")
        for i, dim in enumerate(shape):
            if is_static_dim(dim) and not lo[i] == opt[i] == hi[i] == dim:
                raise BuildRecipeError(f"shapes for {name!r}: dimension {i} is fixed at {dim} by the model")
    for i, (a, b, c) in enumerate(zip(lo, opt, hi)):
        if not 1 <= a <= b <= c:
            raise BuildRecipeError(f"shapes for {name!r}: dimension {i} needs 1 <= min <= opt <= max, got {a}, {b}, {c}")
    return ShapeRange(lo, opt, hi)

def profile_to_dict(profile: Mapping[str, ShapeRange]) -> dict:
    """A profile as JSON-ready data: input -> {"min", "opt", "max"}."""
    return {name: r.to_dict() for name, r in profile.items()}

def profile_from_dict(data: Mapping) -> dict[str, ShapeRange]:
    """Inverse of :func:`profile_to_dict`."""
    return {name: ShapeRange(tuple(r["min"]), tuple(r["opt"]), tuple(r["max"])) for name, r in data.items()}

def polygraphy_profile(profile: Mapping[str, ShapeRange]):
    """The profile as Polygraphy's ``Profile`` (for ``CreateConfig(profiles=[...])``, which fills
    static inputs from the network and turns it into a TensorRT optimization profile)."""
    from polygraphy.backend.trt import Profile

    result = Profile()
    for name, r in profile.items():
        result.add(name, min=r.min, opt=r.opt, max=r.max)
    return result
