"""Variants: a model at another precision, with the precision in the graph, cached in the workspace.

:func:`make_variant` turns an FP32 ONNX model and a :class:`~workbench.precision.recipe.Recipe`
(plus calibration data for INT8/FP8) into a TensorRT-ready ONNX file:

============  ===================================================================================
``fp32``      an unchanged copy (the reference)
``fp16``      onnxconverter-common FP16, I/O kept FP32, overflow safeguards (see ``lowp``)
``bf16``      BF16 (opset 22 where needed), I/O FP32; ONNX Runtime's CPU provider has no BF16
              kernels, so an **ORT-CPU emulation** (FP32 with BF16 rounding of every stored value)
              is written beside it for accuracy
``int8``      explicit Q/DQ from ONNX Runtime's ``QDQQuantizer`` fed by the fast calibrator
              (symmetric, zero points 0, per-channel weights), or NVIDIA ModelOpt when chosen
``fp8``       the same placement in float8e4m3fn with max scaling (``amax / 448``); runs on ORT
              CPU with graph optimizations at ``basic`` (see ``Variant.ort_session_options``)
============  ===================================================================================

Every variant gets a JSON sidecar (its record): recipe, tool and version, source model sha256,
calibration data sha256 and size, creation time, file size and sha256, what stayed in higher
precision and why. Variants live in ``workspace_dir("variants")``, named after a key that hashes
the model bytes, the recipe, the calibration data and the tool version: making the same variant
again returns the stored one (``cached=True``); files are written atomically and only there.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import TensorProto

from workbench.backends.onnxruntime.session import MAX_PROTO_BYTES
from workbench.datasets.arrays import synthetic_inputs
from workbench.datasets.calibration_sets import load_calibration_set
from workbench.errors import WorkbenchError
from workbench.model import LoadedModel, load_model
from workbench.model.fingerprint import file_sha256, model_sha256
from workbench.precision.calibrator import calibrate, prepare_for_calibration
from workbench.precision.lowp import (
    activation_overflow_nodes,
    converter_version,
    emulate_low_precision,
    initializer_overflow_nodes,
    name_unnamed_nodes,
    ort_cpu_upcast_ops,
    to_bfloat16,
    to_float16,
)
from workbench.precision.modelopt_adapter import (
    _METHODS,
    modelopt_available,
    modelopt_version,
    run_modelopt,
)
from workbench.precision.qdq import (
    QuantizationError,
    check_node_names,
    check_op_types,
    convert_qdq_to_fp8,
    qdq_summary,
    quantize_int8_qdq,
    weight_scales,
)
from workbench.precision.recipe import QUANTIZED, Recipe, RecipeError
from workbench.precision.source import refuse_unsuitable, subgraph_nodes, with_opset_for
from workbench.precision.validate import (
    InvalidVariantError,
    Validation,
    VariantError,
    check_source,
    first_line,
    validate_model,
)
from workbench.workspace import workspace_dir, write_atomic

VARIANT_FORMAT = "trt-workbench.variant/1"

__all__ = ["VARIANT_FORMAT", "Variant", "VariantError", "InvalidVariantError", "make_variant", "load_variant",
           "list_variants", "variants_frame", "as_recipe", "resolve_tool", "tool_info", "variant_key", "sidecar_for",
           "cache_key_of"]


@dataclass
class Variant:
    """A variant on disk and its record.

    Attributes:
        path: The TensorRT-ready ONNX file.
        record: The sidecar's contents (see the module docstring).
        cached: True when an existing variant was reused.
        emulation_path: An ORT-CPU-runnable stand-in when the variant itself cannot run on
            ONNX Runtime's CPU provider (BF16), else None.
    """

    path: Path
    record: dict
    cached: bool
    emulation_path: Path | None = None

    @property
    def sidecar_path(self) -> Path:
        return sidecar_for(self.path)

    @property
    def recipe(self) -> Recipe:
        return Recipe.from_dict(self.record["recipe"])

    @property
    def precision(self) -> str:
        return self.record["precision"]

    @property
    def runs_on_ort_cpu(self) -> bool:
        """Whether ONNX Runtime's CPU provider runs the variant itself."""
        return bool(self.record.get("runs_on_ort_cpu"))

    @property
    def accuracy_on(self) -> str:
        """``"variant"`` or ``"emulation"``: which file stands for the variant on ORT CPU."""
        if self.record.get("accuracy_on"):
            return self.record["accuracy_on"]
        return "variant" if self.runs_on_ort_cpu else "emulation"

    @property
    def ort_path(self) -> Path:
        """What to run on ORT CPU to measure accuracy: the variant, or its emulation.

        The emulation stands in when ORT's CPU provider cannot run the variant (BF16) or would
        run it in another precision (FP16 on x86: no float16 Conv/MatMul/... kernels, so ORT
        computes those in float32 and FP16 rounding and overflow would not show).
        """
        if self.accuracy_on == "variant" and self.runs_on_ort_cpu:
            return self.path
        if self.emulation_path is None:
            raise VariantError(
                f"{self.path.name}: ONNX Runtime's CPU provider cannot run this {self.precision} variant "
                "and there is no emulation for it; measure it with TensorRT."
            )
        return self.emulation_path

    @property
    def ort_session_options(self) -> dict:
        """Session options to run :attr:`ort_path` correctly (``{"graph_optimization_level": ...}``)."""
        return dict(self.record.get("ort_session_options") or {})

    def to_dict(self) -> dict:
        """JSON-able summary: paths, cached, and the record."""
        return {
            "path": str(self.path),
            "sidecar": str(self.sidecar_path),
            "emulation_path": str(self.emulation_path) if self.emulation_path else None,
            "cached": self.cached,
            "runs_on_ort_cpu": self.runs_on_ort_cpu,
            **{k: self.record.get(k) for k in ("precision", "name", "tool", "seconds", "warnings")},
        }

    def _repr_html_(self) -> str:
        tool = self.record.get("tool") or {}
        rows = [
            ("precision", self.precision),
            ("file", f"{self.path.name} ({self.record['file']['bytes']:,} bytes)"),
            ("tool", f"{tool.get('name')} {tool.get('version') or ''}"),
            ("cached", str(self.cached)),
            ("runs on ORT CPU", "yes" if self.runs_on_ort_cpu else
             f"no; accuracy via {self.emulation_path.name if self.emulation_path else 'TensorRT only'}"),
        ]
        calib = self.record.get("calibration")
        if calib:
            rows.append(("calibration", f"{calib.get('method', 'minmax')} on {calib['num_samples']} samples "
                                        f"in {calib.get('seconds', 0):.2f} s"))
        kept = self.record.get("kept_fp32") or {}
        if kept:
            rows.append(("kept FP32", ", ".join(sorted(kept))))
        upgrade = self.record.get("opset_upgrade")
        if upgrade:
            rows.append(("opset", f"upgraded {upgrade['from']} -> {upgrade['to']}: {upgrade['why']}"))
        rows += [("<b>warning</b>", warning) for warning in self.record.get("warnings") or []]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<b>Variant {self.record.get('name')}</b><table>{body}</table>"


