"""The model picker with a model that is not a sample: its data, the steps that follow it, uploads
in pieces (big, too big, not ONNX), Netron following it, and the server's websocket limit."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from jupyter_server.serverapp import ServerApp
from test_model_traits import stateful
from tiny_models import CLASSES, tiny_classifier

from workbench.datasets import load_data, save_npz
from workbench.lab import WEBSOCKET_MAX_MESSAGE_BYTES, lab_command
from workbench.samples import sample_path
from workbench.tables import ResultsTable
from workbench.views.model_picker import ModelPicker
from workbench.views.netron_view import netron_view
from workbench.views.picked_steps import fusion_picked, tradeoff_picked
from workbench.views.upload import MB
from workbench.workflows.picked import (
    check_picked,
    describe_picked,
    doctor_picked,
    precision_picked,
    tradeoff_rows,
)


@pytest.fixture(autouse=True)
def _workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


@pytest.fixture
def tiny(tmp_path):
    return tiny_classifier(tmp_path / "tiny.onnx")


def _labelled_npz(path, model_path, count=40, seed=1):
    """Inputs for the tiny model and labels that match its own predictions on all but 3."""
    pixels = np.random.default_rng(seed).standard_normal((count, 3, 8, 8)).astype(np.float32)
    scores = ort.InferenceSession(str(model_path)).run(None, {"pixels": pixels})[0]
    labels = scores.argmax(axis=1)
    labels[:3] = (labels[:3] + 1) % CLASSES
    save_npz(path, {"pixels": pixels}, labels)
    return path, labels, scores


def test_a_model_without_data_runs_on_random_inputs_and_says_so(tiny):
    picker = ModelPicker()
    picker.path_box.value = str(tiny)
    assert picker.model.name == "tiny" and picker.picked.data.synthetic
    assert picker.sample_dropdown.value is None  # the Sample menu no longer names another model
    assert picker.picked.data.inputs["pixels"].shape == (32, 3, 8, 8)
    assert "random samples" in picker.data_status.value and "wb-synthetic" in picker.data_status.value
    described = describe_picked(picker.picked)
    assert "pixels ['n', 3, 8, 8]" in described and "scores ['n', 5]" in described  # names from the model
    checked = check_picked(picker.picked)
    assert checked.startswith("No labels, so no accuracy: on 32 random samples")
    assert "scores [1, 5]" in checked and "agreement 100 %" in checked


def test_picked_data_with_labels_gives_top1(tiny, tmp_path):
    npz, labels, scores = _labelled_npz(tmp_path / "mine.npz", tiny)
    picker = ModelPicker()
    picker.path_box.value = str(tiny)
    picker.data_box.value = str(npz)
    assert not picker.picked.data.synthetic and picker.picked.data.num_samples == 40
    assert "40 samples from mine.npz, with labels" in picker.data_status.value
    expected = (scores.argmax(axis=1) == labels).mean()  # 37 of 40
    assert check_picked(picker.picked) == f"top-1 accuracy on 40 held-out samples: {expected:.2%}"


def test_data_that_does_not_fit_is_refused_and_left_on_a_model_change(tiny, tmp_path):
    npz, _, _ = _labelled_npz(tmp_path / "mine.npz", tiny)
    picker = ModelPicker()  # digits_cnn: its input is 'input', not 'pixels'
    assert not picker.load_data(npz)
    assert "wb-error" in picker.data_status.value and "pixels" in picker.data_status.value
    assert picker.picked.data.num_samples == 360  # the sample's own data stays
    picker.path_box.value = str(tiny)
    assert picker.load_data(npz) and picker.picked.data.num_samples == 40
    picker.sample_dropdown.value = "digits_transformer"  # the tiny model's data does not fit it
    assert picker.model.name == "digits_transformer" and picker.picked.data.num_samples == 360
    assert "does not fit this model" in picker.data_status.value


def test_steps_follow_the_picker_in_place(tiny):
    InteractiveShell.instance()
    picker = ModelPicker()
    seen = []

    def step(picked):
        seen.append(picked.name)
        return check_picked(picked), describe_picked(picked)

    with capture_output() as captured:
        picker.follow(step)
        picker.path_box.value = str(tiny)
    first, updates = captured.outputs[:2], captured.outputs[2:]
    assert seen == ["digits_cnn", "tiny"]
    assert "top-1 accuracy on 360 held-out digits" in first[0].data["text/plain"]
    # the second run replaced the first run's two outputs (same display ids), nothing added
    assert [o.update for o in updates] == [True, True]
    assert [o.transient["display_id"] for o in updates] == [o.transient["display_id"] for o in first]
    assert updates[0].data["text/plain"].startswith("No labels") and "tiny:" in updates[1].data["text/plain"]


def test_a_failing_step_shows_an_error_box_when_it_reruns(tiny):
    InteractiveShell.instance()
    picker = ModelPicker()

    def step(picked):
        if picked.name == "tiny":
            raise ValueError("this step only knows the samples")
        return describe_picked(picked)

    with capture_output() as captured:
        picker.follow(step)
        picker.path_box.value = str(tiny)
    (update,) = captured.outputs[1:]
    assert update.update and "wb-error" in update.data["text/html"]
    assert "tiny: this step only knows the samples" in update.data["text/html"]


# ------------------------------------------------------------------------------ uploads


def _upload(widget, name, content, chunk=4 * MB):
    """Drive the upload protocol as the browser does: start, then each piece at its offset, then end."""
    widget._on_msg(widget, {"event": "start", "name": name, "size": len(content)}, [])
    if widget._part is None:
        return
    for offset in range(0, len(content), chunk):
        widget._on_msg(widget, {"event": "chunk", "offset": offset}, [memoryview(content[offset:offset + chunk])])
    widget._on_msg(widget, {"event": "end"}, [])


def test_a_big_upload_arrives_in_pieces_and_loads(tmp_path, _workspace):
    big = tiny_classifier(tmp_path / "big.onnx", extra_bytes=30 * MB)
    content = big.read_bytes()
    picker = ModelPicker(sample=None)
    _upload(picker.upload, "big.onnx", content)
    assert picker.model is not None and picker.model.path == _workspace / "uploads" / "big.onnx"
    assert picker.model.path.read_bytes() == content
    assert sorted(p.name for p in (_workspace / "uploads").iterdir()) == ["big.onnx"]  # no .part left
    _upload(picker.upload, "big.onnx", content)  # the same name again: saved beside, never overwritten
    assert picker.model.path.name == "big-2.onnx"
    assert picker.upload.note == "uploaded big-2.onnx (30.0 MB)"


def test_a_too_large_upload_is_refused_before_it_starts(tmp_path, _workspace):
    picker = ModelPicker()
    picker.upload.max_bytes = 1 * MB
    content = sample_path("digits_cnn").read_bytes() * 40
    _upload(picker.upload, "huge.onnx", content)
    assert "wb-error" in picker.status.value and "uploads stop at 1 MB" in picker.status.value
    assert picker.model.name == "digits_cnn"
    assert list((_workspace / "uploads").glob("*")) == []


@pytest.mark.parametrize(("name", "content", "says"), [
    ("notes.onnx", b"these are my notes, not a model", "notes.onnx"),
    ("notes.txt", b"these are my notes", "only .onnx files"),
])
def test_a_non_onnx_upload_is_refused_and_removed(name, content, says, _workspace):
    picker = ModelPicker()
    _upload(picker.upload, name, content)
    assert "wb-error" in picker.status.value and says in picker.status.value
    assert "uploaded" not in picker.upload.note  # the button's note does not say it worked
    assert "digits_cnn.onnx stays loaded" in picker.status.value or says == "only .onnx files"
    assert "Traceback" not in picker.status.value
    assert picker.model.name == "digits_cnn"
    assert list((_workspace / "uploads").glob("*")) == []


def test_pieces_out_of_order_are_refused(_workspace):
    picker = ModelPicker()
    widget = picker.upload
    widget._on_msg(widget, {"event": "start", "name": "m.onnx", "size": 10}, [])
    widget._on_msg(widget, {"event": "chunk", "offset": 5}, [memoryview(b"12345")])
    assert "out of order" in picker.status.value and list((_workspace / "uploads").glob("*")) == []


def test_a_data_upload_that_does_not_fit_is_removed(tiny, tmp_path, _workspace):
    npz, _, _ = _labelled_npz(tmp_path / "mine.npz", tiny)
    picker = ModelPicker()  # digits_cnn takes 'input'
    _upload(picker.data_upload, "mine.npz", npz.read_bytes())
    assert "wb-error" in picker.data_status.value and "removed" in picker.data_status.value
    assert list((_workspace / "uploads").glob("*")) == []
    picker.path_box.value = str(tiny)
    _upload(picker.data_upload, "mine.npz", npz.read_bytes())
    assert picker.picked.data.num_samples == 40 and (_workspace / "uploads" / "mine.npz").is_file()


# ------------------------------------------------------------------------------ Netron, server


def test_netron_follows_the_picker(tiny):
    picker = ModelPicker()
    view = netron_view(picker)
    first = view.server
    try:
        assert first.model_path == sample_path("digits_cnn") and first.running
        picker.path_box.value = str(tiny)
        assert view.server.model_path == tiny and view.server.running and not first.running
        assert f"/proxy/{view.server.port}/" in view.children[1].value and "tiny.onnx" in view.children[0].children[1].value
    finally:
        view.close()
    assert not view.server.running


@pytest.mark.filterwarnings("ignore:--tornado_settings=:DeprecationWarning")  # the literal keeps the int
def test_the_lab_takes_websocket_messages_of_512_mb():
    argv = lab_command(ip="127.0.0.1", port=8888, open_browser=False, notebook="00_tour.ipynb", token="t")
    app = ServerApp()
    app.parse_command_line([a for a in argv if a.startswith("--ServerApp.tornado_settings")])
    assert app.tornado_settings["websocket_max_message_size"] == WEBSOCKET_MAX_MESSAGE_BYTES == 512 * MB


def test_an_empty_picker_reserves_places_and_fills_them_when_a_model_is_picked(tiny):
    """Notebook 02's own-model section: the picker starts empty; the variants' table follows it."""
    InteractiveShell.instance()
    picker = ModelPicker(sample=None)
    with capture_output() as captured:
        picker.follow(precision_picked, outputs=2)
        picker.path_box.value = str(tiny)
    first, updates = captured.outputs[:2], captured.outputs[2:]
    assert "Pick a model above" in first[0].data["text/html"] and first[1].data == {"text/html": ""}
    assert [o.transient["display_id"] for o in updates] == [o.transient["display_id"] for o in first]
    note, table = updates[0].data["text/plain"], updates[1].data["text/html"]
    assert note.startswith("tiny: fp32, fp16, bf16, int8 on 32 samples of random inputs (synthetic); no labels")
    assert "top1_agreement" in table and "int8" in table


def test_precision_of_a_model_without_labels_is_judged_against_fp32(tiny, tmp_path):
    npz, _, _ = _labelled_npz(tmp_path / "mine.npz", tiny)
    unlabelled = tmp_path / "unlabelled.npz"
    save_npz(unlabelled, {"pixels": np.load(npz)["pixels"]})
    picker = ModelPicker()
    picker.path_box.value = str(tiny)
    picker.data_box.value = str(unlabelled)
    note, table = precision_picked(picker.picked, ("fp16", "int8"))
    assert "40 samples of the picked data; no labels" in note
    table = table.set_index("variant")
    assert table["top1"].isna().all() and table.loc["fp32", "top1_agreement"] == 1.0
    assert table.loc["fp16", "top1_agreement"] >= 0.9 and table.loc["int8", "min_sqnr_db"] < table.loc["fp16", "min_sqnr_db"]
    assert set(table["metric"]) == {"agreement"}


def test_the_own_model_steps_of_notebooks_03_to_05_run_on_a_model_without_labels(tiny, _workspace):
    picker = ModelPicker(sample=None)
    picker.path_box.value = str(tiny)
    summary, bars = fusion_picked(picker.picked)
    assert summary.index.tolist() == ["tiny"] and summary.loc["tiny", "nodes"] == 5
    assert bars.layout.title.text.startswith("Time per layer, ONNX Runtime CPU (5 of 5 layers")
    text, culprits = doctor_picked(picker.picked)
    assert text.startswith("On random inputs (no data picked)") and "agreement" in text
    assert set(culprits["node"]) <= {"conv", "relu", "pool", "flatten", "fc"}
    table = ResultsTable(_workspace / "results.jsonl")
    figure = tradeoff_picked(picker.picked, ("fp32", "int8"), table=table)
    assert figure.layout.title.text.startswith("tiny") and "agreement" in figure.layout.yaxis.title.text
    assert sorted(table.frame()["variant"]) == ["fp32", "int8-minmax-all"]
    assert set(table.frame()["metric"]) == {"agreement"}


def test_steps_keep_the_data_description_of_a_state_input(tmp_path, _workspace):
    """A state whose samples run along axis 1 (and a scalar fed as it is) reach calibration and the
    sweep cut along the described axes, not along axis 0."""
    model = tmp_path / "vad.onnx"
    stateful(model)
    rng = np.random.default_rng(0)
    data = save_npz(tmp_path / "vad.npz", {"audio": rng.standard_normal((40, 16)).astype(np.float32),
                                           "sr": np.array(16000, np.int64),
                                           "state": rng.standard_normal((2, 40, 8)).astype(np.float32)},
                    sample_axes={"state": 1})
    picker = ModelPicker(sample=None)
    picker.path_box.value = str(model)
    picker.data_box.value = str(data)
    calib = load_data(picker.picked.data.calibration(8))
    assert calib.sample_axes == {"audio": 0, "sr": None, "state": 1} and calib.inputs["state"].shape == (2, 8, 8)
    note, table = precision_picked(picker.picked, ("int8",))
    assert "40 samples of the picked data" in note and set(table["variant"]) == {"fp32", "int8"}
    rows = tradeoff_rows(picker.picked, ("fp32", "int8"), iterations=3)
    assert [r["samples"] for r in rows] == [40, 40] and all(r.get("error") is None for r in rows)
