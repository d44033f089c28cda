"""Start JupyterLab on the workbench's notebooks, bound to one address and guarded by a token."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import webbrowser
from dataclasses import dataclass

from workbench.samples import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
# The largest websocket message the server takes (tornado's default is 10 MB). A notebook's
# widgets send an uploaded file in kernel messages; the model picker's upload streams in 4 MB
# pieces, but a stock ipywidgets FileUpload sends the whole file at once and fails silently above
# the limit.
WEBSOCKET_MAX_MESSAGE_BYTES = 512 * 1024 * 1024


def server_options() -> list[str]:
    """The Jupyter server settings every workbench server runs with (``workbench lab``, tests).

    Returns:
        Command-line options: the websocket message limit raised to
        :data:`WEBSOCKET_MAX_MESSAGE_BYTES`.
    """
    settings = {"websocket_max_message_size": WEBSOCKET_MAX_MESSAGE_BYTES}
    return [f"--ServerApp.tornado_settings={settings!r}"]


@dataclass(frozen=True)
class LabLaunch:
    """What ``workbench lab`` runs, and the URL (with its token) to open."""

    argv: list[str]
    url: str


def free_port(ip: str, first: int, tries: int = 50) -> int:
    """The first port from ``first`` on that nothing listens on at ``ip``.

    Chosen here rather than by JupyterLab's own retries so the URL printed with the token is
    the one the server really uses (JupyterLab hides a token it did not generate in its log).

    Raises:
        OSError: No free port among ``tries`` ports.
    """
    for port in range(first, first + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port from {first} to {first + tries - 1} on {ip}; pass --port with a free one")


def resolve_token(token: str | None = None) -> str:
    """The access token: the one given, else ``$WORKBENCH_LAB_TOKEN``, else a random one.

    Raises:
        ValueError: An empty token (it would leave JupyterLab open to anyone).
    """
    if token is not None and not token:
        raise ValueError("an empty token would leave JupyterLab open to anyone; give a token or none")
    return token or os.environ.get("WORKBENCH_LAB_TOKEN") or secrets.token_urlsafe(24)


def prepare_lab(
    *,
    ip: str = "127.0.0.1",
    port: int = 8888,
    open_browser: bool = True,
    notebook: str = "00_tour.ipynb",
    token: str | None = None,
) -> LabLaunch:
    """The JupyterLab command line on a free port, and the URL to open (token included).

    Args:
        ip: Address to listen on; 127.0.0.1 unless inside a container.
        port: First port to try; the first free one from there is used.
        open_browser: Open the browser on the notebook.
        notebook: Notebook (in ``notebooks/``) to open first.
        token: Access token (see :func:`resolve_token`).

    Returns:
        A :class:`LabLaunch`.
    """
    token = resolve_token(token)
    port = free_port(ip, port)
    argv = lab_command(ip=ip, port=port, open_browser=open_browser, notebook=notebook, token=token)
    host = "127.0.0.1" if ip in ("0.0.0.0", "") else ip  # in a container: the host's mapped port
    page = f"lab/tree/{notebook}" if (NOTEBOOK_DIR / notebook).is_file() else "lab"
    return LabLaunch(argv=argv, url=f"http://{host}:{port}/{page}?token={token}")


def lab_command(*, ip: str, port: int, open_browser: bool, notebook: str, token: str) -> list[str]:
    """The JupyterLab command line ``workbench lab`` runs (arguments as :func:`prepare_lab`).

    Returns:
        The argv list: bound to ``ip`` and exactly ``port``, guarded by ``token``.
    """
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={NOTEBOOK_DIR}",
        f"--IdentityProvider.token={resolve_token(token)}",
        f"--ServerApp.open_browser={open_browser}",
        *server_options(),
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI machines run as root
        argv.append("--ServerApp.allow_root=True")
    if (NOTEBOOK_DIR / notebook).is_file():
        argv.append(str(NOTEBOOK_DIR / notebook))
    return argv


def run_lab(argv: list[str], url: str | None = None) -> int:
    """Run JupyterLab in the foreground until it stops; returns its exit code.

    Args:
        argv: The command (:func:`lab_command`).
        url: The URL with its token, printed first (JupyterLab's own log hides the token).
    """
    return run_server(argv, url, name="JupyterLab", cwd=NOTEBOOK_DIR)


def run_server(argv: list[str], url: str | None = None, *, name: str, cwd=NOTEBOOK_DIR,
               open_url: bool = False) -> int:
    """Run a server (JupyterLab, Voilà) in the foreground until it stops or Ctrl-C; returns its exit code.

    Args:
        argv: The command.
        url: The URL with its token, printed first (the servers' own logs hide a token they did not make).
        name: What is starting, for the message.
        cwd: The server's working folder.
        open_url: Open ``url`` in a browser once the server answers (for servers whose own
            browser opening leaves the token out).
    """
    if url:
        print(f"Starting {name}. Open this URL (it holds the access token):\n\n    {url}\n",
              file=sys.stderr, flush=True)
    try:
        with subprocess.Popen(argv, cwd=cwd) as process, _stop_with(process):
            if open_url and url:
                threading.Thread(target=_open_when_up, args=(process, url), daemon=True).start()
            try:
                return process.wait()
            except KeyboardInterrupt:  # Ctrl-C reached the server too: let it shut its kernels down
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.terminate()
                return 0
    except KeyboardInterrupt:
        return 0


@contextlib.contextmanager
def _stop_with(process: subprocess.Popen):
    """While inside, a SIGTERM to this process (``kill PID``) stops the server too instead of orphaning it."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: process.terminate())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _open_when_up(process: subprocess.Popen, url: str, timeout_s: float = 120) -> None:
    """Open ``url`` in the browser once its port accepts connections (while ``process`` runs)."""
    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=1):
                webbrowser.open(url)
                return
        except OSError:
            time.sleep(0.3)
