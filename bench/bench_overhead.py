"""Overhead of ``OnnxRuntimeEngine.benchmark`` against a bare ``session.run`` loop.

Both time the SAME session on the SAME feed arrays, the same number of runs per block, in
alternating blocks (engine first in even blocks, bare first in odd ones) so drift in CPU clock
or load hits both alike. The bare loop is timed as one block (``perf_counter`` before and after
``for _ in range(n): session.run(None, feed)``, divided by n); the engine's figure is the mean
latency its ``BenchmarkResult`` reports. The ratio of the medians over blocks should be within
3% of 1. Model: sample_models/digits_cnn.onnx (a seeded helper-built CNN if that is missing).
Prints a table and writes bench/results/overhead.json.

    python bench/bench_overhead.py [--blocks 30] [--runs 200] [--batch 1 32] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from machine import machine_info  # noqa: E402  (bench/machine.py)

from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend  # noqa: E402
from workbench.workspace import write_atomic  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "sample_models" / "digits_cnn.onnx"
SAMPLE_EVAL = SAMPLE.with_name("digits_cnn.eval.npz")


def helper_cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv->BN->Relu->MaxPool->Conv 1x1->Relu->GlobalAveragePool->Flatten->Gemm, seeded."""
    rng = np.random.default_rng(seed)

    def init(name, shape):
        return numpy_helper.from_array(rng.normal(0, 0.2, shape).astype(np.float32), name)

    inits = [init("w1", (32, 1, 3, 3)), init("b1", (32,)), init("bn_s", (32,)),
             init("bn_b", (32,)), init("bn_m", (32,)),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, 32).astype(np.float32), "bn_v"),
             init("w2", (64, 32, 1, 1)), init("b2", (64,)), init("fc_w", (10, 64)),
             init("fc_b", (10,))]
    n = helper.make_node
    nodes = [n("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             n("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"], name="bn1"),
             n("Relu", ["n1"], ["r1"], name="relu1"),
             n("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
             n("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2"),
             n("Relu", ["c2"], ["r2"], name="relu2"),
             n("GlobalAveragePool", ["r2"], ["g"], name="gap"),
             n("Flatten", ["g"], ["f"], name="flatten"),
             n("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(
        nodes, "helper_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def load_model_and_data() -> tuple[object, np.ndarray, str]:
    """The sample CNN and its eval inputs, or the helper CNN and random inputs.

    Returns:
        ``(model, samples, label)``: a path or ModelProto, float32 ``[N, 1, 8, 8]`` inputs,
        and which model it is.
    """
    if SAMPLE.is_file() and SAMPLE_EVAL.is_file():
        with np.load(SAMPLE_EVAL, allow_pickle=False) as data:
            return SAMPLE, data["input"], "sample_models/digits_cnn.onnx"
    samples = np.random.default_rng(0).random((64, 1, 8, 8), dtype=np.float32)
    return helper_cnn(), samples, "helper CNN (sample model missing)"


def bare_block(session: ort.InferenceSession, feed: dict, runs: int) -> float:
    """Mean ms per ``session.run`` over one untouched loop of ``runs`` calls."""
    run = session.run
    start = time.perf_counter()
    for _ in range(runs):
        run(None, feed)
    return (time.perf_counter() - start) * 1000.0 / runs


def engine_block(engine, feed: dict, runs: int) -> tuple[float, float]:
    """One ``engine.benchmark`` call: (reported mean ms, wall ms per run of the whole call)."""
    start = time.perf_counter()
    result = engine.benchmark(feed, iterations=runs, warmup=0)
    wall = (time.perf_counter() - start) * 1000.0 / runs
    return result.mean_ms, wall


def measure(engine, samples: np.ndarray, batch: int, blocks: int, runs: int) -> dict:
    """Alternate engine and bare blocks on the same session and feed.

    Args:
        engine: The built engine (its ``session`` is the one timed bare too).
        samples: Input pool; the first ``batch`` samples are the feed.
        batch: Batch size.
        blocks: Number of engine blocks (and of bare blocks).
        runs: Runs per block.

    Returns:
        Per-block figures and their medians and ratios.
    """
    feed = engine.feed({"input": np.resize(samples, (batch, *samples.shape[1:]))})
    engine.benchmark(feed, iterations=runs, warmup=runs)  # warm both paths and caches
    bare_block(engine.session, feed, runs)
    bare, reported, wall = [], [], []
    for k in range(blocks):
        order = ("engine", "bare") if k % 2 == 0 else ("bare", "engine")
        for which in order:
            if which == "bare":
                bare.append(bare_block(engine.session, feed, runs))
            else:
                mean_ms, wall_ms = engine_block(engine, feed, runs)
                reported.append(mean_ms)
                wall.append(wall_ms)
    medians = {"bare_ms": float(np.median(bare)), "benchmark_ms": float(np.median(reported)),
               "benchmark_wall_ms": float(np.median(wall))}
    paired = np.asarray(reported) / np.asarray(bare)
    return {
        "batch": batch, "blocks": blocks, "runs_per_block": runs,
        **medians,
        "ratio": medians["benchmark_ms"] / medians["bare_ms"],
        "wall_ratio": medians["benchmark_wall_ms"] / medians["bare_ms"],
        "paired_ratio_median": float(np.median(paired)),
        "paired_ratio_iqr": [float(q) for q in np.percentile(paired, [25, 75])],
        "per_block": {"bare_ms": bare, "benchmark_ms": reported, "benchmark_wall_ms": wall},
    }


def print_table(model_label: str, rows: list[dict]) -> None:
    print(f"model: {model_label}; onnxruntime {ort.__version__}")
    print(f"{'batch':>5} {'bare ms':>10} {'benchmark ms':>13} {'ratio':>7} "
          f"{'wall ms':>9} {'wall ratio':>10} {'paired IQR':>15}")
    for r in rows:
        lo, hi = r["paired_ratio_iqr"]
        print(f"{r['batch']:>5} {r['bare_ms']:>10.4f} {r['benchmark_ms']:>13.4f} "
              f"{r['ratio']:>7.4f} {r['benchmark_wall_ms']:>9.4f} {r['wall_ratio']:>10.4f} "
              f"{lo:>7.4f}-{hi:.4f}")
    worst = max(abs(r["ratio"] - 1.0) for r in rows)
    print(f"worst |ratio - 1| = {100 * worst:.2f}% (goal <= 3%)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=30, help="blocks per side")
    parser.add_argument("--runs", type=int, default=200, help="session.run calls per block")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=None, help="intra_op_num_threads")
    parser.add_argument("--level", default="all", help="graph_optimization_level")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "overhead.json"))
    args = parser.parse_args()

    model, samples, label = load_model_and_data()
    engine = OnnxRuntimeBackend().build(
        model, {"graph_optimization_level": args.level, "intra_op_num_threads": args.threads})
    rows = [measure(engine, samples, b, args.blocks, args.runs) for b in args.batch]
    print_table(label, rows)
    result = {
        "model": label,
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "machine": machine_info(),
        "settings": {"graph_optimization_level": args.level, "intra_op_num_threads": args.threads,
                     "providers": engine.session.get_providers()},
        "goal": "ratio (benchmark median / bare median) within 3% of 1",
        "results": rows,
    }
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
