"""The build log: TensorRT's logger captured per build, summarized, and ONNX parser errors explained."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:  # names for annotations only; tensorrt is imported inside functions
    import tensorrt as trt

SEVERITIES = ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")

SEVERITY_LETTERS = {"INTERNAL_ERROR": "F", "ERROR": "E", "WARNING": "W", "INFO": "I", "VERBOSE": "V"}

def severity_label(value: Any) -> str:
    """Normalise a TensorRT log severity to one of :data:`SEVERITIES`.

    Args:
        value: A ``trt.ILogger.Severity`` (its ``name``), its text (``"Severity.WARNING"``,
            ``"kWARNING"``, ``"WARNING"``), its int value (0-4) or trtexec's letter (``"W"``).

    Returns:
        ``"INTERNAL_ERROR"``, ``"ERROR"``, ``"WARNING"``, ``"INFO"`` or ``"VERBOSE"``.

    Raises:
        ValueError: Not a severity.
    """
    name = getattr(value, "name", None)
    if isinstance(value, int) and not isinstance(value, bool) and name is None:
        if 0 <= value < len(SEVERITIES):
            return SEVERITIES[value]
        raise ValueError(f"not a TensorRT severity: {value!r}")
    text = str(name if isinstance(name, str) else value).split(".")[-1].strip().upper()
    if text.startswith("K") and text[1:] in SEVERITIES:
        text = text[1:]
    if text in SEVERITIES:
        return text
    for label, letter in SEVERITY_LETTERS.items():
        if text == letter:
            return label
    raise ValueError(f"not a TensorRT severity: {value!r}")

@dataclass(frozen=True)
class LogRecord:
    """One message from TensorRT's logger."""

    severity: str
    message: str
    time_s: float = 0.0

class BuildLog:
    """Records what TensorRT's logger says during a build or a load.

    Args:
        min_severity: Least severe level kept (``"INFO"`` by default; ``"VERBOSE"`` keeps the
            tactic-by-tactic chatter, tens of thousands of lines for a real model).
    """

    def __init__(self, min_severity: str = "INFO"):
        self.min_severity = severity_label(min_severity)
        self.records: list[LogRecord] = []
        self._start = time.monotonic()

    def log(self, severity: Any, message: str) -> None:
        """Record one message (the signature of ``ILogger.log``)."""
        label = severity_label(severity)
        if SEVERITIES.index(label) <= SEVERITIES.index(self.min_severity):
            self.records.append(LogRecord(label, str(message), time.monotonic() - self._start))

    @property
    def errors(self) -> list[str]:
        return [r.message for r in self.records if r.severity in ("ERROR", "INTERNAL_ERROR")]

    @property
    def warnings(self) -> list[str]:
        return [r.message for r in self.records if r.severity == "WARNING"]

    def text(self) -> str:
        """The log as trtexec prints TensorRT's messages (``[W] [TRT] message``), one per line,
        so :func:`~workbench.backends.tensorrt.trtexec_log.split_log_line` reads it back."""
        return "".join(f"[{SEVERITY_LETTERS[r.severity]}] [TRT] {r.message}\n" for r in self.records)

    def summary(self) -> dict:
        return summarize_build_log(self.records)

_MEMORY_FACTS = {
    "total_host_persistent_memory_bytes": re.compile(r"^Total Host Persistent Memory: (\d+)"),
    "total_device_persistent_memory_bytes": re.compile(r"^Total Device Persistent Memory: (\d+)"),
    "total_scratch_memory_bytes": re.compile(r"^Total Scratch Memory: (\d+)"),
    "total_activation_memory_bytes": re.compile(r"^Total Activation Memory: (\d+)"),
    "engine_size_mib": re.compile(r"^Loaded engine size: (\d+) MiB"),
}

_PEAK_MEMORY = re.compile(r"Peak memory usage of TRT CPU/GPU memory allocators: CPU (\d+) MiB, GPU (\d+) MiB")

def summarize_build_log(records: Iterable[LogRecord]) -> dict:
    """Summarize a TensorRT build log.

    Args:
        records: Log records (:attr:`BuildLog.records`).

    Returns:
        ``{"counts": {severity: n}, "errors": [...], "warnings": [...]`` (distinct messages in
        order, at most 20 each), and when logged: ``total_host_persistent_memory_bytes``,
        ``total_device_persistent_memory_bytes``, ``total_scratch_memory_bytes``,
        ``total_activation_memory_bytes`` (the last one logged: the builder logs a first
        estimate before block assignment), ``engine_size_mib``, ``peak_cpu_mib``,
        ``peak_gpu_mib``, and ``local_timing_cache`` (True when TensorRT said its timing results
        would not be stored).
    """
    counts = {s: 0 for s in SEVERITIES}
    errors: list[str] = []
    warnings: list[str] = []
    facts: dict[str, Any] = {}
    for record in records:
        counts[record.severity] += 1
        target = errors if record.severity in ("ERROR", "INTERNAL_ERROR") else warnings if record.severity == "WARNING" else None
        if target is not None and record.message not in target and len(target) < 20:
            target.append(record.message)
        for key, pattern in _MEMORY_FACTS.items():
            match = pattern.match(record.message)
            if match:
                facts[key] = int(match.group(1))
        peak = _PEAK_MEMORY.search(record.message)
        if peak:
            facts["peak_cpu_mib"], facts["peak_gpu_mib"] = int(peak.group(1)), int(peak.group(2))
        if record.message.startswith("Local timing cache in use"):
            facts["local_timing_cache"] = True
    return {"counts": counts, "errors": errors, "warnings": warnings, **facts}

