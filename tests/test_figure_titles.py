"""Figure titles say what the numbers mean: the engine comparison names its engines in the order of
its numbers and says which is faster (issue 12, "figures that mislead")."""

from __future__ import annotations

import numpy as np
import pandas as pd

import workbench
from workbench.analysis import compare_engines
from workbench.backends import get_backend
from workbench.views import compare_figure, tradeoff_figure


def _tables():
    model = workbench.load_model(workbench.sample_path("digits_cnn"))
    batch = {"input": np.load(workbench.sample_data_path("digits_cnn", "eval"))["input"][:32]}
    ort = get_backend("onnxruntime")
    plain = ort.build(model, {"graph_optimization_level": "disable"}).profile(batch, iterations=5)
    fused = ort.build(model, {"graph_optimization_level": "all"}).profile(batch, iterations=5)
    return plain, fused


def test_comparison_title_names_engines_in_the_order_of_its_numbers():
    plain, fused = _tables()
    for a, b, ta, tb in [("plain", "fused", plain, fused), ("fused", "plain", fused, plain)]:
        title = compare_figure(compare_engines(ta, tb, label_a=a, label_b=b)).layout.title.text
        total_a, total_b = ta["time_ms"].sum(), tb["time_ms"].sum()
        assert title.startswith(f"{a} → {b}: layer time {total_a:.4f} → {total_b:.4f} ms")
        ratio = total_b / total_a
        expected = (f"({b} {1 / ratio:.2f}x faster than {a})" if ratio < 1 else f"({b} {ratio:.2f}x slower than {a})")
        if abs(ratio - 1) >= 5e-3:
            assert expected in title


def _results_frame():
    """Three variants of each sample model, as results rows (the columns tradeoff_figure reads)."""
    rows = []
    for model, top1s in (("digits_cnn", (0.994, 0.991, 0.997)), ("digits_transformer", (0.997, 0.955, 1.0))):
        for k, top1 in enumerate(top1s):
            rows.append({"id": f"{model}-{k}", "model": model, "variant": f"v{k}", "precision": "FP32",
                         "backend": "onnxruntime", "median_ms": 0.1 * (k + 1), "top1": top1})
    return pd.DataFrame(rows)


def test_tradeoff_title_names_its_model_and_accuracy_axis_stays_within_0_to_100():
    frame = _results_frame()
    for model in ("digits_cnn", "digits_transformer"):
        rows = frame[frame["model"] == model]
        fig = tradeoff_figure(rows)
        assert fig.layout.title.text.startswith(f"{model} — accuracy vs latency: 3 variants")
        low, high = fig.layout.yaxis.range
        assert 0.0 <= low <= rows["top1"].min() and rows["top1"].max() <= high <= 1.0
    both = tradeoff_figure(frame).layout.title.text
    assert both.startswith("digits_cnn, digits_transformer — ")


def _cnn_calibration_stats():
    """The CNN's input statistics over its real calibration split (what the doctor's histogram draws)."""
    from workbench.doctor import activation_statistics

    model = workbench.load_model(workbench.sample_path("digits_cnn"))
    inputs = {"input": np.load(workbench.sample_data_path("digits_cnn", "calib"))["input"]}
    return activation_statistics(model.proto, inputs, ["input"])["input"]


def test_coincident_clip_lines_stay_visible_and_are_annotated():
    from workbench.views import histogram_figure

    stats = _cnn_calibration_stats()
    amax = max(abs(stats["min"]), abs(stats["max"]))
    # entropy keeping the full range clips where minmax does: two lines on one x
    clips = {"minmax": amax, "entropy": amax * (1 + 1e-6), "percentile": 0.5 * amax}
    fig = histogram_figure(stats, clips, tensor="input")
    lines = {t.name.split(" clip")[0]: t for t in fig.data[1:] if t.showlegend is not False}
    assert set(lines) == set(clips)
    a, b = sorted((tuple(lines[m].y) for m in ("minmax", "entropy")))
    assert a[1] <= b[0] and a[0] < a[1] and b[0] < b[1]  # stacked: neither segment covers the other
    assert tuple(lines["percentile"].y) == (0.0, 1.0)  # a line of its own keeps the full height
    assert len({t.line.dash for t in lines.values()}) == 3  # and every method its own dash
    notes = [a.text for a in fig.layout.annotations]
    assert any(set(n.split(" = ")) == {"minmax", "entropy"} for n in notes), notes


def test_every_figure_grows_its_margins_to_fit_its_labels():
    from workbench.views import (
        histogram_figure,
        layer_time_bar,
        op_histogram_figure,
        time_by_precision,
    )

    plain, fused = _tables()
    model = workbench.load_model(workbench.sample_path("digits_cnn"))
    figures = [layer_time_bar(plain), time_by_precision(plain), compare_figure(compare_engines(plain, fused)),
               tradeoff_figure(_results_frame()), op_histogram_figure(model.summary),
               histogram_figure(_cnn_calibration_stats(), {"minmax": 1.0})]
    for fig in figures:
        axes = [fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))]
        assert axes and all(axis.automargin for axis in axes), fig.layout.title.text