def sidecar_for(path) -> Path:
    """The JSON record beside a variant file (``model.int8.onnx`` -> ``model.int8.json``)."""
    path = Path(path)
    return path.with_suffix(".json")


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _load(model):
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, onnx.ModelProto):
        raise VariantError("make_variant takes a model file (or a LoadedModel); save the ModelProto first "
                           "(onnx.save(model, 'model.onnx')) so the variant can record where it came from.")
    return load_model(model)


def as_recipe(recipe) -> Recipe:
    """``recipe`` as a :class:`Recipe`: a Recipe as is, a precision name or a recipe dict converted.

    Raises:
        RecipeError: Anything else (or an invalid name or dict).
    """
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        return Recipe(recipe)
    if isinstance(recipe, Mapping):
        return Recipe.from_dict(recipe)
    raise RecipeError(f"recipe must be a Recipe, a precision name or a dict, got {type(recipe).__name__}.")


def resolve_tool(recipe: Recipe) -> str:
    """The tool that makes the variant: ``none``, ``onnxconverter-common``, ``onnxruntime`` or ``modelopt``.

    Raises:
        VariantError: ModelOpt asked for but not installed; FP16 mixed precision without ModelOpt.
    """

    if recipe.precision == "fp32":
        return "none"
    if recipe.precision in ("fp16", "bf16"):
        return "onnxconverter-common"
    if recipe.tool == "modelopt":
        if not modelopt_available():
            raise VariantError(
                "the recipe asks for tool='modelopt' but nvidia-modelopt is not installed. Install it "
                "(pip install 'trt-workbench[modelopt]') or use tool='onnxruntime'."
            )
        return "modelopt"
    wants_modelopt = recipe.tool == "auto" and modelopt_available() and recipe.method in _METHODS
    if wants_modelopt:
        return "modelopt"
    if recipe.high_precision != "fp32":
        raise VariantError(
            f"high_precision='{recipe.high_precision}' (unquantized parts in {recipe.high_precision}) needs "
            "NVIDIA ModelOpt (tool='modelopt'); the ONNX Runtime path keeps them FP32."
        )
    return "onnxruntime"


