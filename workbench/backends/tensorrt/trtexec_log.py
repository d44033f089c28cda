"""Read what a trtexec run printed: performance summary, options, device, version, profile.

trtexec (TensorRT 8.x-10.x) ends a timed run with::

    [I] === Performance summary ===
    [I] Throughput: 499.294 qps
    [I] Latency: min = 1.98 ms, max = 2.06 ms, mean = 2.00 ms, median = 1.99 ms, percentile(90%) = 2.02 ms, percentile(95%) = 2.02 ms, percentile(99%) = 2.06 ms
    [I] Enqueue Time: ...
    [I] H2D Latency: ... / GPU Compute Time: ... / D2H Latency: ...
    [I] Total Host Walltime: 3.00 s

Every statistic is read by its name (``mean = ...``, ``percentile(99%) = ...`` or
``percentile(99%)=...``), never by its position, so logs that print other percentiles
(``--percentile=50,99.9``, declared by the ``Percentiles: ...`` line) are read correctly.
TensorRT 7's multi-line ``Host Latency`` block is not supported.

trtexec prints no summary when ``--dumpProfile`` runs without ``--separateProfileRun`` (the
profiler's synchronisations would distort it); such a log still has the per-layer
``=== Profile (N iterations ) ===`` table, which :func:`parse_trtexec_log` returns when called
with ``require_summary=False``.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

SUMMARY_HEADER = "=== Performance summary ==="
NO_E2E_NOTICE = "The e2e network timing is not reported"

_LOG_PREFIX = re.compile(r"^\s*(?:\[\d{2}/\d{2}/\d{4}-\d{2}:\d{2}:\d{2}\]\s*)?(?:\[(?P<severity>[VIWEF])\]\s?)?")
_SECTION_HEADER = re.compile(r"^=== (?P<title>.+?) ===\s*$")
_STATISTIC = re.compile(
    r"(?P<key>min|max|mean|median|percentile\(\s*(?P<pct>[\d.]+)\s*%\s*\))\s*=\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|nan)\s*(?P<unit>ms|us|µs|s)?",
    re.IGNORECASE,
)
_SCALAR_LINE = re.compile(
    r"^(?P<name>[A-Za-z][A-Za-z0-9 ()/-]*?):\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>[A-Za-z/%]+)?\s*$"
)
_RUN_LINE = re.compile(r"^&&&& (?P<status>\w+) TensorRT\.trtexec \[TensorRT v(?P<tag>\d+)\] # (?P<command>.*)$")
_PROFILE_HEADER = re.compile(r"^=== Profile \((?P<iterations>\d+) iterations? \) ===")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_UNIT_TO_MS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}


def read_log_text(text_or_path: Any) -> tuple[str, str]:
    """Return a log's text and a label naming it.

    Args:
        text_or_path: A :class:`pathlib.Path`/``os.PathLike``, a string naming an existing file
            (single line), or the log text itself.

    Returns:
        ``(text, label)``; ``label`` is the path or ``"<text>"``.

    Raises:
        ValueError: A path that does not exist.
    """
    if isinstance(text_or_path, os.PathLike):
        path = Path(text_or_path)
        if not path.is_file():
            raise ValueError(f"{path}: trtexec log not found")
        return path.read_text(encoding="utf-8", errors="replace"), str(path)
    text = str(text_or_path)
    if "\n" not in text and len(text) < 4096 and Path(text).is_file():
        return Path(text).read_text(encoding="utf-8", errors="replace"), text
    return text, "<text>"


def split_log_line(line: str) -> tuple[str | None, str]:
    """Remove trtexec's ``[date-time] [I] `` prefix from a line.

    Args:
        line: One log line.

    Returns:
        ``(severity, message)``; ``severity`` is ``V``, ``I``, ``W``, ``E``, ``F`` or None.
    """
    match = _LOG_PREFIX.match(line)
    return match.group("severity"), line[match.end():].rstrip()


def snake_case(name: str) -> str:
    """``"GPU Compute Time"`` -> ``"gpu_compute_time"``.

    Args:
        name: A metric name as trtexec prints it.

    Returns:
        Lower-case words joined by underscores.
    """
    return "_".join(re.findall(r"[A-Za-z0-9]+", name)).lower()


def to_ms(value: str, unit: str | None) -> float:
    """Convert a printed time to milliseconds (no unit means milliseconds).

    Args:
        value: The number as printed.
        unit: ``ms``, ``us``/``µs`` or ``s``.

    Returns:
        The time in milliseconds.
    """
    return float(value) * _UNIT_TO_MS.get((unit or "ms").lower(), 1.0)


def parse_statistics(body: str) -> dict | None:
    """Read ``min = ..., max = ..., mean = ..., median = ..., percentile(p%) = ...`` by name.

    Args:
        body: The text after ``Latency:`` (or another metric name).

    Returns:
        ``{"min_ms", "max_ms", "mean_ms", "median_ms", "percentiles_ms": {p: value}}`` with
        only the statistics present (``percentiles_ms`` keyed by float percent, e.g. ``99.0``);
        None when ``body`` holds no statistic.
    """
    stats: dict[str, Any] = {}
    percentiles: dict[float, float] = {}
    for match in _STATISTIC.finditer(body):
        value = to_ms(match.group("value"), match.group("unit"))
        if match.group("pct") is not None:
            percentiles[float(match.group("pct"))] = value
        else:
            stats[f"{match.group('key').lower()}_ms"] = value
    if not stats and not percentiles:
        return None
    stats["percentiles_ms"] = percentiles
    return stats


def last_summary_lines(messages: list[str]) -> list[str] | None:
    """Return the message lines of the last performance summary, or None if there is none.

    Args:
        messages: Log messages without prefixes.

    Returns:
        The lines after ``=== Performance summary ===`` up to the next ``=== ... ===`` header
        or an empty message.
    """
    starts = [i for i, message in enumerate(messages) if message.strip() == SUMMARY_HEADER]
    if not starts:
        return None
    lines = []
    for message in messages[starts[-1] + 1:]:
        if not message.strip() or _SECTION_HEADER.match(message.strip()):
            break
        lines.append(message.strip())
    return lines


def parse_performance_summary(lines: list[str]) -> dict:
    """Parse a performance summary's lines.

    Args:
        lines: Output of :func:`last_summary_lines`.

    Returns:
        ``{"throughput_qps", "<metric>": statistics, ...}`` where ``<metric>`` is the snake-case
        metric name (``latency``, ``enqueue_time``, ``h2d_latency``, ``gpu_compute_time``,
        ``d2h_latency``, ``end_to_end_host_latency``...) and statistics come from
        :func:`parse_statistics`; single-value lines become ``<name>_<unit>`` entries
        (``total_host_walltime_s``, ``total_gpu_compute_time_s``).
    """
    summary: dict[str, Any] = {"throughput_qps": None}
    for line in lines:
        name, _, body = line.partition(":")
        if not body:
            continue
        statistics = parse_statistics(body)
        if statistics is not None and "=" in body:
            summary[snake_case(name)] = statistics
            continue
        scalar = _SCALAR_LINE.match(line)
        if scalar:
            unit = (scalar.group("unit") or "").lower()
            key = snake_case(scalar.group("name")) + (f"_{snake_case(unit)}" if unit else "")
            summary[key] = float(scalar.group("value"))
    return summary


def parse_option_sections(messages: list[str]) -> dict[str, dict[str, str]]:
    """Collect trtexec's ``=== Model Options ===``-style sections as key/value text.

    Args:
        messages: Log messages (INFO lines) without prefixes.

    Returns:
        Section title -> {option: value} for sections whose title ends with ``Options`` and
        ``Device Information``; other sections (summary, trace, profile) are skipped. Values are kept as printed (``"FP32+INT8"``, ``"3s (+ 200ms warm up)"``).
    """
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for message in messages:
        header = _SECTION_HEADER.match(message.strip())
        if header:
            title = header.group("title")
            keep = title.endswith("Options") or title == "Device Information"
            current = sections.setdefault(title, {}) if keep else None
            continue
        if current is None or message.startswith("[TRT]"):
            continue
        if not message.strip():
            current = None
            continue
        key, separator, value = message.partition(":")
        if separator and key.strip():
            current.setdefault(key.strip(), value.strip())
    return sections


def parse_run_line(lines: list[str]) -> dict:
    """Read the ``&&&& RUNNING/PASSED/FAILED TensorRT.trtexec [TensorRT vNNNN] # cmd`` lines.

    Args:
        lines: Raw log lines.

    Returns:
        ``{"command", "argv", "status", "version_tag"}``; ``status`` is the last one printed
        (``PASSED``/``FAILED``, else ``RUNNING``); all None when no such line exists.
    """
    result: dict[str, Any] = {"command": None, "argv": None, "status": None, "version_tag": None}
    for line in lines:
        match = _RUN_LINE.match(line.strip())
        if not match:
            continue
        result["status"] = match.group("status")
        result["version_tag"] = match.group("tag")
        if result["command"] is None:
            command = match.group("command").strip()
            result["command"] = command
            try:
                result["argv"] = shlex.split(command)
            except ValueError:
                result["argv"] = command.split()
    return result


def version_from_tag(tag: str | None) -> str | None:
    """Decode trtexec's version tag: ``8502`` -> ``8.5.2``, ``100300`` -> ``10.3.0``.

    Args:
        tag: The digits after ``TensorRT v``.

    Returns:
        The dotted version, or None.
    """
    if not tag or not tag.isdigit():
        return None
    if len(tag) == 4:
        return f"{int(tag[0])}.{int(tag[1])}.{int(tag[2:])}"
    if len(tag) == 6:
        return f"{int(tag[:2])}.{int(tag[2:4])}.{int(tag[4:])}"
    return None


def parse_declared_percentiles(sections: dict[str, dict[str, str]]) -> list[float] | None:
    """Read the ``Percentiles: 90,95,99`` reporting option (``Percentile: 99`` before 8.4).

    Args:
        sections: Output of :func:`parse_option_sections`.

    Returns:
        The declared percentiles as floats, or None when not printed.
    """
    reporting = sections.get("Reporting Options", {})
    text = reporting.get("Percentiles", reporting.get("Percentile"))
    if not text:
        return None
    return [float(p) for p in re.findall(_NUMBER, text)]


def parse_layer_profile(messages: list[str]) -> dict | None:
    """Parse the per-layer table trtexec prints with ``--dumpProfile``.

    Columns are read from the right (names may contain spaces): total time, average, median
    (TensorRT 8.5+) and percent.

    Args:
        messages: Log messages without prefixes.

    Returns:
        ``{"iterations", "layers": [{"name", "time_ms", "average_ms", "median_ms",
        "percentage"}], "total": {...}}`` for the last profile table, or None.
    """
    starts = [i for i, m in enumerate(messages) if _PROFILE_HEADER.match(m.strip())]
    if not starts:
        return None
    start = starts[-1]
    iterations = int(_PROFILE_HEADER.match(messages[start].strip()).group("iterations"))
    header = messages[start + 1] if start + 1 < len(messages) else ""
    columns = ["time_ms", "average_ms", "median_ms", "percentage"] if "Median" in header else [
        "time_ms", "average_ms", "percentage"
    ]
    number_columns = (r"\s+(" + _NUMBER + r")") * len(columns)
    row = re.compile(r"^\s*(?P<name>.+?)" + number_columns + r"\s*$")
    layers, total = [], None
    for message in messages[start + 2:]:
        if not message.strip():
            break
        match = row.match(message)
        if not match:
            break
        record = {"name": match.group("name").strip()}
        record.update({c: float(match.group(i + 2)) for i, c in enumerate(columns)})
        if record["name"] == "Total":
            total = record
        else:
            layers.append(record)
    return {"iterations": iterations, "layers": layers, "total": total}


def parse_trtexec_log(text_or_path: Any, *, require_summary: bool = True) -> dict:
    """Parse a trtexec log into a plain dict.

    Args:
        text_or_path: The log text, or a path to it (``str`` naming an existing file or
            :class:`pathlib.Path`).
        require_summary: Raise when the log has no performance summary (default). With False,
            ``performance_summary`` is None and the rest is still returned.

    Returns:
        ``{"source", "tensorrt_version", "command", "argv", "status", "gpu", "options",
        "declared_percentiles", "performance_summary", "layer_profile", "warnings"}``.
        ``performance_summary`` is described in :func:`parse_performance_summary`; times are
        in milliseconds. ``options`` maps section titles (``Model Options``, ``Build
        Options``, ``Inference Options``, ``Reporting Options``, ``Device Information``...) to
        their printed key/values. ``layer_profile`` is :func:`parse_layer_profile`'s result.

    Raises:
        ValueError: ``require_summary`` and the log has no ``=== Performance summary ===``;
            the message says why trtexec omitted it when the log tells.
    """
    text, label = read_log_text(text_or_path)
    raw_lines = text.splitlines()
    split = [split_log_line(line) for line in raw_lines]
    info_messages = [message for severity, message in split if severity in (None, "I")]
    all_messages = [message for _, message in split]
    warnings: list[str] = []

    summary_lines = last_summary_lines(info_messages)
    e2e_omitted = any(NO_E2E_NOTICE in message for message in all_messages)
    if summary_lines is None:
        reason = (
            " trtexec omitted it because --dumpProfile ran without --separateProfileRun "
            "(the log says 'The e2e network timing is not reported'); rerun with "
            "--separateProfileRun, or without --dumpProfile."
            if e2e_omitted
            else " Is the log complete? trtexec prints it at the end of a timed run "
            "(not with --buildOnly or when the run failed)."
        )
        message = f"{label}: no '{SUMMARY_HEADER}' in this trtexec log.{reason}"
        if require_summary:
            raise ValueError(message)
        warnings.append(message)
    summary = parse_performance_summary(summary_lines) if summary_lines is not None else None

    sections = parse_option_sections(info_messages)
    declared = parse_declared_percentiles(sections)
    if summary is not None and declared is not None:
        for metric, stats in summary.items():
            if isinstance(stats, dict) and set(stats["percentiles_ms"]) != set(declared):
                warnings.append(
                    f"{metric}: printed percentiles {sorted(stats['percentiles_ms'])} differ from "
                    f"the declared {declared}"
                )
    run = parse_run_line(raw_lines)
    version = sections.get("Device Information", {}).get("TensorRT version")
    if version is None:
        version = next(
            (m.partition(":")[2].strip() for m in info_messages if m.startswith("TensorRT version:")), None
        )
    return {
        "source": label,
        "tensorrt_version": version or version_from_tag(run["version_tag"]),
        "command": run["command"],
        "argv": run["argv"],
        "status": run["status"],
        "gpu": sections.get("Device Information", {}).get("Selected Device"),
        "options": sections,
        "declared_percentiles": declared,
        "performance_summary": summary,
        "layer_profile": parse_layer_profile(info_messages),
        "warnings": warnings,
    }
