"""What a benchmark ran on, recorded in every ``bench/results/*.json`` (key ``machine``).

The README's measured figures are generated from those files (``bench/readme_tables.py``), each
with the machine it was measured on, so a figure always names its CPU, core count, versions and
date.
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Processor") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict:
    """The machine and software versions a benchmark runs with, and today's date (UTC).

    Returns:
        ``cpu`` (model name), ``cores`` (logical CPUs this process may use), ``platform``,
        ``python``, ``onnxruntime``, ``onnx``, ``numpy`` and ``date`` (``YYYY-MM-DD``).
    """
    import numpy
    import onnx
    import onnxruntime

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": numpy.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
    }
