"""measure_variants and the notebook tables on the real sample models and their data splits."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest

from workbench.backends import tensorrt_status
from workbench.datasets.calibration_sets import from_npz, load_calibration_set
from workbench.precision import Recipe, make_variant
from workbench.samples import sample_data_path, sample_path
from workbench.tables.results import ResultsTable
from workbench.views.calibration_view import (
    CalibrationPreview,
    image_of,
    samples_figure,
)
from workbench.workflows.sweep import (
    SweepError,
    accuracy_table,
    describe_variants,
    measure_variants,
    op_changes,
    rows_frame,
)

CNN = sample_path("digits_cnn")
CALIB = sample_data_path("digits_cnn", "calib")
EVAL = sample_data_path("digits_cnn", "eval")


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


def _top1(path, options=None):
    so = ort.SessionOptions()
    if (options or {}).get("graph_optimization_level") == "basic":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with np.load(EVAL) as data:
        logits = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(
            None, {"input": data["input"]})[0]
        return float((logits.argmax(1) == data["labels"]).mean())


def test_measure_variants_rows_match_independent_measurements(workspace):
    recipes = [Recipe("fp32"), Recipe("bf16"), Recipe("int8", num_samples=32),
               Recipe("int8", method="percentile", num_samples=256)]
    table = ResultsTable()
    rows = measure_variants(CNN, recipes, CALIB, EVAL, batch_sizes=(1, 8), iterations=5, warmup=1,
                            table=table, progress=False)
    assert [r["variant"] for r in rows] == ["fp32", "bf16", "int8-minmax-32", "int8-percentile-256"]
    fp32, bf16, minmax, percentile = rows
    for row, recipe in zip(rows, recipes):
        variant = make_variant(CNN, recipe, CALIB, progress=False)  # the cached one
        assert variant.cached and row["variant_path"] == str(variant.path)
        assert row["top1"] == pytest.approx(_top1(variant.ort_path, variant.ort_session_options))
        assert row["size_bytes"] == variant.path.stat().st_size
        assert row["backend"] == "onnxruntime" and row["model"] == "digits_cnn" and row["samples"] == 360
        assert set(row["latency"]) == {"1", "8"} and row["batch"] == 1
        assert 0 < row["latency"]["1"]["median_ms"] == row["median_ms"] <= row["p99_ms"]
        assert row["latency"]["8"]["throughput"] > 0
    assert fp32["top1"] == pytest.approx(358 / 360) and fp32["min_sqnr_db"] == math.inf
    assert fp32["calibration_method"] is None and fp32["accuracy_on"] == "variant"
    assert bf16["accuracy_on"] == bf16["latency_on"] == "emulation" and "emulation" in bf16["notes"]
    assert minmax["calibration_samples"] == 32 and percentile["calibration_samples"] == 256
    assert minmax["calibration_method"] == "minmax" and percentile["calibration_method"] == "percentile"
    assert minmax["tool"].startswith("onnxruntime.quantization") and minmax["notes"] is None
    assert 10 < minmax["min_sqnr_db"] < bf16["min_sqnr_db"] < math.inf
    assert minmax["size_bytes"] < fp32["size_bytes"]

    # the rows are in the workspace's table, and a re-run reuses them instead of adding duplicates
    assert [r["id"] for r in table.load()] == [r["id"] for r in rows]
    updates = []
    again = measure_variants(CNN, recipes[:2], CALIB, EVAL, batch_sizes=(8, 1), iterations=5, table=table,
                             progress=updates.append)
    assert [r["id"] for r in again] == [fp32["id"], bf16["id"]] and len(table) == 4
    # progress follows workbench.progress: one task over the grid, the variant at hand as its message
    assert {(u.task, u.total, u.unit) for u in updates} == {("measure digits_cnn", 2, "variant")}
    assert updates[-1].finished and updates[-1].done == 2
    assert list(dict.fromkeys(u.message for u in updates if u.message)) == ["fp32", "bf16"]
    measure_variants(CNN, recipes[:1], CALIB, EVAL, batch_sizes=(1, 8), iterations=5, table=table,
                     remeasure=True, progress=False)
    other_batches = measure_variants(CNN, recipes[:1], CALIB, EVAL, batch_sizes=(4,), iterations=5,
                                     rounds=2, table=table, progress=False)
    assert len(table) == 6 and other_batches[0]["batch"] == 4

    frame = rows_frame(rows)
    assert list(frame["variant"]) == [r["variant"] for r in rows]
    assert frame["median_ms@b8"].tolist() == [r["latency"]["8"]["median_ms"] for r in rows]


def test_measure_variants_refuses_bad_arguments(workspace):
    with pytest.raises(SweepError, match="recipes is empty"):
        measure_variants(CNN, [], CALIB, EVAL)
    with pytest.raises(SweepError, match="Wrap a single recipe in a list"):
        measure_variants(CNN, Recipe("fp32"), CALIB, EVAL)
    with pytest.raises(SweepError, match="one of"):
        measure_variants(CNN, ["fp32"], CALIB, EVAL, backends=["openvino"])
    with pytest.raises(SweepError, match="positive integers"):
        measure_variants(CNN, ["fp32"], CALIB, EVAL, batch_sizes=[0])
    with pytest.raises(SweepError, match="rounds must be >= 1"):
        measure_variants(CNN, ["fp32"], CALIB, EVAL, rounds=0)
    with pytest.raises(SweepError, match="eval_data is required"):
        measure_variants(CNN, ["fp32"], CALIB, None)
    with pytest.raises(SweepError, match="need calibration data"):
        measure_variants(CNN, ["int8"], None, EVAL)
    problem = tensorrt_status()
    if problem is not None:  # on a GPU box TensorRT is measured instead
        with pytest.raises(SweepError, match="cannot run here"):
            measure_variants(CNN, ["fp32"], CALIB, EVAL, backends="tensorrt")
    assert not (workspace / "variants").exists()  # nothing made before the arguments were checked


def test_describe_op_changes_and_accuracy_tables(workspace):
    variants = {
        "fp16": make_variant(CNN, "fp16", CALIB, progress=False),
        "int8": make_variant(CNN, Recipe("int8", num_samples=64), CALIB, progress=False),
        "int8 mixed": make_variant(CNN, Recipe("int8", num_samples=64, exclude_nodes=["/classifier/Gemm"]),
                                   CALIB, progress=False),
    }
    described = describe_variants(variants).set_index("variant")
    assert described.loc["int8", "QuantizeLinear"] == described.loc["int8 mixed", "QuantizeLinear"] + 1
    assert described.loc["int8 mixed", "kept_fp32"] == "/classifier/Gemm"
    assert described.loc["int8", "calibration"] == "minmax on 64"
    assert described.loc["fp16", "Cast"] >= 2 and described.loc["fp16", "measured on (ORT CPU)"] == "emulation"
    changes = op_changes(CNN, variants)
    assert changes.loc["QuantizeLinear", "original"] == 0 and changes.loc["QuantizeLinear", "int8"] == 6
    assert "Conv" not in changes.index  # only op types whose counts differ
    acc = accuracy_table(variants, EVAL, CNN).set_index("variant")
    for label, variant in variants.items():
        assert acc.loc[label, "top1"] == pytest.approx(_top1(variant.ort_path))
    assert acc.loc["fp16", "min_sqnr_db"] > acc.loc["int8", "min_sqnr_db"] > 10
    assert set(acc["ran"]) == {"emulation", "variant"}


def test_calibration_preview_draws_the_samples_and_their_statistics():
    calib = load_calibration_set(CALIB, CNN)
    fig = samples_figure(calib, 6, start=10)
    assert len(fig.data) == 6 and fig.layout.annotations[0].text == "#10"
    np.testing.assert_array_equal(fig.data[0].z, calib.inputs["input"][10, 0][::-1])
    assert fig.data[0].zmin == calib.inputs["input"][10:16].min()
    assert image_of(np.ones((3, 4, 5))).shape == (4, 5) and image_of(np.arange(4.0)).shape == (1, 4)
    preview = CalibrationPreview(from_npz(CALIB), n=4)
    assert "p99.9" in preview.stats.value and "256 samples" in preview.stats.value
    preview.start_slider.value = 252
    assert [a.text for a in preview.figure().layout.annotations] == ["#252", "#253", "#254", "#255"]
    with pytest.raises(ValueError, match="start must be 0..255"):
        samples_figure(calib, 4, start=256)
    with pytest.raises(ValueError, match="no input 'image'"):
        samples_figure(calib, input_name="image")
    with pytest.raises(TypeError, match="CalibrationSet"):
        CalibrationPreview({"input": calib.inputs["input"]})
