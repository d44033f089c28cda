"""Running a calibration model: CPU sessions and the samples in batches."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from workbench.backends.onnxruntime.session import ort_session, session_options
from workbench.progress import resolve_progress


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