def tool_info(tool: str) -> dict:
    """``{"name", "version"}`` of the tool that makes a variant."""
    import onnxruntime

    if tool == "onnxruntime":
        return {"name": "onnxruntime.quantization", "version": onnxruntime.__version__}
    if tool == "onnxconverter-common":
        return {"name": "onnxconverter-common", "version": converter_version()}
    if tool == "modelopt":
        return {"name": "modelopt", "version": modelopt_version()}
    return {"name": "none", "version": None}


def _calibration_set(calib, loaded, recipe: Recipe):
    if calib is None:
        return None
    return load_calibration_set(
        calib, loaded, num_samples=recipe.num_samples, random=recipe.sample_selection == "random", seed=recipe.seed
    )


def variant_key(model_sha: str, recipe: Recipe, calib_sha: str | None, tool: dict) -> str:
    """The cache key: sha256 of (model, recipe, calibration data, tool and version, format), 16 hex."""
    payload = {
        "format": VARIANT_FORMAT,
        "model_sha256": model_sha,
        "recipe": recipe.hash_dict(),
        "calibration_sha256": calib_sha,
        "tool": tool,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


# --------------------------------------------------------------------------------------------
# make_variant
# --------------------------------------------------------------------------------------------


def make_variant(model, recipe, calib=None, *, workspace=None, progress: bool = True) -> Variant:
    """Make (or reuse) a variant of ``model`` whose precision lives in the graph.

    Args:
        model: An ONNX file path or a :class:`workbench.model.LoadedModel` (FP32).
        recipe: A :class:`Recipe`, a precision name (``"fp16"``) or a recipe dict.
        calib: Calibration data (an ``.npz`` path, a folder with ``Preprocess``d images via a
            :class:`~workbench.datasets.calibration_sets.CalibrationSet`, a dict of arrays or an
            iterable of dicts). Required for int8/fp8; optional for fp16 (activation overflow
            safeguard); ignored for fp32/bf16. The recipe's ``num_samples``/``sample_selection``
            pick the samples.
        workspace: Folder for variants (default ``workspace_dir("variants")``).
        progress: Show calibration progress bars.

    Returns:
        The variant (``cached=True`` when it was already there).

    Raises:
        VariantError, RecipeError, InputDataError, ModelLoadError: bad model, recipe or data; the
            message names the problem and the fix.
        InvalidVariantError: The variant would fail ``onnx.checker`` (full check) or ONNX
            Runtime would refuse its graph; nothing is written (see :mod:`workbench.precision.validate`).
    """
    started = time.perf_counter()
    target = _target(model, recipe, calib, workspace)
    cached = _cached(target.path, target.key)
    if cached is not None:
        return cached
    built = _build(target, calib, progress)
    validation = _validate(target, built)
    emulation_path = _save_files(target, built)
    record = _record(target, built, emulation_path, validation=validation, started=started)
    write_atomic(sidecar_for(target.path), json.dumps(record, indent=2, default=_json_default) + "\n")
    return Variant(target.path, record, False, emulation_path)


def cache_key_of(model, recipe, calib=None) -> str:
    """The cache key of the variant :func:`make_variant` would make (or find), without making it.

    What a sweep on a cluster looks its results-table rows up by before it sends a job: the key
    names the same variant wherever it is made.

    Args:
        model, recipe, calib: As :func:`make_variant` takes them.

    Returns:
        The key (:func:`variant_key`).

    Raises:
        VariantError, RecipeError, InputDataError, ModelLoadError: As :func:`make_variant`.
    """
    return _target(model, recipe, calib, None).key


@dataclass(frozen=True)
class _Target:
    """The variant :func:`make_variant` is about to make (or find in the cache), and where.

    Attributes:
        recipe: The recipe.
        loaded: The source model.
        tool: What makes it (:func:`resolve_tool`); ``info`` its name and version.
        calib_set: The calibration samples the variant uses, or None.
        model_sha: The source model's sha256.
        key: The cache key (:func:`variant_key`).
        folder: The variants folder; ``stem`` the file name without ``.onnx``.
    """

    recipe: Recipe
    loaded: LoadedModel
    tool: str
    info: dict
    calib_set: Any
    model_sha: str
    key: str
    folder: Path
    stem: str

    @property
    def path(self) -> Path:
        """The variant's ONNX file."""
        return self.folder / f"{self.stem}.onnx"


def _target(model, recipe, calib, workspace) -> _Target:
    """Check the arguments, load the model and the samples, and name the variant by its cache key.

    Args:
        model, recipe, calib, workspace: As :func:`make_variant` takes them.

    Returns:
        The :class:`_Target` (its folder created).

    Raises:
        VariantError, RecipeError, InputDataError, ModelLoadError: As :func:`make_variant`.
    """
    recipe = as_recipe(recipe)
    loaded = _load(model)
    tool = resolve_tool(recipe)
    if recipe.needs_calibration and calib is None:
        raise VariantError(
            f"{recipe.precision} needs calibration data: pass calib= an .npz with one array per model "
            f"input ({loaded.input_names}), a dict of arrays, or a CalibrationSet."
        )
    _check_names(loaded, recipe)
    refuse_unsuitable(loaded, recipe, tool)
    uses_calib = recipe.precision in QUANTIZED or (recipe.precision == "fp16" and calib is not None)
    calib_set = _calibration_set(calib, loaded, recipe) if uses_calib else None
    model_sha = model_sha256(loaded.path)
    calib_sha = calib_set.content_hash() if calib_set is not None else None
    info = tool_info(tool)
    key = variant_key(model_sha, recipe, calib_sha, info)
    folder = Path(workspace).expanduser() if workspace is not None else workspace_dir("variants")
    folder.mkdir(parents=True, exist_ok=True)
    kind = f"{recipe.precision}-{recipe.method}" if recipe.precision in QUANTIZED else recipe.precision
    stem = f"{_safe(loaded.path.stem)}.{kind}.{key}"  # the name is a label, not part of the key
    return _Target(recipe, loaded, tool, info, calib_set, model_sha, key, folder, stem)


def _build(target: _Target, calib, progress: bool) -> dict:
    """Run the precision's builder.

    Args:
        target: The variant to make.
        calib: The calibration data as given (to note it when the precision needs none).
        progress: Show calibration progress bars.

    Returns:
        The builder's dict (see the Builders section below).

    Raises:
        VariantError: ONNX Runtime or ONNX refuses a graph the builder makes on the way (the
            calibration graph, shape inference): the model's own problem when it fails the full
            check, else named with their reason.
    """
    builders = {"fp32": _build_fp32, "fp16": _build_fp16, "bf16": _build_bf16, "int8": _build_quantized,
                "fp8": _build_quantized}
    recipe, loaded = target.recipe, target.loaded
    try:
        built = builders[recipe.precision](loaded, recipe, target.calib_set, tool=target.tool,
                                           progress=progress, folder=target.folder)
    except Exception as err:
        if isinstance(err, WorkbenchError) or not type(err).__module__.startswith(("onnxruntime", "onnx.")):
            raise
        check_source(loaded.proto, loaded.path.name)  # the model's own problem, if it is one
        raise VariantError(
            f"making the {recipe.label} variant of {loaded.path.name}: ONNX Runtime or ONNX refuses a graph made on "
            f"the way ({type(err).__name__}: {first_line(err)[:300]}). Please report it with the model.") from err
    if calib is not None and target.calib_set is None:
        built.setdefault("notes", []).append(f"calibration data given but not used: {recipe.precision} needs none")
    return built


def _save_files(target: _Target, built: dict) -> Path | None:
    """Write the variant (and its ORT-CPU emulation, if any) atomically into the variants folder.

    Args:
        target: The variant.
        built: The builder's dict.

    Returns:
        The emulation's path, or None.
    """
    _save_model(built["model"], target.path, raw=built.get("raw"))
    if built.get("emulation") is None:
        return None
    emulation_path = target.folder / f"{target.stem}.ort-emulation.onnx"
    _save_model(built["emulation"], emulation_path)
    return emulation_path


def _record(target: _Target, built: dict, emulation_path: Path | None, *, validation: Validation,
            started: float) -> dict:
    """The variant's sidecar record (see the module docstring).

    Args:
        target: The variant (its file written).
        built: The builder's dict.
        emulation_path: The emulation file, or None.
        validation: What the gate found (:func:`_validate`).
        started: ``time.perf_counter()`` when :func:`make_variant` began.

    Returns:
        The JSON-able record.
    """
    recipe, loaded, path = target.recipe, target.loaded, target.path
    runs = validation.runs_on_ort_cpu
    return {
        "format": VARIANT_FORMAT,
        "key": target.key,
        "name": recipe.label,
        "precision": recipe.precision,
        "recipe": recipe.to_dict(),
        "recipe_hash": recipe.hash(),
        "tool": target.info,
        "versions": _versions(),
        "source_model": {"path": str(loaded.path), "sha256": target.model_sha, "bytes": loaded.path.stat().st_size},
        "calibration": _calibration_record(target.calib_set, built.get("calibration")),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "file": {"path": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)},
        "emulation": ({"path": emulation_path.name, "bytes": emulation_path.stat().st_size,
                       "what": built.get("emulation_note", "")} if emulation_path else None),
        "runs_on_ort_cpu": runs,
        "accuracy_on": "emulation" if emulation_path is not None else "variant",
        "ort_execution": built.get("ort_execution") or ("runs in its own precision" if runs else "cannot run"),
        "ort_session_options": built.get("ort_session_options") or {},
        "ort_cpu_problem": validation.ort_cpu_problem,
        "validation": validation.to_dict(),
        "source_normalization": list(getattr(loaded.summary, "normalization", None) or []),
        "opset_upgrade": built.get("opset_upgrade"),
        "kept_fp32": built.get("kept_fp32", {}),
        "notes": built.get("notes", []),
        "warnings": built.get("warnings", []),
        "details": built.get("details", {}),
        "seconds": round(time.perf_counter() - started, 4),
    }


