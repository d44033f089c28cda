"""Start JupyterLab on the workbench's notebooks, bound to one address and guarded by a token."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from workbench.samples import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def lab_command(
    *,
    ip: str = "127.0.0.1",
    port: int = 8888,
    open_browser: bool = True,
    notebook: str = "00_tour.ipynb",
    token: str | None = None,
) -> list[str]:
    """The JupyterLab command line ``workbench lab`` runs.

    Args:
        ip: Address to listen on; 127.0.0.1 unless inside a container.
        port: First port to try (JupyterLab tries the next ones if taken).
        open_browser: Open the browser on the notebook.
        notebook: Notebook (in ``notebooks/``) to open first.
        token: Access token; a random one when None. An empty token is refused.

    Returns:
        The argv list.
    """
    if token is not None and not token:
        raise ValueError("an empty token would leave JupyterLab open to anyone; give a token or none")
    token = token or os.environ.get("WORKBENCH_LAB_TOKEN") or secrets.token_urlsafe(24)
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        f"--ServerApp.root_dir={NOTEBOOK_DIR}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.open_browser={open_browser}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI machines run as root
        argv.append("--ServerApp.allow_root=True")
    if (NOTEBOOK_DIR / notebook).is_file():
        argv.append(str(NOTEBOOK_DIR / notebook))
    return argv


def run_lab(argv: list[str]) -> int:
    """Run JupyterLab in the foreground until it stops; returns its exit code."""
    print("Starting JupyterLab; open the URL with the token that it prints below.", file=sys.stderr)
    try:
        return subprocess.call(argv, cwd=NOTEBOOK_DIR)
    except KeyboardInterrupt:
        return 0
