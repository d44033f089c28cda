"""The job runner on a Dask cluster (``dask.distributed``), imported only when a cluster is asked for.

:func:`open_runner` turns what a caller passes (nothing, a ``distributed.Client``, a scheduler
address such as ``tcp://10.0.0.5:8786``, or a runner) into a runner for
:mod:`workbench.workflows.jobs`; :func:`connect` reaches a scheduler by address, refusing in one
line (:class:`~workbench.workflows.jobs.ClusterError`) an address that is malformed, that nothing
answers on, that is not a Dask scheduler, or a scheduler without workers.

:class:`ClusterRunner` submits jobs and gathers each result as it arrives (so a worker that dies
later loses nothing it already finished):

- latency jobs ask for a worker resource, ``bench=1`` for ONNX Runtime and ``GPU=1`` for
  TensorRT (:data:`LATENCY_RESOURCES`): a worker runs at most as many benchmarks at once as it
  has of that resource, so no two share its device; accuracy jobs ask for nothing and fan out;
- files the workers do not have (checked by hash) are shipped once to every worker;
- a job whose worker dies is moved to another worker by the scheduler (``rescheduled`` counts
  it); one that kills workers more than ``distributed.scheduler.allowed-failures`` times comes
  back failed, as does a job that raises, and the other jobs go on.

Nothing imports ``distributed`` at module level: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import socket
import sys
import uuid
from typing import Any, Callable, Iterator, Mapping, Sequence

from workbench import __version__
from workbench.workflows.jobs import (
    ClusterError,
    FileRef,
    Job,
    JobResult,
    LocalRunner,
    execute,
    failed_result,
)

LOGGER = logging.getLogger("workbench")
DEFAULT_TIMEOUT_S = 10.0
TIMEOUT_ENV = "WORKBENCH_SCHEDULER_TIMEOUT"
LATENCY_RESOURCES = {"onnxruntime": {"bench": 1}, "tensorrt": {"GPU": 1}}
INSTALL = "pip install 'trt-workbench[distributed]'"
DOCS = "docs/distributed.md"
_ADDRESS = re.compile(r"^(?:(?P<protocol>tcp|tls)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})/?$")


def _distributed():
    """The ``distributed`` package, or a one-line ClusterError saying how to install it."""
    try:
        import distributed
    except ImportError as err:
        raise ClusterError(f"a Dask cluster needs the optional 'distributed' package ({err}); install it: "
                           f"{INSTALL}") from None
    return distributed


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return float(timeout)
    try:
        return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except ValueError:
        raise ClusterError(f"{TIMEOUT_ENV}={os.environ[TIMEOUT_ENV]!r} is not a number of seconds.") from None


def check_address(address: str) -> tuple[str, str, int]:
    """Split a scheduler address into ``(protocol, host, port)``.

    Args:
        address: ``tcp://HOST:PORT`` (what ``dask scheduler`` prints), ``tls://HOST:PORT`` or ``HOST:PORT``.

    Raises:
        ClusterError: Anything else, naming the expected form.
    """
    match = _ADDRESS.match(str(address).strip()) if isinstance(address, str) else None
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ClusterError(f"{address!r} is not a Dask scheduler address; give tcp://HOST:PORT (the address "
                           f"`dask scheduler` prints; see {DOCS}).")
    return match["protocol"] or "tcp", match["host"].strip("[]"), int(match["port"])


def _probe(protocol: str, host: str, port: int, timeout: float, address: str) -> None:
    """Refuse fast what is not a Dask scheduler: nothing listening (Dask would retry until its
    timeout), or a server that does not greet with Dask's handshake (a Client would wait forever
    on one that accepts and never answers). TLS greets only after its own handshake: port only."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            greeting = b""
            if protocol == "tcp":
                conn.settimeout(timeout)
                with contextlib.suppress(OSError):
                    greeting = conn.recv(512)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ClusterError(f"cannot reach a Dask scheduler at {address} ({reason}): start one with `dask scheduler` "
                           f"and workers with `dask worker {address}` ({DOCS}), or check the address.") from None
    if protocol == "tcp" and b"compression" not in greeting:
        raise ClusterError(f"{address} answers but not as a Dask scheduler (no Dask handshake within {timeout:g} s); "
                           f"give the address `dask scheduler` prints ({DOCS}).")


