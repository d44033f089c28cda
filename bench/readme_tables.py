"""The README's measured figures, made from the committed results in ``bench/results/*.json``.

Every measured number in README.md sits between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->`` markers; this script makes each block from the result file(s) the
bench scripts wrote, with the machine they ran on. ``tests/test_readme_figures.py`` checks
that README.md holds exactly these blocks, so the README always shows the last measurement.

    python bench/readme_tables.py            # print every block
    python bench/readme_tables.py --write    # put them into README.md (after `make bench`)
    python bench/readme_tables.py --check    # exit 1 when README.md differs

Blocks and their files: ``measured`` (load_model.json, overhead.json),
``calibration`` (calibration.json), ``variants`` (variants.json), ``doctor`` (doctor.json),
``doctor_memory`` (doctor_memory.json), ``traits`` (traits.json, bench/bench_traits.py),
``real_models`` (real_models.json and real_models_calib_before.json, bench/bench_real_models.py).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.workspace import write_atomic  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH.parent / "README.md"
GOALS = {"minmax": 1.5, "entropy": 3.0, "percentile": 3.0, "distribution": 3.0}  # bench_cnn, x plain FP32


class ResultsMissing(RuntimeError):
    """A result file a README block needs is not there (run its bench script)."""


def load(name: str, results: Path = RESULTS) -> dict:
    """One result file, e.g. ``load("variants")`` for ``bench/results/variants.json``.

    Raises:
        ResultsMissing: The file is missing; the message names the script that writes it.
    """
    path = results / f"{name}.json"
    if not path.is_file():
        raise ResultsMissing(f"{path} is missing: run python bench/bench_{name}.py (or make bench)")
    return json.loads(path.read_text())


def machine_line(name: str, data: dict) -> str:
    """Where and when a result file was measured, as one italic line naming the file."""
    m = data["machine"]
    return (f"_`bench/results/{name}.json`: measured {m['date']} on {m['cpu']}, {m['cores']} cores (shared), "
            f"Python {m['python']}, ONNX Runtime {m['onnxruntime']}._")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


# --------------------------------------------------------------------------------------------
# The blocks


def measured_block(results: Path = RESULTS) -> str:
    """The "Measured here" table: load_model on large graphs, the benchmark's overhead."""
    load_model, overhead = load("load_model", results), load("overhead", results)
    rows = []
    for r in load_model["results"]:
        rows.append([f"`load_model` + summary, {r['nodes']:,}-node encoder stack ({r['file_mb']:.0f} MB)",
                     f"{r['load_and_summary_s']['median']:.2f} s",
                     f"`bench/bench_load_model.py --blocks {r['blocks']}`"])
    ratios = {r["batch"]: r["ratio"] for r in overhead["results"]}
    rows.append(["`Engine.benchmark` median vs a bare `session.run` loop, same session and inputs (goal: within 3 %)",
                 ", ".join(f"{ratio:.3f} at batch {batch}" for batch, ratio in ratios.items()),
                 "`bench/bench_overhead.py`"])
    table = markdown_table(["what", "figure", "script"], rows)
    return table + "\n\n" + "<br>\n".join(machine_line(name, data) for name, data in
                                           (("load_model", load_model), ("overhead", overhead)))


