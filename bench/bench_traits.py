"""Every command on small models with the traits real models bring (issue 11), as the README's table.

The models are the suite's own (``tests/precision_traits.py`` and ``tests/test_model_traits.py``
build them with ``onnx.helper``), one per trait: an opset-10 export with its initializers listed
as graph inputs, weights in Constant nodes, an If whose branches hold the weights, a scalar input
and a recurrent state (samples on axis 1, said in the data's ``__spec__``), an int32 input
one-hot encoded with a Cast, a model ONNX Runtime already quantized dynamically, unnamed nodes,
and a dynamic width. Each command runs through the command line (``workbench.cli.main``, in
this process) on random data made for the model:

``inspect``; ``profile`` without data and with it; ``quantize`` FP16 and INT8 (calibrated);
``evaluate`` of the INT8 variant against the model (SQNR); the ``doctor`` (SQNR, no latency).

Per trait and command it records the outcome: ``ok``, ``valid variant`` (the file passes
``onnx.checker``'s full check and loads in ONNX Runtime), ``refused`` (exit 2, with its one-line
message), or a failure (exit 1, a traceback, or an invalid variant written with exit 0: the
things that must never happen). Prints a markdown table and writes ``bench/results/traits.json``,
from which ``bench/readme_tables.py`` makes the README's "traits handled" block.

    python bench/bench_traits.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "tests"), str(REPO)]
import precision_traits  # noqa: E402  (tests/precision_traits.py)
import test_model_traits  # noqa: E402  (tests/test_model_traits.py: stateful)
from bench_real_models import check_variant  # noqa: E402
from machine import machine_info  # noqa: E402

from workbench import cli  # noqa: E402
from workbench.datasets import save_npz  # noqa: E402

RESULTS = HERE / "results"
COMMANDS = ("inspect", "profile_nodata", "profile", "quantize_fp16", "quantize_int8", "evaluate_int8", "doctor")
TRAITS = {  # name -> what the README calls it
    "opset10_initializer_inputs": "opset 10, initializers listed as graph inputs",
    "constant_weights": "weights in Constant nodes",
    "if_weights": "If with the weights inside its branches",
    "scalar_and_state": "scalar input and a state with samples on axis 1",
    "int32_onehot": "int32 input, one-hot Cast",
    "dynamically_quantized": "dynamically quantized model",
    "unnamed_nodes": "unnamed nodes",
    "dynamic_width": "dynamic width",
}


def dynamic_width() -> onnx.ModelProto:
    """Conv -> Relu -> GlobalAveragePool -> Flatten on ``x`` [N, 3, 16, width] (a text-line reader)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["y"], name="flatten")]
    graph = helper.make_graph(nodes, "line", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, "width"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def build(name: str, folder: Path) -> tuple[Path, Path, Path]:
    """The trait's model, calibration and evaluation files in ``folder``."""
    path = folder / f"{name}.onnx"
    axes = {}
    if name == "scalar_and_state":
        test_model_traits.stateful(path)
        model = onnx.load(str(path))
        rng = np.random.default_rng(1)
        data = [{"audio": rng.standard_normal((n, 16)).astype(np.float32), "sr": np.array(16000, np.int64),
                 "state": rng.standard_normal((2, n, 8)).astype(np.float32)} for n in (32, 48)]
        axes = {"state": 1, "sr": None}
    else:
        model = {
            "opset10_initializer_inputs": lambda: precision_traits.cnn(10, initializers_as_inputs=True),
            "constant_weights": lambda: precision_traits.cnn(13, constant_weights=True),
            "if_weights": precision_traits.if_weights,
            "int32_onehot": precision_traits.int32_onehot,
            "dynamically_quantized": lambda: precision_traits.dynamically_quantized(folder / "dq"),
            "unnamed_nodes": lambda: precision_traits.cnn(13, unnamed=True),
            "dynamic_width": dynamic_width,
        }[name]()
        onnx.save(model, str(path))
        data = [precision_traits.calibration_for(model, n, seed=s) for n, s in ((32, 1), (48, 2))]
        axes = {k: None for k, v in data[0].items() if np.ndim(v) == 0}
    calib = save_npz(folder / f"{name}.calib.npz", data[0], sample_axes=axes or None)
    evals = save_npz(folder / f"{name}.eval.npz", data[1], sample_axes=axes or None)
    return path, Path(calib), Path(evals)


def argvs(model: Path, calib: Path, evals: Path, out: Path) -> dict[str, list[str]]:
    m, c, e = str(model), str(calib), str(evals)
    return {
        "inspect": ["inspect", m, "--json"],
        "profile_nodata": ["profile", m, "--iterations", "2", "--json"],
        "profile": ["profile", m, "--data", e, "--iterations", "2", "--json"],
        "quantize_fp16": ["quantize", m, "--precision", "fp16", "--calib", c, "-o", str(out / "fp16.onnx"), "--json"],
        "quantize_int8": ["quantize", m, "--precision", "int8", "--calib", c, "-o", str(out / "int8.onnx"), "--json"],
        "evaluate_int8": ["evaluate", str(out / "int8.onnx"), "--data", e, "--reference", m, "--metric", "sqnr",
                          "--json"],
        "doctor": ["doctor", m, "--calib", c, "--eval", e, "--metric", "sqnr", "--no-latency", "--json"],
    }


def run(argv: list[str]) -> dict:
    """One command in this process: exit code, seconds, the one-line error, a traceback if any."""
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    crashed = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as stop:
            code = stop.code
        except Exception:  # noqa: BLE001 - an escaped exception is the finding
            code, crashed = 1, traceback.format_exc()
    stderr = err.getvalue()
    errors = [line.split("error:", 1)[1].strip() for line in stderr.splitlines() if "error:" in line]
    try:
        data = json.loads(out.getvalue()) if out.getvalue().strip() else None
    except ValueError:
        data = None
    message = (data or {}).get("error") if isinstance(data, dict) else None
    return {"argv": ["workbench", *argv[:1]], "exit_code": code, "seconds": round(time.monotonic() - started, 2),
            "traceback": bool(crashed) or "Traceback (most recent call last)" in stderr,
            "error": message or (errors[0] if errors else None), "error_lines": len(errors),
            "json": data if code == 0 else None}


def outcome(command: str, result: dict, variant: Path | None) -> str:
    """``ok``, ``valid variant``, ``refused``, or what went wrong."""
    if result["traceback"]:
        return "TRACEBACK"
    if result["exit_code"] == 2:
        return "refused" if result["error_lines"] == 1 else "refused, not in one line"
    if result["exit_code"] != 0:
        return f"FAIL (exit {result['exit_code']})"
    if variant is not None:
        result["variant"] = check_variant(variant)
        return "valid variant" if result["variant"]["valid"] else "INVALID variant"
    return "ok"


def note(command: str, data) -> str | None:
    """A few words on what a successful command did (normalization, upgrades, kept nodes, the fix)."""
    if not isinstance(data, dict):
        return None
    if command == "inspect":
        steps = data.get("normalization") or []
        return "; ".join(str(s.get("step", s) if isinstance(s, dict) else s) for s in steps)[:200] or None
    if command.startswith("quantize"):
        bits = []
        if data.get("opset_upgrade"):
            bits.append(f"opset {data['opset_upgrade'].get('from')} -> {data['opset_upgrade'].get('to')}")
        if data.get("kept_fp32"):
            bits.append(f"{len(data['kept_fp32'])} node(s) kept FP32")
        if data.get("runs_on_ort_cpu") is False:
            bits.append("no ORT CPU kernel: measured on its emulation")
        return ", ".join(bits) or None
    if command == "doctor":
        return (f"{data.get('metric')} {data.get('int8_value')} -> {data.get('fixed_value')} dB, "
                f"{len((data.get('recipe') or {}).get('exclude') or [])} kept out of INT8")
    return None


def bench_trait(name: str, folder: Path) -> dict:
    model, calib, evals = build(name, folder)
    out = folder / f"{name}.out"
    out.mkdir(exist_ok=True)
    record = {"trait": name, "what": TRAITS[name], "commands": {}}
    for command, argv in argvs(model, calib, evals, out).items():
        if command == "evaluate_int8" and record["commands"]["quantize_int8"]["exit_code"] != 0:
            record["commands"][command] = {"outcome": "no INT8 variant", "exit_code": None, "error": None}
            continue
        result = run(argv)
        variant = out / f"{command.split('_')[1]}.onnx" if command.startswith("quantize") and result["exit_code"] == 0 else None
        result["outcome"] = outcome(command, result, variant)
        result["note"] = note(command, result.pop("json"))
        record["commands"][command] = result
        print(f"[{name}] {command}: {result['outcome']} {result['error'] or ''}", file=sys.stderr, flush=True)
    return record


def table(records: list[dict]) -> str:
    lines = ["| trait | " + " | ".join(COMMANDS) + " |", "|---" * (len(COMMANDS) + 1) + "|"]
    for r in records:
        lines.append(f"| {r['what']} | " + " | ".join(r["commands"][c]["outcome"] for c in COMMANDS) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS / "traits.json")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wb_traits_") as tmp:
        os.environ["WORKBENCH_WORKSPACE"] = str(Path(tmp) / "ws")
        records = [bench_trait(name, Path(tmp)) for name in TRAITS]
    text = table(records)
    failures = [(r["trait"], c, res["outcome"]) for r in records for c, res in r["commands"].items()
                if res["outcome"] not in ("ok", "valid variant", "refused", "no INT8 variant")]
    document = {"benchmark": "bench_traits", "machine": machine_info(), "seconds": round(time.monotonic() - started, 1),
                "traits": records, "table": text, "failures": [{"trait": t, "command": c, "outcome": o}
                                                               for t, c, o in failures]}
    args.output.write_text(json.dumps(document, indent=2, default=str).replace(tempfile.gettempdir() + "/", "") + "\n")
    print(text)
    print(f"\n{len(failures)} failure(s); JSON: {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