def load_variant(path) -> Variant:
    """A variant from its ONNX file (its sidecar record must be beside it)."""
    path = Path(path)
    sidecar = sidecar_for(path)
    if not path.is_file() or not sidecar.is_file():
        raise VariantError(f"{path}: no variant there (need the .onnx and its .json record).")
    record = json.loads(sidecar.read_text())
    emulation = record.get("emulation")
    return Variant(path, record, True, path.parent / emulation["path"] if emulation else None)


def _cached(path: Path, key: str) -> Variant | None:
    sidecar = sidecar_for(path)
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != key or record.get("file", {}).get("bytes") != path.stat().st_size:
        return None
    if not record.get("validation"):  # made before every variant passed the gate: make it again
        return None
    emulation = record.get("emulation")
    emulation_path = path.parent / emulation["path"] if emulation else None
    if emulation_path is not None and not emulation_path.is_file():
        return None
    return Variant(path, record, True, emulation_path)


def _check_names(loaded, recipe: Recipe) -> None:
    names = set(recipe.exclude_nodes) | set(recipe.keep_fp32_nodes)
    try:
        check_node_names(loaded.proto, sorted(names), "keep out of the reduced precision")
    except QuantizationError as err:
        raise VariantError(str(err)) from err


def _versions() -> dict:
    import onnxruntime

    versions = {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}
    try:
        versions["onnxconverter-common"] = converter_version()
    except ImportError:
        pass
    return versions


