"""What the notebooks say against what they measured, read from their executed outputs.

A sentence that states a measured fact is either printed by a code cell from the measured values
(tagged ``fact-*``, with both outcomes written) or stated in markdown and checked here. Changing
the machine's kernels cannot make the text wrong without failing a test: each check derives the
outcome from the tables the notebook displayed and asserts the printed sentence tells that one.
The notebooks run once, in ``test_notebooks.py``; see ``notebook_runs.py``.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from notebook_runs import NOTEBOOKS, cell_text, executed, html_tables, tagged

# Markdown may state numbers with units only where they are not measurements of this machine.
MEASURED = re.compile(r"\d+(?:\.\d+)?\s?(?:%|dB|ms\b|µs|×)")
GENERAL_STATEMENTS = {
    "INT8 usually holds 35-50 dB per layer",  # a rule of thumb, checked on the teaching case below
}


def _one(nb, tag):
    cells = tagged(nb, tag)
    assert len(cells) == 1, f"expected one cell tagged {tag}, found {len(cells)}"
    return cells[0]


def _table(nb, tag, index):
    frame = html_tables(_one(nb, tag))[-1]
    return frame.set_index(frame.columns[0] if index is None else index)


def _pct(value: float) -> str:
    return f"{value:.2%}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_markdown_states_no_measured_numbers(path):
    """Narrative markdown states only machine-independent facts; measured ones are printed."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = cell.source
        for allowed in GENERAL_STATEMENTS:
            text = text.replace(allowed, "")
        found += [f"cell {index}: ...{text[max(0, m.start() - 50):m.end()]!r}" for m in MEASURED.finditer(text)]
    assert found == [], "measured numbers in markdown (print them from the outputs instead):\n" + "\n".join(found)


def test_02_cnn_sentence_matches_its_table(tmp_path, monkeypatch):
    nb = executed("02", tmp_path, monkeypatch)
    table = _table(nb, "fact-cnn-table", "variant")
    sentence = cell_text(_one(nb, "fact-cnn"))
    n = 360  # the evaluation split the markdown names
    moved = round(n * (table["top1"] - table.loc["fp32", "top1"]).abs().max())
    assert f"within {moved} of {n} images" in sentence
    assert f"({_pct(table.loc['fp32', 'top1'])})" in sentence
    sqnr = table["min_sqnr_db"]
    int8 = sqnr[[v for v in table.index if str(v).startswith("int8")]]
    assert f"FP16 {sqnr['fp16']:.1f} dB" in sentence and f"BF16 {sqnr['bf16']:.1f} dB" in sentence
    assert f"INT8 {int8.min():.1f} to {int8.max():.1f} dB" in sentence
    # the markdown after it: "the SQNR falls in that order" (FP16, BF16, INT8)
    assert sqnr["fp16"] > sqnr["bf16"] > int8.max()
    # "32 calibration samples do about as well as 256": within two images for each method
    for method in ("minmax", "percentile"):
        gap = abs(table.loc[f"int8-{method}-32", "top1"] - table.loc[f"int8-{method}-256", "top1"])
        assert round(gap * n) <= 2, method


def test_02_transformer_sentence_tells_this_machines_outcome(tmp_path, monkeypatch):
    nb = executed("02", tmp_path, monkeypatch)
    table = _table(nb, "fact-transformer-table", "variant")
    sentence = cell_text(_one(nb, "fact-transformer"))
    fp32, int8 = table.loc["fp32", "top1"], table.loc["int8-minmax", "top1"]
    if fp32 - int8 >= 0.01:
        assert f"drops top-1 from {_pct(fp32)} to {_pct(int8)}" in sentence
        assert "keeps top-1" not in sentence
    else:
        assert f"keeps top-1: {_pct(int8)} against {_pct(fp32)}" in sentence
        assert "drops" not in sentence
    assert f"lowest SQNR {table.loc['int8-minmax', 'min_sqnr_db']:.1f} dB" in sentence
    # FP16 and BF16 keep its top-1 (the markdown says so)
    assert table.loc["fp16", "top1"] == fp32 and table.loc["bf16", "top1"] == fp32


def _summary(nb, tag) -> dict:
    text = cell_text(_one(nb, tag))
    drop = re.search(r"naive INT8 .*?: top1 ([\d.]+) % -> ([\d.]+) %", text)
    jump = re.search(r"error first jumps at (\S+) \(written by (\S+)\)", text)
    fix = re.search(r"fix: keep \d+ node\(s\) out of INT8: (.+?) -> top1 ([\d.]+) %", text)
    culprits = re.search(r"culprits: (.+)", text)
    return {
        "fp32": float(drop.group(1)), "int8": float(drop.group(2)),
        "jump_tensor": jump and jump.group(1), "jump_node": jump and jump.group(2),
        "no_fix": "no fix needed" in text,
        "exclude": fix.group(1).split(", ") if fix else [],
        "culprits": re.findall(r"(\S+) \((?:adds error|source of range)\)", culprits.group(1)) if culprits else [],
    }


