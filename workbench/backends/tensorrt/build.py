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

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from workbench.backends.availability import tensorrt_status
from workbench.backends.base import BackendUnavailable
from workbench.backends.tensorrt.cache import (
    ENGINE_FILE,
    LAYERS_FILE,
    LOG_FILE,
    METADATA_FORMAT,
    EngineLocation,
    Platform,
    cache_key,
    check_compatible,
    engine_dir,
    engines_root,
    format_compute_capability,
    timing_cache_path,
)
from workbench.backends.tensorrt.log import (
    BuildLog,
    ParserErrorInfo,
    capture_log,
    format_parser_errors,
    parser_error_info,
    trt_logger,
)
from workbench.backends.tensorrt.onnx_ops import (
    describe_unsupported,
    opset_warning,
    unsupported_ops,
)
from workbench.backends.tensorrt.progress import (
    BuildProgress,
    make_progress_monitor,
    resolve_progress,
)
from workbench.backends.tensorrt.recipe import (
    BuildRecipe,
    BuildRecipeError,
    load_recipe,
)
from workbench.backends.tensorrt.shapes import (
    ShapeRange,
    choose_profile,  # noqa: F401 - re-exported: the build face's profile function
    plan_profile,
    polygraphy_profile,
    profile_to_dict,
)
from workbench.backends.tensorrt.trtexec import trtexec_command
from workbench.errors import WorkbenchError
from workbench.model import load_model
from workbench.model.fingerprint import model_sha256
from workbench.workspace import write_atomic

if TYPE_CHECKING:  # names for annotations only; tensorrt is imported inside functions
    import tensorrt as trt

# Bump when what goes into an engine changes for the same recipe (new fixed build settings).
# Fixed build settings, part of every cache key.


# TensorRT calls the ONNX parser's and the builder's messages with these severities.
# Letters trtexec prints for each severity (``[W] [TRT] ...``); F is its "fatal" for internal.


class TensorRTBuildError(WorkbenchError, RuntimeError):
    """TensorRT could not parse or build the model; the message holds its errors and the
    trtexec command that reproduces the build."""


# --------------------------------------------------------------------------------------------
# Recipe


# --------------------------------------------------------------------------------------------
# Optimization profiles


# --------------------------------------------------------------------------------------------
# Model fingerprint


# --------------------------------------------------------------------------------------------
# Platform, cache key, metadata, refusal


# --------------------------------------------------------------------------------------------
# Workspace layout


# --------------------------------------------------------------------------------------------
# trtexec equivalent


