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
    np.savez(root / "bad_spec.npz", input=np.zeros((4, 1, 8, 8), np.float32), __spec__=np.array("{not json"))
    np.savez(root / "spec_axis_out_of_range.npz", input=np.zeros((4, 1, 8, 8), np.float32),
             __spec__=np.array('{"sample_axes": {"input": 7}}'))
    _dynamic_model(root / "dynamic.onnx")
    (root / "model_copy.onnx").write_bytes(Path(MODEL).read_bytes())  # for cases that must never write it
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
        "bad spec": str(root / "bad_spec.npz"),
        "spec axis out of range": str(root / "spec_axis_out_of_range.npz"),
        "dynamic": str(root / "dynamic.onnx"),
        "model copy": str(root / "model_copy.onnx"),
    }


def _dynamic_model(path) -> None:
    """A Conv over images of any height and width: random inputs cannot be made without --shapes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "dynamic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, "H2", "W2"])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


# command -> (good arguments after the model, bad-model cases apply, [(case, argv)] of its own)
def command_cases(files: dict[str, str]) -> dict[str, tuple[list[str], bool, list[tuple[str, list[str]]]]]:
    plans = Path(files["out"]).parent
    (plans / "unknown_key.yaml").write_text(f"model: {MODEL}\nevaluation: {EVAL}\nvariants: [{{precision: fp16}}]\n"
                                            "colour: blue\n")
    (plans / "not_yaml.yaml").write_text("model: [unclosed\n")
    (plans / "missing_model.yaml").write_text(f"model: nowhere.onnx\nevaluation: {EVAL}\n"
                                              "variants: [{precision: fp16}]\n")
    (plans / "repo_file").write_text("not a folder")
    good_plan = f"model: {MODEL}\nevaluation: {EVAL}\nvariants: [{{precision: fp16}}]\n"
    (plans / "good.yaml").write_text(good_plan)
    (plans / "scheduler_not_an_address.yaml").write_text(good_plan + "scheduler: my-laptop\n")
    (plans / "scheduler_unreachable.yaml").write_text(good_plan + "scheduler: tcp://127.0.0.1:1\n")
    repo = str(plans / "repo")
    export = [(f"{bad} model", ["export", "triton", files[bad], "--repository", repo]) for bad in BAD_MODELS]
    return {
        "inspect": ([], True, []),
        "run": ([], False, [
            ("missing plan", ["run", files["missing"]]),
            ("plan is a folder", ["run", files["folder"]]),
            ("empty plan", ["run", files["empty"]]),
            ("plan not YAML", ["run", str(plans / "not_yaml.yaml")]),
            ("unknown plan key", ["run", str(plans / "unknown_key.yaml")]),
            ("plan's model missing", ["run", str(plans / "missing_model.yaml")]),
            ("plan's scheduler not an address", ["run", str(plans / "scheduler_not_an_address.yaml")]),
            ("plan's scheduler unreachable", ["run", str(plans / "scheduler_unreachable.yaml")]),
            ("--scheduler not an address", ["run", str(plans / "good.yaml"), "--scheduler", "my-laptop"]),
            ("--scheduler unreachable", ["run", str(plans / "good.yaml"), "--scheduler", "tcp://127.0.0.1:1"]),
        ]),
        "plan": ([], False, [
            ("check a missing plan", ["plan", "check", files["missing"]]),
            ("check an unknown key", ["plan", "check", str(plans / "unknown_key.yaml")]),
            ("unknown action", ["plan", "run", str(plans / "unknown_key.yaml")]),
        ]),
        "export": ([], False, export + [
            ("unknown target", ["export", "tfserving", MODEL, "--repository", repo]),
            ("zero instances", ["export", "triton", MODEL, "--repository", repo, "--instances", "0"]),
            ("version zero", ["export", "triton", MODEL, "--repository", repo, "--version", "0"]),
            ("negative max batch", ["export", "triton", MODEL, "--repository", repo, "--max-batch-size", "-1"]),
            ("repository is a file", ["export", "triton", MODEL, "--repository", str(plans / "repo_file")]),
            ("warm-up npz unreadable", ["export", "triton", MODEL, "--repository", repo, "--warmup",
                                        files["bad npz"]]),
        ]),
        "serve": ([], False, [
            ("missing repository", ["serve", files["missing"]]),
            ("repository is a file", ["serve", str(plans / "repo_file")]),
            ("port too large", ["serve", repo, "--port", "70000"]),
            ("negative timeout", ["serve", repo, "--timeout", "-3"]),
        ]),
        "perf": ([], False, [
            ("not a url", ["perf", "::::", "--model", "m"]),
            ("zero concurrency", ["perf", "http://127.0.0.1:8000", "--model", "m", "--concurrency", "0"]),
            ("zero batch", ["perf", "http://127.0.0.1:8000", "--model", "m", "--batch", "0"]),
            ("negative duration", ["perf", "http://127.0.0.1:8000", "--model", "m", "--duration", "-2"]),
            ("perf_analyzer csv missing", ["perf", "http://127.0.0.1:8000", "--model", "m", "--import-csv",
                                           files["missing"]]),
        ]),
        "lab": ([], False, [
            ("port too large", ["lab", "--port", "99999", "--no-browser"]),
            ("port zero", ["lab", "--port", "0", "--no-browser"]),
            ("port not a number", ["lab", "--port", "x", "--no-browser"]),
        ]),
        "app": ([], False, [
            ("unknown app", ["app", "notebook", "--no-browser"]),
            ("no app named", ["app", "--no-browser"]),
            ("port too large", ["app", "doctor", "--port", "70000", "--no-browser"]),
            ("port zero", ["app", "tradeoffs", "--port", "0", "--no-browser"]),
            ("port not a number", ["app", "doctor", "--port", "x", "--no-browser"]),
        ]),
        "profile": ([], True, [
            ("negative iterations", ["profile", MODEL, "--iterations", "-1"]),
            ("zero batch", ["profile", MODEL, "--batch", "0"]),
            ("bad npz", ["profile", MODEL, "--data", files["bad npz"]]),
            ("npz without the input", ["profile", MODEL, "--data", files["npz without the input"]]),
            ("trt layers not json", ["profile", "--trt-layers", files["not onnx"]]),
            ("trt layers missing", ["profile", "--trt-layers", files["missing"]]),
            ("nothing to profile", ["profile"]),
            ("dynamic dims without data", ["profile", files["dynamic"]]),
            ("shapes of an unknown input", ["profile", MODEL, "--shapes", "nope:1x1x8x8"]),
            ("npz with a bad __spec__", ["profile", MODEL, "--data", files["bad spec"]]),
        ]),
        "bench": ([], True, [
            ("negative warmup", ["bench", MODEL, "--warmup", "-5"]),
            ("negative duration", ["bench", MODEL, "--duration", "-1"]),
            ("zero iterations", ["bench", MODEL, "--iterations", "0"]),
            ("zero threads", ["bench", MODEL, "--threads", "0"]),
            ("npz with NaN", ["bench", MODEL, "--data", files["npz with NaN"]]),
            ("dynamic dims without data", ["bench", files["dynamic"]]),
            ("shapes not a spec", ["bench", MODEL, "--shapes", "input"]),
            ("shapes with a zero dim", ["bench", MODEL, "--shapes", "input:0x1x8x8"]),
            ("shapes of the wrong rank", ["bench", MODEL, "--shapes", "input:1x1x8"]),
            ("shapes against a fixed dim", ["bench", MODEL, "--shapes", "input:1x3x8x8"]),
            ("shapes and data", ["bench", MODEL, "--shapes", "input:1x1x8x8", "--data", EVAL]),
            ("sample axis out of range", ["bench", MODEL, "--data", files["spec axis out of range"]]),
            ("zero batch with shapes", ["bench", files["dynamic"], "--shapes", "x:1x3x4x4",
                                        "--batch", "0"]),
        ]),
        "build": (["--plan-only"], True, [
            ("zero batch", ["build", MODEL, "--plan-only", "--batch", "0"]),
            ("unknown preset", ["build", MODEL, "--plan-only", "--recipe", "warp-speed"]),
            ("bad npz", ["build", MODEL, "--plan-only", "--data", files["bad npz"]]),
            ("dynamic dims without data", ["build", files["dynamic"], "--plan-only"]),
            ("shapes and data", ["build", files["dynamic"], "--plan-only", "--shapes", "x:1x3x4x4",
                                 "--data", EVAL]),
            ("shapes not a spec", ["build", files["dynamic"], "--plan-only", "--shapes", "x"]),
            ("shapes against a fixed dim", ["build", files["dynamic"], "--plan-only", "--shapes", "x:1x4x4x4"]),
        ]),
        "evaluate": (["--data", EVAL], True, [
            ("bad npz", ["evaluate", MODEL, "--data", files["bad npz"]]),
            ("missing npz", ["evaluate", MODEL, "--data", files["missing"]]),
            ("npz with NaN", ["evaluate", MODEL, "--data", files["npz with NaN"]]),
            ("reference not onnx", ["evaluate", MODEL, "--data", EVAL, "--reference", files["not onnx"]]),
            ("zero batch", ["evaluate", MODEL, "--data", EVAL, "--batch", "0"]),
            ("negative limit", ["evaluate", MODEL, "--data", EVAL, "--limit", "-3"]),
            ("unknown metric", ["evaluate", MODEL, "--data", EVAL, "--metric", "top2"]),
            ("user metric that cannot be imported", ["evaluate", MODEL, "--data", EVAL, "--metric",
                                                     "python:no_such_module_for_metrics:score"]),
            ("user metric spec without a function", ["evaluate", MODEL, "--data", EVAL, "--metric", "python:score"]),
            ("reference metric without a reference", ["evaluate", MODEL, "--data", EVAL, "--metric", "sqnr"]),
            ("tolerance without a reference", ["evaluate", MODEL, "--data", EVAL, "--atol", "0.1"]),
            ("negative atol", ["evaluate", MODEL, "--data", EVAL, "--reference", MODEL, "--atol", "-1"]),
            ("target and target drop", ["evaluate", MODEL, "--data", EVAL, "--target", "90", "--target-drop", "1"]),
            ("target not a number", ["evaluate", MODEL, "--data", EVAL, "--target", "high"]),
            ("drop from an infinite sqnr", ["evaluate", MODEL, "--data", EVAL, "--reference", MODEL, "--metric",
                                            "sqnr", "--target-drop", "1"]),
        ]),
        "quantize": (["--precision", "fp16", "-o", files["out"]], True, [
            ("int8 without calibration", ["quantize", MODEL, "--precision", "int8", "-o", files["out"]]),
            ("bad calibration npz", ["quantize", MODEL, "--calib", files["bad npz"], "-o", files["out"]]),
            ("calibration with NaN", ["quantize", MODEL, "--calib", files["npz with NaN"], "-o", files["out"]]),
            ("zero samples", ["quantize", MODEL, "--calib", CALIB, "--samples", "0", "-o", files["out"]]),
            ("unknown precision", ["quantize", MODEL, "--precision", "int4", "-o", files["out"]]),
            ("unknown node excluded", ["quantize", MODEL, "--calib", CALIB, "--exclude", "no_such_node",
                                       "-o", files["out"]]),
            ("zero bins", ["quantize", MODEL, "--calib", CALIB, "--method", "entropy", "--num-bins", "0",
                           "-o", files["out"]]),
            ("bins for minmax", ["quantize", MODEL, "--calib", CALIB, "--num-bins", "2048", "-o", files["out"]]),
            ("bins below entropy's quantized bins", ["quantize", MODEL, "--calib", CALIB, "--method", "entropy",
                                                     "--num-bins", "64", "-o", files["out"]]),
            ("percentile above 100", ["quantize", MODEL, "--calib", CALIB, "--method", "percentile",
                                      "--percentile", "101", "-o", files["out"]]),
            ("percentile for entropy", ["quantize", MODEL, "--calib", CALIB, "--method", "entropy",
                                        "--percentile", "99.9", "-o", files["out"]]),
            ("output over the input model", ["quantize", files["model copy"], "--precision", "fp16",
                                             "-o", files["model copy"], "--force"]),
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
            ("unknown metric", ["doctor", MODEL, "--calib", CALIB, "--eval", EVAL, "--metric", "top2"]),
            ("user metric that cannot be imported", ["doctor", MODEL, "--calib", CALIB, "--eval", EVAL, "--metric",
                                                     "python:no_such_module_for_metrics:score"]),
            ("drop from an infinite sqnr", ["doctor", MODEL, "--calib", CALIB, "--eval", EVAL, "--metric", "sqnr",
                                            "--target-drop", "1"]),
            ("target and target drop", ["doctor", MODEL, "--calib", CALIB, "--eval", EVAL, "--target", "99",
                                        "--target-drop", "1"]),
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
    assert problems == [], "\n".join(problems)


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
    ["app", "doctor", "--port", "99999", "--json"],
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