def test_03_cpu_noise_sentence_matches_its_table(tmp_path, monkeypatch):
    """Notebook 03 says per-layer CPU times are noisy and prints how much two profiles disagree here."""
    nb = executed("03", tmp_path, monkeypatch)
    cell = _one(nb, "fact-cpu-noise")
    table = _table(nb, "fact-cpu-noise", "layer")
    found = re.search(r"disagree by up to ([\d.]+)x on one layer \((.+?)\); the end-to-end medians are", cell_text(cell))
    assert found, cell_text(cell)
    assert float(found.group(1)) == pytest.approx(table["ratio"].max(), abs=0.006)
    assert found.group(2) == table["ratio"].idxmax()
    assert (table["ratio"] >= 1).all()


def test_04_teaching_case_names_the_planted_nodes(tmp_path, monkeypatch):
    nb = executed("04", tmp_path, monkeypatch)
    summary = _summary(nb, "fact-teaching-doctor")
    intro = next(c.source for c in nb.cells if "A teaching case with a known answer" in c.source)
    planted = re.findall(r"`(/features/\w+/Conv)`", intro)
    assert planted == ["/features/conv1/Conv", "/features/dwconv2/Conv"]
    assert set(planted) <= set(summary["culprits"])
    assert summary["fp32"] - summary["int8"] > 10  # "the other 31 channels round to zero": INT8 breaks
    assert not summary["no_fix"] and summary["exclude"]
    # the rule of thumb the markdown states: INT8 usually holds 35-50 dB per layer
    reason = cell_text(_one(nb, "fact-teaching-doctor"))
    del reason  # the per-layer figures are in the culprits table; the range is checked there
    culprits = html_tables(next(c for c in nb.cells if "culprits_frame()" in c.source and c.cell_type == "code"))
    medians = [float(m) for m in re.findall(r"median node ([\d.]+) dB", culprits[-1].to_string())]
    assert medians and all(35 <= m <= 50 for m in medians)


def test_04_transformer_text_follows_the_doctor(tmp_path, monkeypatch):
    nb = executed("04", tmp_path, monkeypatch)
    summary = _summary(nb, "fact-transformer-doctor")
    kernel = _table(nb, "fact-kernel-table", None).loc["naive INT8 top-1"]
    kernel_sentence = cell_text(_one(nb, "fact-kernel"))
    emulated, run = kernel["disable"], kernel["all"]
    if emulated - run >= 0.01:
        assert f"integer kernels cost {100 * (emulated - run):.1f} points" in kernel_sentence
    else:
        assert "integer kernels cost nothing" in kernel_sentence
    assert f"scores {_pct(run)} as run and {_pct(emulated)} with Q/DQ emulated" in kernel_sentence
    assert abs(100 * run - summary["int8"]) < 0.01  # the doctor's naive INT8 is the variant as run
    if summary["jump_tensor"]:
        assert f"first jumps at {summary['jump_tensor']} (written by {summary['jump_node']})" in kernel_sentence
    fix_sentence = cell_text(_one(nb, "fact-transformer-fix"))
    if summary["no_fix"]:
        assert "no fix is needed" in fix_sentence and not summary["exclude"]
    else:
        assert f"keeps {', '.join(summary['exclude'])} out of INT8" in fix_sentence


def test_05_grid_sentences_match_the_table(tmp_path, monkeypatch):
    nb = executed("05", tmp_path, monkeypatch)
    frame = html_tables(_one(nb, "fact-grid-table"))[-1]
    text = cell_text(_one(nb, "fact-grid"))
    for name in ("digits_cnn", "digits_transformer"):
        m = frame[frame["model"] == name].set_index("variant")
        (line,) = [x for x in text.splitlines() if f", {name}:" in x]
        fp32, int8 = m.loc["fp32"], m[m["precision"] == "int8"]
        worst = 100 * (fp32["top1"] - int8["top1"].min())
        if worst >= 1:
            assert f"INT8 costs up to {worst:.1f} points" in line
        else:
            assert f"INT8 keeps top-1 within {max(worst, 0):.1f} points" in line
        assert f"on {m.loc[['fp16', 'bf16'], 'top1_agreement'].min():.1%} of the images" in line
        # the markdown's machine-independent claim: FP16 is closer to FP32 than BF16
        assert m.loc["fp16", "min_sqnr_db"] > m.loc["bf16", "min_sqnr_db"] and "(FP16 is closer" in line
        ratio = int8["median_ms@b1"].median() / fp32["median_ms@b1"]
        word = "slower" if ratio >= 1 else "faster"
        assert re.search(rf"is [\d.]+x {word} than FP32's", line)


def test_07_sentence_matches_its_table(tmp_path, monkeypatch):
    import torch  # noqa: F401  (make test installs the pytorch extra; without it this fails, not skips)
    nb = executed("07", tmp_path, monkeypatch)
    table = _table(nb, "fact-pytorch-table", "variant")
    sentence = cell_text(_one(nb, "fact-pytorch"))
    fp32, int8 = table.loc["fp32", "top1"], table.loc["int8", "top1"]
    assert f"scores {_pct(fp32)} top-1 in FP32 and {_pct(int8)} in INT8" in sentence
    assert ("a drop of" in sentence) == (int8 < fp32)
    assert fp32 > 0.8  # a real classifier, trained in the notebook
    export = next(cell_text(c) for c in nb.cells if "torch.onnx.export(" in c.source)
    assert "Warning" not in export and float(re.search(r"on 50 images: ([\d.e+-]+)", export).group(1)) < 1e-4
