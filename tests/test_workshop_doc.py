"""docs/workshop.md's "what each notebook should show": every fact marked *(checked: id)* is compared
with the executed notebooks' outputs (run once, by test_notebooks.py; see notebook_runs.py)."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import pytest
from notebook_runs import REPO_ROOT, cell_text, executed, figures, html_tables, tagged

DOC = REPO_ROOT / "docs" / "workshop.md"


def _checked_ids() -> set[str]:
    return set(re.findall(r"\*\(checked: ([\w-]+)\)\*", re.sub(r"\s+", " ", DOC.read_text())))


def _has_avx2() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return platform.machine() in ("x86_64", "AMD64") and cpuinfo.exists() and " avx2" in cpuinfo.read_text()


def check_tour_accuracy(nb):
    text = next(t for t in map(cell_text, nb.cells) if "top-1 accuracy on" in t)
    n, accuracy = re.search(r"top-1 accuracy on (\d+) held-out digits: ([\d.]+)%", text).groups()
    assert int(n) == 360 and 98 <= float(accuracy) <= 100


def check_tour_reorder(nb):
    if not _has_avx2():
        pytest.skip("the doc states ReorderOutput for x86 CPUs with AVX2 only")
    cell = next(c for c in nb.cells if "layer_time_bar(layers)" in c.source)
    assert any("ReorderOutput" in json.dumps(fig["data"]) for fig in figures(cell))


def check_cnn_variants(nb):
    table = html_tables(tagged(nb, "fact-cnn-table")[0])[-1].set_index("variant")
    assert (360 * (table["top1"] - table.loc["fp32", "top1"]).abs()).round().max() <= 2
    int8 = table.loc[[v for v in table.index if str(v).startswith("int8")], "min_sqnr_db"]
    assert table.loc["fp16", "min_sqnr_db"] > table.loc["bf16", "min_sqnr_db"] > int8.max()


def check_teaching_fix(nb):
    text = cell_text(tagged(nb, "fact-teaching-doctor")[0])
    fp32, int8 = map(float, re.search(r"top1 ([\d.]+) % -> ([\d.]+) %", text).groups())
    assert int8 < 50
    assert "/features/dwconv2/Conv (adds error)" in text and "/features/conv1/Conv (source of range)" in text
    fixed = float(re.search(r"fix: .* -> top1 ([\d.]+) %", text).group(1))
    assert fixed >= fp32 - 0.5


def check_grid_rows(nb):
    frame = html_tables(tagged(nb, "fact-grid-table")[0])[-1]
    assert len(frame) == 14 and frame.groupby("model").size().to_dict() == {"digits_cnn": 7, "digits_transformer": 7}


def check_tradeoff_figures(nb):
    shown = [fig for c in nb.cells if "tradeoff_figure(" in c.source or c.source.strip().startswith("figures[")
             for fig in figures(c)]
    assert len(shown) == 2
    for fig, model in zip(shown, ("digits_cnn", "digits_transformer")):
        assert [t for t in fig["data"] if t.get("name") == "Pareto front"]
        assert fig["layout"]["title"]["text"].startswith(f"{model} — ")  # each title names its model
        low, high = fig["layout"]["yaxis"]["range"]
        assert 0 <= low and high <= 1  # top-1 axis within 0-100 %


def check_pytorch_export(nb):
    export = next(cell_text(c) for c in nb.cells if "torch.onnx.export(" in c.source)
    assert float(re.search(r"on 50 images: ([\d.e+-]+)", export).group(1)) < 1e-4
    table = html_tables(tagged(nb, "fact-pytorch-table")[0])[-1].set_index("variant")
    assert table.loc["fp32", "top1"] > 0.9


CHECKS = {
    "tour-accuracy": ("00", check_tour_accuracy),
    "tour-reorder": ("00", check_tour_reorder),
    "cnn-variants": ("02", check_cnn_variants),
    "teaching-fix": ("04", check_teaching_fix),
    "grid-rows": ("05", check_grid_rows),
    "tradeoff-figures": ("05", check_tradeoff_figures),
    "pytorch-export": ("07", check_pytorch_export),
}


def test_every_checked_fact_has_a_check():
    assert _checked_ids() == set(CHECKS) | {"transformer-consistent"}


@pytest.mark.parametrize("fact", sorted(CHECKS))
def test_workshop_fact(fact, tmp_path, monkeypatch):
    notebook, check = CHECKS[fact]
    if notebook == "07":
        pytest.importorskip("torch", reason="notebook 07 needs the pytorch extra")
    check(executed(notebook, tmp_path, monkeypatch))


def test_transformer_int8_is_the_same_in_02_04_and_05(tmp_path, monkeypatch):
    """The doc says the three notebooks report the same INT8 top-1 for the transformer."""
    nb02, nb04, nb05 = (executed(n, tmp_path / n, monkeypatch) for n in ("02", "04", "05"))
    in02 = html_tables(tagged(nb02, "fact-transformer-table")[0])[-1].set_index("variant").loc["int8-minmax", "top1"]
    text04 = cell_text(tagged(nb04, "fact-transformer-doctor")[0])
    in04 = float(re.search(r"top1 [\d.]+ % -> ([\d.]+) %", text04).group(1)) / 100
    grid = html_tables(tagged(nb05, "fact-grid-table")[0])[-1]
    in05 = grid[(grid["model"] == "digits_transformer") & (grid["variant"] == "int8-minmax-256")]["top1"].iloc[0]
    assert abs(in02 - in04) < 1e-4 and abs(in02 - in05) < 1e-3
