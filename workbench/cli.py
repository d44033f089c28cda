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
from typing import Callable

import pandas as pd

from workbench.backends import BackendUnavailable, get_backend, tensorrt_status
from workbench.backends.tensorrt.trt_json import import_trt
from workbench.datasets.arrays import load_npz, synthetic_inputs, take_batch
from workbench.errors import WorkbenchError
from workbench.lab import prepare_lab, run_lab
from workbench.model import load_model
from workbench.model.summary import format_shape
from workbench.tables.engine_table import table_records, table_totals
from workbench.workflows.bench import bench_engine
from workbench.workflows.build import build_command
from workbench.workflows.doctor import doctor_command
from workbench.workflows.evaluate import evaluate_command
from workbench.workflows.quantize import quantize_command

log = logging.getLogger("workbench")

EXIT_BAD_INPUT = 2
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
    for warning in summary.warnings:
        print(f"{'warning':>20}: {warning}")
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


# --- profile and bench ---------------------------------------------------------------------


def _model_input_args(parser, *, model_required: bool):
    parser.add_argument("model", nargs=None if model_required else "?", help="path to an .onnx file")
    parser.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "tensorrt"])
    parser.add_argument("--data", help=".npz with one array per model input (default: random inputs)")
    parser.add_argument("--batch", type=whole_number(1), default=1, help="samples per inference (default 1)")
    parser.add_argument(
        "--level", default="all", choices=["disable", "basic", "extended", "all"],
        help="ONNX Runtime graph optimization level (default all)",
    )
    parser.add_argument("--threads", type=whole_number(1), help="ONNX Runtime intra-op threads (default: ORT's)")


def _engine_and_inputs(args):
    """Build the engine the arguments ask for and the inputs to feed it."""

    model = load_model(args.model)
    backend = get_backend(args.backend)
    options = {"graph_optimization_level": args.level, "intra_op_num_threads": args.threads}
    if args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    if args.data:
        inputs, _labels = load_npz(args.data, model.input_names)
        inputs = take_batch(inputs, args.batch)
    else:
        log.info("no --data: timing on random inputs of batch %d", args.batch)
        inputs = synthetic_inputs(model.summary.inputs, batch=args.batch)
    log.info("building %s on %s", model.path.name, backend.name)
    return model, backend.build(model, options), inputs


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
        model, engine, inputs = _engine_and_inputs(args)
        log.info("profiling %d runs", args.iterations)
        table = engine.profile(inputs, iterations=args.iterations)
        source = {"model": str(model.path), "backend": args.backend, "level": args.level, "batch": args.batch}
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
    model, engine, inputs = _engine_and_inputs(args)
    log.info("benchmarking: %d warm-up runs, then %d timed runs", args.warmup, args.iterations)
    result = engine.benchmark(inputs, iterations=args.iterations, warmup=args.warmup, duration_s=args.duration)
    return _print_bench(args, {"model": str(model.path), **result.to_dict()})


def _print_bench(args, data: dict):
    if args.json:
        return data
    for key in ("mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms"):
        print(f"{key:>12}: {data[key]:.4f}")
    print(f"{'throughput':>12}: {data['throughput']:.1f} samples/s (batch {data['batch_size']}, "
          f"{data['iterations']} runs)")
    return None


# --- build (TensorRT) --------------------------------------------------------------------


def _build_args(parser):
    parser.add_argument("model", help="path to an .onnx file (precision lives in the graph: FP16 casts, Q/DQ)")
    parser.add_argument("--recipe", default=None, help="preset (default, fast-build, max-perf) or a recipe .json")
    parser.add_argument("--batch", type=whole_number(1), help="the batch the engine will mostly run (profile opt)")
    parser.add_argument("--data", help=".npz whose shapes set the optimization profile")
    parser.add_argument("--rebuild", action="store_true", help="build even when the cached engine is current")
    parser.add_argument(
        "--plan-only", action="store_true",
        help="only plan (works without TensorRT): profile, cache key and the trtexec command",
    )


@command("build", "build a TensorRT engine (strongly typed) and print the equivalent trtexec command", _build_args)
def cmd_build(args):
    result = build_command(
        args.model, args.recipe, batch=args.batch, data=args.data, rebuild=args.rebuild,
        plan_only=args.plan_only, progress="log",
    )
    if args.json:
        return result
    plan = result["plan"]
    if result.get("built"):
        print(f"engine: {result['engine']} ({'cached' if result.get('cached') else 'built'})")
    print("trtexec equivalent:\n  " + " ".join(plan.get("trtexec_command") or result.get("trtexec_command") or []))
    return None


