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

import bisect
import copy
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from workbench.analysis.engine_table import add_shares, make_layer_table, precision_of
from workbench.backends.base import Backend, BackendUnavailable, BenchmarkResult, Engine

SOURCE = "onnxruntime"
CPU_PROVIDER = "CPUExecutionProvider"

LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_OPTION_KEYS = ("graph_optimization_level", "intra_op_num_threads", "providers")

NCHWC_DOMAIN = "com.microsoft.nchwc"
# Nodes ORT adds that compute nothing: their output is their first input in another layout or
# memory. They never implement an original node.
PASSTHROUGH_OPS = {
    (NCHWC_DOMAIN, "ReorderInput"),
    (NCHWC_DOMAIN, "ReorderOutput"),
    ("", "MemcpyToHost"),
    ("", "MemcpyFromHost"),
}
# Ops ORT never runs as kernels of their own when anything else is done to the graph:
# Constant nodes become initializers at load; Identity/Dropout are removed at inference. They
# count as folded unless the optimized graph still has them under their own name.
NEVER_RUN_OPS = {"Constant", "Identity", "Dropout"}
# Ops that only move or relabel data; when ORT adds one of these no warning is needed.
_DATA_MOVEMENT_OPS = {"Transpose", "Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze",
                      "Flatten", "Expand", "DequantizeLinear", "QuantizeLinear"}

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.BFLOAT16: "BF16",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.STRING: "STRING",
}
for _name, _label in (("FLOAT8E4M3FN", "FP8"), ("FLOAT8E5M2", "FP8"), ("INT4", "INT4"),
                      ("UINT4", "UINT4")):
    if hasattr(onnx.TensorProto, _name):
        _ONNX_DTYPES[getattr(onnx.TensorProto, _name)] = _label

# Type names as the ORT profiler writes them in input_type_shape / output_type_shape.
_PROFILER_DTYPES = {
    "float": "FP32", "MLFloat16": "FP16", "float16": "FP16", "BFloat16": "BF16",
    "double": "FP64", "int8_t": "INT8", "int8": "INT8", "uint8_t": "UINT8", "uint8": "UINT8",
    "int16_t": "INT16", "uint16_t": "UINT16", "int32_t": "INT32", "int32": "INT32",
    "uint32_t": "UINT32", "int64_t": "INT64", "int64": "INT64", "uint64_t": "UINT64",
    "bool": "BOOL",
}
# ORT input type strings -> numpy dtypes, to convert feeds once.
_NUMPY_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}

_PROFILE_SUFFIX = "_kernel_time"


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
        so = ort.SessionOptions()
        so.graph_optimization_level = LEVELS[self.graph_optimization_level]
        if self.intra_op_num_threads is not None:
            so.intra_op_num_threads = self.intra_op_num_threads
        if quiet:
            so.log_severity_level = 3
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
        return ort.InferenceSession(
            self._session_source, session_options, providers=list(self.options.providers)
        )

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
            feed[name] = np.ascontiguousarray(inputs[name], dtype=self._input_dtypes[name])
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

        Returns:
            The latency summary; ``settings`` records providers, threads, optimization level,
            requested iterations and duration.
        """
        feed = self.feed(inputs)
        run, names = self.session.run, self.output_names
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
            batch_size=_batch_size(feed[self.input_names[0]]) if self.input_names else 1,
            settings=self._settings(iterations=int(iterations), duration_s=duration_s),
        )

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
        events = self._profile_events(self.feed(inputs), int(iterations), max(0, int(warmup)))
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
    """
    if not isinstance(model, (str, os.PathLike, onnx.ModelProto)):
        model = _unwrap(model)
    if isinstance(model, (str, os.PathLike)):
        path = str(Path(model))
        proto = onnx.load(path, load_external_data=False)
        if not _names_need_fixing(proto.graph):
            return proto, path, {}
        proto = onnx.load(path)
    elif isinstance(model, onnx.ModelProto):
        proto = model
        if _names_need_fixing(proto.graph):
            proto = onnx.ModelProto()
            proto.CopyFrom(model)
    else:
        raise TypeError(f"cannot build {type(model).__name__}: pass a path or onnx.ModelProto")
    renamed = ensure_node_names(proto.graph)
    return proto, proto.SerializeToString(), renamed


