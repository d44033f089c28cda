"""Sweeps and the doctor on a real Dask cluster: a ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

Each worker has its own workspace (as separate machines would), so every variant a worker
measures is made there afresh; the files travel by hash. Checked against in-process runs of the
same sweeps: the same variants (file hashes) and the same accuracy figures; latency jobs never
overlap on a worker's ``bench`` resource; a failing job comes back as a row; a worker killed
mid-sweep loses only its running job; bad addresses fail in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import distributed  # in the test extra, so CI has it: these tests never skip
import numpy as np
import onnx
import pandas as pd
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from workbench import cli
from workbench.datasets import save_npz
from workbench.doctor.teaching import teaching_case_path
from workbench.precision import Recipe
from workbench.samples import sample_data_path, sample_path
from workbench.tables.results import ResultsTable
from workbench.views.tradeoff_figures import VARIANTS, tradeoff_figure
from workbench.workflows.cluster import ClusterRunner, connect, open_runner
from workbench.workflows.jobs import ClusterError, FileRef, JobError, arrays_ref
from workbench.workflows.sweep import measure_variants

DASK = str(Path(sys.executable).with_name("dask"))
MODELS = ("digits_cnn", "digits_transformer")
RECIPES = [Recipe("fp32"), Recipe("fp16"), Recipe("int8")]
SWEEP = dict(batch_sizes=(1, 8), iterations=20, warmup=2, threads=1, progress=False)
ACCURACY = ("top1", "top5", "top1_agreement", "min_cosine", "min_sqnr_db", "samples", "precision", "variant",
            "recipe_label", "accuracy_on", "latency_on", "size_bytes", "calibration_samples", "tool")


class Cluster:
    """A scheduler and worker processes started for a test; stopped by :meth:`stop`."""

    def __init__(self, root: Path, workers: dict[str, dict]):
        self.root, self.procs, self.workers = root, {}, {}
        file = root / "scheduler.json"
        self.procs["scheduler"] = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
            stdout=subprocess.DEVNULL, stderr=open(root / "scheduler.log", "w"))
        deadline = time.time() + 60
        while not file.is_file() and time.time() < deadline:
            time.sleep(0.1)
        self.address = json.loads(file.read_text())["address"]
        for name, spec in workers.items():
            env = {**os.environ, "WORKBENCH_WORKSPACE": str(root / f"workspace-{name}")}
            argv = [DASK, "worker", self.address, "--name", name, "--nthreads", str(spec.get("threads", 1)),
                    "--no-nanny", "--host", "127.0.0.1", "--no-dashboard"]
            if spec.get("resources"):
                argv += ["--resources", spec["resources"]]
            self.procs[name] = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                                stderr=open(root / f"{name}.log", "w"))
        self.client = distributed.Client(self.address, set_as_default=False, timeout=60)
        self.client.wait_for_workers(len(workers), timeout=120)
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        self.workers = {w["name"]: address for address, w in info.items()}

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def stop(self) -> None:
        self.client.close()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Worker ``a`` runs two tasks at once, ``b`` one; both offer one ``bench`` resource."""
    made = Cluster(tmp_path_factory.mktemp("cluster"), {"a": {"threads": 2, "resources": "bench=1"},
                                                        "b": {"threads": 1, "resources": "bench=1"}})
    yield made
    made.stop()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The same sweeps in this process, variants made in a workspace of their own."""
    folder = tmp_path_factory.mktemp("in-process")
    return {m: measure_variants(sample_path(m), RECIPES, sample_data_path(m, "calib"), sample_data_path(m, "eval"),
                                workspace=folder / "variants", **SWEEP) for m in MODELS}


class ShipThenForget(ClusterRunner):
    """Ships every file, then deletes the caller's copies: the workers can only use what was
    shipped, as machines without a shared disk would."""

    def _ship(self, jobs):
        blobs = super()._ship(jobs)
        for origin in {ref.origin for job in jobs for ref in job.refs()}:
            Path(origin).unlink()
        return blobs


@pytest.fixture(scope="module")
def on_cluster(cluster, tmp_path_factory):
    """Both sample models swept on the cluster from copies that are gone once shipped."""
    root = tmp_path_factory.mktemp("client")
    table = ResultsTable(root / "results.jsonl")
    rows = {}
    with ShipThenForget(cluster.client, ship=True) as runner:
        for m in MODELS:
            files = [shutil.copy(p, root) for p in (sample_path(m), sample_data_path(m, "calib"),
                                                     sample_data_path(m, "eval"))]
            rows[m] = measure_variants(*files[:1], RECIPES, *files[1:], table=table, client=runner, **SWEEP)
            assert not any(Path(f).exists() for f in files)
    return rows, table


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (np.isnan(a) and np.isnan(b))
    return a == b


def test_sweep_on_a_cluster_gives_the_same_variants_and_accuracy(in_process, on_cluster, cluster):
    rows, table = on_cluster
    for model in MODELS:
        here, there = in_process[model], rows[model]
        assert [r["variant"] for r in there] == [r["variant"] for r in here] == ["fp32", "fp16", "int8-minmax-all"]
        for a, b in zip(here, there):
            assert b.get("error") is None
            assert b["variant_sha256"] == a["variant_sha256"] and b["variant_key"] == a["variant_key"]
            assert b["model"] == model
            for column in ACCURACY:
                assert _same(a.get(column), b.get(column)), (model, a["variant"], column, a.get(column), b.get(column))
            assert (b["calibration"] is None) == (a["calibration"] is None)  # the copy's path, as given
            assert b["calibration"] is None or Path(b["calibration"]).name == Path(a["calibration"]).name
            assert b["outputs"] == a["outputs"]
            assert set(b["latency"]) == {"1", "8"} and b["median_ms"] > 0 and b["batch"] == 1
            # where and when: in process no worker; on the cluster the worker that timed it
            assert a["worker"] is None and a["jobs"][0]["part"] == "measure" and a["host"] == socket.gethostname()
            assert b["worker"] in cluster.workers.values() and b["host"] == socket.gethostname()
            assert [j["part"] for j in b["jobs"]] == ["accuracy", "latency"] and b["started"] < b["finished"]
            assert b["jobs"][1]["worker"] == b["worker"] and b["machine"] and b["hardware"]["cpu_count"]
            assert b["versions"]["onnxruntime"]
    # the workers made the variants in their own workspaces from shipped copies of the inputs
    made = [p for name in ("a", "b") for p in (cluster.root / f"workspace-{name}" / "variants").glob("*.onnx")]
    assert {p.name for p in made} >= {Path(r["variant_path"]).name for m in MODELS for r in rows[m]}
    shipped = {p.name for name in ("a", "b") for p in (cluster.root / f"workspace-{name}" / "blobs").glob("*/*")}
    assert shipped >= {"digits_cnn.onnx", "digits_cnn.calib.npz", "digits_transformer.eval.npz"}
    assert len(table) == 6 and all(r.get("worker") for r in table.load())


def test_a_sweep_on_a_cluster_takes_what_the_table_holds_instead_of_measuring_again(on_cluster, cluster, tmp_path):
    _, shared = on_cluster
    table = ResultsTable(tmp_path / "results.jsonl")  # a copy: other tests count the shared table's rows
    table.path.write_bytes(shared.path.read_bytes())
    before = table.load()
    args = (sample_path("digits_cnn"), RECIPES, sample_data_path("digits_cnn", "calib"),
            sample_data_path("digits_cnn", "eval"))
    measured = [r["id"] for r in before if r["model"] == "digits_cnn"]
    again = measure_variants(*args, table=table, client=cluster.address, **SWEEP)
    assert [r["id"] for r in again] == measured and len(table) == len(before)  # found by the variants' keys
    assert not any(r.get("error") for r in again)
    # in process too: the rows name the workers' copies of the variants, found by the same keys
    here = measure_variants(*args, table=table, workspace=tmp_path / "variants", **SWEEP)
    assert [r["id"] for r in here] == measured and len(table) == len(before)
    fresh = measure_variants(*args[:1], RECIPES[:1], *args[2:], table=table, client=cluster.address,
                             remeasure=True, **SWEEP)
    assert fresh[0]["id"] not in measured and len(table) == len(before) + 1
    assert fresh[0]["variant_sha256"] == again[0]["variant_sha256"] and fresh[0]["top1"] == again[0]["top1"]


def _interval(job: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(job["started"]), datetime.fromisoformat(job["finished"])


def test_benchmarks_never_overlap_on_a_workers_bench_resource(on_cluster, cluster):
    rows, _ = on_cluster
    jobs = [j for m in MODELS for r in rows[m] for j in r["jobs"]]
    for worker in cluster.workers.values():
        latency = sorted((_interval(j) for j in jobs if j["worker"] == worker and j["part"] == "latency"))
        for (_, end), (start, _) in zip(latency, latency[1:]):
            assert start >= end, f"two benchmarks at once on {worker}"
    # worker a runs two tasks at once, and did: so the resource, not the thread count, kept its
    # benchmarks apart
    mine = [_interval(j) for j in jobs if j["worker"] == cluster.workers["a"]]
    assert any(p[0] < q[1] and q[0] < p[1] for n, p in enumerate(mine) for q in mine[n + 1:])


def test_a_failing_job_comes_back_as_a_row_and_the_sweep_goes_on(cluster, tmp_path):
    table = ResultsTable(tmp_path / "results.jsonl")
    recipes = [Recipe("int8", exclude_nodes=("no-such-node",)), Recipe("fp32")]
    rows = measure_variants(sample_path("digits_cnn"), recipes, sample_data_path("digits_cnn", "calib"),
                            sample_data_path("digits_cnn", "eval"), table=table, client=cluster.address, **SWEEP)
    bad, good = rows
    assert "no-such-node" in bad["error"] and bad.get("top1") is None
    assert bad.get("median_ms") is None and bad["precision"] == "INT8" and bad["worker"] in cluster.workers.values()
    assert good.get("error") is None and good["top1"] > 0.9
    assert [r["variant"] for r in table.load()] == ["fp32"]  # failed rows are returned, not stored


def test_a_latency_resource_no_worker_offers_is_refused_before_anything_runs(cluster):
    runner = ClusterRunner(cluster.client, latency_resources={"onnxruntime": {"GPU": 1}})
    with pytest.raises(ClusterError, match=r"resource\(s\) \['GPU'\].*--resources GPU=1"):
        measure_variants(sample_path("digits_cnn"), [Recipe("fp32")], None, sample_data_path("digits_cnn", "eval"),
                         client=runner, **SWEEP)
    # TensorRT is the workers' business, not this machine's: refused for want of a GPU worker
    with pytest.raises(ClusterError, match=r"\['GPU'\]"):
        measure_variants(sample_path("digits_cnn"), [Recipe("fp32")], None, sample_data_path("digits_cnn", "eval"),
                         backends=("tensorrt",), client=cluster.address, **SWEEP)


def test_the_doctor_on_a_cluster_reports_what_it_reports_in_process(cluster, tmp_path, monkeypatch, capsys):
    teaching = str(teaching_case_path("digits_cnn_conv1_c5_x300"))
    argv = ["doctor", teaching, "--calib", str(sample_data_path("digits_cnn", "calib")), "--eval",
            str(sample_data_path("digits_cnn", "eval")), "--no-latency", "--calib-sizes", "8", "64", "--json"]
    reports = []
    for extra in ([], ["--scheduler", cluster.address]):
        monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / f"ws{len(reports)}"))
        assert cli.main(argv + extra) == 0
        reports.append(json.loads(capsys.readouterr().out))
    here, there = reports
    for key in ("fp32_accuracy", "int8_accuracy", "recipe", "fixed_accuracy", "evaluations", "calibration"):
        assert there[key] == here[key], key
    assert there["calibration"]["size_curve"]  # the sizes' evaluations, run together on the cluster
    assert [c["node"] for c in there["culprits"]] == [c["node"] for c in here["culprits"]]
    assert [(e["what"], e["top1"]) for e in there["evaluation_log"]] == [
        (e["what"], e["top1"]) for e in here["evaluation_log"]]
    assert {e["worker"] for e in here["evaluation_log"]} == {None}
    remote = [e for e in there["evaluation_log"] if e["what"] != "fp32"]
    assert remote and all(e["worker"] in cluster.workers.values() for e in remote)


def _stateful_model(path: Path) -> str:
    """A voice-activity-like model: audio ``[N, 16]``, a scalar rate ``sr`` and a state ``[2, N, 8]``
    whose samples run along axis 1 (what the data description, ``__spec__``, says)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["audio", "w"], ["h"], name="proj"),
             helper.make_node("Cast", ["sr"], ["sr_f"], name="sr_cast", to=TensorProto.FLOAT),
             helper.make_node("Mul", ["h", "sr_f"], ["h_sr"], name="scale"),
             helper.make_node("ReduceSum", ["state", "axis0"], ["s"], name="state_sum", keepdims=0),
             helper.make_node("Add", ["h_sr", "s"], ["out"], name="mix")]
    graph = helper.make_graph(
        nodes, "vad",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", 16]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, []),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "N", 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 8])],
        [numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w"),
         numpy_helper.from_array(np.array([0], np.int64), "axis0")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _stateful_data(path: Path, samples: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    arrays = {"audio": rng.standard_normal((samples, 16)).astype(np.float32), "sr": np.array(3, np.int64),
              "state": rng.standard_normal((2, samples, 8)).astype(np.float32)}
    return str(save_npz(path, arrays, sample_axes={"state": 1}))


def test_the_doctor_keeps_the_data_description_on_a_cluster(cluster, tmp_path, monkeypatch, capsys):
    """A scalar input and a state batched along axis 1: the workers batch the shipped data as this process does."""
    model = _stateful_model(tmp_path / "vad.onnx")
    argv = ["doctor", model, "--calib", _stateful_data(tmp_path / "calib.npz", 32, 1), "--eval",
            _stateful_data(tmp_path / "eval.npz", 48, 2), "--no-latency", "--layerwise-samples", "16",
            "--calib-sizes", "4", "16", "--json"]
    reports = []
    for extra in ([], ["--scheduler", cluster.address]):
        monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / f"ws{len(reports)}"))
        assert cli.main(argv + extra) == 0, capsys.readouterr().err
        reports.append(json.loads(capsys.readouterr().out))
    here, there = reports
    for key in ("metric", "fp32_value", "int8_value", "fixed_value", "recipe", "evaluations", "calibration"):
        assert there[key] == here[key], key
    assert [(e["what"], e["value"]) for e in there["evaluation_log"]] == [
        (e["what"], e["value"]) for e in here["evaluation_log"]]
    assert len(there["calibration"]["size_curve"]) == 2
    remote = [e for e in there["evaluation_log"] if e["what"] != "fp32"]
    assert remote and all(e["worker"] in cluster.workers.values() for e in remote)


# --------------------------------------------------------------------------------------------
# The plan runner: `workbench run PLAN --scheduler ADDRESS` / the plan's `scheduler:`
# --------------------------------------------------------------------------------------------


def _plan(folder: Path, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"model": str(sample_path("digits_cnn")), "calibration": str(sample_data_path("digits_cnn", "calib")),
            "evaluation": str(sample_data_path("digits_cnn", "eval")), "metric": "top1",
            "variants": ["fp16", {"precision": "int8", "method": "entropy", "num_samples": 32}],
            "batch_sizes": [1, 4], "benchmark": {"iterations": 10, "warmup": 2, "threads": 1},
            "profile_layers": False, "gates": {"max_accuracy_drop": 5.0, "min_sqnr_db": 10.0},
            "doctor": {"layerwise_samples": 64}, "results": str(folder / "results.jsonl"), **extra}
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


RUN_FIGURES = ("name", "precision", "sha256", "calibration_sha256", "backend", "metric_value", "top1", "top5",
               "top1_agreement", "min_cosine", "min_sqnr_db", "max_abs_error", "outputs", "samples",
               "accuracy_drop", "accuracy_on", "latency_on", "size_bytes", "variant_cached", "measured_cached")


def test_a_plan_runs_on_a_cluster_with_the_results_it_has_in_process(cluster, tmp_path, monkeypatch, capsys):
    runs = []
    for name, extra in (("here", {}), ("there", {"scheduler": cluster.address})):  # the plan's key
        monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / name / "workspace"))
        assert cli.main(["run", str(_plan(tmp_path / name, **extra)), "--json"]) == 0, capsys.readouterr().err
        runs.append(json.loads(capsys.readouterr().out))
    here, there = runs
    entries = {"here": here["variants"] + here["baseline"], "there": there["variants"] + there["baseline"]}
    assert [v["name"] for v in entries["there"]] == [v["name"] for v in entries["here"]] == [
        "fp16", "int8-entropy", "fp32-reference"]
    for a, b in zip(entries["here"], entries["there"]):
        assert {k: b[k] for k in RUN_FIGURES} == {k: a[k] for k in RUN_FIGURES}, a["name"]
        assert a["worker"] is None and a["host"] == socket.gethostname() and a["started"] < a["finished"]
        assert b["worker"] in cluster.workers.values() and b["host"] == socket.gethostname()
        assert b["machine"] and b["started"] < b["finished"] and b["median_ms"] > 0
    assert [(g["gate"], g["variant"], g["value"], g["passed"]) for g in there["gates"] if "latency" not in g["gate"]] \
        == [(g["gate"], g["variant"], g["value"], g["passed"]) for g in here["gates"] if "latency" not in g["gate"]]
    # the plan's doctor step ran its evaluations on the cluster (its latency is measured here, each run its own)
    same = [k for k in here["doctor"] if k not in ("summary", "variants")]
    assert {k: there["doctor"][k] for k in same} == {k: here["doctor"][k] for k in same}
    assert [line for line in there["doctor"]["summary"] if "latency" not in line] == [
        line for line in here["doctor"]["summary"] if "latency" not in line]
    assert {k: Path(v).name for k, v in there["doctor"]["variants"].items() if v} == {
        k: Path(v).name for k, v in here["doctor"]["variants"].items() if v}
    assert there["plan"]["scheduler"] == cluster.address and here["plan"]["scheduler"] is None
    stored = ResultsTable(tmp_path / "there" / "results.jsonl").load()
    assert len(stored) == 3 and all(r["worker"] in cluster.workers.values() for r in stored)


