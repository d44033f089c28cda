"""Serve a Triton model repository with a real ``tritonserver`` on 127.0.0.1, and stop it cleanly.

Where the server comes from (:func:`find_runtime`), first found wins:

``pytriton``
    The ``tritonserver`` binary that PyPI's ``nvidia-pytriton`` ships (Triton 2.51 with only the
    Python backend), from a venv of its own (``$WORKBENCH_TRITON_PYTHON``, else the repository's
    ``.venv-triton`` that ``make triton`` creates: nvidia-pytriton pins numpy<2). It has no ONNX
    Runtime or TensorRT backend, so the repository is *staged*: each ``onnxruntime_onnx`` model is
    served under its name by a Python-backend twin (same inputs, outputs, ``max_batch_size``,
    dynamic batching, warm-up; instances on the CPU) whose ``model.py``
    (:mod:`~workbench.workflows.triton.python_model`) runs the exported ``model.onnx`` with ONNX
    Runtime. ``tensorrt_plan`` models are skipped with the reason (they need a GPU and Triton's
    TensorRT backend). The stub must load the interpreter's own ``libpython``: ``LD_LIBRARY_PATH``
    points at that interpreter's ``LIBDIR`` (with a pyenv interpreter the system's libpython can be
    another patch release, and ``multiprocessing`` then fails in the stub).
``tritonserver``
    A full Triton install on ``PATH`` (the NGC container's ``/opt/tritonserver``): the repository is
    served as it is, every backend real.
``docker``
    On a GPU machine with Docker, the NGC Triton container (:func:`docker_command`), with a tag
    whose TensorRT matches the engines' (recorded at export).

Servers listen on 127.0.0.1 only. Each runs under a watchdog (:mod:`.watchdog`) in a process group
of its own, stopped by :meth:`TritonServer.stop`, by a context manager, at interpreter exit (a
notebook kernel's end), or by the watchdog when the process that started it dies; stopping leaves
no process of the group behind.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.samples import REPO_ROOT
from workbench.workflows.triton.config import (
    CONFIG_FILE,
    ONNX_PLATFORM,
    TENSORRT_PLATFORM,
    TritonUnavailable,
    config_text,
    parse_config,
)
from workbench.workflows.triton.export import read_record
from workbench.workflows.triton.watchdog import group_members
from workbench.workspace import workspace_dir

log = logging.getLogger("workbench")

HOST = "127.0.0.1"
DEFAULT_PORT = 8000
EXIT_TIMEOUT_S = 3  # tritonserver's wait for open client connections and in-flight requests on SIGTERM
SHM_DIR = Path("/dev/shm")
TRITON_PYTHON_ENV = "WORKBENCH_TRITON_PYTHON"
TRITON_VENV = REPO_ROOT / ".venv-triton"
PYTHON_MODEL = Path(__file__).with_name("python_model.py")
NGC_IMAGE = "nvcr.io/nvidia/tritonserver"
SERVED_BY_PYTHON = "Triton's Python backend running ONNX Runtime on model.onnx (CPU)"
_RUNNING: "weakref.WeakSet[TritonServer]" = weakref.WeakSet()


class TritonServeError(WorkbenchError, RuntimeError):
    """The server could not start or serve the repository; the message says why and what to do."""


# --------------------------------------------------------------------------------------------
# Where tritonserver comes from
# --------------------------------------------------------------------------------------------


@dataclass
class TritonRuntime:
    """A ``tritonserver`` this machine can run.

    Attributes:
        kind: ``"pytriton"`` (nvidia-pytriton's binary, Python backend only) or ``"tritonserver"``.
        server: The binary.
        python: The venv interpreter whose packages the Python-backend stub uses (pytriton).
        stub: The Python-backend stub for that interpreter's version (pytriton).
        backend_dir: Folder of the Python backend (``libtriton_python.so``) (pytriton).
        env: Environment additions for the server process.
        version: A description for reports.
    """

    kind: str
    server: Path
    python: Path | None = None
    stub: Path | None = None
    backend_dir: Path | None = None
    env: dict = field(default_factory=dict)
    version: str = ""


# What the pytriton venv's interpreter reports about itself (run in that interpreter).
_PROBE = """
import importlib.metadata, importlib.util, json, sys, sysconfig
spec = importlib.util.find_spec("pytriton")
print(json.dumps({
    "libdir": sysconfig.get_config_var("LIBDIR"),
    "shared": bool(sysconfig.get_config_var("Py_ENABLE_SHARED")),
    "version": "%d.%d" % sys.version_info[:2],
    "pytriton": None if spec is None else list(spec.submodule_search_locations)[0],
    "pytriton_version": None if spec is None else importlib.metadata.version("nvidia-pytriton"),
}))
"""


def find_runtime() -> TritonRuntime:
    """The ``tritonserver`` to run here (see the module docstring for the order).

    Raises:
        TritonUnavailable: None found, with how to get one.
    """
    python = os.environ.get(TRITON_PYTHON_ENV) or (TRITON_VENV / "bin" / "python")
    if Path(python).is_file():
        return _pytriton_runtime(Path(python))
    found = shutil.which("tritonserver")
    if found:
        return TritonRuntime("tritonserver", Path(found), version="tritonserver on PATH")
    raise TritonUnavailable(
        f"no tritonserver here: no nvidia-pytriton venv at {TRITON_VENV} (or ${TRITON_PYTHON_ENV}) and no "
        "tritonserver on PATH. Fix: run `make triton` (creates .venv-triton with nvidia-pytriton), or use the NGC "
        "Triton container on a GPU machine (`workbench serve REPO --print-command`)."
    )


def _pytriton_runtime(python: Path) -> TritonRuntime:
    # Not resolved: the venv's python is a symlink, and resolving it would leave the venv.
    python = Path(os.path.abspath(python))
    try:
        probe = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
        facts = json.loads(probe.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        raise TritonUnavailable(f"{python} does not run ({err}). Fix: recreate it with `make triton`.") from err
    if not facts["pytriton"]:
        raise TritonUnavailable(f"{python} has no nvidia-pytriton. Fix: `make triton` (or pip install nvidia-pytriton "
                                "there).")
    root = Path(facts["pytriton"]) / "tritonserver"
    stub = root / "python_backend_stubs" / facts["version"] / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonUnavailable(f"nvidia-pytriton has no Python-backend stub for Python {facts['version']} ({stub}). "
                                "Fix: make the triton venv with Python 3.8-3.13.")
    if not facts["shared"]:
        log.warning("%s has no shared libpython: the Python-backend stub may load another libpython", python)
    libs = [facts["libdir"], str(Path(facts["pytriton"]).parent / "nvidia_pytriton.libs")]
    env = {
        "LD_LIBRARY_PATH": ":".join(libs + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]),
        # The stub's embedded interpreter finds its prefix (and the venv's packages) from `python3` on PATH.
        "PATH": f"{python.parent}:{os.environ.get('PATH', '')}",
    }
    return TritonRuntime("pytriton", root / "bin" / "tritonserver", python=python, stub=stub,
                         backend_dir=root / "backends" / "python", env=env,
                         version=f"tritonserver from nvidia-pytriton {facts['pytriton_version']}")


# --------------------------------------------------------------------------------------------
# The repository as this runtime serves it
# --------------------------------------------------------------------------------------------


def repository_models(repository) -> list[dict]:
    """The models of a repository: ``{"name", "path", "platform", "backend", "versions", "record"}``.

    Raises:
        TritonServeError: Not a folder, or a config that does not parse.
    """
    root = Path(repository).expanduser()
    if not root.is_dir():
        raise TritonServeError(f"{root}: no such repository folder. Export a model first: workbench export triton "
                               "MODEL --repository DIR")
    models = []
    for folder in sorted(p for p in root.iterdir() if (p / CONFIG_FILE).is_file()):
        try:
            config = parse_config((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except WorkbenchError as err:
            raise TritonServeError(f"{folder / CONFIG_FILE}: {err}") from err
        versions = sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
        models.append({"name": config.name or folder.name, "path": folder, "platform": config.platform,
                       "backend": config.backend, "versions": versions, "config": config,
                       "record": read_record(folder)})
    if not models:
        raise TritonServeError(f"{root} holds no model (no <name>/config.pbtxt). Export one: workbench export triton "
                               f"MODEL --repository {root}")
    return models


def stage_repository(models: list[dict], staged: Path) -> tuple[list[dict], list[dict]]:
    """Write the repository the pytriton server serves: Python-backend twins of the ONNX models.

    Returns:
        ``(served, skipped)``: per model ``{"name", "platform", "served_as"}``, and
        ``{"name", "platform", "reason"}`` for models this server cannot run.
    """
    served, skipped = [], []
    for model in models:
        platform = model["platform"] or model["backend"]
        if model["platform"] == ONNX_PLATFORM or model["backend"] == "onnxruntime":
            _stage_onnx(model, staged / model["path"].name)
            served.append({"name": model["name"], "platform": platform, "served_as": SERVED_BY_PYTHON})
        elif model["backend"] == "python":
            (staged / model["path"].name).symlink_to(model["path"], target_is_directory=True)
            served.append({"name": model["name"], "platform": platform, "served_as": "Triton's Python backend"})
        else:
            reason = ("a TensorRT plan needs an NVIDIA GPU and Triton's TensorRT backend: serve this repository "
                      "with the NGC Triton container (workbench serve REPO --print-command)"
                      if model["platform"] == TENSORRT_PLATFORM else
                      f"the {platform} backend is not in nvidia-pytriton's tritonserver")
            skipped.append({"name": model["name"], "platform": platform, "reason": reason})
    return served, skipped


def _stage_onnx(model: dict, target: Path) -> None:
    config = type(model["config"])()
    config.CopyFrom(model["config"])
    onnx_file = config.default_model_filename or "model.onnx"
    config.platform = ""
    config.backend = "python"
    for cleared in ("default_model_filename", "cc_model_filenames", "optimization"):
        config.ClearField(cleared)
    for group in config.instance_group:
        group.kind = group.KIND_CPU
        group.ClearField("gpus")
    config.parameters["onnx_file"].string_value = onnx_file
    target.mkdir(parents=True)
    (target / CONFIG_FILE).write_text(config_text(config), encoding="utf-8")
    for entry in model["path"].iterdir():
        if entry.name == CONFIG_FILE:
            continue
        if entry.is_dir() and entry.name.isdigit():
            version = target / entry.name
            version.mkdir()
            for item in entry.iterdir():
                (version / item.name).symlink_to(item.resolve())
            shutil.copyfile(PYTHON_MODEL, version / "model.py")
        else:
            (target / entry.name).symlink_to(entry.resolve())


def _stage_backends(runtime: TritonRuntime, staged: Path) -> Path:
    """A backend folder with the Python backend and the stub for the venv's Python version."""
    folder = staged / "python"
    folder.mkdir(parents=True)
    for item in runtime.backend_dir.iterdir():
        if item.is_file():
            (folder / item.name).symlink_to(item)
    # A symlink keeps the stub's $ORIGIN-relative library path pointing into nvidia-pytriton.
    (folder / "triton_python_backend_stub").symlink_to(runtime.stub)
    return staged


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    """Whether nothing listens on ``127.0.0.1:port`` (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, int(port)))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _ports(port: int | None, grpc_port: int | None, metrics_port: int | None) -> tuple[int, int, int]:
    http = free_port() if port is None else int(port)
    if not port_free(http):
        raise TritonServeError(
            f"port {http} on {HOST} is taken (another server, perhaps another Triton, listens there). "
            "Fix: pass another --port, or stop the server using it."
        )
    chosen = [http]
    for wanted, offset in ((grpc_port, 1), (metrics_port, 2)):
        if wanted is not None:
            if not port_free(wanted):
                raise TritonServeError(f"port {wanted} on {HOST} is taken. Fix: pass another port.")
            chosen.append(int(wanted))
            continue
        candidate = http + offset
        if candidate in chosen or candidate > 65535 or not port_free(candidate):
            candidate = free_port()
        chosen.append(candidate)
    return chosen[0], chosen[1], chosen[2]


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class TritonServer:
    """A running ``tritonserver`` (see :func:`serve_triton`); stop it with :meth:`stop`.

    Attributes:
        repository: The repository served.
        http_port, grpc_port, metrics_port: Where it listens (127.0.0.1).
        runtime: The :class:`TritonRuntime`.
        models: Models served: ``{"name", "platform", "served_as"}``.
        skipped: Models of the repository this server cannot run, with the reason.
        log_path: The server's log.
    """

    def __init__(self, repository, runtime: TritonRuntime, ports: tuple[int, int, int], *, timeout_s: float = 120):
        self.repository = Path(repository).expanduser().resolve()
        self.runtime = runtime
        self.http_port, self.grpc_port, self.metrics_port = ports
        self.models: list[dict] = []
        self.skipped: list[dict] = []
        self._staged: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._group: int | None = None
        # The Python backend's shared-memory regions are named after this prefix, so the ones a
        # server killed before it could clean up are found and removed by stop().
        self._shm_prefix = f"workbench_triton_{os.getpid()}_{self.http_port}_"
        logs = workspace_dir("triton")
        self.log_path = logs / f"tritonserver-{self.http_port}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        self._start(timeout_s)

    # -- facts

    @property
    def url(self) -> str:
        """The HTTP endpoint (``http://127.0.0.1:P``)."""
        return f"http://{HOST}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        """The watchdog's process id, which is also the server's process group id."""
        return None if self._proc is None else self._proc.pid

    def to_dict(self) -> dict:
        """JSON-ready facts (what ``workbench serve --json`` prints once the server is ready)."""
        return {
            "url": self.url, "http_port": self.http_port, "grpc_url": self.grpc_url, "grpc_port": self.grpc_port,
            "metrics_url": self.metrics_url, "metrics_port": self.metrics_port, "ready_url": f"{self.url}/v2/health/ready",
            "repository": str(self.repository), "models": self.models, "skipped": self.skipped,
            "runtime": self.runtime.kind, "server": self.runtime.version, "pid": self.pid, "log": str(self.log_path),
            "docker_command": shlex.join(docker_command(self.repository, port=self.http_port)),
        }

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"TritonServer({self.url}, {len(self.models)} model(s), {state})"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><code>{m['name']}</code></td><td>{m['platform']}</td><td>{m['served_as']}</td></tr>"
                       for m in self.models)
        rows += "".join(f"<tr><td><code>{m['name']}</code></td><td>{m['platform']}</td><td>not served: "
                        f"{m['reason']}</td></tr>" for m in self.skipped)
        state = "running" if self.is_running() else "stopped"
        return (f"<p>Triton at <code>{self.url}</code> (gRPC <code>{self.grpc_url}</code>, metrics "
                f"<code>{self.metrics_url}</code>), {state}</p><table><tr><th>model</th><th>platform</th>"
                f"<th>served by</th></tr>{rows}</table>")

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def processes(self) -> list[int]:
        """Process ids still alive in the server's process group ([] once stopped)."""
        return [] if self._group is None else group_members(self._group)

    def ready(self) -> bool:
        """Whether Triton's readiness endpoint (``/v2/health/ready``) answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    # -- lifecycle

    def _start(self, timeout_s: float) -> None:
        models = repository_models(self.repository)
        self._staged = Path(tempfile.mkdtemp(prefix="workbench-triton-"))
        try:
            if self.runtime.kind == "pytriton":
                self.models, self.skipped = stage_repository(models, self._staged / "models")
                if not self.models:
                    raise TritonServeError(
                        f"nothing in {self.repository} can be served by this tritonserver: "
                        + "; ".join(f"{m['name']}: {m['reason']}" for m in self.skipped))
                backends = _stage_backends(self.runtime, self._staged / "backends")
                argv = self._argv(self._staged / "models", backends)
            else:
                self.models = [{"name": m["name"], "platform": m["platform"] or m["backend"],
                                "served_as": f"Triton's {m['platform'] or m['backend']} backend"} for m in models]
                argv = self._argv(self.repository, None)
            self._launch(argv)
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        _RUNNING.add(self)
        log.info("Triton serving %s at %s (gRPC %s)", ", ".join(m["name"] for m in self.models), self.url,
                 self.grpc_url)

    def _argv(self, models: Path, backends: Path | None) -> list[str]:
        argv = [str(self.runtime.server), "--model-repository", str(models),
                "--http-address", HOST, "--http-port", str(self.http_port),
                "--grpc-address", HOST, "--grpc-port", str(self.grpc_port),
                "--metrics-address", HOST, "--metrics-port", str(self.metrics_port),
                "--exit-timeout-secs", str(EXIT_TIMEOUT_S), "--log-info", "true"]
        if backends is not None:
            argv += ["--backend-directory", str(backends),
                     f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}"]
        return argv

    def _launch(self, argv: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(self.runtime.env)
        watchdog = [sys.executable, "-m", "workbench.workflows.triton.watchdog", "--parent", str(os.getpid()), "--"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as handle:
            handle.write(("$ " + shlex.join(argv) + "\n").encode())
            handle.flush()
            self._proc = subprocess.Popen(watchdog + argv, stdout=handle, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self._group = self._proc.pid

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.is_running():
                raise TritonServeError(self._start_failure())
            if self.ready():
                return
            time.sleep(0.2)
        raise TritonServeError(f"tritonserver was not ready within {timeout_s:.0f} s; its log: {self.log_path}")

    def _start_failure(self) -> str:
        text = self.log_text()
        lines = [line.strip() for line in text.splitlines()]
        taken = [line for line in lines if "already in use" in line.lower() or "address in use" in line.lower()]
        if taken:
            return (f"tritonserver could not listen: {taken[0]}. Fix: pass another --port (a port on {HOST} that "
                    "no other server uses).")
        errors = [line for line in lines if line[:1] == "E" and line[1:5].isdigit() or "error" in line.lower()]
        shown = "; ".join(errors[:4]) or (lines[-1] if lines else "no output")
        return f"tritonserver exited while starting (code {self._proc.returncode}): {shown}. Full log: {self.log_path}"

    def wait(self) -> int | None:
        """Block until the server exits (or KeyboardInterrupt); returns its exit code."""
        if self._proc is None:
            return None
        return self._proc.wait()

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the server and everything it started (idempotent); remove the staged repository."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)  # the watchdog stops tritonserver, then its stubs
                    proc.wait(timeout_s)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
            _kill_group(proc.pid)
            if proc.poll() is None:
                proc.wait(5)
        if self._staged is not None:
            shutil.rmtree(self._staged, ignore_errors=True)
            self._staged = None
        for region in SHM_DIR.glob(f"{self._shm_prefix}*") if SHM_DIR.is_dir() else ():
            region.unlink(missing_ok=True)
        _RUNNING.discard(self)

    def __enter__(self) -> "TritonServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _kill_group(pgid: int, timeout_s: float = 5) -> None:
    """SIGKILL whatever is left of process group ``pgid`` and wait until it is gone."""
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@atexit.register
def _stop_all() -> None:  # interpreter (or notebook kernel) exit: no server outlives it
    for server in list(_RUNNING):
        server.stop(timeout_s=10)


def serve_triton(repository, port: int | None = None, *, grpc_port: int | None = None, metrics_port: int | None = None,
                 timeout_s: float = 120, runtime: TritonRuntime | None = None) -> TritonServer:
    """Start a real Triton server on 127.0.0.1 for every model of ``repository``; return when ready.

    Args:
        repository: A Triton model repository (e.g. from :func:`~workbench.workflows.triton.export.export_triton`).
        port: HTTP port (None: a free one). gRPC and metrics take the next two ports when free.
        grpc_port, metrics_port: Explicit ports.
        timeout_s: How long loading may take before giving up.
        runtime: The server to run (default: :func:`find_runtime`).

    Returns:
        The running :class:`TritonServer` (its ``/v2/health/ready`` answers 200).

    Raises:
        TritonUnavailable: No tritonserver here (the message says how to get one).
        TritonServeError: A taken port, nothing servable, or the server failing to start (its errors).
    """
    runtime = runtime or find_runtime()
    return TritonServer(repository, runtime, _ports(port, grpc_port, metrics_port), timeout_s=timeout_s)


# --------------------------------------------------------------------------------------------
# The NGC container on a GPU machine
# --------------------------------------------------------------------------------------------


def container_tag(repository, tag: str | None = None) -> str | None:
    """The Triton container tag for a repository's engines: ``tag`` if given, else the NGC release
    recorded at export (``YY.MM-py3``), None when no engine says (ONNX-only repositories run on any).

    Raises:
        TritonServeError: Engines recorded with different releases (one container cannot run both).
    """
    if tag:
        return tag
    releases = {m["record"].get("tensorrt", {}).get("ngc_release") for m in repository_models(repository)
                if m["platform"] == TENSORRT_PLATFORM and m["record"].get("tensorrt")}
    releases.discard(None)
    if len(releases) > 1:
        raise TritonServeError(f"the repository's engines were built for different TensorRT releases "
                               f"({sorted(releases)}); serve them from separate repositories.")
    return f"{releases.pop()}-py3" if releases else None


def docker_command(repository, *, port: int = DEFAULT_PORT, grpc_port: int | None = None,
                   metrics_port: int | None = None, tag: str | None = None) -> list[str]:
    """The ``docker run ... tritonserver --model-repository`` command for the NGC Triton container.

    Ports are published on 127.0.0.1 only. Without a known tag the image reads
    ``nvcr.io/nvidia/tritonserver:<YY.MM>-py3``: pick the release whose TensorRT is the engines'.
    """
    root = Path(repository).expanduser().resolve()
    grpc_port = grpc_port or port + 1
    metrics_port = metrics_port or port + 2
    try:
        tag = container_tag(root, tag) if root.is_dir() else tag
    except TritonServeError:
        tag = None
    return ["docker", "run", "--rm", "--gpus", "all", "--shm-size", "1g",
            "-p", f"{HOST}:{port}:8000", "-p", f"{HOST}:{grpc_port}:8001", "-p", f"{HOST}:{metrics_port}:8002",
            "-v", f"{root}:/models:ro", f"{NGC_IMAGE}:{tag or '<YY.MM>-py3'}",
            "tritonserver", "--model-repository=/models"]


def docker_available() -> str | None:
    """None when Docker and an NVIDIA GPU are here, else why not (one line)."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU driver (nvidia-smi) here"
    return None


def describe(server: TritonServer) -> str:
    """One line for logs and the CLI: where the server listens and what it serves."""
    names = ", ".join(m["name"] for m in server.models)
    return (f"Triton ({server.runtime.version}) serving {names} at {server.url} "
            f"(gRPC {server.grpc_url}, metrics {server.metrics_url})")


def run_until_stopped(server: TritonServer) -> int:
    """Block while the server runs; stop it on Ctrl-C or SIGTERM. Returns 0 when stopped that way,
    1 when the server exited by itself."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        code = server.wait()
        log.error("tritonserver exited by itself (code %s); its log: %s", code, server.log_path)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
