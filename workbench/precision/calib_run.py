"""Running a calibration model: CPU sessions, the samples in batches, and batches sized to memory.

A calibration graph reads every calibrated tensor, and ONNX Runtime schedules the added
reductions after the model's own nodes (its default order is a depth-first walk from the graph's
outputs), so a run holds every calibrated tensor of the batch at once: ``batch x`` the bytes one
sample makes. :func:`bounded_batch_size` keeps that under a budget (measured on one sample), the
way the doctor sizes its own passes; the ranges do not depend on the batch size.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from workbench.backends.onnxruntime.session import ort_session, session_options
from workbench.precision.calib_graph import elements_per_sample, tensor_types
from workbench.progress import resolve_progress

MEMORY_BUDGET = 256 * 2**20  # bytes of calibrated tensors (times the pass's factor) one run may hold


def make_session(model: onnx.ModelProto, *, optimized: bool = False, threads: int | None = None) -> ort.InferenceSession:
    """A CPU session for ``model`` (graph optimizations off unless ``optimized``, like ORT's calibrator)."""
    return ort_session(model, session_options("all" if optimized else "disable", threads=threads))


def iter_batches(calib, batch_size: int):
    """The samples in batches.

    Args:
        calib: A :class:`~workbench.datasets.calibration_sets.CalibrationSet` (its own
            ``batches``) or a mapping of input name -> ``[samples, ...]`` array.
        batch_size: Samples per batch (the last one may be smaller).

    Returns:
        ``(batches, total)``: an iterator of input name -> array feeds, and the sample count.
    """
    if hasattr(calib, "batches"):
        return calib.batches(batch_size), calib.num_samples
    inputs = dict(calib)
    total = int(next(iter(inputs.values())).shape[0])

    def gen():
        for start in range(0, total, batch_size):
            yield {k: np.ascontiguousarray(a[start:start + batch_size]) for k, a in inputs.items()}

    return gen(), total


def count_samples(calib) -> int:
    """Samples in ``calib`` (a CalibrationSet or a mapping of input name -> array)."""
    if hasattr(calib, "num_samples"):
        return int(calib.num_samples)
    return int(next(iter(dict(calib).values())).shape[0])


def run_batches(session, calib, batch_size, fetch, desc, *, progress, extra_feed=None):
    """Run ``session`` over every batch of the samples.

    Args:
        session: The ORT session.
        calib: The samples (see :func:`iter_batches`).
        batch_size: Samples per run.
        fetch: Output names to fetch.
        desc: The progress task's name.
        progress: See :mod:`workbench.progress`.
        extra_feed: Inputs fed with every batch (the tail lengths), or None.

    Returns:
        ``(results, counts)``: the fetched outputs per batch, and the samples per batch.
    """
    feeds, total = iter_batches(calib, batch_size)
    results, counts = [], []
    with resolve_progress(progress).task(desc, total, unit="sample") as task:
        for feed in feeds:
            n = next(iter(feed.values())).shape[0]
            if extra_feed:
                feed = {**feed, **extra_feed}
            results.append(session.run(fetch, feed))
            counts.append(n)
            task.update(n)
    return results, counts


def tensor_bytes_per_sample(model: onnx.ModelProto, calib, tensors: Sequence[str]) -> dict[str, int]:
    """Bytes one sample makes of each tensor: from shape inference where it is static, else by
    running the first sample once with those tensors as outputs (graph optimizations off).

    Args:
        model: The shape-inferred model.
        calib: The samples (see :func:`iter_batches`).
        tensors: Tensor names (node outputs or graph inputs).

    Returns:
        Tensor -> bytes (float16 and other types at their own width).
    """
    types = tensor_types(model)
    sizes, unknown = {}, []
    for name in tensors:
        count = elements_per_sample(model, name)
        width = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(types.get(name, onnx.TensorProto.FLOAT))).itemsize
        if count is None:
            unknown.append(name)
        else:
            sizes[name] = int(count) * width
    if unknown:
        feeds, _ = iter_batches(calib, 1)
        first = next(feeds)
        outputs = [name for name in unknown if name not in first]
        sizes.update({name: int(first[name].nbytes) for name in unknown if name in first})
        if outputs:
            probe = onnx.ModelProto()
            probe.CopyFrom(model)
            known = {o.name for o in probe.graph.output}
            probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in outputs if n not in known)
            session = make_session(probe)
            sizes.update({n: int(getattr(a, "nbytes", 0)) for n, a in zip(outputs, session.run(outputs, first))})
    return sizes


def bounded_batch_size(batch_size: int, sample_bytes: Mapping[str, int] | int, factor: float = 1.0,
                       budget: int | None = MEMORY_BUDGET) -> int:
    """The largest batch (1 to ``batch_size``) whose tensors, times ``factor``, fit ``budget``.

    Args:
        batch_size: The batch asked for.
        sample_bytes: Tensor -> bytes per sample (or their sum).
        factor: The pass's copies per tensor byte (its reductions' temporaries).
        budget: Bytes; None for no bound.

    Returns:
        The batch size.
    """
    total = sample_bytes if isinstance(sample_bytes, int) else sum(sample_bytes.values())
    if budget is None or total <= 0:
        return max(1, int(batch_size))
    return max(1, min(int(batch_size), int(budget // (factor * total))))