def test_run_scheduler_flag_wins_and_unreachable_addresses_exit_2_in_one_line(cluster, tmp_path, capsys):
    unreachable = "tcp://127.0.0.1:1"
    for plan, extra, where in ((_plan(tmp_path / "key", scheduler=unreachable), [], "scheduler: "),
                               (_plan(tmp_path / "flag", scheduler=cluster.address), ["--scheduler", unreachable], "")):
        started = time.time()
        assert cli.main(["run", str(plan), "--json", *extra]) == 2
        out, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and f"{where}cannot reach a Dask scheduler at {unreachable}" in lines[0], err
        assert f"cannot reach a Dask scheduler at {unreachable}" in json.loads(out)["error"]
        assert time.time() - started < 30 and not (plan.parent / "results.jsonl").exists()  # nothing ran


def test_a_worker_killed_mid_sweep_loses_only_its_running_job(tmp_path, in_process):
    killed = Cluster(tmp_path, {"x": {"resources": "bench=1"}, "y": {"resources": "bench=1"}})
    try:
        _kill_mid_sweep(killed, in_process["digits_cnn"])
    finally:
        killed.stop()


def _executing(client) -> dict[str, list]:
    return client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])


def _kill_mid_sweep(killed: Cluster, expected: list[dict]) -> None:
    recipes = RECIPES + [Recipe("int8", method="entropy")]
    out: dict = {}
    delivered: list[str] = []  # progress lines: "<job> on <worker>", one per result received

    def sweep_on_cluster():
        out["rows"] = measure_variants(
            sample_path("digits_cnn"), recipes, sample_data_path("digits_cnn", "calib"),
            sample_data_path("digits_cnn", "eval"), client=killed.address,
            **{**SWEEP, "iterations": 1500, "progress": lambda update: delivered.append(update.message)})

    sweep = threading.Thread(target=sweep_on_cluster)
    sweep.start()
    victim, key, deadline = None, None, time.time() + 180
    while victim is None and time.time() < deadline:  # a worker whose finished job came back, now benchmarking
        for address, keys in _executing(killed.client).items():
            done_there = any(m.endswith(f" on {address}") for m in list(delivered))
            if done_there and any("latency" in k for k in keys):
                victim, key = address, next(k for k in keys if "latency" in k)
                break
        time.sleep(0.05)
    assert victim is not None, "no benchmark ran"
    name = next(n for n, a in killed.workers.items() if a == victim)
    kill_time = datetime.now().astimezone()
    killed.kill(name)
    sweep.join(timeout=300)
    rows = out["rows"]
    assert all(r.get("error") is None for r in rows), [r.get("error") for r in rows]
    index = int(key.rsplit("-", 1)[1]) // 2  # two jobs per item, in order
    lost = rows[index]
    assert lost["jobs"][1]["rescheduled"] >= 1 and lost["jobs"][1]["worker"] != victim
    # what the killed worker had finished before it died came back and was not run again
    before = [j for r in rows for j in r["jobs"] if j["worker"] == victim]
    assert before and all(_interval(j)[1] < kill_time for j in before)
    for a, b in zip(expected, rows[:3]):
        assert b["variant_sha256"] == a["variant_sha256"] and b["top1"] == a["top1"]


