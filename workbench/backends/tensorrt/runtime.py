"""The TensorRT backend: load engines, run and time them, show their layers and per-layer times.

Pure parts, tested on real trtexec outputs without TensorRT:

* :class:`LayerTimeRecorder` and :func:`profile_document`: per-layer times as
  ``IProfiler.report_layer_time`` delivers them (one call per layer per inference), aggregated
  into trtexec's ``--exportProfile`` document, so the live profile goes through the same
  :func:`~workbench.backends.tensorrt.trt_json.import_trt` as trtexec's files.
* :func:`trace_record`, :func:`summarize_trace`, :func:`benchmark_result`: per-inference CUDA
  event times in trtexec's ``--exportTimes`` shape, summarised the way trtexec prints its
  performance summary (warm-up exclusion, throughput over wall time, nearest-rank percentiles).
* :func:`check_input_shape`, :func:`inputs_for_engine`: inputs checked against the engine's
  optimization profile, or made up from it.

The TensorRT layer (:class:`TensorRTBackend`, :func:`load_engine`, :class:`TensorRTEngine`) uses
TensorRT 10/11's name-based I/O (``num_io_tensors``, ``get_tensor_name``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``) and pycuda (pinned host memory, device buffers,
one stream, CUDA events; optionally a CUDA graph). ``tensorrt`` and ``pycuda`` are imported
inside functions only: importing this module never needs them.

Every TensorRT name used here and in :mod:`workbench.backends.tensorrt.build` is listed in
:data:`TRT_NAMES_USED`; ``tests/test_trt_api_names.py`` finds them in the source (AST) and
checks them against the TensorRT 10.16 and 11.1 API name lists. A name that exists in only one
of them may be used only behind a version check, listed in :data:`VERSION_GUARDED`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from workbench.backends.availability import tensorrt_status
from workbench.backends.base import Backend, BackendUnavailable, BenchmarkResult, Engine
from workbench.backends.tensorrt.build import (
    BuildLog,
    BuildRecipe,
    Platform,
    ShapeRange,
    build_engine,
    capture_log,
    check_compatible,
    current_platform,
    load_recipe,
    trt_logger,
)
from workbench.backends.tensorrt.cache import EngineIncompatible, metadata_path_for
from workbench.backends.tensorrt.shapes import profile_from_dict
from workbench.backends.tensorrt.timing import (
    SOURCE,
    LayerTimeRecorder,
    _profiler_class,
    benchmark_result,
    profile_document,
    trace_record,
)
from workbench.backends.tensorrt.trt_json import import_trt
from workbench.datasets.arrays import synthetic_inputs
from workbench.errors import WorkbenchError
from workbench.tables.engine_table import make_layer_table

if TYPE_CHECKING:  # names for annotations only; tensorrt is imported inside functions
    import tensorrt as trt


# TensorRT names the runtime side uses (the build side lists its own in trt_build).
# Every TensorRT name used by trt_build and this module (Class, Class.member, Enum.VALUE or a
# Names present in only one supported major version, each used only inside an


class InputShapeError(WorkbenchError, ValueError):
    """Inputs that do not fit the engine; the message names the input and the fix."""


def trt_major() -> int:
    """The installed TensorRT major version (for :data:`VERSION_GUARDED` branches)."""
    import tensorrt as trt

    return int(str(trt.__version__).split(".")[0])


# --------------------------------------------------------------------------------------------
# Per-layer profile (IProfiler)


# --------------------------------------------------------------------------------------------
# Timing (CUDA events -> trtexec's records and summary)


# --------------------------------------------------------------------------------------------
# Inputs versus the engine's profile


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


_PRIMARY_CONTEXT = None


def _cuda():
    """pycuda's driver, with GPU 0's primary context current.

    TensorRT works through the CUDA runtime, which uses the device's primary context; pycuda's
    buffers, streams and events must live in the same context, so pycuda retains and pushes the
    primary context rather than creating its own (as ``pycuda.autoinit`` would).
    """
    global _PRIMARY_CONTEXT
    import pycuda.driver as cuda

    if _PRIMARY_CONTEXT is None:
        import atexit

        cuda.init()
        _PRIMARY_CONTEXT = cuda.Device(0).retain_primary_context()
        _PRIMARY_CONTEXT.push()
        atexit.register(_PRIMARY_CONTEXT.pop)
    return cuda


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
    _cuda()  # make the context current before TensorRT allocates the engine's memory
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


class _Bindings:
    """Pinned host buffers and device buffers of one execution context, for one set of input
    shapes, with the tensor addresses set."""

    def __init__(self, engine: "TensorRTEngine", context: trt.IExecutionContext, shapes: Mapping[str, tuple]):
        import tensorrt as trt

        cuda = _cuda()
        self.shapes = dict(shapes)
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, Any] = {}
        for name in engine.input_names:
            if not context.set_input_shape(name, self.shapes[name]):
                raise InputShapeError(f"TensorRT refused shape {list(self.shapes[name])} for input {name!r}")
        for name in engine.input_names + engine.output_names:
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InputShapeError(
                    f"tensor {name!r} has a data-dependent shape {list(shape)}; this backend needs "
                    "output shapes known from the input shapes"
                )
            dtype = np.dtype(trt.nptype(engine.dtypes[name]))
            self.host[name] = cuda.pagelocked_empty(shape, dtype)
            self.device[name] = cuda.mem_alloc(max(self.host[name].nbytes, 1))
            context.set_tensor_address(name, int(self.device[name]))
        self.graph = None  # pycuda GraphExec once captured


class TensorRTEngine(Engine):
    """A deserialized TensorRT engine with an execution context, a stream and buffers.

    Attributes:
        path: The engine file.
        metadata: Its metadata (empty for engines built elsewhere without one).
        platform: This machine's TensorRT version and GPU.
        input_names, output_names: I/O tensor names, in engine order.
        profile: Min/opt/max per dynamic input (from the engine).
        load_log: TensorRT's messages while loading.
    """

    backend = SOURCE

    def __init__(self, engine: trt.ICudaEngine, metadata: Mapping, path: Path, platform: Platform, runtime, load_log: BuildLog):
        import tensorrt as trt

        self._engine: trt.ICudaEngine = engine
        self._runtime = runtime  # the engine must not outlive its runtime
        self.metadata = dict(metadata)
        self.path = Path(path)
        self.platform = platform
        self.load_log = load_log
        self.input_names: list[str] = []
        self.output_names: list[str] = []
        self.dtypes: dict[str, Any] = {}
        self.fixed_shapes: dict[str, tuple] = {}
        self.profile: dict[str, ShapeRange] = {}
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            if self._engine.is_shape_inference_io(name):
                raise InputShapeError(f"tensor {name!r} is a shape tensor; this backend runs execution tensors only")
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.input_names if is_input else self.output_names).append(name)
            self.dtypes[name] = self._engine.get_tensor_dtype(name)
            shape = tuple(self._engine.get_tensor_shape(name))
            if is_input and any(d < 0 for d in shape):
                lo, opt, hi = (tuple(s) for s in self._engine.get_tensor_profile_shape(name, 0))
                self.profile[name] = ShapeRange(lo, opt, hi)
            elif is_input:
                self.fixed_shapes[name] = shape
        self._context: trt.IExecutionContext = self._engine.create_execution_context()
        self._bindings: _Bindings | None = None
        self._stream = None
        self.last_trace: list[dict] = []

    # -- inputs and buffers --------------------------------------------------------------

    def feed(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check inputs against the engine and convert them to its dtypes (contiguous).

        Raises:
            KeyError: A missing input. InputShapeError: a shape the engine cannot run.
            ValueError: Unknown input names.
        """
        import tensorrt as trt

        unknown = sorted(set(inputs) - set(self.input_names))
        if unknown:
            raise ValueError(f"unknown input name(s) {unknown}; engine inputs: {self.input_names}")
        feed = {}
        for name in self.input_names:
            if name not in inputs:
                raise KeyError(f"missing input {name!r}; engine inputs: {self.input_names}")
            array = np.ascontiguousarray(inputs[name], dtype=np.dtype(trt.nptype(self.dtypes[name])))
            check_input_shape(name, array.shape, self.profile.get(name), self.fixed_shapes.get(name))
            feed[name] = array
        return feed

    def _bind(self, feed: Mapping[str, np.ndarray]) -> _Bindings:
        shapes = {name: tuple(array.shape) for name, array in feed.items()}
        if self._bindings is None or self._bindings.shapes != shapes:
            self._bindings = _Bindings(self, self._context, shapes)
        for name, array in feed.items():
            np.copyto(self._bindings.host[name], array)
        return self._bindings

    @property
    def stream(self):
        if self._stream is None:
            self._stream = _cuda().Stream()
        return self._stream

    def _enqueue(self, context: trt.IExecutionContext) -> None:
        if not context.execute_async_v3(self.stream.handle):
            raise RuntimeError("TensorRT's execute_async_v3 failed; see the TensorRT log for the reason")

    def _infer(self, bindings: _Bindings, events=None, use_graph: bool = False) -> tuple[float, float]:
        """One inference on the stream: H2D copies, compute, D2H copies, then synchronize.

        Returns:
            Host perf_counter seconds around the enqueue call.
        """
        cuda = _cuda()
        stream = self.stream
        if events:
            events[0].record(stream)
        for name in self.input_names:
            cuda.memcpy_htod_async(bindings.device[name], bindings.host[name], stream)
        if events:
            events[1].record(stream)
        enqueue_start = time.perf_counter()
        if use_graph:
            bindings.graph.launch(stream)
        else:
            self._enqueue(self._context)
        enqueue_end = time.perf_counter()
        if events:
            events[2].record(stream)
        for name in self.output_names:
            cuda.memcpy_dtoh_async(bindings.host[name], bindings.device[name], stream)
        if events:
            events[3].record(stream)
        stream.synchronize()
        return enqueue_start, enqueue_end

    def _capture_graph(self, bindings: _Bindings) -> None:
        """Capture the enqueue into a CUDA graph (after one plain inference, which TensorRT
        needs to finish its shape-dependent setup before capture)."""
        stream = self.stream
        if not hasattr(stream, "begin_capture"):
            raise BackendUnavailable("this pycuda has no CUDA graph support; install pycuda>=2022.1 or time without cuda_graph")
        self._infer(bindings)
        stream.begin_capture()
        self._enqueue(self._context)
        graph = stream.end_capture()
        bindings.graph = graph.instantiate()

    # -- Engine interface ----------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one inference.

        Args:
            inputs: Input name -> array, for every engine input.

        Returns:
            Output name -> array (copies).
        """
        bindings = self._bind(self.feed(inputs))
        self._infer(bindings)
        return {name: bindings.host[name].copy() for name in self.output_names}

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
        cuda = _cuda()
        feed = self.feed(inputs)
        bindings = self._bind(feed)
        if cuda_graph and bindings.graph is None:
            self._capture_graph(bindings)
        for _ in range(max(0, int(warmup))):
            self._infer(bindings, use_graph=cuda_graph)
        base = cuda.Event()
        base.record(self.stream)
        host_base = time.perf_counter()
        events = [cuda.Event() for _ in range(4)]
        records = []
        started = time.monotonic()
        while len(records) < int(iterations) or (duration_s is not None and time.monotonic() - started < duration_s):
            enqueue_start, enqueue_end = self._infer(bindings, events, use_graph=cuda_graph)
            h2d_start, h2d_end, compute_end, d2h_end = (e.time_since(base) for e in events)
            records.append(trace_record(
                h2d_start, h2d_end, h2d_end, compute_end, compute_end, d2h_end,
                1000.0 * (enqueue_start - host_base), 1000.0 * (enqueue_end - host_base),
            ))
        self.last_trace = records
        batch = int(feed[self.input_names[0]].shape[0]) if self.input_names and feed[self.input_names[0]].ndim else 1
        return benchmark_result(records, batch_size=batch, warmup=max(0, int(warmup)), settings=self._settings(
            iterations=int(iterations), duration_s=duration_s, cuda_graph=bool(cuda_graph),
            input_shapes={n: list(a.shape) for n, a in feed.items()},
            timing="CUDA events per stage; one inference at a time (synchronized)",
        ))

    def _settings(self, **extra) -> dict:
        return {
            "engine": str(self.path),
            "tensorrt_version": self.platform.tensorrt_version,
            "gpu": self.platform.gpu_name,
            "compute_capability": self.platform.compute_capability,
            "recipe": (self.metadata.get("recipe") or {}).get("name"),
            **extra,
        }

    def inspector_json(self) -> dict:
        """The engine inspector's layer information (detailed if the engine was built so)."""
        import tensorrt as trt

        inspector: trt.EngineInspector = self._engine.create_engine_inspector()
        if self._bindings is not None:  # with shapes set, dynamic dimensions are concrete
            inspector.execution_context = self._context
        return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))

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
        recorder = LayerTimeRecorder()
        context: trt.IExecutionContext = self._engine.create_execution_context()
        profiler = _profiler_class()(recorder)  # kept referenced while the context uses it
        context.profiler = profiler
        bindings = _Bindings(self, context, {n: tuple(a.shape) for n, a in feed.items()})
        for name, array in feed.items():
            np.copyto(bindings.host[name], array)
        cuda = _cuda()
        for index in range(max(0, int(warmup)) + int(iterations)):
            if index >= max(0, int(warmup)):
                recorder.begin_run()
            for name in self.input_names:
                cuda.memcpy_htod_async(bindings.device[name], bindings.host[name], self.stream)
            self._enqueue(context)
            self.stream.synchronize()
        recorder.stop()
        document = profile_document(recorder.runs)
        table = import_trt(self.inspector_json(), profile_json=document, onnx_node_names=self._node_names())
        table.attrs["profile"] = document
        table.attrs["profile_iterations"] = int(iterations)
        return self._as_live(table)

    def _node_names(self) -> list[str] | None:
        return onnx_node_names((self.metadata.get("model") or {}).get("path"))

    def _as_live(self, table: pd.DataFrame) -> pd.DataFrame:
        return as_live_table(table, self._settings())

    def synthetic_inputs(self, *, batch: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        """Random inputs at the profile's opt shapes (``batch`` replacing the first dimension)."""
        if self.metadata.get("inputs"):
            return inputs_for_engine(self.metadata, batch=batch, seed=seed)
        import tensorrt as trt

        rng = np.random.default_rng(seed)
        inputs = {}
        for name in self.input_names:
            shape = list(self.profile[name].opt) if name in self.profile else list(self.fixed_shapes[name])
            if batch is not None and name in self.profile:
                shape[0] = int(batch)
            inputs[name] = rng.standard_normal(shape).astype(np.dtype(trt.nptype(self.dtypes[name])))
        return inputs


