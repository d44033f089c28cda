"""From the notebook to CI: plans saved from the tradeoff explorer (and the doctor) run through
``workbench run`` on both sample models, with gates that hold (exit 0) and gates that fail
(exit 1); bad plans exit 2 naming the key and its line; the JUnit XML parses; reruns resume from
the results table; a run never overwrites a user's file.

Everything is measured for real on the committed sample models (small batch sizes and few
benchmark iterations keep it quick); the command line runs as a separate process where its exit
code is what is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from workbench import Recipe
from workbench.backends import tensorrt_status
from workbench.cli import main
from workbench.datasets.arrays import load_data, save_npz
from workbench.samples import sample_data_path, sample_path
from workbench.tables.results import ResultsTable
from workbench.views.doctor_widgets import DoctorExplorer
from workbench.views.tradeoff import TradeoffExplorer
from workbench.workflows.gates import TOLERANCE_GATE
from workbench.workflows.plan import load_plan, validate_plan, variant_calibration
from workbench.workflows.plan_schema import parse_yaml
from workbench.workflows.run import REPORT_MARKER
from workbench.workflows.sweep import measure_variants

MODELS = ("digits_cnn", "digits_transformer")
BATCHES = (1, 4)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One workspace for the module (variants and results shared, as in a user's session)."""
    folder = tmp_path_factory.mktemp("plan-run-workspace")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORKBENCH_WORKSPACE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def explorer(workspace):
    """The tradeoff explorer over real measurements of both sample models (FP32, FP16, INT8)."""
    table = ResultsTable()
    for name in MODELS:
        measure_variants(sample_path(name), [Recipe("fp32"), Recipe("fp16"), Recipe("int8", num_samples=64)],
                         calib=sample_data_path(name, "calib"), eval_data=sample_data_path(name, "eval"),
                         batch_sizes=BATCHES, iterations=10, warmup=2, threads=1, table=table, progress=False)
    return TradeoffExplorer(table)


def _select_int8(explorer, name: str) -> dict:
    frame = explorer.frame
    row_id = frame[(frame["model"] == name) & (frame["precision"] == "INT8")].iloc[0]["id"]
    return explorer.select(row_id)


@pytest.fixture(scope="module")
def saved_plans(explorer, tmp_path_factory):
    """A plan per sample model, saved from the explorer with its INT8 variant selected."""
    folder = tmp_path_factory.mktemp("plans")
    plans = {}
    for name in MODELS:
        _select_int8(explorer, name)
        plans[name] = explorer.save_plan(folder / f"{name}.plan.yaml")
    return plans


def _cli(*args, workspace):
    env = {**os.environ, "WORKBENCH_WORKSPACE": str(workspace)}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env=env)


