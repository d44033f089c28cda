"""ONNX Runtime backend: build, run, time and inspect a model on ONNX Runtime (CPU everywhere).

The layer table comes from the graph ONNX Runtime actually executes: the session writes its
*optimized* graph (``SessionOptions.optimized_model_filepath``), which is read back with
:mod:`onnx`. Every node of that graph is one row. Each row's ``onnx_nodes`` lists the original
model's nodes the row implements, found from tensor names (see :func:`map_to_original`): ORT keeps
the names of the tensors that survive its rewrites, so the original nodes lying between the
original tensors an optimized node reads and the ones it writes are the nodes it implements.
Original nodes no row implements were constant-folded or eliminated; they are listed in
``table.attrs["folded_onnx_nodes"]``.

Example::

    engine = OnnxRuntimeBackend().build("model.onnx", {"graph_optimization_level": "all"})
    outputs = engine.run({"input": x})
    result = engine.benchmark({"input": x}, iterations=200)
    table = engine.profile({"input": x})
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from workbench.backends.base import Backend, BackendUnavailable, BenchmarkResult, Engine
from workbench.backends.onnxruntime.layer_table import (
    _ONNX_DTYPES,
    build_layer_table,
    join_profile,
)
from workbench.backends.onnxruntime.session import (
    CPU_PROVIDER,
    LEVELS,
    SOURCE,
    ort_session,
    session_options,
)
from workbench.errors import WorkbenchError
from workbench.model.names import ensure_node_names, names_need_fixing
from workbench.tables.engine_table import make_layer_table

_OPTION_KEYS = ("graph_optimization_level", "intra_op_num_threads", "providers")

# Nodes ORT adds that compute nothing: their output is their first input in another layout or
# Ops ORT never runs as kernels of their own when anything else is done to the graph:
# Constant nodes become initializers at load; Identity/Dropout are removed at inference. They
# Ops that only move or relabel data; when ORT adds one of these no warning is needed.

for _name, _label in (("FLOAT8E4M3FN", "FP8"), ("FLOAT8E5M2", "FP8"), ("INT4", "INT4"),
                      ("UINT4", "UINT4")):
    if hasattr(onnx.TensorProto, _name):
        _ONNX_DTYPES[getattr(onnx.TensorProto, _name)] = _label

# Type names as the ORT profiler writes them in input_type_shape / output_type_shape.
# ORT input type strings -> numpy dtypes, to convert feeds once.
_NUMPY_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}


# --------------------------------------------------------------------------------------------
# Backend and engine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrtOptions:
    """Validated build options.

    Attributes:
        graph_optimization_level: ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"``.
        intra_op_num_threads: Threads per operator; None keeps ORT's default.
        providers: Execution providers in ORT's format (names or ``(name, options)`` pairs).
    """

    graph_optimization_level: str = "all"
    intra_op_num_threads: int | None = None
    providers: tuple = (CPU_PROVIDER,)

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None) -> "OrtOptions":
        """Validate a user options mapping.

        Args:
            options: Mapping with any of ``graph_optimization_level``, ``intra_op_num_threads``
                and ``providers``; None for all defaults.

        Returns:
            The options, with defaults filled in.

        Raises:
            ValueError: On an unknown key or level, or a thread count below 1.
            BackendUnavailable: If a requested provider is not available in this ORT build.
        """
        options = dict(options or {})
        unknown = sorted(set(options) - set(_OPTION_KEYS))
        if unknown:
            raise ValueError(f"unknown onnxruntime option(s) {unknown}; known: {_OPTION_KEYS}")
        level = str(options.get("graph_optimization_level") or "all").lower()
        if level not in LEVELS:
            raise ValueError(f"graph_optimization_level {level!r} not in {sorted(LEVELS)}")
        threads = options.get("intra_op_num_threads")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"intra_op_num_threads must be >= 1 or None, got {threads!r}")
        providers = tuple(options.get("providers") or (CPU_PROVIDER,))
        _check_providers(providers)
        return cls(level, None if threads is None else int(threads), providers)

    def session_options(self, *, quiet: bool = False) -> ort.SessionOptions:
        """Return fresh ORT session options for these settings.

        Args:
            quiet: Log errors only (hides ORT's warning when an NCHWc graph is serialized).

        Returns:
            New :class:`onnxruntime.SessionOptions`.
        """
        so = session_options(self.graph_optimization_level, threads=self.intra_op_num_threads)
        if not quiet:
            so.log_severity_level = 2  # ORT's default: warnings too
        return so


def _check_providers(providers: Sequence) -> None:
    """Raise :class:`BackendUnavailable` if a provider is missing from this ORT build."""
    available = ort.get_available_providers()
    for provider in providers:
        name = provider[0] if isinstance(provider, (tuple, list)) else provider
        if name not in available:
            raise BackendUnavailable(
                f"ONNX Runtime provider {name!r} is not available (this build has {available}); "
                "install the matching onnxruntime package (e.g. onnxruntime-gpu) or use "
                f"providers=[{CPU_PROVIDER!r}]"
            )


class ModelRunError(WorkbenchError, RuntimeError):
    """ONNX Runtime refused to run a model on the inputs given; the message names them and the reason."""


class OnnxRuntimeBackend(Backend):
    """Builds ONNX models into :class:`OnnxRuntimeEngine` sessions."""

    name = SOURCE

    def build(self, model, options: Mapping[str, Any] | None = None) -> "OnnxRuntimeEngine":
        """Create an inference session for ``model``.

        Args:
            model: Path (``str`` / :class:`~pathlib.Path`) to an ``.onnx`` file, an
                :class:`onnx.ModelProto`, or a :class:`workbench.model.LoadedModel` (its file
                is loaded by ORT, else its ``proto``).
            options: ``graph_optimization_level`` (``"disable"``, ``"basic"``, ``"extended"``,
                ``"all"``; default ``"all"``), ``intra_op_num_threads`` (default None: ORT's
                default) and ``providers`` (default ``["CPUExecutionProvider"]``).

        Returns:
            The engine.
        """
        return OnnxRuntimeEngine(model, OrtOptions.parse(options))


class OnnxRuntimeEngine(Engine):
    """One ONNX Runtime session plus what is needed to inspect and profile it.

    Attributes:
        model: The original model (structure; external weights not loaded when built from a
            path). Unnamed or duplicate-named nodes are given names first (see
            :func:`ensure_node_names`); ``onnx_nodes`` refers to these names.
        options: The validated :class:`OrtOptions`.
        session: The :class:`onnxruntime.InferenceSession` that ``run`` and ``benchmark`` use.
        input_names, output_names: The session's input and output names, in order.
    """

    backend = SOURCE

    def __init__(self, model, options: OrtOptions):
        self.model, self._session_source, self.renamed_nodes = _load_model(model)
        self.options = options
        self.session = self.new_session(options.session_options())
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._input_dtypes = {i.name: _NUMPY_DTYPES.get(i.type) for i in self.session.get_inputs()}
        self._layers: pd.DataFrame | None = None

    def new_session(self, session_options: ort.SessionOptions) -> ort.InferenceSession:
        """Create another session on the same model and providers.

        Args:
            session_options: Options for the new session (from ``self.options.session_options()``
                plus whatever the caller adds).

        Returns:
            The new session.
        """
        return ort_session(self._session_source, session_options, providers=self.options.providers)

    def feed(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Build the feed dict once: contiguous arrays of the session's input dtypes.

        Args:
            inputs: Input name -> array-like, one entry per model input.

        Returns:
            Input name -> :class:`numpy.ndarray`, ready for ``session.run``.

        Raises:
            KeyError: If a model input is missing; ValueError for names the model lacks.
        """
        unknown = sorted(set(inputs) - set(self.input_names))
        if unknown:
            raise ValueError(f"unknown input name(s) {unknown}; model inputs: {self.input_names}")
        feed = {}
        for name in self.input_names:
            if name not in inputs:
                raise KeyError(f"missing input {name!r}; model inputs: {self.input_names}")
            # asarray(order="C"), not ascontiguousarray: that makes a scalar (a sample rate) 1-D
            feed[name] = np.asarray(inputs[name], dtype=self._input_dtypes[name], order="C")
        return feed

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one inference.

        Args:
            inputs: Input name -> array.

        Returns:
            Output name -> array, for every model output.
        """
        return dict(zip(self.output_names, self.session.run(self.output_names, self.feed(inputs))))

    def benchmark(
        self,
        inputs: Mapping[str, Any],
        *,
        iterations: int = 100,
        warmup: int = 10,
        duration_s: float | None = None,
        batch_size: int | None = None,
    ) -> BenchmarkResult:
        """Time repeated inferences on the same inputs.

        Only ``session.run`` is inside the timed region (``time.perf_counter`` on either side);
        the feed dict and output names are built once before the loop.

        Args:
            inputs: Input name -> array.
            iterations: Timed iterations. With ``duration_s`` this is a minimum.
            warmup: Untimed iterations run first.
            duration_s: If set, keep running until this many seconds (wall clock) have passed
                since the first timed run started *and* at least ``iterations`` runs were timed:
                both are minimums, as ``--duration``/``--iterations`` are in trtexec.
            batch_size: Samples per run, for the throughput (the caller knows the inputs' sample
                axes, see :mod:`workbench.datasets.arrays`); None takes the first input's
                leading dim (1 for a scalar).

        Returns:
            The latency summary; ``settings`` records providers, threads, optimization level,
            requested iterations and duration.
        """
        feed = self.feed(inputs)
        run, names = self.session.run, self.output_names
        self.checked_run(feed)  # a model that fails on these inputs is refused in one line, not timed
        for _ in range(max(0, int(warmup))):
            run(names, feed)
        if duration_s is None:
            latencies = _timed_loop(run, names, feed, int(iterations))
        else:
            latencies = _timed_loop_for(run, names, feed, int(iterations), float(duration_s))
        return BenchmarkResult.from_latencies(
            np.asarray(latencies) * 1000.0,
            backend=SOURCE,
            warmup=max(0, int(warmup)),
            batch_size=int(batch_size) if batch_size is not None else (
                _batch_size(feed[self.input_names[0]]) if self.input_names else 1),
            settings=self._settings(iterations=int(iterations), duration_s=duration_s),
        )

    def checked_run(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One run of a ready feed that turns ONNX Runtime's failure into a one-line :class:`ModelRunError`.

        Args:
            feed: Input name -> array, as :meth:`feed` builds it.

        Returns:
            The outputs, in ``output_names`` order.

        Raises:
            ModelRunError: ONNX Runtime refused to run the model on these inputs (a value or a
                shape the model's own checks reject, e.g. a sample rate it does not support).
        """
        try:
            return self.session.run(self.output_names, feed)
        except Exception as err:  # ORT's pybind errors (Fail, InvalidArgument, ...) share no base class
            if isinstance(err, (KeyboardInterrupt, MemoryError)):
                raise
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            message = message.split("Status Message: ")[-1].split("] : ")[-1][:300]
            shapes = ", ".join(f"{n} {list(a.shape)}" for n, a in feed.items())
            raise ModelRunError(
                f"ONNX Runtime could not run the model on these inputs ({shapes}): {message}. Random "
                "inputs can hold values a model refuses (a sample rate, token ids): give real data (--data)."
            ) from err

    def _settings(self, **extra) -> dict:
        """Describe how this engine runs, for benchmark results and table attrs."""
        return {
            "providers": list(self.session.get_providers()),
            "intra_op_num_threads": self.options.intra_op_num_threads,
            "graph_optimization_level": self.options.graph_optimization_level,
            "onnxruntime_version": ort.__version__,
            **extra,
        }

    def optimized_model(self) -> onnx.ModelProto:
        """The graph this engine's session executes, as ORT serializes it after optimization.

        A second session with the same options writes it to a temporary file; graph
        optimization is deterministic, so node names match the engine's session and profiler.

        Returns:
            The optimized model (initializers left as external-data stubs: dtype and dims only).
        """
        with tempfile.TemporaryDirectory(prefix="wb-ort-") as tmp:
            so = self.options.session_options(quiet=True)
            so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
            so.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", "optimized.data"
            )
            so.add_session_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes", "64"
            )
            self.new_session(so)
            return onnx.load(so.optimized_model_filepath, load_external_data=False)

    def layers(self) -> pd.DataFrame:
        """The layer table of the optimized graph, one row per executed node, without times.

        Returns:
            A table built with :func:`make_layer_table`; ``attrs`` holds ``folded_onnx_nodes``
            (original nodes no row implements), ``renamed_onnx_nodes``, the settings and
            ``warnings``.
        """
        if self._layers is None:
            self._layers = build_layer_table(
                self.model, self.optimized_model(), providers=self.session.get_providers(),
                attrs={**self._settings(), "renamed_onnx_nodes": dict(self.renamed_nodes)},
            )
        records = copy.deepcopy(self._layers.to_dict("records"))
        return make_layer_table(records, copy.deepcopy(self._layers.attrs))

    def profile(
        self, inputs: Mapping[str, Any], *, iterations: int = 20, warmup: int = 3
    ) -> pd.DataFrame:
        """Profile per-node kernel times with ORT's profiler and join them to :meth:`layers`.

        A separate session with the same options and profiling enabled runs ``warmup`` then
        ``iterations`` inferences; the node events of the timed runs are summed per run and node.

        Args:
            inputs: Input name -> array.
            iterations: Profiled inferences.
            warmup: Inferences run first and left out of the statistics.

        Returns:
            The layer table plus ``time_ms`` (mean per inference), ``median_ms`` and ``share``
            (percent of summed layer time). ``attrs`` adds ``end_to_end_ms`` (mean ``model_run``
            time as the profiler saw it), ``end_to_end_median_ms``, ``profile_iterations`` and
            warnings for profiler nodes that match no layer and layers with no profiler event.
        """
        if iterations < 1:
            raise ValueError("iterations must be >= 1")
        feed = self.feed(inputs)
        self.checked_run(feed)
        events = self._profile_events(feed, int(iterations), max(0, int(warmup)))
        return join_profile(self.layers(), events, int(iterations))

    def _profile_events(self, feed: dict, iterations: int, warmup: int) -> list[dict]:
        """Run a profiling session and return its trace events (the trace file is deleted)."""
        with tempfile.TemporaryDirectory(prefix="wb-ort-prof-") as tmp:
            so = self.options.session_options()
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(tmp, "ort_profile")
            session = self.new_session(so)
            for _ in range(warmup + iterations):
                session.run(self.output_names, feed)
            path = session.end_profiling()
            try:
                with open(path, encoding="utf-8") as f:
                    return json.load(f)
            finally:
                os.remove(path)


def _timed_loop(run, names, feed, iterations: int) -> list[float]:
    """Time ``iterations`` calls of ``run(names, feed)``; returns seconds per call."""
    clock = time.perf_counter
    latencies = []
    append = latencies.append
    for _ in range(iterations):
        start = clock()
        run(names, feed)
        append(clock() - start)
    return latencies


def _timed_loop_for(run, names, feed, iterations: int, duration_s: float) -> list[float]:
    """Time calls until both ``iterations`` calls and ``duration_s`` seconds are reached."""
    clock = time.perf_counter
    latencies = []
    append = latencies.append
    deadline = clock() + duration_s
    while True:
        start = clock()
        run(names, feed)
        end = clock()
        append(end - start)
        if end >= deadline and len(latencies) >= iterations:
            return latencies


def _batch_size(array: np.ndarray) -> int:
    """The leading dimension of an input (1 for scalars)."""
    return int(array.shape[0]) if array.ndim else 1


# --------------------------------------------------------------------------------------------
# Loading the original model
# --------------------------------------------------------------------------------------------


def _load_model(model) -> tuple[onnx.ModelProto, Any, dict[str, str]]:
    """Resolve ``model`` into (original ModelProto, what ORT should load, renamed nodes).

    ORT loads a path itself when no node needs a name, so external weights resolve next to it.
    A normalized ``LoadedModel`` brings the names its loader gave (``renamed_nodes``).
    """
    if not isinstance(model, (str, os.PathLike, onnx.ModelProto)):
        loader_renamed = dict(getattr(model, "renamed_nodes", None) or {})
        unwrapped = _unwrap(model)
        if isinstance(unwrapped, onnx.ModelProto) and loader_renamed:
            proto, source, renamed = _load_model(unwrapped)
            return proto, source, {**loader_renamed, **renamed}
        model = unwrapped
    if isinstance(model, (str, os.PathLike)):
        path = str(Path(model))
        proto = onnx.load(path, load_external_data=False)
        if not names_need_fixing(proto.graph):
            return proto, path, {}
        proto = onnx.load(path)
    elif isinstance(model, onnx.ModelProto):
        proto = model
        if names_need_fixing(proto.graph):
            proto = onnx.ModelProto()
            proto.CopyFrom(model)
    else:
        raise TypeError(f"cannot build {type(model).__name__}: pass a path or onnx.ModelProto")
    renamed = ensure_node_names(proto.graph)
    # the proto itself: the session factory serializes it, or saves it with external data if > 2 GB
    return proto, proto, renamed


def _unwrap(model):
    """The path (if it is a file) or ModelProto a model wrapper (``LoadedModel``) carries.

    A model the loader normalized runs as normalized (its ``proto``), so the layer table's node
    names, folded weights and inputs are those of the model the user inspected.
    """
    path = getattr(model, "path", None)
    if path is not None and Path(path).is_file() and not getattr(model, "normalized", False):
        return path
    for attr in ("proto", "model"):
        if isinstance(getattr(model, attr, None), onnx.ModelProto):
            return getattr(model, attr)
    raise TypeError(f"cannot build {type(model).__name__}: pass a path or onnx.ModelProto")
