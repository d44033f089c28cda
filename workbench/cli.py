"""The ``workbench`` command line: the notebooks' operations for scripts and CI pipelines.

Every subcommand takes ``--json``; that output is a contract (keys are added, never renamed).
Errors go to stderr as one line naming the problem and the fix, with a non-zero exit code; with
``--json`` an ``{"error": ...}`` object is printed to stdout as well, so pipelines can parse it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Callable

import pandas as pd

from workbench.apps import APPS, DEFAULT_PORT, prepare_app, run_app
from workbench.backends import BackendUnavailable, get_backend, tensorrt_status
from workbench.backends.tensorrt.trt_json import import_trt
from workbench.backends.tensorrt.trtexec import parse_shapes_spec
from workbench.datasets.arrays import (
    check_model_inputs,
    load_data,
    num_samples,
    synthetic_inputs,
)
from workbench.errors import WorkbenchError
from workbench.lab import prepare_lab, run_lab
from workbench.model import load_model
from workbench.model.summary import format_shape
from workbench.reports.html import write_report
from workbench.tables.engine_table import table_records, table_totals
from workbench.workflows.bench import bench_engine
from workbench.workflows.build import build_command
from workbench.workflows.doctor import doctor_command
from workbench.workflows.evaluate import evaluate_command
from workbench.workflows.plan import PlanError, load_plan, validate_plan
from workbench.workflows.quantize import quantize_command
from workbench.workflows.run import check_outputs, run_plan, write_junit
from workbench.workflows.triton.export import export_triton
from workbench.workflows.triton.perf import (
    add_rows,
    perf,
    perf_analyzer_rows,
    perf_rows,
)
from workbench.workflows.triton.serve import (
    describe,
    docker_available,
    docker_command,
    run_until_stopped,
    serve_triton,
)

log = logging.getLogger("workbench")

EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 1
_JSON_REQUESTED = [False]  # set by main() before parsing, so argparse errors can answer in JSON too

# name -> (run(args) -> dict | int | None, add_arguments(parser), help text)
COMMANDS: dict[str, tuple[Callable, Callable, str]] = {}


def command(name: str, help_text: str, add_arguments: Callable):
    """Register ``func(args)`` as subcommand ``name``.

    ``func`` returns a dict (printed with ``--json``), an exit code, or None after printing
    its own human-readable output.
    """

    def register(func):
        COMMANDS[name] = (func, add_arguments, help_text)
        return func

    return register


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [minimum, maximum], refused in one line otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def number(minimum: float, *, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number >= minimum (> minimum unless inclusive)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value >= minimum if inclusive else value > minimum) or value != value or value in (
                float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"must be {'at least' if inclusive else 'more than'} {minimum:g}, got {text}")
        return value

    return parse


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (and as JSON with --json), exit 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        if _JSON_REQUESTED[0]:
            _print_json({"error": message})
        sys.exit(EXIT_BAD_INPUT)


# --- inspect -------------------------------------------------------------------------------


def _inspect_args(parser):
    parser.add_argument("model", help="path to an .onnx file")
    parser.add_argument(
        "--allow-unknown-domains",
        action="store_true",
        help="summarize models with custom ops from unknown domains instead of failing",
    )
    parser.add_argument("--nodes", action="store_true",
                        help="list every node's name and op type (the names --exclude takes)")


@command(
    "inspect",
    "summarize an ONNX model: I/O, opset, op histogram, parameters, FLOPs",
    _inspect_args,
)
def cmd_inspect(args):
    model = load_model(args.model, allow_unknown_domains=args.allow_unknown_domains)
    summary = model.summary
    if args.json:
        return summary.to_dict()
    for label, value in summary.facts():
        print(f"{label:>20}: {value}")
    for kind, tensors in (("input", summary.inputs), ("output", summary.outputs)):
        for t in tensors:
            print(f"{kind:>20}: {t['name']} {t['dtype']} {format_shape(t['shape'])}")
    print(f"{'op types':>20}: " + ", ".join(f"{k} {v}" for k, v in summary.op_histogram.items()))
    for step in summary.normalization:
        print(f"{'loaded with':>20}: {step['detail']}")
    for warning in summary.warnings:
        print(f"{'warning':>20}: {warning}")
    if args.nodes:
        for node in summary.nodes:
            print(f"{'node':>20}: {node['name']} [{node['op_type']}]")
    else:
        print(f"{'node names':>20}: {summary.node_count} (list them with --nodes; --json has them under 'nodes')")
    return None


# --- lab -----------------------------------------------------------------------------------


def _lab_args(parser):
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=whole_number(1, 65535), default=8888, help="port (default 8888, next free if taken)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--notebook", default="00_tour.ipynb", help="notebook to open first")


@command("lab", "start JupyterLab on the notebooks (127.0.0.1, with a token)", _lab_args)
def cmd_lab(args):
    launch = prepare_lab(ip=args.ip, port=args.port, open_browser=not args.no_browser, notebook=args.notebook)
    if args.json:
        return {"command": launch.argv, "url": launch.url}
    return run_lab(launch.argv, launch.url)


def _app_args(parser):
    parser.add_argument("app", choices=list(APPS), help="; ".join(f"{name}: {what}" for name, what in APPS.items()))
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 "
                        "inside a container, still with a token)")
    parser.add_argument("--port", type=whole_number(1, 65535), default=DEFAULT_PORT,
                        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}, next free if taken)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")


@command("app", "serve the doctor or the tradeoff explorer as a Voilà app (127.0.0.1, with a token)", _app_args)
def cmd_app(args):
    launch = prepare_app(args.app, ip=args.ip, port=args.port)
    if args.json:  # as `workbench lab --json`: what would run, without starting it
        return {"app": launch.app, "notebook": str(launch.notebook), "command": launch.argv, "url": launch.url}
    return run_app(launch, open_browser=not args.no_browser)


# --- profile and bench ---------------------------------------------------------------------


def _model_input_args(parser, *, model_required: bool):
    parser.add_argument("model", nargs=None if model_required else "?", help="path to an .onnx file")
    parser.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "tensorrt"])
    parser.add_argument("--data", help=".npz with one array per model input, samples along axis 0 unless its "
                        "__spec__ entry says otherwise (default: random inputs)")
    parser.add_argument("--batch", type=whole_number(1), default=1, help="samples per inference (default 1)")
    parser.add_argument("--shapes", type=shapes_spec, action="append", metavar="NAME:DIMS",
                        help="without --data: the shape of an input with dynamic dims, trtexec's syntax "
                        "(x:1x3x32x320, several joined by ',' or repeated); the batch is reported as --batch")
    parser.add_argument(
        "--level", default="all", choices=["disable", "basic", "extended", "all"],
        help="ONNX Runtime graph optimization level (default all)",
    )
    parser.add_argument("--threads", type=whole_number(1), help="ONNX Runtime intra-op threads (default: ORT's)")


def shapes_spec(text: str) -> dict:
    """An argparse type: trtexec's ``name:dims[,name:dims]`` shape spec, refused in one line otherwise."""
    try:
        return parse_shapes_spec(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _engine_and_inputs(args):
    """Build the engine the arguments ask for, the inputs to feed it and the samples they hold."""

    model = load_model(args.model)
    backend = get_backend(args.backend)
    options = {"graph_optimization_level": args.level, "intra_op_num_threads": args.threads}
    inputs, batch = _model_inputs(args, model)
    log.info("building %s on %s", model.path.name, backend.name)
    return model, backend.build(model, options), inputs, batch


def _model_inputs(args, model) -> tuple[dict, int]:
    """The feed for profile/bench: a batch of --data along its sample axes, or random inputs whose
    dynamic dims come from --batch (sample axis) and --shapes (everything else), never guessed."""
    shapes = {}
    for spec in args.shapes or []:
        twice = sorted(set(shapes) & set(spec))
        if twice:
            raise ValueError(f"--shapes gives {twice} twice; give each input once.")
        shapes.update(spec)
    if args.data:
        if shapes:
            raise ValueError("give --data or --shapes, not both: with --data the shapes are the data's.")
        data = load_data(args.data, model.input_names)
        check_model_inputs(data.inputs, model.summary.inputs, data.sample_axes, source=args.data)
        inputs = data.take(args.batch)
        check_model_inputs(inputs, model.summary.inputs, data.sample_axes, feed=True,
                           source=f"{args.data} (a batch of {args.batch})")
        batch = num_samples(inputs, data.sample_axes, source=args.data)
        if batch < args.batch:
            log.warning("--data holds %d samples: timing batches of %d, not %d", batch, batch, args.batch)
        return inputs, batch
    inputs = synthetic_inputs(model.summary.inputs, batch=args.batch, shapes=shapes)
    log.info("no --data: timing on random inputs shaped %s",
             ", ".join(f"{n} {list(a.shape)}" for n, a in inputs.items()))
    return inputs, args.batch


def _profile_args(parser):
    _model_input_args(parser, model_required=False)
    parser.add_argument("--iterations", type=whole_number(1), default=20, help="profiled runs (default 20)")
    parser.add_argument("--trt-layers", help="trtexec --exportLayerInfo JSON (or engine inspector JSON)")
    parser.add_argument("--trt-profile", help="trtexec --exportProfile JSON")
    parser.add_argument("--trt-times", help="trtexec --exportTimes JSON")


@command(
    "profile",
    "the engine's layer table (fusion and per-layer time) from ONNX Runtime or trtexec exports",
    _profile_args,
)
def cmd_profile(args):
    if args.trt_layers:
        table = import_trt(args.trt_layers, args.trt_profile, args.trt_times)
        source = {"trt_layers": args.trt_layers, "trt_profile": args.trt_profile, "trt_times": args.trt_times}
    elif args.model:
        model, engine, inputs, batch = _engine_and_inputs(args)
        log.info("profiling %d runs", args.iterations)
        table = engine.profile(inputs, iterations=args.iterations)
        source = {"model": str(model.path), "backend": args.backend, "level": args.level, "batch": batch,
                  "input_shapes": {name: list(array.shape) for name, array in inputs.items()}}
    else:
        raise ValueError("give a MODEL to profile, or --trt-layers with trtexec's exported JSON")
    result = {
        "source": source,
        "totals": table_totals(table),
        "end_to_end": table.attrs.get("end_to_end") or (
            {"mean_ms": table.attrs["end_to_end_ms"]} if "end_to_end_ms" in table.attrs else None
        ),
        "warnings": list(table.attrs.get("warnings", [])),
        "layers": table_records(table),
    }
    if args.json:
        return result
    columns = [c for c in ("name", "type", "precision", "time_ms", "share") if c in table]
    with pd.option_context("display.max_rows", 500, "display.width", 200, "display.max_colwidth", 70):
        print(table[columns].to_string(index=False))
    print(json.dumps(result["totals"]))
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return None


def _bench_args(parser):
    _model_input_args(parser, model_required=True)
    parser.add_argument("--iterations", type=whole_number(1), default=200, help="timed runs (default 200)")
    parser.add_argument("--warmup", type=whole_number(0), default=20, help="untimed runs first (default 20)")
    parser.add_argument("--duration", type=number(0, inclusive=False), help="run at least this many seconds as well")


@command(
    "bench",
    "latency percentiles and throughput: an ONNX model on ONNX Runtime, or a TensorRT engine file",
    _bench_args,
)
def cmd_bench(args):
    if args.backend == "tensorrt":  # MODEL is an engine file built by `workbench build`/trtexec
        problem = tensorrt_status()
        if problem:
            raise BackendUnavailable(problem)
        return _print_bench(args, bench_engine(
            args.model, data=args.data, batch=args.batch, iterations=args.iterations,
            warmup=args.warmup, duration_s=args.duration,
        ))
    model, engine, inputs, batch = _engine_and_inputs(args)
    log.info("benchmarking: %d warm-up runs, then %d timed runs", args.warmup, args.iterations)
    result = engine.benchmark(inputs, iterations=args.iterations, warmup=args.warmup, duration_s=args.duration,
                              batch_size=batch)
    return _print_bench(args, {"model": str(model.path), **result.to_dict(),
                               "input_shapes": {name: list(array.shape) for name, array in inputs.items()}})


def _print_bench(args, data: dict):
    if args.json:
        return data
    for key in ("mean_ms", "median_ms", "p10_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms"):
        if data.get(key) is not None:  # p10_ms is absent from results made before it was recorded
            print(f"{key:>12}: {data[key]:.4f}")
    print(f"{'throughput':>12}: {data['throughput']:.1f} samples/s (batch {data['batch_size']}, "
          f"{data['iterations']} runs)")
    return None


# --- build (TensorRT) --------------------------------------------------------------------


def _build_args(parser):
    parser.add_argument("model", help="path to an .onnx file (precision lives in the graph: FP16 casts, Q/DQ)")
    parser.add_argument("--recipe", default=None, help="preset (default, fast-build, max-perf) or a recipe .json")
    parser.add_argument("--batch", type=whole_number(1),
                        help="the batch the engine will mostly run (profile opt; default 1)")
    parser.add_argument("--data", help=".npz whose shapes set dynamic non-batch sizes (its sample count is not the batch)")
    parser.add_argument("--shapes", type=shapes_spec, action="append", metavar="NAME:DIMS",
                        help="instead of --data: one feed's shape per input, trtexec's syntax (x:8x3x48x320); "
                        "sets dynamic non-batch sizes, and the batch unless --batch is given")
    parser.add_argument("--rebuild", action="store_true", help="build even when the cached engine is current")
    parser.add_argument(
        "--plan-only", action="store_true",
        help="only plan (works without TensorRT): profile, cache key and the trtexec command",
    )


@command("build", "build a TensorRT engine (strongly typed) and print the equivalent trtexec command", _build_args)
def cmd_build(args):
    shapes = {}
    for spec in args.shapes or []:
        twice = sorted(set(shapes) & set(spec))
        if twice:
            raise ValueError(f"--shapes gives {twice} twice; give each input once.")
        shapes.update(spec)
    result = build_command(
        args.model, args.recipe, batch=args.batch, data=args.data, rebuild=args.rebuild,
        plan_only=args.plan_only, progress="log", shapes=shapes or None,
    )
    if args.json:
        return result
    plan = result["plan"]
    if result.get("built"):
        print(f"engine: {result['engine']} ({'cached' if result.get('cached') else 'built'})")
    for name, r in plan["profile"].items():
        print(f"profile {name}: min {r['min']} opt {r['opt']} max {r['max']}")
    print("trtexec equivalent:\n  " + (plan.get("trtexec_command_line") or " ".join(result.get("trtexec_command") or [])))
    for warning in plan.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    return None


# --- evaluate --------------------------------------------------------------------------------


def _evaluate_args(parser):
    parser.add_argument("model", help="path to an .onnx file (a variant, or the FP32 model)")
    parser.add_argument("--data", required=True, help=".npz with one array per model input, plus labels")
    parser.add_argument("--reference", help="FP32 .onnx to compare the outputs with")
    parser.add_argument("--batch", type=whole_number(1), default=64, help="samples per inference (default 64)")
    parser.add_argument("--limit", type=whole_number(1), help="use only the first N samples")
    _metric_args(parser, "the verdict")
    parser.add_argument("--atol", type=number(0), help="elementwise absolute tolerance: judge by every output "
                        "element instead of the metric (Polygraphy's meaning)")
    parser.add_argument("--rtol", type=number(0), help="elementwise relative tolerance (with or without --atol)")


def _shown(value, spec: str) -> str:
    """A JSON number for people: formatted, or "n/a" for null (NaN/inf in the JSON)."""
    return "n/a" if value is None else format(value, spec)


def _metric_args(parser, judged: str) -> None:
    """``--metric`` and ``--target | --target-drop`` (evaluate and doctor)."""
    parser.add_argument("--metric", help="top1 (labels), agreement (arg-max agreement with FP32, per position for "
                        "[N, T, C]), cosine, sqnr (dB), psnr (dB), or python:module:function; default: top1 "
                        "with labels, else agreement (sqnr for outputs that are not class scores)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target", type=number(float("-inf")),
                        help=f"minimum metric value for {judged}, in the metric's unit (e.g. 97 for 97 %% top1, "
                        "30 for 30 dB)")
    target.add_argument("--target-drop", type=number(0), help=f"allowed drop from FP32 for {judged}, in the "
                        "metric's unit (default 0.5 points of top1/agreement; 30 dB minimum for sqnr)")


@command("evaluate", "a metric (top-1, agreement, SQNR...) against labels or an FP32 reference, and a verdict",
         _evaluate_args)
def cmd_evaluate(args):
    result = evaluate_command(args.model, args.data, args.reference, batch_size=args.batch, limit=args.limit,
                              atol=args.atol, rtol=args.rtol, metric=args.metric, target=args.target,
                              target_drop=args.target_drop, progress="log")
    if args.json:
        return result
    if "top1" in result:
        print(f"top-1 {result['top1']:.4f}  top-5 {result.get('top5', float('nan')):.4f}  "
              f"({result['samples']} samples)")
    for name, stats in (result.get("outputs") or {}).items():
        print(f"{name}: max abs err {_shown(stats['max_abs_error'], '.3g')}, cosine {_shown(stats['cosine'], '.6f')}, "
              f"SQNR {'inf (identical)' if stats['identical'] else _shown(stats['sqnr_db'], '.2f')} dB")
    if result.get("metric"):
        target, unit = result.get("target") or {}, result["metric_unit"]
        print(f"{result['metric']}: {_shown(result['metric_value'], '.4g')} {unit}"
              + (f" (target >= {target['minimum']:.4g} {unit})" if target.get("minimum") is not None else ""))
    if result.get("verdict"):
        print(f"{'passed' if result['passed'] else 'NOT passed'} (by {result['verdict']})")
    return None


# --- quantize ------------------------------------------------------------------------------


def _quantize_args(parser):
    parser.add_argument("model", help="path to the FP32 .onnx file")
    parser.add_argument("--precision", default="int8", choices=["fp32", "fp16", "bf16", "int8", "fp8"],
                        help="target precision (default int8)")
    parser.add_argument("--calib", help="calibration .npz (arrays named after the inputs); needed for int8/fp8, "
                        "and for fp16 the overflow check runs on it (without it: on random inputs, with a warning)")
    parser.add_argument("--method", default="minmax", choices=["minmax", "max", "entropy", "percentile", "distribution"],
                        help="calibration method (default minmax)")
    parser.add_argument("--num-bins", type=whole_number(1), metavar="N",
                        help="histogram bins of entropy/percentile/distribution (ORT's defaults: 128 for entropy, "
                        "which then gives minmax's ranges; 2048 for the others)")
    parser.add_argument("--percentile", type=number(0), metavar="P",
                        help="the percentile --method percentile keeps (default 99.999)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="NODE",
                        help="ONNX node names kept in FP32 (mixed precision)")
    parser.add_argument("--exclude-op-types", nargs="+", default=[], metavar="OP",
                        help="op types kept in FP32")
    parser.add_argument("--samples", type=whole_number(1), help="calibration samples to use (default: all)")
    parser.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default per-channel)")
    parser.add_argument("--tool", default="auto", choices=["auto", "onnxruntime", "modelopt"],
                        help="quantization tool (auto: ModelOpt when installed and asked for, else ONNX Runtime)")
    parser.add_argument("-o", "--output", help="write the variant here (never overwrites without --force)")
    parser.add_argument("--force", action="store_true", help="replace an existing --output file")


@command("quantize", "make a precision variant (FP16/BF16 casts or INT8/FP8 Q/DQ) of an ONNX model", _quantize_args)
def cmd_quantize(args):
    result = quantize_command(
        args.model, args.precision, calib=args.calib, method=args.method, exclude=args.exclude,
        output=args.output, exclude_op_types=args.exclude_op_types, per_channel=not args.per_tensor,
        num_samples=args.samples, tool=args.tool, num_bins=args.num_bins, percentile=args.percentile,
        overwrite=args.force, progress="log",
    )
    for warning in result.get("warnings") or []:  # on stderr, with --json too: they must not go unseen
        print(f"workbench quantize: warning: {warning}", file=sys.stderr)
    if result.get("same_ranges_as"):
        print(f"workbench quantize: note: --method {result['recipe']['method']} gives the same ranges as "
              f"{result['same_ranges_as']} here ({result['same_ranges_why']}); it differs with "
              f"{result['differs_with']}", file=sys.stderr)
    if args.json:
        return result
    where = result["output"] or result["variant"]
    print(f"{result['precision']} variant: {where} ({'cached' if result['cached'] else 'made'} by "
          f"{result['tool']} {result['tool_version']}, {result['seconds']:.1f} s)")
    if result.get("opset_upgrade"):
        upgrade = result["opset_upgrade"]
        print(f"opset upgraded {upgrade['from']} -> {upgrade['to']}: {upgrade['why']}")
    if result.get("ort_cpu_problem"):
        print(f"ONNX Runtime's CPU provider cannot run it: {result['ort_cpu_problem']}")
    if result.get("emulation"):
        print(f"runs on ONNX Runtime CPU as: {result['emulation']}")
    return None