def doctor_totals(data: dict) -> str:
    """The doctor against one-node-at-a-time: evaluations and wall time to a fix, all cases."""
    runs = {run["eval_repeat"]: run for run in data["runs"]}
    small, large = runs[min(runs)], runs[max(runs)]
    t = small["totals"]
    rows = [[f"full evaluations to a fix, {t['cases']} cases (teaching models, digits_transformer, corrupted "
             f"calibration), {small['eval_samples']} evaluation samples",
             f"{t['doctor_evaluations']} vs {t['one_at_a_time_evaluations']}",
             f"{t['doctor_targets_met']}/{t['cases']}"],
            [f"wall time, {small['eval_samples']} evaluation samples (the doctor's fixed analysis dominates)",
             f"{t['doctor_seconds']:.1f} s vs {t['one_at_a_time_seconds']:.1f} s", ""]]
    if large is not small:
        big = large["totals"]
        rows.append([f"wall time, {large['eval_samples']:,} evaluation samples (each evaluation costs "
                     f"{large['eval_repeat']}x more)",
                     f"{big['doctor_seconds']:.1f} s vs {big['one_at_a_time_seconds']:.1f} s",
                     f"{big['doctor_targets_met']}/{big['cases']}"])
    return markdown_table(["INT8 doctor vs excluding one node at a time", "doctor vs one at a time",
                           f"doctor within {data['target_drop_pp']:g} pp"], rows)


def calibration_block(results: Path = RESULTS) -> str:
    """The calibration-speed table and the sentences made from it."""
    data = load("calibration", results)
    rows = sorted(data["rows"], key=lambda r: (r["model"] != "bench_cnn", r["model"]))
    table = markdown_table(
        ["model", "method", "plain FP32", "ONNX Runtime", "ratio", "workbench", "ratio"],
        [[r["model"], r["method"], f"{r['plain_s']:.3f} s", _seconds(r["ort_s"]), _ratio(r["ort_over_plain"], 1),
          f"{r['ours_s']:.3f} s", f"**{r['ours_over_plain']:.2f}x**" if r["model"] == "bench_cnn"
          else f"{r['ours_over_plain']:.1f}x"] for r in rows])
    checked = [r for r in rows if r["ranges_max_rel_diff"] is not None]
    exact = [r for r in checked if r["exact_ranges_equal"]]
    bench_cnn = [r for r in rows if r["model"] == "bench_cnn"]
    missed = [f"{r['method']} {r['ours_over_plain']:.2f}x (goal {GOALS[r['method']]:g}x)" for r in bench_cnn
              if r["ours_over_plain"] > GOALS[r["method"]]]
    tiny = [r["ours_s"] for r in rows if r["model"] != "bench_cnn"]
    lines = [
        f"Ranges: equal to ONNX Runtime's to kernel rounding (largest relative difference "
        f"{max(r['ranges_max_rel_diff'] for r in checked):.1e}); with `exact_calibration=True` bit-equal in "
        f"{len(exact)} of {len(checked)} cases.",
        "Goals on bench_cnn: " + ("all met." if not missed else "missed in this run: " + "; ".join(missed) + "."),
        f"On the tiny sample models plain inference over 256 samples takes milliseconds, so building the "
        f"calibration graph and session dominates and their ratios say little; in absolute terms calibration "
        f"takes {1000 * min(tiny):.0f} to {1000 * max(tiny):.0f} ms there.",
    ]
    return table + "\n\n" + " ".join(lines) + "\n\n" + machine_line("calibration", data)


def variants_block(results: Path = RESULTS) -> str:
    """The table of every variant of the sample models, and their FP32 accuracy."""
    data = load("variants", results)
    rows = []
    for r in data["rows"]:
        latency = {str(size): value["median_ms"] for size, value in r["latency"].items()}
        sqnr = r["min_sqnr_db"]
        rows.append([r["model"], variant_label(r), f"{100 * r['top1']:.1f}%",
                     "exact" if sqnr is None or sqnr == math.inf else f"{sqnr:.1f}",
                     f"{latency['1']:.3f}", f"{latency['32']:.3f}", f"{r['size_bytes'] / 1024:.1f}", r["latency_on"]])
    table = markdown_table(["model", "variant", "top-1", "min SQNR (dB)", "median ms, batch 1", "median ms, batch 32",
                            "size (KB)", "measured on"], rows)
    fp32 = [f"`{r['model']}` {100 * r['top1']:.2f} % top-1" for r in data["rows"] if r["precision"] == "fp32"]
    return (table + "\n\nSample models (FP32, ONNX Runtime, 360 held-out digits): " + ", ".join(fp32) + ".\n\n"
            + machine_line("variants", data))


