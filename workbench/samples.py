"""The sample models that ship in the repository's ``sample_models/`` folder."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "sample_models"
DEFAULT_SAMPLE = "digits_cnn"


def sample_names() -> list[str]:
    """Names of the sample models present on disk (``digits_cnn``, ...)."""
    return sorted(p.stem for p in SAMPLE_DIR.glob("*.onnx"))


def sample_path(name: str = DEFAULT_SAMPLE) -> Path:
    """Path of a sample model's ``.onnx`` file.

    Args:
        name: A name from :func:`sample_names`.

    Returns:
        The path.

    Raises:
        ValueError: No sample model has that name.
    """
    path = SAMPLE_DIR / f"{name}.onnx"
    if not path.is_file():
        raise ValueError(
            f"no sample model named {name!r}; expected one of {sample_names()} in {SAMPLE_DIR}. "
            "Rebuild them with `python sample_models/build.py`."
        )
    return path


def sample_data_path(name: str = DEFAULT_SAMPLE, split: str = "eval") -> Path:
    """Path of a sample model's data split (``"calib"`` or ``"eval"``), an ``.npz`` file."""
    if split not in ("calib", "eval"):
        raise ValueError(f"split must be 'calib' or 'eval', got {split!r}")
    path = SAMPLE_DIR / f"{name}.{split}.npz"
    if not path.is_file():
        raise ValueError(f"sample model {name!r} has no {split} split at {path}")
    return path


def trt_example_dir() -> Path | None:
    """Real TensorRT exports (trtexec layer info and profiles) to try the import on, if present.

    The project's test fixtures live beside the repository in ``../shared/fixtures/trt`` on
    development and CI machines; a user's own exports work the same way. None when absent.
    """
    folder = REPO_ROOT.parent / "shared" / "fixtures" / "trt"
    return folder if folder.is_dir() else None