def test_bad_scheduler_addresses_fail_in_one_line(tmp_path, monkeypatch):
    model, eval_data = sample_path("digits_cnn"), sample_data_path("digits_cnn", "eval")
    started = time.time()
    with pytest.raises(ClusterError, match=r"cannot reach a Dask scheduler at tcp://127\.0\.0\.1:1 .*dask scheduler"):
        measure_variants(model, [Recipe("fp32")], None, eval_data, client="tcp://127.0.0.1:1", progress=False)
    assert time.time() - started < 5  # refused at once, not after Dask's connect retries
    with pytest.raises(ClusterError, match="not a Dask scheduler address; give tcp://HOST:PORT"):
        measure_variants(model, [Recipe("fp32")], None, eval_data, client="my-laptop", progress=False)
    with pytest.raises(ClusterError, match="client must be"):
        measure_variants(model, [Recipe("fp32")], None, eval_data, client=42, progress=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def answer():
        conn, _ = listener.accept()
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nnot dask\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(ClusterError, match="answers but not as a Dask scheduler"):
        connect(f"tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=3)
    listener.close()


def test_a_scheduler_without_workers_is_refused(tmp_path):
    empty = Cluster.__new__(Cluster)
    empty.root, empty.procs = tmp_path, {}
    file = tmp_path / "scheduler.json"
    empty.procs["scheduler"] = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not file.is_file() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        with pytest.raises(ClusterError, match="has no workers .*dask worker"):
            with open_runner(address, timeout=1):
                pass
    finally:
        empty.procs["scheduler"].terminate()
        empty.procs["scheduler"].wait(timeout=20)


def test_cli_bad_scheduler_exits_2_with_one_line(tmp_path, capsys):
    argv = ["doctor", str(sample_path("digits_cnn")), "--calib", str(sample_data_path("digits_cnn", "calib")),
            "--eval", str(sample_data_path("digits_cnn", "eval")), "--no-latency", "--scheduler"]
    assert cli.main(argv + ["not an address"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a Dask scheduler address; give tcp://HOST:PORT" in err[0]
    done = subprocess.run([sys.executable, "-m", "workbench.cli"] + argv + ["tcp://127.0.0.1:1", "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "WORKBENCH_WORKSPACE": str(tmp_path)})
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach a Dask scheduler at tcp://127.0.0.1:1" in lines[0], done.stderr
    assert "cannot reach" in json.loads(done.stdout)["error"]


def test_in_process_runs_import_nothing_of_dask(tmp_path):
    code = (
        "import sys\n"
        "from workbench.precision import Recipe\n"
        "from workbench.samples import sample_data_path, sample_path\n"
        "from workbench.workflows.sweep import measure_variants\n"
        "import workbench.workflows.cluster, workbench.workflows.doctor\n"
        "rows = measure_variants(sample_path('digits_cnn'), [Recipe('fp32')], None,\n"
        "                        sample_data_path('digits_cnn', 'eval'), batch_sizes=(1,), iterations=2, progress=False)\n"
        "assert rows[0]['worker'] is None and rows[0]['top1'] > 0.9\n"
        "from workbench.workflows.run import run_plan\n"
        f"result = run_plan({str(_plan(tmp_path / 'plan', variants=['fp16'], doctor=False))!r})\n"
        "entry = result.to_dict()['variants'][0]\n"
        "assert entry['worker'] is None and entry['host'] and entry['top1'] > 0.9\n"
        "print([m for m in ('dask', 'distributed') if m in sys.modules])\n")
    env = {**os.environ, "WORKBENCH_WORKSPACE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_files_travel_by_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "here"))
    ref = FileRef.for_model(sample_path("digits_cnn"))
    assert ref.local_path() == Path(ref.origin)
    blob = ref.read()
    moved = FileRef(str(tmp_path / "elsewhere" / "digits_cnn.onnx"), ref.sha256, ref.files, "model")
    with pytest.raises(JobError, match="not on this worker and was not shipped"):
        moved.materialize(None)
    local = moved.materialize(blob)  # a worker without the file writes it once, under its own name
    assert local.name == "digits_cnn.onnx" and local.parent.name == ref.sha256 and moved.local_path() == local
    forged = FileRef(str(tmp_path / "x.onnx"), "0" * 64, ref.files, "model")
    with pytest.raises(JobError, match="not on this worker"):
        forged.materialize(blob)
    arrays = {"input": np.arange(12, dtype=np.float32).reshape(3, 4)}
    first, again = arrays_ref(arrays, np.array([0, 1, 2])), arrays_ref(dict(arrays), np.array([0, 1, 2]))
    assert first == again and first.shown == "arrays"  # content-addressed: written once


def test_the_tradeoff_plot_never_mixes_machines_on_a_latency_axis():
    rows = [{"id": f"r{i}", "model": "m", "variant": f"v{i}", "precision": "FP32", "backend": "onnxruntime",
             "median_ms": 1.0 + i, "top1": 0.9 + 0.01 * i, "machine": machine}
            for i, machine in enumerate(["box-1", "box-1", "box-2 / NVIDIA A100", "box-1"])]
    frame = pd.DataFrame(rows)

    def plotted(fig):
        return sorted(i for t in fig.data if t.meta == VARIANTS for i in t.customdata)

    fig = tradeoff_figure(frame)
    assert plotted(fig) == ["r0", "r1", "r3"] and "on box-1" in fig.layout.title.text
    assert "1 from other machines not shown" in fig.layout.title.text
    assert plotted(tradeoff_figure(frame, selected="r2")) == ["r2"]  # the selected row's machine
    assert plotted(tradeoff_figure(frame, machine="box-2 / NVIDIA A100")) == ["r2"]
    assert plotted(tradeoff_figure(frame, machine=None)) == ["r0", "r1", "r2", "r3"]
    assert plotted(tradeoff_figure(frame, x="top1", y="median_ms")) == ["r0", "r1", "r3"]
    one = frame.assign(machine="box-1")
    assert plotted(tradeoff_figure(one)) == ["r0", "r1", "r2", "r3"] and "on box-1" not in tradeoff_figure(
        one).layout.title.text


def test_progress_links_to_the_dashboard(caplog):
    from workbench.progress import LogProgress, Progress

    seen = []
    Progress(seen.append).link("Dask dashboard", "http://127.0.0.1:8787/status")
    assert seen[0].task == "Dask dashboard" and seen[0].message == "http://127.0.0.1:8787/status"
    with caplog.at_level("INFO", logger="workbench"):
        LogProgress().link("Dask dashboard", "http://127.0.0.1:8787/status")
    assert "Dask dashboard: http://127.0.0.1:8787/status" in caplog.text
