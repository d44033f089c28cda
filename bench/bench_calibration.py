"""Fast calibration vs ONNX Runtime's calibrators vs plain FP32 inference, in one run.

For every model and calibration method (minmax, entropy, percentile, distribution, ORT's default
settings for each) this times, over the same samples and batches:

- **plain**: FP32 inference with ONNX Runtime's default session (all graph optimizations), warm:
  the yardstick;
- **ORT**: ``create_calibrator`` + ``collect_data`` + ``compute_data`` (what ``quantize_static``
  runs);
- **ours**: :func:`workbench.precision.calibrator.calibrate` as variants use it (ORT optimizes the
  augmented graph; ranges equal ORT's to kernel rounding, ~1e-7 relative), each call cold (graph
  building and session creation included);
- **exact**: the same with ``exact=True`` (graph optimizations off like ORT's calibrator: ranges
  bit-equal to ORT's).

The machine's 2 cores are shared with other work, so timings are interleaved (plain, ours, exact
per round; plain, ORT per ORT round) and the minimum of each is reported (``timings_s`` in the
JSON keeps them all).

Calibrated tensors: those of the op types ``quantize_static`` calibrates by default (every op type
in ORT's quantization registries). Models: the two sample models on their 256-sample calibration
splits (batches of 32), and ``bench_cnn``, built here to mirror the issue's measurement: 224x224
RGB input, 7 conv+ReLU layers and a classifier, 6.8 MB of seeded random weights, 128 seeded random
samples in batches of 8. Prints a table and writes ``bench/results/calibration.json``.

    python bench/bench_calibration.py [--skip-ort-histograms]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from machine import machine_info  # noqa: E402  (bench/machine.py)

from workbench.datasets.calibration_sets import from_npz  # noqa: E402
from workbench.precision.calibrator import (  # noqa: E402
    CalibrationOptions,
    calibrate,
    compare_ranges,
    make_session,
    ort_calibrate,
    prepare_for_calibration,
)
from workbench.samples import sample_data_path, sample_path  # noqa: E402
from workbench.workspace import write_atomic  # noqa: E402

METHODS = ("minmax", "entropy", "percentile", "distribution")
RESULTS = Path(__file__).resolve().parent / "results" / "calibration.json"


def bench_cnn(seed: int = 0, classes: int = 1000) -> onnx.ModelProto:
    """A 224x224 CNN: patchify stem, six 3x3 conv+ReLU (three stride 2), GAP, Gemm; ~6.8 MB."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def conv(x, cin, cout, k, stride, pad, name):
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.01).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")])
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [f"{name}_out"], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4))
        nodes.append(helper.make_node("Relu", [f"{name}_out"], [f"{name}_relu"], name=f"{name}_relu"))
        return f"{name}_relu"

    x = conv("input", 3, 48, 4, 4, 0, "stem")
    for name, cin, cout, stride in (("s1", 48, 48, 1), ("d1", 48, 96, 2), ("s2", 96, 96, 1),
                                    ("d2", 96, 192, 2), ("s3", 192, 192, 1), ("d3", 192, 384, 2)):
        x = conv(x, cin, cout, 3, stride, 1, name)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"))
    w = (rng.standard_normal((classes, 384)) * 0.05).astype(np.float32)
    inits += [numpy_helper.from_array(w, "fc.weight"), numpy_helper.from_array(np.zeros(classes, np.float32), "fc.bias")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "bench_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantize_static_op_types() -> list[str]:
    """The op types quantize_static calibrates when none are given: ORT's quantization registries."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def cases():
    for name in ("digits_cnn", "digits_transformer"):
        model = onnx.load(str(sample_path(name)))
        calib = from_npz(sample_data_path(name, "calib"), ["input"]).inputs
        yield name, model, calib, 32
    model = bench_cnn()
    calib = {"input": np.random.default_rng(1).standard_normal((128, 3, 224, 224)).astype(np.float32)}
    yield "bench_cnn", model, calib, 8


def plain_runner(model: onnx.ModelProto, calib: dict, batch: int):
    """A function timing one pass of plain FP32 inference over the samples (warm session)."""
    session = make_session(model, optimized=True)
    x = calib["input"]
    session.run(None, {"input": x[:batch]})

    def once() -> float:
        started = time.perf_counter()
        for start in range(0, len(x), batch):
            session.run(None, {"input": x[start:start + batch]})
        return time.perf_counter() - started

    return once


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-ort-histograms", action="store_true",
                        help="skip ORT's slow histogram calibrators (ranges then go unchecked)")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds for plain/ours (min kept)")
    parser.add_argument("--ort-rounds", type=int, default=2, help="timing rounds for ORT's calibrator")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    op_types = quantize_static_op_types()
    rows = []
    started = time.perf_counter()
    for name, raw, calib, batch in cases():
        model = prepare_for_calibration(raw)
        plain_once = plain_runner(raw, calib, batch)
        for method in METHODS:
            options = CalibrationOptions(method)
            # Other processes share these 2 cores: every timing is interleaved with a plain-inference
            # timing and the minimum of each is kept (the run least disturbed).
            plain_t, ours_t, exact_t, ort_t = [], [], [], []
            ours = exact = theirs = None
            for _ in range(args.rounds):
                plain_t.append(plain_once())
                t, ours = timed(lambda: calibrate(model, calib, options, op_types=op_types, batch_size=batch,
                                                  progress=False))
                ours_t.append(t)
                t, exact = timed(lambda: calibrate(model, calib, options, op_types=op_types, batch_size=batch,
                                                   progress=False, exact=True))
                exact_t.append(t)
            if not (args.skip_ort_histograms and method != "minmax"):
                for _ in range(args.ort_rounds):
                    plain_t.append(plain_once())
                    with contextlib.redirect_stdout(io.StringIO()):
                        t, theirs = timed(lambda: ort_calibrate(model, calib, options, op_types=op_types,
                                                                batch_size=batch))
                    ort_t.append(t)
            plain, ours_s, exact_s = min(plain_t), min(ours_t), min(exact_t)
            ort_s = min(ort_t) if ort_t else None
            same = compare_ranges(ours.tensors_range, theirs) if theirs is not None else None
            same_exact = compare_ranges(exact.tensors_range, theirs) if theirs is not None else None
            rows.append({
                "method": method,
                "model": name,
                "samples": len(calib["input"]),
                "batch": batch,
                "tensors": len(ours.tensors),
                "plain_s": round(plain, 4),
                "ort_s": round(ort_s, 4) if ort_s is not None else None,
                "ours_s": round(ours_s, 4),
                "exact_s": round(exact_s, 4),
                "ort_over_plain": round(ort_s / plain, 2) if ort_s is not None else None,
                "ours_over_plain": round(ours_s / plain, 2),
                "exact_over_plain": round(exact_s / plain, 2),
                "ranges_max_rel_diff": same["max_rel_diff"] if same else None,
                "exact_ranges_equal": same_exact["exact"] if same_exact else None,
                "passes": list(ours.pass_seconds),
                "timings_s": {"plain": plain_t, "ours": ours_t, "exact": exact_t, "ort": ort_t},
            })
            print_row(rows[-1], header=len(rows) == 1)
    result = {
        "what": "calibration time: plain FP32 inference vs ORT's calibrator vs workbench.precision.calibrator",
        "op_types": "quantize_static's default (ORT quantization registries)",
        "settings": {m: CalibrationOptions(m).to_dict() for m in METHODS},
        "rows": rows,
        "total_s": round(time.perf_counter() - started, 1),
        "machine": machine_info(),
        "versions": _versions(),
    }
    write_atomic(RESULTS, json.dumps(result, indent=2) + "\n")
    print(f"\n{len(rows)} rows in {result['total_s']} s; wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return result


def print_row(row: dict, header: bool) -> None:
    if header:
        print(f"{'method':<13}{'model':<20}{'plain s':>9}{'ORT s':>9}{'ours s':>9}{'exact s':>9}"
              f"{'ORT/plain':>11}{'ours/plain':>12}{'exact/plain':>13}  ranges equal ORT's?")
    ort_s = f"{row['ort_s']:.3f}" if row["ort_s"] is not None else "-"
    ratio = f"{row['ort_over_plain']:.1f}x" if row["ort_over_plain"] is not None else "-"
    if row["exact_ranges_equal"] is None:
        equal = "not checked"
    else:
        equal = (f"exact: {'bit-equal' if row['exact_ranges_equal'] else 'NO'}; "
                 f"ours: max rel diff {row['ranges_max_rel_diff']:.1e}")
    print(f"{row['method']:<13}{row['model']:<20}{row['plain_s']:>9.3f}{ort_s:>9}{row['ours_s']:>9.3f}"
          f"{row['exact_s']:>9.3f}{ratio:>11}{row['ours_over_plain']:>11.2f}x{row['exact_over_plain']:>12.2f}x  {equal}")


def _versions() -> dict:
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


if __name__ == "__main__":
    main()