def _run_json(capsys, *args) -> tuple[int, dict]:
    code = main([*map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out)


def _external_resources(html: str) -> list[str]:
    """``src``/``href`` attributes of the page's tags that load something (script, link, img, iframe)."""
    from html.parser import HTMLParser

    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag in ("script", "img", "iframe") and attrs.get("src"):
                found.append(attrs["src"])
            if tag == "link" and attrs.get("href"):
                found.append(attrs["href"])

    Parser().feed(html)
    return found


def _edited(plan_path: Path, target: Path, **changes) -> Path:
    """A copy of a saved plan (paths made absolute) with some keys changed."""
    data = yaml.safe_load(plan_path.read_text())
    for key in ("model", "calibration", "evaluation"):
        if data.get(key):
            data[key] = str((plan_path.parent / data[key]).resolve())
    data.update(changes)
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


# --------------------------------------------------------------------------------------------
# Saving plans from the notebooks
# --------------------------------------------------------------------------------------------


def test_the_save_button_writes_a_plan_that_recreates_the_selection(explorer, workspace):
    row = _select_int8(explorer, "digits_cnn")
    assert not explorer.save_button.disabled
    explorer.save_button.click()
    saved = sorted((workspace / "plans").glob("digits_cnn-*.yaml"))
    assert saved and str(saved[-1]) in explorer.status.value
    plan = load_plan(saved[-1])
    facts = validate_plan(plan)
    variant = plan.variants[0]
    record = json.loads(Path(row["variant_path"]).with_suffix(".json").read_text())
    assert variant.name == row["variant"]
    assert variant.recipe.hash() == Recipe.from_dict({**record["recipe"], "tool": "onnxruntime"}).hash()
    assert variant.recipe.num_samples == 64 and variant.recipe.precision == "int8"
    assert variant.expect["sha256"] == record["file"]["sha256"]
    assert variant.expect["calibration_sha256"] == record["calibration"]["sha256"]
    assert facts.calibration_sha256[variant.name] == record["calibration"]["sha256"]
    assert plan.model_sha256 == record["source_model"]["sha256"] == facts.model_sha256
    assert list(plan.batch_sizes) == list(BATCHES) and plan.backends == ("onnxruntime",)
    # the gate keeps what was seen: the measured drop against FP32 plus half a point
    assert [g.gate for g in plan.gates] == ["max_accuracy_drop"]
    # a second click never replaces the first file
    explorer.save_button.click()
    assert len(sorted((workspace / "plans").glob("digits_cnn-*.yaml"))) == len(saved) + 1


# --------------------------------------------------------------------------------------------
# Running them: gates that hold, gates that fail
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_saved_plan_runs_and_its_gates_hold(name, saved_plans, workspace, capsys):
    plan = saved_plans[name]
    junit = plan.parent / f"{name}.pass.junit.xml"
    code, data = _run_json(capsys, "run", plan, "--junit", junit)
    assert code == 0
    assert data["passed"] is True
    (variant,) = data["variants"]
    assert variant["precision"] == "int8" and variant["backend"] == "onnxruntime"
    for key in ("name", "recipe", "file", "top1", "median_ms", "p99_ms", "throughput", "sha256"):
        assert variant[key] is not None, key
    assert variant["reproduced"] is True  # the same variant file the notebook measured, bit for bit
    assert data["baseline"][0]["precision"] == "fp32" and data["baseline"][0]["top1"] > 0.99
    assert data["gates"] and all(g["passed"] for g in data["gates"])
    drop = data["gates"][0]
    assert drop["gate"] == "max_accuracy_drop" and drop["value"] == pytest.approx(
        100 * (data["baseline"][0]["top1"] - variant["top1"]))
    assert data["environment"]["tools"]["onnxruntime"] and data["environment"]["cpu"]
    report = Path(data["report"])
    assert report.is_file() and REPORT_MARKER in report.read_text()
    suites = ET.parse(junit).getroot()
    assert suites.tag == "testsuites" and int(suites.get("tests")) == len(data["gates"])
    assert int(suites.get("failures")) == 0 and not suites.findall(".//failure")


@pytest.mark.parametrize("name", MODELS)
def test_failing_gates_exit_1_with_value_and_limit(name, saved_plans, workspace, tmp_path):
    gates = {
        # INT8 costs the transformer about four points of top-1 on ORT CPU: a 1-point gate fails.
        "digits_transformer": {"max_accuracy_drop": 1.0, "max_model_mb": 1.0},
        # The CNN's INT8 keeps top-1 but not 40 dB of SQNR, and its file is larger than 10 kB.
        "digits_cnn": {"max_accuracy_drop": 1.0, "min_sqnr_db": 40.0, "max_model_mb": 0.01},
    }[name]
    plan = _edited(saved_plans[name], tmp_path / "fail.plan.yaml", gates=gates, report="fail.html",
                   junit="fail.junit.xml")
    result = _cli("run", plan, "--json", workspace=workspace)  # the real process's exit code
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"run {name}-int8-minmax-64: started" in result.stderr  # progress on stderr
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert data["passed"] is False
    failed = {g["gate"]: g for g in data["gates"] if g["passed"] is False}
    expected = {"digits_transformer": {"max_accuracy_drop"}, "digits_cnn": {"min_sqnr_db", "max_model_mb"}}[name]
    assert set(failed) == expected
    for gate in failed.values():
        assert gate["value"] is not None and gate["limit"] == gates[gate["gate"]]
    suites = ET.parse(tmp_path / "fail.junit.xml").getroot()
    failures = suites.findall(".//testcase/failure")
    assert int(suites.get("failures")) == len(failures) == len(failed)
    for failure in failures:
        assert "value" in failure.get("message") and "limit" in failure.get("message")
    assert "FAILED" in (tmp_path / "fail.html").read_text()[:3000]


def test_tolerance_gate_is_polygraphys_verdict(saved_plans, workspace, tmp_path, capsys):
    plan = _edited(saved_plans["digits_cnn"], tmp_path / "tol.plan.yaml", report=None, junit=None,
                   variants=["fp16", {"precision": "int8", "method": "minmax", "num_samples": 64}],
                   gates={"atol": 0.05, "rtol": 1e-3})
    code, data = _run_json(capsys, "run", plan)
    gates = {g["variant"]: g for g in data["gates"]}
    assert set(gates) == {"fp16", "int8-minmax"} and all(g["gate"] == TOLERANCE_GATE for g in gates.values())
    by_name = {v["name"]: v for v in data["variants"]}
    for name, gate in gates.items():
        # the value is the max abs error the evaluation measured at these tolerances
        assert gate["value"] == pytest.approx(by_name[name]["max_abs_error"])
        assert by_name[name]["tolerance"] == {"atol": 0.05, "rtol": 1e-3}
    assert gates["fp16"]["passed"] is True  # FP16 logits are within 0.05 of FP32's
    assert gates["int8-minmax"]["passed"] is False  # INT8 moves some logits by more than 0.05 (and 0.1 %)
    assert code == 1


def test_tensorrt_steps_fail_in_one_line_and_the_rest_runs(saved_plans, workspace, tmp_path, capsys):
    if tensorrt_status() is None:
        pytest.skip("TensorRT runs here: this checks a run on a machine without it")
    plan = _edited(saved_plans["digits_cnn"], tmp_path / "trt.plan.yaml", report=None, junit=None,
                   backends=["onnxruntime", "tensorrt"],
                   gates={"max_accuracy_drop": 1.0, "max_latency_ms": {"limit": 1000, "backend": "tensorrt"}})
    code, data = _run_json(capsys, "run", plan)
    assert code == 0 and data["passed"] is True
    assert data["tensorrt"]["available"] is False and data["tensorrt"]["problem"]
    skipped = [g for g in data["gates"] if g["backend"] == "tensorrt"]
    assert skipped and all(g["passed"] is None and "TensorRT" in g["skipped"] for g in skipped)
    assert all(g["passed"] for g in data["gates"] if g["backend"] == "onnxruntime")
    assert [v["backend"] for v in data["variants"]] == ["onnxruntime"]
    for build in data["builds"].values():
        assert build["engine_built"] is False and build["trtexec_command"][0] == "trtexec"
        assert "--stronglyTyped" in build["trtexec_command"] and build["note"].startswith("no engine built")
    required = _edited(plan, tmp_path / "required.plan.yaml", require_tensorrt=True)
    code, data = _run_json(capsys, "run", required)
    assert code == 2 and "require_tensorrt" in data["error"]


# --------------------------------------------------------------------------------------------
# Bad plans
# --------------------------------------------------------------------------------------------

GOOD = {
    "model": str(sample_path("digits_cnn")),
    "calibration": str(sample_data_path("digits_cnn", "calib")),
    "evaluation": str(sample_data_path("digits_cnn", "eval")),
    "metric": "top1",
}

BAD_PLANS = [
    # (YAML after the good keys, the key the error names, its line)
    ("variants:\n  - precision: int8\n    methd: minmax\n", "variants[0].methd", 7),
    ("variants:\n  - precision: int8\n    method: minmx\n", "variants[0].method", 7),
    ("variants: [fp16]\ngatez:\n  max_accuracy_drop: 1\n", "gatez", 6),
    ("variants: [fp16]\nbatch_sizes: [1, many]\n", "batch_sizes[1]", 6),
    ("variants: [fp16]\ngates:\n  max_accuracy_drop: lots\n", "gates.max_accuracy_drop", 7),
    ("variants: [fp16]\ngates:\n  max_latency_ms: {limit: 1, batch: 64}\n", "gates.max_latency_ms.batch", 7),
    ("variants: [fp16]\ngates:\n  min_sqnr_db: {limit: 30, variants: [int8]}\n", "gates.min_sqnr_db.variants", 7),
    ("variants:\n  - precision: int8\n    exclude_nodes: [/features/conv9/Conv]\n", "variants[0].exclude_nodes", 7),
    ("variants:\n  - precision: int8\n    num_samples: 0\n", "variants[0].num_samples", 7),
    ("variants:\n  - precision: int8\n    expect: {calibration_sha256: abc}\n",
     "variants[0].expect.calibration_sha256", 7),
    ("variants: [fp16, fp16]\n", "variants[1]", 5),
    ("variants: [fp16]\nmetric: top5\n", "metric", 6),  # given twice
    ("variants: [fp16]\nmodel: other.onnx\n", "model", 6),  # given twice
    ("variants: [fp16]\nbackends: [tensorrt, onnxruntime, cuda]\n", "backends[2]", 6),
    ("variants: [fp16]\nscheduler: my-laptop\n", "scheduler", 6),  # not tcp://HOST:PORT
    ("variants: [fp16]\nscheduler: 8786\n", "scheduler", 6),
]


def _write_plan(folder: Path, text: str, good: dict | None = None) -> Path:
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(GOOD if good is None else good, sort_keys=False) + text)
    return path


