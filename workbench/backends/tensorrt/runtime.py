"""The TensorRT backend: load engines, run and time them, show their layers and per-layer times.

:class:`TensorRTEngine` coordinates; the work is done by its parts, each tested without TensorRT
where it is pure:

* :mod:`~workbench.backends.tensorrt.engine_io`: the engine's I/O tensors and the checks on
  inputs (:func:`check_input_shape`, :func:`~workbench.backends.tensorrt.engine_io.prepare_feed`),
  inputs made up from the engine's profile (:func:`inputs_for_engine`).
* :mod:`~workbench.backends.tensorrt.execution`: pycuda buffers, the one stream (pinned host
  memory, device buffers, CUDA events; optionally a CUDA graph), the benchmark and the
  profiling loops.
* :mod:`~workbench.backends.tensorrt.timing`: :class:`LayerTimeRecorder` and
  :func:`profile_document` (``IProfiler.report_layer_time`` calls aggregated into trtexec's
  ``--exportProfile`` document, read by the same
  :func:`~workbench.backends.tensorrt.trt_json.import_trt` as trtexec's files);
  :func:`trace_record`, :func:`benchmark_result` (per-inference CUDA event times in trtexec's
  ``--exportTimes`` shape, summarised the way trtexec prints its performance summary).

The TensorRT layer (:class:`TensorRTBackend`, :func:`load_engine`, :class:`TensorRTEngine` and
the modules above) uses TensorRT 10/11's name-based I/O (``num_io_tensors``,
``get_tensor_name``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``).
``tensorrt`` and ``pycuda`` are imported inside functions only: importing this module never
needs them.

Every TensorRT name used on the runtime side is listed in
:data:`~workbench.backends.tensorrt.api_names.TRT_RUNTIME_NAMES_USED`;
``tests/test_trt_api_names.py`` finds them in the source (AST) and checks them against the
TensorRT 10.16 and 11.1 API name lists. A name that exists in only one of them may be used only
behind a version check (:func:`trt_major`), listed in
:data:`~workbench.backends.tensorrt.api_names.VERSION_GUARDED`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd

from workbench.backends.availability import tensorrt_status
from workbench.backends.base import Backend, BackendUnavailable, BenchmarkResult, Engine
from workbench.backends.tensorrt.build import (
    BuildLog,
    BuildRecipe,
    Platform,
    build_engine,
    capture_log,
    check_compatible,
    current_platform,
    load_recipe,
    trt_logger,
)
from workbench.backends.tensorrt.cache import EngineIncompatible, metadata_path_for
from workbench.backends.tensorrt.engine_io import (
    InputShapeError,
    batch_size_of,
    check_input_shape,
    inputs_for_engine,
    prepare_feed,
    random_inputs,
    read_engine_io,
)
from workbench.backends.tensorrt.execution import (
    EngineStream,
    IOBuffers,
    cuda_driver,
    record_layer_times,
    time_inferences,
)
from workbench.backends.tensorrt.shapes import ShapeRange
from workbench.backends.tensorrt.timing import (
    SOURCE,
    LayerTimeRecorder,
    benchmark_result,
    profile_document,
    trace_record,
)
from workbench.backends.tensorrt.trt_json import import_trt
from workbench.tables.engine_table import make_layer_table

if TYPE_CHECKING:  # names for annotations only; tensorrt is imported inside functions
    import tensorrt as trt

__all__ = [
    "TensorRTBackend",
    "TensorRTEngine",
    "load_engine",
    "trt_major",
    "onnx_node_names",
    "as_live_table",
    # re-exported from their homes (engine_io, timing)
    "InputShapeError",
    "check_input_shape",
    "inputs_for_engine",
    "LayerTimeRecorder",
    "benchmark_result",
    "profile_document",
    "trace_record",
    "SOURCE",
]


def trt_major() -> int:
    """The installed TensorRT major version (for :data:`VERSION_GUARDED` branches)."""
    import tensorrt as trt

    return int(str(trt.__version__).split(".")[0])


# --------------------------------------------------------------------------------------------
# The live layer table


def onnx_node_names(model_path) -> list[str] | None:
    """The ONNX model's node names (without loading weights), or None if the file is gone."""
    if not model_path or not Path(model_path).is_file():
        return None
    import onnx

    return [node.name for node in onnx.load(str(model_path), load_external_data=False).graph.node]