def _calibration_record(calib_set, calibration: dict | None) -> dict | None:
    if calib_set is None:
        return None
    record = {
        "source": calib_set.source,
        "sha256": calib_set.content_hash(),
        "num_samples": calib_set.num_samples,
        "nbytes": calib_set.nbytes,
        "selection": calib_set.selection,
        "inputs": {k: {"shape": list(a.shape[1:]), "dtype": a.dtype.name} for k, a in calib_set.inputs.items()},
    }
    record.update(calibration or {})
    return record


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _save_model(model: onnx.ModelProto, path: Path, *, raw: bytes | None = None) -> None:
    """Write ``model`` to ``path`` atomically (external data beside it for models over 2 GB)."""
    if raw is not None:
        write_atomic(path, raw)
        return
    if model.ByteSize() < MAX_PROTO_BYTES:
        write_atomic(path, model.SerializeToString())
        return
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staged = Path(tmp) / path.name
        data_name = f"{path.name}.data"
        onnx.save_model(model, str(staged), save_as_external_data=True, location=data_name)
        os.replace(Path(tmp) / data_name, path.parent / data_name)
        os.replace(staged, path)


def _validate(target: _Target, built: dict) -> Validation:
    """The gate (:func:`workbench.precision.validate.validate_model`) for the variant and its emulation.

    Args:
        target: The variant.
        built: The builder's dict.

    Returns:
        What the gate found for the variant.

    Raises:
        InvalidVariantError: The variant or its emulation would be invalid; nothing was written.
    """
    what = f"the {target.recipe.label} variant of {target.loaded.path.name}"
    nodes = target.loaded.node_names
    options = built.get("ort_session_options") or {}
    try:
        validation = validate_model(built["model"], what=what, options=options, source_nodes=nodes)
    except InvalidVariantError:
        check_source(target.loaded.proto, target.loaded.path.name)  # the model's own problem, if it is one
        raise
    if built.get("emulation") is not None:
        validate_model(built["emulation"], what=f"the ORT-CPU emulation of {what}", options=options,
                       source_nodes=nodes, must_run=True)
    return validation