def variant_label(row: dict) -> str:
    """``int8 entropy (2048 bins)``, ``int8 minmax, 32 samples``...: a variant named by its recipe."""
    precision = row["precision"]
    if precision != "int8":
        return precision
    recipe = row["recipe"]
    label = f"int8 {recipe['method']}"
    if recipe.get("num_bins"):
        label += f" ({recipe['num_bins']} bins)"
    elif recipe["method"] == "entropy":
        label += " (ORT defaults)"
    if row.get("calibration_samples") not in (None, 256):
        label += f", {row['calibration_samples']} samples"
    return label


TEACHING_CASE = re.compile(r"^digits_cnn_(?P<layer>[a-z]+\d*)_c(?P<channel>\d+)_x(?P<factor>[\d.]+) \((?P<weights>[^)]+)\)$")


def doctor_block(results: Path = RESULTS) -> str:
    """The doctor on the teaching cases: naive INT8, what it keeps out, the fix, evaluations."""
    data = load("doctor", results)
    run = min(data["runs"], key=lambda r: r["eval_repeat"])
    rows, fp32 = [], set()
    for row in run["rows"]:
        case = TEACHING_CASE.match(row["case"])
        if case is None:
            continue
        d = row["doctor"]
        fp32.add(round(100 * d["fp32"], 2))
        rows.append([f"{case['layer']}, channel {case['channel']}, x{case['factor']}", case["weights"],
                     f"{100 * d['naive']:.2f} %", ", ".join(short_node(n) for n in d["exclude"]) or "-",
                     f"{100 * d['fixed']:.2f} %", str(d["evaluations"])])
    table = markdown_table(["case", "weights", "naive INT8", "kept out of INT8", "fixed", "evaluations"], rows)
    head = (f"The teaching cases (FP32 {', '.join(f'{v:.2f} %' for v in sorted(fp32))}, target drop "
            f"{data['target_drop_pp']:g} points, {run['eval_samples']} evaluation samples):")
    return (doctor_totals(data) + "\n\n" + head + "\n\n" + table + "\n\n" + machine_line("doctor", data))


MEMORY_CASES = {
    "synthetic-2mb": "synthetic CNN, 3x96x96 (teaching rescale)",
    "synthetic-6.8mb": "synthetic CNN, 3x96x96 (teaching rescale)",
    "synthetic-9.5mb": "synthetic CNN, 3x96x96 (teaching rescale)",
    "digits_cnn_conv1_c5_x300": "teaching case, 8x8 digits",
    "ocr_cls": "PP-OCR orientation classifier",
    "magika": "magika file-type classifier",
    "ocr_det": "PP-OCRv4 text detector (map output)",
    "ocr_rec": "PP-OCRv4 recognizer ([N, T, C] sequence)",
}


