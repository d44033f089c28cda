"""What a benchmark ran on, recorded in every ``bench/results/*.json`` (key ``machine``).

The README's measured figures are generated from those files (``bench/readme_tables.py``), each
with the machine it was measured on, so a figure always names its CPU, core count, versions and
date.
"""

from __future__ import annotations

import datetime
import os
import platform

from workbench.tables.machine import cpu_name


def cpu_model() -> str:
    """The CPU's model name: the workbench's own reading (results rows record the same)."""
    return cpu_name() or "unknown"


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