def _unwrap(model):
    """The path (if it is a file) or ModelProto a model wrapper (``LoadedModel``) carries."""
    path = getattr(model, "path", None)
    if path is not None and Path(path).is_file():
        return path
    for attr in ("proto", "model"):
        if isinstance(getattr(model, attr, None), onnx.ModelProto):
            return getattr(model, attr)
    raise TypeError(f"cannot build {type(model).__name__}: pass a path or onnx.ModelProto")


def _names_need_fixing(graph: onnx.GraphProto) -> bool:
    """True if some top-level node has no name or shares its name with another node."""
    names = [n.name for n in graph.node]
    return "" in names or len(set(names)) != len(names)


def ensure_node_names(graph: onnx.GraphProto) -> dict[str, str]:
    """Name unnamed nodes ``<op_type>_<index>`` (as ORT's profiler does) and de-duplicate names.

    Args:
        graph: The graph to edit in place.

    Returns:
        New name -> old name (``""`` for nodes that had none).
    """
    taken = {n.name for n in graph.node if n.name}
    seen: set[str] = set()
    renamed = {}
    for index, node in enumerate(graph.node):
        if node.name and node.name not in seen:
            seen.add(node.name)
            continue
        base = f"{node.op_type}_{index}" if not node.name else f"{node.name}_{index}"
        new, k = base, 1
        while new in taken or new in seen:
            new, k = f"{base}_{k}", k + 1
        renamed[new] = node.name
        node.name = new
        seen.add(new)
        taken.add(new)
    return renamed


# --------------------------------------------------------------------------------------------
# Mapping optimized nodes back to original nodes
# --------------------------------------------------------------------------------------------


@dataclass
class NodeMapping:
    """Result of :func:`map_to_original`.

    Attributes:
        onnx_nodes: Per optimized node (in order), the original node names it implements.
        inserted: Per optimized node, True if it implements no original node.
        folded: Original node names no optimized node implements (constant-folded/eliminated).
        warnings: Anything the mapping could not settle cleanly.
        equivalents: Optimized tensor name -> original tensor holding the same values.
    """

    onnx_nodes: list[list[str]]
    inserted: list[bool]
    folded: list[str]
    warnings: list[str]
    equivalents: dict[str, str]


class _OriginalGraph:
    """Producer/consumer index of the original graph's top-level nodes."""

    def __init__(self, graph: onnx.GraphProto):
        self.nodes = list(graph.node)
        self.index = {n.name: i for i, n in enumerate(self.nodes)}
        self.producer = {t: i for i, n in enumerate(self.nodes) for t in n.output if t}
        self.tensors = set(self.producer) | {i.name for i in graph.input}
        self.tensors |= {i.name for i in graph.initializer}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for t in node.input:
                self.consumers.setdefault(t, []).append(i)

    def upstream(self, i: int) -> list[int]:
        """Producers of node ``i``'s inputs."""
        return [self.producer[t] for t in self.nodes[i].input if t in self.producer]

    def downstream(self, i: int) -> list[int]:
        """Consumers of node ``i``'s outputs."""
        return [c for t in self.nodes[i].output if t for c in self.consumers.get(t, ())]

    def region(self, outs: Iterable[str], stops: set[str]) -> set[int]:
        """Original nodes between ``outs`` and the tensors in ``stops``.

        Walks back from the producers of ``outs``; a tensor in ``stops``, or one nothing
        produces (graph input, initializer), ends the walk. Nodes ORT never runs as such
        (Constant, Identity, Dropout) are walked through but left out.

        Args:
            outs: Original tensors the optimized node (or cluster) produces.
            stops: Original tensors that exist at run time (read, not recomputed, by the node).

        Returns:
            Indices of the original nodes in the region.
        """
        stack = [self.producer[t] for t in outs if t in self.producer]
        region: set[int] = set()
        while stack:
            i = stack.pop()
            if i in region:
                continue
            region.add(i)
            for t in self.nodes[i].input:
                if t and t not in stops and t in self.producer:
                    stack.append(self.producer[t])
        return {i for i in region if not _never_runs(self.nodes[i])}


def _never_runs(node: onnx.NodeProto) -> bool:
    return node.op_type in NEVER_RUN_OPS and node.domain in ("", "ai.onnx")


def _equivalents(original: _OriginalGraph, opt: onnx.GraphProto) -> dict[str, str]:
    """Map optimized-graph tensors to the original tensor holding the same values.

    Original names map to themselves. A pass-through node's (ReorderInput/Output, Memcpy)
    output and input are the same values in another layout or memory. An NCHWc node is named
    ``<tensor>_nchwc`` after the output of the original node it replaced (its *head*) at the
    time of the NCHWc rewrite, so its data input is the head's data input; its output is that
    tensor unless a consumer says otherwise (a Sum/activation fused later moves it downstream).

    Args:
        original: Index of the original graph.
        opt: The optimized graph.

    Returns:
        Optimized tensor name -> original tensor name, for the tensors that have one.
    """
    names = {t for n in opt.node for t in (*n.input, *n.output) if t}
    names |= {i.name for i in opt.input} | {i.name for i in opt.initializer}
    eq = {t: t for t in names if t in original.tensors}
    _propagate_passthrough(opt, eq)
    hints = {}
    for node in opt.node:
        hint = _nchwc_hint(original, node)
        if hint is None:
            continue
        hints[node.output[0]] = hint
        head = _nchwc_head(original, node, hint)
        if head is not None and node.input[0] not in eq:
            eq[node.input[0]] = original.nodes[head].input[0]
    _propagate_passthrough(opt, eq)
    for tensor, hint in hints.items():
        eq.setdefault(tensor, hint)
    _propagate_passthrough(opt, eq)
    return eq


def _propagate_passthrough(opt: onnx.GraphProto, eq: dict[str, str]) -> None:
    """Spread equivalences across pass-through nodes (both directions) until nothing changes."""
    changed = True
    while changed:
        changed = False
        for node in opt.node:
            if (node.domain, node.op_type) not in PASSTHROUGH_OPS or not node.input:
                continue
            src, dst = node.input[0], node.output[0]
            if src in eq and dst not in eq:
                eq[dst], changed = eq[src], True
            elif dst in eq and src not in eq:
                eq[src], changed = eq[dst], True


def _nchwc_hint(original: _OriginalGraph, node: onnx.NodeProto) -> str | None:
    """The original tensor an NCHWc compute node is named after (``<tensor>_nchwc``), if any."""
    if node.domain != NCHWC_DOMAIN or (node.domain, node.op_type) in PASSTHROUGH_OPS:
        return None
    if not node.name.endswith("_nchwc") or not node.input or not node.output:
        return None
    hint = node.name[: -len("_nchwc")]
    return hint if hint in original.producer else None


def _nchwc_head(original: _OriginalGraph, node: onnx.NodeProto, hint: str,
                max_steps: int = 4) -> int | None:
    """The original node an NCHWc node replaced: the producer of ``hint``, or the first node of
    the same op type up its chain of first inputs (past activations/BN fused before the rewrite).
    """
    tensor = hint
    for _ in range(max_steps):
        index = original.producer.get(tensor)
        if index is None:
            return None
        if original.nodes[index].op_type == node.op_type:
            return index
        if not original.nodes[index].input:
            return None
        tensor = original.nodes[index].input[0]
    return None


