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
    num_bins: int | None = None,
    percentile: float | None = None,
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
        num_bins: Histogram bins of ``entropy``/``percentile``/``distribution`` (None: ORT's
            default, 128 for entropy, which makes it equal to minmax; 2048 otherwise).
        percentile: The percentile ``percentile`` keeps (None: 99.999).
        workspace: Variant folder (default: the workspace's ``variants``).
        overwrite: Replace existing output files (the variant, its record, its emulation).
        progress: Show progress bars (off for scripts).

    Returns:
        ``{"output", "record", "variant", "emulation", "precision", "recipe", "tool",
        "tool_version", "calibration_samples", "calibration_sha256", "calibration_seconds",
        "seconds", "cached", "runs_on_ort_cpu", "ort_session_options", "kept_fp32", "warnings",
        "same_ranges_as", "opset_upgrade", "ort_cpu_problem"}``.

    Raises:
        OutputExistsError: A file it would write (the output, its record, its emulation) exists
            and ``overwrite`` is False; nothing is written then.
        WorkbenchError: Bad model, recipe or data (the message names the problem and the fix),
            ``output`` naming the input model, or calibration settings the method does not use.
    """
    started = time.perf_counter()
    out_path = _output_path(output, overwrite, model)
    _check_settings(method, num_bins, percentile)
    recipe = Recipe(precision, method=method, exclude_nodes=tuple(exclude or ()),
                    exclude_op_types=tuple(exclude_op_types or ()),
                    op_types_to_quantize=tuple(op_types) if op_types else None, per_channel=per_channel,
                    num_samples=num_samples, sample_selection="random" if random_samples else "first", seed=seed,
                    batch_size=batch_size, tool=tool, num_bins=num_bins, percentile=percentile)
    variant = make_variant(model, recipe, calib, workspace=workspace, progress=progress)
    emulation_out = _copy_out(variant, out_path, overwrite) if out_path is not None else None
    return _summary(variant, out_path, emulation_out, started)


def emulation_path_for(out_path) -> Path:
    """Where ``-o OUT.onnx`` puts the variant's ORT-CPU emulation: ``OUT.ort-emulation.onnx``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.stem + ".ort-emulation.onnx")


def _check_settings(method: str, num_bins, percentile) -> None:
    """Refuse calibration settings the method would ignore (they would change nothing, silently)."""
    name = "minmax" if str(method).lower() == "max" else str(method).lower()
    if num_bins is not None and name == "minmax":
        raise WorkbenchError("--num-bins sets the histogram of entropy, percentile and distribution; minmax "
                             "has none. Pick one of those methods, or drop --num-bins.")
    if percentile is not None and name != "percentile":
        raise WorkbenchError(f"--percentile applies to --method percentile, not {name}.")


def _refuse_taken(paths, overwrite: bool) -> None:
    taken = [p for p in paths if p.exists() or p.is_symlink()]
    if taken and not overwrite:
        raise OutputExistsError(
            f"{taken[0]} exists; the workbench does not overwrite files. Pick another -o path or pass "
            "--force (overwrite=True)."
        )


def _output_path(output, overwrite: bool, model=None) -> Path | None:
    """The ``-o`` path, checked: an ``.onnx`` name, not the input model, whose file and record are
    free (or ``overwrite``).

    Args:
        output: The output path, or None.
        overwrite: Replacing an existing output is allowed.
        model: The input model (a path), which is never written, ``overwrite`` or not.

    Returns:
        The path, or None when there is no output.

    Raises:
        WorkbenchError: Not an ``.onnx`` name, or the input model's own path.
        OutputExistsError: The file or its record exists and ``overwrite`` is False.
    """
    out_path = Path(output).expanduser() if output else None
    if out_path is None:
        return None
    if out_path.suffix.lower() != ".onnx":
        raise WorkbenchError(f"{out_path}: the output must be an .onnx file name.")
    source = getattr(model, "path", model)  # a path, or a LoadedModel's
    source = Path(source).expanduser() if isinstance(source, (str, Path)) else None
    if source is not None and out_path.resolve() in (source.resolve(), sidecar_for(source).resolve()):
        raise WorkbenchError(f"{out_path} is the input model (or its record); the workbench never writes over "
                             "its input. Pick another -o path.")
    _refuse_taken([out_path, sidecar_for(out_path)], overwrite)
    return out_path


def _copy_out(variant, out_path: Path, overwrite: bool) -> Path | None:
    """Copy the variant (and its emulation) to ``out_path``, with its record beside it.

    Args:
        variant: The variant in the workspace.
        out_path: The checked output path (its file and record are free, or ``overwrite``).
        overwrite: Replacing an existing emulation file is allowed.

    Returns:
        Where the emulation was copied (``<stem>.ort-emulation.onnx``), or None without one.

    Raises:
        OutputExistsError: The emulation's path is taken and ``overwrite`` is False (checked
            before anything is copied: whether there is an emulation is known only now).
    """
    if variant.emulation_path is not None:
        _refuse_taken([emulation_path_for(out_path)], overwrite)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    copy_atomic(variant.path, out_path)
    record = dict(variant.record)
    emulation_out = None
    if variant.emulation_path is not None:
        emulation_out = emulation_path_for(out_path)
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
        "warnings": list(variant.record.get("warnings") or []),
        "same_ranges_as": calibration.get("same_ranges_as"),
        "same_ranges_why": calibration.get("why"),
        "differs_with": calibration.get("differs_with"),
        "opset_upgrade": variant.record.get("opset_upgrade"),
        "ort_cpu_problem": variant.record.get("ort_cpu_problem"),
    }
