"""Accuracy and ONNX Runtime CPU latency of each precision variant of the sample models.

For each sample model this makes (or reuses) the variants FP32, FP16, BF16, INT8 with minmax,
entropy and percentile calibration on 256 samples, INT8 minmax on 32 samples, and INT8 entropy
with TensorRT's 2048 histogram bins on 256 samples (ONNX Runtime's entropy default of 128 bins
searched with 128 quantized bins can only pick the full range, so it equals minmax), then measures
with :func:`workbench.workflows.sweep.measure_variants`:

- top-1 on the 360-sample eval split, and the lowest SQNR against FP32 (dB);
- median latency (ms) of ``session.run`` on ONNX Runtime's CPU provider at batch 1 and 32, one
  intra-op thread (the machine's 2 cores are shared, one thread keeps runs comparable), after a
  warm-up.

FP16 accuracy is measured on its emulation (ORT's CPU provider computes these FP16 ops in FP32),
BF16 accuracy and latency on its FP32 emulation (ORT's CPU provider has no BF16 kernels): the
``measured_on`` column says so. The whole grid is timed ``--rounds`` times, interleaved, and per
variant and batch size the lowest median is kept (other work on a shared machine only adds time). Variants are made and cached in
``bench/results/workspace`` (nothing of the user's is touched). Prints a markdown table and writes
``bench/results/variants.json``.

    python bench/bench_variants.py [--iterations 300] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from machine import machine_info  # noqa: E402  (bench/machine.py)

from workbench.precision import Recipe  # noqa: E402
from workbench.samples import sample_data_path, sample_path  # noqa: E402
from workbench.workflows.sweep import measure_variants, rows_frame  # noqa: E402
from workbench.workspace import write_atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "variants.json"
MODELS = ("digits_cnn", "digits_transformer")
RECIPES = (
    Recipe("fp32"),
    Recipe("fp16"),
    Recipe("bf16"),
    Recipe("int8", method="minmax", num_samples=256),
    Recipe("int8", method="entropy", num_samples=256),
    Recipe("int8", method="entropy", num_samples=256, num_bins=2048, name="int8-entropy2048-256"),
    Recipe("int8", method="percentile", num_samples=256),
    Recipe("int8", method="minmax", num_samples=32),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="timed runs per batch size (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed runs first (default 30)")
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads (default 1)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved timing rounds over the grid, lowest median kept (default 5)")
    parser.add_argument("--workspace", type=Path, default=RESULTS.parent / "workspace",
                        help="where the variants are made and cached (default bench/results/workspace)")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.threads < 1 or args.rounds < 1:
        parser.error("--iterations, --rounds and --threads must be >= 1, --warmup >= 0")

    rows, seconds = [], {}
    variants = args.workspace.expanduser() / "variants"
    for name in MODELS:
        started = time.perf_counter()
        # Interleaved rounds: every variant once per round (made once, then from the cache), so a
        # burst of other work on the shared machine hits one round of many variants, not one
        # variant; per variant and batch size the round with the lowest median is kept.
        passes = [measure_variants(sample_path(name), RECIPES, calib=sample_data_path(name, "calib"),
                                   eval_data=sample_data_path(name, "eval"), batch_sizes=(1, 32),
                                   iterations=args.iterations, warmup=args.warmup, threads=args.threads,
                                   workspace=variants, progress=False)
                  for _ in range(args.rounds)]
        rows += [_best(same) for same in zip(*passes)]
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"{name}: {args.rounds} rounds in {seconds[name]} s", file=sys.stderr)
    frame = rows_frame(rows)
    table = frame[["model", "variant", "top1", "min_sqnr_db", "median_ms@b1", "median_ms@b32", "size_kb",
                   "measured_on"]].copy()
    table["top1"] = (100 * table["top1"]).map(lambda v: f"{v:.1f}%")
    table["min_sqnr_db"] = table["min_sqnr_db"].map(lambda v: "exact" if v == float("inf") else f"{v:.1f}")
    for column in ("median_ms@b1", "median_ms@b32"):
        table[column] = table[column].map(lambda v: f"{v:.3f}")
    print(_markdown(table))
    print(f"\nseconds per model (making + measuring): {seconds}")
    payload = {
        "machine": machine_info(),
        "settings": {"iterations": args.iterations, "warmup": args.warmup, "threads": args.threads,
                     "rounds": args.rounds,
                     "batch_sizes": [1, 32]},
        "seconds": seconds,
        "rows": [{k: r.get(k) for k in ("model", "variant", "precision", "recipe", "calibration_samples",
                                        "calibration_method", "top1", "top1_agreement", "min_sqnr_db",
                                        "latency", "latency_rounds", "size_bytes", "accuracy_on", "latency_on", "tool", "notes",
                                        "versions")} for r in rows],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(RESULTS, json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {RESULTS}")
    return 0


def _best(rounds) -> dict:
    """One variant's rows from several rounds: the first row, with each batch size's lowest-median
    latency (and the row's latency columns from the first batch size's best round)."""
    row = dict(rounds[0])
    row["latency"] = {size: min((r["latency"][size] for r in rounds), key=lambda lat: lat["median_ms"])
                      for size in rounds[0]["latency"]}
    row["median_ms"] = row["latency"][next(iter(row["latency"]))]["median_ms"]
    row["latency_rounds"] = {size: [r["latency"][size]["median_ms"] for r in rounds] for size in row["latency"]}
    return row


def _markdown(frame) -> str:
    """A GitHub markdown table (no tabulate needed)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