# --------------------------------------------------------------------------------------------
# Builders: each returns {"model", "raw"?, "emulation"?, "calibration"?, "kept_fp32"?, "notes"?,
# "details"?, "ort_session_options"?}
# --------------------------------------------------------------------------------------------


def _build_fp32(loaded, recipe, calib, *, tool, progress, folder):
    steps = list(getattr(loaded.summary, "normalization", None) or [])
    if steps:  # the reference is the model every other variant is made from: the normalized one
        return {"model": loaded.proto, "notes": [
            "the source model as the workbench loads it (the reference), normalized: "
            + "; ".join(step["detail"] for step in steps)]}
    uses_external = loaded.summary.uses_external_data
    raw = None if uses_external else loaded.path.read_bytes()
    return {"model": loaded.proto, "raw": raw, "notes": ["unchanged copy of the source model (the reference)"]}


SYNTHETIC_FP16_SAMPLES = 16
FP16_SYNTHETIC_WARNING = (
    "FP16 overflow safeguard: no calibration data was given, so activations were checked on {n} random "
    "inputs (standard normal), not on real data; an activation that exceeds FP16's range (65504) only on "
    "real inputs is not caught and would turn the output to inf/NaN. Pass calibration data (--calib; "
    "calib= in Python) so the check sees real data.")


def _fp16_activation_check(loaded, base, recipe, calib, progress) -> tuple[dict, dict | None, dict, list]:
    """Activations beyond FP16's range, on the calibration data or, without it, on random inputs.

    Args:
        loaded: The source model (its input specs make the random inputs).
        base: The model to convert (nodes named).
        recipe: The fp16 recipe.
        calib: The calibration samples, or None.
        progress: See :mod:`workbench.progress`.

    Returns:
        ``(kept, calibration, check, warnings)``: node -> reason for nodes to keep in FP32, the
        record's calibration entry (None without data), what the check ran on, and warnings.
    """
    data, warnings = calib, []
    if calib is None:
        try:
            data = synthetic_inputs(loaded.summary.inputs, batch=SYNTHETIC_FP16_SAMPLES)
        except WorkbenchError as err:
            why = str(err).split(";")[0]
            warning = (f"FP16 overflow safeguard: no calibration data was given and random inputs cannot stand in "
                       f"for it ({why}), so activations were NOT checked for FP16 overflow. Pass calibration "
                       "data (--calib; calib= in Python).")
            return {}, None, {"data": "none", "skipped": str(err)}, [warning]
        warnings.append(FP16_SYNTHETIC_WARNING.format(n=SYNTHETIC_FP16_SAMPLES))
    prepared = prepare_for_calibration(base)
    result = calibrate(prepared, data, "minmax", op_types=None, batch_size=recipe.batch_size,
                       progress=progress, exact=recipe.exact_calibration)
    kept = activation_overflow_nodes(prepared, result.ranges())
    summary = {"method": "minmax", "purpose": "FP16 overflow safeguard", "tensors": len(result.tensors),
               "seconds": round(result.seconds, 4), "batch_size": result.batch_size,
               "exact": recipe.exact_calibration}
    check = {"data": "calibration" if calib is not None else f"random ({SYNTHETIC_FP16_SAMPLES} samples)",
             "tensors": len(result.tensors), "nodes_kept": len(kept)}
    return kept, (summary if calib is not None else None), check, warnings


