"""Build TensorRT engines from ONNX models: plan, cache, build, and the equivalent trtexec.

Most of this module is plain Python that runs anywhere and is tested on real TensorRT outputs:

* :class:`BuildRecipe` and :func:`load_recipe`: what to build (optimization level, workspace
  limit, batch range, explicit shapes, TF32). Precision is *not* a recipe option: the network
  is strongly typed (TensorRT 11 has no other kind), so precision lives in the ONNX graph
  (casts, Q/DQ nodes) and a lower-precision variant is a different ONNX file.
* :func:`choose_profile`: min/opt/max shapes for every dynamic input, defaulted from the data.
* :func:`plan_build`: everything about a build that does not need TensorRT (model
  fingerprint, profile, the equivalent :func:`trtexec_command`).
* :func:`cache_key`, :func:`engine_metadata`, :func:`incompatibility`: engines are cached in
  the workspace under a key of model bytes, options, TensorRT version and GPU, and an engine
  built for another TensorRT version or GPU is refused with a message that says how to rebuild.
* :class:`BuildProgress`: the bookkeeping behind TensorRT's ``IProgressMonitor``, turned into
  :class:`ProgressEvent` callbacks (:class:`TqdmProgressBars` draws them).
* :class:`BuildLog` and :func:`summarize_build_log`: what TensorRT's logger said.
* :func:`format_parser_errors`: the ONNX parser's errors, one line per failing node.

The TensorRT-facing part is thin and at the end (:func:`build_engine` and the ``_trt_*``
helpers). ``tensorrt`` is imported inside functions only, so importing this module never needs
TensorRT. Polygraphy's loaders build the config (``CreateConfig``: profiles, optimization
level, memory pool, timing cache, progress monitor) and the serialized engine
(``EngineBytesFromNetwork``, which also merges and saves the timing cache under a file lock).
The network is created here rather than with Polygraphy's ``NetworkFromOnnxPath`` because that
loader logs through Polygraphy's global TensorRT logger and reduces parser errors to one
exception; the workbench needs the build log captured and every parser error per node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from workbench.backends.availability import tensorrt_status
from workbench.backends.base import BackendUnavailable
from workbench.errors import WorkbenchError
from workbench.model import load_model
from workbench.model.fingerprint import model_sha256
from workbench.workspace import workspace_dir, write_atomic

if TYPE_CHECKING:  # names for annotations only; tensorrt is imported inside functions
    import tensorrt as trt

WORKSPACE_SUBDIR = "trt"
ENGINE_FILE = "engine.plan"
METADATA_FILE = "metadata.json"
LAYERS_FILE = "layers.json"
LOG_FILE = "build.log"
METADATA_FORMAT = "trt-workbench-engine/1"
# Bump when what goes into an engine changes for the same recipe (new fixed build settings).
CACHE_KEY_VERSION = 1
# Fixed build settings, part of every cache key.
FIXED_SETTINGS = {"strongly_typed": True, "profiling_verbosity": "detailed"}

DEFAULT_OPTIMIZATION_LEVEL = 3  # TensorRT's own default
OPTIMIZATION_LEVELS = range(0, 6)  # IBuilderConfig.builder_optimization_level accepts 0-5
DEFAULT_MAX_BATCH = 32

# TensorRT calls the ONNX parser's and the builder's messages with these severities.
SEVERITIES = ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")
# Letters trtexec prints for each severity (``[W] [TRT] ...``); F is its "fatal" for internal.
SEVERITY_LETTERS = {"INTERNAL_ERROR": "F", "ERROR": "E", "WARNING": "W", "INFO": "I", "VERBOSE": "V"}


class BuildRecipeError(WorkbenchError, ValueError):
    """A build recipe or shape request that cannot be used; the message names the fix."""


class TensorRTBuildError(WorkbenchError, RuntimeError):
    """TensorRT could not parse or build the model; the message holds its errors and the
    trtexec command that reproduces the build."""


class EngineIncompatible(WorkbenchError, RuntimeError):
    """A saved engine was built for another TensorRT version or GPU; the message says how to
    rebuild it."""


# --------------------------------------------------------------------------------------------
# Recipe


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


# --------------------------------------------------------------------------------------------
# Optimization profiles


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


# --------------------------------------------------------------------------------------------
# Model fingerprint


# --------------------------------------------------------------------------------------------
# Platform, cache key, metadata, refusal


@dataclass(frozen=True)
class Platform:
    """What an engine is tied to: the TensorRT release and the GPU model.

    Attributes:
        tensorrt_version: ``tensorrt.__version__`` (``"10.16.1.11"``) or trtexec's ``"8.5.2"``.
        gpu_name: The device name as CUDA reports it (``"NVIDIA A100 80GB PCIe"``).
        compute_capability: ``"major.minor"`` (``"8.0"``).
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: str

    def to_dict(self) -> dict:
        return {
            "tensorrt_version": self.tensorrt_version,
            "gpu": {"name": self.gpu_name, "compute_capability": self.compute_capability},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "Platform":
        gpu = data.get("gpu") or {}
        return cls(str(data.get("tensorrt_version")), str(gpu.get("name")), str(gpu.get("compute_capability")))

    @property
    def tensorrt_release(self) -> str:
        """major.minor.patch: engines from one release load with any build of it."""
        return ".".join(str(self.tensorrt_version).split(".")[:3])

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt_version} on {self.gpu_name} (compute capability {self.compute_capability})"


