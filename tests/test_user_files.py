"""Never touch a user's file (issue 16), over every command that reads a model.

For each command: the input model's bytes and modification time, and every other file in the
user's folder, are unchanged afterwards, and the only new files there are the ones the command
says it wrote (``quantize -o``: the variant, its record and its ORT-CPU emulation). For each file
``quantize`` writes, a user file already at that path is refused without ``--force`` (exit 2)
and left byte-identical, and nothing else is written. The workspace (``WORKBENCH_WORKSPACE``) is
the workbench's own folder and lies outside the user's.

ModelOpt's run on a copy is checked in ``tests/modelopt/`` (its own venv).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from workbench import cli
from workbench.samples import sample_data_path, sample_path

QUANTIZE = {  # label -> quantize arguments after the model
    "fp32": ["--precision", "fp32"],
    "fp16": ["--precision", "fp16"],
    "fp16 calibrated": ["--precision", "fp16", "--calib", "{calib}"],
    "bf16": ["--precision", "bf16"],
    "int8": ["--precision", "int8", "--calib", "{calib}", "--tool", "onnxruntime"],
    "int8 percentile": ["--precision", "int8", "--calib", "{calib}", "--method", "percentile", "--tool",
                        "onnxruntime"],
    "fp8": ["--precision", "fp8", "--calib", "{calib}", "--tool", "onnxruntime"],
}

READERS = {  # label -> arguments after the model, for commands that write nothing beside it
    "inspect": ["inspect"],
    "profile": ["profile", "--iterations", "2"],
    "bench": ["bench", "--iterations", "3", "--warmup", "1"],
    "build --plan-only": ["build", "--plan-only"],
    "evaluate": ["evaluate", "--data", "{eval}"],
    "evaluate with a reference": ["evaluate", "--data", "{eval}", "--reference", "{model}"],
    "doctor": ["doctor", "--calib", "{calib}", "--eval", "{eval}", "--no-latency", "--layerwise-samples", "32"],
}


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user's folder holding a model and its data, and a workspace of the workbench's elsewhere."""
    folder = tmp_path / "user"
    folder.mkdir()
    files = {"model": folder / "model.onnx", "calib": folder / "calib.npz", "eval": folder / "eval.npz"}
    shutil.copyfile(sample_path("digits_cnn"), files["model"])
    shutil.copyfile(sample_data_path("digits_cnn", "calib"), files["calib"])
    shutil.copyfile(sample_data_path("digits_cnn", "eval"), files["eval"])
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    return folder, {k: str(v) for k, v in files.items()}


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file in ``folder`` (recursively): sha256 and modification time in ns."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def fill(args, files) -> list[str]:
    return [a.format(**files) for a in args]


@pytest.mark.parametrize("label", sorted(READERS))
def test_commands_that_read_a_model_leave_the_users_folder_as_it_was(label, user, capsys):
    folder, files = user
    command, *rest = READERS[label]
    before = snapshot(folder)
    code, out, err = run([command, files["model"], *fill(rest, files), "--json"], capsys)
    assert code == 0, err
    json.loads(out)
    assert snapshot(folder) == before  # same files, same bytes, same mtimes: nothing beside the model either


def outputs_of(result: dict) -> set[str]:
    return {Path(p).name for p in (result["output"], result["record"], result["emulation"]) if p}


@pytest.mark.parametrize("label", sorted(QUANTIZE))
def test_quantize_writes_only_what_it_says_and_refuses_every_taken_path(label, user, capsys):
    folder, files = user
    args = fill(QUANTIZE[label], files)
    before = snapshot(folder)
    code, out, err = run(["quantize", files["model"], *args, "-o", folder / "variant.onnx", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    written = outputs_of(result)
    assert {"variant.onnx", "variant.json"} <= written
    if label == "bf16":
        assert "variant.ort-emulation.onnx" in written
    after = snapshot(folder)
    assert set(after) == set(before) | written
    assert {k: v for k, v in after.items() if k in before} == before  # the model and the data untouched
    # the same command to a new name, with a user's file already at one of the paths it writes
    for taken in sorted(written):
        target = folder / "again" / taken.replace("variant", "mine")
        target.parent.mkdir(exist_ok=True)
        mine = b"the user's own file, not a model"
        target.write_bytes(mine)
        state = snapshot(folder)
        code, out, err = run(["quantize", files["model"], *args, "-o", folder / "again" / "mine.onnx", "--json"],
                             capsys)
        assert code == 2, f"{taken}: {err}"
        assert "does not overwrite" in json.loads(out)["error"] and target.name in json.loads(out)["error"]
        assert snapshot(folder) == state  # the user's file byte-identical, nothing else written
        target.unlink()


def test_quantize_force_replaces_exactly_the_files_it_names(user, capsys):
    folder, files = user
    out = folder / "x.onnx"
    emulation = folder / "x.ort-emulation.onnx"
    emulation.write_bytes(b"precious")
    code, _out, _err = run(["quantize", files["model"], "--precision", "bf16", "-o", out, "--json"], capsys)
    assert code == 2 and emulation.read_bytes() == b"precious" and not out.exists()
    code, stdout, err = run(["quantize", files["model"], "--precision", "bf16", "-o", out, "--force", "--json"],
                            capsys)
    assert code == 0, err
    assert json.loads(stdout)["emulation"] == str(emulation) and emulation.read_bytes() != b"precious"


def test_quantize_never_writes_over_its_input_even_with_force(user, capsys):
    folder, files = user
    before = snapshot(folder)
    code, out, _err = run(["quantize", files["model"], "--precision", "fp16", "-o", files["model"], "--force",
                           "--json"], capsys)
    assert code == 2 and "is the input model" in json.loads(out)["error"]
    assert snapshot(folder) == before