# --- doctor --------------------------------------------------------------------------------


def _doctor_args(parser):
    parser.add_argument("model", help="path to the FP32 .onnx file")
    parser.add_argument("--calib", required=True, help="calibration .npz (one array per model input)")
    parser.add_argument("--eval", required=True,
                        help="evaluation .npz (one array per model input; 'labels' optional: [N] classes, or "
                        "[N, T] per position for [N, T, C] outputs)")
    _metric_args(parser, "the fix")
    parser.add_argument("--method", choices=["minmax", "entropy", "percentile", "distribution"],
                        help="calibration method of the naive INT8 recipe (default minmax)")
    parser.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default per-channel)")
    parser.add_argument("--layerwise-samples", type=whole_number(1), default=256,
                        help="evaluation samples the layerwise comparison uses (default 256)")
    parser.add_argument("--calib-sizes", type=whole_number(1), nargs="+", metavar="N",
                        help="also measure the metric against calibration-set size (one evaluation each)")
    parser.add_argument("--no-latency", action="store_true", help="skip the ONNX Runtime latency measurement")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the full evaluations on the Dask cluster at tcp://HOST:PORT (docs/distributed.md)")


@command("doctor", "find which layers lose INT8 accuracy, why, and the smallest mixed-precision fix (any task, "
         "by any metric)", _doctor_args)
