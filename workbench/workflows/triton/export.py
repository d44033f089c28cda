"""Export a chosen variant (an ONNX file) or a TensorRT engine as a Triton model repository entry.

Layout written (Triton's model repository)::

    DIR/NAME/config.pbtxt          the ModelConfig (text format), built with Triton's protobuf
    DIR/NAME/N/model.onnx          an ONNX variant, with its external data files beside it
    DIR/NAME/N/model.plan          or a TensorRT engine
    DIR/NAME/warmup/<input>        raw warm-up samples (optional, from real data)
    DIR/NAME/workbench.json        where it came from: source file and hash, model, variant,
                                   precision, TensorRT version and GPU of an engine

A TensorRT plan runs only with the TensorRT release and on the GPU model it was built for: the
export records both, keys ``cc_model_filenames`` by the compute capability, and warns that the
serving container's TensorRT must be the same (the most common Triton deployment failure).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx

from workbench.backends.tensorrt.cache import METADATA_FORMAT, metadata_path_for
from workbench.backends.tensorrt.recipe import DEFAULT_MAX_BATCH
from workbench.datasets.arrays import load_labelled
from workbench.model import load_model
from workbench.model.fingerprint import file_sha256, model_files, model_sha256
from workbench.precision.variants import load_variant, sidecar_for
from workbench.tables.results import ResultsTable
from workbench.workflows.triton.config import (
    CONFIG_FILE,
    ONNX_PLATFORM,
    TENSORRT_PLATFORM,
    TRITON_TO_NUMPY,
    ConfigRequest,
    TensorSpec,
    TritonExportError,
    build_config,
    check_model_name,
    config_dict,
    config_text,
    engine_io,
    onnx_io,
    parse_config,
    read_back,
    resolve_max_batch_size,
)
from workbench.workflows.triton.config import (
    preferred_batch_sizes as preferred_from_sweep,
)
from workbench.workspace import copy_atomic, write_atomic

log = logging.getLogger("workbench")

RECORD_FILE = "workbench.json"
WARMUP_DIR = "warmup"
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
NGC_RELEASE_ENV = "WORKBENCH_NGC_RELEASE"  # set in the workbench's Docker image: the NGC release it is built on


# long: half of it is the docstring of its 14 options; the body is the export's phases in order
def export_triton(
    source,
    repository,
    *,
    name: str | None = None,
    version: int = 1,
    max_batch_size: int | None = None,
    instances: int = 1,
    dynamic_batching: bool = False,
    preferred_batch_sizes: Sequence[int] | None = None,
    batch_sweep: Mapping[Any, Any] | None = None,
    warmup=None,
    max_queue_delay_us: int = 100,
    force: bool = False,
    results: ResultsTable | None = None,
) -> dict:
    """Write one model of a Triton model repository from a variant or a TensorRT engine.

    Args:
        source: An ``.onnx`` file, a :class:`~workbench.precision.Variant`, a results-table row
            (a dict with ``variant_path``, e.g. the tradeoff explorer's ``selected``), a TensorRT
            engine file built by the workbench (its ``metadata.json`` beside it), or a
            ``BuildResult``.
        repository: The model repository folder (created if missing).
        name: The model's name in the repository (default: from the source's file name).
        version: The version folder to write (Triton serves the highest by default).
        max_batch_size: Triton's ``max_batch_size``; None derives it: 0 when the model's first
            dimension is not a dynamic batch, else 32 (capped by an engine's profile).
        instances: Model instances (``instance_group``).
        dynamic_batching: Add Triton's dynamic batcher.
        preferred_batch_sizes: Its preferred batch sizes (default: from ``batch_sweep``).
        batch_sweep: Batch size -> ``{"throughput": ...}`` measured for this variant; default:
            the row's ``latency`` when ``source`` is a row, else the results table's rows for the
            same file. ``{}`` ignores any sweep.
        warmup: Real samples for ``model_warmup`` (an ``.npz`` path or a dict of arrays): the
            first sample, at batch 1 and at ``max_batch_size``.
        max_queue_delay_us: The batcher's queue delay.
        force: Replace an existing version folder or a different config of the same name.
        results: The results table searched for a batch sweep (default: the workspace's).

    Returns:
        ``repository``, ``name``, ``version``, ``platform``, ``config`` (the config as a dict),
        ``config_text``, ``files`` (written, relative to the repository), ``max_batch_size``,
        ``preferred_batch_sizes``, ``inputs``/``outputs``, ``io_types_from``, ``source``,
        ``tensorrt`` (engines only) and ``warnings``.

    Raises:
        TritonExportError: A model Triton cannot express, bad options, or existing files
            without ``force``.
    """
    if int(version) < 1:
        raise TritonExportError(f"--version must be 1 or more, got {version}.")
    described = describe_source(source)
    sweep = batch_sweep if batch_sweep is not None else described.get("latency")
    if sweep is None:
        sweep = sweep_from_results(described["path"], results)
    if described["kind"] == "engine":
        plan = _engine_plan(described, max_batch_size)
    else:
        plan = _onnx_plan(described, max_batch_size)
    name = check_model_name(name or default_name(described))
    mbs = plan["max_batch_size"]
    if preferred_batch_sizes is not None:
        preferred = [int(b) for b in preferred_batch_sizes]
    else:
        preferred = preferred_from_sweep(sweep, mbs) if dynamic_batching else []
    root = Path(repository).expanduser()
    if root.exists() and not root.is_dir():
        raise TritonExportError(f"{root}: the repository must be a folder, and this is a file; give a folder "
                                "(it is created if missing).")
    model_dir = root / name
    warm_files, warm_entries = _warmup_files(warmup, plan["inputs"], mbs)
    request = ConfigRequest(
        name=name, platform=plan["platform"], inputs=plan["inputs"], outputs=plan["outputs"],
        max_batch_size=mbs, instances=instances, instance_kind=plan["kind"],
        dynamic_batching=dynamic_batching, preferred_batch_sizes=preferred,
        max_queue_delay_us=max_queue_delay_us, warmup=warm_entries,
        cc_model_filenames=plan.get("cc_model_filenames"),
    )
    config = build_config(request)
    text = config_text(config)
    read_back(text, config)
    _check_free(model_dir, int(version), text, force)
    files = _write(model_dir, int(version), plan["files"], text, warm_files)
    record = _record(described, plan, name, int(version))
    _merge_record(model_dir / RECORD_FILE, int(version), record)
    files.append(model_dir / RECORD_FILE)
    root = Path(repository).expanduser()
    warnings = list(plan["warnings"])
    for warning in warnings:
        log.warning("%s", warning)
    return {
        "repository": str(root.resolve()),
        "name": name,
        "version": int(version),
        "platform": plan["platform"],
        "config": config_dict(config),
        "config_text": text,
        "files": sorted(str(p.relative_to(root)) for p in files),
        "max_batch_size": mbs,
        "dynamic_batching": bool(dynamic_batching),
        "preferred_batch_sizes": preferred,
        "inputs": [t.to_dict() for t in plan["inputs"]],
        "outputs": [t.to_dict() for t in plan["outputs"]],
        "io_types_from": plan["io_types_from"],
        "source": str(described["path"]),
        "model": described.get("model"),
        "variant": described.get("variant"),
        "precision": described.get("precision"),
        "tensorrt": plan.get("tensorrt"),
        "warnings": warnings,
    }


# --------------------------------------------------------------------------------------------
# What is being exported
# --------------------------------------------------------------------------------------------


def describe_source(source) -> dict:
    """What ``source`` is: ``{"kind": "onnx"|"engine", "path", "model", "variant", "precision",
    "latency", "metadata"}`` (keys it cannot tell are None).

    Raises:
        TritonExportError: Nothing exportable (a row without a variant file, a missing file).
    """
    info: dict[str, Any] = {"model": None, "variant": None, "precision": None, "latency": None, "metadata": None}
    if isinstance(source, Mapping):  # a results row
        if not source.get("variant_path"):
            raise TritonExportError("this results row has no variant_path (no file to export); pick a row "
                                    "measured from a variant file.")
        info.update(model=source.get("model"), variant=source.get("variant"), precision=source.get("precision"),
                    latency=source.get("latency") if isinstance(source.get("latency"), Mapping) else None)
        path = Path(str(source["variant_path"]))
    elif hasattr(source, "location") and hasattr(source, "metadata"):  # a BuildResult
        path = Path(source.location.engine)
        info["metadata"] = dict(source.metadata)
    elif hasattr(source, "recipe") and hasattr(source, "path"):  # a precision Variant
        path = Path(source.path)
        info.update(precision=getattr(source, "precision", None), variant=getattr(source.recipe, "label", None))
    else:
        path = Path(source)
    path = path.expanduser()
    if path.is_dir() and (path / "engine.plan").is_file():
        path = path / "engine.plan"
    if not path.is_file():
        raise TritonExportError(f"{path}: no such file. Give an .onnx variant or a TensorRT engine built by "
                                "`workbench build` (engine.plan with its metadata.json).")
    info["path"] = path.resolve()
    info["kind"] = "engine" if path.suffix.lower() in ENGINE_SUFFIXES or info["metadata"] else "onnx"
    if info["kind"] == "engine" and info["metadata"] is None:
        info["metadata"] = read_engine_metadata(path)
    if info["kind"] == "engine":
        model = info["metadata"].get("model") or {}
        info["model"] = info["model"] or model.get("name")
    elif sidecar_for(path).is_file():  # a variant the workbench made: name it after its model and recipe
        record = load_variant(path).record
        source_model = (record.get("source_model") or {}).get("path")
        info["model"] = info["model"] or (Path(source_model).stem if source_model else path.stem)
        info["variant"] = info["variant"] or record.get("name")
        info["precision"] = info["precision"] or str(record.get("precision") or "").upper() or None
    else:
        info["model"] = info["model"] or path.stem
    return info


def read_engine_metadata(engine) -> dict:
    """The metadata the TensorRT backend saved beside an engine (``metadata.json`` / ``<engine>.json``).

    Raises:
        TritonExportError: No metadata, or not the workbench's format.
    """
    path = metadata_path_for(engine)
    if not path.is_file():
        raise TritonExportError(
            f"{engine}: no engine metadata beside it ({path.name}): the export needs the TensorRT version, GPU, "
            "optimization profile and I/O types the workbench records when it builds. Fix: build the engine "
            "with `workbench build MODEL` and export the engine.plan it prints."
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise TritonExportError(f"{path}: not readable JSON ({err}). Rebuild the engine.") from err
    if not isinstance(metadata, dict) or metadata.get("format") != METADATA_FORMAT:
        raise TritonExportError(f"{path}: not workbench engine metadata (format {METADATA_FORMAT!r} expected). "
                                "Rebuild the engine with `workbench build MODEL`.")
    return metadata


def default_name(described: Mapping) -> str:
    """A model name from the source: ``<model>_<variant>`` for rows, else the file's stem."""
    if described.get("variant") and described.get("model") and described["variant"] != described["model"]:
        raw = f"{described['model']}_{described['variant']}"
    elif described["kind"] == "engine":
        raw = f"{described.get('model') or Path(described['path']).parent.name}_trt"
    else:
        raw = Path(described["path"]).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("_.-") or "model"


def sweep_from_results(path, results: ResultsTable | None = None) -> dict:
    """Batch size -> measurement from every results row measured on the file ``path``."""
    table = results if results is not None else ResultsTable()
    target = str(Path(path).resolve())
    sweep: dict[str, Any] = {}
    for row in table.load():
        variant_path = row.get("variant_path")
        if not variant_path or row.get("backend") == "triton":
            continue
        try:
            same = str(Path(variant_path).resolve()) == target
        except OSError:
            same = False
        if same and isinstance(row.get("latency"), Mapping):
            sweep.update(row["latency"])
    return sweep


# --------------------------------------------------------------------------------------------
# Plans: what goes into the repository for each kind
# --------------------------------------------------------------------------------------------


def _onnx_plan(described: Mapping, max_batch_size: int | None) -> dict:
    # Triton's view of the I/O first (an unnamed input is Triton's refusal before the checker's),
    # then the full load: checker, external data.
    try:
        stored = onnx.load(str(described["path"]), format="protobuf", load_external_data=False)
    except Exception:  # not ONNX at all: load_model says what it is, in one line
        load_model(described["path"], allow_unknown_domains=True)
        raise
    inputs, outputs = onnx_io(stored)
    load_model(described["path"], allow_unknown_domains=True)
    mbs = resolve_max_batch_size(inputs, outputs, max_batch_size, default=DEFAULT_MAX_BATCH)
    path = Path(described["path"])
    files = {"model.onnx": path}
    for extra in model_files(path)[1:]:
        files[str(extra.relative_to(path.parent))] = extra
    return {
        "platform": ONNX_PLATFORM, "kind": "KIND_AUTO", "inputs": inputs, "outputs": outputs,
        "max_batch_size": mbs, "files": files, "io_types_from": "onnx", "warnings": [],
        "sha256": model_sha256(path),
    }


def _engine_plan(described: Mapping, max_batch_size: int | None) -> dict:
    metadata = described["metadata"]
    layer_info = _layer_info(described["path"], metadata)
    inputs, outputs, source = engine_io(metadata, layer_info)
    profile = metadata.get("profile") or {}
    limit, reason, warnings = _profile_batch_limit(inputs, profile)
    mbs = resolve_max_batch_size(inputs, outputs, max_batch_size, default=DEFAULT_MAX_BATCH, limit=limit,
                                 limit_reason=reason)
    gpu = metadata.get("gpu") or {}
    capability = str(gpu.get("compute_capability") or "")
    version = str(metadata.get("tensorrt_version") or "")
    release = _ngc_release(version)
    warnings.append(
        f"this engine runs only under TensorRT {version} on compute capability {capability} "
        f"({gpu.get('name')}): the serving container's TensorRT must be the same release "
        + (f"(NGC {release}: nvcr.io/nvidia/tritonserver:{release}-py3 ships the same TensorRT)"
           if release else "(pick the Triton container release whose notes list this TensorRT version)")
        + "; a different one fails to load the plan."
    )
    if source == "onnx":
        warnings.append("the engine's metadata has no I/O tensors: its I/O types are the ONNX graph's "
                        "(a strongly typed network keeps them)")
    return {
        "platform": TENSORRT_PLATFORM, "kind": "KIND_GPU", "inputs": inputs, "outputs": outputs,
        "max_batch_size": mbs, "files": {"model.plan": Path(described["path"])}, "io_types_from": source,
        "cc_model_filenames": {capability: "model.plan"} if capability else None, "warnings": warnings,
        "sha256": file_sha256(described["path"]),
        "tensorrt": {"version": version, "gpu": gpu.get("name"), "compute_capability": capability,
                     "ngc_release": release, "profile": profile},
    }


def _layer_info(engine: Path, metadata: Mapping):
    name = (metadata.get("files") or {}).get("layers")
    path = Path(engine).parent / name if name else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def _profile_batch_limit(inputs: Sequence[TensorSpec], profile: Mapping) -> tuple[int | None, str, list[str]]:
    """The largest batch every dynamic-batch input's profile allows, and warnings about its minimum."""
    maxima, warnings = [], []
    for spec in inputs:
        shapes = profile.get(spec.name)
        if not spec.shape or spec.shape[0] != -1 or not shapes:
            continue
        maxima.append(int(shapes["max"][0]))
        if int(shapes["min"][0]) > 1:
            warnings.append(f"the engine's profile starts at batch {shapes['min'][0]} for '{spec.name}': Triton "
                            "requests with fewer samples will fail")
    if not maxima:
        return None, "", warnings
    return min(maxima), "the engine's optimization profile", warnings


def _ngc_release(tensorrt_version: str) -> str | None:
    """The NGC release (``YY.MM``) whose containers ship this engine's TensorRT, when known here.

    Known when this machine has the same TensorRT and says which NGC release it is
    (``$WORKBENCH_NGC_RELEASE``, set in the workbench's Docker image): the TensorRT and Triton
    containers of one monthly NGC release ship the same TensorRT.
    """
    release = os.environ.get(NGC_RELEASE_ENV, "").removesuffix("-py3")
    try:
        here = importlib.metadata.version("tensorrt")
    except importlib.metadata.PackageNotFoundError:
        return None
    same = ".".join(here.split(".")[:3]) == ".".join(str(tensorrt_version).split(".")[:3])
    return release if release and same else None


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _warmup_files(warmup, inputs: Sequence[TensorSpec], mbs: int) -> tuple[dict[str, bytes], list]:
    """Warm-up sample files (name -> bytes) and config entries from the first real sample."""
    if warmup is None:
        return {}, []
    arrays, _labels, source = load_labelled(warmup, [t.name for t in inputs], what="warm-up")
    files, per_input = {}, {}
    for spec in inputs:
        array = arrays[spec.name]
        sample = array[0] if mbs > 0 else array[: max(spec.shape[0], 1)] if spec.shape else array
        if mbs == 0 and spec.shape and spec.shape[0] == -1:
            sample = array[:1]
        sample = np.ascontiguousarray(sample, dtype=TRITON_TO_NUMPY.get(spec.data_type, sample.dtype))
        expected = spec.shape[1:] if mbs > 0 else spec.shape
        if len(sample.shape) != len(expected) or any(e not in (-1, d) for e, d in zip(expected, sample.shape)):
            raise TritonExportError(
                f"{source}: warm-up sample of '{spec.name}' has shape {list(sample.shape)}, the model takes "
                f"{list(expected)} per request. Give samples shaped like the model's input."
            )
        file_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.name) or "input"
        files[file_name] = sample.tobytes()
        per_input[spec.name] = (file_name, list(sample.shape))
    entries = [("sample_batch1", 1, per_input)]
    if mbs > 1:
        entries.append((f"sample_batch{mbs}", mbs, per_input))
    return files, entries


def _check_free(model_dir: Path, version: int, text: str, force: bool) -> None:
    """Refuse to overwrite a user's version folder or a different config, unless forced."""
    if force:
        return
    version_dir = model_dir / str(version)
    if version_dir.is_dir() and any(version_dir.iterdir()):
        raise TritonExportError(
            f"{version_dir} exists: export as another version (--version {version + 1}; Triton serves the "
            "highest) or replace it with --force."
        )
    config_path = model_dir / CONFIG_FILE
    if config_path.is_file():
        existing = parse_config(config_path.read_text(encoding="utf-8"))
        if existing != parse_config(text):
            raise TritonExportError(
                f"{config_path} exists with another config (inputs, batching or platform differ). Fix: export "
                "under another --name, or replace it with --force."
            )


def _write(model_dir: Path, version: int, sources: Mapping[str, Path], text: str,
           warm_files: Mapping[str, bytes]) -> list[Path]:
    version_dir = model_dir / str(version)
    if version_dir.is_dir():
        shutil.rmtree(version_dir)  # only reached with force (checked before)
    written = []
    for relative, source in sources.items():
        written.append(copy_atomic(source, version_dir / relative))
    for file_name, payload in warm_files.items():
        written.append(write_atomic(model_dir / WARMUP_DIR / file_name, payload))
    written.append(write_atomic(model_dir / CONFIG_FILE, text))
    return written


def _record(described: Mapping, plan: Mapping, name: str, version: int) -> dict:
    return {
        "name": name,
        "version": version,
        "platform": plan["platform"],
        "source": str(described["path"]),
        "sha256": plan["sha256"],
        "model": described.get("model"),
        "variant": described.get("variant"),
        "precision": described.get("precision"),
        "io_types_from": plan["io_types_from"],
        "tensorrt": plan.get("tensorrt"),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _merge_record(path: Path, version: int, record: Mapping) -> None:
    data = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
    versions = dict(data.get("versions") or {})
    versions[str(version)] = dict(record)
    write_atomic(path, json.dumps({"versions": versions}, indent=2))


def read_record(model_dir, version: int | None = None) -> dict:
    """The export record of a repository model (``workbench.json``): the given version's, else the
    highest version's; {} when the model was not exported by the workbench."""
    path = Path(model_dir) / RECORD_FILE
    try:
        versions = json.loads(path.read_text(encoding="utf-8")).get("versions") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    if not versions:
        return {}
    key = str(version) if version is not None and str(version) in versions else max(versions, key=int)
    return dict(versions[key])