def format_compute_capability(value: Any) -> str:
    """``(8, 0)``, ``[8, 0]``, ``8.0``, ``"8.0"`` -> ``"8.0"``."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return f"{int(value[0])}.{int(value[1])}"
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        major, _, minor = text.partition(".")
        return f"{int(major)}.{int(minor or 0)}"
    raise ValueError(f"not a compute capability: {value!r}")


def platform_from_device_properties(properties: Mapping, tensorrt_version: str) -> Platform:
    """The platform from a GPU's properties as pycuda reports them.

    Args:
        properties: ``{"Name", "ComputeCapability": [8, 0], ...}`` (the shape TREx saves in
            ``engine.metadata.json``) or ``{"COMPUTE_CAPABILITY_MAJOR", "COMPUTE_CAPABILITY_MINOR"}``
            attributes with a ``"Name"``.
        tensorrt_version: The TensorRT version.

    Returns:
        The platform.
    """
    cc = properties.get("ComputeCapability")
    if cc is None:
        cc = (properties["COMPUTE_CAPABILITY_MAJOR"], properties["COMPUTE_CAPABILITY_MINOR"])
    return Platform(str(tensorrt_version), str(properties["Name"]), format_compute_capability(cc))


def platform_from_trtexec_log(parsed_log: Mapping) -> Platform:
    """The platform a trtexec run used, from :func:`~workbench.backends.tensorrt.trtexec_log.parse_trtexec_log`.

    Args:
        parsed_log: The parsed log (its ``Device Information`` section and TensorRT version).

    Returns:
        The platform.
    """
    device = parsed_log["options"]["Device Information"]
    return Platform(
        str(parsed_log["tensorrt_version"]),
        device["Selected Device"],
        format_compute_capability(device["Compute Capability"]),
    )


def cache_key(model_sha256: str, recipe: BuildRecipe, profile: Mapping[str, ShapeRange], platform: Platform) -> str:
    """The cache key of an engine: a hash of everything that makes it what it is.

    Args:
        model_sha256: :func:`sha256_files` of the model and its external data.
        recipe: The recipe (its :meth:`BuildRecipe.key_dict`).
        profile: The optimization profile.
        platform: The TensorRT release and GPU it is built with/for.

    Returns:
        A hex SHA-256.
    """
    document = {
        "version": CACHE_KEY_VERSION,
        "model_sha256": model_sha256,
        "recipe": recipe.key_dict(),
        "profile": profile_to_dict(profile),
        "tensorrt_release": platform.tensorrt_release,
        "gpu": {"name": platform.gpu_name, "compute_capability": platform.compute_capability},
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def incompatibility(metadata: Mapping, here: Platform, *, engine_path=None) -> str | None:
    """Why a saved engine cannot run here, as a message with the fix; None if it can.

    TensorRT plans are tied to the TensorRT release and the GPU model they were built for
    (unless built version- or hardware-compatible, which the workbench does not do).

    Args:
        metadata: The engine's metadata (:func:`engine_metadata`).
        here: This machine's platform.
        engine_path: The engine file, named in the message.

    Returns:
        The message, or None when release, GPU name and compute capability all match.
    """
    built = Platform.from_dict(metadata)
    differences = []
    if built.tensorrt_release != here.tensorrt_release:
        differences.append(f"TensorRT {built.tensorrt_version} (this machine has {here.tensorrt_version})")
    if built.compute_capability != here.compute_capability or built.gpu_name != here.gpu_name:
        differences.append(
            f"a {built.gpu_name} with compute capability {built.compute_capability} "
            f"(this machine has a {here.gpu_name}, compute capability {here.compute_capability})"
        )
    if not differences:
        return None
    label = f"engine {engine_path}" if engine_path else "this engine"
    model = (metadata.get("model") or {}).get("path") or "MODEL.onnx"
    recipe = (metadata.get("recipe") or {}).get("name") or "default"
    return (
        f"{label} was built for " + " and ".join(differences) + ". A TensorRT engine only runs with "
        "the TensorRT release and on the GPU model it was built for. Fix: rebuild it on this "
        f"machine: workbench build {shlex.quote(str(model))} --recipe {shlex.quote(str(recipe))}"
    )


def check_compatible(metadata: Mapping, here: Platform, *, engine_path=None) -> None:
    """Raise :class:`EngineIncompatible` when :func:`incompatibility` finds a reason."""
    problem = incompatibility(metadata, here, engine_path=engine_path)
    if problem:
        raise EngineIncompatible(problem)


# --------------------------------------------------------------------------------------------
# Workspace layout


def engines_root(root=None) -> Path:
    """Where engines are cached: ``<workspace>/trt/engines`` unless ``root`` is given."""
    return Path(root) if root is not None else workspace_dir(WORKSPACE_SUBDIR) / "engines"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-").lower() or "x"


def engine_dir(root: Path, model_name: str, key: str) -> Path:
    """The folder of one cached engine: ``<root>/<model>-<first 16 hex of the key>``."""
    return Path(root) / f"{_slug(model_name)}-{key[:16]}"


def timing_cache_path(platform: Platform, *, tf32: bool = True, root=None) -> Path:
    """The timing cache file for a platform, kept in the workspace and reused across builds.

    One file per TensorRT release, GPU and TF32 setting, because TensorRT's timing data is only
    valid for the device, the release and builder flags like TF32 that it was measured with.

    Args:
        platform: TensorRT release and GPU.
        tf32: The build's TF32 setting.
        root: Folder for caches (default ``<workspace>/trt/timing-cache``).

    Returns:
        The path (its folder exists).
    """
    folder = Path(root) if root is not None else workspace_dir(WORKSPACE_SUBDIR) / "timing-cache"
    folder.mkdir(parents=True, exist_ok=True)
    name = (
        f"trt-{_slug(platform.tensorrt_release)}-{_slug(platform.gpu_name)}-"
        f"sm{platform.compute_capability.replace('.', '')}-{'tf32' if tf32 else 'notf32'}.cache"
    )
    return folder / name


# --------------------------------------------------------------------------------------------
# trtexec equivalent


def format_dims(dims: Sequence[int]) -> str:
    """``[1, 3, 224, 224]`` -> ``"1x3x224x224"`` (trtexec's shape syntax)."""
    return "x".join(str(int(d)) for d in dims)


def format_shapes_spec(shapes: Mapping[str, Sequence[int]]) -> str:
    """trtexec's ``name:dims,name:dims`` shape spec; names with ``:`` are single-quoted."""
    parts = []
    for name, dims in shapes.items():
        label = f"'{name}'" if ":" in name else name
        parts.append(f"{label}:{format_dims(dims)}")
    return ",".join(parts)


def format_mib(value: float) -> str:
    """MiB for ``--memPoolSize`` without a unit suffix (trtexec's default unit is MiB in every
    release; suffixes only exist since 10.x)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def trtexec_command(
    model_path,
    recipe: BuildRecipe,
    profile: Mapping[str, ShapeRange],
    *,
    engine_path=None,
    timing_cache=None,
    export_prefix=None,
    trtexec: str = "trtexec",
    cuda_graph: bool = False,
) -> list[str]:
    """The trtexec command line that builds the same engine and exports what the workbench shows.

    Args:
        model_path: The ONNX file.
        recipe: The recipe.
        profile: The optimization profile (dynamic inputs only; trtexec takes static inputs'
            shapes from the model).
        engine_path: Where trtexec saves the engine (``--saveEngine``); None omits it.
        timing_cache: The timing cache file (``--timingCacheFile``); None omits it.
        export_prefix: Path prefix of the exported ``layers.json``, ``profile.json`` and
            ``times.json`` (``--exportLayerInfo/--exportProfile/--exportTimes``), e.g.
            ``folder/"trtexec."``; None omits them.
        trtexec: The trtexec executable.
        cuda_graph: Time with a CUDA graph (``--useCudaGraph``).

    Returns:
        argv, ready for :func:`subprocess.run` (``shlex.join`` it to print).
    """
    argv = [trtexec, f"--onnx={model_path}", "--stronglyTyped"]
    if profile:
        argv += [
            f"--minShapes={format_shapes_spec({n: r.min for n, r in profile.items()})}",
            f"--optShapes={format_shapes_spec({n: r.opt for n, r in profile.items()})}",
            f"--maxShapes={format_shapes_spec({n: r.max for n, r in profile.items()})}",
        ]
    argv.append(f"--builderOptimizationLevel={int(recipe.optimization_level)}")
    if recipe.workspace_mib is not None:
        argv.append(f"--memPoolSize=workspace:{format_mib(recipe.workspace_mib)}")
    if not recipe.tf32:
        argv.append("--noTF32")
    if timing_cache is not None:
        argv.append(f"--timingCacheFile={timing_cache}")
    argv.append("--profilingVerbosity=detailed")
    if engine_path is not None:
        argv.append(f"--saveEngine={engine_path}")
    if export_prefix is not None:
        argv += [
            f"--exportLayerInfo={export_prefix}layers.json",
            f"--exportProfile={export_prefix}profile.json",
            f"--exportTimes={export_prefix}times.json",
            # The per-layer profiler synchronizes after every layer; a separate run keeps it
            # out of the end-to-end timings (and trtexec then prints its performance summary).
            "--separateProfileRun",
        ]
    if cuda_graph:
        argv.append("--useCudaGraph")
    return argv


def parse_trtexec_argv(argv: Sequence[str]) -> dict[str, str]:
    """Split trtexec arguments the way trtexec does: ``--name=value`` at the first ``=``.

    Args:
        argv: Arguments (the executable, if first, is skipped).

    Returns:
        ``{"--name": value}``; a flag without ``=`` has the value ``""``.
    """
    flags = {}
    for arg in argv:
        if not arg.startswith("-"):
            continue
        name, _, value = arg.partition("=")
        flags[name] = value
    return flags


# What trtexec echoes for each flag the workbench emits, in its option sections:
# flag -> (section, key, value when given (None: the value itself), value when absent).
# Read from trtexec's printers (samples/common/sampleOptions.cpp, NVIDIA/TensorRT) and checked
# against the real TensorRT 8.5 log in tests wherever 8.5 already had the flag.
TRTEXEC_ECHO: dict[str, tuple[str, str, Any, str | None]] = {
    "--onnx": ("Model Options", "Model", None, None),
    "--saveEngine": ("Build Options", "Save engine", None, ""),
    "--timingCacheFile": ("Build Options", "timingCacheFile", None, ""),
    "--profilingVerbosity": (
        "Build Options",
        "Profiling verbosity",
        # printed as the ProfilingVerbosity enum value: kLAYER_NAMES_ONLY 0, kNONE 1, kDETAILED 2
        {"layer_names_only": "0", "none": "1", "detailed": "2"},
        "0",
    ),
    "--separateProfileRun": ("Inference Options", "Separate profiling", "Enabled", "Disabled"),
    "--useCudaGraph": ("Inference Options", "CUDA Graph", "Enabled", "Disabled"),
    "--exportTimes": ("Reporting Options", "Export timing to JSON file", None, ""),
    "--exportProfile": ("Reporting Options", "Export profile to JSON file", None, ""),
    # Since 8.6 (absent from the 8.5 log); the default value is not predicted.
    "--builderOptimizationLevel": ("Build Options", "BuilderOptimizationLevel", None, None),
    # Since the strongly typed networks of 9.x/10.x: "Precision: Strongly Typed".
    "--stronglyTyped": ("Build Options", "Precision", "Strongly Typed", None),
}
# Flags trtexec does not echo, and where their spelling was checked instead.
TRTEXEC_NOT_ECHOED = {
    "--exportLayerInfo": "spelled as in the real TensorRT 8.5 command line (yolo-int8-trtexec-8.5/trt.out)",
    "--noTF32": "parsed as a negative option (getAndDelNegOption) in sampleOptions.cpp; not printed",
    "--minShapes": "echoed together with --optShapes/--maxShapes as 'Input build shape' (see trtexec_echo)",
    "--optShapes": "see --minShapes",
    "--maxShapes": "see --minShapes",
    "--memPoolSize": "echoed as 'Memory Pools: workspace: N MiB, ...' (see trtexec_echo)",
}


def trtexec_echo(argv: Sequence[str]) -> dict[tuple[str, str], str]:
    """Predict what trtexec prints in its option sections for these arguments.

    Only the options the workbench emits are predicted (:data:`TRTEXEC_ECHO` plus memory
    pools and build shapes). Values are compared with what
    :func:`~workbench.backends.tensorrt.trtexec_log.parse_trtexec_log` reads back.

    Args:
        argv: trtexec arguments.

    Returns:
        ``{(section, key): value}``. ``Memory Pools`` holds only the workspace part
        (``"workspace: 1024 MiB"`` or ``"workspace: default"``), the start of trtexec's line.
        Build shapes: with no shape flags, ``("Build Options", "Input build shapes") ==
        "model"``; with them, ``("Build Options", "Input build shape (profile 0)")`` holds
        ``name=min+opt+max`` of the first input (the format of trtexec 10.x).
    """
    flags = parse_trtexec_argv(argv)
    echo: dict[tuple[str, str], str] = {}
    for flag, (section, key, given, absent) in TRTEXEC_ECHO.items():
        if flag in flags:
            value = flags[flag]
            if isinstance(given, Mapping):
                echo[(section, key)] = given[value]
            else:
                echo[(section, key)] = value if given is None else given
        elif absent is not None:
            echo[(section, key)] = absent
    if "--timingCacheFile" in flags:
        echo[("Build Options", "timingCacheMode")] = "global"
    else:
        echo[("Build Options", "timingCacheMode")] = "local"
    pools = dict(p.split(":", 1) for p in flags.get("--memPoolSize", "").split(",") if ":" in p)
    workspace = pools.get("workspace")
    echo[("Build Options", "Memory Pools")] = (
        f"workspace: {format_mib(float(workspace))} MiB" if workspace else "workspace: default"
    )
    if "--optShapes" in flags:
        ranges = [flags.get(f, flags["--optShapes"]).split(",")[0] for f in ("--minShapes", "--optShapes", "--maxShapes")]
        name = ranges[1].rsplit(":", 1)[0]
        echo[("Build Options", "Input build shape (profile 0)")] = (
            f"{name}=" + "+".join(r.rsplit(":", 1)[1] for r in ranges)
        )
    else:
        echo[("Build Options", "Input build shapes")] = "model"
    return echo


# --------------------------------------------------------------------------------------------
# Build plan (everything before TensorRT)


@dataclass
class BuildPlan:
    """What will be built, decided without TensorRT.

    Attributes:
        model_path: The ONNX file TensorRT parses.
        model_name: Its stem, for folder names.
        model_sha256: :func:`sha256_files` of the model and its external data.
        recipe: The recipe.
        profile: Min/opt/max per dynamic input.
        inputs, outputs: ``{"name", "dtype", "shape"}`` per model input/output.
        onnx_nodes: ``(name, op_type)`` per graph node, to name the nodes parser errors point at.
        warnings: Things the user should know (e.g. model load warnings).
    """

    model_path: Path
    model_name: str
    model_sha256: str
    recipe: BuildRecipe
    profile: dict[str, ShapeRange]
    inputs: list[dict]
    outputs: list[dict]
    onnx_nodes: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def trtexec_command(self, location: "EngineLocation | None" = None, *, timing_cache=None) -> list[str]:
        """The equivalent trtexec command. With a location it saves ``trtexec.plan`` and exports
        ``trtexec.layers.json``, ``trtexec.profile.json``, ``trtexec.times.json`` beside the
        workbench's engine (not over it), to compare the two builds."""
        return trtexec_command(
            self.model_path,
            self.recipe,
            self.profile,
            engine_path=location.folder / "trtexec.plan" if location else None,
            timing_cache=timing_cache,
            export_prefix=f"{location.folder / 'trtexec.'}" if location else None,
        )

    def to_dict(self) -> dict:
        """JSON-ready summary (the ``workbench build --json`` plan)."""
        argv = self.trtexec_command()
        return {
            "model": str(self.model_path),
            "model_sha256": self.model_sha256,
            "recipe": self.recipe.to_dict(),
            "profile": profile_to_dict(self.profile),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "trtexec_command": argv,
            "trtexec_command_line": shlex.join(argv),
            "warnings": list(self.warnings),
        }


def plan_build(
    model,
    recipe: Any = None,
    *,
    batch: int | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> BuildPlan:
    """Decide a build: load and fingerprint the model, resolve the recipe, choose the profile.

    Args:
        model: Path to an ``.onnx`` file, or a :class:`workbench.model.LoadedModel` (its file
            is what gets built).
        recipe: Anything :func:`load_recipe` takes.
        batch: The batch the engine will mostly run (the profile's opt).
        inputs: Data the engine will run (arrays or shapes by input name), for the profile.

    Returns:
        The plan.

    Raises:
        ModelLoadError: The model does not load.
        BuildRecipeError: The recipe or shapes do not fit the model.
    """

    # Custom-domain operators may be TensorRT plugins: let the parser decide, keep the warning.
    loaded = model if hasattr(model, "summary") else load_model(model, allow_unknown_domains=True)
    if loaded.path is None or not Path(loaded.path).is_file():
        raise BuildRecipeError("the model has no file on disk; save it (workbench.workspace) and build the file")
    recipe = load_recipe(recipe)
    data_shapes = {k: tuple(getattr(v, "shape", v)) for k, v in (inputs or {}).items()}
    profile = choose_profile(
        loaded.summary.inputs,
        data_shapes=data_shapes,
        batch=batch,
        max_batch=recipe.max_batch,
        overrides=recipe.shapes,
    )
    path = Path(loaded.path).resolve()
    return BuildPlan(
        model_path=path,
        model_name=path.stem,
        model_sha256=model_sha256(path),
        recipe=recipe,
        profile=profile,
        inputs=[dict(t) for t in loaded.summary.inputs],
        outputs=[dict(t) for t in loaded.summary.outputs],
        onnx_nodes=[(n.name, n.op_type) for n in loaded.proto.graph.node],
        warnings=list(getattr(loaded, "warnings", []) or []),
    )


def engine_metadata(
    plan: BuildPlan,
    platform: Platform,
    key: str,
    *,
    trtexec_argv: Sequence[str],
    build_seconds: float | None,
    log_summary: Mapping | None,
    engine_bytes: int,
    io_tensors: Sequence[Mapping] | None = None,
) -> dict:
    """The metadata saved next to an engine (``metadata.json``).

    Args:
        plan: The build plan.
        platform: TensorRT version and GPU it was built with.
        key: Its :func:`cache_key`.
        trtexec_argv: The equivalent trtexec command.
        build_seconds: How long the build took.
        log_summary: :func:`summarize_build_log` of the build log.
        engine_bytes: Size of the serialized engine.
        io_tensors: The engine's I/O tensors (name, mode, dtype, shape) if known.

    Returns:
        JSON-ready metadata.
    """
    return {
        "format": METADATA_FORMAT,
        "cache_key": key,
        **platform.to_dict(),
        "model": {"path": str(plan.model_path), "name": plan.model_name, "sha256": plan.model_sha256},
        "recipe": plan.recipe.to_dict(),
        "build_settings": plan.recipe.key_dict(),
        "profile": profile_to_dict(plan.profile),
        "inputs": plan.inputs,
        "outputs": plan.outputs,
        "io_tensors": list(io_tensors or []),
        "trtexec_command": list(trtexec_argv),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": build_seconds,
        "engine_bytes": int(engine_bytes),
        "log_summary": dict(log_summary or {}),
        "files": {"engine": ENGINE_FILE, "layers": LAYERS_FILE, "log": LOG_FILE},
    }


@dataclass(frozen=True)
class EngineLocation:
    """The files of one cached engine."""

    folder: Path

    @property
    def engine(self) -> Path:
        return self.folder / ENGINE_FILE

    @property
    def metadata(self) -> Path:
        return self.folder / METADATA_FILE

    @property
    def layers(self) -> Path:
        return self.folder / LAYERS_FILE

    @property
    def log(self) -> Path:
        return self.folder / LOG_FILE

    def is_complete(self) -> bool:
        """Engine and metadata both exist (metadata is written last)."""
        return self.engine.is_file() and self.metadata.is_file()

    def read_metadata(self) -> dict:
        return json.loads(self.metadata.read_text(encoding="utf-8"))


def metadata_path_for(engine_path) -> Path:
    """The metadata file of an engine file: ``metadata.json`` beside it, else ``<engine>.json``."""
    engine_path = Path(engine_path)
    beside = engine_path.parent / METADATA_FILE
    return beside if beside.is_file() else engine_path.with_name(engine_path.name + ".json")


# --------------------------------------------------------------------------------------------
# Build progress


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report of an engine build.

    Attributes:
        kind: ``"start"``, ``"step"`` or ``"finish"``.
        phase: The phase name TensorRT gave.
        parent: The parent phase, or None for a top-level phase.
        depth: 0 for top-level phases, parent's depth + 1 otherwise.
        done: Steps completed so far in the phase.
        total: Steps in the phase.
        elapsed_s: Seconds since the phase started.
    """

    kind: str
    phase: str
    parent: str | None
    depth: int
    done: int
    total: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total > 0 else 1.0


@dataclass
class _Phase:
    parent: str | None
    depth: int
    total: int
    done: int
    started: float


class BuildProgress:
    """The bookkeeping of TensorRT's ``IProgressMonitor``, without TensorRT.

    TensorRT calls ``phase_start(name, parent, num_steps)``, ``step_complete(name, step)`` (``step``
    is the 0-based index of the step just finished; returning False cancels the build) and
    ``phase_finish(name)``, possibly before all steps were reported and from several threads.
    This class tracks the active phases and turns the calls into :class:`ProgressEvent` for a
    callback; :func:`make_progress_monitor` wraps it in the TensorRT interface.

    Args:
        callback: Called with each :class:`ProgressEvent`. Its exceptions are kept in
            :attr:`errors` rather than raised, because TensorRT's callbacks must not throw.
        clock: Seconds clock (tests pass a fake one).
    """

    def __init__(self, callback: Callable[[ProgressEvent], Any] | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.callback = callback
        self.clock = clock
        self.cancelled = False
        self.errors: list[BaseException] = []
        self.finished: list[ProgressEvent] = []
        self._phases: dict[str, _Phase] = {}
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Ask TensorRT to stop the build at its next step."""
        self.cancelled = True

    @property
    def active(self) -> list[tuple[str, int, int, int]]:
        """``(phase, depth, done, total)`` of the phases in progress, in start order."""
        with self._lock:
            return [(name, p.depth, p.done, p.total) for name, p in self._phases.items()]

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            parent = self._phases.get(parent_phase) if parent_phase else None
            phase = _Phase(parent_phase or None, parent.depth + 1 if parent else 0, int(num_steps), 0, self.clock())
            self._phases[phase_name] = phase
            event = self._event("start", phase_name, phase)
        self._emit(event)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            phase = self._phases.get(phase_name)
            if phase is None:  # a step of a phase we never saw start: nothing to draw
                return not self.cancelled
            phase.done = max(phase.done, min(int(step) + 1, phase.total))
            event = self._event("step", phase_name, phase)
        self._emit(event)
        return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            phase = self._phases.pop(phase_name, None)
            if phase is None:
                return
            event = self._event("finish", phase_name, phase)
            self.finished.append(event)
        self._emit(event)

    def _event(self, kind: str, name: str, phase: _Phase) -> ProgressEvent:
        return ProgressEvent(kind, name, phase.parent, phase.depth, phase.done, phase.total, self.clock() - phase.started)

    def _emit(self, event: ProgressEvent) -> None:
        if self.callback is None:
            return
        try:
            self.callback(event)
        except Exception as err:  # never let a drawing error reach TensorRT's noexcept callback
            self.errors.append(err)


class TqdmProgressBars:
    """Draw :class:`ProgressEvent` as one tqdm bar per active phase, nested by depth.

    In a notebook ``tqdm.auto`` draws ipywidgets bars; in a terminal, text bars.

    Args:
        tqdm_class: The tqdm class (default ``tqdm.auto.tqdm``).
        **tqdm_kwargs: Passed to every bar (e.g. ``file=`` for tests).
    """

    def __init__(self, tqdm_class=None, **tqdm_kwargs):
        if tqdm_class is None:
            from tqdm.auto import tqdm as tqdm_class
        self.tqdm_class = tqdm_class
        self.tqdm_kwargs = tqdm_kwargs
        self.bars: dict[str, Any] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "start":
            self.bars[event.phase] = self.tqdm_class(
                total=event.total,
                desc=("  " * event.depth) + event.phase,
                position=event.depth,
                leave=event.depth == 0,
                **self.tqdm_kwargs,
            )
            return
        bar = self.bars.get(event.phase)
        if bar is None:
            return
        bar.update(event.done - bar.n)
        if event.kind == "finish":
            bar.close()
            del self.bars[event.phase]


def _progress_monitor_class():
    """The ``trt.IProgressMonitor`` subclass, created only when TensorRT imports."""
    import tensorrt as trt

    class ProgressMonitor(trt.IProgressMonitor):
        """Forwards TensorRT's progress calls to a :class:`BuildProgress`."""

        def __init__(self, progress: BuildProgress):
            super().__init__()  # pybind11 needs the base initialised explicitly
            self.progress = progress

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return self.progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            self.progress.phase_finish(phase_name)

    return ProgressMonitor


def make_progress_monitor(progress: BuildProgress):
    """A TensorRT ``IProgressMonitor`` that reports to ``progress`` (needs TensorRT)."""
    return _progress_monitor_class()(progress)


def resolve_progress(progress: Any) -> BuildProgress | None:
    """Turn the ``progress`` argument of :func:`build_engine` into a :class:`BuildProgress`.

    Args:
        progress: None (no progress), ``"tqdm"`` (bars), a :class:`BuildProgress`, or a callable
            taking :class:`ProgressEvent`.

    Returns:
        The progress tracker or None.
    """
    if progress is None or progress is False:
        return None
    if isinstance(progress, BuildProgress):
        return progress
    if progress == "tqdm" or progress is True:
        return BuildProgress(TqdmProgressBars())
    if callable(progress):
        return BuildProgress(progress)
    raise ValueError(f"progress must be None, 'tqdm', a BuildProgress or a callable; got {progress!r}")


# --------------------------------------------------------------------------------------------
# Build log


def severity_label(value: Any) -> str:
    """Normalise a TensorRT log severity to one of :data:`SEVERITIES`.

    Args:
        value: A ``trt.ILogger.Severity`` (its ``name``), its text (``"Severity.WARNING"``,
            ``"kWARNING"``, ``"WARNING"``), its int value (0-4) or trtexec's letter (``"W"``).

    Returns:
        ``"INTERNAL_ERROR"``, ``"ERROR"``, ``"WARNING"``, ``"INFO"`` or ``"VERBOSE"``.

    Raises:
        ValueError: Not a severity.
    """
    name = getattr(value, "name", None)
    if isinstance(value, int) and not isinstance(value, bool) and name is None:
        if 0 <= value < len(SEVERITIES):
            return SEVERITIES[value]
        raise ValueError(f"not a TensorRT severity: {value!r}")
    text = str(name if isinstance(name, str) else value).split(".")[-1].strip().upper()
    if text.startswith("K") and text[1:] in SEVERITIES:
        text = text[1:]
    if text in SEVERITIES:
        return text
    for label, letter in SEVERITY_LETTERS.items():
        if text == letter:
            return label
    raise ValueError(f"not a TensorRT severity: {value!r}")


@dataclass(frozen=True)
class LogRecord:
    """One message from TensorRT's logger."""

    severity: str
    message: str
    time_s: float = 0.0


class BuildLog:
    """Records what TensorRT's logger says during a build or a load.

    Args:
        min_severity: Least severe level kept (``"INFO"`` by default; ``"VERBOSE"`` keeps the
            tactic-by-tactic chatter, tens of thousands of lines for a real model).
    """

    def __init__(self, min_severity: str = "INFO"):
        self.min_severity = severity_label(min_severity)
        self.records: list[LogRecord] = []
        self._start = time.monotonic()

    def log(self, severity: Any, message: str) -> None:
        """Record one message (the signature of ``ILogger.log``)."""
        label = severity_label(severity)
        if SEVERITIES.index(label) <= SEVERITIES.index(self.min_severity):
            self.records.append(LogRecord(label, str(message), time.monotonic() - self._start))

    @property
    def errors(self) -> list[str]:
        return [r.message for r in self.records if r.severity in ("ERROR", "INTERNAL_ERROR")]

    @property
    def warnings(self) -> list[str]:
        return [r.message for r in self.records if r.severity == "WARNING"]

    def text(self) -> str:
        """The log as trtexec prints TensorRT's messages (``[W] [TRT] message``), one per line,
        so :func:`~workbench.backends.tensorrt.trtexec_log.split_log_line` reads it back."""
        return "".join(f"[{SEVERITY_LETTERS[r.severity]}] [TRT] {r.message}\n" for r in self.records)

    def summary(self) -> dict:
        return summarize_build_log(self.records)


_MEMORY_FACTS = {
    "total_host_persistent_memory_bytes": re.compile(r"^Total Host Persistent Memory: (\d+)"),
    "total_device_persistent_memory_bytes": re.compile(r"^Total Device Persistent Memory: (\d+)"),
    "total_scratch_memory_bytes": re.compile(r"^Total Scratch Memory: (\d+)"),
    "total_activation_memory_bytes": re.compile(r"^Total Activation Memory: (\d+)"),
    "engine_size_mib": re.compile(r"^Loaded engine size: (\d+) MiB"),
}
_PEAK_MEMORY = re.compile(r"Peak memory usage of TRT CPU/GPU memory allocators: CPU (\d+) MiB, GPU (\d+) MiB")


def summarize_build_log(records: Iterable[LogRecord]) -> dict:
    """Summarize a TensorRT build log.

    Args:
        records: Log records (:attr:`BuildLog.records`).

    Returns:
        ``{"counts": {severity: n}, "errors": [...], "warnings": [...]`` (distinct messages in
        order, at most 20 each), and when logged: ``total_host_persistent_memory_bytes``,
        ``total_device_persistent_memory_bytes``, ``total_scratch_memory_bytes``,
        ``total_activation_memory_bytes`` (the last one logged: the builder logs a first
        estimate before block assignment), ``engine_size_mib``, ``peak_cpu_mib``,
        ``peak_gpu_mib``, and ``local_timing_cache`` (True when TensorRT said its timing results
        would not be stored).
    """
    counts = {s: 0 for s in SEVERITIES}
    errors: list[str] = []
    warnings: list[str] = []
    facts: dict[str, Any] = {}
    for record in records:
        counts[record.severity] += 1
        target = errors if record.severity in ("ERROR", "INTERNAL_ERROR") else warnings if record.severity == "WARNING" else None
        if target is not None and record.message not in target and len(target) < 20:
            target.append(record.message)
        for key, pattern in _MEMORY_FACTS.items():
            match = pattern.match(record.message)
            if match:
                facts[key] = int(match.group(1))
        peak = _PEAK_MEMORY.search(record.message)
        if peak:
            facts["peak_cpu_mib"], facts["peak_gpu_mib"] = int(peak.group(1)), int(peak.group(2))
        if record.message.startswith("Local timing cache in use"):
            facts["local_timing_cache"] = True
    return {"counts": counts, "errors": errors, "warnings": warnings, **facts}


class _LoggerSinks:
    """The sinks the process-wide TensorRT logger forwards to (one per capture in progress)."""

    def __init__(self):
        self.sinks: list[BuildLog] = []
        self.lock = threading.Lock()

    def forward(self, severity, message) -> None:
        with self.lock:
            sinks = list(self.sinks)
        for sink in sinks:
            sink.log(severity, message)


_SINKS = _LoggerSinks()
_TRT_LOGGER = None


def trt_logger():
    """The process-wide TensorRT logger (needs TensorRT).

    TensorRT keeps one logger per process (the first one given to a builder or runtime), so the
    workbench creates one and attaches a :class:`BuildLog` to it for each build or load with
    :func:`capture_log`. Errors and warnings are also sent to Python's ``logging``.
    """
    global _TRT_LOGGER
    if _TRT_LOGGER is None:
        import logging

        import tensorrt as trt

        python_log = logging.getLogger("workbench.tensorrt")

        class CapturingLogger(trt.ILogger):
            """Forwards TensorRT's messages to the active :class:`BuildLog` captures."""

            def __init__(self):
                super().__init__()  # pybind11 needs the base initialised explicitly

            def log(self, severity, msg):
                try:
                    _SINKS.forward(severity, msg)
                    label = severity_label(severity)
                    if label in ("ERROR", "INTERNAL_ERROR"):
                        python_log.error("%s", msg)
                    elif label == "WARNING":
                        python_log.warning("%s", msg)
                except Exception:  # log() is noexcept on the C++ side
                    pass

        _TRT_LOGGER = CapturingLogger()
    return _TRT_LOGGER


@contextlib.contextmanager
def capture_log(log: BuildLog):
    """Attach ``log`` to the TensorRT logger for the duration of the block."""
    with _SINKS.lock:
        _SINKS.sinks.append(log)
    try:
        yield log
    finally:
        with _SINKS.lock:
            _SINKS.sinks.remove(log)


# --------------------------------------------------------------------------------------------
# ONNX parser errors


@dataclass(frozen=True)
class ParserErrorInfo:
    """One error of TensorRT's ONNX parser, as plain data.

    Attributes:
        code: The ``ErrorCode`` name (``"UNSUPPORTED_NODE"``).
        desc: TensorRT's description.
        node: Index of the failing node in the graph (-1: not a node, e.g. an initializer).
        node_name, node_operator: The node's name and op type when the parser gives them.
        file, line, func: Where in the parser the error was raised.
    """

    code: str
    desc: str
    node: int = -1
    node_name: str = ""
    node_operator: str = ""
    file: str = ""
    line: int = 0
    func: str = ""


def error_code_name(code: Any) -> str:
    """``ErrorCode.UNSUPPORTED_NODE`` (or its text) -> ``"UNSUPPORTED_NODE"``."""
    name = getattr(code, "name", None)
    return str(name if isinstance(name, str) else code).split(".")[-1]


def format_parser_errors(
    errors: Sequence[ParserErrorInfo],
    model_path,
    onnx_nodes: Sequence[tuple[str, str]] = (),
) -> str:
    """The parser's errors as one message: a line per error naming the node and the cause.

    Args:
        errors: The errors.
        model_path: The model, for the message.
        onnx_nodes: ``(name, op_type)`` per graph node, to name nodes when the parser gives an
            index only (TensorRT 8.x) or to check the names it gives.

    Returns:
        The message.
    """
    lines = [f"{model_path}: TensorRT's ONNX parser failed with {len(errors)} error(s):"]
    for error in errors:
        name, op = error.node_name, error.node_operator
        if 0 <= error.node < len(onnx_nodes):
            name = name or onnx_nodes[error.node][0]
            op = op or onnx_nodes[error.node][1]
        if error.node >= 0:
            where = f"node {error.node}" + (f" '{name}'" if name else "") + (f" ({op})" if op else "")
        else:
            where = "the graph (not a node: inputs or initializers)"
        origin = error.file + (f":{error.line}" if error.file and error.line else "")
        if error.func:
            origin = f"{origin} in {error.func}" if origin else f"in {error.func}"
        origin = f" [{origin}]" if origin else ""
        lines.append(f"  {where}: {error.code}: {error.desc}{origin}")
    lines.append(
        "Fix: check that these operators and attributes are supported by this TensorRT version "
        "(https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md); simplify or "
        "constant-fold the graph (polygraphy surgeon sanitize --fold-constants), or replace the "
        "nodes."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Build (TensorRT from here on)


@dataclass
class BuildResult:
    """An engine ready in the workspace.

    Attributes:
        location: Its files.
        metadata: Its metadata.
        cached: True when an existing engine was reused and nothing was built.
        log: The build log (None when cached).
        plan: The plan it was built from.
    """

    location: EngineLocation
    metadata: dict
    cached: bool
    log: BuildLog | None
    plan: BuildPlan

    @property
    def engine_path(self) -> Path:
        return self.location.engine

    def to_dict(self) -> dict:
        """JSON-ready summary (the ``workbench build --json`` result)."""
        return {
            "engine": str(self.location.engine),
            "metadata": str(self.location.metadata),
            "layers": str(self.location.layers) if self.location.layers.is_file() else None,
            "cached": self.cached,
            "cache_key": self.metadata["cache_key"],
            "tensorrt_version": self.metadata["tensorrt_version"],
            "gpu": self.metadata["gpu"],
            "profile": self.metadata["profile"],
            "build_seconds": self.metadata.get("build_seconds"),
            "trtexec_command": self.metadata["trtexec_command"],
            "trtexec_command_line": shlex.join(self.metadata["trtexec_command"]),
            "log_summary": self.metadata.get("log_summary"),
            "warnings": list(self.plan.warnings),
        }


def current_platform() -> Platform:
    """This machine's TensorRT version and GPU 0 (needs TensorRT, pycuda and a GPU)."""
    import pycuda.driver as cuda
    import tensorrt as trt

    cuda.init()
    device = cuda.Device(0)
    return Platform(str(trt.__version__), str(device.name()), format_compute_capability(device.compute_capability()))


def build_engine(
    model,
    recipe: Any = None,
    *,
    batch: int | None = None,
    inputs: Mapping[str, Any] | None = None,
    rebuild: bool = False,
    progress: Any = None,
    log_severity: str = "INFO",
    root=None,
) -> BuildResult:
    """Build an engine, or reuse the cached one when nothing changed.

    Args:
        model: A :class:`BuildPlan` (from :func:`plan_build`), a path or a ``LoadedModel``.
        recipe, batch, inputs: As :func:`plan_build` (ignored when ``model`` is a plan).
        rebuild: Build even when a cached engine exists.
        progress: None, ``"tqdm"``, a :class:`BuildProgress` or a callable taking
            :class:`ProgressEvent`.
        log_severity: Least severe TensorRT message kept in the build log.
        root: Engines folder (default ``<workspace>/trt/engines``).

    Returns:
        The engine's location and metadata.

    Raises:
        BackendUnavailable: No TensorRT, pycuda or GPU here (one line with the fix).
        TensorRTBuildError: Parsing or building failed (errors per node, captured log, trtexec
            command to reproduce).
        EngineIncompatible: A cached entry's metadata names another platform (corrupt cache).
    """

    problem = tensorrt_status()
    if problem:
        raise BackendUnavailable(problem)
    plan = model if isinstance(model, BuildPlan) else plan_build(model, recipe, batch=batch, inputs=inputs)
    platform = current_platform()
    key = cache_key(plan.model_sha256, plan.recipe, plan.profile, platform)
    location = EngineLocation(engine_dir(engines_root(root), plan.model_name, key))
    if location.is_complete() and not rebuild:
        metadata = location.read_metadata()
        if metadata.get("cache_key") == key:
            check_compatible(metadata, platform, engine_path=location.engine)
            return BuildResult(location, metadata, True, None, plan)
    cache_file = timing_cache_path(platform, tf32=plan.recipe.tf32) if plan.recipe.timing_cache else None
    argv = plan.trtexec_command(location, timing_cache=cache_file)
    log = BuildLog(log_severity)
    started = time.monotonic()
    try:
        serialized = _trt_build_serialized(plan, log, resolve_progress(progress), cache_file)
        layers_json, io_tensors = _trt_inspect(serialized, log)
    except TensorRTBuildError as err:
        raise TensorRTBuildError(f"{err}\nReproduce with: {shlex.join(argv)}") from err
    finally:
        location.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(location.log, log.text())
    seconds = time.monotonic() - started
    write_atomic(location.engine, serialized)
    if layers_json is not None:
        write_atomic(location.layers, layers_json)
    metadata = engine_metadata(
        plan, platform, key, trtexec_argv=argv, build_seconds=seconds, log_summary=log.summary(),
        engine_bytes=len(serialized), io_tensors=io_tensors,
    )
    # Metadata last: its presence marks a complete cache entry.
    write_atomic(location.metadata, json.dumps(metadata, indent=2))
    return BuildResult(location, metadata, False, log, plan)


def parser_error_info(error: trt.ParserError) -> ParserErrorInfo:
    """Copy a TensorRT ``ParserError`` into plain data."""
    return ParserErrorInfo(
        code=error_code_name(error.code()),
        desc=str(error.desc()),
        node=int(error.node()),
        node_name=str(error.node_name() or ""),
        node_operator=str(error.node_operator() or ""),
        file=str(error.file() or ""),
        line=int(error.line()),
        func=str(error.func() or ""),
    )


def _trt_parse(plan: BuildPlan, logger: trt.ILogger):
    """Create a strongly typed network from the ONNX file; raise with every parser error."""
    import tensorrt as trt

    builder: trt.Builder = trt.Builder(logger)
    # Strongly typed: tensor types come from the ONNX graph (TensorRT 11 has no weak typing;
    # in 10.x this is the same behaviour, and BuilderFlag.FP16/INT8 are never set).
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network: trt.INetworkDefinition = builder.create_network(flags)
    parser: trt.OnnxParser = trt.OnnxParser(network, logger)
    # parse_from_file (not parse(bytes)) so the parser finds external weights beside the model.
    parsed = parser.parse_from_file(str(plan.model_path))
    errors = []
    for index in range(parser.num_errors):
        error: trt.ParserError = parser.get_error(index)
        errors.append(parser_error_info(error))
    if errors or not parsed:
        if not errors:
            errors.append(ParserErrorInfo("UNKNOWN", "the parser returned failure without an error; see the build log"))
        raise TensorRTBuildError(format_parser_errors(errors, plan.model_path, plan.onnx_nodes))
    network_inputs = []
    for index in range(network.num_inputs):
        tensor: trt.ITensor = network.get_input(index)
        network_inputs.append(tensor.name)
    missing = sorted(set(plan.profile) - set(network_inputs))
    if missing:
        raise TensorRTBuildError(f"profile names {missing}, which are not network inputs {network_inputs}")
    return builder, network, parser


def _trt_build_serialized(plan: BuildPlan, log: BuildLog, progress: BuildProgress | None, cache_file: Path | None) -> bytes:
    """Parse, configure (Polygraphy's CreateConfig) and build (EngineBytesFromNetwork)."""
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork
    from polygraphy.exception import PolygraphyException

    logger = trt_logger()
    with capture_log(log):
        trt.init_libnvinfer_plugins(logger, "")
        builder, network, parser = _trt_parse(plan, logger)
        pools = None
        if plan.recipe.workspace_mib is not None:
            pools = {trt.MemoryPoolType.WORKSPACE: int(plan.recipe.workspace_mib * (1 << 20))}
        config = CreateConfig(
            profiles=[polygraphy_profile(plan.profile)],
            tf32=plan.recipe.tf32,
            profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
            memory_pool_limits=pools,
            builder_optimization_level=int(plan.recipe.optimization_level),
            load_timing_cache=str(cache_file) if cache_file else None,
            progress_monitor=make_progress_monitor(progress) if progress else None,
        )
        try:
            serialized = EngineBytesFromNetwork(
                (builder, network, parser),
                config=config,
                save_timing_cache=str(cache_file) if cache_file else None,
            )()
        except PolygraphyException as err:
            cancelled = " (cancelled)" if progress is not None and progress.cancelled else ""
            details = "\n".join(f"  {m}" for m in log.errors[-10:]) or "  (no error logged)"
            raise TensorRTBuildError(f"TensorRT could not build {plan.model_path}{cancelled}: {err}\nTensorRT errors:\n{details}") from err
    return bytes(serialized)


def _trt_inspect(serialized: bytes, log: BuildLog) -> tuple[str | None, list[dict]]:
    """Deserialize a fresh engine once to save its inspector JSON and I/O tensors."""
    import tensorrt as trt

    logger = trt_logger()
    with capture_log(log):
        runtime: trt.Runtime = trt.Runtime(logger)
        engine: trt.ICudaEngine = runtime.deserialize_cuda_engine(serialized)
        if engine is None:
            raise TensorRTBuildError("TensorRT built an engine it cannot deserialize; see the build log")
        inspector: trt.EngineInspector = engine.create_engine_inspector()
        layers = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        io_tensors = []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            io_tensors.append({
                "name": name,
                "mode": "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output",
                "dtype": str(engine.get_tensor_dtype(name)).split(".")[-1],
                "shape": list(engine.get_tensor_shape(name)),
            })
    return layers, io_tensors


# Every TensorRT name this module uses: Class, Class.member or Enum.VALUE. Checked against the
# TensorRT 10.16 and 11.1 API lists in tests/test_trt_api_names.py (with the AST's findings).
TRT_BUILD_NAMES_USED = (
    "Builder",
    "Builder.create_network",
    "EngineInspector",
    "EngineInspector.get_engine_information",
    "ICudaEngine",
    "ICudaEngine.create_engine_inspector",
    "ICudaEngine.get_tensor_dtype",
    "ICudaEngine.get_tensor_mode",
    "ICudaEngine.get_tensor_name",
    "ICudaEngine.get_tensor_shape",
    "ICudaEngine.num_io_tensors",
    "ILogger",
    "ILogger.log",
    "INetworkDefinition",
    "INetworkDefinition.get_input",
    "INetworkDefinition.num_inputs",
    "IProgressMonitor",
    "IProgressMonitor.phase_finish",
    "IProgressMonitor.phase_start",
    "IProgressMonitor.step_complete",
    "ITensor",
    "ITensor.name",
    "LayerInformationFormat.JSON",
    "MemoryPoolType.WORKSPACE",
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
    "OnnxParser",
    "OnnxParser.get_error",
    "OnnxParser.num_errors",
    "OnnxParser.parse_from_file",
    "ParserError",
    "ParserError.code",
    "ParserError.desc",
    "ParserError.file",
    "ParserError.func",
    "ParserError.line",
    "ParserError.node",
    "ParserError.node_name",
    "ParserError.node_operator",
    "ProfilingVerbosity.DETAILED",
    "Runtime",
    "Runtime.deserialize_cuda_engine",
    "TensorIOMode.INPUT",
    "__version__",
    "init_libnvinfer_plugins",
)