@pytest.mark.parametrize("text,key,line", BAD_PLANS, ids=[b[1] for b in BAD_PLANS])
def test_bad_plans_exit_2_naming_the_key_and_line(text, key, line, tmp_path, capsys, workspace):
    path = _write_plan(tmp_path, text)
    code = main(["run", str(path), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    data = json.loads(captured.out)
    assert data["error"].startswith(f"{path}:{line}: {key}: "), data["error"]
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1
    assert data["problems"][0] == {"key": key, "line": line, "message": data["problems"][0]["message"]}
    assert not list(tmp_path.glob("*.html")) and not (workspace / "variants" / "never").exists()
    assert main(["plan", "check", str(path)]) == 2


def test_every_problem_is_listed_and_nothing_runs(tmp_path, capsys, workspace):
    before = len(ResultsTable())
    path = tmp_path / "plan.yaml"
    path.write_text("variants:\n  - precision: int8\n    methd: minmax\nmetric: top7\n")
    code = main(["plan", "check", str(path), "--json"])
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert code == 2
    assert {(p["key"], p["line"]) for p in problems} == {
        ("model", 1), ("evaluation", 1), ("variants[0].methd", 3), ("metric", 4)}
    assert len(ResultsTable()) == before


def test_yaml_problems_name_their_line(tmp_path):
    data, lines = parse_yaml("gates:\n  atol: 1e-3\n  rtol: 2E-4\n")
    assert data == {"gates": {"atol": 1e-3, "rtol": 2e-4}}  # YAML 1.2 numbers, not text
    assert lines[("gates", "rtol")] == 3
    for text, line in (("model: a\nmodel: b\n", 2), ("model: [a\nvariants: b\n", 2)):
        path = tmp_path / "p.yaml"
        path.write_text(text)
        with pytest.raises(Exception) as err:
            load_plan(path)
        assert f"p.yaml:{line}:" in str(err.value)


def test_plan_check_accepts_the_readme_plan(tmp_path, capsys, workspace):
    root = Path(__file__).resolve().parents[1]
    block = (root / "README.md").read_text().split("```yaml\n# docs/ci-example/digits_cnn.plan.yaml", 1)[1]
    plan = root / "docs" / "ci-example" / "digits_cnn.plan.yaml"
    assert plan.read_text() == "# docs/ci-example/digits_cnn.plan.yaml" + block.split("```", 1)[0], (
        "the README shows docs/ci-example/digits_cnn.plan.yaml as it is")
    code, data = _run_json(capsys, "plan", "check", plan)
    assert code == 0 and data["valid"] is True and data["facts"]["metric"] == "top1"


# --------------------------------------------------------------------------------------------
# Reruns, reproducibility and files
# --------------------------------------------------------------------------------------------


def test_rerun_resumes_from_the_results_table(saved_plans, workspace, tmp_path, capsys):
    plan = _edited(saved_plans["digits_transformer"], tmp_path / "again.plan.yaml", report=None, junit=None)
    code, first = _run_json(capsys, "run", plan)
    rows = len(ResultsTable())
    code2, second = _run_json(capsys, "run", plan)
    assert code == code2 == 0
    assert len(ResultsTable()) == rows  # nothing measured twice
    assert all(v["measured_cached"] for v in second["variants"] + second["baseline"])
    assert [v["row_id"] for v in second["variants"]] == [v["row_id"] for v in first["variants"]]
    code3, third = _run_json(capsys, "run", plan, "--remeasure")
    assert code3 == 0 and len(ResultsTable()) == rows + 2  # the variant and the FP32 reference
    assert not any(v["measured_cached"] for v in third["variants"])


def test_two_runs_give_the_same_variants_and_accuracy(saved_plans, tmp_path, monkeypatch, capsys):
    plan = _edited(saved_plans["digits_cnn"], tmp_path / "twice.plan.yaml", report=None, junit=None,
                   variants=["fp16", {"precision": "int8", "method": "entropy", "num_samples": 32}])
    runs = []
    for index in (1, 2):  # fresh workspaces: every variant made and measured anew
        monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / f"ws{index}"))
        code, data = _run_json(capsys, "run", plan)
        assert code == 0
        assert not any(v["variant_cached"] or v["measured_cached"] for v in data["variants"])
        runs.append(data["variants"])
    keys = ("name", "sha256", "calibration_sha256", "top1", "top5", "min_sqnr_db", "min_cosine", "max_abs_error")
    assert [{k: v[k] for k in keys} for v in runs[0]] == [{k: v[k] for k in keys} for v in runs[1]]


