"""One job runner for every long loop: in this process, or on a Dask cluster.

A sweep, the doctor's candidate evaluations and a plan's measurements are lists of *jobs*: pure
functions of (model file, recipe, data, backend, batch sizes) that return a results-table row (or
a fragment of one). A runner runs them:

- :class:`LocalRunner`: one after another in this process, exactly as the loops always ran;
- :class:`workbench.workflows.cluster.ClusterRunner`: on a ``dask.distributed`` cluster, latency
  jobs holding a worker resource (``bench=1``, ``GPU=1``) so that no two benchmarks share a
  device, accuracy jobs fanning out freely.

Inputs travel as files, not as pickled sessions or arrays: a :class:`FileRef` names a file (or a
model and its external data) by its SHA-256 and where the caller has it. On a worker the file is
used where it is when that path holds the same bytes (a shared filesystem), else it is written
once into the worker's workspace (``<workspace>/blobs/<sha256>/<name>``, keeping the file's name,
so variant names and cache keys do not change) from bytes the runner shipped. In-memory data
(calibration arrays, ``(inputs, labels)``) becomes a content-addressed ``.npz`` first
(:func:`arrays_ref`). Variants are made on the worker by the same cache key as here, so a worker
that already holds a variant reuses it.

Every result records where and when it ran (:class:`JobResult`: worker address, the machine's
facts, start and end times); :func:`attach_facts` puts them on the row. A job that raises comes
back with its error instead of stopping the others.

Nothing here imports Dask: :mod:`workbench.workflows.cluster` does, when a cluster is asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from workbench.datasets.arrays import SPEC_KEY, arrays_sha256, spec_array
from workbench.errors import WorkbenchError
from workbench.model.fingerprint import file_sha256, model_files, sha256_files
from workbench.tables.machine import machine_facts, machine_label
from workbench.workspace import workspace_dir, write_atomic

BLOBS = "blobs"
COMPLETE = ".complete"
KINDS = ("accuracy", "latency", "measure")


class ClusterError(WorkbenchError, ValueError):
    """A cluster that cannot be used as asked (unreachable, no workers, missing resource)."""


class JobError(WorkbenchError, RuntimeError):
    """A job failed where it ran; the message names the job, the worker and the error."""


# --------------------------------------------------------------------------------------------
# Files that travel
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _sha_of(kind: str, path: str, size: int, mtime_ns: int) -> str:
    return sha256_files(model_files(path)) if kind == "model" else file_sha256(path)


def _current_sha(kind: str, path: Path) -> str | None:
    """The SHA-256 of what is at ``path`` now (memoized by size and mtime), or None if nothing is."""
    try:
        stat = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    return _sha_of(kind, str(path), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class FileRef:
    """A file a job reads, named by its content.

    Attributes:
        origin: Where the caller has it (absolute path).
        sha256: The model fingerprint (``kind="model"``: model and external data) or the file's SHA-256.
        files: The file names relative to ``origin``'s folder, the main file first.
        kind: ``"model"`` or ``"file"``.
        shown: What rows name the data by (default ``origin``; ``"arrays"`` for in-memory data).
    """

    origin: str
    sha256: str
    files: tuple[str, ...]
    kind: str = "file"
    shown: str | None = None

    @classmethod
    def for_model(cls, path) -> "FileRef":
        """A reference to an ONNX model and the external data files it names."""
        path = Path(path).expanduser().resolve()
        paths = model_files(path)
        return cls(str(path), sha256_files(paths), tuple(str(p.relative_to(path.parent)) for p in paths), "model")

    @classmethod
    def for_file(cls, path) -> "FileRef":
        """A reference to one data file."""
        path = Path(path).expanduser().resolve()
        return cls(str(path), file_sha256(path), (path.name,), "file")

    @property
    def name(self) -> str:
        return self.files[0]

    def blob_dir(self) -> Path:
        """Where a worker keeps its copy: ``<workspace>/blobs/<sha256>/``."""
        return workspace_dir(BLOBS) / self.sha256

    def read(self) -> "Blob":
        """The bytes of every file, to ship to workers that do not have them."""
        base = Path(self.origin).parent
        return Blob(self.sha256, {name: (base / name).read_bytes() for name in self.files})

    def local_path(self) -> Path | None:
        """The main file here, when this machine has the same bytes (at ``origin`` or in the blobs), else None."""
        origin = Path(self.origin)
        if _current_sha(self.kind, origin) == self.sha256:
            return origin
        folder = self.blob_dir()
        if self._marker(folder).is_file():
            return folder / self.name
        return None

    def _marker(self, folder: Path) -> Path:
        # per name: equal bytes under two names (two models' identical data splits) share the folder
        return folder / f".{self.name}{COMPLETE}"

    def materialize(self, blob: "Blob | None") -> Path:
        """The main file on this machine: found (see :meth:`local_path`) or written from ``blob``.

        Raises:
            JobError: The file is not here and no bytes were shipped, or the shipped bytes do
                not have the expected hash.
        """
        found = self.local_path()
        if found is not None:
            return found
        if blob is None or blob.sha256 != self.sha256:
            raise JobError(f"{self.name} (sha256 {self.sha256[:12]}) is not on this worker and was not shipped; "
                           "run with ship=True or give the workers a shared filesystem.")
        folder = self.blob_dir()
        for name, data in blob.files.items():
            write_atomic(folder / name, data)
        written = sha256_files([folder / name for name in self.files]) if self.kind == "model" else \
            file_sha256(folder / self.name)
        if written != self.sha256:
            raise JobError(f"{self.name}: the shipped bytes hash to {written[:12]}, not {self.sha256[:12]}.")
        write_atomic(self._marker(folder), self.origin + "\n")
        return folder / self.name


@dataclass(frozen=True)
class Blob:
    """The bytes of a :class:`FileRef`'s files (what a runner ships once to each worker)."""

    sha256: str
    files: dict


