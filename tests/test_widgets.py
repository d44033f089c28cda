"""The widgets as a user drives them: picking, loading bad input, uploading, switching engines."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from workbench.backends import get_backend
from workbench.samples import sample_data_path, sample_path
from workbench.views.engine_explorer import EngineExplorer
from workbench.views.model_picker import ModelPicker


@pytest.fixture(autouse=True)
def _workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


def test_picker_opens_on_a_sample_and_switches():
    picker = ModelPicker()
    assert picker.model.name == "digits_cnn"
    seen = []
    picker.on_change(lambda model: seen.append(model.name))
    picker.sample_dropdown.value = "digits_transformer"
    assert picker.model.name == "digits_transformer" and seen == ["digits_transformer"]
    assert "digits_transformer" in picker.status.value
    assert len(picker.summary_out.outputs) == 2  # summary table and op-type chart


def test_picker_bad_path_shows_the_error_and_keeps_the_model(tmp_path):
    picker = ModelPicker()
    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model")
    picker.path_box.value = str(bad)
    picker.load_button.click()
    assert "wb-error" in picker.status.value and "notes.onnx" in picker.status.value
    assert "Traceback" not in picker.status.value
    assert picker.model.name == "digits_cnn"


def test_upload_is_saved_without_overwriting(_workspace):
    picker = ModelPicker(sample=None)
    assert picker.model is None
    content = sample_path("digits_cnn").read_bytes()
    upload = {"name": "mine.onnx", "type": "", "size": len(content), "content": memoryview(content),
              "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)}
    picker.upload.value = (upload,)
    first = picker.model.path
    picker.upload.value = ()
    picker.upload.value = (dict(upload),)
    second = picker.model.path
    assert first != second and first.read_bytes() == second.read_bytes() == content
    assert first.parent == second.parent == _workspace / "uploads"


def test_engine_explorer_switches_engines_and_compares():
    batch = {"input": np.load(sample_data_path("digits_cnn"))["input"][:8]}
    backend = get_backend("onnxruntime")
    fused = backend.build(sample_path("digits_cnn")).profile(batch, iterations=3)
    plain = backend.build(sample_path("digits_cnn"), {"graph_optimization_level": "disable"}).profile(batch, iterations=3)
    explorer = EngineExplorer({"fused": fused, "plain": plain, "layers only": fused.drop(columns=["time_ms", "median_ms", "share"])},
                              {"fused": sample_path("digits_cnn")})
    assert len(explorer.timing_out.outputs) == 4 and len(explorer.fusion_out.outputs) == 3
    explorer.engine_dropdown.value = "plain"
    assert len(explorer.fusion_out.outputs) == 2  # no model given for this engine: no graph
    explorer.engine_dropdown.value = "layers only"
    assert len(explorer.timing_out.outputs) == 1  # a note that there are no times, no figures
    explorer.compare_a.value, explorer.compare_b.value = "fused", "plain"
    assert len(explorer.compare_out.outputs) == 2
    explorer.compare_b.value = "fused"
    assert len(explorer.compare_out.outputs) == 1


def test_show_in_puts_figures_into_the_output_widget(capsys):
    """A plotly figure goes into the Output's outputs as plotly's mime bundle, not to the cell.

    IPython's formatter calls a figure's ``_ipython_display_``, which shows it in the running cell
    (outside the widget, so it cannot follow the picker) and leaves the Output area empty.
    """
    import ipywidgets as widgets
    import plotly.graph_objects as go

    from workbench.views.output import show_in

    out = widgets.Output()
    figure = go.Figure(go.Bar(x=["Conv", "Relu"], y=[3, 2]), layout_title_text="op types")
    show_in(out, widgets.HTML("<b>summary</b>"), figure)
    assert [o["output_type"] for o in out.outputs] == ["display_data", "display_data"]
    table, chart = (o["data"] for o in out.outputs)
    assert "application/vnd.jupyter.widget-view+json" in table
    assert chart["application/vnd.plotly.v1+json"]["data"][0]["type"] == "bar"
    assert chart["application/vnd.plotly.v1+json"]["layout"]["title"]["text"] == "op types"
    show_in(out, figure)  # replaces, does not append
    assert len(out.outputs) == 1
    assert capsys.readouterr().out == ""


def test_picker_chart_is_plotly_data_inside_the_widget():
    picker = ModelPicker()
    chart = picker.summary_out.outputs[1]["data"]
    assert "digits_cnn" in chart["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]
    picker.sample_dropdown.value = "digits_transformer"
    chart = picker.summary_out.outputs[1]["data"]
    assert "digits_transformer" in chart["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]


def test_engine_explorer_warns_when_engines_share_no_nodes():
    backend = get_backend("onnxruntime")
    cnn = backend.build(sample_path("digits_cnn")).profile(
        {"input": np.load(sample_data_path("digits_cnn"))["input"][:4]}, iterations=2)
    transformer = backend.build(sample_path("digits_transformer")).profile(
        {"input": np.load(sample_data_path("digits_transformer"))["input"][:4]}, iterations=2)
    explorer = EngineExplorer({"cnn": cnn, "transformer": transformer})
    assert (explorer.compare_a.value, explorer.compare_b.value) == ("cnn", "transformer")
    from ipywidgets.widgets.widget import _instances

    assert len(explorer.compare_out.outputs) == 3  # the warning, the figure, the table
    view = explorer.compare_out.outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]
    warning = _instances[view["model_id"]].value
    assert "share no ONNX nodes" in warning and "cnn" in warning and "transformer" in warning
    assert "application/vnd.plotly.v1+json" in explorer.compare_out.outputs[1]["data"]
    explorer.compare_b.value = "cnn"
    explorer.compare_a.value = "cnn"
    assert len(explorer.compare_out.outputs) == 1  # same engine twice: a note only
