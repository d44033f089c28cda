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

def choose_profile(
    input_specs: Sequence[Mapping],
    *,
    data_shapes: Mapping[str, Sequence[int]] | None = None,
    batch: int | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    overrides: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
) -> dict[str, ShapeRange]:
    """Choose min/opt/max shapes for every input with a dynamic dimension.

    Defaults, per dynamic dimension of each input:

    * the first dimension (batch): min 1, opt the data's batch (``batch``, else the data's first
      dimension, else 1), max ``max(opt, max_batch)``;
    * any other dimension: min = opt = max = the data's size for it; without data this is an
      error naming the input and dimension (there is no sensible default for a sequence length).

    Explicit ``overrides`` win; ``{"opt": [...]}`` alone means min = opt = max (as trtexec).

    Args:
        input_specs: ``{"name", "shape"}`` per model input (``ModelSummary.inputs``); a shape
            holds ints for fixed dimensions and names (``"batch"``, ``"?"``) for dynamic ones.
        data_shapes: The shapes of the data the engine will run, by input name.
        batch: The batch the engine will mostly run (the profile's opt).
        max_batch: Cap for the batch range.
        overrides: Explicit shapes per input.

    Returns:
        Input name -> :class:`ShapeRange`, for dynamic inputs and overridden ones only (static
        inputs need no profile entry), in model input order.

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
    profile: dict[str, ShapeRange] = {}
    for spec in input_specs:
        name, shape = spec["name"], spec.get("shape")
        if name in overrides:
            profile[name] = _shape_range_from_override(name, shape, overrides[name])
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
            _check_data_shape(name, shape, data)
        opt = []
        for i, dim in enumerate(shape):
            if is_static_dim(dim):
                opt.append(dim)
            elif i == 0 and batch is not None:
                opt.append(int(batch))
            elif data is not None:
                opt.append(int(data[i]))
            elif i == 0:
                opt.append(1)
            else:
                raise BuildRecipeError(
                    f"input {name!r} dimension {i} ({dim!r}) is dynamic and is not the batch "
                    f"dimension, so its size cannot be guessed: pass data for {name!r}, or give "
                    f'its shapes in the recipe ("shapes": {{"{name}": {{"min", "opt", "max"}}}})'
                )
        lo = [1 if (i == 0 and not is_static_dim(d)) else opt[i] for i, d in enumerate(shape)]
        hi = [max(opt[i], int(max_batch)) if (i == 0 and not is_static_dim(d)) else opt[i] for i, d in enumerate(shape)]
        profile[name] = ShapeRange(tuple(lo), tuple(opt), tuple(hi))
    return profile

def _check_data_shape(name: str, shape: Sequence, data: Sequence[int]) -> None:
    if len(data) != len(shape):
        raise BuildRecipeError(f"data for input {name!r} has rank {len(data)} ({list(data)}); the model expects {list(shape)}")
    for i, (dim, size) in enumerate(zip(shape, data)):
        if is_static_dim(dim) and int(size) != dim:
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