def cmd_doctor(args):
    if args.layerwise_samples < 1:
        raise WorkbenchError(f"--layerwise-samples must be at least 1, got {args.layerwise_samples}.")
    report = doctor_command(
        args.model, args.calib, args.eval, target_drop=args.target_drop, target=args.target, metric=args.metric,
        method=args.method, per_channel=False if args.per_tensor else None, layerwise_samples=args.layerwise_samples,
        calib_sizes=args.calib_sizes, latency=not args.no_latency, progress="log", client=args.scheduler,
    )
    if args.json:
        return report
    for line in report["summary"]:
        print(line)
    if report["culprits"]:
        print("\nculprits, worst first:")
        for rank, culprit in enumerate(report["culprits"], 1):
            print(f"{rank:3d}. {culprit['node']} [{culprit['op_type']}, {culprit['role']}]\n       {culprit['reason']}")
    recipe = report["recipe"]
    print(f"\nrecipe: method {recipe['method']}, exclude {recipe['exclude'] or 'nothing'}"
          + (f", drop calibration samples {recipe['drop_calibration_samples']}"
             if recipe["drop_calibration_samples"] else ""))
    value, unit = report["fixed_value"], report["metric_unit"]
    shown = "n/a" if value is None else (f"{value:.2f} {unit}" if unit else f"{value:.4g}")
    print(f"fixed {report['metric']} {shown} (target {'met' if report['target_met'] else 'NOT met'}); "
          f"{report['evaluations']} full evaluations; fixed variant: {report['variants']['fixed']}")
    return None


