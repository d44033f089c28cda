"""The workspace folder: where uploads, variants, engines and results are kept between sessions.

Everything the workbench writes goes here, never over a user's own files, and is written
atomically (to a temporary file in the same folder, then renamed into place).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from workbench.samples import REPO_ROOT

ENV_VAR = "WORKBENCH_WORKSPACE"


def workspace_dir(subdir: str | None = None) -> Path:
    """The workspace folder (``$WORKBENCH_WORKSPACE``, else ``<repo>/workspace``), created if missing.

    Args:
        subdir: A folder inside the workspace to return (created too).

    Returns:
        The folder's path.
    """
    root = Path(os.environ.get(ENV_VAR) or REPO_ROOT / "workspace").expanduser()
    path = root / subdir if subdir else root
    path.mkdir(parents=True, exist_ok=True)
    return path


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, then put it back
    os.umask(mask)
    return mask


def _normal_mode(fd: int) -> None:
    # mkstemp makes files 0600; what we write is the user's, so it gets their usual mode
    os.fchmod(fd, 0o666 & ~current_umask())


def write_atomic(path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one, never half.

    Args:
        path: Destination file.
        data: Bytes, or text written as UTF-8.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        _normal_mode(fd)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def copy_atomic(source, destination) -> Path:
    """Copy the file ``source`` to ``destination`` atomically (streamed, so large models are fine).

    Args:
        source: File to copy.
        destination: Destination file (its folder is created if missing).

    Returns:
        The destination path.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    try:
        _normal_mode(fd)
        os.close(fd)
        shutil.copyfile(source, tmp)
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return destination


def unused_path(folder, filename: str) -> Path:
    """A path in ``folder`` named like ``filename`` that does not exist yet (``name-2.onnx``...),
    so that saving never overwrites an existing file."""
    folder = Path(folder)
    candidate = folder / Path(filename).name
    stem, suffix = candidate.stem, candidate.suffix
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate
