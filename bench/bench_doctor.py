"""The INT8 doctor's search against trying every node one at a time: evaluations and time to a fix.

For each case (a model whose naive INT8 variant loses more than the target) this runs:

- **doctor**: :func:`workbench.doctor.diagnose.diagnose` without latency measurement: two
  evaluations (FP32, naive INT8), one layerwise pass on 256 evaluation samples, the range and
  calibration checks, then calibration alternatives only where the evidence points at one and
  galloping + bisection + pruning over the layerwise ranking;
- **one at a time**: the brute-force baseline (:func:`workbench.doctor.fix.one_at_a_time`):
  FP32 and naive INT8, then every quantized node excluded alone (one evaluation each), then the
  nodes added greedily, best first, until the target holds.

"evaluations" are full passes over the evaluation set (360 digits); each method starts with an
empty variant folder, so variant making (calibration + Q/DQ) is in both times. On these tiny
models an evaluation takes ~10-30 ms, less than the doctor's fixed analysis (seconds: the
layerwise pass, one variant per calibration method), so the run is repeated with the
evaluation set tiled ``--eval-repeat`` times (same accuracy, N times the cost per evaluation) to
show where the evaluation count takes over. Cases: the three
committed teaching models (``sample_models/teaching``) with per-channel and per-tensor weights,
two more generated rescales, ``digits_transformer`` as it is (its naive variant loses ~4 points in
ONNX Runtime's CPU integer kernel of ``/embed/MatMul``), and ``digits_cnn`` / ``digits_transformer``
calibrated with one corrupted sample (x60). Prints a table and writes ``bench/results/doctor.json``.

    python bench/bench_doctor.py [--target-drop 0.5] [--eval-repeat 1,25]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from machine import machine_info  # noqa: E402  (bench/machine.py)

from workbench.doctor.diagnose import diagnose  # noqa: E402
from workbench.doctor.fix import Config, Evaluator, one_at_a_time  # noqa: E402
from workbench.doctor.graph import quantized_nodes  # noqa: E402
from workbench.doctor.teaching import make_teaching_case  # noqa: E402
from workbench.samples import REPO_ROOT, sample_data_path, sample_path  # noqa: E402
from workbench.workspace import write_atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "doctor.json"
TEACHING = REPO_ROOT / "sample_models" / "teaching"


def cases(tmp: Path) -> list[dict]:
    """name, model path, calib (path or arrays), eval path, per_channel."""
    cnn_calib, cnn_eval = sample_data_path("digits_cnn", "calib"), sample_data_path("digits_cnn", "eval")
    out = []
    for path in sorted(TEACHING.glob("*.onnx")):
        for per_channel in (True, False):
            out.append({"name": f"{path.stem} ({'per-channel' if per_channel else 'per-tensor'})", "model": path,
                        "calib": cnn_calib, "eval": cnn_eval, "per_channel": per_channel})
    for conv, channel, factor in (("/features/pwconv2/Conv", 10, 100.0), ("/features/dwconv3/Conv", 20, 300.0)):
        path = tmp / f"digits_cnn_{conv.split('/')[2]}_c{channel}_x{factor:g}.onnx"
        onnx.save(make_teaching_case(sample_path("digits_cnn"), conv, channel, factor), str(path))
        out.append({"name": f"{path.stem} (per-channel)", "model": path, "calib": cnn_calib, "eval": cnn_eval,
                    "per_channel": True})
    out.append({"name": "digits_transformer (ORT CPU integer kernel)", "model": sample_path("digits_transformer"),
                "calib": sample_data_path("digits_transformer", "calib"),
                "eval": sample_data_path("digits_transformer", "eval"), "per_channel": True})
    for name in ("digits_cnn", "digits_transformer"):
        data = dict(np.load(sample_data_path(name, "calib")))
        corrupted = data["input"].copy()
        corrupted[7] *= 60.0
        out.append({"name": f"{name}, calibration sample 7 x60", "model": sample_path(name),
                    "calib": {"input": corrupted}, "eval": sample_data_path(name, "eval"), "per_channel": True})
    return out


def tiled_eval(path, repeat: int) -> dict:
    """The evaluation set repeated ``repeat`` times (inputs and labels)."""
    data = dict(np.load(path))
    return {k: np.concatenate([v] * repeat) for k, v in data.items()}


def run_doctor(case: dict, target: float, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_doctor_") as ws:
        started = time.perf_counter()
        d = diagnose(case["model"], case["calib"], tiled_eval(case["eval"], repeat), target_drop=target,
                     per_channel=case["per_channel"], latency=False, workspace=ws)
        seconds = time.perf_counter() - started
    return {"evaluations": d.evaluations, "seconds": seconds, "evaluation_seconds": d.timings["evaluations"],
            "analysis_seconds": seconds - d.timings["evaluations"], "fp32": d.fp32_accuracy, "naive": d.int8_accuracy,
            "fixed": d.fix["accuracy"], "exclude": d.fix["config"]["exclude"], "method": d.fix["config"]["method"],
            "drop_samples": d.fix["config"]["drop_samples"], "culprits": [c["node"] for c in d.culprits][:4],
            "target_met": 100 * (d.fp32_accuracy - d.fix["accuracy"]) <= target + 1e-9}


def run_brute_force(case: dict, target: float, repeat: int) -> dict:
    from workbench.datasets.arrays import load_npz
    from workbench.precision import Recipe

    with tempfile.TemporaryDirectory(prefix="bench_brute_") as ws:
        started = time.perf_counter()
        calib = case["calib"] if isinstance(case["calib"], dict) else load_npz(case["calib"])[0]
        data = tiled_eval(case["eval"], repeat)
        labels = data.pop("labels")
        inputs = data
        recipe = Recipe("int8", tool="onnxruntime", per_channel=case["per_channel"])
        ev = Evaluator(Path(case["model"]), calib, inputs, labels, recipe=recipe, workspace=ws)
        fp32 = ev.fp32()
        naive_config = Config.make()
        naive = ev(naive_config, "naive")
        nodes = list(quantized_nodes(onnx.load(str(ev.variant(naive_config).path))))
        ev.all_nodes = frozenset(nodes)
        passes = lambda top1: fp32 - top1 <= target + 1e-9  # noqa: E731  (the evaluator's top1 is in percent)
        result = one_at_a_time(nodes, lambda ex: ev(Config.make(exclude=ex)), passes) if not passes(naive) else None
        seconds = time.perf_counter() - started
    return {"evaluations": ev.evaluations, "seconds": seconds, "fixed": (result.value if result else naive) / 100,
            "exclude": result.exclude if result else []}


def print_table(rows: list[dict], repeat: int) -> dict:
    """Print one run's table; return its totals."""
    header = (f"{'case':46s} {'naive':>7s} {'doctor':>7s} {'evals':>5s} {'time s':>7s} {'(evals)':>7s}   "
              f"{'1-by-1':>7s} {'evals':>5s} {'time s':>7s}   doctor's fix")
    print(f"\nevaluation set: {360 * repeat} samples ({repeat}x the 360 digits)")
    print(header)
    print("-" * len(header))
    for row in rows:
        d, b = row["doctor"], row["one_at_a_time"]
        fix = ", ".join(n.split("/")[-2] if n.count("/") >= 2 else n for n in d["exclude"]) or "-"
        if d["drop_samples"]:
            fix = f"drop calib sample(s) {d['drop_samples']}" + (f"; {fix}" if d["exclude"] else "")
        print(f"{row['case']:46s} {100 * d['naive']:6.2f}% {100 * d['fixed']:6.2f}% {d['evaluations']:5d} "
              f"{d['seconds']:7.2f} {d['evaluation_seconds']:7.2f}   {100 * b['fixed']:6.2f}% {b['evaluations']:5d} "
              f"{b['seconds']:7.2f}   {fix}")
    totals = {
        "doctor_evaluations": sum(r["doctor"]["evaluations"] for r in rows),
        "one_at_a_time_evaluations": sum(r["one_at_a_time"]["evaluations"] for r in rows),
        "doctor_seconds": sum(r["doctor"]["seconds"] for r in rows),
        "one_at_a_time_seconds": sum(r["one_at_a_time"]["seconds"] for r in rows),
        "doctor_targets_met": sum(r["doctor"]["target_met"] for r in rows),
        "cases": len(rows),
    }
    print(f"in all: doctor {totals['doctor_evaluations']} evaluations, {totals['doctor_seconds']:.1f} s; one at a time "
          f"{totals['one_at_a_time_evaluations']} evaluations, {totals['one_at_a_time_seconds']:.1f} s; targets met by "
          f"the doctor {totals['doctor_targets_met']}/{totals['cases']}")
    return totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-drop", type=float, default=0.5, help="allowed top-1 drop, percentage points")
    parser.add_argument("--eval-repeat", default="1,25",
                        help="comma-separated: run with the evaluation set tiled this many times")
    args = parser.parse_args(argv)
    repeats = [int(r) for r in args.eval_repeat.split(",") if r.strip()]
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_doctor_models_") as tmp:
        all_cases = cases(Path(tmp))
        for repeat in repeats:
            rows = []
            for case in all_cases:
                doctor = run_doctor(case, args.target_drop, repeat)
                brute = run_brute_force(case, args.target_drop, repeat)
                rows.append({"case": case["name"], "doctor": doctor, "one_at_a_time": brute})
            runs.append({"eval_repeat": repeat, "eval_samples": 360 * repeat, "rows": rows,
                         "totals": print_table(rows, repeat)})
    payload = {
        "what": "INT8 doctor vs one-node-at-a-time: full evaluations and wall time to a fix",
        "target_drop_pp": args.target_drop,
        "machine": machine_info(),
        "runs": runs,
    }
    write_atomic(RESULTS, json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