def _build_fp16(loaded, recipe, calib, *, tool, progress, folder):
    base = name_unnamed_nodes(loaded.proto)
    kept = {name: "kept FP32 by the recipe" for name in recipe.fp32_nodes}
    kept.update(initializer_overflow_nodes(base))
    activations, calibration, check, warnings = _fp16_activation_check(loaded, base, recipe, calib, progress)
    for node, reason in activations.items():
        kept.setdefault(node, reason)
    converted = to_float16(base, keep_nodes=sorted(kept), keep_op_types=recipe.fp32_op_types)
    notes = ["inputs and outputs stay FP32 (Cast nodes at the edges)"]
    if recipe.fp32_op_types:
        notes.append(f"op types kept FP32: {list(recipe.fp32_op_types)}")
    built = {"model": converted, "calibration": calibration, "kept_fp32": kept, "notes": notes,
             "warnings": warnings, "details": {"fp16_activation_check": check}}
    upcast = ort_cpu_upcast_ops(converted, TensorProto.FLOAT16)
    if upcast:
        built["emulation"] = emulate_low_precision(converted, TensorProto.FLOAT16)
        built["emulation_note"] = ("FP32 graph, every float16 value rounded to float16 (Cast round trips, overflow "
                                   "to inf included); for accuracy on ONNX Runtime CPU only, not for TensorRT")
        built["ort_execution"] = (f"ONNX Runtime's CPU provider has no float16 kernels for {upcast}: it runs them "
                                  "in float32, hiding float16 rounding and overflow, so accuracy is measured on "
                                  "the emulation")
    return built


def _build_bf16(loaded, recipe, calib, *, tool, progress, folder):
    base = name_unnamed_nodes(loaded.proto)
    kept = {name: "kept FP32 by the recipe" for name in recipe.fp32_nodes}
    converted, conversion = to_bfloat16(base, keep_nodes=sorted(kept), keep_op_types=recipe.fp32_op_types)
    for node in converted.graph.node:
        if node.op_type in conversion["fp32_for_onnx_types"]:
            kept.setdefault(node.name, f"ONNX opset {conversion['opset']} has no bfloat16 {node.op_type}")
    notes = ["inputs and outputs stay FP32 (Cast nodes at the edges)"]
    if conversion["opset"] != conversion["opset_from"]:
        notes.append(f"opset raised {conversion['opset_from']} -> {conversion['opset']}: ONNX allows bfloat16 "
                     "Conv/MaxPool/AveragePool/GlobalAveragePool from opset 22")
    notes.append("ONNX Runtime's CPU provider has no bfloat16 Conv/MatMul/Gemm/elementwise kernels: accuracy "
                 "is measured on the emulation file")
    return {
        "model": converted,
        "emulation": emulate_low_precision(converted, TensorProto.BFLOAT16),
        "emulation_note": "FP32 graph, every bfloat16 value rounded to bfloat16 (Cast round trips); "
                          "for accuracy on ONNX Runtime CPU only, not for TensorRT",
        "ort_execution": "ONNX Runtime's CPU provider has no bfloat16 kernels for the compute ops: it cannot "
                         "run this variant; accuracy is measured on the emulation",
        "kept_fp32": kept,
        "notes": notes,
        "details": {"conversion": conversion},
    }


def _build_quantized(loaded, recipe, calib, *, tool, progress, folder):
    if tool == "modelopt":
        return _build_modelopt(loaded, recipe, calib, folder)

    fp8 = recipe.precision == "fp8"
    source, upgrade = with_opset_for(loaded, recipe)
    prepared = prepare_for_calibration(source, fp8=fp8)
    op_types = check_op_types(prepared, recipe.quantized_op_types)
    result = calibrate(prepared, calib, recipe.calibration_options(), op_types=op_types,
                       batch_size=recipe.batch_size, progress=progress, exact=recipe.exact_calibration)
    quantized = quantize_int8_qdq(prepared, result.tensors_range, op_types=op_types,
                                  per_channel=recipe.per_channel, nodes_to_exclude=recipe.exclude_nodes)
    notes = ["Q/DQ by onnxruntime.quantization QDQQuantizer: QDQ format, ActivationSymmetric, WeightSymmetric "
             "(zero points 0), DedicatedQDQPair, float biases, inputs of "
             f"{op_types} quantized, their outputs not"]
    options = {}
    if fp8:
        quantized = convert_qdq_to_fp8(quantized, prepared, result.tensors_range)
        notes.append("FP8: ORT's INT8 placement converted to float8e4m3fn with scale = amax / 448 (TensorRT/ModelOpt "
                     "max scaling); ORT's own float8 path (Gaussian-fit scales) is not used")
        notes.append("ONNX Runtime 1.32 CPU drops a Relu that feeds a float8 QuantizeLinear at optimization level >= 2 "
                     "(a level-2 rewrite rule); run this variant there with graph_optimization_level='basic'")
        options = {"graph_optimization_level": "basic"}
    weights = weight_scales(quantized, prepared, op_types, recipe.exclude_nodes)
    notes += _quantized_notes(loaded, recipe, op_types, upgrade, weights)
    calibration = {
        "method": recipe.method,
        "settings": result.options.to_dict(),
        **result.options.sameness(),
        "tensors": len(result.tensors),
        "seconds": round(result.seconds, 4),
        "pass_seconds": {k: round(v, 4) for k, v in result.pass_seconds.items()},
        "batch_size": result.batch_size,
        "exact": recipe.exact_calibration,
        "engine": "workbench.precision.calibrator (in-graph reductions; ranges equal to ORT's calibrator)",
    }
    excluded = {name: "excluded from quantization by the recipe" for name in recipe.exclude_nodes}
    return {"model": quantized, "calibration": calibration, "kept_fp32": excluded, "notes": notes,
            "details": {"qdq": qdq_summary(quantized), "op_types_quantized": op_types, "weights": weights},
            "ort_session_options": options, "opset_upgrade": upgrade}