def arrays_ref(arrays: Mapping[str, np.ndarray], labels: np.ndarray | None = None, *, name: str = "arrays",
               shown: str | None = "arrays", sample_axes: Mapping[str, int | None] | None = None) -> FileRef:
    """In-memory arrays as a content-addressed ``.npz`` in the workspace (written once), and its reference.

    Args:
        arrays: Input name -> samples.
        labels: Saved as ``labels`` when given.
        name: The file's name prefix (``<name>-<hash>.npz``).
        shown: What rows name the data by (``"arrays"``, as for in-memory data in this process).
        sample_axes: The data description (input -> sample axis, or None for an input fed as it
            is), saved as the ``__spec__`` entry so that the worker batches the data as this
            process does; ``{}``/None with every input batched along axis 0 saves none.

    Returns:
        The :class:`FileRef` of ``<workspace>/blobs/<name>-<hash16>.npz``.
    """
    content = {k: np.asarray(v) for k, v in arrays.items()}
    if labels is not None:
        content["labels"] = np.asarray(labels)
    if sample_axes and any(axis != 0 for axis in sample_axes.values()):  # the default layout keeps old hashes
        content[SPEC_KEY] = spec_array(sample_axes)
    path = workspace_dir(BLOBS) / f"{name}-{arrays_sha256(content).hexdigest()[:16]}.npz"
    if not path.is_file():
        buffer = io.BytesIO()
        np.savez(buffer, **content)
        write_atomic(path, buffer.getvalue())
    return dataclasses.replace(FileRef.for_file(path), shown=shown)


# --------------------------------------------------------------------------------------------
# Jobs and their results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(**kwargs)`` returns a JSON-able dict (a results row or part of one).

    Attributes:
        fn: A module-level function (workers import it by name).
        kwargs: Its arguments; :class:`FileRef` values are replaced by the file's local path
            where the job runs.
        kind: ``"accuracy"`` (fans out freely), ``"latency"`` (holds a worker resource so that
            no two benchmarks share a device) or ``"measure"`` (both, in this process).
        label: What the progress line and errors call it.
        backend: The backend it measures on (picks the latency resource).
        after: Index (in the list given to the runner) of a job this one starts after: a
            latency job follows its variant's accuracy job, so that where they share a disk the
            variant is made once.
    """

    fn: Callable[..., dict]
    kwargs: dict
    kind: str = "accuracy"
    label: str = "job"
    backend: str = "onnxruntime"
    after: int | None = None

    def refs(self) -> list[FileRef]:
        """The files the job reads."""
        return [v for v in self.kwargs.values() if isinstance(v, FileRef)]


def utc_now() -> str:
    """The time now, UTC, ISO 8601 with microseconds (start and end times of jobs)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class JobResult:
    """What a job returned (or its error), where and when it ran.

    Attributes:
        label, kind: The job's.
        value: The returned dict, or None when it failed.
        error: ``"ErrorType: message"`` when it failed, else None.
        worker: The Dask worker's address; None in this process.
        machine: :func:`workbench.tables.machine.machine_facts` of where it ran.
        started, finished: UTC ISO times; ``seconds`` the wall time.
        rescheduled: Times the scheduler moved the job because its worker died first.
    """

    label: str
    kind: str
    value: dict | None
    error: str | None
    worker: str | None
    machine: dict
    started: str
    finished: str
    seconds: float
    rescheduled: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def facts(self) -> dict:
        """The job's entry in a row's ``jobs`` list."""
        return {"part": self.kind, "worker": self.worker, "host": self.machine.get("host"),
                "started": self.started, "finished": self.finished, "seconds": round(self.seconds, 4),
                "rescheduled": self.rescheduled, "error": self.error}


def _restore_origins(value: Any, local_to_origin: Mapping[str, str]) -> Any:
    """A row's top-level text values that name a worker-local copy, named by the caller's path again."""
    if not isinstance(value, dict) or not local_to_origin:
        return value
    return {k: local_to_origin.get(v, v) if isinstance(v, str) else v for k, v in value.items()}