def test_a_run_never_overwrites_a_users_file(saved_plans, workspace, tmp_path, capsys):
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    plan = _edited(saved_plans["digits_cnn"], tmp_path / "files.plan.yaml", report="notes.html", junit=None)
    code, data = _run_json(capsys, "run", plan)
    assert code == 2 and "report" in data["error"] and "notes.html" in data["error"]
    assert mine.read_text() == "<p>my notes</p>"
    code, data = _run_json(capsys, "run", plan, "--report", tmp_path / "out.html")
    assert code == 0 and Path(data["report"]).read_text().count(REPORT_MARKER) == 1
    code, data = _run_json(capsys, "run", plan, "--report", tmp_path / "out.html")  # its own report: replaced
    assert code == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_the_report_is_one_file_with_plotly_inline_once(saved_plans, workspace, tmp_path, capsys):
    plan = _edited(saved_plans["digits_cnn"], tmp_path / "report.plan.yaml", report="r.html", junit=None,
                   variants=["fp16", {"precision": "int8", "method": "minmax", "num_samples": 64}])
    code, data = _run_json(capsys, "run", plan)
    html = Path(data["report"]).read_text()
    assert code == 0
    assert html.count("plotly.js v") == 1  # the library's banner: embedded once, not per figure
    assert _external_resources(html) == []  # nothing fetched from the network: works offline
    figures = html.count('class="plotly-graph-div"')
    assert figures == 1 + 3  # the tradeoff plot, then per-layer time of FP32, FP16 and INT8
    for entry in data["variants"] + data["baseline"]:
        assert entry["name"] in html and entry["sha256"][:12] in html
        assert entry["trtexec_command_line"] in html.replace("&#39;", "'")
    for gate in data["gates"]:
        assert gate["message"] in html.replace("&lt;", "<").replace("&gt;", ">")


