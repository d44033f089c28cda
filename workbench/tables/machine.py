"""Which machine a measurement ran on: the facts a results row records, and the label that groups rows.

A latency figure means something only on the machine that measured it, so every row a sweep
writes carries the machine's facts (:func:`machine_facts`: host name, CPU, core count, GPUs,
platform) and a short :func:`machine_label`; the tradeoff figure plots one machine at a time
(:func:`machines_in`) instead of silently mixing latencies from different boxes on one axis.

GPUs are read with ``nvidia-smi`` (no CUDA or TensorRT import); ``CUDA_VISIBLE_DEVICES``
narrows them to the ones this process may use (a Dask worker pinned to one GPU reports that one).
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import subprocess
from typing import Any, Iterable, Mapping

MACHINE_COLUMN = "machine"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on x86 and ARM Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                # x86 says "model name"; ARM kernels say "Model" or "Processor" (lower-case
                # "processor" is the CPU's index on both)
                if key.strip() in ("model name", "Model", "Processor") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def _all_gpus() -> tuple[str, ...]:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return ()
    try:
        done = subprocess.run([tool, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in done.stdout.splitlines() if line.strip())


def visible_gpus() -> list[str]:
    """Names of the NVIDIA GPUs this process may use (``CUDA_VISIBLE_DEVICES`` applied); [] without any."""
    gpus = list(_all_gpus())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not gpus:
        return gpus
    picked = []
    for item in visible.split(","):
        item = item.strip()
        if item.isdigit() and int(item) < len(gpus):
            picked.append(gpus[int(item)])
    return picked


def machine_facts() -> dict:
    """The facts a results row records about the machine that measured it.

    Returns:
        ``host``, ``cpu``, ``cpu_count``, ``gpus`` (names, [] for none), ``platform`` and
        ``python``.
    """
    return {
        "host": socket.gethostname(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpus": visible_gpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def machine_label(facts: Mapping[str, Any]) -> str:
    """A short name for a machine: its host, and its GPU when it used one (``box-3 / NVIDIA A100``)."""
    host = str(facts.get("host") or "unknown host")
    gpus = facts.get("gpus") or []
    return f"{host} / {', '.join(gpus)}" if gpus else host


def machines_in(values: Iterable[Any]) -> list[str]:
    """The distinct machine labels among ``values`` (a frame's ``machine`` column), most frequent first.

    Rows without a label (written before rows recorded their machine) are not counted.
    """
    counts: dict[str, int] = {}
    for value in values:
        if isinstance(value, str) and value:
            counts[value] = counts.get(value, 0) + 1
    return sorted(counts, key=lambda m: (-counts[m], m))