def _name_candidates(name: str) -> list[str]:
    """Original node names an ORT-made node name may carry.

    ORT names fused nodes after an original one: ``matmul/MatMulAddFusion``,
    ``ln/LayerNormFusion/``, ``r1_DequantizeLinear/duplicated``, ``conv1_token_15`` (layout
    rewrites), ``x_nchwc``. Original names may contain ``/`` themselves (``/features/conv1/Conv``).
    """
    out = [name, re.sub(r"(_token_\d+)+$", "", name)]
    for suffix in ("_nchwc", "_fused", "_Fused"):
        if name.endswith(suffix):
            out.append(name[: -len(suffix)])
    head = name
    while True:
        rest, sep, tail = head.rpartition("/")
        if not sep or not (tail == "" or tail.endswith("Fusion") or tail == "duplicated"):
            break
        head = rest
        out.append(head)
    return [c for c in dict.fromkeys(out) if c]


def _is_passthrough(node: onnx.NodeProto) -> bool:
    return (node.domain, node.op_type) in PASSTHROUGH_OPS


def map_to_original(original: onnx.GraphProto, optimized: onnx.GraphProto) -> NodeMapping:
    """Find, for each optimized node, the original nodes it implements.

    1. Optimized tensors are mapped to the original tensors holding the same values
       (:func:`_equivalents`); tensors ORT created get none.
    2. Optimized nodes joined by such new tensors form a cluster (most clusters are one node).
       The cluster's *region* is the set of original nodes on the paths from the original
       tensors it reads to the original tensors it writes: the walk back from its outputs stops
       at any original tensor that still exists in the optimized graph (computed by another
       node, a graph input, a kept or constant-folded initializer). Identity/Dropout are
       walked through but not claimed (ORT eliminates them).
    3. A one-node cluster implements its whole region. In a larger cluster (QDQ groups rewritten
       to QLinear ops, NHWC layout rewrites) each node named after a region node
       (:func:`_name_candidates`) takes it, and the rest of the region goes to the nearest such
       node in the original graph; on a tie a DequantizeLinear joins its consumer and anything
       else its producer, as ORT's QDQ node units do.
    4. A node with an empty region takes the original node of the same name if it exists
       (Identity/Dropout executed as themselves at level ``"disable"``).
    5. Nodes left with nothing are inserted; original nodes nobody implements are folded.

    Args:
        original: The original graph (top level; subgraph nodes of If/Loop/Scan belong to
            their control-flow node).
        optimized: The graph ORT serialized after optimization.

    Returns:
        The mapping, aligned with ``optimized.node``.
    """
    orig = _OriginalGraph(original)
    nodes = list(optimized.node)
    eq = _equivalents(orig, optimized)
    existing = set(eq.values())
    regions: list[set[int]] = [set() for _ in nodes]
    warnings: list[str] = []
    for members in _clusters(nodes, eq):
        outs = {eq[t] for j in members for t in nodes[j].output if t in eq}
        region = orig.region(outs, existing - outs)
        warnings += _split_region(orig, nodes, members, region, regions)
    warnings += _claim_by_name(orig, optimized, regions)
    warnings += _shared_warnings(orig, optimized, regions)
    inserted = []
    for node, region in zip(nodes, regions):
        inserted.append(not region)
        if not region and not _is_passthrough(node) and node.op_type not in _DATA_MOVEMENT_OPS:
            warnings.append(
                f"optimized node {node.name!r} ({node.op_type}) maps to no original node; "
                "marked inserted"
            )
    claimed = set().union(*regions) if regions else set()
    folded = [n.name for i, n in enumerate(orig.nodes) if i not in claimed]
    onnx_nodes = [[orig.nodes[i].name for i in sorted(r)] for r in regions]
    return NodeMapping(onnx_nodes, inserted, folded, warnings, eq)


