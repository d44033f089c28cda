"""The engine cache: platform, cache key, workspace layout, and refusing an engine built for another platform."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from workbench.backends.tensorrt.recipe import (
    BuildRecipe,
)
from workbench.backends.tensorrt.shapes import (
    ShapeRange,
    profile_to_dict,
)
from workbench.errors import WorkbenchError
from workbench.workspace import workspace_dir

WORKSPACE_SUBDIR = "trt"

ENGINE_FILE = "engine.plan"

METADATA_FILE = "metadata.json"

LAYERS_FILE = "layers.json"

LOG_FILE = "build.log"

METADATA_FORMAT = "trt-workbench-engine/1"

CACHE_KEY_VERSION = 1

class EngineIncompatible(WorkbenchError, RuntimeError):
    """A saved engine was built for another TensorRT version or GPU; the message says how to
    rebuild it."""

@dataclass(frozen=True)
class Platform:
    """What an engine is tied to: the TensorRT release and the GPU model.

    Attributes:
        tensorrt_version: ``tensorrt.__version__`` (``"10.16.1.11"``) or trtexec's ``"8.5.2"``.
        gpu_name: The device name as CUDA reports it (``"NVIDIA A100 80GB PCIe"``).
        compute_capability: ``"major.minor"`` (``"8.0"``).
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: str

    def to_dict(self) -> dict:
        return {
            "tensorrt_version": self.tensorrt_version,
            "gpu": {"name": self.gpu_name, "compute_capability": self.compute_capability},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "Platform":
        gpu = data.get("gpu") or {}
        return cls(str(data.get("tensorrt_version")), str(gpu.get("name")), str(gpu.get("compute_capability")))

    @property
    def tensorrt_release(self) -> str:
        """major.minor.patch: engines from one release load with any build of it."""
        return ".".join(str(self.tensorrt_version).split(".")[:3])

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt_version} on {self.gpu_name} (compute capability {self.compute_capability})"

