"""Tests of workbench.backends.tensorrt.trtexec_log.

The one real log (../shared/fixtures/trt/yolo-int8-trtexec-8.5/trt.out, TensorRT 8.5.2, 2 MB
verbose) has NO performance summary: it ran ``--dumpProfile`` without
``--separateProfileRun``, and trtexec says so ("The e2e network timing is not reported...").
So the tests assert that it is rejected with that explanation, read its other facts (version,
command, GPU, declared percentiles, per-layer profile) exactly, and test summary parsing on
summaries appended to it:

* ``RESNET18_SUMMARY`` rebuilds the summary of the real resnet18-a100-fp32 run from the
  numbers TREx parsed out of its trtexec log (engine.profile.metadata.json, lists of
  [min, max, mean, median, p99]) in the pre-8.4 trtexec format that printed only p99;
* ``REORDERED_SUMMARY`` is synthetic: statistics out of order, ``percentile(99%)=`` without
  spaces, microseconds, and custom percentiles, to show values are read by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.backends.tensorrt.trtexec_log import (
    parse_statistics,
    parse_trtexec_log,
    version_from_tag,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "trt"
YOLO_LOG = FIXTURES / "yolo-int8-trtexec-8.5" / "trt.out"
STAMP = "[10/31/2023-17:58:58] [I] "

RESNET18_SUMMARY = "\n".join(
    STAMP + line
    for line in [
        "=== Performance summary ===",
        "Throughput: 499.294 qps",
        "Latency: min = 1.98438 ms, max = 2.05927 ms, mean = 2.00003 ms, median = 1.99072 ms, percentile(99%) = 2.05621 ms",
        "Enqueue Time: min = 0.00463867 ms, max = 0.0128174 ms, mean = 0.00530548 ms, median = 0.00537109 ms, percentile(99%) = 0.00585938 ms",
        "H2D Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(99%) = 0 ms",
        "GPU Compute Time: min = 1.98438 ms, max = 2.05927 ms, mean = 2.00003 ms, median = 1.99072 ms, percentile(99%) = 2.05621 ms",
        "D2H Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(99%) = 0 ms",
        "Total Host Walltime: 3.00424 s",
        "Total GPU Compute Time: 3.00005 s",
        "Explanations of the performance metrics are printed in the verbose logs.",
        "",
    ]
)

REORDERED_SUMMARY = "\n".join(
    [
        "[I] === Reporting Options ===",
        "[I] Percentiles: 50,99.9",
        "[I] ",
        "[I] === Performance summary ===",
        "[I] Throughput: 1234.5 qps",
        "[I] Latency: percentile(99.9%)=0.91 ms, max = 1.5 ms, percentile(50%)=0.8 ms, min = 0.7 ms, median = 0.79 ms, mean = 0.81 ms",
        "[I] Enqueue Time: mean = 15 us, min = 12 us, max = 40 us, median = 14 us, percentile(50%) = 14 us, percentile(99.9%) = 39 us",
        "[I] GPU Compute Time: min = 0.6 ms, max = 1.2 ms, mean = 0.7 ms, median = 0.69 ms, percentile(50%) = 0.69 ms, percentile(99.9%) = 1.1 ms",
        "[I] ",
    ]
)


@pytest.fixture(scope="module")
def yolo_log_text() -> str:
    return YOLO_LOG.read_text()


def test_real_log_without_summary_is_rejected_with_the_reason():
    with pytest.raises(ValueError) as error:
        parse_trtexec_log(YOLO_LOG)
    message = str(error.value)
    assert str(YOLO_LOG) in message
    assert "=== Performance summary ===" in message and "--separateProfileRun" in message


def test_real_log_facts(yolo_log_text):
    parsed = parse_trtexec_log(yolo_log_text, require_summary=False)
    assert parsed["performance_summary"] is None
    assert parsed["tensorrt_version"] == "8.5.2"
    assert parsed["gpu"] == "Orin"
    assert parsed["status"] == "PASSED"
    assert parsed["command"] == (
        "/usr/src/tensorrt/bin/trtexec --int8 --onnx=yolo_pytorch_quantized.onnx --exportTimes=times.json "
        "--dumpProfile --exportProfile=profile.json --exportLayerInfo=layer_info.json --verbose"
    )
    assert parsed["argv"][1:3] == ["--int8", "--onnx=yolo_pytorch_quantized.onnx"]
    assert parsed["declared_percentiles"] == [90.0, 95.0, 99.0]
    options = parsed["options"]
    assert options["Model Options"]["Model"] == "yolo_pytorch_quantized.onnx"
    assert options["Build Options"]["Precision"] == "FP32+INT8"
    assert options["Inference Options"]["Duration"] == "3s (+ 200ms warm up)"
    assert options["Device Information"]["Compute Capability"] == "8.7"
    assert len(parsed["warnings"]) == 1 and "--separateProfileRun" in parsed["warnings"][0]


def test_path_given_as_string_is_read():
    parsed = parse_trtexec_log(str(YOLO_LOG), require_summary=False)
    assert parsed["source"] == str(YOLO_LOG) and parsed["gpu"] == "Orin"


def test_real_log_layer_profile_matches_profile_json(yolo_log_text):
    profile = parse_trtexec_log(yolo_log_text, require_summary=False)["layer_profile"]
    exported = json.loads((FIXTURES / "yolo-int8-trtexec-8.5" / "profile.json").read_text())
    timed = [r for r in exported[1:] if r["timeMs"] > 0]  # the printed table omits 0 ms layers
    assert profile["iterations"] == exported[0]["count"] == 11
    assert len(profile["layers"]) == len(timed) == 77
    assert [layer["name"] for layer in profile["layers"]] == [r["name"] for r in timed]
    assert profile["total"] == {
        "name": "Total",
        "time_ms": 4441.97,
        "average_ms": 403.8158,
        "median_ms": 402.0093,
        "percentage": 100.0,
    }
    head = next(layer for layer in profile["layers"] if layer["name"].startswith("{ForeignNode[/head"))
    assert (head["time_ms"], head["average_ms"], head["median_ms"], head["percentage"]) == (
        1245.08,
        113.1891,
        113.1503,
        28.0,
    )


def test_resnet18_summary_values(yolo_log_text):
    parsed = parse_trtexec_log(yolo_log_text + "\n" + RESNET18_SUMMARY)
    summary = parsed["performance_summary"]
    assert summary["throughput_qps"] == 499.294
    assert summary["latency"] == {
        "min_ms": 1.98438,
        "max_ms": 2.05927,
        "mean_ms": 2.00003,
        "median_ms": 1.99072,
        "percentiles_ms": {99.0: 2.05621},
    }
    assert summary["enqueue_time"]["percentiles_ms"] == {99.0: 0.00585938}
    assert summary["h2d_latency"]["mean_ms"] == 0.0 and summary["d2h_latency"]["max_ms"] == 0.0
    assert summary["gpu_compute_time"]["median_ms"] == 1.99072
    assert summary["total_host_walltime_s"] == 3.00424
    assert summary["total_gpu_compute_time_s"] == 3.00005
    # the same numbers TREx parsed from the real run's log
    recorded = json.loads((FIXTURES / "resnet18-a100-fp32" / "engine.profile.metadata.json").read_text())
    for name, key in [("Latency", "latency"), ("Enqueue Time", "enqueue_time"), ("GPU Compute Time", "gpu_compute_time")]:
        stats = summary[key]
        assert [stats["min_ms"], stats["max_ms"], stats["mean_ms"], stats["median_ms"], stats["percentiles_ms"][99.0]] == (
            recorded["performance_summary"][name]
        )
    # the log declared 90,95,99 but this summary prints only p99: reported, not guessed
    assert any("differ from the declared" in w for w in parsed["warnings"])


def test_statistics_are_read_by_name_not_position():
    parsed = parse_trtexec_log(REORDERED_SUMMARY)
    summary = parsed["performance_summary"]
    assert parsed["declared_percentiles"] == [50.0, 99.9]
    assert summary["latency"] == {
        "min_ms": 0.7,
        "max_ms": 1.5,
        "mean_ms": 0.81,
        "median_ms": 0.79,
        "percentiles_ms": {50.0: 0.8, 99.9: 0.91},
    }
    assert summary["enqueue_time"]["mean_ms"] == pytest.approx(0.015)
    assert summary["enqueue_time"]["percentiles_ms"][99.9] == pytest.approx(0.039)
    assert summary["gpu_compute_time"]["percentiles_ms"] == {50.0: 0.69, 99.9: 1.1}
    assert summary["throughput_qps"] == 1234.5
    assert parsed["warnings"] == []
    assert parsed["tensorrt_version"] is None and parsed["command"] is None


def test_parse_statistics_units_and_spacing():
    stats = parse_statistics(" min=1 s, percentile(95%)=250 us, percentile( 90 %) = 2 ms")
    assert stats == {"min_ms": 1000.0, "percentiles_ms": {95.0: 0.25, 90.0: 2.0}}
    assert parse_statistics(" the summation of H2D Latency and GPU Compute Time") is None


def test_text_without_summary_raises():
    with pytest.raises(ValueError, match=r"no '=== Performance summary ===' .*Is the log complete"):
        parse_trtexec_log("[I] === Model Options ===\n[I] Format: ONNX\n")


def test_missing_path_raises(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        parse_trtexec_log(tmp_path / "trt.out")


def test_version_tags():
    assert version_from_tag("8502") == "8.5.2"
    assert version_from_tag("100300") == "10.3.0"
    assert version_from_tag(None) is None