def _clusters(nodes: Sequence[onnx.NodeProto], eq: Mapping[str, str]) -> list[list[int]]:
    """Group optimized nodes joined by tensors that have no original equivalent.

    Args:
        nodes: The optimized graph's nodes.
        eq: Optimized tensor -> original tensor.

    Returns:
        Lists of node positions, each in graph order.
    """
    parent = list(range(len(nodes)))

    def root(j: int) -> int:
        while parent[j] != j:
            parent[j] = parent[parent[j]]
            j = parent[j]
        return j

    producer = {t: j for j, n in enumerate(nodes) for t in n.output if t and t not in eq}
    for j, node in enumerate(nodes):
        for t in node.input:
            if t in producer:
                parent[root(j)] = root(producer[t])
    groups: dict[int, list[int]] = {}
    for j in range(len(nodes)):
        groups.setdefault(root(j), []).append(j)
    return list(groups.values())


def _split_region(orig: _OriginalGraph, nodes: Sequence[onnx.NodeProto], members: list[int],
                  region: set[int], regions: list[set[int]]) -> list[str]:
    """Share a cluster's region among its computing members (step 3 of map_to_original).

    Args:
        orig: Index of the original graph.
        nodes: The optimized graph's nodes.
        members: Positions of the cluster's nodes.
        region: Original node indices the cluster implements.
        regions: Per optimized node, the original nodes it implements; updated in place.

    Returns:
        Warnings, if the region could not be shared by names.
    """
    claimants = [j for j in members if not _is_passthrough(nodes[j])]
    if not claimants or not region:
        return []
    if len(claimants) == 1:
        regions[claimants[0]] |= region
        return []
    anchors: dict[int, int] = {}
    for j in claimants:
        for candidate in _name_candidates(nodes[j].name):
            i = orig.index.get(candidate)
            if i in region and i not in anchors:
                anchors[i] = j
                break
    owner = _nearest_anchor(orig, region, anchors)
    for i, j in owner.items():
        regions[j].add(i)
    left = sorted(region - set(owner))
    if not left:
        return []
    main = next((j for j in claimants if nodes[j].op_type not in _DATA_MOVEMENT_OPS), claimants[0])
    regions[main].update(left)
    names = [nodes[j].name for j in members]
    return [f"fused nodes {names} could not be told apart; {nodes[main].name!r} takes "
            f"{[orig.nodes[i].name for i in left]}"]


def _nearest_anchor(orig: _OriginalGraph, region: set[int], anchors: Mapping[int, int]) -> dict:
    """Assign region nodes to the optimized node of the nearest anchor (breadth-first).

    Args:
        orig: Index of the original graph.
        region: Original node indices to assign.
        anchors: Original node index -> optimized node position, for nodes matched by name.

    Returns:
        Original node index -> optimized node position, for every region node reachable from
        an anchor inside the region.
    """
    owner = dict(anchors)
    frontier = set(anchors)
    while frontier:
        found = {}
        for i in sorted(region - set(owner)):
            ups = [owner[k] for k in orig.upstream(i) if k in frontier]
            downs = [owner[k] for k in orig.downstream(i) if k in frontier]
            if orig.nodes[i].op_type == "DequantizeLinear":
                ups, downs = downs, ups
            if ups or downs:
                found[i] = (ups or downs)[0]
        owner.update(found)
        frontier = set(found)
    return owner


def _claim_by_name(orig: _OriginalGraph, opt: onnx.GraphProto, regions: list[set[int]]) -> list:
    """Give region-less computing nodes the unclaimed original node named after them (step 4).

    Args:
        orig: Index of the original graph.
        opt: The optimized graph.
        regions: Per optimized node, the original node indices it implements; edited in place.

    Returns:
        Warnings for matches on a derived name or a different op type.
    """
    claimed = set().union(*regions) if regions else set()
    warnings = []
    for j, node in enumerate(opt.node):
        if regions[j] or _is_passthrough(node):
            continue
        for candidate in _name_candidates(node.name):
            i = orig.index.get(candidate)
            if i is None or i in claimed:
                continue
            regions[j].add(i)
            claimed.add(i)
            if candidate != node.name or orig.nodes[i].op_type != node.op_type:
                warnings.append(f"optimized node {node.name!r} mapped to original node "
                                f"{candidate!r} by name only")
            break
    return warnings