# --- run and plan (CI) ------------------------------------------------------------------------


def _plan_error(args, err: PlanError) -> int:
    """A bad plan: one line on stderr (the first problem; `plan check` lists every one), every
    problem in the JSON; exit 2."""
    if args.command == "plan" and len(err.problems) > 1:
        for problem in err.problems:
            print(f"workbench plan: error: {problem.text(err.path)}", file=sys.stderr)
    else:
        print(f"workbench {args.command}: error: {err}", file=sys.stderr)
    if args.json:
        _print_json({"error": str(err), **err.to_dict()})
    return EXIT_BAD_INPUT


def _run_args(parser):
    parser.add_argument("plan", help="the plan (.yaml); its paths are relative to the plan file")
    parser.add_argument("--report", help="write the HTML report here (default: the plan's report:)")
    parser.add_argument("--junit", help="write the gates as JUnit XML here (default: the plan's junit:)")
    parser.add_argument("--remeasure", action="store_true",
                        help="measure again even when the results table already holds the same measurement")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="measure the variants and run the doctor's evaluations on the Dask cluster at "
                        "tcp://HOST:PORT (wins over the plan's scheduler:; docs/distributed.md)")


@command(
    "run",
    "run a plan: make, evaluate, build (or plan) and benchmark each variant, check the gates, write the "
    "report; exit 1 when a gate fails",
    _run_args,
)
def cmd_run(args):
    try:
        plan = load_plan(args.plan)
        facts = validate_plan(plan)
        report = Path(args.report).expanduser() if args.report else plan.report
        junit = Path(args.junit).expanduser() if args.junit else plan.junit
        check_outputs(plan, report, junit)
    except PlanError as err:
        return _plan_error(args, err)
    result = run_plan(plan, facts=facts, remeasure=args.remeasure, progress="log", client=args.scheduler)
    if junit is not None:
        write_junit(result, junit)
    if report is not None:
        write_report(result, report)
    if args.json:
        _print_json(result.to_dict())
    else:
        for gate in result.gates:
            verdict = "skip" if gate.passed is None else ("pass" if gate.passed else "FAIL")
            print(f"{verdict:>4}  {gate.name}: {gate.message}")
        print(f"{'PASSED' if result.passed else 'FAILED'}: {sum(g.passed is False for g in result.gates)} of "
              f"{len(result.gates)} gate checks failed" + (f"; report: {result.report}" if result.report else ""))
    return 0 if result.passed else EXIT_GATE_FAILED


