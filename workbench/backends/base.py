"""The interface every backend implements: build a model into an engine, then run, time and
inspect it. ONNX Runtime implements it everywhere; TensorRT where a GPU and TensorRT exist.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError


class BackendUnavailable(WorkbenchError, RuntimeError):
    """Raised when a backend cannot run on this machine; the message says why and the fix."""


@dataclass
class BenchmarkResult:
    """Latency statistics of one benchmark run, all times in milliseconds.

    ``h2d_ms``, ``compute_ms`` and ``d2h_ms`` are the mean host-to-device, compute and
    device-to-host times where the backend measures them separately (TensorRT), else None.
    """

    backend: str
    iterations: int
    warmup: int
    batch_size: int
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    throughput: float  # samples (not batches) per second
    settings: dict = field(default_factory=dict)
    h2d_ms: float | None = None
    compute_ms: float | None = None
    d2h_ms: float | None = None
    p10_ms: float | None = None  # with p90_ms, the spread a latency figure draws as error bars

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_latencies(
        cls,
        latencies_ms,
        *,
        backend: str,
        warmup: int,
        batch_size: int,
        settings: Mapping[str, Any] | None = None,
        **extra,
    ) -> "BenchmarkResult":
        """Summarize per-iteration latencies (ms) into a result.

        Args:
            latencies_ms: One latency per timed iteration, in milliseconds.
            backend: Name of the backend that ran them.
            warmup: Number of untimed warm-up iterations that preceded them.
            batch_size: Samples per iteration, for throughput.
            settings: What was configured (threads, providers, duration...), reported as is.
            **extra: Further fields (``h2d_ms``, ``compute_ms``, ``d2h_ms``).

        Returns:
            The summary.
        """
        lat = np.asarray(latencies_ms, dtype=float)
        if lat.size == 0:
            raise ValueError("no timed iterations: raise iterations or duration")
        p10, p90, p95, p99 = np.percentile(lat, [10, 90, 95, 99])
        mean = float(lat.mean())
        return cls(
            backend=backend,
            iterations=int(lat.size),
            warmup=int(warmup),
            batch_size=int(batch_size),
            mean_ms=mean,
            median_ms=float(np.median(lat)),
            p10_ms=float(p10),
            p90_ms=float(p90),
            p95_ms=float(p95),
            p99_ms=float(p99),
            min_ms=float(lat.min()),
            max_ms=float(lat.max()),
            throughput=1000.0 * batch_size / mean if mean > 0 else float("inf"),
            settings=dict(settings or {}),
            **extra,
        )


class Engine(abc.ABC):
    """A model built for one backend, ready to run."""

    backend: str

    @abc.abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference. Returns output name -> array."""

    @abc.abstractmethod
    def benchmark(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        iterations: int = 100,
        warmup: int = 10,
        duration_s: float | None = None,
    ) -> BenchmarkResult:
        """Time repeated inferences on the same inputs."""

    @abc.abstractmethod
    def layers(self) -> pd.DataFrame:
        """The layer table (see :mod:`workbench.tables.engine_table`), without times."""

    @abc.abstractmethod
    def profile(self, inputs: Mapping[str, np.ndarray], *, iterations: int = 20) -> pd.DataFrame:
        """The layer table with ``time_ms``, ``median_ms`` and ``share`` per layer."""


class Backend(abc.ABC):
    """Builds models into engines."""

    name: str

    @abc.abstractmethod
    def build(self, model, options: Mapping[str, Any] | None = None) -> Engine:
        """Build ``model`` (a path or a :class:`workbench.model.LoadedModel`) into an engine."""
