"""Figure titles say what the numbers mean: the engine comparison names its engines in the order of
its numbers and says which is faster (issue 12, "figures that mislead")."""

from __future__ import annotations

import numpy as np

import workbench
from workbench.analysis import compare_engines
from workbench.backends import get_backend
from workbench.views import compare_figure


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
