"""Served latency: the sample CNN through a real Triton server against the same file on local ONNX Runtime.

Exports digits_cnn (FP32) with the dynamic batcher, serves it with `workbench.workflows.serve_triton`
(here: nvidia-pytriton's tritonserver, Python backend running ONNX Runtime; `make triton` first),
and measures with `triton_perf` at 1, 2, 4 and 8 concurrent clients over HTTP and gRPC, one
sample per request, on the evaluation digits. The local figure is `Engine.benchmark` on the same
file at batch 1 with ORT's default threads. The difference is what serving costs on this machine:
HTTP/gRPC, (de)serialization, Triton's queue and the Python-backend hop (shared memory to the stub).
Prints a table and writes bench/results/triton.json.

    python bench/bench_triton.py [--duration 3] [--concurrency 1 2 4 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.backends import get_backend  # noqa: E402
from workbench.samples import sample_data_path, sample_path  # noqa: E402
from workbench.workflows.triton.export import export_triton  # noqa: E402
from workbench.workflows.triton.perf import perf  # noqa: E402
from workbench.workflows.triton.serve import serve_triton  # noqa: E402
from workbench.workspace import write_atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "triton.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    data = sample_data_path("digits_cnn", "eval")
    model = sample_path("digits_cnn")
    engine = get_backend("onnxruntime").build(model, None)
    feed = {"input": np.load(data)["input"][:1]}
    local = engine.benchmark(feed, iterations=2000, warmup=100).to_dict()
    rows = [{"where": "local ONNX Runtime", "protocol": "-", "clients": 1, "median_ms": local["median_ms"],
             "p99_ms": local["p99_ms"], "samples_per_s": local["throughput"], "server_queue_ms": None,
             "server_compute_ms": None, "avg_batch": 1.0}]
    with tempfile.TemporaryDirectory() as repo:
        export_triton(model, repo, dynamic_batching=True)
        with serve_triton(repo) as server:
            for protocol, url in (("http", server.url), ("grpc", f"grpc://{server.grpc_url}")):
                result = perf(url, "digits_cnn", concurrency=args.concurrency, data=data, duration_s=args.duration,
                              evaluate_data=False)
                for level in result["levels"]:
                    rows.append({"where": "Triton", "protocol": protocol, "clients": level["concurrency"],
                                 "median_ms": level["median_ms"], "p99_ms": level["p99_ms"],
                                 "samples_per_s": level["throughput"], "server_queue_ms": level["server"]["queue_ms"],
                                 "server_compute_ms": level["server"]["compute_infer_ms"],
                                 "avg_batch": level["server"]["avg_batch"]})
            server_name = server.runtime.version
    header = f"{'where':<20}{'proto':>6}{'clients':>8}{'median ms':>11}{'p99 ms':>9}{'samples/s':>11}" \
             f"{'queue ms':>10}{'compute ms':>12}{'batch':>7}"
    print(header)
    for r in rows:
        def fmt(v, width, digits=3):
            return f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}"
        print(f"{r['where']:<20}{r['protocol']:>6}{r['clients']:>8}{fmt(r['median_ms'], 11)}{fmt(r['p99_ms'], 9)}"
              f"{fmt(r['samples_per_s'], 11, 1)}{fmt(r['server_queue_ms'], 10)}{fmt(r['server_compute_ms'], 12)}"
              f"{fmt(r['avg_batch'], 7, 2)}")
    write_atomic(RESULTS, json.dumps({"machine": platform.platform(), "cpus": __import__("os").cpu_count(),
                                      "server": server_name, "duration_s": args.duration, "rows": rows}, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
