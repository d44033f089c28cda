"""The ``workbench`` command line: the notebooks' operations for scripts and CI pipelines.

Every subcommand takes ``--json``; that output is a contract (keys are added, never renamed).
Errors go to stderr as one line naming the problem and the fix, with a non-zero exit code; with
``--json`` an ``{"error": ...}`` object is printed to stdout as well, so pipelines can parse it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable

from workbench.errors import WorkbenchError

log = logging.getLogger("workbench")

EXIT_BAD_INPUT = 2

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
    from workbench.model import load_model
    from workbench.model.summary import format_shape

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
    parser.add_argument("--port", type=int, default=8888, help="port (default 8888, next free if taken)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--notebook", default="00_tour.ipynb", help="notebook to open first")


@command("lab", "start JupyterLab on the notebooks (127.0.0.1, with a token)", _lab_args)
def cmd_lab(args):
    from workbench.lab import lab_command, run_lab

    argv = lab_command(ip=args.ip, port=args.port, open_browser=not args.no_browser, notebook=args.notebook)
    if args.json:
        return {"command": argv}
    return run_lab(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="trt-workbench: inspect ONNX models, and profile, quantize and benchmark them "
        "with ONNX Runtime or TensorRT.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_func, add_arguments, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(sp)
        sp.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv=None) -> int:
    """Entry point of the ``workbench`` command. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    func = COMMANDS[args.command][0]
    try:
        result = func(args)
    except (WorkbenchError, ValueError, FileNotFoundError) as err:
        print(f"workbench {args.command}: error: {err}", file=sys.stderr)
        if args.json:
            _print_json({"error": str(err)})
        return EXIT_BAD_INPUT
    if isinstance(result, int):
        return result
    if args.json and result is not None:
        _print_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
