"""Atomic writes: readers see the old file or the new one, files get the user's usual mode, and a
failed write leaves the old file as it was."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from workbench import workspace
from workbench.workspace import copy_atomic, current_umask, unused_path, write_atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_current_umask_reads_without_changing_it(umask_027):
    assert current_umask() == 0o027
    assert current_umask() == 0o027


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_written_files_get_the_users_mode(tmp_path, mask):
    old = os.umask(mask)
    try:
        written = write_atomic(tmp_path / "a.json", "{}")
        copied = copy_atomic(written, tmp_path / "b.json")
        reference = tmp_path / "plain.txt"
        reference.write_text("x")  # what open() gives under this umask
    finally:
        os.umask(old)
    assert _mode(written) == 0o666 & ~mask == _mode(reference)
    assert _mode(copied) == 0o666 & ~mask


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")

    def disk_full(fd):  # the data reaches the disk at fsync; a full disk fails there
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(workspace.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new" * 100_000)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary left


def test_interrupted_copy_keeps_the_old_file(tmp_path, monkeypatch):
    source = tmp_path / "model.onnx"
    source.write_bytes(b"new model")
    target = tmp_path / "copy.onnx"
    target.write_bytes(b"old model")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(workspace.shutil, "copyfile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        copy_atomic(source, target)
    assert target.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.onnx", "model.onnx"]


def test_unused_path_never_names_an_existing_file(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"1")
    (tmp_path / "m-2.onnx").write_bytes(b"2")
    assert unused_path(tmp_path, "m.onnx") == tmp_path / "m-3.onnx"
    assert unused_path(tmp_path, "other.onnx") == tmp_path / "other.onnx"
