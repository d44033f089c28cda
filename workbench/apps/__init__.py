"""App mode for a room: the doctor and the tradeoff explorer served by Voilà (``workbench app NAME``).

Each app is a small notebook in this folder (``doctor.ipynb``, ``tradeoffs.ipynb``): narrative
and one call to :mod:`workbench.views` (:class:`~workbench.views.apps.DoctorApp`,
:class:`~workbench.views.apps.TradeoffsApp`). Voilà runs it in a kernel of its own per browser
tab and shows only the outputs, so a student sees the widgets and never the code. The server
listens on 127.0.0.1 only, on a free port, guarded by a token, like ``workbench lab``
(:mod:`workbench.lab` picks the port and the token).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.lab import free_port, resolve_token, run_server

APP_DIR = Path(__file__).resolve().parent
APPS = {
    "doctor": "the INT8 doctor: pick a model, press Run, explore the culprits and the fix",
    "tradeoffs": "the tradeoff explorer: measure the sample models' variants, click a point to see one",
}
# The front-end extensions the apps use: Voilà's widget manager for ipywidgets 8 with the
# widgets' own, plotly's renderer for the static figures, anywidget for the clickable
# FigureWidget. Voilà would otherwise load every JupyterLab extension installed, some of which
# need parts of JupyterLab it does not have (jupyter-server-proxy's fails to load).
EXTENSIONS = ("@voila-dashboards/widgets-manager8", "@jupyter-widgets/jupyterlab-manager", "jupyterlab-plotly",
              "anywidget")
APP_IP = "127.0.0.1"  # a room's laptops each serve their own apps; nothing listens on other addresses
DEFAULT_PORT = 8866  # Voilà's own default


class AppError(WorkbenchError, ValueError):
    """An app cannot be started as asked (unknown name, Voilà missing); the message says the fix."""


@dataclass(frozen=True)
class AppLaunch:
    """What ``workbench app NAME`` runs, and the URL (with its token) to open."""

    app: str
    notebook: Path
    argv: list[str]
    url: str


def app_notebook(name: str) -> Path:
    """The notebook of app ``name`` (a key of :data:`APPS`).

    Raises:
        AppError: No app has that name.
    """
    if name not in APPS:
        raise AppError(f"no app named {name!r}; the apps are {', '.join(APPS)} (workbench app doctor)")
    return APP_DIR / f"{name}.ipynb"


def voila_problem() -> str | None:
    """Why Voilà cannot run here, or None when it can."""
    if importlib.util.find_spec("voila") is None:
        return ("Voilà is not installed; install it with pip install -e '.[app]' "
                "(make lab and make test install it)")
    return None


def prepare_app(name: str, *, ip: str = APP_IP, port: int = DEFAULT_PORT, token: str | None = None) -> AppLaunch:
    """The Voilà command line for app ``name`` on a free port of 127.0.0.1, and its URL with the token.

    Args:
        name: ``doctor`` or ``tradeoffs``.
        ip: Address to listen on; 127.0.0.1 unless inside a container (as ``workbench lab``).
        port: First port to try; the first free one from there is used.
        token: Access token (see :func:`workbench.lab.resolve_token`).

    Returns:
        An :class:`AppLaunch`.

    Raises:
        AppError: Unknown app, or Voilà missing.
        OSError: No free port from ``port`` on.
    """
    notebook = app_notebook(name)
    problem = voila_problem()
    if problem:
        raise AppError(problem)
    token = resolve_token(token)
    port = free_port(ip, port)
    argv = app_command(notebook, ip=ip, port=port, token=token)
    host = APP_IP if ip in ("0.0.0.0", "") else ip  # in a container: the host's mapped port
    return AppLaunch(app=name, notebook=notebook, argv=argv, url=f"http://{host}:{port}/?token={token}")


def app_command(notebook: Path, *, ip: str = APP_IP, port: int, token: str) -> list[str]:
    """The Voilà command line: ``notebook`` on ``ip`` at exactly ``port``, guarded by ``token``.

    Returns:
        The argv list.
    """
    return [
        sys.executable, "-m", "voila", str(notebook),
        f"--Voila.ip={ip}",
        f"--Voila.port={port}",
        "--Voila.port_retries=0",
        f"--Voila.token={token}",
        "--Voila.open_browser=False",  # Voilà would open the URL without the token; run_app opens it
        *(f"--VoilaConfiguration.extension_allowlist={name}" for name in EXTENSIONS),
        "--VoilaConfiguration.show_tracebacks=True",  # a cell that fails says why, for the instructor
    ]


def run_app(launch: AppLaunch, *, open_browser: bool = True) -> int:
    """Run Voilà in the foreground until Ctrl-C; returns its exit code.

    Args:
        launch: From :func:`prepare_app`.
        open_browser: Open the URL (token included) once the server answers.
    """
    return run_server(launch.argv, launch.url, name=f"the {launch.app} app (Voilà)", cwd=APP_DIR,
                      open_url=open_browser)