def format_compute_capability(value: Any) -> str:
    """``(8, 0)``, ``[8, 0]``, ``8.0``, ``"8.0"`` -> ``"8.0"``."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return f"{int(value[0])}.{int(value[1])}"
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        major, _, minor = text.partition(".")
        return f"{int(major)}.{int(minor or 0)}"
    raise ValueError(f"not a compute capability: {value!r}")

def platform_from_device_properties(properties: Mapping, tensorrt_version: str) -> Platform:
    """The platform from a GPU's properties as pycuda reports them.

    Args:
        properties: ``{"Name", "ComputeCapability": [8, 0], ...}`` (the shape TREx saves in
            ``engine.metadata.json``) or ``{"COMPUTE_CAPABILITY_MAJOR", "COMPUTE_CAPABILITY_MINOR"}``
            attributes with a ``"Name"``.
        tensorrt_version: The TensorRT version.

    Returns:
        The platform.
    """
    cc = properties.get("ComputeCapability")
    if cc is None:
        cc = (properties["COMPUTE_CAPABILITY_MAJOR"], properties["COMPUTE_CAPABILITY_MINOR"])
    return Platform(str(tensorrt_version), str(properties["Name"]), format_compute_capability(cc))

def platform_from_trtexec_log(parsed_log: Mapping) -> Platform:
    """The platform a trtexec run used, from :func:`~workbench.backends.tensorrt.trtexec_log.parse_trtexec_log`.

    Args:
        parsed_log: The parsed log (its ``Device Information`` section and TensorRT version).

    Returns:
        The platform.
    """
    device = parsed_log["options"]["Device Information"]
    return Platform(
        str(parsed_log["tensorrt_version"]),
        device["Selected Device"],
        format_compute_capability(device["Compute Capability"]),
    )

def cache_key(model_sha256: str, recipe: BuildRecipe, profile: Mapping[str, ShapeRange], platform: Platform) -> str:
    """The cache key of an engine: a hash of everything that makes it what it is.

    Args:
        model_sha256: :func:`sha256_files` of the model and its external data.
        recipe: The recipe (its :meth:`BuildRecipe.key_dict`).
        profile: The optimization profile.
        platform: The TensorRT release and GPU it is built with/for.

    Returns:
        A hex SHA-256.
    """
    document = {
        "version": CACHE_KEY_VERSION,
        "model_sha256": model_sha256,
        "recipe": recipe.key_dict(),
        "profile": profile_to_dict(profile),
        "tensorrt_release": platform.tensorrt_release,
        "gpu": {"name": platform.gpu_name, "compute_capability": platform.compute_capability},
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()

def incompatibility(metadata: Mapping, here: Platform, *, engine_path=None) -> str | None:
    """Why a saved engine cannot run here, as a message with the fix; None if it can.

    TensorRT plans are tied to the TensorRT release and the GPU model they were built for
    (unless built version- or hardware-compatible, which the workbench does not do).

    Args:
        metadata: The engine's metadata (:func:`engine_metadata`).
        here: This machine's platform.
        engine_path: The engine file, named in the message.

    Returns:
        The message, or None when release, GPU name and compute capability all match.
    """
    built = Platform.from_dict(metadata)
    differences = []
    if built.tensorrt_release != here.tensorrt_release:
        differences.append(f"TensorRT {built.tensorrt_version} (this machine has {here.tensorrt_version})")
    if built.compute_capability != here.compute_capability or built.gpu_name != here.gpu_name:
        differences.append(
            f"a {built.gpu_name} with compute capability {built.compute_capability} "
            f"(this machine has a {here.gpu_name}, compute capability {here.compute_capability})"
        )
    if not differences:
        return None
    label = f"engine {engine_path}" if engine_path else "this engine"
    model = (metadata.get("model") or {}).get("path") or "MODEL.onnx"
    recipe = (metadata.get("recipe") or {}).get("name") or "default"
    return (
        f"{label} was built for " + " and ".join(differences) + ". A TensorRT engine only runs with "
        "the TensorRT release and on the GPU model it was built for. Fix: rebuild it on this "
        f"machine: workbench build {shlex.quote(str(model))} --recipe {shlex.quote(str(recipe))}"
    )

def check_compatible(metadata: Mapping, here: Platform, *, engine_path=None) -> None:
    """Raise :class:`EngineIncompatible` when :func:`incompatibility` finds a reason."""
    problem = incompatibility(metadata, here, engine_path=engine_path)
    if problem:
        raise EngineIncompatible(problem)

def engines_root(root=None) -> Path:
    """Where engines are cached: ``<workspace>/trt/engines`` unless ``root`` is given."""
    return Path(root) if root is not None else workspace_dir(WORKSPACE_SUBDIR) / "engines"

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-").lower() or "x"

def engine_dir(root: Path, model_name: str, key: str) -> Path:
    """The folder of one cached engine: ``<root>/<model>-<first 16 hex of the key>``."""
    return Path(root) / f"{_slug(model_name)}-{key[:16]}"

def timing_cache_path(platform: Platform, *, tf32: bool = True, root=None) -> Path:
    """The timing cache file for a platform, kept in the workspace and reused across builds.

    One file per TensorRT release, GPU and TF32 setting, because TensorRT's timing data is only
    valid for the device, the release and builder flags like TF32 that it was measured with.

    Args:
        platform: TensorRT release and GPU.
        tf32: The build's TF32 setting.
        root: Folder for caches (default ``<workspace>/trt/timing-cache``).

    Returns:
        The path (its folder exists).
    """
    folder = Path(root) if root is not None else workspace_dir(WORKSPACE_SUBDIR) / "timing-cache"
    folder.mkdir(parents=True, exist_ok=True)
    name = (
        f"trt-{_slug(platform.tensorrt_release)}-{_slug(platform.gpu_name)}-"
        f"sm{platform.compute_capability.replace('.', '')}-{'tf32' if tf32 else 'notf32'}.cache"
    )
    return folder / name

@dataclass(frozen=True)
class EngineLocation:
    """The files of one cached engine."""

    folder: Path

    @property
    def engine(self) -> Path:
        return self.folder / ENGINE_FILE

    @property
    def metadata(self) -> Path:
        return self.folder / METADATA_FILE

    @property
    def layers(self) -> Path:
        return self.folder / LAYERS_FILE

    @property
    def log(self) -> Path:
        return self.folder / LOG_FILE

    def is_complete(self) -> bool:
        """Engine and metadata both exist (metadata is written last)."""
        return self.engine.is_file() and self.metadata.is_file()

    def read_metadata(self) -> dict:
        return json.loads(self.metadata.read_text(encoding="utf-8"))

def metadata_path_for(engine_path) -> Path:
    """The metadata file of an engine file: ``metadata.json`` beside it, else ``<engine>.json``."""
    engine_path = Path(engine_path)
    beside = engine_path.parent / METADATA_FILE
    return beside if beside.is_file() else engine_path.with_name(engine_path.name + ".json")
