"""Exporting to a Triton model repository: configs checked field by field against the ONNX models
and the engine metadata, parsed back with Triton's own protobuf; refusals with reasons.

The serving tests (a real tritonserver) are in test_triton_serve.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from workbench.backends import tensorrt_status
from workbench.backends.tensorrt.build import engine_metadata, plan_build
from workbench.backends.tensorrt.cache import (
    METADATA_FILE,
    platform_from_device_properties,
)
from workbench.backends.tensorrt.trtexec import trtexec_command
from workbench.precision import Recipe
from workbench.samples import sample_data_path, sample_path, trt_example_dir
from workbench.tables.results import ResultsTable
from workbench.workflows.sweep import measure_variants
from workbench.workflows.triton.config import (
    TritonExportError,
    config_dict,
    parse_config,
    preferred_batch_sizes,
)
from workbench.workflows.triton.export import export_triton, read_record
from workbench.workflows.triton.perf import perf_analyzer_rows, read_perf_analyzer_csv
from workbench.workflows.triton.serve import docker_command

SAMPLES = ("digits_cnn", "digits_transformer")
ONNX_TYPES = {TensorProto.FLOAT: "TYPE_FP32", TensorProto.FLOAT16: "TYPE_FP16", TensorProto.INT64: "TYPE_INT64"}
FIXTURES = trt_example_dir()


@pytest.fixture(autouse=True)
def _workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))


def _graph_io(path):
    proto = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in proto.graph.initializer}
    def spec(v):
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
        return v.name, ONNX_TYPES[v.type.tensor_type.elem_type], dims
    return ([spec(v) for v in proto.graph.input if v.name not in initializers], [spec(v) for v in proto.graph.output])


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("sample", SAMPLES)
def test_export_matches_the_onnx_model_field_by_field(sample, precision, sample_variant, tmp_path):
    source = sample_path(sample) if precision == "fp32" else sample_variant(sample, "int8").path
    result = export_triton(source, tmp_path / "repo", name=f"{sample}_{precision}", instances=2)

    model_dir = tmp_path / "repo" / f"{sample}_{precision}"
    config = parse_config((model_dir / "config.pbtxt").read_text())  # Triton's protobuf reads it back
    assert config_dict(config) == result["config"]
    assert config.name == f"{sample}_{precision}" and config.platform == "onnxruntime_onnx"
    inputs, outputs = _graph_io(source)
    assert config.max_batch_size == 32  # the samples' first dimension is a dynamic batch
    for tensors, specs in ((config.input, inputs), (config.output, outputs)):
        assert [(t.name, type(config).DESCRIPTOR.file.enum_types_by_name["DataType"].values_by_number[t.data_type].name,
                 list(t.dims)) for t in tensors] == [(n, dtype, dims[1:]) for n, dtype, dims in specs]
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, 0)]  # KIND_AUTO: Triton picks GPU or CPU
    assert not config.HasField("dynamic_batching") and not config.model_warmup
    assert (model_dir / "1" / "model.onnx").read_bytes() == Path(source).read_bytes()
    assert sorted(result["files"]) == sorted(f"{sample}_{precision}/{p}" for p in
                                             ("1/model.onnx", "config.pbtxt", "workbench.json"))
    assert {k: result[k] for k in ("name", "version", "platform")} == {
        "name": f"{sample}_{precision}", "version": 1, "platform": "onnxruntime_onnx"}
    assert read_record(model_dir)["sha256"]


def test_dims_keep_the_batch_dimension_without_batching(tmp_path):
    result = export_triton(sample_path("digits_cnn"), tmp_path, max_batch_size=0)
    assert result["config"]["max_batch_size"] == 0 if "max_batch_size" in result["config"] else True
    assert result["config"]["input"][0]["dims"] == [-1, 1, 8, 8]
    assert result["config"]["output"][0]["dims"] == [-1, 10]


def test_dynamic_batching_prefers_the_measured_batch_sizes(tmp_path):
    table = ResultsTable(tmp_path / "results.jsonl")
    rows = measure_variants(sample_path("digits_cnn"), [Recipe("fp32")], eval_data=sample_data_path("digits_cnn"),
                            batch_sizes=(1, 4, 16, 64), iterations=20, warmup=2, table=table, progress=False)
    sweep = rows[0]["latency"]
    expected = preferred_batch_sizes(sweep, 32)
    result = export_triton(rows[0]["variant_path"], tmp_path / "repo", dynamic_batching=True, results=table)
    assert result["preferred_batch_sizes"] == expected
    assert result["config"]["dynamic_batching"].get("preferred_batch_size", []) == expected
    assert all(1 < b <= 32 for b in expected)  # 64 was measured but is over max_batch_size
    # From the row itself (what the tradeoff explorer's selection is):
    again = export_triton(table.load()[0], tmp_path / "repo2", dynamic_batching=True, max_batch_size=64)
    assert again["preferred_batch_sizes"] == preferred_batch_sizes(sweep, 64)
    assert again["name"] == "digits_cnn_fp32" and again["model"] == "digits_cnn" and again["precision"] == "FP32"


def test_preferred_sizes_are_where_batching_pays():
    sweep = {"1": {"throughput": 100.0}, "4": {"throughput": 350.0}, "8": {"throughput": 300.0},
             "16": {"throughput": 900.0}, "64": {"throughput": 2000.0}}
    assert preferred_batch_sizes(sweep, 32) == [4, 16]
    assert preferred_batch_sizes({}, 32) == [] and preferred_batch_sizes(None, 8) == []


def test_warmup_uses_real_samples(tmp_path):
    data = sample_data_path("digits_cnn")
    result = export_triton(sample_path("digits_cnn"), tmp_path, warmup=data, max_batch_size=8)
    warmups = result["config"]["model_warmup"]
    assert [(w["name"], w["batch_size"]) for w in warmups] == [("sample_batch1", 1), ("sample_batch8", 8)]
    assert warmups[0]["inputs"]["input"] == {"data_type": "TYPE_FP32", "dims": [1, 8, 8], "input_data_file": "input"}
    first = np.load(data)["input"][0]
    assert (tmp_path / "digits_cnn" / "warmup" / "input").read_bytes() == first.astype(np.float32).tobytes()


def _tiny_model(path, elem_type=TensorProto.FLOAT, name="x", batch="N"):
    x = helper.make_tensor_value_info(name, elem_type, [batch, 4])
    y = helper.make_tensor_value_info("y", elem_type, [batch, 4])
    graph = helper.make_graph([helper.make_node("Identity", [name], ["y"], name="id")], "tiny", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    return path


def test_what_triton_cannot_express_is_refused_with_the_fix(tmp_path):
    fp8 = _tiny_model(tmp_path / "fp8.onnx", TensorProto.FLOAT8E4M3FN)
    with pytest.raises(TritonExportError, match="FLOAT8E4M3FN.*Fix: keep the model's inputs and outputs in FP32/FP16"):
        export_triton(fp8, tmp_path / "repo")
    unnamed = _tiny_model(tmp_path / "unnamed.onnx", name="")
    with pytest.raises(TritonExportError, match="input #0 has no name.*Fix: name it"):
        export_triton(unnamed, tmp_path / "repo")
    fixed = _tiny_model(tmp_path / "fixed.onnx", batch=1)
    result = export_triton(fixed, tmp_path / "repo")  # first dimension 1, not a batch: max_batch_size 0
    assert result["max_batch_size"] == 0 and result["config"]["input"][0]["dims"] == [1, 4]
    with pytest.raises(TritonExportError, match="needs a dynamic first .batch. dimension.*--max-batch-size 0"):
        export_triton(fixed, tmp_path / "repo", max_batch_size=8, name="again")
    with pytest.raises(TritonExportError, match="dynamic batching needs max_batch_size > 0"):
        export_triton(fixed, tmp_path / "repo", dynamic_batching=True, name="again")
    with pytest.raises(TritonExportError, match="cannot be a Triton model folder"):
        export_triton(fixed, tmp_path / "repo", name="a/b")


def test_existing_files_are_never_overwritten_without_force(tmp_path):
    export_triton(sample_path("digits_cnn"), tmp_path)
    with pytest.raises(TritonExportError, match="--version 2.*--force"):
        export_triton(sample_path("digits_cnn"), tmp_path)
    assert export_triton(sample_path("digits_cnn"), tmp_path, version=2)["files"][0] == "digits_cnn/2/model.onnx"
    with pytest.raises(TritonExportError, match="exists with another config"):
        export_triton(sample_path("digits_cnn"), tmp_path, version=3, max_batch_size=4)
    assert export_triton(sample_path("digits_cnn"), tmp_path, version=1, max_batch_size=4, force=True)["max_batch_size"] == 4
    assert set(json.loads((tmp_path / "digits_cnn" / "workbench.json").read_text())["versions"]) == {"1", "2"}


# --------------------------------------------------------------------------------------------
# TensorRT engines: the metadata the TensorRT backend records
# --------------------------------------------------------------------------------------------


def _engine(tmp_path, io_tensors, *, model="digits_cnn", layers=None, name="engine.plan"):
    """An engine folder as `workbench build` leaves it: engine.plan, metadata.json (and layers.json).

    The metadata is the backend's own (plan_build + engine_metadata, no TensorRT needed), with the
    platform of the real A100 in ../shared/fixtures/trt; the plan's bytes are a stand-in (a real
    plan needs TensorRT and a GPU: see test_a_real_engine_exports).
    """
    folder = tmp_path / "engine"
    folder.mkdir(parents=True, exist_ok=True)
    plan = plan_build(sample_path(model))
    device = json.loads((FIXTURES / "resnet18-a100-fp32" / "engine.metadata.json").read_text())[0]
    platform = platform_from_device_properties(device, "10.16.1.11")
    metadata = engine_metadata(plan, platform, "0" * 64, trtexec_argv=trtexec_command(plan.model_path, plan.recipe,
                               plan.profile), build_seconds=1.0, log_summary={}, engine_bytes=4, io_tensors=io_tensors)
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    (folder / name).write_bytes(b"plan")
    if layers is not None:
        (folder / "layers.json").write_text(json.dumps(layers))
    return folder / name, metadata


needs_fixtures = pytest.mark.skipif(FIXTURES is None, reason="../shared/fixtures/trt (real TensorRT outputs) is not here")


@needs_fixtures
def test_engine_export_takes_io_types_dims_and_gpu_from_the_engine(tmp_path):
    io = [{"name": "input", "mode": "input", "dtype": "HALF", "shape": [-1, 1, 8, 8]},
          {"name": "logits", "mode": "output", "dtype": "FLOAT", "shape": [-1, 10]}]
    engine, metadata = _engine(tmp_path, io)
    result = export_triton(engine, tmp_path / "repo")
    config = parse_config((tmp_path / "repo" / "digits_cnn_trt" / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan"
    assert config_dict(config)["input"] == [{"name": "input", "data_type": "TYPE_FP16", "dims": [1, 8, 8]}]
    assert config_dict(config)["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [10]}]
    assert config.max_batch_size == metadata["profile"]["input"]["max"][0] == 32
    assert dict(config.cc_model_filenames) == {"8.0": "model.plan"}  # the A100's compute capability
    assert [g.kind for g in config.instance_group] == [config.instance_group[0].KIND_GPU]
    assert (tmp_path / "repo" / "digits_cnn_trt" / "1" / "model.plan").read_bytes() == b"plan"
    record = read_record(tmp_path / "repo" / "digits_cnn_trt")
    assert record["tensorrt"]["version"] == "10.16.1.11" and record["tensorrt"]["gpu"] == "NVIDIA A100 80GB PCIe"
    assert any("TensorRT 10.16.1.11" in w and "must be the same" in w for w in result["warnings"])
    with pytest.raises(TritonExportError, match="over the 32 that the engine's optimization profile allows"):
        export_triton(engine, tmp_path / "repo2", max_batch_size=64)


@needs_fixtures
def test_engine_io_types_from_real_layer_information(tmp_path):
    """The real ResNet-18 engine built FP32+FP16 on an A100 computes in FP16 but its I/O stays FP32:
    the config says TYPE_FP32 (the engine's I/O), not the compute precision."""
    layers = json.loads((FIXTURES / "resnet18-a100-fp16" / "engine.graph.json").read_text())
    engine, _ = _engine(tmp_path, [], layers=layers)
    result = export_triton(engine, tmp_path / "repo", name="resnet18")
    assert result["io_types_from"] == "layer info"
    assert result["inputs"] == [{"name": "input.1", "data_type": "TYPE_FP32", "shape": [32, 3, 224, 224]}]
    assert result["outputs"] == [{"name": "191", "data_type": "TYPE_FP32", "shape": [32, 1000]}]
    assert result["max_batch_size"] == 0  # built with a fixed batch of 32: Triton sends whole tensors
    assert result["config"]["input"][0]["dims"] == [32, 3, 224, 224]


@needs_fixtures
def test_fp8_engine_io_is_refused(tmp_path):
    io = [{"name": "input", "mode": "input", "dtype": "FP8", "shape": [-1, 1, 8, 8]},
          {"name": "logits", "mode": "output", "dtype": "FLOAT", "shape": [-1, 10]}]
    engine, _ = _engine(tmp_path, io)
    with pytest.raises(TritonExportError, match="input 'input' is FP8.*Fix: build the engine with FP32/FP16"):
        export_triton(engine, tmp_path / "repo")


def test_engine_without_metadata_is_refused(tmp_path):
    (tmp_path / "model.plan").write_bytes(b"x")
    with pytest.raises(TritonExportError, match="no engine metadata beside it.*workbench build MODEL"):
        export_triton(tmp_path / "model.plan", tmp_path / "repo")


@pytest.mark.skipif(tensorrt_status() is not None, reason=f"needs TensorRT and a GPU: {tensorrt_status()}")
def test_a_real_engine_exports(tmp_path):
    from workbench.backends.tensorrt.build import build_engine

    built = build_engine(sample_path("digits_cnn"), root=tmp_path / "engines")
    result = export_triton(built, tmp_path / "repo")
    io = {t["name"]: t for t in built.metadata["io_tensors"]}
    assert result["io_types_from"] == "engine" and set(io) == {"input", "logits"}
    assert result["config"]["cc_model_filenames"] == {built.metadata["gpu"]["compute_capability"]: "model.plan"}


# --------------------------------------------------------------------------------------------
# The command line, the docker command, perf_analyzer's CSV
# --------------------------------------------------------------------------------------------


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_export_json_contract(tmp_path):
    done = _cli("export", "triton", str(sample_path("digits_transformer")), "--repository", str(tmp_path),
                "--dynamic-batching", "--preferred-batch-sizes", "8", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"repository", "name", "version", "platform", "config", "files"} <= set(data)
    assert data["config"]["dynamic_batching"]["preferred_batch_size"] == [8]
    again = _cli("export", "triton", str(sample_path("digits_transformer")), "--repository", str(tmp_path), "--json")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "--force" in again.stderr
    assert "error" in json.loads(again.stdout)


def test_docker_command_binds_loopback_and_uses_the_recorded_release(tmp_path, monkeypatch):
    argv = docker_command(tmp_path, port=9000)
    assert argv[:2] == ["docker", "run"] and "127.0.0.1:9000:8000" in argv and "127.0.0.1:9001:8001" in argv
    assert "nvcr.io/nvidia/tritonserver:<YY.MM>-py3" in argv and argv[-2:] == ["tritonserver", "--model-repository=/models"]
    io = [{"name": "input", "mode": "input", "dtype": "FLOAT", "shape": [-1, 1, 8, 8]},
          {"name": "logits", "mode": "output", "dtype": "FLOAT", "shape": [-1, 10]}]
    if FIXTURES is None:
        pytest.skip("../shared/fixtures/trt is not here")
    engine, _ = _engine(tmp_path / "e", io)
    export_triton(engine, tmp_path / "repo")
    record = json.loads((tmp_path / "repo" / "digits_cnn_trt" / "workbench.json").read_text())
    record["versions"]["1"]["tensorrt"]["ngc_release"] = "26.10"  # as exported inside the workbench's image
    (tmp_path / "repo" / "digits_cnn_trt" / "workbench.json").write_text(json.dumps(record))
    assert "nvcr.io/nvidia/tritonserver:26.10-py3" in docker_command(tmp_path / "repo")


# perf_analyzer's documented -f output (Perf Analyzer docs, "Visualizing Latency vs. Throughput"): no
# perf_analyzer runs on these machines (its wheel needs glibc 2.38), so its own example is the input.
PERF_CSV = """Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency
1,69.2,225,2148,64,206,11781,19,0,13891,18795,19753,21018
3,84.2,237,1768,21673,209,11742,17,0,35398,43984,47085,51701
4,84.2,279,1604,33669,233,11731,18,1,47045,56545,59225,64886
2,87.2,235,1973,9151,190,11346,17,0,21874,28557,29768,34766
"""


def test_perf_analyzer_csv_becomes_the_same_rows(tmp_path):
    levels = read_perf_analyzer_csv(PERF_CSV)
    assert [lv["concurrency"] for lv in levels] == [1, 2, 3, 4]
    assert levels[0]["median_ms"] == pytest.approx(13.891) and levels[0]["p99_ms"] == pytest.approx(21.018)
    assert levels[0]["server"]["queue_ms"] == pytest.approx(0.064)
    path = tmp_path / "perf.csv"
    path.write_text(PERF_CSV)
    rows = perf_analyzer_rows(path, url="127.0.0.1:8000", model="inception_graphdef")
    assert [r["backend"] for r in rows] == ["triton"] * 4 and rows[1]["throughput"] == pytest.approx(87.2)
    table = ResultsTable(tmp_path / "results.jsonl")
    for row in rows:
        table.add(row)
    assert list(table.frame()["concurrency"]) == [1, 2, 3, 4]
    with pytest.raises(Exception, match="not a perf_analyzer -f CSV"):
        read_perf_analyzer_csv("a,b\n1,2\n")
