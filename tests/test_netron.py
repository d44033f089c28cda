"""Netron is served on 127.0.0.1 and reachable through a real Jupyter server's proxy."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from workbench.samples import sample_path
from workbench.views.netron_view import NetronServer, netron_view


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # show the redirect to the login page as the 302 it is


_OPENER = urllib.request.build_opener(_NoRedirect)


def _get(url: str, token: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def jupyter_server(tmp_path_factory):
    """A real Jupyter server on 127.0.0.1 with a token, stopped by its process id afterwards."""
    port = _free_port()
    token = secrets.token_hex(16)
    root = tmp_path_factory.mktemp("jupyter-root")
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime))
    process = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter_server",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--ServerApp.open_browser=False",
            *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _get(base + "api/status", token, timeout=2)[0] == 200:
                break
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError("the Jupyter server exited at start-up")
        time.sleep(0.3)
    else:
        process.kill()
        raise RuntimeError("the Jupyter server did not answer within 60 s")
    yield base, token
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def test_netron_is_reachable_only_through_loopback_and_proxy(jupyter_server):
    base, token = jupyter_server
    model = sample_path("digits_cnn")
    server = NetronServer(model)
    try:
        status, page = _get(server.direct_url)
        assert status == 200 and b"netron" in page.lower()
        proxied = server.proxied_url(base_url="/")
        assert proxied == f"/proxy/{server.port}/"
        # Through the Jupyter server, with its token: the page and the model it asks for.
        status, page = _get(base.rstrip("/") + proxied, token)
        assert status == 200 and b'<meta name="file" content="/data/digits_cnn.onnx">' in page
        # Netron's page strips the leading '/' and resolves the file against its own URL.
        status, data = _get(base.rstrip("/") + proxied + "data/digits_cnn.onnx", token)
        assert status == 200 and data == model.read_bytes()
        # Without the token the Jupyter server refuses.
        assert _get(base.rstrip("/") + proxied)[0] in (302, 401, 403)
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(OSError):
        urllib.request.urlopen(server.direct_url, timeout=2)


def test_closing_the_view_stops_the_server():
    view = netron_view(sample_path("digits_cnn"))
    server = view.server
    assert server.running and f"/proxy/{server.port}/" in view.children[1].value
    view.close()
    assert not server.running


def test_missing_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.onnx"):
        NetronServer(tmp_path / "absent.onnx")


def test_netron_logs_nothing_and_leaves_logging_alone(capsys):
    """netron.serve would call logging.basicConfig(INFO) and print "Serving ..." into the notebook."""
    import logging

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()  # as in a fresh kernel: netron would configure the root logger here
    try:
        view = netron_view(sample_path("digits_cnn"))
        assert 'referrerpolicy="no-referrer"' in view.children[1].value
        view.close()
        assert root.handlers == []
        assert logging.getLogger("netron").getEffectiveLevel() == logging.WARNING
    finally:
        root.handlers[:] = saved
    captured = capsys.readouterr()
    assert "Serving" not in captured.out + captured.err and "Stopping" not in captured.out + captured.err
