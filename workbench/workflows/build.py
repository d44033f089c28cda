"""workbench build: a strongly typed TensorRT engine (or its plan), as the CLI's JSON."""

from __future__ import annotations

from typing import Any

from workbench.backends import BackendUnavailable
from workbench.backends.tensorrt.build import build_engine, plan_build
from workbench.datasets.arrays import load_npz, take_batch
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
) -> dict:
    """What ``workbench build MODEL --recipe R`` does, as JSON-ready data.

    Args:
        model: The ``.onnx`` file.
        recipe: A preset name, a recipe ``.json`` file, a mapping or None (default).
        batch: The batch the engine will mostly run (profile opt).
        data: An ``.npz`` with one array per model input: its shapes set the profile.
        rebuild: Build even when the cached engine is current.
        plan_only: Only plan (works without TensorRT): profile, cache inputs, trtexec command.
        progress: Build progress display (``"tqdm"``, None, or see :func:`resolve_progress`).

    Returns:
        ``{"built": bool, "plan": BuildPlan.to_dict()}`` plus, when built,
        :meth:`BuildResult.to_dict` (``engine``, ``cached``, ``cache_key``, ``trtexec_command``...).

    Raises:
        BackendUnavailable: Building needs TensorRT/GPU here (the message names ``--plan-only``).
        BuildRecipeError, ModelLoadError, InputDataError, TensorRTBuildError: Bad input or a failed
            build, each with its fix.
    """

    loaded = load_model(model, allow_unknown_domains=True)
    inputs = None
    if data is not None:

        inputs, _labels = load_npz(data, loaded.input_names)
        if batch is not None:
            inputs = take_batch(inputs, batch)
    plan = plan_build(loaded, recipe, batch=batch, inputs=inputs)
    if plan_only:
        return {"built": False, "plan": plan.to_dict()}
    try:
        result = build_engine(plan, rebuild=rebuild, progress=progress)
    except BackendUnavailable as err:
        raise BackendUnavailable(f"{err} {PLAN_ONLY_HINT}") from err
    return {"built": True, "plan": plan.to_dict(), **result.to_dict()}
