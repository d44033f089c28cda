"""The command line's bad-input contract, over every subcommand in ``cli.COMMANDS``.

Every bad input (a missing model, a folder, an empty file, a file that is not ONNX, a TensorRT
JSON export given as the model, a bad ``.npz``, numbers out of range, negative counts) exits
with code 2, prints one error line on stderr naming the problem (no traceback), and with
``--json`` prints ``{"error": ...}`` on stdout. ``--help`` works for every subcommand.

The matrix runs ``cli.main`` in process (one interpreter start per case would take minutes);
a few cases also run as real processes to check the exit code and stderr end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench import cli
from workbench.samples import sample_data_path, sample_path

REPO = Path(__file__).resolve().parents[1]
TRT_JSON = REPO.parent / "shared" / "fixtures" / "trt" / "resnet18-a100-fp32" / "engine.graph.json"
MODEL = str(sample_path("digits_cnn"))
EVAL = str(sample_data_path("digits_cnn", "eval"))
CALIB = str(sample_data_path("digits_cnn", "calib"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad")
    (root / "folder.onnx").mkdir()
    (root / "empty.onnx").write_bytes(b"")
    (root / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "text.onnx").write_text("this is not a model\n")
    (root / "bad.npz").write_bytes(b"PK not really a zip")
    np.savez(root / "wrong_name.npz", nothing=np.zeros((4, 1, 8, 8), np.float32))
    np.savez(root / "nan.npz", input=np.full((4, 1, 8, 8), np.nan, np.float32),
             labels=np.zeros(4, np.int64))
    return {
        "missing": str(root / "missing.onnx"),
        "folder": str(root / "folder.onnx"),
        "empty": str(root / "empty.onnx"),
        "not onnx": str(root / "random.onnx"),
        "text": str(root / "text.onnx"),
        "trt json": str(TRT_JSON),
        "bad npz": str(root / "bad.npz"),
        "npz without the input": str(root / "wrong_name.npz"),
        "npz with NaN": str(root / "nan.npz"),
        "out": str(root / "out.onnx"),
    }


# command -> (good arguments after the model, bad-model cases apply, [(case, argv)] of its own)
def command_cases(files: dict[str, str]) -> dict[str, tuple[list[str], bool, list[tuple[str, list[str]]]]]:
    return {
        "inspect": ([], True, []),
        "lab": ([], False, [
            ("port too large", ["lab", "--port", "99999", "--no-browser"]),
            ("port zero", ["lab", "--port", "0", "--no-browser"]),
            ("port not a number", ["lab", "--port", "x", "--no-browser"]),
        ]),
        "profile": ([], True, [
            ("negative iterations", ["profile", MODEL, "--iterations", "-1"]),
            ("zero batch", ["profile", MODEL, "--batch", "0"]),
            ("bad npz", ["profile", MODEL, "--data", files["bad npz"]]),
            ("npz without the input", ["profile", MODEL, "--data", files["npz without the input"]]),
            ("trt layers not json", ["profile", "--trt-layers", files["not onnx"]]),
            ("trt layers missing", ["profile", "--trt-layers", files["missing"]]),
            ("nothing to profile", ["profile"]),
        ]),
        "bench": ([], True, [
            ("negative warmup", ["bench", MODEL, "--warmup", "-5"]),
            ("negative duration", ["bench", MODEL, "--duration", "-1"]),
            ("zero iterations", ["bench", MODEL, "--iterations", "0"]),
            ("zero threads", ["bench", MODEL, "--threads", "0"]),
            ("npz with NaN", ["bench", MODEL, "--data", files["npz with NaN"]]),
        ]),
        "build": (["--plan-only"], True, [
            ("zero batch", ["build", MODEL, "--plan-only", "--batch", "0"]),
            ("unknown preset", ["build", MODEL, "--plan-only", "--recipe", "warp-speed"]),
            ("bad npz", ["build", MODEL, "--plan-only", "--data", files["bad npz"]]),
        ]),
        "evaluate": (["--data", EVAL], True, [
            ("bad npz", ["evaluate", MODEL, "--data", files["bad npz"]]),
            ("missing npz", ["evaluate", MODEL, "--data", files["missing"]]),
            ("npz with NaN", ["evaluate", MODEL, "--data", files["npz with NaN"]]),
            ("reference not onnx", ["evaluate", MODEL, "--data", EVAL, "--reference", files["not onnx"]]),
            ("zero batch", ["evaluate", MODEL, "--data", EVAL, "--batch", "0"]),
            ("negative limit", ["evaluate", MODEL, "--data", EVAL, "--limit", "-3"]),
        ]),
        "quantize": (["--precision", "fp16", "-o", files["out"]], True, [
            ("int8 without calibration", ["quantize", MODEL, "--precision", "int8", "-o", files["out"]]),
            ("bad calibration npz", ["quantize", MODEL, "--calib", files["bad npz"], "-o", files["out"]]),
            ("calibration with NaN", ["quantize", MODEL, "--calib", files["npz with NaN"], "-o", files["out"]]),
            ("zero samples", ["quantize", MODEL, "--calib", CALIB, "--samples", "0", "-o", files["out"]]),
            ("unknown precision", ["quantize", MODEL, "--precision", "int4", "-o", files["out"]]),
            ("unknown node excluded", ["quantize", MODEL, "--calib", CALIB, "--exclude", "no_such_node",
                                       "-o", files["out"]]),
        ]),
        "doctor": (["--calib", CALIB, "--eval", EVAL], True, [
            ("negative target drop", ["doctor", MODEL, "--calib", CALIB, "--eval", EVAL, "--target-drop", "-1"]),
            ("zero layerwise samples", ["doctor", MODEL, "--calib", CALIB, "--eval", EVAL,
                                        "--layerwise-samples", "0"]),
            ("bad calibration npz", ["doctor", MODEL, "--calib", files["bad npz"], "--eval", EVAL]),
            ("evaluation with NaN", ["doctor", MODEL, "--calib", CALIB, "--eval", files["npz with NaN"]]),
            ("scheduler address without a port", ["doctor", MODEL, "--calib", CALIB, "--eval", EVAL,
                                                  "--scheduler", "my-laptop"]),
            ("no scheduler at the address", ["doctor", MODEL, "--calib", CALIB, "--eval", EVAL,
                                             "--scheduler", "tcp://127.0.0.1:1"]),
        ]),
    }


BAD_MODELS = ("missing", "folder", "empty", "not onnx", "text", "trt json")


def all_cases(files) -> list[tuple[str, list[str]]]:
    cases = []
    table = command_cases(files)
    assert set(table) == set(cli.COMMANDS), "every subcommand needs bad-input cases here"
    for name, (good, takes_model, own) in table.items():
        if takes_model:
            cases += [(f"{name}: {bad} model", [name, files[bad], *good]) for bad in BAD_MODELS]
        cases += [(f"{name}: {case}", argv) for case, argv in own]
    return cases


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse refusals
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def check_refusal(case: str, code: int, out: str, err: str, *, json_mode: bool) -> list[str]:
    problems = []
    if code != 2:
        problems.append(f"{case}: exit {code}, expected 2 ({err.strip()[-200:]})")
    if "Traceback" in err:
        problems.append(f"{case}: traceback on stderr")
    errors = [line for line in err.splitlines() if "error:" in line]
    if len(errors) != 1:
        problems.append(f"{case}: {len(errors)} error lines on stderr: {err.strip()[-300:]!r}")
    if json_mode:
        try:
            payload = json.loads(out)
            if not (isinstance(payload, dict) and isinstance(payload.get("error"), str) and payload["error"]):
                problems.append(f"{case}: --json printed {out!r}, expected {{'error': ...}}")
        except json.JSONDecodeError:
            problems.append(f"{case}: --json stdout is not JSON: {out[:200]!r}")
    return problems


def test_every_bad_input_exits_2_with_one_line(bad_files, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "ws"))
    problems = []
    for case, argv in all_cases(bad_files):
        for json_mode in (False, True):
            code, out, err = run_main(argv + (["--json"] if json_mode else []), capsys)
            problems += check_refusal(case + (" --json" if json_mode else ""), code, out, err, json_mode=json_mode)
    assert problems == []


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_for_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: workbench {command}") and "--json" in out


@pytest.mark.parametrize("argv", [
    ["profile", str(TRT_JSON), "--json"],
    ["bench", MODEL, "--warmup", "-5", "--json"],
    ["lab", "--port", "99999", "--json"],
])
def test_real_process_refuses_in_one_line(argv):
    done = subprocess.run([sys.executable, "-m", "workbench.cli", *argv], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if "error:" in line]) == 1
    assert "error" in json.loads(done.stdout)


def test_json_given_as_the_model_points_to_trt_layers(capsys):
    code, _out, err = run_main(["profile", str(TRT_JSON)], capsys)
    assert code == 2 and "--trt-layers" in err


def test_an_unexpected_error_is_one_line_without_traceback(monkeypatch, capsys):
    def explode(args):
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.COMMANDS, "inspect", (explode, *cli.COMMANDS["inspect"][1:]))
    code, _out, err = run_main(["inspect", MODEL], capsys)
    assert code == 1 and "internal error: RuntimeError: boom" in err and "Traceback" not in err
    code, _out, err = run_main(["-v", "inspect", MODEL], capsys)
    assert code == 1 and "Traceback" in err  # -v shows it