def _quantized_notes(loaded, recipe, op_types, upgrade: dict | None, weights: dict) -> list[str]:
    """What an INT8/FP8 record says beyond the quantizer's settings: the opset upgrade, weighted
    nodes left in subgraphs, and weights that are not quantized per channel although asked."""
    notes = []
    if upgrade:
        notes.append(f"opset upgraded {upgrade['from']} -> {upgrade['to']} with ONNX's version converter: "
                     f"{upgrade['why']}")
    inside = subgraph_nodes(loaded.proto, op_types)
    if inside:
        notes.append(f"{len(inside)} node(s) to quantize inside If/Loop/Scan subgraphs stay FP32 (ONNX Runtime's "
                     f"quantizer does not reach into subgraphs): {inside[:5]}")
    runtime = weights["computed_at_run_time"]
    if recipe.per_channel and runtime:
        notes.append(f"{len(runtime)} quantized node(s) take their weights from another node at run time "
                     f"(e.g. {runtime[:3]}): those are quantized per tensor, as activations, not per channel")
    return notes


def _build_modelopt(loaded, recipe, calib, folder):
    with tempfile.TemporaryDirectory(dir=folder, prefix=".modelopt.") as tmp:
        output = Path(tmp) / f"{loaded.path.stem}.quant.onnx"
        started = time.perf_counter()
        # the normalized model, written into ModelOpt's own temporary folder: never the user's file
        run = run_modelopt(loaded.proto, recipe, calib, output)
        model = onnx.load(str(output))
    notes = [f"quantized by NVIDIA ModelOpt ({run['version']}); unquantized parts in {recipe.high_precision}"]
    options = {"graph_optimization_level": "basic"} if recipe.precision == "fp8" else {}
    return {"model": model, "calibration": {"method": recipe.method, "seconds": round(time.perf_counter() - started, 4),
                                            "engine": "modelopt"},
            "notes": notes, "details": {"modelopt": run, "qdq": qdq_summary(model)},
            "kept_fp32": {n: "excluded from quantization by the recipe" for n in recipe.exclude_nodes},
            "ort_session_options": options}


def list_variants(workspace=None) -> list[dict]:
    """Records of the variants in the workspace, newest first."""
    folder = Path(workspace).expanduser() if workspace is not None else workspace_dir("variants")
    records = []
    for sidecar in folder.glob("*.json"):
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if record.get("format") == VARIANT_FORMAT:
            record["_path"] = str(sidecar.with_suffix(".onnx"))
            records.append(record)
    return sorted(records, key=lambda r: r.get("created", ""), reverse=True)


def variants_frame(workspace=None):
    """The variants in the workspace as a table, newest first.

    Args:
        workspace: Folder for variants (default ``workspace_dir("variants")``).

    Returns:
        A pandas DataFrame, one row per variant: ``file``, ``name``, ``precision``, ``created``
        and ``bytes``.
    """
    import pandas as pd

    rows = [{"file": r["file"]["path"], "name": r.get("name"), "precision": r["precision"],
             "created": r.get("created"), "bytes": r["file"].get("bytes")} for r in list_variants(workspace)]
    return pd.DataFrame(rows, columns=["file", "name", "precision", "created", "bytes"])
