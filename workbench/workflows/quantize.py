"""``workbench quantize``: make a variant from the command line and copy it where the user asks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from workbench.errors import WorkbenchError
from workbench.precision.recipe import Recipe
from workbench.precision.variants import make_variant, sidecar_for
from workbench.workspace import copy_atomic, write_atomic


class OutputExistsError(WorkbenchError, FileExistsError):
    """The output path is taken; the workbench never overwrites a user's file unless told to."""


def quantize_command(
    model,
    precision: str = "int8",
    calib=None,
    method: str = "minmax",
    exclude: Sequence[str] = (),
    output=None,
    *,
    exclude_op_types: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    per_channel: bool = True,
    num_samples: int | None = None,
    random_samples: bool = False,
    seed: int = 0,
    batch_size: int = 16,
    tool: str = "auto",
    workspace=None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Make a variant and (optionally) copy it to ``output``; returns a JSON-able summary.

    Wiring for ``workbench quantize MODEL --precision int8 --calib DATA.npz [--method M]
    [--exclude NODE ...] -o OUT.onnx``.

    Args:
        model: The FP32 ONNX file.
        precision: ``fp32``, ``fp16``, ``bf16``, ``int8`` or ``fp8``.
        calib: Calibration data (``.npz`` path); required for int8/fp8, optional for fp16.
        method: ``minmax`` (``max``), ``entropy``, ``percentile`` or ``distribution``.
        exclude: Node names kept out of the reduced precision.
        output: Where to copy the variant (its record goes beside it as ``<stem>.json``); None
            leaves it in the workspace only.
        exclude_op_types: Op types kept out of the reduced precision.
        op_types: Op types to quantize (None: TensorRT's Conv/ConvTranspose/Gemm/MatMul).
        per_channel: Per-channel weight scales.
        num_samples: Calibration samples to use (None: all).
        random_samples: Pick them at random (with ``seed``) instead of the first ones.
        seed: Random seed.
        batch_size: Samples per calibration run.
        tool: ``auto``, ``onnxruntime`` or ``modelopt``.
        workspace: Variant folder (default: the workspace's ``variants``).
        overwrite: Replace an existing ``output`` (and its record).
        progress: Show progress bars (off for scripts).

    Returns:
        ``{"output", "record", "variant", "emulation", "precision", "recipe", "tool",
        "tool_version", "calibration_samples", "calibration_sha256", "calibration_seconds",
        "seconds", "cached", "runs_on_ort_cpu", "ort_session_options", "kept_fp32"}``.

    Raises:
        OutputExistsError: ``output`` (or its record) exists and ``overwrite`` is False.
        WorkbenchError: Bad model, recipe or data (the message names the problem and the fix).
    """
    started = time.perf_counter()
    out_path = _output_path(output, overwrite)
    recipe = Recipe(
        precision,
        method=method,
        exclude_nodes=tuple(exclude or ()),
        exclude_op_types=tuple(exclude_op_types or ()),
        op_types_to_quantize=tuple(op_types) if op_types else None,
        per_channel=per_channel,
        num_samples=num_samples,
        sample_selection="random" if random_samples else "first",
        seed=seed,
        batch_size=batch_size,
        tool=tool,
    )
    variant = make_variant(model, recipe, calib, workspace=workspace, progress=progress)
    emulation_out = _copy_out(variant, out_path) if out_path is not None else None
    return _summary(variant, out_path, emulation_out, started)


def _output_path(output, overwrite: bool) -> Path | None:
    """The ``-o`` path, checked: an ``.onnx`` name whose file and record are free (or ``overwrite``).

    Args:
        output: The output path, or None.
        overwrite: Replacing an existing output is allowed.

    Returns:
        The path, or None when there is no output.

    Raises:
        WorkbenchError: Not an ``.onnx`` name.
        OutputExistsError: The file or its record exists and ``overwrite`` is False.
    """
    out_path = Path(output).expanduser() if output else None
    if out_path is None:
        return None
    if out_path.suffix.lower() != ".onnx":
        raise WorkbenchError(f"{out_path}: the output must be an .onnx file name.")
    taken = [p for p in (out_path, sidecar_for(out_path)) if p.exists()]
    if taken and not overwrite:
        raise OutputExistsError(
            f"{taken[0]} exists; the workbench does not overwrite files. Pick another -o path or pass "
            "--force (overwrite=True)."
        )
    return out_path


def _copy_out(variant, out_path: Path) -> Path | None:
    """Copy the variant (and its emulation) to ``out_path``, with its record beside it.

    Args:
        variant: The variant in the workspace.
        out_path: The checked output path.

    Returns:
        Where the emulation was copied (``<stem>.ort-emulation.onnx``), or None without one.
    """
    out_path.parent.mkdir(parents=True, exist_ok=True)
    copy_atomic(variant.path, out_path)
    record = dict(variant.record)
    emulation_out = None
    if variant.emulation_path is not None:
        emulation_out = out_path.with_name(out_path.stem + ".ort-emulation.onnx")
        copy_atomic(variant.emulation_path, emulation_out)
        record["emulation"] = {**record["emulation"], "path": emulation_out.name}
    record["file"] = {**record["file"], "path": out_path.name}
    record["copied_from"] = str(variant.path)
    write_atomic(sidecar_for(out_path), json.dumps(record, indent=2) + "\n")
    return emulation_out


def _summary(variant, out_path: Path | None, emulation_out: Path | None, started: float) -> dict:
    """The JSON-able summary :func:`quantize_command` returns (the ``--json`` contract).

    Args:
        variant: The variant.
        out_path: Where it was copied, or None.
        emulation_out: Where its emulation was copied, or None.
        started: ``time.perf_counter()`` when the command began.

    Returns:
        See :func:`quantize_command`.
    """
    calibration = variant.record.get("calibration") or {}
    tool_record = variant.record.get("tool") or {}
    return {
        "output": str(out_path) if out_path else None,
        "record": str(sidecar_for(out_path)) if out_path else str(variant.sidecar_path),
        "variant": str(variant.path),
        "emulation": str(emulation_out or variant.emulation_path) if variant.emulation_path else None,
        "precision": variant.precision,
        "recipe": variant.record["recipe"],
        "tool": tool_record.get("name"),
        "tool_version": tool_record.get("version"),
        "calibration_samples": calibration.get("num_samples"),
        "calibration_sha256": calibration.get("sha256"),
        "calibration_seconds": calibration.get("seconds"),
        "seconds": round(time.perf_counter() - started, 4),
        "cached": variant.cached,
        "runs_on_ort_cpu": variant.runs_on_ort_cpu,
        "ort_session_options": variant.ort_session_options,
        "kept_fp32": sorted(variant.record.get("kept_fp32") or {}),
    }