def _plan_args(parser):
    parser.add_argument("action", choices=["check"], help="check: validate the plan against the schema and its "
                        "files, without running anything")
    parser.add_argument("plan", help="the plan (.yaml)")


@command("plan", "plan files: `workbench plan check PLAN` validates a plan (exit 2 naming each bad key)", _plan_args)
def cmd_plan(args):
    try:
        plan = load_plan(args.plan)
        facts = validate_plan(plan)
        check_outputs(plan, plan.report, plan.junit)
    except PlanError as err:
        return _plan_error(args, err)
    data = {"valid": True, "problems": [], "plan": plan.to_dict(), "facts": facts.to_dict()}
    if args.json:
        _print_json(data)
        return 0
    print(f"{plan.path}: valid: {len(plan.variants)} variant(s) ({', '.join(v.name for v in plan.variants)}), "
          f"{len(plan.gates)} gate(s), metric {facts.metric}, backends {', '.join(plan.backends)}")
    if facts.tensorrt_problem and "tensorrt" in plan.backends:
        print(f"note: the TensorRT steps will be skipped here: {facts.tensorrt_problem}")
    return 0
# --- export, serve, perf (Triton) ----------------------------------------------------------


def _export_args(parser):
    parser.add_argument("target", choices=["triton"], help="what to export to (a Triton model repository)")
    parser.add_argument("model", help="an .onnx variant, or a TensorRT engine built by `workbench build`")
    parser.add_argument("--repository", required=True, help="the model repository folder (created if missing)")
    parser.add_argument("--name", help="the model's name in the repository (default: from the file name)")
    parser.add_argument("--version", type=whole_number(1), default=1, help="version folder (default 1)")
    parser.add_argument("--max-batch-size", type=whole_number(0),
                        help="Triton's max_batch_size (default: 0 without a batch dimension, else 32)")
    parser.add_argument("--instances", type=whole_number(1), default=1, help="model instances (instance_group count)")
    parser.add_argument("--dynamic-batching", action="store_true",
                        help="add Triton's dynamic batcher (preferred sizes from the measured batch sweep)")
    parser.add_argument("--preferred-batch-sizes", type=whole_number(1), nargs="+", metavar="B",
                        help="the batcher's preferred sizes (default: from the results table's batch sweep)")
    parser.add_argument("--warmup", help=".npz of real samples for model_warmup")
    parser.add_argument("--force", action="store_true", help="replace an existing version or config")