def as_live_table(table: pd.DataFrame, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Mark a table :func:`import_trt` made from a live engine's inspector JSON as live.

    Args:
        table: The imported table (``source="trt-json"``).
        attrs: Facts to add to ``attrs`` (engine file, TensorRT version, GPU...).

    Returns:
        A copy with ``source="tensorrt"`` per row and in ``attrs`` (and no ``layers_file``,
        since the information came from the engine itself); other columns and attrs kept.
    """
    records = copy.deepcopy(table.to_dict("records"))
    for record in records:
        record["source"] = SOURCE
    merged = copy.deepcopy(dict(table.attrs))
    merged.update(dict(attrs or {}))
    merged.update(source=SOURCE, layers_file=None)
    live = make_layer_table(records, merged)
    for column in ("time_ms", "median_ms", "share"):
        if column in table:
            live[column] = table[column].astype(float).to_numpy()
    return live


# --------------------------------------------------------------------------------------------
# Backend and engine (TensorRT and pycuda from here on)


_BUILD_OPTION_KEYS = ("recipe", "batch", "inputs", "rebuild", "progress", "root", "log_severity")


class TensorRTBackend(Backend):
    """Builds ONNX models into :class:`TensorRTEngine` (cached in the workspace)."""

    name = SOURCE

    def build(self, model, options: Mapping[str, Any] | None = None) -> "TensorRTEngine":
        """Build (or reuse) an engine and load it.

        Args:
            model: A path or :class:`workbench.model.LoadedModel`.
            options: :class:`~workbench.backends.tensorrt.build.BuildRecipe` fields
                (``optimization_level``, ``workspace_mib``, ``max_batch``, ``shapes``, ``tf32``,
                ``timing_cache``) and ``recipe`` (preset, file or mapping), ``batch``,
                ``inputs``, ``rebuild``, ``progress``, ``root``, ``log_severity``.

        Returns:
            The loaded engine.
        """
        options = dict(options or {})
        recipe_fields = {f.name for f in dataclasses.fields(BuildRecipe)} - {"name"}
        unknown = sorted(set(options) - set(_BUILD_OPTION_KEYS) - recipe_fields)
        if unknown:
            raise ValueError(f"unknown tensorrt option(s) {unknown}; known: {sorted(set(_BUILD_OPTION_KEYS) | recipe_fields)}")
        recipe = load_recipe(options.pop("recipe", None), **{k: options.pop(k) for k in list(options) if k in recipe_fields})
        result = build_engine(model, recipe, **options)
        return load_engine(result.engine_path)


def load_engine(path, *, log_severity: str = "WARNING") -> "TensorRTEngine":
    """Load a saved engine, refusing one built for another TensorRT version or GPU.

    Args:
        path: The engine file (``engine.plan`` with ``metadata.json`` beside it, or any plan
            with ``<plan>.json``; without metadata the engine loads but cannot be checked and
            has no profile record).
        log_severity: Least severe TensorRT message kept in the engine's load log.

    Returns:
        The engine.

    Raises:
        BackendUnavailable: TensorRT, pycuda or a GPU is missing here.
        EngineIncompatible: Built for another TensorRT release or GPU (message says how to
            rebuild).
        FileNotFoundError: No such engine file.
    """

    problem = tensorrt_status()
    if problem:
        raise BackendUnavailable(problem)
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such engine file; build one with: workbench build MODEL")
    meta_path = metadata_path_for(path)
    metadata = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    platform = current_platform()
    if metadata:
        check_compatible(metadata, platform, engine_path=path)
    cuda_driver()  # make the context current before TensorRT allocates the engine's memory
    import tensorrt as trt

    log = BuildLog(log_severity)
    logger = trt_logger()
    with capture_log(log):
        trt.init_libnvinfer_plugins(logger, "")
        runtime: trt.Runtime = trt.Runtime(logger)
        engine: trt.ICudaEngine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        details = "; ".join(log.errors[-3:]) or "no error logged"
        raise EngineIncompatible(
            f"{path}: TensorRT {platform.tensorrt_version} could not load this engine ({details}). "
            "It was probably built with another TensorRT version or for another GPU; rebuild it "
            "here: workbench build MODEL"
        )
    return TensorRTEngine(engine, metadata, path, platform, runtime, log)


class TensorRTEngine(Engine):
    """A deserialized TensorRT engine with an execution context, a stream and buffers.

    A thin coordinator: the I/O description and input checks are
    :mod:`~workbench.backends.tensorrt.engine_io`'s, the buffers, stream and loops
    :mod:`~workbench.backends.tensorrt.execution`'s.

    Attributes:
        path: The engine file.
        metadata: Its metadata (empty for engines built elsewhere without one).
        platform: This machine's TensorRT version and GPU.
        io: The I/O tensors (:class:`~workbench.backends.tensorrt.engine_io.EngineIO`);
            ``input_names``, ``output_names``, ``dtypes``, ``fixed_shapes`` and
            ``shape_profile`` (min/opt/max per dynamic input) read through to it.
        load_log: TensorRT's messages while loading.
        last_trace: The per-inference records of the last :meth:`benchmark`.
    """

    backend = SOURCE

    def __init__(self, engine: trt.ICudaEngine, metadata: Mapping, path: Path, platform: Platform, runtime, load_log: BuildLog):
        self._engine: trt.ICudaEngine = engine
        self._runtime = runtime  # the engine must not outlive its runtime
        self.metadata = dict(metadata)
        self.path = Path(path)
        self.platform = platform
        self.load_log = load_log
        self.io = read_engine_io(self._engine)
        self._context: trt.IExecutionContext = self._engine.create_execution_context()
        self._buffers: IOBuffers | None = None
        self._stream = EngineStream()
        self.last_trace: list[dict] = []

    # -- I/O tensors -----------------------------------------------------------------------

    @property
    def input_names(self) -> list[str]:
        return self.io.input_names

    @property
    def output_names(self) -> list[str]:
        return self.io.output_names

    @property
    def dtypes(self) -> dict[str, Any]:
        return self.io.dtypes

    @property
    def fixed_shapes(self) -> dict[str, tuple]:
        return self.io.fixed_shapes

    @property
    def shape_profile(self) -> dict[str, ShapeRange]:
        """Min/opt/max per dynamic input (named apart from :meth:`profile`, the per-layer times)."""
        return self.io.shape_profile

    @property
    def stream(self):
        """The engine's pycuda stream."""
        return self._stream.stream

    def feed(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check inputs against the engine and convert them to its dtypes (contiguous).

        Raises:
            KeyError: A missing input. InputShapeError: a shape the engine cannot run.
            ValueError: Unknown input names.
        """
        return prepare_feed(self.io, inputs, self.io.numpy_dtype)

    def _bind(self, feed: Mapping[str, np.ndarray]) -> IOBuffers:
        """The main context's buffers for these input shapes (reused while they stay the same),
        with the inputs copied in."""
        shapes = {name: tuple(array.shape) for name, array in feed.items()}
        if self._buffers is None or self._buffers.shapes != shapes:
            self._buffers = IOBuffers(self.io, self._context, shapes)
        self._buffers.copy_in(feed)
        return self._buffers

    def synthetic_inputs(self, *, batch: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        """Random inputs at the profile's opt shapes (``batch`` replacing the first dimension)."""
        if self.metadata.get("inputs"):
            return inputs_for_engine(self.metadata, batch=batch, seed=seed)
        return random_inputs(self.io, self.io.numpy_dtype, batch=batch, seed=seed)

    # -- Engine interface ------------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one inference.

        Args:
            inputs: Input name -> array, for every engine input.

        Returns:
            Output name -> array (copies).
        """
        buffers = self._bind(self.feed(inputs))
        self._stream.infer(self._context, buffers)
        return {name: buffers.host[name].copy() for name in self.output_names}

    def benchmark(
        self,
        inputs: Mapping[str, Any],
        *,
        iterations: int = 100,
        warmup: int = 10,
        duration_s: float | None = None,
        cuda_graph: bool = False,
    ) -> BenchmarkResult:
        """Time repeated inferences with CUDA events around each stage.

        Each inference copies the inputs from pinned host memory, runs the engine and copies
        the outputs back on one stream, then synchronizes: the latency is D2H end minus H2D
        start on the GPU clock, as trtexec's "Latency"; H2D, compute and D2H are measured
        between events; inferences do not overlap.

        Args:
            inputs: Input name -> array.
            iterations: Timed iterations (a minimum with ``duration_s``).
            warmup: Untimed iterations first.
            duration_s: Keep going until this many seconds passed as well.
            cuda_graph: Launch the engine through a captured CUDA graph (as ``--useCudaGraph``).

        Returns:
            The result; ``settings`` holds the trtexec-style summary and the setup. The
            per-inference records are kept in :attr:`last_trace`.
        """
        if int(iterations) < 1 and duration_s is None:
            raise ValueError("iterations must be >= 1 (or give duration_s)")
        feed = self.feed(inputs)
        records = time_inferences(
            self._stream, self._context, self._bind(feed),
            iterations=iterations, warmup=warmup, duration_s=duration_s, cuda_graph=cuda_graph,
        )
        self.last_trace = records
        settings = self._settings(
            iterations=int(iterations), duration_s=duration_s, cuda_graph=bool(cuda_graph),
            input_shapes={n: list(a.shape) for n, a in feed.items()},
            timing="CUDA events per stage; one inference at a time (synchronized)",
        )
        batch = batch_size_of(feed, self.input_names)
        return benchmark_result(records, batch_size=batch, warmup=max(0, int(warmup)), settings=settings)

    def layers(self) -> pd.DataFrame:
        """The layer table from the engine inspector, through :func:`import_trt`.

        Returns:
            The table with ``source="tensorrt"``; ``attrs`` adds the engine, TensorRT version
            and GPU.
        """
        return self._as_live(import_trt(self.inspector_json(), onnx_node_names=self._node_names()))

    def profile(self, inputs: Mapping[str, Any], *, iterations: int = 20, warmup: int = 3) -> pd.DataFrame:
        """Per-layer times through ``IProfiler`` over many inferences, joined to :meth:`layers`.

        A second execution context with the profiler attached runs ``warmup`` unrecorded and
        ``iterations`` recorded inferences (the profiler synchronizes after every layer, so it
        stays off the context used for :meth:`benchmark`).

        Args:
            inputs: Input name -> array.
            iterations: Profiled inferences.
            warmup: Inferences run first and not recorded.

        Returns:
            The layer table with ``time_ms`` (mean per inference), ``median_ms`` and ``share``;
            ``attrs["profile"]`` holds the trtexec-shaped profile document.
        """
        if iterations < 1:
            raise ValueError("iterations must be >= 1")
        feed = self.feed(inputs)
        runs = record_layer_times(self._engine, self.io, self._stream, feed, iterations=iterations, warmup=warmup)
        document = profile_document(runs)
        table = import_trt(self.inspector_json(), profile_json=document, onnx_node_names=self._node_names())
        table.attrs["profile"] = document
        table.attrs["profile_iterations"] = int(iterations)
        return self._as_live(table)

    # -- engine facts ----------------------------------------------------------------------

    def inspector_json(self) -> dict:
        """The engine inspector's layer information (detailed if the engine was built so)."""
        import tensorrt as trt

        inspector: trt.EngineInspector = self._engine.create_engine_inspector()
        if self._buffers is not None:  # with shapes set, dynamic dimensions are concrete
            inspector.execution_context = self._context
        return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))

    def _settings(self, **extra) -> dict:
        return {
            "engine": str(self.path),
            "tensorrt_version": self.platform.tensorrt_version,
            "gpu": self.platform.gpu_name,
            "compute_capability": self.platform.compute_capability,
            "recipe": (self.metadata.get("recipe") or {}).get("name"),
            **extra,
        }

    def _node_names(self) -> list[str] | None:
        return onnx_node_names((self.metadata.get("model") or {}).get("path"))

    def _as_live(self, table: pd.DataFrame) -> pd.DataFrame:
        return as_live_table(table, self._settings())
