"""The one model fingerprint: a SHA-256 over the model file and the external data files it names.

Variant cache keys, engine cache keys and plan files all name a model by :func:`model_sha256`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import onnx
from onnx import external_data_helper


def file_sha256(path) -> str:
    """SHA-256 of one file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_sha256(path) -> str:
    """The model fingerprint: :func:`sha256_files` over the model and its external data files.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The hex digest.
    """
    return sha256_files(model_files(path))


def model_files(path) -> list[Path]:
    """The model file and the external data files it references, model first.

    Args:
        path: The ``.onnx`` file.

    Returns:
        Existing paths, external data files sorted by name.
    """
    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    locations = {
        external_data_helper.ExternalDataInfo(t).location
        for t in external_data_helper._get_all_tensors(proto)
        if external_data_helper.uses_external_data(t)
    }
    return [path] + [path.parent / loc for loc in sorted(locations) if (path.parent / loc).is_file()]

def sha256_files(paths: Iterable[Path]) -> str:
    """One SHA-256 over several files: each file's name (relative to the first's folder) and bytes.

    Args:
        paths: The files, model first (as :func:`model_files` returns them).

    Returns:
        The hex digest.
    """
    paths = [Path(p) for p in paths]
    digest = hashlib.sha256()
    base = paths[0].parent if paths else Path(".")
    for i, path in enumerate(paths):
        label = "model" if i == 0 else str(path.relative_to(base))
        digest.update(f"{label}\0".encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()