def _shared_warnings(orig: _OriginalGraph, opt: onnx.GraphProto, regions: list[set[int]]) -> list:
    """Warn about original nodes implemented by several optimized nodes (ORT duplicated them).

    Args:
        orig: Index of the original graph.
        opt: The optimized graph.
        regions: Per optimized node, the original node indices it implements.

    Returns:
        One warning per shared original node.
    """
    owners: dict[int, list[str]] = {}
    for node, region in zip(opt.node, regions):
        for i in region:
            owners.setdefault(i, []).append(node.name)
    return [
        f"original node {orig.nodes[i].name!r} is implemented by several layers: {names}"
        for i, names in sorted(owners.items())
        if len(names) > 1
    ]


# --------------------------------------------------------------------------------------------
# Tensor facts and the layer table
# --------------------------------------------------------------------------------------------


def _value_types(model: onnx.ModelProto) -> dict[str, tuple[str | None, list | None]]:
    """Tensor name -> (dtype label, shape) from a model's inputs, outputs, value_info and
    initializers, after ONNX shape inference where it succeeds (contrib ops are skipped)."""
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is best effort; fall back to declared types
        pass
    graph = model.graph
    info: dict[str, tuple[str | None, list | None]] = {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        if vi.type.HasField("tensor_type"):
            tt = vi.type.tensor_type
            shape = None
            if tt.HasField("shape"):
                shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                         for d in tt.shape.dim]
            info[vi.name] = (_ONNX_DTYPES.get(tt.elem_type), shape)
    for init in graph.initializer:
        info[init.name] = (_ONNX_DTYPES.get(init.data_type), list(init.dims))
    return info


def _tensor_facts(original: onnx.ModelProto, optimized: onnx.ModelProto, eq: dict[str, str]):
    """Return a function tensor name -> schema tensor dict (name, dtype, format, shape).

    Types come from ONNX shape inference on the optimized graph, then from the original tensor
    holding the same values, then from :func:`_propagate_dtypes` for tensors between contrib
    ops that ONNX cannot infer. NCHWc tensors keep their logical (NCHW) shape with format
    ``"NCHWc"``.
    """
    orig_info = _value_types(original)
    opt_info = _value_types(optimized)
    known: dict[str, tuple] = {}
    for name in {t for n in optimized.graph.node for t in (*n.input, *n.output) if t}:
        a = opt_info.get(name, (None, None))
        b = orig_info.get(eq.get(name, name), (None, None))
        known[name] = (a[0] or b[0], a[1] if a[1] is not None else b[1])
    _propagate_dtypes(optimized.graph.node, known)
    nchwc = {t for n in optimized.graph.node if n.domain == NCHWC_DOMAIN
             and n.op_type != "ReorderOutput" for t in n.output}

    def facts(name: str) -> dict:
        dtype, shape = known.get(name, (None, None))
        return {"name": name, "dtype": dtype, "format": "NCHWc" if name in nchwc else None,
                "shape": shape}

    return facts


# Ops whose first output has the dtype of their first input.
_SAME_DTYPE_OPS = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity",
                   "MaxPool", "ReorderInput", "ReorderOutput", "MemcpyToHost", "MemcpyFromHost"}
# Quantized ops: position of the input whose dtype the output takes (y_zero_point; y_scale for
# DequantizeLinear).
_DTYPE_FROM_INPUT = {"QuantizeLinear": 2, "DequantizeLinear": 1, "QLinearConv": 7,
                     "QLinearMatMul": 7, "QLinearAdd": 7, "QLinearMul": 7, "QGemm": 8,
                     "QLinearSigmoid": 4, "QLinearLeakyRelu": 4, "QLinearGlobalAveragePool": 4,
                     "QLinearAveragePool": 4, "QLinearSoftmax": 4}


