"""Build recipes: the builder settings of a TensorRT build (not precision: that lives in the ONNX graph)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from workbench.errors import WorkbenchError

FIXED_SETTINGS = {"strongly_typed": True, "profiling_verbosity": "detailed"}

DEFAULT_OPTIMIZATION_LEVEL = 3  # TensorRT's own default

OPTIMIZATION_LEVELS = range(0, 6)  # IBuilderConfig.builder_optimization_level accepts 0-5

DEFAULT_MAX_BATCH = 32

class BuildRecipeError(WorkbenchError, ValueError):
    """A build recipe or shape request that cannot be used; the message names the fix."""

RECIPE_PRESETS: dict[str, dict[str, Any]] = {
    # TensorRT's defaults.
    "default": {},
    # Level 0-1 skips most tactic timing: quick builds while iterating on a model.
    "fast-build": {"optimization_level": 1},
    # Level 5 searches the most tactics: slowest build, usually the fastest engine.
    "max-perf": {"optimization_level": 5},
}

@dataclass(frozen=True)
class BuildRecipe:
    """How to build an engine (not which precision: that is in the ONNX graph).

    Attributes:
        name: A label (preset name or recipe file stem); not part of the cache key.
        optimization_level: Builder optimization level, 0-5 (TensorRT's default 3).
        workspace_mib: Workspace memory pool limit in MiB; None keeps TensorRT's default
            (the device's memory).
        max_batch: Upper bound of the batch range for a dynamic batch dimension; the profile
            max is ``max(opt, max_batch)``.
        shapes: Explicit ``{input: {"min": [...], "opt": [...], "max": [...]}}`` per input,
            overriding :func:`choose_profile`'s defaults (``opt`` alone means min=opt=max,
            as in trtexec).
        tf32: Allow TF32 for FP32 math (TensorRT's and trtexec's default; ``--noTF32`` if False).
        timing_cache: Reuse and extend the workspace's timing cache.
    """

    name: str = "default"
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL
    workspace_mib: float | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    shapes: Mapping[str, Mapping[str, Sequence[int]]] = field(default_factory=dict)
    tf32: bool = True
    timing_cache: bool = True

    def __post_init__(self):
        try:  # normalise numbers given as text (command-line flags, hand-written JSON)
            object.__setattr__(self, "optimization_level", int(self.optimization_level))
            object.__setattr__(self, "max_batch", int(self.max_batch))
            if self.workspace_mib is not None:
                object.__setattr__(self, "workspace_mib", float(self.workspace_mib))
        except (TypeError, ValueError) as err:
            raise BuildRecipeError(f"recipe numbers must be numbers: {err}") from err
        for flag in ("tf32", "timing_cache"):
            if not isinstance(getattr(self, flag), bool):
                raise BuildRecipeError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        if int(self.optimization_level) not in OPTIMIZATION_LEVELS:
            raise BuildRecipeError(
                f"optimization_level {self.optimization_level!r} is not in 0-5; use 0-1 for quick "
                "builds, 3 (the default) or 5 for the most thorough search"
            )
        if self.workspace_mib is not None and not float(self.workspace_mib) > 0:
            raise BuildRecipeError(f"workspace_mib must be a positive number of MiB, got {self.workspace_mib!r}")
        if int(self.max_batch) < 1:
            raise BuildRecipeError(f"max_batch must be at least 1, got {self.max_batch!r}")
        if not isinstance(self.shapes, Mapping):
            raise BuildRecipeError("shapes must map input names to {'min': [...], 'opt': [...], 'max': [...]}")

    def to_dict(self) -> dict:
        """The recipe as JSON-ready data (``name`` included)."""
        data = dataclasses.asdict(self)
        data["shapes"] = {k: {s: list(v) for s, v in r.items()} for k, r in self.shapes.items()}
        return data

    def key_dict(self) -> dict:
        """The settings that change the engine, for the cache key (not ``name``, not
        ``max_batch``/``shapes``, which reach the key through the chosen profile, nor
        ``timing_cache``, which changes build time, not the engine's definition)."""
        return {
            "optimization_level": int(self.optimization_level),
            "workspace_mib": None if self.workspace_mib is None else float(self.workspace_mib),
            "tf32": bool(self.tf32),
            **FIXED_SETTINGS,
        }

_RECIPE_KEYS = tuple(f.name for f in dataclasses.fields(BuildRecipe))

def load_recipe(recipe: Any = None, **overrides) -> BuildRecipe:
    """Resolve a recipe given as a preset name, a JSON file, a mapping or a recipe.

    Args:
        recipe: None or ``"default"``; a preset name (:data:`RECIPE_PRESETS`); a path to a
            ``.json`` file holding a mapping; a mapping with :class:`BuildRecipe` field names;
            or a :class:`BuildRecipe`.
        **overrides: Fields that replace the recipe's (e.g. from command-line flags); None
            values are ignored.

    Returns:
        The recipe.

    Raises:
        BuildRecipeError: Unknown preset, missing or invalid file, unknown keys, invalid values.
    """
    if isinstance(recipe, BuildRecipe):
        data, name = recipe.to_dict(), recipe.name
    elif recipe is None or (isinstance(recipe, str) and recipe in RECIPE_PRESETS):
        name = recipe or "default"
        data = dict(RECIPE_PRESETS[name])
    elif isinstance(recipe, Mapping):
        data, name = dict(recipe), str(recipe.get("name", "custom"))
    else:
        path = Path(str(recipe)).expanduser()
        if not path.is_file():
            raise BuildRecipeError(
                f"recipe {str(recipe)!r} is neither a preset ({', '.join(RECIPE_PRESETS)}) nor a "
                "JSON file; give a preset name or the path to a .json recipe"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise BuildRecipeError(f"{path}: not JSON ({err.msg} at line {err.lineno}); fix the recipe file") from err
        if not isinstance(data, dict):
            raise BuildRecipeError(f"{path}: a recipe file holds a JSON object with keys {list(_RECIPE_KEYS)}")
        name = str(data.get("name", path.stem))
    data.update({k: v for k, v in overrides.items() if v is not None})
    data["name"] = name
    unknown = sorted(set(data) - set(_RECIPE_KEYS))
    if unknown:
        hint = ""
        if any(k.lower() in ("fp16", "int8", "bf16", "fp8", "precision") for k in unknown):
            hint = (
                " Precision is not a build option: networks are strongly typed, so make a "
                "lower-precision ONNX variant (casts or Q/DQ nodes) and build that."
            )
        raise BuildRecipeError(f"unknown recipe key(s) {unknown}; known: {list(_RECIPE_KEYS)}.{hint}")
    try:
        return BuildRecipe(**data)
    except TypeError as err:
        raise BuildRecipeError(f"invalid recipe: {err}") from err