# What trtexec echoes for each flag the workbench emits, in its option sections:
# flag -> (section, key, value when given (None: the value itself), value when absent).
# Read from trtexec's printers (samples/common/sampleOptions.cpp, NVIDIA/TensorRT) and checked
# Flags trtexec does not echo, and where their spelling was checked instead.


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
        warnings: Things the user should know (model load warnings, dynamic dimensions pinned
            to the data's size, the default batch, operators the parser cannot take).
        unsupported_ops: Operators TensorRT's ONNX parser cannot take
            (:func:`~workbench.backends.tensorrt.onnx_ops.unsupported_ops`); a build refuses
            them before calling TensorRT.
        dynamic_dims: How the profile sets each dynamic dimension (``DynamicDim.to_dict``).
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
    unsupported_ops: list[dict] = field(default_factory=list)
    dynamic_dims: list[dict] = field(default_factory=list)

    def trtexec_command(self, location: "EngineLocation | None" = None, *, timing_cache: Any = "default") -> list[str]:
        """The equivalent trtexec command; it always saves the engine, and uses a timing cache
        when the recipe does.

        Args:
            location: The workbench's engine folder: trtexec then saves ``trtexec.plan`` and
                exports ``trtexec.layers.json``, ``trtexec.profile.json``, ``trtexec.times.json``
                beside the workbench's engine (not over it), to compare the two builds. Without
                it (a plan only) the engine is ``<model>.<sha256[:12]>.plan`` in trtexec's
                working folder.
            timing_cache: The timing cache file; ``"default"`` is ``trtexec-timing.cache`` in
                trtexec's working folder when the recipe uses a timing cache; None omits it.

        Returns:
            argv.
        """
        if isinstance(timing_cache, str) and timing_cache == "default":
            timing_cache = TRTEXEC_TIMING_CACHE if self.recipe.timing_cache else None
        engine = location.folder / "trtexec.plan" if location else f"{self.model_name}.{self.model_sha256[:12]}.plan"
        return trtexec_command(
            self.model_path,
            self.recipe,
            self.profile,
            engine_path=engine,
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
            "unsupported_ops": [dict(e) for e in self.unsupported_ops],
            "dynamic_dims": [dict(d) for d in self.dynamic_dims],
        }


# The plan-only trtexec line's timing cache, relative to where trtexec runs (the workspace's
# cache is per platform, which a plan made without a GPU does not know).
TRTEXEC_TIMING_CACHE = "trtexec-timing.cache"


def plan_build(
    model,
    recipe: Any = None,
    *,
    batch: int | None = None,
    inputs: Mapping[str, Any] | None = None,
    sample_axes: Mapping[str, int | None] | None = None,
) -> BuildPlan:
    """Decide a build: load and fingerprint the model, resolve the recipe, choose the profile,
    list the operators TensorRT's ONNX parser cannot take.

    Args:
        model: Path to an ``.onnx`` file, or a :class:`workbench.model.LoadedModel` (its file
            is what gets built).
        recipe: Anything :func:`load_recipe` takes.
        batch: The batch the engine will mostly run (the profile's opt; default 1).
        inputs: Data the engine will run (arrays or shapes by input name, any number of
            samples): it sets the sizes of dynamic non-batch dimensions (with a warning).
        sample_axes: The data description: input -> the axis its samples run along, or None
            for an input fed as it is (default axis 0).

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
    unsupported = unsupported_ops(loaded.proto)
    try:
        profile = plan_profile(
            loaded.summary.inputs,
            data_shapes=data_shapes,
            sample_axes=sample_axes,
            batch=batch,
            max_batch=recipe.max_batch,
            overrides=recipe.shapes,
        )
    except BuildRecipeError as err:
        if not unsupported:
            raise
        raise BuildRecipeError(f"{err}; besides, TensorRT's ONNX parser cannot take "
                               f"{describe_unsupported(unsupported)}") from err
    warnings = list(getattr(loaded, "warnings", []) or []) + profile.warnings
    if unsupported:
        warnings.append(f"TensorRT's ONNX parser cannot take: {describe_unsupported(unsupported)}")
    opset = opset_warning(loaded.proto)
    if opset:
        warnings.append(opset)
    path = Path(loaded.path).resolve()
    return BuildPlan(
        model_path=path,
        model_name=path.stem,
        model_sha256=model_sha256(path),
        recipe=recipe,
        profile=profile.profile,
        inputs=[dict(t) for t in loaded.summary.inputs],
        outputs=[dict(t) for t in loaded.summary.outputs],
        onnx_nodes=[(n.name, n.op_type) for n in loaded.proto.graph.node],
        warnings=warnings,
        unsupported_ops=unsupported,
        dynamic_dims=[d.to_dict() for d in profile.dims],
    )


def check_buildable(plan: BuildPlan) -> None:
    """Refuse, before TensorRT is called, a plan whose model has operators its parser cannot take.

    Raises:
        TensorRTBuildError: Naming each operator, how many nodes, the first node names and why.
    """
    if plan.unsupported_ops:
        nodes = ", ".join(n for e in plan.unsupported_ops for n in e["nodes"][:2])
        raise TensorRTBuildError(
            f"{plan.model_path.name}: TensorRT's ONNX parser cannot take {describe_unsupported(plan.unsupported_ops)} "
            f"(nodes {nodes}); make a variant without them (static INT8 as Q/DQ: workbench quantize "
            "--precision int8 --calib DATA) or register a TensorRT plugin for them"
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


# --------------------------------------------------------------------------------------------
# Build progress


# --------------------------------------------------------------------------------------------
# Build log


# --------------------------------------------------------------------------------------------
# ONNX parser errors


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

    plan = model if isinstance(model, BuildPlan) else plan_build(model, recipe, batch=batch, inputs=inputs)
    check_buildable(plan)
    problem = tensorrt_status()
    if problem:
        raise BackendUnavailable(problem)
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