def _propagate_dtypes(nodes: Iterable[onnx.NodeProto], known: dict[str, tuple]) -> None:
    """Fill unknown output dtypes that follow exactly from an input's (in graph order).

    Args:
        nodes: The optimized graph's nodes.
        known: Tensor name -> (dtype, shape); updated in place.
    """
    for node in nodes:
        if not node.output or not node.output[0] or known.get(node.output[0], (None,))[0]:
            continue
        if node.op_type in _SAME_DTYPE_OPS:
            position = 0
        else:
            position = _DTYPE_FROM_INPUT.get(node.op_type)
        if position is None or len(node.input) <= position or not node.input[position]:
            continue
        dtype = known.get(node.input[position], (None,))[0]
        if dtype:
            known[node.output[0]] = (dtype, known.get(node.output[0], (None, None))[1])


def _layer_precision(node: onnx.NodeProto, inputs: list[dict], outputs: list[dict],
                     weights: Mapping[str, onnx.TensorProto]) -> str | None:
    """The dtype a node computes in: its largest weight's (rank >= 2) dtype, else its first
    input's, else its first output's."""
    kernels = [weights[t] for t in node.input if t in weights and len(weights[t].dims) >= 2]
    if kernels:
        largest = max(kernels, key=lambda w: int(np.prod(w.dims)))
        return _ONNX_DTYPES.get(largest.data_type)
    for tensor in (*inputs[:1], *outputs[:1]):
        if tensor["dtype"]:
            return tensor["dtype"]
    return None