def doctor_memory_block(results: Path = RESULTS) -> str:
    """The doctor for any task at its defaults: the metric before and after, its peak memory against
    model size (goal: under 1.5 GB below 10 MB), the same model batched as before, and its time."""
    data = load("doctor_memory", results)
    before = {r["case"].removesuffix(" (before)"): r for r in data["cases"] if r.get("before")}
    rows = []
    for r in data["cases"]:
        if r.get("before"):
            continue
        what = f"{r['case']}: {MEMORY_CASES.get(r['case'], 'model')}"
        if r["status"] != "ok":
            rows.append([what, f"{r['model_mb']:.1f} MB", r["status"], "-", "-", "-", "-", "-"])
            continue
        value = lambda v: "inf" if v is None else f"{v:.1f}"  # noqa: E731  (JSON writes inf as null)
        metric = f"{r['metric']}: {value(r['fp32'])} -> {value(r['int8'])} -> {value(r['fixed'])} {r['unit']}"
        prior = before.get(r["case"])
        rows.append([what, f"{r['model_mb']:.1f} MB", metric,
                     f"{len(r['exclude'])} of {r['quantized_nodes']}", str(r["evaluations"]),
                     f"{r['peak_rss_mb']:.0f} MB (batch {r['layerwise_batch']})",
                     f"{prior['peak_rss_mb']:.0f} MB" if prior and prior.get("peak_rss_mb") else "-",
                     f"{r['seconds']:.0f} s"])
    table = markdown_table(["case", "model", "metric: FP32 -> naive INT8 -> fix", "kept out of INT8", "evaluations",
                            "peak memory (layerwise batch)", "batched as before", "time"], rows)
    small = [r for r in data["cases"] if r["status"] == "ok" and not r.get("before")
             and r["model_mb"] < data["size_limit_mb"]]
    worst = max((r["peak_rss_mb"] for r in small), default=float("nan"))
    verdict = (f"Goal: under {data['goal_mb'] / 1024:.1f} GB for models under {data['size_limit_mb']:g} MB at the "
               f"defaults: {'met' if data['goal_met'] else 'NOT met'} (worst {worst:.0f} MB).")
    return table + "\n\n" + verdict + "\n\n" + machine_line("doctor_memory", data)


TRAIT_COMMANDS = {"inspect": "inspect", "profile_nodata": "profile, no data", "profile": "profile --data",
                  "quantize_fp16": "quantize fp16", "quantize_int8": "quantize int8", "evaluate_int8": "evaluate int8",
                  "doctor": "doctor"}


def traits_block(results: Path = RESULTS) -> str:
    """What every command does with each trait real models bring: a table of outcomes (a valid variant,
    ok, or a one-line refusal with exit 2, its message numbered below), from ``bench/bench_traits.py``."""
    data = load("traits", results)
    messages: list[str] = []
    rows = []
    for record in data["traits"]:
        cells = []
        for command in TRAIT_COMMANDS:
            result = record["commands"][command]
            cell = result["outcome"]
            if cell == "refused":
                message = re.sub(r"\S*wb_traits_\w+/", "", result["error"] or "")
                if message not in messages:
                    messages.append(message)
                cell = f"exit 2 [{messages.index(message) + 1}]"
            cells.append(cell)
        rows.append([record["what"], *cells])
    table = markdown_table(["trait", *TRAIT_COMMANDS.values()], rows)
    listing = "\n".join(f"{i}. {m}" for i, m in enumerate(messages, 1))
    verdict = (f"{len(data['failures'])} failure(s) (exit 1, traceback, an invalid variant written, or a refusal "
               "in more than one line).")
    return table + "\n\n" + listing + "\n\n" + verdict + "\n\n" + machine_line("traits", data)


REAL_COMMANDS = ("quantize_fp16", "quantize_int8", "quantize_percentile", "doctor")