def test_doctor_fix_saved_as_plan_runs_bit_for_bit(tmp_path, monkeypatch, capsys):
    from workbench import diagnose

    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "notebook"))
    name = "digits_transformer"
    diagnosis = diagnose(sample_path(name), sample_data_path(name, "calib"), sample_data_path(name, "eval"),
                         target_drop=0.5, layerwise_samples=64, latency=False)
    assert diagnosis.fix["config"]["exclude"]  # the transformer needs a fix
    plan = DoctorExplorer(diagnosis).save_plan(tmp_path / "fix.plan.yaml", batch_sizes=(1, 4))
    variant = load_plan(plan).variants[0]
    assert list(variant.recipe.exclude_nodes) == diagnosis.fix["config"]["exclude"]
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "ci"))  # CI: a fresh machine
    code, data = _run_json(capsys, "run", plan)
    assert code == 0 and data["passed"] is True
    (entry,) = data["variants"]
    assert entry["reproduced"] is True and entry["sha256"] == variant.expect["sha256"]
    assert entry["top1"] == pytest.approx(diagnosis.fixed_accuracy)


def test_the_ci_example_runs_the_example_plan():
    root = Path(__file__).resolve().parents[1]
    workflow = yaml.safe_load((root / "docs" / "ci-example" / "github-actions.yml").read_text())
    job = workflow["jobs"]["gate"]
    plan = root / job["env"]["PLAN"]
    assert plan.is_file()
    commands = "\n".join(step.get("run", "") for step in job["steps"])
    assert "workbench run \"$PLAN\"" in commands and "--junit /out/junit.xml" in commands
    assert "docker build" in commands and "--gpus all" in commands
    kept = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert kept and kept[0]["if"] == "always()" and "report.html" in kept[0]["with"]["path"]