def _type_label(node: onnx.NodeProto) -> str:
    """``op_type``, prefixed by its domain when not the default (``com.microsoft.FusedConv``)."""
    return f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def build_layer_table(
    original: onnx.ModelProto,
    optimized: onnx.ModelProto,
    *,
    providers: Sequence[str] = (CPU_PROVIDER,),
    attrs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Build the layer table of an ORT-optimized graph.

    Args:
        original: The model as given to ORT (node names as ``onnx_nodes`` reports them).
        optimized: The graph ORT wrote to ``optimized_model_filepath``.
        providers: The session's providers; with exactly one, it is every row's ``tactic``.
        attrs: Extra table attrs.

    Returns:
        One row per optimized node, in the (topological) order ORT serialized them.
    """
    graph = optimized.graph
    names = _unique_names(graph.node)
    mapping = map_to_original(original.graph, graph)
    facts = _tensor_facts(original, optimized, mapping.equivalents)
    weights = {w.name: w for w in graph.initializer}
    tactic = providers[0] if len(providers) == 1 else None
    records = []
    for j, node in enumerate(graph.node):
        inputs = [facts(t) for t in node.input if t]
        outputs = [facts(t) for t in node.output if t]
        records.append({
            "name": names[j],
            "type": _type_label(node),
            "inputs": inputs,
            "outputs": outputs,
            "input_precision": precision_of(t["dtype"] for t in inputs),
            "output_precision": precision_of(t["dtype"] for t in outputs),
            "precision": _layer_precision(node, inputs, outputs, weights),
            "tactic": tactic,
            "onnx_nodes": mapping.onnx_nodes[j],
            "inserted": mapping.inserted[j],
            "source": SOURCE,
        })
    table_attrs = {"folded_onnx_nodes": mapping.folded, **dict(attrs or {})}
    table_attrs["warnings"] = list(table_attrs.get("warnings", [])) + mapping.warnings
    return make_layer_table(records, table_attrs)


def _unique_names(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """Node names, with empty or repeated ones made unique (``<op_type>_<position>``)."""
    out: list[str] = []
    seen: set[str] = set()
    for position, node in enumerate(nodes):
        name = node.name if node.name and node.name not in seen else f"{node.op_type}_{position}"
        while name in seen:
            name += "_"
        seen.add(name)
        out.append(name)
    return out


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------


def node_times(events: list[dict], iterations: int) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                              dict[str, dict]]:
    """Per-node kernel time of each of the last ``iterations`` runs in an ORT trace.

    Args:
        events: The profiler's JSON trace (list of Chrome-trace events; durations in µs).
        iterations: How many of the last ``model_run`` events are the timed runs.

    Returns:
        ``(times, run_ms, args)``: node name -> array of per-run summed kernel time (ms, one
        entry per timed run, 0 where the node did not run); the timed runs' ``model_run`` times
        (ms); node name -> the ``args`` of its first event in the timed runs.
    """
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])[-iterations:]
    starts = [r["ts"] for r in runs]
    times: dict[str, np.ndarray] = {}
    args: dict[str, dict] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith(_PROFILE_SUFFIX):
            continue
        k = bisect.bisect_right(starts, event["ts"]) - 1
        if k < 0 or event["ts"] > runs[k]["ts"] + runs[k]["dur"]:
            continue  # a warm-up run or session initialization
        node = name[: -len(_PROFILE_SUFFIX)]
        if node not in times:
            times[node] = np.zeros(len(runs))
            args[node] = event.get("args", {})
        times[node][k] += event["dur"] / 1000.0
    return times, np.array([r["dur"] / 1000.0 for r in runs]), args


def _observed_tensors(tensors: list[dict], observed: list | None) -> list[dict]:
    """Tensor dicts with dtype/shape replaced by what the profiler saw.

    The profiler leaves out inputs a kernel pre-packed (MatMul/Gemm/Conv weights), so when the
    counts differ only the first tensor (the data input, never pre-packed) is updated, and only
    if its rank matches.

    Args:
        tensors: The row's tensor dicts.
        observed: The profiler's ``input_type_shape``/``output_type_shape``: one
            ``{type_name: shape}`` dict per tensor it saw.

    Returns:
        Updated copies.
    """
    if not observed:
        return tensors
    pairs = list(zip(tensors, observed))
    if len(observed) != len(tensors):
        pairs = pairs[:1]
    out = [dict(t) for t in tensors]
    for k, (tensor, seen) in enumerate(pairs):
        if not isinstance(seen, dict) or len(seen) != 1:
            continue
        type_name, shape = next(iter(seen.items()))
        if len(observed) != len(tensors) and len(shape) != len(tensor["shape"] or ()):
            continue
        out[k]["dtype"] = _PROFILER_DTYPES.get(type_name, tensor["dtype"])
        out[k]["shape"] = list(shape)
    return out


def join_profile(table: pd.DataFrame, events: list[dict], iterations: int) -> pd.DataFrame:
    """Add ``time_ms``, ``median_ms`` and ``share`` from an ORT trace to a layer table.

    Rows also get the provider as ``tactic`` and the runtime shapes the profiler recorded.

    Args:
        table: The layer table (from :meth:`OnnxRuntimeEngine.layers`).
        events: The profiler trace.
        iterations: Number of timed runs at the end of the trace.

    Returns:
        A new table; rows without a profiler event get NaN times and a warning.
    """
    times, run_ms, args = node_times(events, iterations)
    records = table.to_dict("records")
    warnings = list(table.attrs.get("warnings", []))
    for row in records:
        per_run = times.get(row["name"])
        if per_run is None:
            row.update(time_ms=float("nan"), median_ms=float("nan"), share=float("nan"))
            warnings.append(f"layer {row['name']!r} has no profiler event")
            continue
        row.update(time_ms=float(per_run.mean()), median_ms=float(np.median(per_run)), share=0.0)
        event_args = args[row["name"]]
        row["tactic"] = event_args.get("provider", row["tactic"])
        row["inputs"] = _observed_tensors(row["inputs"], event_args.get("input_type_shape"))
        row["outputs"] = _observed_tensors(row["outputs"], event_args.get("output_type_shape"))
    unmatched = sorted(set(times) - set(table["name"]))
    if unmatched:
        warnings.append(f"profiler nodes with no matching layer: {unmatched}")
    attrs = {**table.attrs, "warnings": warnings, "profile_iterations": int(len(run_ms)),
             "end_to_end_ms": float(run_ms.mean()) if run_ms.size else float("nan"),
             "end_to_end_median_ms": float(np.median(run_ms)) if run_ms.size else float("nan")}
    return add_shares(make_layer_table(records, attrs))
