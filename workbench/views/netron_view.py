"""Netron inside the notebook, reached through the Jupyter server.

Netron serves on 127.0.0.1 in the kernel's process; the browser reaches it through
jupyter-server-proxy at ``<base_url>proxy/<port>/``, so the view works when JupyterLab runs on a
remote GPU box reached only through the Jupyter port (an SSH tunnel to that one port), and the
Jupyter token guards it. Netron's page asks for the model at a path relative to its own page,
which is what makes it work behind the proxy prefix.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
from pathlib import Path

NETRON_HOST = "127.0.0.1"
_RUNNING: dict[int, "NetronServer"] = {}


def jupyter_base_url() -> str:
    """The base URL of the Jupyter server this kernel belongs to (``/`` when alone).

    Looks at JupyterHub's prefix, then at the running Jupyter servers on this machine (the one
    whose root folder holds the kernel's working folder).
    """
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        return prefix if prefix.endswith("/") else prefix + "/"
    try:
        from jupyter_server.serverapp import list_running_servers

        servers = list(list_running_servers())
    except Exception:  # no jupyter_server, or its runtime folder is unreadable
        servers = []
    cwd = Path.cwd().resolve()
    for server in servers:
        root = Path(server.get("root_dir") or server.get("notebook_dir") or "/").resolve()
        if root == cwd or root in cwd.parents:
            return server.get("base_url") or "/"
    return servers[0].get("base_url", "/") if len(servers) == 1 else "/"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((NETRON_HOST, 0))
        return sock.getsockname()[1]


class NetronServer:
    """One Netron server for one model file, on 127.0.0.1.

    Args:
        model_path: The ``.onnx`` file to show.
        port: Port to serve on; a free one is chosen when None.
    """

    def __init__(self, model_path, port: int | None = None):
        import netron  # imported here: only this view needs it

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path}: no such model file to show in Netron")
        self.port = port or _free_port()
        self._netron = netron
        with _quiet_netron():
            netron.serve(str(self.model_path), address=(NETRON_HOST, self.port), browse=False)
        _RUNNING[self.port] = self

    @property
    def direct_url(self) -> str:
        """Netron's own address; reachable only from this machine."""
        return f"http://{NETRON_HOST}:{self.port}/"

    def proxied_url(self, base_url: str | None = None) -> str:
        """The address through the Jupyter server (jupyter-server-proxy)."""
        base = base_url if base_url is not None else jupyter_base_url()
        return f"{base.rstrip('/')}/proxy/{self.port}/"

    @property
    def running(self) -> bool:
        return self.port in _RUNNING

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        if _RUNNING.pop(self.port, None) is not None:
            self._netron.stop((NETRON_HOST, self.port))


@contextlib.contextmanager
def _quiet_netron():
    """Keep Netron's log lines ("Serving ... at ...", "Stopping ...") out of the notebook.

    ``netron.serve`` calls ``logging.basicConfig(level=INFO)`` when the root logger has no
    handler, which would also route every other library's INFO messages into the notebook as
    stderr. A NullHandler on the root logger for the call makes that a no-op; Netron's own logger
    is set to WARNING so its INFO lines go nowhere.
    """
    logging.getLogger("netron").setLevel(logging.WARNING)
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        yield
    finally:
        root.removeHandler(guard)


def stop_all() -> None:
    """Stop every Netron server this process started (also run when the kernel exits)."""
    for server in list(_RUNNING.values()):
        server.stop()


atexit.register(stop_all)


def netron_view(model, height: int = 600):
    """A widget showing ``model`` in Netron, with a button that closes the view and the server.

    Args:
        model: A path, a :class:`workbench.model.LoadedModel`, or a model picker (anything with
            ``model`` and ``on_change``): the view then shows the picked model and follows the
            picker, restarting Netron on each newly picked model.
        height: Height of the view in pixels.

    Returns:
        An ``ipywidgets.VBox``; its ``server`` attribute is the current :class:`NetronServer`.
    """
    import ipywidgets as widgets

    picker = model if callable(getattr(model, "on_change", None)) else None
    frame = widgets.HTML()
    caption = widgets.HTML()
    close = widgets.Button(description="Close Netron", icon="times", layout={"width": "160px"})
    box = widgets.VBox([widgets.HBox([close, caption]), frame])
    box.server = None

    def show(shown) -> None:
        path = Path(getattr(shown, "path", shown))
        if box.server is not None:
            box.server.stop()
        box.server = NetronServer(path)
        src = box.server.proxied_url()
        frame.value = (
            f'<iframe src="{src}" title="Netron: {path.name}" referrerpolicy="no-referrer" '
            f'style="width:100%;height:{height}px;border:1px solid #ddd"></iframe>'
        )
        caption.value = (
            f"<small>Netron for <code>{path.name}</code>, served on 127.0.0.1:{box.server.port} "
            f"and shown through the Jupyter server at <code>{src}</code></small>"
        )
        close.disabled = False

    if picker is None:
        show(model)
    elif picker.model is not None:
        show(picker.model)
    else:
        frame.value = "<em>Pick a model to see it in Netron.</em>"

    def _close(_button):
        if box.server is not None:
            box.server.stop()
        frame.value = "<em>Netron view closed.</em>"
        close.disabled = True

    close.on_click(_close)
    if picker is not None:
        picker.on_change(lambda picked: None if close.disabled else show(picked))
    close_widget = box.close

    def _close_view():  # closing the widget (or its notebook output) stops the server too
        if box.server is not None:
            box.server.stop()
        close.disabled = True
        close_widget()

    box.close = _close_view
    return box