# --- evaluate --------------------------------------------------------------------------------


def _evaluate_args(parser):
    parser.add_argument("model", help="path to an .onnx file (a variant, or the FP32 model)")
    parser.add_argument("--data", required=True, help=".npz with one array per model input, plus labels")
    parser.add_argument("--reference", help="FP32 .onnx to compare the outputs with")
    parser.add_argument("--batch", type=whole_number(1), default=64, help="samples per inference (default 64)")
    parser.add_argument("--limit", type=whole_number(1), help="use only the first N samples")


@command("evaluate", "top-1/top-5 against labels and output agreement with an FP32 reference", _evaluate_args)
def cmd_evaluate(args):
    result = evaluate_command(args.model, args.data, args.reference, batch_size=args.batch, limit=args.limit)
    if args.json:
        return result
    if "top1" in result:
        print(f"top-1 {result['top1']:.4f}  top-5 {result.get('top5', float('nan')):.4f}  "
              f"({result['samples']} samples)")
    for name, stats in (result.get("outputs") or {}).items():
        print(f"{name}: max abs err {stats['max_abs_error']:.3g}, cosine {stats['cosine']:.6f}, "
              f"SQNR {stats['sqnr_db']} dB")
    return None


# --- quantize ------------------------------------------------------------------------------


def _quantize_args(parser):
    parser.add_argument("model", help="path to the FP32 .onnx file")
    parser.add_argument("--precision", default="int8", choices=["fp32", "fp16", "bf16", "int8", "fp8"],
                        help="target precision (default int8)")
    parser.add_argument("--calib", help="calibration .npz (arrays named after the inputs); needed for int8/fp8")
    parser.add_argument("--method", default="minmax", choices=["minmax", "max", "entropy", "percentile", "distribution"],
                        help="calibration method (default minmax)")
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
        num_samples=args.samples, tool=args.tool, overwrite=args.force, progress="log",
    )
    if args.json:
        return result
    where = result["output"] or result["variant"]
    print(f"{result['precision']} variant: {where} ({'cached' if result['cached'] else 'made'} by "
          f"{result['tool']} {result['tool_version']}, {result['seconds']:.1f} s)")
    if result.get("emulation"):
        print(f"runs on ONNX Runtime CPU as: {result['emulation']}")
    return None


# --- doctor --------------------------------------------------------------------------------


def _doctor_args(parser):
    parser.add_argument("model", help="path to the FP32 .onnx file")
    parser.add_argument("--calib", required=True, help="calibration .npz (one array per model input)")
    parser.add_argument("--eval", required=True,
                        help="labelled evaluation .npz (one array per model input, plus 'labels')")
    parser.add_argument("--target-drop", type=number(0), default=0.5,
                        help="allowed top-1 drop of the fix, in percentage points (default 0.5)")
    parser.add_argument("--method", choices=["minmax", "entropy", "percentile", "distribution"],
                        help="calibration method of the naive INT8 recipe (default minmax)")
    parser.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default per-channel)")
    parser.add_argument("--layerwise-samples", type=whole_number(1), default=256,
                        help="evaluation samples the layerwise comparison uses (default 256)")
    parser.add_argument("--calib-sizes", type=whole_number(1), nargs="+", metavar="N",
                        help="also measure accuracy against calibration-set size (one evaluation each)")
    parser.add_argument("--no-latency", action="store_true", help="skip the ONNX Runtime latency measurement")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the full evaluations on the Dask cluster at tcp://HOST:PORT (docs/distributed.md)")


@command("doctor", "find which layers lose INT8 accuracy, why, and the smallest mixed-precision fix", _doctor_args)
def cmd_doctor(args):
    if args.layerwise_samples < 1:
        raise WorkbenchError(f"--layerwise-samples must be at least 1, got {args.layerwise_samples}.")
    report = doctor_command(
        args.model, args.calib, args.eval, target_drop=args.target_drop, method=args.method,
        per_channel=False if args.per_tensor else None, layerwise_samples=args.layerwise_samples,
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
    print(f"fixed top-1 {100 * report['fixed_accuracy']:.2f}% (target {'met' if report['target_met'] else 'NOT met'}); "
          f"{report['evaluations']} full evaluations; fixed variant: {report['variants']['fixed']}")
    return None


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