@pytest.mark.parametrize("argv", [["run", "--help"], ["plan", "check", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0 and "--json" in capsys.readouterr().out


def test_dropped_calibration_samples_follow_the_files_data_description(tmp_path, workspace):
    """A plan that drops calibration samples from a file with a ``__spec__`` drops them along the
    described sample axis, and the variant's calibration differs from the whole file's."""
    whole = load_data(sample_data_path("digits_cnn", "calib"))
    name = next(iter(whole.inputs))
    moved = {name: whole.inputs[name][:40].swapaxes(0, 1)}  # samples along axis 1, described
    calib = tmp_path / "calib.npz"
    save_npz(calib, moved, sample_axes={name: 1})
    good = {**GOOD, "calibration": str(calib)}
    path = _write_plan(tmp_path, "variants:\n  - precision: int8\n    drop_calibration_samples: [0, 3]\n"
                                 "  - precision: int8\n    method: entropy\n", good)
    plan = load_plan(path)
    validate_plan(plan)  # the calibration hash of the dropped set is computed without error
    dropped = variant_calibration(plan, plan.variants[0])
    assert dropped.sample_axes == {name: 1}
    kept = [i for i in range(40) if i not in (0, 3)]
    assert (dropped.inputs[name] == moved[name][:, kept]).all()
    assert variant_calibration(plan, plan.variants[1]) == calib