class _LoggerSinks:
    """The sinks the process-wide TensorRT logger forwards to (one per capture in progress)."""

    def __init__(self):
        self.sinks: list[BuildLog] = []
        self.lock = threading.Lock()

    def forward(self, severity, message) -> None:
        with self.lock:
            sinks = list(self.sinks)
        for sink in sinks:
            sink.log(severity, message)

_SINKS = _LoggerSinks()

_TRT_LOGGER = None

def trt_logger():
    """The process-wide TensorRT logger (needs TensorRT).

    TensorRT keeps one logger per process (the first one given to a builder or runtime), so the
    workbench creates one and attaches a :class:`BuildLog` to it for each build or load with
    :func:`capture_log`. Errors and warnings are also sent to Python's ``logging``.
    """
    global _TRT_LOGGER
    if _TRT_LOGGER is None:
        import logging

        import tensorrt as trt

        python_log = logging.getLogger("workbench.tensorrt")

        class CapturingLogger(trt.ILogger):
            """Forwards TensorRT's messages to the active :class:`BuildLog` captures."""

            def __init__(self):
                super().__init__()  # pybind11 needs the base initialised explicitly

            def log(self, severity, msg):
                try:
                    _SINKS.forward(severity, msg)
                    label = severity_label(severity)
                    if label in ("ERROR", "INTERNAL_ERROR"):
                        python_log.error("%s", msg)
                    elif label == "WARNING":
                        python_log.warning("%s", msg)
                except Exception:  # log() is noexcept on the C++ side
                    pass

        _TRT_LOGGER = CapturingLogger()
    return _TRT_LOGGER

@contextlib.contextmanager
def capture_log(log: BuildLog):
    """Attach ``log`` to the TensorRT logger for the duration of the block."""
    with _SINKS.lock:
        _SINKS.sinks.append(log)
    try:
        yield log
    finally:
        with _SINKS.lock:
            _SINKS.sinks.remove(log)

@dataclass(frozen=True)
class ParserErrorInfo:
    """One error of TensorRT's ONNX parser, as plain data.

    Attributes:
        code: The ``ErrorCode`` name (``"UNSUPPORTED_NODE"``).
        desc: TensorRT's description.
        node: Index of the failing node in the graph (-1: not a node, e.g. an initializer).
        node_name, node_operator: The node's name and op type when the parser gives them.
        file, line, func: Where in the parser the error was raised.
    """

    code: str
    desc: str
    node: int = -1
    node_name: str = ""
    node_operator: str = ""
    file: str = ""
    line: int = 0
    func: str = ""

def error_code_name(code: Any) -> str:
    """``ErrorCode.UNSUPPORTED_NODE`` (or its text) -> ``"UNSUPPORTED_NODE"``."""
    name = getattr(code, "name", None)
    return str(name if isinstance(name, str) else code).split(".")[-1]

def format_parser_errors(
    errors: Sequence[ParserErrorInfo],
    model_path,
    onnx_nodes: Sequence[tuple[str, str]] = (),
) -> str:
    """The parser's errors as one message: a line per error naming the node and the cause.

    Args:
        errors: The errors.
        model_path: The model, for the message.
        onnx_nodes: ``(name, op_type)`` per graph node, to name nodes when the parser gives an
            index only (TensorRT 8.x) or to check the names it gives.

    Returns:
        The message.
    """
    lines = [f"{model_path}: TensorRT's ONNX parser failed with {len(errors)} error(s):"]
    for error in errors:
        name, op = error.node_name, error.node_operator
        if 0 <= error.node < len(onnx_nodes):
            name = name or onnx_nodes[error.node][0]
            op = op or onnx_nodes[error.node][1]
        if error.node >= 0:
            where = f"node {error.node}" + (f" '{name}'" if name else "") + (f" ({op})" if op else "")
        else:
            where = "the graph (not a node: inputs or initializers)"
        origin = error.file + (f":{error.line}" if error.file and error.line else "")
        if error.func:
            origin = f"{origin} in {error.func}" if origin else f"in {error.func}"
        origin = f" [{origin}]" if origin else ""
        lines.append(f"  {where}: {error.code}: {error.desc}{origin}")
    lines.append(
        "Fix: check that these operators and attributes are supported by this TensorRT version "
        "(https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md); simplify or "
        "constant-fold the graph (polygraphy surgeon sanitize --fold-constants), or replace the "
        "nodes."
    )
    return "\n".join(lines)

def parser_error_info(error: trt.ParserError) -> ParserErrorInfo:
    """Copy a TensorRT ``ParserError`` into plain data."""
    return ParserErrorInfo(
        code=error_code_name(error.code()),
        desc=str(error.desc()),
        node=int(error.node()),
        node_name=str(error.node_name() or ""),
        node_operator=str(error.node_operator() or ""),
        file=str(error.file() or ""),
        line=int(error.line()),
        func=str(error.func() or ""),
    )