def _quietly_collect() -> None:
    """Collect a half-made Client without its destructor printing a traceback."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook


def connect(address: str, *, timeout: float | None = None, **runner_options) -> "ClusterRunner":
    """A runner on the scheduler at ``address``, checked: reachable, a Dask scheduler, with workers.

    Args:
        address: ``tcp://HOST:PORT``.
        timeout: Seconds to wait for the scheduler and its first worker (default
            ``$WORKBENCH_SCHEDULER_TIMEOUT`` or 10).
        **runner_options: For :class:`ClusterRunner` (``latency_resources``, ``ship``).

    Returns:
        The :class:`ClusterRunner` (it closes its client when closed).

    Raises:
        ClusterError: One line naming the problem and the fix.
    """
    protocol, host, port = check_address(address)
    timeout = _timeout(timeout)
    _probe(protocol, host, port, timeout, address)
    distributed = _distributed()
    client, problem = None, ""
    try:
        client = distributed.Client(f"{protocol}://{host}:{port}", timeout=timeout, set_as_default=False)
    except Exception as err:  # keep it to one line
        problem = f"{type(err).__name__}: {err}"
    if client is None:
        _quietly_collect()
        raise ClusterError(f"cannot connect to the Dask scheduler at {address} ({problem}); check that this "
                           f"machine's distributed version matches the cluster's ({DOCS}).")
    runner = ClusterRunner(client, own=True, **runner_options)
    try:
        runner.check_workers(timeout)
    except BaseException:
        runner.close()
        raise
    return runner


@contextlib.contextmanager
def open_runner(client: Any = None, **runner_options) -> Iterator[Any]:
    """The runner for a ``client=``/``--scheduler`` argument, closed afterwards if opened here.

    Args:
        client: None (yields None: the caller's in-process loop), a scheduler address, a
            ``distributed.Client`` (used, not closed), or a runner (:class:`ClusterRunner`,
            :class:`~workbench.workflows.jobs.LocalRunner`) used as it is.
        **runner_options: For :class:`ClusterRunner`.

    Yields:
        The runner, or None.

    Raises:
        ClusterError: An address that cannot be used (see :func:`connect`), or another type.
    """
    if client is None or isinstance(client, (ClusterRunner, LocalRunner)):
        yield client
        return
    if isinstance(client, str):
        runner = connect(client, **runner_options)
    elif type(client).__name__ == "Client" and type(client).__module__.startswith("distributed"):
        runner = ClusterRunner(client, **runner_options)
        runner.check_workers(_timeout(None))
    else:
        raise ClusterError(f"client must be a dask.distributed Client, a scheduler address (tcp://HOST:PORT) or "
                           f"None, got {type(client).__name__}.")
    try:
        yield runner
    finally:
        runner.close()


# --------------------------------------------------------------------------------------------
# On the workers (module-level: workers import these by name)
# --------------------------------------------------------------------------------------------


def _run_on_worker(job: Job, blobs: Mapping[str, Any], after: Any = None) -> JobResult:
    """Run ``job`` on the worker executing this task, recording the worker's address.

    ``after`` is the result of the job this one follows (unused: the dependency orders them).
    """
    from distributed import get_worker

    return execute(job, worker=get_worker().address, blobs=blobs)


def _worker_facts() -> dict:
    """What a worker is: the workbench version it imports (checked before any job is sent)."""
    return {"workbench": __version__}


def _has_files(refs: Sequence[FileRef]) -> list[bool]:
    """Which files a worker already has (same bytes at the caller's path, or in its blobs)."""
    return [ref.local_path() is not None for ref in refs]


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------


class ClusterRunner:
    """Runs jobs on a Dask cluster (see the module docstring).

    Args:
        client: A ``distributed.Client``.
        latency_resources: Backend -> the worker resources a latency job holds (default
            :data:`LATENCY_RESOURCES`); ``{}`` for a backend holds none.
        ship: ``"auto"`` (ship a file only to clusters where some worker lacks it), True, False.
        own: Close the client with the runner (it was opened by :func:`connect`).
    """

    remote = True

    def __init__(self, client, *, latency_resources: Mapping[str, Mapping[str, float]] | None = None,
                 ship: bool | str = "auto", own: bool = False):
        if ship not in (True, False, "auto"):
            raise ClusterError(f"ship must be True, False or 'auto', got {ship!r}.")
        self.client = client
        self.latency_resources = dict(LATENCY_RESOURCES if latency_resources is None else latency_resources)
        self.ship = ship
        self.own = own

    @property
    def address(self) -> str:
        """The scheduler's address."""
        return self.client.scheduler.address

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's URL (None when the scheduler runs none)."""
        try:
            if "dashboard" not in (self._info().get("services") or {}):
                return None  # started without one (or without bokeh)
            return self.client.dashboard_link
        except Exception:  # the link is a convenience, never a failure
            return None

    def workers(self) -> dict[str, dict]:
        """Worker address -> its scheduler record (``resources``, ``nthreads``, ``host``...)."""
        return dict(self._info().get("workers", {}))

    def _info(self) -> dict:
        try:
            return dict(self.client.scheduler_info(n_workers=-1))  # every worker (newer Dask lists 5 by default)
        except TypeError:  # older Dask: no n_workers, lists them all
            return dict(self.client.scheduler_info())

    def check_workers(self, timeout: float) -> None:
        """Wait for a worker, and check that the workers import this workbench.

        Raises:
            ClusterError: No worker within ``timeout`` seconds, or workers without the workbench.
        """
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except Exception:
            raise ClusterError(f"the scheduler at {self.address} has no workers (waited {timeout:g} s): start one "
                               f"per GPU with `dask worker {self.address} --nthreads 1 --resources bench=1` "
                               f"({DOCS}).") from None
        try:
            facts = self.client.run(_worker_facts)
        except Exception as err:
            raise ClusterError(f"the workers of {self.address} cannot run workbench jobs ({type(err).__name__}: "
                               f"{err}); install trt-workbench {__version__} in every worker's environment.") from None
        other = {w: f["workbench"] for w, f in facts.items() if f.get("workbench") != __version__}
        if other:
            LOGGER.warning("workers run another workbench version than this one (%s): %s", __version__, other)

    def resources_for(self, job: Job) -> dict | None:
        """The worker resources ``job`` holds while it runs (latency jobs only)."""
        if job.kind != "latency":
            return None
        return dict(self.latency_resources.get(job.backend, {})) or None

    def _check_resources(self, jobs: Sequence[Job]) -> None:
        needed = {name for job in jobs for name in (self.resources_for(job) or {})}
        offered = {name for worker in self.workers().values() for name in (worker.get("resources") or {})}
        missing = sorted(needed - offered)
        if missing:
            tags = ",".join(f"{name}=1" for name in missing)
            raise ClusterError(f"no worker of {self.address} offers the resource(s) {missing} that latency jobs hold "
                               f"so that no two benchmarks share a device: start a worker with `--resources {tags}` "
                               f"({DOCS}).")

    def _ship(self, jobs: Sequence[Job]) -> dict[str, Any]:
        """Scatter to every worker the files some worker lacks; SHA-256 -> the data's future."""
        refs = list({ref.sha256: ref for job in jobs for ref in job.refs()}.values())
        if not refs or self.ship is False:
            return {}
        if self.ship == "auto":
            have = self.client.run(_has_files, refs)
            refs = [ref for i, ref in enumerate(refs) if not all(flags[i] for flags in have.values())]
        return {ref.sha256: self.client.scatter(ref.read(), broadcast=True, hash=False) for ref in refs}

    def _rescheduled(self, key: str) -> int:
        """How many times the scheduler moved the task because its worker died (its ``suspicious`` count)."""

        def suspicious(dask_scheduler=None, key=key):
            task = dask_scheduler.tasks.get(key)
            return int(task.suspicious) if task is not None else 0

        try:
            return int(self.client.run_on_scheduler(suspicious))
        except Exception:  # the count is a report, not a reason to lose the result
            return 0

    def run(self, jobs: Sequence[Job], on_result: Callable[[JobResult], Any] | None = None) -> list[JobResult]:
        """Run ``jobs`` on the cluster; ``on_result`` is called as each finishes (in any order).

        Returns:
            The results in job order; jobs that failed (or never came back) have ``error`` set.

        Raises:
            ClusterError: A latency job needs a resource no worker offers (nothing was run).
        """
        distributed = _distributed()
        self._check_resources(jobs)
        blobs = self._ship(jobs)
        token = uuid.uuid4().hex[:8]
        futures: dict[Any, int] = {}
        try:
            submitted = []
            for i, job in enumerate(jobs):
                needed = {ref.sha256: blobs[ref.sha256] for ref in job.refs() if ref.sha256 in blobs}
                key = f"workbench-{job.kind}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', job.label)}-{token}-{i}"
                after = submitted[job.after] if job.after is not None and job.after < i else None
                submitted.append(self.client.submit(_run_on_worker, job, needed, after, key=key,
                                                    resources=self.resources_for(job), pure=False))
                futures[submitted[-1]] = i
            results: list[JobResult | None] = [None] * len(jobs)
            for future, value in distributed.as_completed(list(futures), loop=self.client.loop, with_results=True,
                                                                raise_errors=False):
                i = futures[future]
                rescheduled = self._rescheduled(future.key)
                if isinstance(value, JobResult):
                    value.rescheduled = rescheduled
                    results[i] = value
                else:  # KilledWorker (it killed too many workers), cancelled, lost data...
                    results[i] = failed_result(jobs[i], value, rescheduled=rescheduled)
                future.release()
                if on_result is not None:
                    on_result(results[i])
            return results  # type: ignore[return-value]
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)
            for future in blobs.values():
                future.release()

    def close(self) -> None:
        """Close the client when this runner opened it."""
        if self.own:
            self.client.close()

    def __enter__(self) -> "ClusterRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def local_cluster(workers: int = 2, *, threads: int = 1, bench_workers: int = 1, dashboard: bool = False):
    """A Dask cluster of worker processes on this machine (127.0.0.1 only) and a client on it.

    On one machine every worker shares its CPU, so by default only the first worker offers the
    ``bench`` resource: benchmarks run one at a time while accuracy jobs use every worker.

    Args:
        workers: Worker processes.
        threads: Threads per worker (tasks it runs at once).
        bench_workers: How many of them offer ``bench=1``.
        dashboard: Serve the Dask dashboard on 127.0.0.1 (needs bokeh; the link is
            ``client.dashboard_link``).

    Returns:
        A ``distributed.Client``; ``client.close(); client.cluster.close()`` stops everything.

    Raises:
        ClusterError: ``distributed`` is not installed.
    """
    distributed = _distributed()
    scheduler = {"cls": distributed.Scheduler,
                 "options": {"host": "127.0.0.1", "dashboard": bool(dashboard), "dashboard_address": "127.0.0.1:0"}}
    specs = {f"worker-{i}": {"cls": distributed.Nanny,
                             "options": {"nthreads": threads, "host": "127.0.0.1", "dashboard": False,
                                         "silence_logs": logging.ERROR,
                                         "resources": {"bench": 1} if i < bench_workers else {}}}
             for i in range(int(workers))}
    cluster = distributed.SpecCluster(workers=specs, scheduler=scheduler, silence_logs=logging.ERROR)
    client = distributed.Client(cluster, set_as_default=False)
    client.wait_for_workers(int(workers), timeout=120)
    return client
