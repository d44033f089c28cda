"""Model inputs from ``.npz`` files (arrays named after the model's inputs) or made up from shapes.

Validated at the boundary: a missing input, an empty array, mismatched sample counts or
NaN/Inf values are refused with a message naming the file, the input and the sample.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from workbench.errors import WorkbenchError

LABELS_KEY = "labels"


class InputDataError(WorkbenchError, ValueError):
    """Input data that does not fit the model; the message says which input and sample."""


def load_npz(
    path,
    input_names: Sequence[str] | None = None,
    *,
    limit: int | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Read model inputs (and ``labels`` if present) from an ``.npz`` file.

    Args:
        path: The ``.npz`` file; one array per model input, named after it, samples first.
        input_names: The model's input names; every one must be in the file. None takes every
            array but ``labels``.
        limit: Keep only the first ``limit`` samples.

    Returns:
        (input name -> array, labels or None).

    Raises:
        InputDataError: The file is missing or unreadable, lacks an input, or holds arrays that
            are empty, disagree on the number of samples, or contain NaN/Inf.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputDataError(f"{path}: no such data file. Give an .npz with one array per model input.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputDataError(
            f"{path}: not a readable .npz file ({err}). Save it with numpy.savez(path, input=...)."
        ) from err
    labels = arrays.pop(LABELS_KEY, None)
    names = list(input_names) if input_names is not None else sorted(arrays)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputDataError(
            f"{path}: has no array for model input(s) {missing}; it holds {sorted(arrays)}. "
            "Name each array after the model input it feeds."
        )
    inputs = {n: arrays[n] for n in names}
    if limit is not None:
        inputs = {n: a[:limit] for n, a in inputs.items()}
        labels = labels[:limit] if labels is not None else None
    check_inputs(inputs, source=str(path))
    return inputs, labels


def check_inputs(inputs: Mapping[str, np.ndarray], *, source: str = "inputs") -> None:
    """Refuse empty arrays, differing sample counts and NaN/Inf, naming input and sample."""
    counts = {}
    for name, array in inputs.items():
        if array.ndim == 0 or array.shape[0] == 0:
            raise InputDataError(f"{source}: input '{name}' holds no samples (shape {array.shape}).")
        counts[name] = array.shape[0]
        if np.issubdtype(array.dtype, np.floating):
            bad = ~np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
            if bad.any():
                samples = np.flatnonzero(bad)
                raise InputDataError(
                    f"{source}: input '{name}' has NaN or Inf values in sample(s) "
                    f"{samples[:10].tolist()}{' ...' if samples.size > 10 else ''} "
                    f"({samples.size} of {array.shape[0]}). Clean or drop those samples."
                )
    if len(set(counts.values())) > 1:
        raise InputDataError(f"{source}: inputs disagree on the number of samples: {counts}.")


def synthetic_inputs(input_specs: Sequence[Mapping], *, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs shaped like the model's, for timing when no data is given.

    Args:
        input_specs: ``{"name", "dtype", "shape"}`` per input (``ModelSummary.inputs``); a
            symbolic first dim becomes ``batch``, other symbolic dims 1.
        batch: Samples per inference.
        seed: Random seed.

    Returns:
        Input name -> array.
    """
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in input_specs:
        shape = [
            d if isinstance(d, int) else (batch if i == 0 else 1)
            for i, d in enumerate(spec["shape"] or [batch])
        ]
        dtype = np.dtype(spec["dtype"] or "float32")
        if np.issubdtype(dtype, np.floating):
            inputs[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            inputs[spec["name"]] = rng.integers(0, 2, shape).astype(bool)
        else:
            inputs[spec["name"]] = rng.integers(0, 2, shape).astype(dtype)
    return inputs


def take_batch(inputs: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """The first ``batch`` samples of every input (all of them if there are fewer)."""
    return {name: array[:batch] for name, array in inputs.items()}


def check_labels(labels, samples: int, source: str = "data") -> np.ndarray | None:
    """Validate labels: ``[N]`` integer classes, or ``[N, C]`` one-hot (argmax is taken).

    Args:
        labels: The labels, or None.
        samples: Number of samples the inputs hold.
        source: Where they came from, for messages.

    Returns:
        ``[N]`` int64 class indices, or None.

    Raises:
        InputDataError: Wrong count, rank, non-integer or negative classes.
    """
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise InputDataError(
            f"{source}: labels have shape {list(labels.shape)}; give one class index per sample "
            "([N]) or one-hot rows ([N, C])."
        )
    if labels.shape[0] != samples:
        raise InputDataError(
            f"{source}: {labels.shape[0]} labels for {samples} samples; give one label per sample."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        if not (np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels))
                and np.all(labels == np.round(labels))):
            raise InputDataError(
                f"{source}: labels must be integer class indices, got dtype {labels.dtype}."
            )
    if labels.size and labels.min() < 0:
        raise InputDataError(f"{source}: labels must be class indices >= 0, found {labels.min()}.")
    return labels.astype(np.int64)


def load_labelled(data, input_names: Sequence[str] | None = None, *, limit: int | None = None,
                  need_labels: bool = False, what: str = "data"
                  ) -> tuple[dict[str, np.ndarray], np.ndarray | None, str]:
    """The one loader of labelled data: model inputs and (optional) labels, checked.

    Args:
        data: An ``.npz`` path; ``(inputs mapping, labels or None)``; or a mapping of input
            name -> array that may hold ``labels``.
        input_names: The model's inputs; each must be present. Other arrays are ignored. None
            takes every array but ``labels``.
        limit: Keep only the first ``limit`` samples.
        need_labels: Refuse data without labels.
        what: What the data is for (``"evaluation"``), for messages.

    Returns:
        ``(inputs, labels, source)``: labels as ``[N]`` int64 class indices or None; ``source``
        the path or ``"arrays"``.

    Raises:
        InputDataError: A missing input, empty or mismatched arrays, NaN/Inf, bad labels, or no
            labels where they are needed.
    """
    if isinstance(data, (str, os.PathLike)):
        inputs, labels = load_npz(data, input_names, limit=limit)
        source = str(data)
    else:
        if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Mapping):
            arrays, labels = dict(data[0]), data[1]
        elif isinstance(data, Mapping):
            arrays = dict(data)
            labels = arrays.pop(LABELS_KEY, None)
        else:
            raise InputDataError(
                f"{what} data must be an .npz path, a dict of input name -> array, or (inputs, labels); "
                f"got {type(data).__name__}."
            )
        names = list(input_names) if input_names is not None else sorted(arrays)
        missing = [n for n in names if n not in arrays]
        if missing:
            raise InputDataError(
                f"the {what} data has no array for model input(s) {missing}; it holds {sorted(arrays)}. "
                "Key each array by the model input it feeds."
            )
        inputs = {n: np.asarray(arrays[n]) for n in names}
        labels = None if labels is None else np.asarray(labels)
        if limit is not None:
            inputs = {n: a[:limit] for n, a in inputs.items()}
            labels = None if labels is None else labels[:limit]
        source = "arrays"
        check_inputs(inputs, source=f"{what} data" if what != "data" else source)
    if labels is None and need_labels:
        raise InputDataError(
            f"{source}: the {what} data has no 'labels' array; top-1 accuracy needs one integer label "
            "per sample (numpy.savez(path, input=..., labels=...))."
        )
    labels = check_labels(labels, next(iter(inputs.values())).shape[0], source)
    return inputs, labels, source
