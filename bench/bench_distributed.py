"""Speed-up of an accuracy sweep on local Dask workers against one process.

The sweep: both sample models x the recipes below (FP32, FP16, BF16, INT8 with four calibration
methods and two calibration sizes), accuracy only (no benchmarks), every variant made afresh
(a new variants folder per run, so nothing comes from the cache). It runs

- in one process (``measure_items`` on a ``LocalRunner``: what ``measure_variants`` does
  without a client),
- on a local cluster of 1 worker process, and of 2 (``local_cluster``; 1 thread each; workers
  warmed up first, so their start and imports are not counted),

with ONNX Runtime at 1 intra-op thread everywhere (else each process would spread over every
core and the comparison would measure oversubscription). Each mode runs ``--rounds`` times,
interleaved (so drifting load from other processes hits every mode alike); the table shows the
median and the best wall time of each mode and the speed-ups of the medians. The figures of all
runs must agree (same variant hashes, same top-1): that is checked, not assumed.

What bounds the ratio is printed with it: the cores (2 here, shared by the client, the
scheduler and the workers), the load from other processes (load average before and after),
the work that stays serial (the client hashing and shipping inputs, one row merge per item),
and the tail (the last job's length when the others are done).

Prints a table and writes bench/results/distributed.json.

    python bench/bench_distributed.py [--rounds 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.precision import Recipe  # noqa: E402
from workbench.samples import sample_data_path, sample_path  # noqa: E402
from workbench.workflows.cluster import ClusterRunner, local_cluster  # noqa: E402
from workbench.workflows.jobs import LocalRunner  # noqa: E402
from workbench.workflows.sweep import measure_part, sweep_items  # noqa: E402
from workbench.workflows.sweep_jobs import measure_items  # noqa: E402
from workbench.workspace import write_atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "distributed.json"
MODELS = ("digits_cnn", "digits_transformer")
RECIPES = [Recipe("fp32"), Recipe("fp16"), Recipe("bf16")] + [
    Recipe("int8", method=m, num_samples=n) for m in ("minmax", "entropy", "percentile", "distribution")
    for n in (64, 256)]


def items(variants: Path):
    """The sweep as measurement items, variants into ``variants`` (a fresh folder per run)."""
    return [item for model in MODELS for item in sweep_items(
        sample_path(model), RECIPES, sample_data_path(model, "calib"), sample_data_path(model, "eval"),
        threads=1, batch_sizes=(1,), workspace=str(variants))]


def run(runner, root: Path, tag: str) -> dict:
    """One sweep on ``runner``; wall time, the jobs' own seconds, and the figures."""
    variants = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=root))
    started = time.perf_counter()
    rows = measure_items(runner, items(variants), job=measure_part, latency=False, progress=None)
    wall = time.perf_counter() - started
    errors = [r["error"] for r in rows if r.get("error")]
    if errors:
        raise SystemExit(f"{tag}: {len(errors)} jobs failed, first: {errors[0]}")
    seconds = [j["seconds"] for r in rows for j in r["jobs"]]
    return {"wall_s": wall, "job_seconds": sum(seconds), "longest_job_s": max(seconds), "jobs": len(seconds),
            "workers": sorted({r["worker"] for r in rows if r["worker"]}),
            "figures": [(r["model"], r["variant"], r["variant_sha256"], r["top1"]) for r in rows]}


def warm(client) -> None:
    """Import what the jobs import on every worker (a worker's first job would pay for it)."""
    client.run(lambda: __import__("workbench.workflows.sweep") and None)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    os.environ["WORKBENCH_WORKSPACE"] = str(root / "workspace")  # workers inherit it
    load_before = os.getloadavg()
    clusters = {n: local_cluster(n, threads=1) for n in sorted({1, args.workers})}
    for client in clusters.values():
        warm(client)
    runners = {"one process": LocalRunner(), **{f"{n} worker{'s' if n > 1 else ''}": ClusterRunner(c)
                                                 for n, c in clusters.items()}}
    runs: dict[str, list[dict]] = {tag: [] for tag in runners}
    try:
        for round_ in range(args.rounds):
            for tag, runner in runners.items():
                runs[tag].append(run(runner, root, f"{tag.replace(' ', '-')}-{round_}"))
                runs[tag][-1]["load_average"] = os.getloadavg()[0]
    finally:
        for client in clusters.values():
            client.close()
            client.cluster.close()
    report(runs, root, load_before, os.getloadavg(), args.rounds)


def report(runs: dict[str, list[dict]], root: Path, load_before, load_after, rounds: int) -> None:
    """Print the table and write the JSON (every round's figures, each mode's median and best)."""
    figures = [r.pop("figures") for mode in runs.values() for r in mode]
    agree = all(f == figures[0] for f in figures)
    summary = {}
    for tag, mode in runs.items():
        walls = [r["wall_s"] for r in mode]
        median = statistics.median(walls)
        typical = min(mode, key=lambda r: abs(r["wall_s"] - median))
        summary[tag] = {"median_wall_s": median, "best_wall_s": min(walls), "walls_s": walls,
                        "job_seconds_median": statistics.median(r["job_seconds"] for r in mode),
                        "longest_job_s": typical["longest_job_s"], "workers": len(typical["workers"]),
                        "busy": typical["job_seconds"] / (typical["wall_s"] * max(1, len(typical["workers"])))}
    base = summary["one process"]
    for entry in summary.values():
        entry["speedup_median"] = base["median_wall_s"] / entry["median_wall_s"]
        entry["speedup_best"] = base["best_wall_s"] / entry["best_wall_s"]
    print(f"accuracy sweep: {len(MODELS)} models x {len(RECIPES)} recipes = {len(figures[0])} variants, "
          f"{os.cpu_count()} cores, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after, "
          f"{rounds} rounds")
    print(f"{'mode':<12} {'median s':>9} {'best s':>7} {'speed-up':>9} {'(best)':>7} {'job s':>7} {'busy':>5} "
          f"{'longest job':>11}")
    for tag, e in summary.items():
        print(f"{tag:<12} {e['median_wall_s']:9.2f} {e['best_wall_s']:7.2f} {e['speedup_median']:8.2f}x "
              f"{e['speedup_best']:6.2f}x {e['job_seconds_median']:7.2f} {e['busy']:5.0%} {e['longest_job_s']:10.2f}s")
    print(f"same variants and top-1 in every run: {agree}")
    write_atomic(RESULTS, json.dumps({
        "models": list(MODELS), "recipes": [i.label for i in items(root)[:len(RECIPES)]],
        "variants": len(figures[0]), "cpu_count": os.cpu_count(), "load_average_before": load_before,
        "load_average_after": load_after, "rounds": rounds, "summary": summary, "runs": runs,
        "figures_agree": agree,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
