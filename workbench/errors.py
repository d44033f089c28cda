"""Errors the workbench raises for bad input. Each message names the problem and the fix."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: an error a user can act on. ``str(err)`` is the whole message."""


class ModelLoadError(WorkbenchError, ValueError):
    """An ONNX model file could not be loaded or failed validation.

    Attributes:
        path: The file that was being loaded.
        problem: What is wrong, in a few words.
        fix: What to do about it.
    """

    def __init__(self, path, problem: str, fix: str = ""):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)
