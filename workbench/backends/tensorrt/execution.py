"""Running a TensorRT engine with pycuda: buffers, one stream, and the benchmark and profiling loops.

* :func:`cuda_driver`: pycuda with GPU 0's primary context current (the one TensorRT uses).
* :class:`IOBuffers`: pinned host and device buffers of one execution context for one set of
  input shapes, with the tensor addresses set (``set_input_shape``, ``set_tensor_address``).
* :class:`EngineStream`: the engine's one CUDA stream: copies, ``execute_async_v3``, CUDA graphs.
* :func:`time_inferences`, :func:`record_layer_times`: the loops behind ``benchmark`` and
  ``profile``; their pacing and records are the pure helpers of
  :mod:`workbench.backends.tensorrt.timing`.

``tensorrt`` and ``pycuda`` are imported inside functions only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from workbench.backends.base import BackendUnavailable
from workbench.backends.tensorrt.engine_io import EngineIO, InputShapeError
from workbench.backends.tensorrt.timing import (
    LayerTimeRecorder,
    _profiler_class,
    event_record,
    keep_timing,
    profiled_runs,
)

if TYPE_CHECKING:  # names for annotations only; tensorrt is imported inside functions
    import tensorrt as trt


_PRIMARY_CONTEXT = None


def cuda_driver():
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


class IOBuffers:
    """Pinned host buffers and device buffers of one execution context, for one set of input
    shapes, with the tensor addresses set.

    Attributes:
        io: The engine's I/O tensors.
        shapes: Input name -> the shape the buffers were made for.
        host, device: Tensor name -> pinned array / device allocation.
        graph: The captured CUDA graph (pycuda ``GraphExec``), None until captured.
    """

    def __init__(self, io: EngineIO, context: trt.IExecutionContext, shapes: Mapping[str, tuple]):
        cuda = cuda_driver()
        self.io = io
        self.shapes = dict(shapes)
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, Any] = {}
        for name in io.input_names:
            if not context.set_input_shape(name, self.shapes[name]):
                raise InputShapeError(f"TensorRT refused shape {list(self.shapes[name])} for input {name!r}")
        for name in io.input_names + io.output_names:
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InputShapeError(
                    f"tensor {name!r} has a data-dependent shape {list(shape)}; this backend needs "
                    "output shapes known from the input shapes"
                )
            dtype = io.numpy_dtype(name)
            self.host[name] = cuda.pagelocked_empty(shape, dtype)
            self.device[name] = cuda.mem_alloc(max(self.host[name].nbytes, 1))
            context.set_tensor_address(name, int(self.device[name]))
        self.graph = None  # pycuda GraphExec once captured

    def copy_in(self, feed: Mapping[str, np.ndarray]) -> None:
        """Copy checked inputs (:func:`~workbench.backends.tensorrt.engine_io.prepare_feed`)
        into the pinned host buffers."""
        for name, array in feed.items():
            np.copyto(self.host[name], array)


class EngineStream:
    """The engine's one CUDA stream (created on first use); every context runs on it."""

    def __init__(self):
        self._stream = None

    @property
    def stream(self):
        """The pycuda ``Stream``."""
        if self._stream is None:
            self._stream = cuda_driver().Stream()
        return self._stream

    def enqueue(self, context: trt.IExecutionContext) -> None:
        """Enqueue one inference of ``context`` on the stream (no copies, no wait)."""
        if not context.execute_async_v3(self.stream.handle):
            raise RuntimeError("TensorRT's execute_async_v3 failed; see the TensorRT log for the reason")

    def copy_inputs(self, buffers: IOBuffers) -> None:
        """Enqueue the H2D copies of every input."""
        cuda = cuda_driver()
        for name in buffers.io.input_names:
            cuda.memcpy_htod_async(buffers.device[name], buffers.host[name], self.stream)

    def infer(self, context: trt.IExecutionContext, buffers: IOBuffers, events=None, use_graph: bool = False) -> tuple[float, float]:
        """One inference on the stream: H2D copies, compute, D2H copies, then synchronize.

        Args:
            context: The execution context ``buffers`` belong to.
            buffers: Its buffers, inputs already in the host buffers.
            events: Four pycuda events to record before H2D, after H2D, after compute and
                after D2H; None to record none.
            use_graph: Launch the captured CUDA graph instead of enqueuing.

        Returns:
            Host perf_counter seconds around the enqueue call.
        """
        cuda = cuda_driver()
        stream = self.stream
        if events:
            events[0].record(stream)
        for name in buffers.io.input_names:
            cuda.memcpy_htod_async(buffers.device[name], buffers.host[name], stream)
        if events:
            events[1].record(stream)
        enqueue_start = time.perf_counter()
        if use_graph:
            buffers.graph.launch(stream)
        else:
            self.enqueue(context)
        enqueue_end = time.perf_counter()
        if events:
            events[2].record(stream)
        for name in buffers.io.output_names:
            cuda.memcpy_dtoh_async(buffers.host[name], buffers.device[name], stream)
        if events:
            events[3].record(stream)
        stream.synchronize()
        return enqueue_start, enqueue_end

    def capture_graph(self, context: trt.IExecutionContext, buffers: IOBuffers) -> None:
        """Capture the enqueue into a CUDA graph (after one plain inference, which TensorRT
        needs to finish its shape-dependent setup before capture)."""
        stream = self.stream
        if not hasattr(stream, "begin_capture"):
            raise BackendUnavailable("this pycuda has no CUDA graph support; install pycuda>=2022.1 or time without cuda_graph")
        self.infer(context, buffers)
        stream.begin_capture()
        self.enqueue(context)
        graph = stream.end_capture()
        buffers.graph = graph.instantiate()


def time_inferences(
    stream: EngineStream,
    context: trt.IExecutionContext,
    buffers: IOBuffers,
    *,
    iterations: int,
    warmup: int,
    duration_s: float | None,
    cuda_graph: bool,
) -> list[dict]:
    """Run timed inferences one at a time with CUDA events around each stage.

    Args:
        stream: The engine's stream.
        context: The execution context to run.
        buffers: Its buffers, inputs already copied in.
        iterations: Timed inferences (a minimum with ``duration_s``).
        warmup: Untimed inferences first.
        duration_s: Keep going until this many seconds passed as well.
        cuda_graph: Launch through a captured CUDA graph (captured here if not yet).

    Returns:
        One :func:`~workbench.backends.tensorrt.timing.event_record` per timed inference.
    """
    cuda = cuda_driver()
    if cuda_graph and buffers.graph is None:
        stream.capture_graph(context, buffers)
    for _ in range(max(0, int(warmup))):
        stream.infer(context, buffers, use_graph=cuda_graph)
    base = cuda.Event()
    base.record(stream.stream)
    host_base = time.perf_counter()
    events = [cuda.Event() for _ in range(4)]
    records: list[dict] = []
    started = time.monotonic()
    while keep_timing(len(records), iterations, time.monotonic() - started, duration_s):
        enqueue_start, enqueue_end = stream.infer(context, buffers, events, use_graph=cuda_graph)
        stage_ms = [e.time_since(base) for e in events]
        records.append(event_record(stage_ms, enqueue_start, enqueue_end, host_base))
    return records


def record_layer_times(
    engine: trt.ICudaEngine,
    io: EngineIO,
    stream: EngineStream,
    feed: Mapping[str, np.ndarray],
    *,
    iterations: int,
    warmup: int,
) -> Sequence[Mapping[str, float]]:
    """Per-layer times of ``iterations`` inferences through ``IProfiler``.

    A second execution context with the profiler attached runs on the engine's stream (the
    profiler synchronizes after every layer, so it stays off the context used for timing).

    Args:
        engine: The engine.
        io: Its I/O tensors.
        stream: The engine's stream.
        feed: Checked inputs.
        iterations: Recorded inferences.
        warmup: Inferences run first and not recorded.

    Returns:
        One ``{layer name: ms}`` per recorded inference (for
        :func:`~workbench.backends.tensorrt.timing.profile_document`).
    """
    recorder = LayerTimeRecorder()
    context: trt.IExecutionContext = engine.create_execution_context()
    profiler = _profiler_class()(recorder)  # kept referenced while the context uses it
    context.profiler = profiler
    buffers = IOBuffers(io, context, {n: tuple(a.shape) for n, a in feed.items()})
    buffers.copy_in(feed)
    for _index in profiled_runs(recorder, warmup=warmup, iterations=iterations):
        stream.copy_inputs(buffers)
        stream.enqueue(context)
        stream.stream.synchronize()
    return recorder.runs
