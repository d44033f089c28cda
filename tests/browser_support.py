"""Helpers for the browser tests: a JupyterLab server and headless Chromium, both started here.

The server runs from this environment (``sys.executable -m jupyterlab``) on 127.0.0.1 with a
random token, with every Jupyter folder (runtime, config, data, lab settings, workspaces) in a
temporary folder so nothing from the user's home changes what the test sees, and is stopped by
its process id. Chromium is Debian's ``/usr/bin/chromium`` (installed by
``tests/browser_setup.sh``), driven by Playwright's sync API with a fresh profile.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from workbench.lab import server_options

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
ARTIFACT_DIR = REPO_ROOT / "test-artifacts" / "browser"

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Without the background-networking flags Chromium keeps opening connections to Google services,
# which this closed network refuses en masse (and which have no place in a test anyway).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# JupyterLab user settings for the test profile: no news or update prompt on first load, and no
# autosave, so running the notebooks in the browser never writes their outputs into notebooks/.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {
        "autosave": False,
    },
}


def chromium_path() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    found = shutil.which("chromium")
    for candidate in ([found] if found else []) + list(CHROMIUM_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, token: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_delete(url: str, token: str, timeout: float = 30.0) -> int:
    request = urllib.request.Request(url, method="DELETE")
    request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@dataclass
class LabServer:
    """A running JupyterLab server started by :func:`start_lab`."""

    process: subprocess.Popen
    base_url: str  # http://127.0.0.1:<port>/
    token: str
    log_path: Path
    home: Path
    workspace: Path
    stopped: bool = field(default=False)

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def sessions(self) -> list[dict]:
        status, body = http_get(self.url("api/sessions"), self.token)
        return json.loads(body) if status == 200 else []

    def shutdown_kernels(self) -> None:
        """Shut down every kernel of this server (each ends its Netron servers at exit)."""
        status, body = http_get(self.url("api/kernels"), self.token)
        if status != 200:
            return
        for kernel in json.loads(body):
            http_delete(self.url(f"api/kernels/{kernel['id']}"), self.token)

    def stop(self) -> None:
        """Stop the server by its process id: SIGTERM, then SIGKILL if it lingers."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is not None:
            return
        try:
            self.shutdown_kernels()
        except OSError:
            pass
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_lab(tmp: Path, root_dir: Path = NOTEBOOK_DIR, timeout: float = 90.0) -> LabServer:
    """Start JupyterLab on ``root_dir`` with all of its state in ``tmp``; wait until it answers.

    The caller must call :meth:`LabServer.stop` (in a ``finally``); on a start-up failure the
    process is stopped here before the error is raised.
    """
    tmp = Path(tmp)
    dirs = {
        name: tmp / name
        for name in ("runtime", "config", "data", "settings", "workspaces", "ipython", "workspace")
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    for relative, values in LAB_SETTINGS.items():
        target = dirs["settings"] / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2))
    port = free_port()
    token = secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        IPYTHONDIR=str(dirs["ipython"]),
        WORKBENCH_WORKSPACE=str(dirs["workspace"]),
        PYTHONUNBUFFERED="1",
    )
    for name in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTERHUB_SERVICE_PREFIX", "WORKBENCH_LAB_TOKEN"):
        env.pop(name, None)
    argv = [
        sys.executable, "-m", "jupyterlab",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.open_browser=False",
        "--LabApp.news_url=",  # no news feed fetched from the internet
        *server_options(),  # the settings `workbench lab` uses (websocket message limit)
        *(["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
    ]
    log_path = tmp / "jupyterlab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, env=env, cwd=root_dir, stdout=log, stderr=subprocess.STDOUT)
    server = LabServer(process, f"http://127.0.0.1:{port}/", token, log_path, tmp, dirs["workspace"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited at start-up:\n{server.log_tail()}")
            try:
                if http_get(server.url("api/status"), token, timeout=2)[0] == 200:
                    return server
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{server.log_tail()}")
    except BaseException:
        server.stop()
        raise


def playwright_sync_api():
    """Playwright's sync API; a missing Playwright fails the browser tests, it never skips them."""
    try:
        from playwright import sync_api
    except ImportError as err:  # a failure, not a skip: the browser tests are part of the suite
        raise ImportError("playwright is missing: pip install -e '.[test]' (make test does)") from err
    return sync_api


def launch_chromium(playwright, user_data_dir: Path, viewport=(1400, 1000)):
    """A persistent Chromium context with a fresh profile in ``user_data_dir``."""
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Chromium is missing: run `bash tests/browser_setup.sh` (or apt-get install chromium)")
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=executable,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": viewport[0], "height": viewport[1]},
        timeout=60_000,
    )
