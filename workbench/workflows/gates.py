"""Gates: the CI verdict on a run's measurements, and the JUnit XML that CI test tabs show.

Each gate of a plan (:class:`~workbench.workflows.plan.GateSpec`) is checked against every
(variant, backend) it applies to, giving one :class:`GateResult` each:

===================== ==================================================================
``max_accuracy_drop`` points of the plan's metric below the FP32 model (same backend)
``min_sqnr_db``       the lowest SQNR (dB) of the outputs against FP32
``min_cosine``        the worst per-sample cosine similarity against FP32
``atol``/``rtol``     Polygraphy's verdict (``polygraphy run --atol A --rtol R``, elementwise:
                      every output element within ``atol`` or within ``rtol`` of FP32); the
                      value is the max absolute error, the details hold the max relative one
``max_latency_ms``    latency at a percentile (``median``, ``p90``, ``p99``) and batch size
``min_throughput``    samples per second at a batch size
``max_model_mb``      the variant file's size in MB (10^6 bytes)
===================== ==================================================================

A gate on a backend the run could not measure (TensorRT on a machine without it) is
*skipped*, with the reason: it neither holds nor fails, and JUnit shows it as skipped.
"""

from __future__ import annotations

import math
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from workbench.analysis.accuracy import DEFAULT_ATOL, DEFAULT_RTOL
from workbench.workflows.plan import GateSpec
from workbench.workflows.plan_schema import PERCENTILES

JUNIT_SUITES_NAME = "trt-workbench run"
TOLERANCE_GATE = "atol/rtol"

# gate -> (direction, unit, what): "max" gates hold when value <= limit, "min" when value >= limit.
GATE_KINDS = {
    "max_accuracy_drop": ("max", "points", "accuracy drop vs FP32"),
    "min_sqnr_db": ("min", "dB", "lowest output SQNR vs FP32"),
    "min_cosine": ("min", "", "worst per-sample cosine similarity vs FP32"),
    TOLERANCE_GATE: ("max", "", "max absolute error vs FP32"),
    "max_latency_ms": ("max", "ms", "latency"),
    "min_throughput": ("min", "samples/s", "throughput"),
    "max_model_mb": ("max", "MB", "model file size"),
}


@dataclass
class GateResult:
    """One gate checked on one variant and backend.

    Attributes:
        gate: The gate (``max_accuracy_drop``..., ``atol/rtol`` for the tolerance check).
        variant: The variant's name.
        backend: The backend whose measurements were checked.
        value: The measured value (None when it could not be measured).
        limit: The limit.
        passed: True/False; None when skipped.
        message: One line: what was measured against what.
        skipped: Why the gate was not checked, or None.
        details: Extra settings and figures (percentile, batch, max_rel_error, rtol...).
    """

    gate: str
    variant: str
    backend: str
    value: float | None
    limit: float
    passed: bool | None
    message: str
    skipped: str | None = None
    details: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``max_latency_ms[int8-minmax, onnxruntime, p99@32]``-style test name."""
        extra = ""
        if "batch" in self.details:
            extra = f", {self.details.get('percentile', 'throughput')}@{self.details['batch']}"
        return f"{self.gate}[{self.variant}, {self.backend}{extra}]"

    def to_dict(self) -> dict:
        """JSON-ready: ``gate``, ``variant``, ``backend``, ``value``, ``limit``, ``passed`` (the
        contract), with ``message``, ``skipped`` and ``details``."""
        return {
            "gate": self.gate, "variant": self.variant, "backend": self.backend,
            "value": _finite_or_none(self.value), "limit": self.limit, "passed": self.passed,
            "message": self.message, "skipped": self.skipped, "details": dict(self.details),
        }


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def tolerance_for(gates: Sequence[GateSpec], variant: str, backend: str) -> tuple[float, float] | None:
    """The ``(atol, rtol)`` the plan gates a variant on (Polygraphy's 1e-5 for the one not given),
    or None when no ``atol``/``rtol`` gate applies to it."""
    atol = next((g.limit for g in gates if g.gate == "atol" and g.applies_to(variant, backend)), None)
    rtol = next((g.limit for g in gates if g.gate == "rtol" and g.applies_to(variant, backend)), None)
    if atol is None and rtol is None:
        return None
    return (DEFAULT_ATOL if atol is None else atol, DEFAULT_RTOL if rtol is None else rtol)


def check_gates(
    gates: Sequence[GateSpec],
    entries: Sequence[Mapping[str, Any]],
    *,
    variants: Sequence[str],
    backends: Sequence[str],
    batch_sizes: Sequence[int],
    skipped_backends: Mapping[str, str] | None = None,
) -> list[GateResult]:
    """Check every gate on every (variant, backend) it applies to.

    Args:
        gates: The plan's gates.
        entries: The run's measurements, one per (variant, backend): ``name``, ``backend``,
            ``accuracy_drop``, ``min_sqnr_db``, ``min_cosine``, ``outputs`` (per output
            ``max_abs_error``, ``max_rel_error``, ``passed``), ``tolerance``, ``latency``
            (batch -> ``median_ms``/``p90_ms``/``p99_ms``/``throughput``), ``size_bytes``.
        variants: The plan's variant names, in order.
        backends: The backends the plan asked for.
        batch_sizes: The plan's batch sizes (the first is the default batch of latency gates).
        skipped_backends: Backend -> why it was not measured.

    Returns:
        One result per (gate, variant, backend), in gate then variant then backend order; the
        ``atol`` and ``rtol`` gates of a variant make one ``atol/rtol`` result.
    """
    skipped_backends = dict(skipped_backends or {})
    by_key = {(e["name"], e["backend"]): e for e in entries}
    results: list[GateResult] = []
    tolerance_done = set()
    for spec in gates:
        for variant in variants:
            for backend in backends:
                if not spec.applies_to(variant, backend):
                    continue
                gate = TOLERANCE_GATE if spec.gate in ("atol", "rtol") else spec.gate
                if gate == TOLERANCE_GATE:
                    if (variant, backend) in tolerance_done:
                        continue
                    tolerance_done.add((variant, backend))
                limit = spec.limit
                if gate == TOLERANCE_GATE:
                    limit = tolerance_for(gates, variant, backend)[0]
                entry = by_key.get((variant, backend))
                if entry is None:
                    reason = skipped_backends.get(backend, f"{backend} was not measured")
                    results.append(GateResult(gate, variant, backend, None, limit, None, reason,
                                              skipped=reason, details=_settings(spec, batch_sizes)))
                    continue
                results.append(_check(spec, gate, entry, gates, batch_sizes))
    return results


def _settings(spec: GateSpec, batch_sizes: Sequence[int]) -> dict:
    details = {}
    if spec.gate == "max_latency_ms":
        details["percentile"] = spec.percentile or "median"
    if spec.gate in ("max_latency_ms", "min_throughput"):
        details["batch"] = spec.batch or batch_sizes[0]
    return details


def _check(spec: GateSpec, gate: str, entry: Mapping, gates: Sequence[GateSpec],
           batch_sizes: Sequence[int]) -> GateResult:
    direction, unit, what = GATE_KINDS[gate]
    details = _settings(spec, batch_sizes)
    variant, backend = entry["name"], entry["backend"]
    limit = spec.limit
    if entry.get("error"):
        if gate == TOLERANCE_GATE:
            limit = tolerance_for(gates, variant, backend)[0]
        return GateResult(gate, variant, backend, None, limit, False, f"not measured on {backend}: {entry['error']}",
                          details=details)
    if gate == TOLERANCE_GATE:
        return _check_tolerance(entry, gates)
    if gate == "max_accuracy_drop":
        value = entry.get("accuracy_drop")
        unit = entry.get("metric_unit") or unit
        what = f"{entry.get('metric', 'metric')} drop vs FP32"
    elif gate in ("min_sqnr_db", "min_cosine"):
        value = entry.get(gate)  # the results row's own columns
    elif gate in ("max_latency_ms", "min_throughput"):
        figures = (entry.get("latency") or {}).get(str(details["batch"])) or {}
        column = PERCENTILES[details["percentile"]] if gate == "max_latency_ms" else "throughput"
        value = figures.get(column)
        what = f"{details.get('percentile', '')} latency at batch {details['batch']}" if gate == "max_latency_ms" \
            else f"throughput at batch {details['batch']}"
    else:  # max_model_mb
        size = entry.get("size_bytes")
        value = None if size is None else size / 1e6
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return GateResult(gate, variant, backend, None, limit, False,
                          f"{what}: not measured (no value), so the gate cannot hold", details=details)
    value = float(value)
    passed = value <= limit if direction == "max" else value >= limit
    sign = ("<=" if passed else ">") if direction == "max" else (">=" if passed else "<")
    message = f"{what}: {_fmt(value)} {unit} {sign} limit {_fmt(limit)} {unit}".replace("  ", " ").strip()
    return GateResult(gate, variant, backend, value, limit, passed, message, details=details)


def _check_tolerance(entry: Mapping, gates: Sequence[GateSpec]) -> GateResult:
    """Polygraphy's elementwise verdict at the plan's atol/rtol, measured by the evaluation itself."""
    variant, backend = entry["name"], entry["backend"]
    atol, rtol = tolerance_for(gates, variant, backend)
    outputs = entry.get("outputs") or {}
    measured = entry.get("tolerance") or {}
    details = {"atol": atol, "rtol": rtol, "check_error_stat": "elemwise"}
    if not outputs or (measured.get("atol"), measured.get("rtol")) != (atol, rtol):
        return GateResult(TOLERANCE_GATE, variant, backend, None, atol, False,
                          "outputs were not compared with FP32 at these tolerances", details=details)
    max_abs = max(float(o.get("max_abs_error") or 0.0) for o in outputs.values())
    max_rel = max(float(o.get("max_rel_error") or 0.0) for o in outputs.values())
    passed = all(bool(o.get("passed")) for o in outputs.values())
    failing = [name for name, o in outputs.items() if not o.get("passed")]
    details.update(max_rel_error=max_rel, failing_outputs=failing)
    verdict = "PASSED" if passed else f"FAILED on {', '.join(failing)}"
    message = (f"Polygraphy compare (elementwise): max abs error {_fmt(max_abs)} (atol {_fmt(atol)}), "
               f"max rel error {_fmt(max_rel)} (rtol {_fmt(rtol)}): {verdict}")
    return GateResult(TOLERANCE_GATE, variant, backend, max_abs, atol, passed, message, details=details)


def _fmt(value: float) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def gates_passed(results: Sequence[GateResult]) -> bool:
    """True when no gate failed (skipped gates neither hold nor fail)."""
    return all(r.passed is not False for r in results)


def junit_xml(results: Sequence[GateResult], *, suite: str, properties: Mapping[str, Any] | None = None,
              seconds: float = 0.0, timestamp: datetime | None = None) -> str:
    """The gates as JUnit XML: one test case per gate result, failures with the value and the limit.

    Args:
        results: The gate results.
        suite: The test suite's name (the plan's name).
        properties: Name -> value, written as the suite's properties (model, environment...).
        seconds: The run's wall time.
        timestamp: When the run started (default now, UTC).

    Returns:
        The XML document (``<testsuites name="trt-workbench run">``).
    """
    failures = sum(r.passed is False for r in results)
    skipped = sum(r.passed is None for r in results)
    root = ET.Element("testsuites", name=JUNIT_SUITES_NAME, tests=str(len(results)), failures=str(failures),
                      errors="0", skipped=str(skipped), time=f"{seconds:.3f}")
    suite_el = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)), failures=str(failures),
                             errors="0", skipped=str(skipped), time=f"{seconds:.3f}",
                             timestamp=(timestamp or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
                             hostname=socket.gethostname())
    if properties:
        props = ET.SubElement(suite_el, "properties")
        for name, value in properties.items():
            ET.SubElement(props, "property", name=str(name), value="" if value is None else str(value))
    for result in results:
        case = ET.SubElement(suite_el, "testcase", name=result.name, classname=f"{suite}.{result.variant}",
                             time="0")
        body = f"value: {_fmt(result.value)}\nlimit: {_fmt(result.limit)}\n{result.message}"
        if result.passed is False:
            failure = ET.SubElement(case, "failure", type="GateFailed",
                                    message=f"{result.message} (value {_fmt(result.value)}, limit {_fmt(result.limit)})")
            failure.text = body
        elif result.passed is None:
            ET.SubElement(case, "skipped", message=result.skipped or "not checked")
        else:
            ET.SubElement(case, "system-out").text = body
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
