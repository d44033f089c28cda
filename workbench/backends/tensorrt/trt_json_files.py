"""Reading TensorRT's JSON files: the error, and what each file should hold and how to make it.

Every message about a TensorRT JSON input names the file, says what was expected and gives the
``trtexec`` command that produces such a file; the constants here hold those texts for the three
inputs of :func:`~workbench.backends.tensorrt.trt_json.import_trt`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

LAYERS_HOW_TO = (
    "trtexec --onnx=model.onnx --profilingVerbosity=detailed "
    "--exportLayerInfo=layers.json (or the engine inspector's "
    "get_engine_information(LayerInformationFormat.JSON))"
)
PROFILE_HOW_TO = "trtexec --loadEngine=model.engine --exportProfile=profile.json --separateProfileRun"
TIMES_HOW_TO = "trtexec --loadEngine=model.engine --exportTimes=times.json"

LAYERS_EXPECTED = (
    'TensorRT layer information: a list of layers or {"Layers": [...], "Bindings": [...]} '
    '(TensorRT 11: "I/O Tensors" instead of "Bindings"), each layer a name or a dict with "Name"'
)
PROFILE_EXPECTED = (
    'a trtexec per-layer profile: a list [{"count": N}, {"name", "timeMs", "averageMs", '
    '"medianMs", "percentage"}, ...]'
)
TIMES_EXPECTED = (
    'trtexec per-inference timings: a list of records with "latencyMs" (and "h2dMs", '
    '"computeMs", "d2hMs", "startEnqMs", "endEnqMs"...)'
)


class TrtJsonError(WorkbenchError, ValueError):
    """A TensorRT JSON input is missing, not JSON, or not of a recognised shape.

    The message names the file, says what was expected and how to produce it.
    """


# --------------------------------------------------------------------------------------------
# Loading


def load_json_input(source: Any, expected: str, how_to: str) -> tuple[Any, str]:
    """Return the parsed JSON of ``source`` and a label naming it for messages.

    Args:
        source: A path (``str`` or :class:`os.PathLike`) to a JSON file, or an already parsed
            JSON object (list or dict).
        expected: What the file should contain, for error messages.
        how_to: The command that produces such a file, for error messages.

    Returns:
        ``(document, label)``; ``label`` is the path, or ``"<in-memory object>"``.

    Raises:
        TrtJsonError: The file is missing or unreadable, or is not JSON.
    """
    if not isinstance(source, (str, os.PathLike)):
        return source, "<in-memory object>"
    path = Path(source)
    if not path.is_file():
        raise TrtJsonError(
            f"{path}: file not found. Expected {expected}. Produce it with: {how_to}"
        )
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        return json.loads(text), str(path)
    except json.JSONDecodeError as err:
        raise TrtJsonError(
            f"{path}: not JSON ({err.msg} at line {err.lineno} column {err.colno}). "
            f"Expected {expected}. Produce it with: {how_to}"
        ) from err
    except OSError as err:
        raise TrtJsonError(f"{path}: cannot be read ({err}). Expected {expected}.") from err


def shape_error(label: str, problem: str, expected: str, how_to: str) -> TrtJsonError:
    """Build the error for JSON of an unrecognised shape.

    Args:
        label: The file (or ``"<in-memory object>"``).
        problem: What is wrong with it.
        expected: What it should contain.
        how_to: The command that produces such a file.

    Returns:
        The exception, to be raised by the caller.
    """
    return TrtJsonError(f"{label}: {problem}. Expected {expected}. Produce it with: {how_to}")
