"""Run a server as a child and make sure it never outlives whoever started it.

``python -m workbench.workflows.triton.watchdog --parent PID -- tritonserver ...`` is what
:class:`~workbench.workflows.triton.serve.TritonServer` starts, in a session (process group) of its
own. It stops the server (SIGTERM, then SIGKILL after a grace period) when it gets SIGTERM,
SIGINT or SIGHUP, when the process that started it dies (a kernel killed without a clean exit),
or when the server exits by itself; then it kills whatever is left in its process group (Triton's
Python-backend stubs of a server that crashed), and exits with the server's code. The server also
gets SIGTERM if the watchdog itself is killed (Linux ``PR_SET_PDEATHSIG``).

Standard library only: it runs before anything else is imported and must start fast.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
POLL_S = 0.2


def _die_with_watchdog() -> None:  # runs in the child between fork and exec; the watchdog has one thread
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the polling below still stops the server
        pass


def group_members(pgid: int) -> list[int]:
    """Process ids in process group ``pgid`` (Linux ``/proc``), zombies excluded."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _kill_rest_of_group() -> None:
    me = os.getpid()
    for pid in group_members(os.getpgrp()):
        if pid != me:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main(argv=None) -> int:
    """Start the command, watch it and its parent; returns the command's exit code."""
    parser = argparse.ArgumentParser(prog="watchdog")
    parser.add_argument("--parent", type=int, required=True, help="stop the server when this process dies")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    stop = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda s, _f: stop.append(s))
    child = subprocess.Popen(command, preexec_fn=_die_with_watchdog)
    code = None
    while code is None:
        code = child.poll()
        if code is None and (stop or os.getppid() != args.parent):
            child.send_signal(signal.SIGTERM)  # Triton unloads its models and stops its stubs
            try:
                code = child.wait(args.grace)
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
        elif code is None:
            time.sleep(POLL_S)
    _kill_rest_of_group()
    return 128 + (-code) if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
