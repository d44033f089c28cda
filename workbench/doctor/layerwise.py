"""Layerwise comparison of an FP32 model and its Q/DQ variant: where the quantization error comes from.

Two ONNX Runtime runs over the same samples, every intermediate tensor exposed:

- the **variant** run gives each tensor's *accumulated* error (everything quantized upstream);
- the **local** run is the FP32 model plus a copy of every quantized node fed the FP32
  tensors through the variant's own Q/DQ (:func:`workbench.doctor.graph.build_local_model`),
  so each quantized node's output differs from the FP32 one only by the error that node adds
  itself. The same run gives each quantized input's own Q/DQ error, its saturation rate (values
  beyond ``scale * 127``), its underflow rate (non-zero values that round to 0), per-channel
  ranges and moments (kurtosis).

Statistics stream over batches (memory: one batch plus a few numbers per tensor), and a small
evenly spaced sample of every tensor's values is kept for the drill-down figures. Every tensor
of a batch is an output of the two runs at once, so the batch is sized to the model: a one-sample
run measures the bytes one sample exposes, and the batch holds what fits in ``memory_budget``
(a large model runs one sample at a time; the kept values shrink with the number of tensors).

Agreement metrics (reference ``r`` = FP32, test ``t``):

* SQNR (dB) ``10 log10(sum r^2 / sum (t - r)^2)``, ``inf`` when equal (ORT's
  ``qdq_loss_debug.compute_signal_to_quantization_noice_ratio`` is the same in amplitude dB);
* cosine ``sum(r t) / sqrt(sum r^2 sum t^2)`` over the whole tensor;
* relative error ``||t - r|| / ||r||`` (L2) and the max absolute error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import onnx
import pandas as pd

from workbench.analysis.metrics import sqnr_db
from workbench.backends.onnxruntime.session import LEVELS, ort_session
from workbench.datasets.arrays import num_samples, resolve_sample_axes, take_batch
from workbench.doctor.graph import (
    QuantizedNode,
    add_outputs,
    build_local_model,
    dequantized_weight,
    float_node_outputs,
    fusion_groups,
    group_output,
    qmin_of,
    quantized_nodes,
    topological_nodes,
)
from workbench.progress import resolve_progress

SQNR_CAP_DB = 120.0  # finite stand-in for "identical" when differences are taken
DEFAULT_SAMPLES = 256
KEEP_VALUES = 4096
MEMORY_BUDGET = 256 * 2**20  # bytes of exposed tensors per batch of the layerwise runs
KEEP_BUDGET = 32 * 2**20  # bytes of kept drill-down values over all tensors


# --------------------------------------------------------------------------------------------
# Streaming statistics


@dataclass
class PairStats:
    """Running sums for comparing a test tensor with its reference over many batches.

    With ``channel_axis`` set, signal and noise are also summed per channel, for the SQNR of
    the median channel (one large channel cannot hide the others' error there).
    """

    ref_sq: float = 0.0
    test_sq: float = 0.0
    cross: float = 0.0
    noise_sq: float = 0.0
    max_abs: float = 0.0
    count: int = 0
    nonfinite: int = 0
    channel_axis: int | None = None
    channel_ref_sq: np.ndarray | None = None
    channel_noise_sq: np.ndarray | None = None

    def add(self, ref: np.ndarray, test: np.ndarray) -> None:
        ref = np.asarray(ref)
        if ref.shape != np.shape(test):
            raise ValueError(f"shapes differ: reference {np.shape(ref)} vs test {np.shape(test)}")
        r = ref.astype(np.float64).ravel()
        t = np.asarray(test, np.float64).ravel()
        finite = np.isfinite(t)
        if not finite.all():
            self.nonfinite += int((~finite).sum())
            t = np.where(finite, t, 0.0)
        d = t - r
        self.ref_sq += float(r @ r)
        self.test_sq += float(t @ t)
        self.cross += float(r @ t)
        self.noise_sq += float(d @ d)
        if d.size:
            self.max_abs = max(self.max_abs, float(np.abs(d).max()))
        self.count += int(r.size)
        if self.channel_axis is not None and ref.ndim >= 2:
            axis = self.channel_axis % ref.ndim
            other = tuple(i for i in range(ref.ndim) if i != axis)
            r2 = (r.reshape(ref.shape) ** 2).sum(axis=other)
            d2 = (d.reshape(ref.shape) ** 2).sum(axis=other)
            if self.channel_ref_sq is None:
                self.channel_ref_sq, self.channel_noise_sq = r2, d2
            else:
                self.channel_ref_sq = self.channel_ref_sq + r2
                self.channel_noise_sq = self.channel_noise_sq + d2

    def channel_sqnr_db(self) -> np.ndarray | None:
        """SQNR (dB) of every channel (None without ``channel_axis``); silent channels left out."""
        if self.channel_ref_sq is None:
            return None
        live = self.channel_ref_sq > 0
        return np.array([sqnr_db(s, n) for s, n in zip(self.channel_ref_sq[live], self.channel_noise_sq[live])])

    def metrics(self) -> dict:
        """``sqnr_db``, ``cosine``, ``rel_error``, ``max_abs_error`` (floats; SQNR ``inf`` if equal),
        and with ``channel_axis`` ``channel_sqnr_db`` (median channel) and ``min_channel_sqnr_db``."""
        out = {
            "sqnr_db": sqnr_db(self.ref_sq, self.noise_sq),
            "cosine": (self.cross / math.sqrt(self.ref_sq * self.test_sq)
                       if self.ref_sq > 0 and self.test_sq > 0 else (1.0 if self.noise_sq == 0 else 0.0)),
            "rel_error": math.sqrt(self.noise_sq / self.ref_sq) if self.ref_sq > 0 else (
                0.0 if self.noise_sq == 0 else math.inf),
            "max_abs_error": self.max_abs,
        }
        per = self.channel_sqnr_db()
        if per is not None:
            finite = np.clip(per, -SQNR_CAP_DB, SQNR_CAP_DB) if per.size else per
            out["channel_sqnr_db"] = float(np.median(finite)) if per.size else math.inf
            out["min_channel_sqnr_db"] = float(np.min(finite)) if per.size else math.inf
        return out


@dataclass
class InputStats:
    """Running facts about one quantized activation as one node reads it (FP32 values, variant scale)."""

    clip: float
    scale: float
    qmin: float
    channel_axis: int
    pair: PairStats = field(default_factory=PairStats)
    saturated: int = 0
    underflow: int = 0
    nonzero: int = 0
    count: int = 0
    moments: np.ndarray = field(default_factory=lambda: np.zeros(5))  # count, sum x, x^2, x^3, x^4
    amin: float = math.inf
    amax: float = -math.inf
    channel_amax: np.ndarray | None = None

    def add(self, fp32: np.ndarray, qdq: np.ndarray) -> None:
        x = np.asarray(fp32, np.float32)
        self.pair.add(x, qdq)
        q = np.rint(x / self.scale)
        self.saturated += int(((q > self.clip / self.scale) | (q < self.qmin)).sum())
        nz = x != 0
        self.nonzero += int(nz.sum())
        self.underflow += int((nz & (q == 0)).sum())
        self.count += int(x.size)
        flat = x.astype(np.float64).ravel()
        self.moments += np.array([flat.size, flat.sum(), (flat**2).sum(), (flat**3).sum(), (flat**4).sum()])
        if flat.size:
            self.amin = min(self.amin, float(flat.min()))
            self.amax = max(self.amax, float(flat.max()))
        if x.ndim >= 2:
            axis = self.channel_axis % x.ndim
            other = tuple(i for i in range(x.ndim) if i != axis)
            per = np.abs(x).max(axis=other).astype(np.float64)
            self.channel_amax = per if self.channel_amax is None else np.maximum(self.channel_amax, per)

    def summary(self) -> dict:
        n, s1, s2, s3, s4 = self.moments
        mean = s1 / n if n else 0.0
        var = max(s2 / n - mean**2, 0.0) if n else 0.0
        m4 = (s4 / n - 4 * mean * s3 / n + 6 * mean**2 * s2 / n - 3 * mean**4) if n else 0.0
        kurtosis = (m4 / var**2 - 3.0) if var > 0 else 0.0
        dominance = None
        dominant = None
        if self.channel_amax is not None and self.channel_amax.size > 1:
            ch = self.channel_amax
            dominant = int(np.argmax(ch))
            rest = np.delete(ch, dominant)
            typical = float(np.median(rest)) if rest.size else 0.0
            dominance = float(ch[dominant] / typical) if typical > 0 else math.inf
        return {
            **{f"qdq_{k}": v for k, v in self.pair.metrics().items()},
            "scale": self.scale,
            "clip": self.clip,
            "min": self.amin,
            "max": self.amax,
            "saturation_rate": self.saturated / self.count if self.count else 0.0,
            "underflow_rate": self.underflow / self.nonzero if self.nonzero else 0.0,
            "mean": mean,
            "std": math.sqrt(var),
            "kurtosis": kurtosis,
            "channel_axis": self.channel_axis,
            "dominant_channel": dominant,
            "channel_dominance": dominance,
            "channel_amax": None if self.channel_amax is None else self.channel_amax.tolist(),
        }


def _sample(values: np.ndarray, keep: int) -> np.ndarray:
    flat = np.asarray(values, np.float32).ravel()
    if flat.size <= keep:
        return flat.copy()
    index = np.linspace(0, flat.size - 1, keep).astype(np.int64)
    return flat[index]


# --------------------------------------------------------------------------------------------
# Result


@dataclass
class LayerwiseResult:
    """What :func:`layerwise_compare` found.

    Attributes:
        tensors: One row per float tensor a node writes, in topological order: ``index``,
            ``tensor``, ``node``, ``op_type``, ``group`` (the quantized group head the node
            belongs to, or None), ``quantized`` (the node reads quantized inputs), accumulated
            ``accum_sqnr_db``/``accum_cosine``/``accum_rel_error``/``accum_max_abs_error``,
            local ``local_*`` (quantized nodes' outputs only, else NaN), ``input_sqnr_db`` (the
            worst accumulated SQNR among the node's inputs; ``inf`` for model inputs) and
            ``added_db`` (``input_sqnr_db - accum_sqnr_db``, capped at 120 dB: how much this
            node degrades the signal).
        nodes: One row per quantized node (graph order): ``node``, ``op_type``, ``group``
            (member list), ``group_output``, ``local_sqnr_db``, ``local_cosine``,
            ``local_rel_error``, ``accum_sqnr_db`` (at the group output), ``added_db``,
            ``input_qdq_sqnr_db`` (worst activation Q/DQ SQNR), ``weight_sqnr_db`` and
            ``weight_per_channel``.
        inputs: One row per (node, quantized activation): ``node``, ``tensor`` and the
            :class:`InputStats` summary (Q/DQ error, saturation and underflow rates, moments,
            kurtosis, per-channel ranges and the dominant channel).
        weights: One row per quantized weight: ``node``, ``weight``, ``sqnr_db``, ``axis``,
            ``per_channel``, per-output-channel ``channel_amax`` and dominance.
        samples: Tensor -> ``{"fp32", "int8"?, "local"?, "qdq"?}`` value samples (first batch,
            the same elements in each): FP32, the variant's, the local copy's output, and the FP32
            values through the Q/DQ of the (first) node that reads the tensor.
        num_samples: Samples compared.
        quantized: :func:`quantized_nodes` of the variant.
        variant_level: The ORT optimization level the variant ran at (its integer kernels at
            ``extended``/``all``).
        batch_size: Samples per run (sized to ``memory_budget``).
        sample_bytes: Bytes of exposed tensors one sample makes in the two runs.
    """

    tensors: pd.DataFrame
    nodes: pd.DataFrame
    inputs: pd.DataFrame
    weights: pd.DataFrame
    samples: dict
    num_samples: int
    quantized: dict = field(repr=False, default_factory=dict)
    variant_level: str = "disable"
    batch_size: int = 0
    sample_bytes: int = 0

    def node_errors(self) -> pd.DataFrame:
        """Per quantized node: ``node`` and its error columns (for :func:`join_layer_errors`)."""
        return self.nodes.copy()

    def first_jump(self, threshold_db: float = 6.0, below_db: float = 30.0) -> dict | None:
        """The first tensor (topological order) where the error jumps.

        A jump: the node producing the tensor lowers the accumulated SQNR by ``threshold_db`` or
        more and leaves it under ``below_db`` (INT8 typically holds 35-50 dB per layer).

        Returns:
            The tensor's row as a dict, or None when no node degrades the signal that much.
        """
        t = self.tensors
        rows = t[(t["added_db"] >= threshold_db) & (t["accum_sqnr_db"] < below_db)]
        return None if rows.empty else rows.iloc[0].to_dict()

    def values(self, tensor: str) -> dict:
        """The kept value samples of ``tensor``: ``{"fp32", "int8"?, "local"?, "qdq"?}`` arrays.

        Raises:
            KeyError: No samples kept for that tensor (the message lists a few that have them).
        """
        if tensor not in self.samples:
            raise KeyError(f"no values kept for tensor {tensor!r}; tensors with values: {list(self.samples)[:8]} ...")
        return self.samples[tensor]


# --------------------------------------------------------------------------------------------
# The comparison


def channel_axis_for(op_type: str, *, output: bool = False) -> int:
    """The channel axis of a tensor a node reads (or writes): 1 for Conv-like (NCHW), -1 for MatMul/Gemm."""
    return 1 if op_type in ("Conv", "ConvTranspose", "MaxPool", "AveragePool") else -1


def layerwise_compare(
    fp32_model: onnx.ModelProto,
    variant_model: onnx.ModelProto,
    inputs: Mapping[str, np.ndarray],
    *,
    max_samples: int | None = DEFAULT_SAMPLES,
    batch_size: int = 64,
    keep_values: int = KEEP_VALUES,
    variant_level: str = "all",
    memory_budget: int = MEMORY_BUDGET,
    progress=None,
    sample_axes: Mapping[str, int | None] | None = None,
) -> LayerwiseResult:
    """Compare every tensor of the FP32 model and its Q/DQ variant, locally and accumulated.

    Args:
        fp32_model: The FP32 model.
        variant_model: Its explicit-quantization variant (same node and tensor names).
        inputs: Input name -> ``[samples, ...]`` array.
        max_samples: Compare on the first this many samples (None: all).
        batch_size: The most samples per run (fewer when they do not fit ``memory_budget``).
        keep_values: Values kept per tensor for the drill-down (from the first batch; fewer
            when the model has so many tensors that they would pass ``KEEP_BUDGET`` bytes).
        variant_level: ONNX Runtime graph optimization level of the variant run (``"disable"``,
            ``"basic"``, ``"extended"``, ``"all"``; default ``"all"``, as the evaluation runs it).
            At ``extended``/``all`` ORT replaces Q/DQ + MatMul/Conv by its integer kernels, so the
            accumulated error is what the deployed runtime computes (the CPU's u8s8 kernels can
            saturate where Q/DQ emulation does not); at ``disable`` it is the emulation, as ORT's
            ``qdq_loss_debug.collect_activations`` runs it. The local run always emulates.
        memory_budget: Bytes the exposed tensors of one batch may take.
        progress: A :mod:`workbench.progress` argument: samples compared, as they stream.
        sample_axes: The inputs' data description (input -> sample axis, or None for an input fed
            as it is); default axis 0.

    Returns:
        The :class:`LayerwiseResult`.

    Raises:
        DoctorGraphError: The variant is not a Q/DQ model of this FP32 model.
        ValueError: ``inputs`` is empty or ``batch_size`` below 1.
    """
    if not inputs:
        raise ValueError("no inputs given; pass {input name: [samples, ...] array}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if variant_level not in LEVELS:
        raise ValueError(f"variant_level must be one of {list(LEVELS)}, got {variant_level!r}.")
    quantized = quantized_nodes(variant_model)
    runs = _open_runs(fp32_model, variant_model, quantized, variant_level)
    stats = _Stats.start(fp32_model, quantized, runs)
    axes = resolve_sample_axes(inputs, sample_axes)
    total = num_samples(inputs, axes)
    count = total if max_samples is None else min(total, int(max_samples))
    if count < 1:
        raise ValueError("no samples to compare (max_samples or the data is empty).")
    sample_bytes = _sample_bytes(runs, _feed(inputs, axes, 0, 1))
    batch = max(1, min(int(batch_size), int(memory_budget) // max(sample_bytes, 1)))
    keep = max(64, min(int(keep_values), KEEP_BUDGET // (16 * max(len(runs.tensors), 1))))
    with resolve_progress(progress).task("doctor: layerwise comparison", count, unit="sample") as task:
        for start in range(0, count, batch):
            size = min(batch, count - start)
            stats.add(runs, _feed(inputs, axes, start, size), keep_values=keep if start == 0 else None)
            task.update(size)
    result = _result(fp32_model, quantized, runs, stats, count, variant_level)
    result.batch_size, result.sample_bytes = batch, sample_bytes
    return result


def tensor_bytes_per_sample(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray],
                            sample_axes: Mapping[str, int | None] | None = None) -> int:
    """Bytes of every float tensor a node of ``model`` writes, for one sample (one run of the first).

    What a pass that exposes every tensor (calibration, the layerwise pass) holds per sample;
    the doctor sizes such passes' batches from it.

    Args:
        model: The FP32 model.
        inputs: Input name -> array (only the first sample is run).
        sample_axes: The inputs' data description.

    Returns:
        The bytes (the inputs' own included).
    """
    tensors = float_node_outputs(model)
    session = ort_session(add_outputs(model, tensors), {"graph_optimization_level": "disable"})
    feed = _feed(inputs, resolve_sample_axes(inputs, sample_axes), 0, 1)
    names = [o.name for o in session.get_outputs()]
    return int(sum(a.nbytes for a in session.run(names, feed) if hasattr(a, "nbytes"))
               + sum(a.nbytes for a in feed.values()))


def _feed(inputs: Mapping[str, np.ndarray], axes: Mapping[str, int | None], start: int, size: int) -> dict:
    """Samples ``start`` to ``start + size`` along the sample axes, contiguous for ONNX Runtime."""
    return {k: np.ascontiguousarray(v) for k, v in take_batch(inputs, size, axes, start=start).items()}


def _sample_bytes(runs: "_Runs", feed: Mapping[str, np.ndarray]) -> int:
    """Bytes of every exposed tensor of both runs for one sample (``feed``: the first sample)."""
    total = sum(a.nbytes for a in runs.local.run(runs.local_names, feed) if hasattr(a, "nbytes"))
    total += sum(a.nbytes for a in runs.variant.run(runs.variant_names, feed) if hasattr(a, "nbytes"))
    return int(total + sum(a.nbytes for a in feed.values()))


@dataclass
class _Runs:
    """The two ONNX Runtime runs of a comparison and the tensors each exposes.

    Attributes:
        local: The FP32 model plus local copies of the quantized nodes (Q/DQ emulated).
        variant: The variant, at the asked optimization level.
        local_names, variant_names: Their output names, in run order.
        mapping: :func:`build_local_model`'s node -> ``{"outputs", "qdq"}`` (original -> copy tensor).
        tensors: Every float tensor a node of the FP32 model writes (topological order).
        compared: Those the variant also writes (their accumulated error is measured).
    """

    local: object
    variant: object
    local_names: list
    variant_names: list
    mapping: dict
    tensors: list
    compared: list


def _open_runs(fp32_model: onnx.ModelProto, variant_model: onnx.ModelProto, quantized: Mapping[str, QuantizedNode],
               variant_level: str) -> _Runs:
    """Build the local model and open both sessions with every compared tensor as an output.

    Args:
        fp32_model: The FP32 model.
        variant_model: Its Q/DQ variant.
        quantized: :func:`quantized_nodes` of the variant.
        variant_level: ORT optimization level of the variant run (the local run never optimizes).

    Returns:
        The :class:`_Runs`.

    Raises:
        DoctorGraphError: The variant is not a Q/DQ model of this FP32 model.
    """
    local_model, mapping = build_local_model(fp32_model, variant_model, quantized)
    tensors = float_node_outputs(fp32_model)
    floats = set(tensors)
    for m in mapping.values():  # a quantized node's integer outputs (an ArgMax's) carry no error to measure
        m["outputs"] = {orig: out for orig, out in m["outputs"].items() if orig in floats}
    local_outputs = [out for m in mapping.values() for out in m["outputs"].values()]
    qdq_outputs = [out for m in mapping.values() for out in m["qdq"].values()]
    variant_tensors = {o for n in variant_model.graph.node for o in n.output}
    compared = [t for t in tensors if t in variant_tensors]
    local_session = ort_session(add_outputs(local_model, tensors + local_outputs + qdq_outputs),
                                {"graph_optimization_level": "disable"})
    variant_session = ort_session(add_outputs(variant_model, compared), {"graph_optimization_level": variant_level})
    return _Runs(local_session, variant_session, [o.name for o in local_session.get_outputs()],
                 [o.name for o in variant_session.get_outputs()], mapping, tensors, compared)


@dataclass
class _Stats:
    """The streaming statistics of a comparison and the kept value samples.

    Attributes:
        accum: Compared tensor -> FP32 vs variant (accumulated error).
        local: Quantized node output -> FP32 vs its local copy (the node's own error).
        inputs: (node, quantized activation) -> :class:`InputStats`.
        samples: Tensor -> kept values (see :attr:`LayerwiseResult.samples`).
    """

    accum: dict
    local: dict
    inputs: dict
    samples: dict = field(default_factory=dict)

    @classmethod
    def start(cls, fp32_model: onnx.ModelProto, quantized: Mapping[str, QuantizedNode], runs: _Runs) -> _Stats:
        """Empty statistics for every compared tensor, local output and quantized activation.

        Args:
            fp32_model: The FP32 model (op types give the channel axes).
            quantized: :func:`quantized_nodes` of the variant (scales and clipping ranges).
            runs: The opened runs.

        Returns:
            The :class:`_Stats`.
        """
        op_of = {n.name: n.op_type for n in fp32_model.graph.node}
        local = {orig: PairStats(channel_axis=channel_axis_for(op_of.get(name, ""), output=True))
                 for name, m in runs.mapping.items() for orig in m["outputs"]}
        input_stats: dict[tuple[str, str], InputStats] = {}
        for name, qn in quantized.items():
            for qi in qn.activations:
                scale = float(np.ravel(qi.scale)[0])
                input_stats[(name, qi.tensor)] = InputStats(
                    clip=float(np.max(qi.clip_range())), scale=scale, qmin=qmin_of(qi.qdtype),
                    channel_axis=channel_axis_for(op_of.get(name, "")))
        return cls({t: PairStats() for t in runs.compared}, local, input_stats)

    def add(self, runs: _Runs, feed: Mapping[str, np.ndarray], *, keep_values: int | None = None) -> None:
        """Run one batch through both runs and add it to the statistics.

        Args:
            runs: The opened runs.
            feed: Input name -> one batch.
            keep_values: Keep this many values per tensor from this batch (None: keep none).
        """
        lvals = dict(feed)
        lvals.update(zip(runs.local_names, runs.local.run(runs.local_names, feed)))
        vvals = dict(zip(runs.variant_names, runs.variant.run(runs.variant_names, feed)))
        for t in runs.compared:
            self.accum[t].add(lvals[t], vvals[t])
        for name, m in runs.mapping.items():
            for orig, out in m["outputs"].items():
                self.local[orig].add(lvals[orig], lvals[out])
            for tensor, qout in m["qdq"].items():
                self.inputs[(name, tensor)].add(lvals[tensor], lvals[qout])
        if keep_values is not None:
            self._keep(runs, lvals, vvals, keep_values)

    def _keep(self, runs: _Runs, lvals: dict, vvals: dict, keep: int) -> None:
        """Keep evenly spaced values of every tensor: FP32, the variant's, the local copy's, Q/DQ'd."""
        for t in runs.tensors:
            entry = {"fp32": _sample(lvals[t], keep)}
            if t in vvals:
                entry["int8"] = _sample(vvals[t], keep)
            self.samples[t] = entry
        for m in runs.mapping.values():
            for orig, out in m["outputs"].items():
                self.samples[orig]["local"] = _sample(lvals[out], keep)
            for tensor, qout in m["qdq"].items():
                entry = self.samples.setdefault(tensor, {"fp32": _sample(lvals[tensor], keep)})
                entry.setdefault("qdq", _sample(lvals[qout], keep))


def _result(fp32_model: onnx.ModelProto, quantized: Mapping[str, QuantizedNode], runs: _Runs, stats: _Stats,
            count: int, variant_level: str) -> LayerwiseResult:
    """The tables of a finished comparison.

    Args:
        fp32_model: The FP32 model.
        quantized: :func:`quantized_nodes` of the variant.
        runs: The runs (which tensors were compared).
        stats: The statistics over all batches.
        count: Samples compared.
        variant_level: ORT optimization level of the variant run.

    Returns:
        The :class:`LayerwiseResult`.
    """
    groups = fusion_groups(fp32_model, list(quantized))
    tensor_table = _tensor_table(fp32_model, runs.tensors, stats.accum, stats.local, quantized, groups)
    node_table = _node_table(fp32_model, quantized, groups, tensor_table, stats.local, stats.inputs)
    inputs_table = pd.DataFrame([{"node": node, "tensor": tensor, **s.summary()}
                                 for (node, tensor), s in stats.inputs.items()])
    weights_table = weight_table(fp32_model, quantized)
    if not weights_table.empty:
        worst = weights_table.groupby("node")["sqnr_db"].min()
        node_table["weight_sqnr_db"] = node_table["node"].map(worst).astype(float)
        per_channel = weights_table.groupby("node")["per_channel"].all()
        node_table["weight_per_channel"] = node_table["node"].map(per_channel)
    return LayerwiseResult(tensor_table, node_table, inputs_table, weights_table, stats.samples, count, quantized,
                           variant_level)


def _tensor_table(model, tensors, accum, local, quantized, groups) -> pd.DataFrame:
    producer = {out: node for node in topological_nodes(model) for out in node.output}
    member_of = {m: head for head, members in groups.items() for m in members}
    rows = []
    known_sqnr: dict[str, float] = {}
    for index, t in enumerate(tensors):
        node = producer[t]
        row = {"index": index, "tensor": t, "node": node.name, "op_type": node.op_type,
               "group": member_of.get(node.name), "quantized": node.name in quantized}
        metrics = accum[t].metrics() if t in accum else dict.fromkeys(
            ("sqnr_db", "cosine", "rel_error", "max_abs_error"), math.nan)
        row.update({f"accum_{k}": v for k, v in metrics.items()})
        lmetrics = local[t].metrics() if t in local else dict.fromkeys(
            ("sqnr_db", "cosine", "rel_error", "max_abs_error", "channel_sqnr_db"), math.nan)
        lmetrics.pop("min_channel_sqnr_db", None)
        row.update({f"local_{k}": v for k, v in lmetrics.items()})
        upstream = [known_sqnr[i] for i in node.input if i in known_sqnr]
        input_sqnr = min(upstream) if upstream else math.inf
        row["input_sqnr_db"] = input_sqnr
        out_sqnr = metrics["sqnr_db"]
        row["added_db"] = (_cap(input_sqnr) - _cap(out_sqnr)) if not math.isnan(out_sqnr) else math.nan
        known_sqnr[t] = out_sqnr if not math.isnan(out_sqnr) else input_sqnr
        rows.append(row)
    return pd.DataFrame(rows)


def _cap(value: float) -> float:
    return min(value, SQNR_CAP_DB) if not math.isnan(value) else value


def _node_table(model, quantized, groups, tensor_table, local, input_stats) -> pd.DataFrame:
    by_tensor = tensor_table.set_index("tensor")
    rows = []
    for name, qn in quantized.items():
        out = qn.outputs[0]
        lm = local[out].metrics() if out in local else {}
        gout = group_output(model, groups[name])
        accum_at = float(by_tensor.loc[gout, "accum_sqnr_db"]) if gout in by_tensor.index else math.nan
        added = float(by_tensor.loc[out, "added_db"]) if out in by_tensor.index else math.nan
        qdq = [input_stats[(name, qi.tensor)].pair.metrics()["sqnr_db"] for qi in qn.activations]
        rows.append({
            "node": name,
            "op_type": qn.op_type,
            "group": list(groups[name]),
            "group_output": gout,
            "local_sqnr_db": lm.get("sqnr_db", math.nan),
            "local_cosine": lm.get("cosine", math.nan),
            "local_rel_error": lm.get("rel_error", math.nan),
            "local_channel_sqnr_db": lm.get("channel_sqnr_db", math.nan),
            "local_min_channel_sqnr_db": lm.get("min_channel_sqnr_db", math.nan),
            "accum_sqnr_db": accum_at,
            "added_db": added,
            "input_qdq_sqnr_db": min(qdq) if qdq else math.inf,
            "weight_sqnr_db": math.inf,
            "weight_per_channel": None,
        })
    return pd.DataFrame(rows)


def weight_axis(op_type: str, node: onnx.NodeProto | None = None) -> int:
    """The output-channel axis of a weight: 0 for Conv and Gemm(transB=1), 1 for MatMul and Gemm(transB=0)."""
    if op_type in ("Conv",):
        return 0
    if op_type == "ConvTranspose":
        return 1
    if op_type == "Gemm":
        trans_b = 0
        if node is not None:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return 1  # MatMul [K, N]


def weight_table(fp32_model: onnx.ModelProto, quantized: Mapping[str, QuantizedNode]) -> pd.DataFrame:
    """Per quantized weight: SQNR of the dequantized weight and per-output-channel ranges.

    Args:
        fp32_model: The FP32 model (float weights).
        quantized: :func:`quantized_nodes` of the variant.

    Returns:
        Rows ``node`'', ``weight``, ``sqnr_db``, ``axis``, ``per_channel``, ``channel_amax``
        (list), ``in_channel_amax`` (list, over the other axis), ``dominant_channel``,
        ``channel_dominance`` (largest channel amax / median of the others).
    """
    from onnx import numpy_helper

    floats = {init.name: init for init in fp32_model.graph.initializer}
    nodes = {n.name: n for n in fp32_model.graph.node}
    rows = []
    for name, qn in quantized.items():
        for qi in qn.weights:
            if qi.tensor not in floats or qi.quantized is None:
                continue
            w = numpy_helper.to_array(floats[qi.tensor]).astype(np.float32)
            deq = dequantized_weight(qi)
            noise = float(((deq.astype(np.float64) - w) ** 2).sum())
            axis = weight_axis(qn.op_type, nodes.get(name))
            if w.ndim < 2:
                axis = 0
            other = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
            ch = np.abs(w).max(axis=other) if other else np.abs(w)
            in_axis = 1 if (axis % max(w.ndim, 1)) == 0 and w.ndim > 1 else 0
            in_other = tuple(i for i in range(w.ndim) if i != in_axis)
            ich = np.abs(w).max(axis=in_other) if in_other else np.abs(w)
            dominant = int(np.argmax(ch))
            rest = np.delete(ch, dominant)
            typical = float(np.median(rest)) if rest.size else 0.0
            rows.append({
                "node": name,
                "weight": qi.tensor,
                "sqnr_db": sqnr_db(float((w.astype(np.float64) ** 2).sum()), noise),
                "axis": axis,
                "per_channel": qi.per_channel,
                "channel_amax": ch.astype(float).tolist(),
                "in_channel_amax": ich.astype(float).tolist(),
                "dominant_channel": dominant,
                "channel_dominance": float(ch[dominant] / typical) if typical > 0 else math.inf,
            })
    return pd.DataFrame(rows, columns=["node", "weight", "sqnr_db", "axis", "per_channel", "channel_amax",
                                       "in_channel_amax", "dominant_channel", "channel_dominance"])


def ort_weight_errors(fp32_path, variant_path) -> dict[str, float]:
    """Weight SQNR (dB) per weight with ONNX Runtime's ``qdq_loss_debug`` (a cross-check).

    ``create_weight_matching`` + ``compute_weight_error``; ORT's SQNR is ``20 log10(||w|| /
    ||w - dq(w)||)``, the same quantity :func:`weight_table` reports.

    Args:
        fp32_path: The FP32 model file.
        variant_path: The ORT-made Q/DQ variant file.

    Returns:
        Float weight name -> SQNR in dB.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization.qdq_loss_debug import (
        compute_weight_error,
        create_weight_matching,
    )

    # ORT's loader writes <model>-inferred.onnx beside each model it reads: give it copies, never the user's file
    with tempfile.TemporaryDirectory(prefix="wb_weight_errors_") as tmp:
        fp32_copy = shutil.copyfile(fp32_path, Path(tmp) / "fp32.onnx")
        variant_copy = shutil.copyfile(variant_path, Path(tmp) / "variant.onnx")
        return dict(compute_weight_error(create_weight_matching(str(fp32_copy), str(variant_copy))))
