"""workbench build: a strongly typed TensorRT engine (or its plan), as the CLI's JSON."""

from __future__ import annotations

from typing import Any

from workbench.backends import BackendUnavailable
from workbench.backends.tensorrt.build import build_engine, plan_build
from workbench.datasets.arrays import InputDataError, load_data
from workbench.model import load_model

PLAN_ONLY_HINT = "(without TensorRT, `workbench build --plan-only` prints the plan and the equivalent trtexec command)"

def build_command(
    model,
    recipe: Any = None,
    *,
    batch: int | None = None,
    data=None,
    rebuild: bool = False,
    plan_only: bool = False,
    progress: Any = "tqdm",
    shapes: dict | None = None,
) -> dict:
    """What ``workbench build MODEL --recipe R`` does, as JSON-ready data.

    Args:
        model: The ``.onnx`` file.
        recipe: A preset name, a recipe ``.json`` file, a mapping or None (default).
        batch: The batch the engine will mostly run (profile opt; default 1).
        data: An ``.npz`` with one array per model input (and its data description): it sets
            the sizes of dynamic non-batch dimensions (the plan warns that they are pinned);
            its number of samples is not the batch.
        rebuild: Build even when the cached engine is current.
        plan_only: Only plan (works without TensorRT): profile, cache inputs, trtexec command.
        progress: Build progress display (``"tqdm"``, None, or see :func:`resolve_progress`).
        shapes: Instead of data: the shape of one feed per input (``--shapes x:8x3x48x320``);
            it sets the dynamic non-batch sizes, and the batch when ``batch`` is not given.

    Returns:
        ``{"built": bool, "plan": BuildPlan.to_dict()}`` (with ``unsupported_ops``,
        ``dynamic_dims`` and ``warnings``) plus, when built,
        :meth:`BuildResult.to_dict` (``engine``, ``cached``, ``cache_key``, ``trtexec_command``...).

    Raises:
        BackendUnavailable: Building needs TensorRT/GPU here (the message names ``--plan-only``).
        BuildRecipeError, ModelLoadError, InputDataError, TensorRTBuildError: Bad input or a failed
            build, each with its fix.
    """

    loaded = load_model(model, allow_unknown_domains=True)
    inputs = sample_axes = None
    if data is not None and shapes:
        raise InputDataError("give --data or --shapes, not both: with --data the shapes are the data's.")
    if data is not None:
        loaded_data = load_data(data, loaded.input_names)
        inputs, sample_axes = loaded_data.inputs, loaded_data.sample_axes
    elif shapes:
        inputs = {name: tuple(dims) for name, dims in shapes.items()}
        batch = batch or _feed_batch(loaded.summary.inputs, inputs)
    plan = plan_build(loaded, recipe, batch=batch, inputs=inputs, sample_axes=sample_axes)
    if plan_only:
        return {"built": False, "plan": plan.to_dict()}
    try:
        result = build_engine(plan, rebuild=rebuild, progress=progress)
    except BackendUnavailable as err:
        raise BackendUnavailable(f"{err} {PLAN_ONLY_HINT}") from err
    return {"built": True, "plan": plan.to_dict(), **result.to_dict()}


def _feed_batch(input_specs, shapes: dict) -> int | None:
    """The batch of a feed given by its shapes: the first dim of the first input whose first
    dim is dynamic (None when no given input has one)."""
    for spec in input_specs:
        shape, given = spec.get("shape") or [], shapes.get(spec["name"])
        if given and shape and not (isinstance(shape[0], int) and shape[0] > 0):
            return int(given[0])
    return None