def execute(job: Job, *, worker: str | None = None, blobs: Mapping[str, Blob] | None = None) -> JobResult:
    """Run one job here: find (or write) its files, call it, time it, and catch its error.

    Args:
        job: The job.
        worker: This worker's address (None in the caller's process).
        blobs: SHA-256 -> shipped bytes, for files this machine does not have.

    Returns:
        The :class:`JobResult` (never raises for the job's own errors).
    """
    started, clock = utc_now(), time.perf_counter()
    value, error = None, None
    try:
        kwargs, local_to_origin = {}, {}
        for key, arg in job.kwargs.items():
            if isinstance(arg, FileRef):
                local = arg.materialize((blobs or {}).get(arg.sha256))
                kwargs[key] = str(local)
                local_to_origin[str(local)] = arg.shown or arg.origin
            else:
                kwargs[key] = arg
        value = _restore_origins(job.fn(**kwargs), local_to_origin)
    except Exception as err:  # the job's failure is its result; the other jobs go on
        error = f"{type(err).__name__}: {err}"
    return JobResult(job.label, job.kind, value, error, worker, machine_facts(), started, utc_now(),
                     time.perf_counter() - clock)


def failed_result(job: Job, error: BaseException | str, *, rescheduled: int = 0) -> JobResult:
    """The result of a job that never returned (its worker died too often, it was cancelled...)."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    now = utc_now()
    return JobResult(job.label, job.kind, None, message, None, {}, now, now, 0.0, rescheduled)


class LocalRunner:
    """Runs jobs one after another in this process (what every loop did before clusters)."""

    remote = False
    address = None
    dashboard_link = None

    def run(self, jobs: Sequence[Job], on_result: Callable[[JobResult], Any] | None = None) -> list[JobResult]:
        """Run ``jobs`` in order; ``on_result`` is called after each. Returns the results in job order."""
        results = []
        for job in jobs:
            results.append(execute(job))
            if on_result is not None:
                on_result(results[-1])
        return results

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "LocalRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Rows: where and when they were measured
# --------------------------------------------------------------------------------------------


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (dict, list, tuple)) and not value)


def merge_parts(accuracy: Mapping[str, Any], latency: Mapping[str, Any]) -> dict:
    """One row from an accuracy-only row and a latency-only row of the same variant and backend.

    The accuracy row's values win; the latency row fills what it lacks (latency columns, the
    ``latency`` dict); dicts present in both (``versions``) are merged.
    """
    row = dict(accuracy)
    for key, value in latency.items():
        mine = row.get(key)
        if isinstance(mine, dict) and isinstance(value, dict):
            row[key] = {**value, **mine}
        elif _empty(mine) and not _empty(value):
            row[key] = value
    return row


def attach_facts(row: dict, results: Sequence[JobResult]) -> dict:
    """Record on ``row`` where and when its jobs ran.

    The machine columns (``worker``, ``host``, ``machine``, ``hardware``) are those of the job
    that timed the variant (its latency or combined job; else its first job): latencies are
    only comparable between rows with the same ``machine``.

    Args:
        row: The results row (changed in place).
        results: Its jobs' results.

    Returns:
        ``row``, with ``worker``, ``host``, ``machine``, ``hardware``, ``started``,
        ``finished`` and ``jobs`` (each job's :meth:`JobResult.facts`).
    """
    timed = next((r for r in results if r.kind in ("latency", "measure") and r.machine), None)
    timed = timed or next((r for r in results if r.machine), results[0])
    row.update(
        worker=timed.worker,
        host=timed.machine.get("host"),
        machine=machine_label(timed.machine) if timed.machine else None,
        hardware=dict(timed.machine),
        started=min(r.started for r in results),
        finished=max(r.finished for r in results),
        jobs=[r.facts() for r in results],
    )
    return row


def in_process_facts(started: str, started_clock: float) -> dict:
    """The facts of work just done in this process (no worker), as :func:`attach_facts` writes them.

    Args:
        started: :func:`utc_now` when it began; ``started_clock`` :func:`time.perf_counter` then.
    """
    result = JobResult("measure", "measure", None, None, None, machine_facts(), started, utc_now(),
                       time.perf_counter() - started_clock)
    return attach_facts({}, [result])


@dataclass
class Progressor:
    """Reports finished jobs on a :mod:`workbench.progress` task (with the worker and errors)."""

    task: Any
    failures: list = field(default_factory=list)

    def __call__(self, result: JobResult) -> None:
        where = f" on {result.worker}" if result.worker else ""
        if not result.ok:
            self.failures.append(result)
            self.task.update(1, f"{result.label} {result.kind} FAILED{where}: {result.error}")
        else:
            self.task.update(1, f"{result.label} {result.kind}{where}")
