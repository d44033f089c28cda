"""The results table on real measured rows: sample-model variants evaluated on their eval split
and benchmarked briefly on ONNX Runtime, saved in a temporary workspace."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pandas as pd
import pytest

from workbench.analysis.accuracy import evaluate
from workbench.backends.onnxruntime.engine import OnnxRuntimeBackend
from workbench.samples import sample_data_path, sample_path
from workbench.tables.results import (
    COLUMNS,
    RESULTS_FILE,
    ResultsError,
    ResultsTable,
    check_row,
    make_row,
    pareto_front,
    pareto_mask,
    recipe_label,
    tool_versions,
)


@pytest.fixture(autouse=True)
def _workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


def measure(model_or_variant, *, model, precision, reference, recipe=None, calibration=None, method=None,
            variant=None):
    """A real row: evaluate on the eval split against FP32, benchmark a batch of 64 briefly.

    A :class:`workbench.precision.Variant` is evaluated on what stands for it on ORT CPU (itself,
    or its emulation for FP16) and benchmarked and sized as the variant file itself."""
    path = getattr(model_or_variant, "path", model_or_variant)
    data = sample_data_path(model, "eval")
    evaluation = evaluate(getattr(model_or_variant, "ort_path", path), data, reference=reference)
    x = np.load(data)["input"][:64]
    bench = OnnxRuntimeBackend().build(path, {"intra_op_num_threads": 1}).benchmark(
        {"input": x}, iterations=30, warmup=5)
    return make_row(model=model, precision=precision, evaluation=evaluation, benchmark=bench,
                    recipe=recipe, calibration=calibration, calibration_method=method,
                    variant_path=path, variant=variant)


@pytest.fixture(scope="module")
def real_rows(sample_variant):
    """FP32, FP16 and INT8 variants of both sample models (made by make_variant), measured here."""
    rows = []
    for name in ("digits_cnn", "digits_transformer"):
        fp32 = sample_path(name)
        calib = sample_data_path(name, "calib")
        rows.append(measure(fp32, model=name, precision="FP32", reference=fp32))
        rows.append(measure(sample_variant(name, "fp16"), model=name, variant=f"{name}.fp16",
                            precision="fp16", reference=fp32,
                            recipe={"precision": "fp16", "keep_io_types": True}))
        rows.append(measure(sample_variant(name, "int8"), model=name, variant=f"{name}.int8",
                            precision="INT8", reference=fp32, calibration=calib, method="minmax",
                            recipe={"precision": "int8", "per_channel": True, "method": "minmax"}))
    return rows


# --------------------------------------------------------------------------------------------
# Rows


def test_make_row_from_real_results(real_rows):
    fp32, fp16, int8 = real_rows[:3]
    assert fp32["variant"] == "digits_cnn" and int8["variant"] == "digits_cnn.int8"
    assert fp32["top1"] == pytest.approx(358 / 360) and fp32["samples"] == 360
    assert fp32["min_sqnr_db"] == math.inf and fp32["min_cosine"] == 1.0
    assert 10 < int8["min_sqnr_db"] < fp16["min_sqnr_db"] < math.inf
    assert int8["recipe_label"] == "precision=int8 per_channel method=minmax"
    assert int8["calibration_method"] == "minmax" and int8["calibration"].endswith("calib.npz")
    for row in real_rows:
        assert row["backend"] == "onnxruntime" and row["batch"] == 64
        assert 0 < row["median_ms"] <= row["p99_ms"] and row["throughput"] > 0
        assert row["size_bytes"] > 1000
        assert row["versions"]["onnxruntime"] == tool_versions()["onnxruntime"]
    assert max(int8["size_bytes"], fp16["size_bytes"]) < fp32["size_bytes"]


def test_recipe_label():
    assert recipe_label(None) == "" and recipe_label({}) == ""
    assert recipe_label({"name": "int8-entropy", "method": "entropy"}) == "int8-entropy"
    assert recipe_label({"precision": "int8", "per_channel": True, "skip": None,
                         "exclude": ["Gemm", "Softmax"], "sym": False}) == \
        "precision=int8 per_channel exclude=Gemm,Softmax"
    assert len(recipe_label({"a": "x" * 100})) == 48


def test_check_row_refuses_bad_rows():
    with pytest.raises(ResultsError, match="needs 'model'"):
        check_row({"top1": 0.9})
    with pytest.raises(ResultsError, match="fraction 0..1"):
        check_row({"model": "m", "top1": 99.4})
    with pytest.raises(ResultsError, match="'median_ms' must be a number"):
        check_row({"model": "m", "median_ms": "fast"})
    with pytest.raises(ResultsError, match="JSON-serializable"):
        check_row({"model": "m", "recipe": {"when": object()}})
    row = check_row({"model": "m", "precision": "int8", "top1": np.float32(0.5), "batch": np.int64(8)})
    assert row["precision"] == "INT8" and type(row["top1"]) is float and type(row["batch"]) is int


# --------------------------------------------------------------------------------------------
# The table in the workspace


def test_round_trip_through_the_workspace_file(real_rows, _workspace):
    table = ResultsTable()
    assert table.path == _workspace / RESULTS_FILE and len(table) == 0
    assert table.frame().empty and list(table.frame().columns) == list(COLUMNS)
    ids = [table.add(row) for row in real_rows]
    assert len(set(ids)) == len(real_rows)

    frame = ResultsTable().frame()  # a new table object reads the file back
    assert frame["id"].tolist() == ids and list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    for row, (_, back) in zip(real_rows, frame.iterrows()):
        for column in ("model", "variant", "backend", "recipe", "calibration_method",
                       "variant_path"):
            assert back[column] == row[column] or (row[column] is None and back[column] is None)
        for column in ("top1", "top5", "median_ms", "p99_ms", "min_sqnr_db", "size_bytes"):
            assert back[column] == pytest.approx(row[column])
        assert back["precision"] == row["precision"].upper()
        assert pd.Timestamp(back["created"]).tzinfo is not None
    assert frame.loc[0, "min_sqnr_db"] == math.inf  # FP32 vs itself survives the file
    assert ResultsTable().get(ids[2])["recipe"]["per_channel"] is True
    lines = table.path.read_text().splitlines()
    assert len(lines) == len(real_rows) and all(json.loads(line)["id"] for line in lines)
    assert not [p for p in _workspace.iterdir() if p.name.endswith(".tmp")]


def test_filter(real_rows, tmp_path):
    table = ResultsTable(tmp_path / "r.jsonl")
    for row in real_rows:
        table.add(row)
    assert set(table.filter(precision="int8")["variant"]) == {"digits_cnn.int8", "digits_transformer.int8"}
    assert len(table.filter(model="digits_cnn")) == 3
    assert len(table.filter(backend="onnxruntime", precision=["FP16", "FP32"])) == 4
    assert table.filter(backend="tensorrt").empty
    with pytest.raises(ResultsError, match="no column 'colour'"):
        table.filter(colour="red")


def test_old_and_new_rows_with_missing_or_extra_keys_still_load(real_rows, tmp_path):
    path = tmp_path / "results.jsonl"
    old = [
        {"model": "digits_cnn", "variant": "v0-fp32", "precision": "FP32", "top1": 0.99},
        {"id": "future", "model": "digits_cnn", "precision": "INT8", "median_ms": 0.4,
         "top1": 0.98, "energy_mj": 3.5, "recipe": {"method": "entropy"}},
    ]
    path.write_text(json.dumps(old[0]) + "\n" + json.dumps(old[1]) + "\n" + '{"model": "trunc\n'
                    + "[1, 2]\n")
    table = ResultsTable(path)
    new_id = table.add(real_rows[2])
    frame = table.frame()
    assert frame["id"].tolist() == ["line-1", "future", new_id]
    assert len(frame.attrs["warnings"]) == 2 and ":3:" in frame.attrs["warnings"][0]
    assert "energy_mj" in frame.columns and frame.loc[1, "energy_mj"] == 3.5
    assert math.isnan(frame.loc[0, "median_ms"]) and frame.loc[0, "recipe"] is None
    assert frame.loc[1, "recipe_label"] == "method=entropy"  # filled in for rows without it
    assert frame["top1"].dtype == float and frame["median_ms"].dtype == float
    front = pareto_front(frame)
    assert "line-1" not in set(front["id"])  # no latency: never on the front
    table.remove("future")
    assert [r["id"] for r in table.load()] == ["line-1", new_id]
    with pytest.raises(ResultsError, match="no row with id"):
        table.remove("future")
    with pytest.raises(ResultsError, match="already in"):
        table.add({"model": "m", "id": new_id})


def test_concurrent_adds_lose_no_row(tmp_path):
    table = ResultsTable(tmp_path / "shared.jsonl")

    def writer(k):
        for j in range(5):
            ResultsTable(table.path).add({"model": "m", "variant": f"w{k}-{j}", "top1": 0.5})

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    frame = table.frame()
    assert len(frame) == 30 and frame["id"].is_unique and not frame.attrs["warnings"]


# --------------------------------------------------------------------------------------------
# Pareto front


def test_pareto_front_by_hand():
    frame = pd.DataFrame({
        "id": ["A", "B", "C", "D", "E", "F", "G", "H"],
        "median_ms": [1.0, 2.0, 2.5, 3.0, 4.0, 0.5, 2.0, 2.0],
        "top1": [0.90, 0.95, 0.93, 0.95, 0.99, np.nan, 0.95, 0.94],
    })
    # C: slower and worse than B; D: slower than B, same accuracy; F: no accuracy;
    # G: the same point as B (both kept); H: as fast as B, worse.
    front = pareto_front(frame)
    assert front["id"].tolist() == ["A", "B", "G", "E"]
    assert pareto_mask(frame).tolist() == [True, True, False, False, True, False, True, False]
    fastest = pareto_front(frame, x="median_ms", y="top1", maximize_y=False)
    assert fastest["id"].tolist() == ["A"]
    assert pareto_front(frame.iloc[:0]).empty
    with pytest.raises(ResultsError, match="no column 'p50_ms'"):
        pareto_front(frame, x="p50_ms")


def _dominates(a, b):
    return (a["median_ms"] <= b["median_ms"] and a["top1"] >= b["top1"]
            and (a["median_ms"] < b["median_ms"] or a["top1"] > b["top1"]))


def test_pareto_front_on_real_measured_rows(real_rows, tmp_path):
    table = ResultsTable(tmp_path / "r.jsonl")
    for row in real_rows:
        table.add(row)
    frame = table.frame()
    front = pareto_front(frame, x="median_ms", y="top1")
    assert 1 <= len(front) <= len(frame)
    xs, ys = front["median_ms"].to_numpy(), front["top1"].to_numpy()
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0)  # monotone
    assert np.all((np.diff(xs) > 0) == (np.diff(ys) > 0))  # each step buys accuracy with time
    rows = frame.to_dict("records")
    on = set(front["id"])
    for row in rows:
        dominated = any(_dominates(other, row) for other in rows)
        assert (row["id"] in on) == (not dominated), row["variant"]
    # The fastest variant and the most accurate (fastest among the most accurate) are on it.
    assert frame.loc[frame["median_ms"].idxmin(), "id"] in on
    best = frame[frame["top1"] == frame["top1"].max()]
    assert best.loc[best["median_ms"].idxmin(), "id"] in on


def test_rows_carry_the_chosen_metric(real_rows, _workspace):
    """Every row records its evaluation's metric (the default: top1 with labels) in its own unit."""
    fp32, fp16, int8 = real_rows[:3]
    for row in (fp32, fp16, int8):
        assert row["metric"] == "top1" and row["metric_unit"] == "%"
        assert row["metric_value"] == pytest.approx(100 * row["top1"])
    by_sqnr = evaluate(sample_path("digits_cnn"), sample_data_path("digits_cnn", "eval"),
                       reference=sample_path("digits_cnn"), metric="sqnr")
    row = make_row(model="digits_cnn", evaluation=by_sqnr)
    assert (row["metric"], row["metric_value"], row["metric_unit"]) == ("sqnr", math.inf, "dB")
    table = ResultsTable()
    stored = table.get(table.add(row))  # non-finite numbers round-trip
    assert stored["metric_value"] == math.inf and stored["metric_unit"] == "dB"
    frame = table.frame()
    assert list(frame.columns).index("metric") < list(frame.columns).index("mean_ms")
    with pytest.raises(ResultsError, match="'metric_value' must be a number"):
        table.add({**row, "metric_value": "high"})
