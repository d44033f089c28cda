"""App mode in process: the Voilà command ``workbench app`` runs, and the two apps' controllers.

The browser side (Voilà serving them, Chromium clicking) is ``test_app_browser.py``.
"""

from __future__ import annotations

import socket

import pytest

from workbench.apps import APPS, AppError, app_notebook, prepare_app
from workbench.doctor import teaching_case
from workbench.precision import Recipe
from workbench.tables import ResultsTable
from workbench.views import DoctorApp, TradeoffsApp


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("name", sorted(APPS))
def test_the_command_serves_the_packaged_notebook_on_loopback_with_a_token(name):
    port = _free_port()
    launch = prepare_app(name, port=port, token="s3cret-token")
    assert launch.notebook == app_notebook(name) and launch.notebook.is_file()
    assert launch.argv[1:4] == ["-m", "voila", str(launch.notebook)]
    assert "--Voila.ip=127.0.0.1" in launch.argv and f"--Voila.port={port}" in launch.argv
    assert "--Voila.token=s3cret-token" in launch.argv and "--Voila.port_retries=0" in launch.argv
    assert launch.url == f"http://127.0.0.1:{port}/?token=s3cret-token"


def test_inside_a_container_the_app_listens_on_all_interfaces_still_with_a_token():
    launch = prepare_app("tradeoffs", ip="0.0.0.0", port=_free_port(), token="s3cret-token")
    assert "--Voila.ip=0.0.0.0" in launch.argv and "--Voila.token=s3cret-token" in launch.argv
    assert launch.url.startswith("http://127.0.0.1:")  # the host reaches it through the mapped port


def test_a_taken_port_moves_to_the_next_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        launch = prepare_app("doctor", port=port)
    assert f"--Voila.port={port}" not in launch.argv
    assert launch.url.startswith("http://127.0.0.1:") and "?token=" in launch.url


def test_an_unknown_app_is_refused_naming_the_apps():
    with pytest.raises(AppError, match="doctor, tradeoffs"):
        prepare_app("notebook")
    with pytest.raises(ValueError, match="empty token"):
        prepare_app("doctor", token="")


def test_doctor_app_finds_the_teaching_case_culprit_from_its_button(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path))
    app = DoctorApp(model="digits_cnn_conv1_c5_x300")
    assert app.result.children == () and app.diagnosis is None  # nothing ran on construction
    labels = [label for label, _value in app.samples_dropdown.options]
    assert labels[0] == "all 360" and "60" in labels
    app.samples_dropdown.value = 60
    chosen = app.evaluation_data()
    assert chosen.num_samples == 60 and len(chosen.labels) == 60
    app.run_button.click()
    assert app.status.value == "", app.status.value
    case = teaching_case("digits_cnn_conv1_c5_x300")
    assert case.consumer in [c["node"] for c in app.diagnosis.culprits]
    assert app.result.children == (app.explorer,)
    assert app.progress.bar.value == app.progress.bar.max and "full evaluations" in app.progress.text.value
    assert not app.run_button.disabled


def test_doctor_app_shows_an_error_in_one_box_and_can_run_again(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path))
    app = DoctorApp({"gone": (tmp_path / "missing.onnx", "digits_cnn")})
    app.run_button.click()
    assert "wb-error" in app.status.value and "missing.onnx" in app.status.value
    assert app.result.children == () and not app.run_button.disabled


def test_tradeoffs_app_measures_then_reads_back(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path))
    table = ResultsTable(tmp_path / "results.jsonl")
    app = TradeoffsApp(table, recipes=[Recipe("fp32"), Recipe("int8", method="minmax", num_samples=32)],
                       iterations=5)
    assert app.explorer is None and app.result.children == () and "No results yet" in app.status.value
    app.model_dropdown.value = "digits_cnn"
    app.measure_button.click()
    assert app.status.value.startswith("2 results in"), app.status.value
    assert app.explorer is not None and app.result.children == (app.explorer,)
    assert app.explorer.model_dropdown.value == "digits_cnn"
    assert sorted(app.explorer.frame["precision"]) == ["FP32", "INT8"]
    app.measure_button.click()  # the same variants again: read back from the table, not added twice
    assert len(table) == 2 and app.status.value.startswith("2 results in")