def real_models_block(results: Path = RESULTS) -> str:
    """Real pretrained models through the commands that cost memory: outcome, time and peak memory
    (before: the same commands with the calibration batches as they were, when measured)."""
    data = load("real_models", results)
    before_path = results / "real_models_calib_before.json"
    before = ({r["model"]: r for r in json.loads(before_path.read_text())["models"]}
              if before_path.is_file() else {})
    rows = []
    for record in data["models"]:
        for command in REAL_COMMANDS:
            result = record["commands"].get(command)
            if result is None:
                continue
            state = ("ok" if result["exit_code"] == 0 else "exit 2" if result["exit_code"] == 2
                     else "timed out" if result["timed_out"] else f"exit {result['exit_code']}")
            prior = before.get(record["model"], {}).get("commands", {}).get(command)
            summary = result.get("summary") or {}
            what = "-"
            if command == "doctor" and summary.get("metric"):
                value = lambda v: "inf" if v is None else f"{v:.1f}"  # noqa: E731
                unit = summary.get("metric_unit") or ("%" if summary["metric"] in ("top1", "agreement") else "dB")
                what = (f"{summary['metric']}: {value(summary.get('fp32_value'))} -> {value(summary.get('int8_value'))}"
                        f" -> {value(summary.get('fixed_value'))} {unit}")
                if summary.get("quantized_nodes"):
                    what += f", {len(summary.get('exclude') or [])} of {summary['quantized_nodes']} kept out of INT8"
            rows.append([record["model"], command.replace("_", " "), state, what, f"{result['seconds']:.0f} s",
                         f"{result['peak_rss_mb']:.0f} MB",
                         f"{prior['peak_rss_mb']:.0f} MB" if prior and prior.get("peak_rss_mb") else "-"])
    table = markdown_table(["model", "command", "outcome", "result", "time", "peak memory", "before"], rows)
    host = data.get("host")
    where = (f"_`bench/results/real_models.json`: measured {host['date']} on {host['cpu']}, {host['cores']} cores "
             f"(shared), Python {host['python']}, ONNX Runtime {host['onnxruntime']}._" if host else "")
    return table + ("\n\n" + where if where else "")


def short_node(name: str) -> str:
    """``/features/dwconv2/Conv`` -> ``dwconv2``; ``/classifier/Gemm`` -> ``classifier/Gemm``."""
    match = re.fullmatch(r"/features/([^/]+)/Conv", name)
    return match.group(1) if match else name.lstrip("/")


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _ratio(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"


BLOCKS: dict[str, Callable[[Path], str]] = {
    "measured": measured_block,
    "calibration": calibration_block,
    "variants": variants_block,
    "doctor": doctor_block,
    "doctor_memory": doctor_memory_block,
    "traits": traits_block,
    "real_models": real_models_block,
}


# --------------------------------------------------------------------------------------------
# README.md


def marker_pattern(name: str) -> re.Pattern:
    """The block ``name`` in README.md: its markers and what lies between them."""
    return re.compile(rf"(<!-- bench:{re.escape(name)} -->)\n(.*?)\n?(<!-- /bench:{re.escape(name)} -->)", re.DOTALL)


def readme_blocks(text: str) -> dict[str, str]:
    """The blocks README.md holds, by name (a block missing from the README is left out)."""
    found = {}
    for name in BLOCKS:
        match = marker_pattern(name).search(text)
        if match:
            found[name] = match.group(2)
    return found


def write_readme(text: str, blocks: dict[str, str]) -> str:
    """README text with each block replaced by its newly made content."""
    for name, content in blocks.items():
        pattern = marker_pattern(name)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- bench:{name} --> ... <!-- /bench:{name} --> block")
        text = pattern.sub(lambda m: f"{m.group(1)}\n{content}\n{m.group(3)}", text, count=1)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true", help="replace the blocks in README.md")
    what.add_argument("--check", action="store_true", help="exit 1 when README.md differs from the results")
    args = parser.parse_args(argv)
    blocks, missing = {}, []
    for name, make in BLOCKS.items():
        try:
            blocks[name] = make(RESULTS)
        except ResultsMissing as err:
            missing.append(name)
            print(f"block {name!r} not made: {err}", file=sys.stderr)
    text = README.read_text(encoding="utf-8")
    if args.write:
        write_atomic(README, write_readme(text, blocks))
        print(f"wrote {len(blocks)} block(s) into {README.name}" + (f"; not {', '.join(missing)}" if missing else ""))
    elif args.check:
        stale = [name for name, content in blocks.items() if readme_blocks(text).get(name) != content]
        if stale:
            print(f"README.md differs from bench/results for: {', '.join(stale)} "
                  "(run python bench/readme_tables.py --write)", file=sys.stderr)
            return 1
        print("README.md shows the last measured figures")
    else:
        for name, content in blocks.items():
            print(f"<!-- bench:{name} -->\n{content}\n<!-- /bench:{name} -->\n")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
