"""Serving for real: a tritonserver on 127.0.0.1 (nvidia-pytriton's, from .venv-triton, which
`make triton` creates and `make test` runs first) serving both sample models in FP32 and INT8.

Checked: outputs through HTTP and gRPC equal ONNX Runtime's on the evaluation data; the dynamic
batcher joins concurrent requests and max_batch_size holds (a larger request gets Triton's error,
explained); a second server on a taken port fails clearly; stopping (stop(), SIGTERM, Ctrl-C, the
starting process dying) leaves no process of the server's group behind; perf's numbers and rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from workbench.analysis.accuracy import evaluate
from workbench.backends.onnxruntime.session import ort_session
from workbench.errors import WorkbenchError
from workbench.samples import sample_data_path, sample_path
from workbench.tables.results import ResultsTable
from workbench.workflows.triton.config import TritonUnavailable
from workbench.workflows.triton.export import export_triton
from workbench.workflows.triton.perf import (
    TritonEngine,
    TritonRequestError,
    perf,
    perf_rows,
)
from workbench.workflows.triton.serve import (
    TritonServeError,
    find_runtime,
    free_port,
    serve_triton,
)
from workbench.workflows.triton.watchdog import group_members

MAX_BATCH = 16
QUEUE_DELAY_US = 20_000  # long enough on 2 shared cores for concurrent requests to meet in the batcher


@pytest.fixture(scope="module")
def runtime():
    try:
        return find_runtime()
    except TritonUnavailable as err:  # a failure, not a skip: serving is part of the suite
        pytest.fail(f"{err} (make test runs `make triton` first)")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workspace")
    previous = os.environ.get("WORKBENCH_WORKSPACE")
    os.environ["WORKBENCH_WORKSPACE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("WORKBENCH_WORKSPACE", None)
    else:
        os.environ["WORKBENCH_WORKSPACE"] = previous


@pytest.fixture(scope="module")
def repository(tmp_path_factory, sample_variant, workspace):
    """Both samples, FP32 and INT8, with dynamic batching and a warm-up from real samples."""
    root = tmp_path_factory.mktemp("repo")
    sources = {}
    for sample in ("digits_cnn", "digits_transformer"):
        for precision, path in (("fp32", sample_path(sample)), ("int8", sample_variant(sample, "int8").path)):
            name = f"{sample}_{precision}"
            export_triton(path, root, name=name, max_batch_size=MAX_BATCH, dynamic_batching=True,
                          preferred_batch_sizes=[4, MAX_BATCH], max_queue_delay_us=QUEUE_DELAY_US,
                          warmup=sample_data_path(sample, "calib"))
            sources[name] = (sample, Path(path))
    return root, sources


@pytest.fixture(scope="module")
def server(repository, runtime):
    served = serve_triton(repository[0], runtime=runtime)
    yield served
    served.stop()


def _ort_outputs(path, inputs):
    session = ort_session(path)
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_outputs_equal_onnx_runtime(server, repository, protocol):
    url = server.url if protocol == "http" else f"grpc://{server.grpc_url}"
    assert server.ready() and {m["name"] for m in server.models} == set(repository[1])
    for name, (sample, path) in repository[1].items():
        data = np.load(sample_data_path(sample, "eval"))
        with TritonEngine(url, name) as engine:
            assert engine.input_names == ["input"] and engine.output_names == ["logits"]
            served = np.concatenate([engine.run({"input": data["input"][i:i + MAX_BATCH]})["logits"]
                                     for i in range(0, len(data["input"]), MAX_BATCH)])
        expected = _ort_outputs(path, {"input": data["input"]})["logits"]
        np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5, err_msg=f"{name} over {protocol}")
        assert (served.argmax(1) == expected.argmax(1)).all()


def test_served_accuracy_through_workbench_evaluate(server, repository):
    name = "digits_transformer_int8"
    sample, path = repository[1][name]
    with TritonEngine(server.url, name) as engine:
        served = evaluate(engine, sample_data_path(sample, "eval"), reference=sample_path(sample), batch_size=MAX_BATCH)
    local = evaluate(path, sample_data_path(sample, "eval"), reference=sample_path(sample), batch_size=MAX_BATCH)
    assert served.top1 == pytest.approx(local.top1) and served.samples == 360
    assert served.top1_agreement == pytest.approx(local.top1_agreement)


def test_max_batch_size_holds_and_its_error_is_explained(server):
    with TritonEngine(server.url, "digits_cnn_fp32") as engine:
        assert engine.max_batch_size == MAX_BATCH
        over = np.zeros((MAX_BATCH + 1, 1, 8, 8), np.float32)
        with pytest.raises(TritonRequestError, match=rf"batch-size must be <= {MAX_BATCH}.*held {MAX_BATCH + 1} "
                                                     rf"samples; this model takes at most {MAX_BATCH}"):
            engine.run({"input": over})
        assert engine.run({"input": over[:MAX_BATCH]})["logits"].shape == (MAX_BATCH, 10)


def test_dynamic_batching_joins_concurrent_requests(server):
    data = np.load(sample_data_path("digits_cnn", "eval"))["input"]
    expected = _ort_outputs(sample_path("digits_cnn"), {"input": data[:64]})["logits"]
    got = [None] * 64
    with TritonEngine(server.url, "digits_cnn_fp32") as stats:
        before = stats.statistics()

        def client(start):
            with TritonEngine(server.url, "digits_cnn_fp32") as engine:
                for i in range(start, 64, 8):
                    got[i] = engine.run({"input": data[i:i + 1]})["logits"][0]

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = stats.statistics()
    inferences = int(after["inference_count"]) - int(before["inference_count"])
    executions = int(after["execution_count"]) - int(before["execution_count"])
    assert inferences == 64 and executions < inferences, (inferences, executions)  # requests were batched
    sizes = {int(b["batch_size"]) for b in after["batch_stats"]}
    assert max(sizes) > 1 and max(sizes) <= MAX_BATCH
    np.testing.assert_allclose(np.stack(got), expected, rtol=1e-5, atol=1e-5)


def test_a_second_server_on_a_taken_port_fails_clearly(server, repository, runtime):
    with pytest.raises(TritonServeError, match=rf"port {server.http_port} on 127.0.0.1 is taken.*--port"):
        serve_triton(repository[0], port=server.http_port, runtime=runtime)
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "serve", str(repository[0]), "--port",
                           str(server.http_port)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "is taken" in done.stderr
    assert server.ready()  # the first server is unharmed


def test_stop_leaves_no_process_behind(tmp_path, runtime, workspace):
    export_triton(sample_path("digits_cnn"), tmp_path, max_batch_size=4)
    served = serve_triton(tmp_path, runtime=runtime)
    group = served.pid
    members = group_members(group)
    assert len(members) >= 3  # watchdog, tritonserver, a Python-backend stub
    shm = list(Path("/dev/shm").glob(f"{served._shm_prefix}*"))
    served.stop()
    assert group_members(group) == [] and not served.is_running() and not served.ready()
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in members)
    assert shm and not any(p.exists() for p in shm)
    served.stop()  # idempotent


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _start_cli(repository, port):
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(repository), "--port", str(port),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return proc, json.loads(line)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_serve_answers_ready_and_stops_on_a_signal(tmp_path, signum, workspace):
    export_triton(sample_path("digits_transformer"), tmp_path)
    proc, info = _start_cli(tmp_path, free_port())
    try:
        assert {"url", "grpc_url", "metrics_url", "models", "pid"} <= set(info)
        assert info["url"].startswith("http://127.0.0.1:") and info["grpc_url"].startswith("127.0.0.1:")
        with urllib.request.urlopen(info["ready_url"], timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(info["metrics_url"], timeout=5) as response:
            assert b"nv_inference_count" in response.read()
        assert group_members(info["pid"])
    finally:
        proc.send_signal(signum)
        code = proc.wait(60)
    assert code == 0, proc.stderr.read()
    assert group_members(info["pid"]) == []


def test_the_server_stops_when_its_starter_dies(tmp_path, workspace):
    """A notebook kernel killed outright (no atexit): the watchdog stops the server by itself."""
    export_triton(sample_path("digits_cnn"), tmp_path)
    script = textwrap.dedent(f"""
        import time
        from workbench.workflows.triton.serve import serve_triton
        server = serve_triton({str(tmp_path)!r})
        print(server.pid, flush=True)
        time.sleep(600)
    """)
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    group = int(starter.stdout.readline())
    assert group_members(group)
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 30
    while group_members(group) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_members(group) == []


def test_perf_measures_levels_and_rows_join_the_results_table(server, repository, tmp_path):
    result = perf(server.url, "digits_cnn_int8", concurrency=(1, 4), data=sample_data_path("digits_cnn", "eval"),
                  batch=2, duration_s=0.5, reference=sample_path("digits_cnn"))
    assert [lv["concurrency"] for lv in result["levels"]] == [1, 4]
    for level in result["levels"]:
        assert level["requests"] > 0 and level["samples"] == 2 * level["requests"]
        assert level["min_ms"] <= level["median_ms"] <= level["p90_ms"] <= level["p99_ms"] <= level["max_ms"]
        server_side = level["server"]
        assert server_side["requests"] == level["requests"]  # the server counted the same requests
        assert server_side["compute_infer_ms"] > 0 and server_side["queue_ms"] >= 0
    local = evaluate(repository[1]["digits_cnn_int8"][1], sample_data_path("digits_cnn", "eval"))
    assert result["evaluation"]["top1"] == pytest.approx(local.top1)
    rows = perf_rows(result, repository=repository[0])
    assert [r["variant"] for r in rows] == ["int8-minmax @triton c1", "int8-minmax @triton c4"]
    assert {r["precision"] for r in rows} == {"INT8"}
    assert all(r["backend"] == "triton" and r["model"] == "digits_cnn" and r["top1"] == pytest.approx(local.top1)
               for r in rows)
    table = ResultsTable(tmp_path / "results.jsonl")
    for row in rows:
        table.add(row)
    frame = table.filter(backend="triton")
    assert len(frame) == 2 and frame["median_ms"].notna().all()


def test_cli_perf_json_adds_rows(server, repository, workspace):
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "perf", f"grpc://{server.grpc_url}", "--model",
                           "digits_transformer_fp32", "--concurrency", "2", "--duration", "0.5", "--data",
                           str(sample_data_path("digits_transformer", "eval")), "--repository", str(repository[0]),
                           "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["protocol"] == "grpc" and len(data["rows"]) == 1
    assert data["results"][0]["model"] == "digits_transformer" and data["results"][0]["top1"] > 0.9
    assert ResultsTable().get(data["rows"][0])["backend"] == "triton"
    missing = subprocess.run([sys.executable, "-m", "workbench.cli", "perf", server.url, "--model", "nope", "--json"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "does not serve model 'nope'" in missing.stderr


def test_unservable_repositories_are_refused(tmp_path, runtime):
    with pytest.raises(WorkbenchError, match="holds no model"):
        serve_triton(tmp_path, runtime=runtime)
