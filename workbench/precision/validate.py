"""The gate every variant passes before it is written: a valid ONNX model that ONNX Runtime loads.

Two checks, on the model in memory, before any file is written:

1. ``onnx.checker.check_model(full_check=True)``: the schema of every node at the model's opset
   (a per-channel ``DequantizeLinear`` below opset 13 has no ``axis``) and strict type and shape
   inference (a ``Cast`` to float feeding a float16 ``MatMul``);
2. an ONNX Runtime CPU session. Its refusals are of two kinds, kept apart:

   - ``NOT_IMPLEMENTED``: ORT's CPU provider has no kernel for a node at this type (BF16 Conv,
     say). The variant is valid and meant for TensorRT; that is an honest, recorded state
     (``runs_on_ort_cpu`` False, with ORT's reason);
   - anything else (``INVALID_GRAPH``, ``FAIL``, type errors): the graph is invalid, and the
     variant is refused (:class:`InvalidVariantError`, exit 2 on the command line) naming the
     node and the reason. It is never written.

An emulation file (the ORT-CPU stand-in of a BF16/FP16 variant) exists to run on ORT CPU, so for
it any ORT refusal is a refusal.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import onnx
from onnxruntime.capi.onnxruntime_pybind11_state import (
    NotImplemented as OrtNotImplemented,
)

from workbench.backends.onnxruntime.session import MAX_PROTO_BYTES, ort_session
from workbench.errors import WorkbenchError

# Where the checker's and ORT's messages name the node they stopped at.
_NODE_PATTERNS = (
    r"node name: ([^)\s]+)",
    r"Name: (\S+) OpType",
    r"node with name '([^']+)'",
    r"in node \(([^)]+)\)",
    r"Node \(([^)]+)\) Op",
    r"node \(([^)]+)\)",
)


class VariantError(WorkbenchError, ValueError):
    """A variant cannot be made as asked; the message names the problem and the fix."""


class InvalidVariantError(VariantError):
    """A variant would not be a valid model; it was not written. The message names the node and why.

    Attributes:
        node: The node the checker or ONNX Runtime named, or None.
        reason: Their message's first line.
    """

    def __init__(self, message: str, *, node: str | None = None, reason: str = ""):
        super().__init__(message)
        self.node = node
        self.reason = reason


@dataclass(frozen=True)
class Validation:
    """What the gate found for a variant that passed it.

    Attributes:
        runs_on_ort_cpu: ONNX Runtime's CPU provider made a session.
        ort_cpu_problem: When it did not: ORT's reason (a missing kernel), else None.
    """

    runs_on_ort_cpu: bool
    ort_cpu_problem: str | None = None

    def to_dict(self) -> dict:
        """The record's ``validation`` entry."""
        return {
            "onnx_checker": "passed (full_check: schemas at the model's opset, strict type and shape inference)",
            "onnxruntime_cpu": "loads" if self.runs_on_ort_cpu else f"no kernel: {self.ort_cpu_problem}",
        }


def first_line(err: BaseException) -> str:
    """An error's first non-empty line (ORT's and the checker's messages run over many), without
    ORT's ``[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED :`` prefix."""
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(err).strip())
    return (text.splitlines() or [type(err).__name__])[0].strip()


def node_in(message: str) -> str | None:
    """The node a checker or ONNX Runtime message names, or None."""
    for pattern in _NODE_PATTERNS:
        found = re.search(pattern, message)
        if found:
            return found.group(1)
    return None


def _check_onnx(model: onnx.ModelProto) -> None:
    """``onnx.checker`` with ``full_check`` (from a temporary file for models over 2 GB)."""
    if model.ByteSize() < MAX_PROTO_BYTES:
        onnx.checker.check_model(model, full_check=True)
        return
    with tempfile.TemporaryDirectory(prefix="wb_check_") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save_model(model, str(path), save_as_external_data=True, location="model.data")
        onnx.checker.check_model(str(path), full_check=True)


def _refusal(what: str, err: BaseException, source_nodes: Iterable[str], by: str) -> InvalidVariantError:
    """The :class:`InvalidVariantError` for a check that failed, naming the node and a fix."""
    text = str(err)
    reason = first_line(err)
    node = node_in(text)
    where = f"node '{node}'" if node else "a node the check does not name"
    if node and node in set(source_nodes):
        fix = (f"keep that node out of the reduced precision (--exclude {node}; exclude_nodes= in a "
               "Recipe), or report it with the model")
    else:
        fix = "this is a graph the workbench made wrongly for this model: please report it with the model"
    return InvalidVariantError(
        f"{what} would not be a valid model ({by} refuses it at {where}: {reason[:300]}), so it was not "
        f"written. Fix: {fix}.", node=node, reason=reason)


def validate_model(
    model: onnx.ModelProto,
    *,
    what: str,
    options: Mapping | None = None,
    source_nodes: Iterable[str] = (),
    must_run: bool = False,
) -> Validation:
    """Check a variant (or its emulation) before it is written.

    Args:
        model: The model to check.
        what: How to name it in messages (``"the int8 variant of cnn.onnx"``).
        options: ORT session options it runs with (``{"graph_optimization_level": "basic"}``).
        source_nodes: The source model's node names (a refusal at one of them suggests
            ``--exclude``).
        must_run: A missing ORT CPU kernel is a refusal too (emulation files exist to run there).

    Returns:
        The :class:`Validation`.

    Raises:
        InvalidVariantError: The checker or ONNX Runtime refuses the graph.
    """
    source_nodes = list(source_nodes)
    try:
        _check_onnx(model)
    except Exception as err:  # ValidationError, InferenceError and the checker's C++ errors alike
        raise _refusal(what, err, source_nodes, "onnx.checker (full_check)") from err
    try:
        ort_session(model, dict(options or {}))
    except OrtNotImplemented as err:
        if must_run:
            raise _refusal(what, err, source_nodes, "ONNX Runtime's CPU provider") from err
        return Validation(False, first_line(err))
    except Exception as err:  # INVALID_GRAPH, FAIL, INVALID_ARGUMENT...: not a model ORT can take
        raise _refusal(what, err, source_nodes, "ONNX Runtime") from err
    return Validation(True)


def check_source(model: onnx.ModelProto, name: str) -> None:
    """Refuse a source model that itself fails the full check (its variants would fail it too).

    Called when a variant failed the gate, to tell the model's own problem from the workbench's.

    Raises:
        VariantError: The source model fails ``onnx.checker``'s full check; the message names the
            node and says to fix the export.
    """
    try:
        _check_onnx(model)
    except Exception as err:
        node = node_in(str(err))
        raise VariantError(
            f"{name} itself fails onnx.checker's full check (strict type and shape inference) at "
            f"{f'node {node!r}' if node else 'a node the check does not name'}: {first_line(err)[:300]}; every "
            "variant of it would too, so none is written. Fix the export (onnx.checker.check_model(path, "
            "full_check=True) shows the details).") from err