@command("export", "export a variant or TensorRT engine as a Triton model repository entry", _export_args)
def cmd_export(args):
    result = export_triton(
        args.model, args.repository, name=args.name, version=args.version, max_batch_size=args.max_batch_size,
        instances=args.instances, dynamic_batching=args.dynamic_batching,
        preferred_batch_sizes=args.preferred_batch_sizes, warmup=args.warmup, force=args.force,
    )
    if args.json:
        return result
    print(result["config_text"], end="")
    print(f"\n{result['platform']} model '{result['name']}' version {result['version']} in {result['repository']}:")
    for path in result["files"]:
        print(f"  {path}")
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return None


def _serve_args(parser):
    parser.add_argument("repository", help="a Triton model repository (workbench export triton ...)")
    parser.add_argument("--port", type=whole_number(1, 65535), default=8000, help="HTTP port on 127.0.0.1 (default 8000)")
    parser.add_argument("--grpc-port", type=whole_number(1, 65535), help="gRPC port (default: the next free after --port)")
    parser.add_argument("--metrics-port", type=whole_number(1, 65535), help="metrics port (default: the next free after gRPC)")
    parser.add_argument("--timeout", type=number(0, inclusive=False), default=120, help="seconds to wait for the models to load")
    parser.add_argument("--print-command", action="store_true",
                        help="print the docker run command for NVIDIA's Triton container (GPU machines) and exit")
    parser.add_argument("--docker", action="store_true", help="run that command (needs Docker and an NVIDIA GPU)")
    parser.add_argument("--container-tag", help="the Triton container tag (default: the engines' NGC release)")


@command("serve", "serve a Triton model repository on 127.0.0.1 until Ctrl-C/SIGTERM", _serve_args)
def cmd_serve(args):
    argv = docker_command(args.repository, port=args.port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, tag=args.container_tag)
    if args.print_command or args.docker:
        if args.docker:
            problem = docker_available()
            if problem or "<YY.MM>" in argv[-3]:
                raise WorkbenchError(f"cannot run the Triton container: {problem or 'no container tag known'}. "
                                     "Fix: on a GPU machine with Docker pass --container-tag YY.MM-py3 (the "
                                     "release whose TensorRT built the engines).")
            import subprocess

            return subprocess.call(argv)
        if args.json:
            return {"docker_command": argv, "docker_command_line": " ".join(argv)}
        print(" ".join(argv))
        return None
    server = serve_triton(args.repository, args.port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                          timeout_s=args.timeout)
    if args.json:  # one line, printed once the server is ready; the command keeps running
        print(json.dumps(server.to_dict()), flush=True)
    else:
        print(describe(server))
        for skipped in server.skipped:
            print(f"not served: {skipped['name']} ({skipped['reason']})")
        print("Ctrl-C stops it.", flush=True)
    return run_until_stopped(server)


def _perf_args(parser):
    parser.add_argument("url", help="the server: http://127.0.0.1:8000, grpc://127.0.0.1:8001 or host:port")
    parser.add_argument("--model", required=True, help="the model's name on the server")
    parser.add_argument("--concurrency", type=whole_number(1), nargs="+", default=[1, 2, 4, 8], help="levels (default 1 2 4 8)")
    parser.add_argument("--data", help=".npz of real samples (with labels: top-1 of the served outputs)")
    parser.add_argument("--batch", type=whole_number(1), default=1, help="samples per request (default 1)")
    parser.add_argument("--duration", type=number(0, inclusive=False), default=2.0, help="measured seconds per level (default 2)")
    parser.add_argument("--protocol", choices=["http", "grpc"], help="default: from the URL (http)")
    parser.add_argument("--repository", help="the repository served, to name the rows after the exported variant")
    parser.add_argument("--reference", help="FP32 .onnx to compare the served outputs with")
    parser.add_argument("--import-csv", metavar="PERF_CSV",
                        help="instead of measuring, read perf_analyzer's -f CSV into the same rows")
    parser.add_argument("--no-save", action="store_true", help="do not add the rows to the results table")


@command("perf", "latency and throughput of a served model per concurrency level, as results rows", _perf_args)
def cmd_perf(args):
    if args.import_csv:
        result = {"url": args.url, "model": args.model, "source": args.import_csv, "levels": []}
        rows = perf_analyzer_rows(args.import_csv, url=args.url, model=args.model, batch=args.batch,
                                  protocol=args.protocol or "http", repository=args.repository)
    else:
        result = perf(args.url, args.model, concurrency=args.concurrency, data=args.data, batch=args.batch,
                      duration_s=args.duration, protocol=args.protocol, reference=args.reference)
        rows = perf_rows(result, repository=args.repository)
    result["rows"] = [] if args.no_save else add_rows(rows)
    if args.json:
        return {**result, "results": rows}
    for row in rows:
        print(f"concurrency {row['concurrency']:>3}: median {row['median_ms']:.3f} ms, p99 {row['p99_ms']:.3f} ms, "
              f"{row['throughput']:.1f} samples/s, server queue {_ms(row['server_queue_ms'])}, "
              f"compute {_ms(row['server_compute_ms'])}")
    if rows and rows[0].get("top1") is not None:
        print(f"top-1 of the served outputs: {rows[0]['top1']:.4f}")
    if result["rows"]:
        print(f"{len(result['rows'])} rows added to the results table")
    return None


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.3f} ms"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="workbench",
        description="trt-workbench: inspect ONNX models, and profile, quantize and benchmark them "
        "with ONNX Runtime or TensorRT.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for name, (_func, add_arguments, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text, prog=f"workbench {name}")
        add_arguments(sp)
        sp.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


@contextlib.contextmanager
def _cli_logging(verbose: bool):
    """Log lines of the ``workbench`` logger on the current stderr while a command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    saved = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved)


def main(argv=None) -> int:
    """Entry point of the ``workbench`` command. Returns the exit code."""
    parser = build_parser()
    _JSON_REQUESTED[0] = "--json" in (sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(argv)
    func = COMMANDS[args.command][0]
    try:
        with _cli_logging(args.verbose):
            result = func(args)
    except (WorkbenchError, ValueError, FileNotFoundError) as err:
        print(f"workbench {args.command}: error: {err}", file=sys.stderr)
        if args.json:
            _print_json({"error": str(err)})
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: one line, the traceback only with -v
        if args.verbose:
            traceback.print_exc()
        print(f"workbench {args.command}: internal error: {type(err).__name__}: {err} "
              "(run with -v for the traceback, and please report it)", file=sys.stderr)
        if args.json:
            _print_json({"error": f"internal error: {type(err).__name__}: {err}"})
        return 1
    if isinstance(result, int):
        return result
    if args.json and result is not None:
        try:
            _print_json(result)
        except BrokenPipeError:  # `workbench ... --json | head`: the reader left; not an error
            sys.stdout = open(os.devnull, "w")
    return 0


if __name__ == "__main__":
    sys.exit(main())
