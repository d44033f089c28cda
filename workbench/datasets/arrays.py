"""Model inputs from ``.npz`` files (arrays named after the model's inputs) or made up from shapes.

Validated at the boundary: a missing input, an empty array, mismatched sample counts or
NaN/Inf values are refused with a message naming the file, the input and the sample.

**The data description** (the *sample axes*): by default the samples of every input run along
its axis 0 (the model's batch axis: arrays are ``[N, ...]`` for a model input ``[batch, ...]``),
and a 0-d array (a scalar, such as a sample rate) is fed as it is to every batch. An input whose
samples run along another axis (a recurrent state ``[2, N, 128]``: axis 1), or that is fed as it
is (``None``), is described per input, either beside the arrays in the ``.npz`` (a small JSON
entry ``__spec__``, written by :func:`spec_array` or :func:`save_npz`) or by a
``sample_axes={"sr": None, "state": 1}`` argument (which wins over the file's). Batches are
cut along these axes by :func:`take_batch` and :func:`iter_batches`; :func:`load_data` returns
everything together as :class:`ModelData`.

Example::

    save_npz("vad.npz", {"audio": audio, "sr": np.array(16000), "state": state},
             sample_axes={"sr": None, "state": 1})
    data = load_data("vad.npz", model.input_names)
    for feed in data.batches(8):
        session.run(None, feed)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from workbench.errors import WorkbenchError
from workbench.workspace import write_atomic

LABELS_KEY = "labels"
SPEC_KEY = "__spec__"
_SPEC_HELP = ("describe the layout per input: sample_axes={'state': 1, 'sr': None} in Python, or "
              "__spec__=workbench.datasets.spec_array({...}) saved in the .npz")


class InputDataError(WorkbenchError, ValueError):
    """Input data that does not fit the model; the message says which input and sample."""


# --------------------------------------------------------------------------------------------
# The data description: sample axes
# --------------------------------------------------------------------------------------------


def normalize_sample_axes(value, *, source: str = "data") -> dict[str, int | None]:
    """Read a data description into ``{input name: sample axis or None}``.

    Args:
        value: None; a mapping of input name -> axis (int) or None; the JSON text of an
            ``__spec__`` entry (``{"sample_axes": {...}}``); or the 0-d array holding it.
        source: Where it came from, for messages.

    Returns:
        Input name -> axis (an int, possibly negative) or None (fed as it is).

    Raises:
        InputDataError: Not one of those forms, or an axis that is not a whole number or None.
    """
    if value is None:
        return {}
    if isinstance(value, np.ndarray):
        value = value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError as err:
            raise InputDataError(f"{source}: its {SPEC_KEY} entry is not JSON ({err}); {_SPEC_HELP}.") from err
        if not isinstance(parsed, dict) or not isinstance(parsed.get("sample_axes"), dict):
            raise InputDataError(
                f"{source}: its {SPEC_KEY} entry should be {{\"sample_axes\": {{input: axis or null}}}}, "
                f"got {value[:200]!r}; {_SPEC_HELP}."
            )
        value = parsed["sample_axes"]
    if not isinstance(value, Mapping):
        raise InputDataError(f"{source}: sample axes must be a dict of input name -> axis or None, "
                             f"got {type(value).__name__}.")
    axes = {}
    for name, axis in value.items():
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
            raise InputDataError(f"{source}: the sample axis of input '{name}' must be a whole number "
                                 f"or None (fed as it is), got {axis!r}.")
        axes[str(name)] = None if axis is None else int(axis)
    return axes


def spec_array(sample_axes: Mapping[str, int | None]) -> np.ndarray:
    """The ``__spec__`` entry that describes an ``.npz``'s arrays, to save beside them.

    Args:
        sample_axes: Input name -> the axis its samples run along, or None for an input fed as
            it is to every batch. Inputs not named keep axis 0 (0-d arrays: None).

    Returns:
        A 0-d string array (saved without pickling):
        ``numpy.savez(path, x=..., sr=..., __spec__=spec_array({"sr": None}))``.
    """
    return np.array(json.dumps({"sample_axes": normalize_sample_axes(sample_axes)}))


def sample_axis(sample_axes: Mapping[str, int | None] | None, name: str, array=None) -> int | None:
    """The axis input ``name``'s samples run along (None: fed as it is), made non-negative.

    Args:
        sample_axes: The data description (names not in it: axis 0).
        name: The input.
        array: Its array, if known: a 0-d array has no sample axis; negative axes count from
            its last axis.

    Returns:
        The axis, or None.
    """
    sample_axes = sample_axes or {}
    ndim = None if array is None else np.ndim(array)
    if name in sample_axes:
        axis = sample_axes[name]
    else:
        axis = None if ndim == 0 else 0
    if axis is not None and axis < 0 and ndim is not None:
        axis += ndim
    return axis


def resolve_sample_axes(inputs: Mapping[str, np.ndarray], sample_axes=None, *,
                        source: str = "inputs") -> dict[str, int | None]:
    """Every input's sample axis (or None), checked against its array's rank.

    Args:
        inputs: Input name -> array.
        sample_axes: The data description (see :func:`normalize_sample_axes`).
        source: Where the data came from, for messages.

    Returns:
        Input name -> non-negative axis or None, for every input.

    Raises:
        InputDataError: An axis outside an array's dims.
    """
    given = normalize_sample_axes(sample_axes, source=source)
    axes = {}
    for name, array in inputs.items():
        axis = sample_axis(given, name, array)
        if axis is not None and not 0 <= axis < np.ndim(array):
            raise InputDataError(
                f"{source}: input '{name}' is shaped {list(np.shape(array))}, so it has no axis "
                f"{given.get(name, 0)} for its samples; {_SPEC_HELP}."
            )
        axes[name] = axis
    return axes


def num_samples(inputs: Mapping[str, np.ndarray], sample_axes=None, *, source: str = "inputs") -> int:
    """How many samples the inputs hold along their sample axes (1 if every input is fed as is).

    Args:
        inputs: Input name -> array.
        sample_axes: The data description.
        source: Where the data came from, for messages.

    Returns:
        The sample count.

    Raises:
        InputDataError: Inputs disagree on the count (the message lists each input's count and axis).
    """
    axes = resolve_sample_axes(inputs, sample_axes, source=source)
    counts = {name: int(np.shape(inputs[name])[axis]) for name, axis in axes.items() if axis is not None}
    if len(set(counts.values())) > 1:
        described = ", ".join(f"'{n}' {c} (axis {axes[n]})" for n, c in counts.items())
        raise InputDataError(f"{source}: inputs disagree on the number of samples: {described}; "
                             f"give every input the same number of samples, or {_SPEC_HELP}.")
    return next(iter(counts.values())) if counts else 1


def _along(array: np.ndarray, axis: int, index) -> np.ndarray:
    return array[(slice(None),) * axis + (index,)]


def take_batch(inputs: Mapping[str, np.ndarray], batch: int, sample_axes=None, *,
               start: int = 0) -> dict[str, np.ndarray]:
    """Samples ``start`` to ``start + batch`` of every input, cut along its sample axis.

    Inputs fed as they are (sample axis None) are passed unchanged. Fewer samples than asked
    for give a smaller batch. The arrays are views, not copies.

    Args:
        inputs: Input name -> array.
        batch: Samples to take.
        sample_axes: The data description (default: axis 0, None for 0-d arrays).
        start: The first sample.

    Returns:
        Input name -> array.
    """
    axes = resolve_sample_axes(inputs, sample_axes)
    window = slice(int(start), int(start) + int(batch))
    return {name: array if axes[name] is None else _along(np.asarray(array), axes[name], window)
            for name, array in inputs.items()}


def iter_batches(inputs: Mapping[str, np.ndarray], batch_size: int, sample_axes=None
                 ) -> Iterator[dict[str, np.ndarray]]:
    """Feeds of ``batch_size`` samples each (the last may be smaller), cut along the sample axes.

    Args:
        inputs: Input name -> array.
        batch_size: Samples per feed (at least 1).
        sample_axes: The data description.

    Yields:
        Input name -> array (views); one feed with everything when every input is fed as is.
    """
    if int(batch_size) < 1:
        raise InputDataError(f"batch size must be at least 1, got {batch_size}.")
    axes = resolve_sample_axes(inputs, sample_axes)
    total = num_samples(inputs, axes)
    for start in range(0, total, int(batch_size)):
        yield take_batch(inputs, batch_size, axes, start=start)


def arrays_sha256(arrays: Mapping[str, np.ndarray], digest=None):
    """Feed ``arrays`` (names, dtypes, shapes and bytes, by name) into a sha256: equal data, equal hash.

    Args:
        arrays: Name -> array.
        digest: A ``hashlib.sha256`` object to extend (a new one when None).

    Returns:
        The digest object (call ``hexdigest()`` on it, or feed it more).
    """
    digest = hashlib.sha256() if digest is None else digest
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(memoryview(array).cast("B"))
    return digest


def select_samples(inputs: Mapping[str, np.ndarray], indices, sample_axes=None) -> dict[str, np.ndarray]:
    """The samples at ``indices`` (e.g. a random subset) of every input, along its sample axis.

    Args:
        inputs: Input name -> array.
        indices: Sample indices (an int array or list).
        sample_axes: The data description.

    Returns:
        Input name -> array (copies; inputs fed as they are unchanged).
    """
    axes = resolve_sample_axes(inputs, sample_axes)
    indices = np.asarray(indices, dtype=np.int64)
    return {name: array if axes[name] is None else np.take(array, indices, axis=axes[name])
            for name, array in inputs.items()}


# --------------------------------------------------------------------------------------------
# Reading and writing .npz files
# --------------------------------------------------------------------------------------------


def save_npz(path, inputs: Mapping[str, np.ndarray], labels=None, *, sample_axes=None,
             overwrite: bool = False) -> Path:
    """Write model inputs (and labels) to an ``.npz``, with the data description beside them.

    Args:
        path: The file to write (atomically).
        inputs: Input name -> array.
        labels: Optional labels, one per sample (saved as ``labels``).
        sample_axes: Input name -> sample axis or None (see :func:`spec_array`); None writes no
            description (every input's samples along axis 0).
        overwrite: Replace an existing file.

    Returns:
        The path written.

    Raises:
        InputDataError: The file exists and ``overwrite`` is False, or the arrays do not fit
            the description.
    """
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise InputDataError(f"{path}: already exists; pass overwrite=True to replace it.")
    arrays = {name: np.asarray(a) for name, a in inputs.items()}
    check_inputs(arrays, source=str(path), sample_axes=sample_axes)
    if labels is not None:
        arrays[LABELS_KEY] = np.asarray(labels)
    if sample_axes is not None:
        arrays[SPEC_KEY] = spec_array(sample_axes)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_atomic(path, buffer.getvalue())


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None, dict[str, int | None]]:
    """All arrays, labels and the data description of an ``.npz``."""
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
    spec = normalize_sample_axes(arrays.pop(SPEC_KEY, None), source=str(path))
    return arrays, labels, spec


def read_sample_axes(path) -> dict[str, int | None]:
    """The data description saved in an ``.npz`` (``{}`` if it has none).

    Args:
        path: The ``.npz`` file.

    Returns:
        Input name -> sample axis or None, as saved.
    """
    path = Path(path).expanduser()
    try:
        with np.load(path, allow_pickle=False) as archive:
            return normalize_sample_axes(archive[SPEC_KEY] if SPEC_KEY in archive.files else None,
                                         source=str(path))
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputDataError(f"{path}: not a readable .npz file ({err}).") from err


def load_npz(
    path,
    input_names: Sequence[str] | None = None,
    *,
    limit: int | None = None,
    sample_axes=None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Read model inputs (and ``labels`` if present) from an ``.npz`` file.

    Args:
        path: The ``.npz`` file; one array per model input, named after it; samples along axis
            0 unless its ``__spec__`` (or ``sample_axes``) says otherwise.
        input_names: The model's input names; every one must be in the file. None takes every
            array but ``labels``.
        limit: Keep only the first ``limit`` samples.
        sample_axes: Sample axes that override the file's description (see
            :func:`load_data`, which also returns the description).

    Returns:
        (input name -> array, labels or None).

    Raises:
        InputDataError: The file is missing or unreadable, lacks an input, or holds arrays that
            are empty, disagree on the number of samples, or contain NaN/Inf.
    """
    data = load_data(Path(path), input_names, limit=limit, sample_axes=sample_axes)
    return data.inputs, data.labels


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def check_inputs(inputs: Mapping[str, np.ndarray], *, source: str = "inputs", sample_axes=None) -> None:
    """Refuse empty arrays, differing sample counts and NaN/Inf, naming input and sample.

    Args:
        inputs: Input name -> array.
        source: Where the data came from, for messages.
        sample_axes: The data description (default: samples along axis 0; 0-d arrays fed as is).

    Raises:
        InputDataError: An input holds no samples, has NaN/Inf, or the counts disagree.
    """
    axes = resolve_sample_axes(inputs, sample_axes, source=source)
    for name, array in inputs.items():
        array = np.asarray(array)
        axis = axes[name]
        if array.size == 0:
            where = "fed as it is" if axis is None else f"samples along axis {axis}"
            raise InputDataError(f"{source}: input '{name}' holds no samples (shape {list(array.shape)}, {where}).")
        if not np.issubdtype(array.dtype, np.floating):
            continue
        if axis is None:
            if not np.isfinite(array).all():
                raise InputDataError(f"{source}: input '{name}' (fed as it is, shape {list(array.shape)}) "
                                     "has NaN or Inf values. Clean it.")
            continue
        count = array.shape[axis]
        bad = ~np.isfinite(np.moveaxis(array, axis, 0).reshape(count, -1)).all(axis=1)
        if bad.any():
            samples = np.flatnonzero(bad)
            raise InputDataError(
                f"{source}: input '{name}' has NaN or Inf values in sample(s) "
                f"{samples[:10].tolist()}{' ...' if samples.size > 10 else ''} "
                f"({samples.size} of {count}). Clean or drop those samples."
            )
    num_samples(inputs, axes, source=source)


def check_model_inputs(inputs: Mapping[str, np.ndarray], input_specs: Sequence[Mapping], sample_axes=None,
                       *, source: str = "data", feed: bool = False) -> None:
    """Refuse arrays the model cannot take: missing names, dtypes, ranks, fixed sizes.

    An input with a sample axis has the model's rank, its samples concatenated along that axis
    (the model's batch axis); an input fed as it is must have the model's shape. Messages give
    the array's whole shape, its sample axis and the model's shape, so they never contradict
    themselves.

    Args:
        inputs: Input name -> array.
        input_specs: The model's inputs, ``{"name", "dtype", "shape"}`` (``ModelSummary.inputs``;
            a string dim is dynamic).
        sample_axes: The data description.
        source: Where the data came from, for messages.
        feed: The arrays are one feed (a batch): a fixed size on the sample axis must match
            exactly instead of dividing the sample count.

    Raises:
        InputDataError: The first problem found, naming the input and the fix.
    """
    names = [spec["name"] for spec in input_specs]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise InputDataError(f"{source}: no array for model input(s) {missing}; it holds {sorted(inputs)}. "
                             "Name each array after the model input it feeds.")
    axes = resolve_sample_axes({n: inputs[n] for n in names}, sample_axes, source=source)
    for spec in input_specs:
        _check_model_input(source, spec, np.asarray(inputs[spec["name"]]), axes[spec["name"]], feed)


def _layout(array: np.ndarray, axis: int | None) -> str:
    where = "fed as it is" if axis is None else f"samples along axis {axis}"
    return f"an array shaped {list(array.shape)} ({where})"


def _check_model_input(source: str, spec: Mapping, array: np.ndarray, axis: int | None, feed: bool) -> None:
    name, shape, want_dtype = spec["name"], spec.get("shape"), spec.get("dtype")
    if want_dtype and np.dtype(want_dtype) != array.dtype:
        raise InputDataError(f"{source}: input '{name}' is {array.dtype.name} but the model takes {want_dtype}. "
                             f"Convert it (array.astype('{want_dtype}')).")
    if shape is None:
        return
    layout = _layout(array, axis)
    if array.ndim != len(shape):
        fix = ("give a 0-d array (it is fed as it is to every batch)" if not shape else
               f"give an array of rank {len(shape)}" + ("" if axis is None else
                                                        " with the samples along the model's batch axis"))
        raise InputDataError(f"{source}: input '{name}' is {layout} but the model takes {shape}: wrong rank "
                             f"({array.ndim}; the model's is {len(shape)}). Fix: {fix}, or {_SPEC_HELP}.")
    for i, (want, got) in enumerate(zip(shape, array.shape)):
        if not isinstance(want, int) or want <= 0 or want == got:
            continue
        if i == axis and not feed:
            if got % want:
                raise InputDataError(
                    f"{source}: input '{name}' is {layout}; the model fixes that axis at {want} ({shape}), "
                    f"so give a multiple of {want} samples, or if the samples run along another axis, "
                    f"{_SPEC_HELP}.")
            continue
        if i == axis:
            fix = f"feed batches of {want} samples"
        else:
            fix = "resize or reshape the data to the model's input shape"
        raise InputDataError(
            f"{source}: input '{name}' has dim {i} of size {got} ({layout}) but the model fixes it at {want} "
            f"(model shape {shape}). Fix: {fix}, or if the samples run along another axis, {_SPEC_HELP}.")


def synthetic_inputs(input_specs: Sequence[Mapping], *, batch: int = 1, seed: int = 0,
                     shapes: Mapping[str, Sequence[int]] | None = None, sample_axes=None
                     ) -> dict[str, np.ndarray]:
    """Random inputs shaped like the model's, for timing when no data is given.

    A dynamic dim on an input's sample axis (axis 0 unless ``sample_axes`` says otherwise)
    becomes ``batch``; any other dynamic dim must be given in ``shapes``: it is refused, never
    guessed (timing a 1x3x1x1 image says nothing about a 1x3x32x320 one).

    Args:
        input_specs: ``{"name", "dtype", "shape"}`` per input (``ModelSummary.inputs``).
        batch: Samples per inference.
        seed: Random seed.
        shapes: Whole shapes for some inputs (``{"x": (1, 3, 32, 320)}``; the CLI's ``--shapes``).
        sample_axes: Input name -> the axis ``batch`` applies to, or None for none.

    Returns:
        Input name -> array.

    Raises:
        InputDataError: A dynamic dim (or an unknown rank) with no size given, or a shape in
            ``shapes`` that contradicts the model or names no input.
    """
    shapes = dict(shapes or {})
    unknown = sorted(set(shapes) - {spec["name"] for spec in input_specs})
    if unknown:
        raise InputDataError(f"shapes given for {unknown}, which are not model inputs; inputs: "
                             f"{[spec['name'] for spec in input_specs]}.")
    given_axes = normalize_sample_axes(sample_axes)
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in input_specs:
        if spec["name"] in shapes:
            shape = _given_shape(spec, shapes[spec["name"]])
        else:
            shape = _synthetic_shape(spec, batch, given_axes.get(spec["name"], 0))
        dtype = np.dtype(spec["dtype"] or "float32")
        if np.issubdtype(dtype, np.floating):
            inputs[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            inputs[spec["name"]] = rng.integers(0, 2, shape).astype(bool)
        else:
            inputs[spec["name"]] = rng.integers(0, 2, shape).astype(dtype)
    return inputs


def _shape_hint(name: str, shape: Sequence, batch: int, axis: int | None) -> str:
    dims = [str(d) if isinstance(d, int) and d > 0 else str(batch) if i == axis else
            "<size>" if d in ("?", -1) else f"<{d}>" for i, d in enumerate(shape)]
    label = f"'{name}'" if ":" in name else name
    return (f"give data (--data), or the shape: --shapes {label}:{'x'.join(dims)} on the command line, "
            f"shapes={{'{name}': ({', '.join(dims)}{',' if len(dims) == 1 else ''})}} in Python")


def _synthetic_shape(spec: Mapping, batch: int, axis: int | None) -> list[int]:
    name, shape = spec["name"], spec.get("shape")
    if shape is None:
        raise InputDataError(f"input '{name}' has an unknown rank, so random inputs cannot be made for it; "
                             f"give data (--data), or its shape (--shapes {name}:1x3x224x224 on the "
                             f"command line, shapes={{'{name}': (...)}} in Python).")
    if axis is not None and axis < 0:
        axis += len(shape)
    out = []
    for i, dim in enumerate(shape):
        if isinstance(dim, int) and dim > 0:
            out.append(dim)
        elif i == axis:
            out.append(int(batch))
        else:
            raise InputDataError(
                f"input '{name}' has dynamic dim {i} ('{dim}') in {shape}; without data its size is "
                f"unknown and is not guessed: {_shape_hint(name, shape, batch, axis)}.")
    return out


def _given_shape(spec: Mapping, given: Sequence[int]) -> list[int]:
    name, shape = spec["name"], spec.get("shape")
    given = [int(d) for d in given]
    if any(d < 1 for d in given):
        raise InputDataError(f"shape {given} for input '{name}': every dim must be at least 1.")
    if shape is not None:
        if len(given) != len(shape):
            raise InputDataError(f"shape {given} for input '{name}' has rank {len(given)}; the model takes "
                                 f"rank {len(shape)} {shape}.")
        for i, (want, got) in enumerate(zip(shape, given)):
            if isinstance(want, int) and want > 0 and want != got:
                raise InputDataError(f"shape {given} for input '{name}': dim {i} is fixed at {want} by the "
                                     f"model ({shape}).")
    return given


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


# --------------------------------------------------------------------------------------------
# The one loader
# --------------------------------------------------------------------------------------------


@dataclass
class ModelData:
    """Model inputs with their data description, and labels if there are any.

    Attributes:
        inputs: Input name -> array.
        labels: The labels as given (one per sample along axis 0), or None.
        source: The path, or ``"arrays"``.
        sample_axes: Input name -> the axis its samples run along, or None (fed as it is), for
            every input.
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str
    sample_axes: dict[str, int | None]

    @property
    def num_samples(self) -> int:
        return num_samples(self.inputs, self.sample_axes, source=self.source)

    def take(self, batch: int, *, start: int = 0) -> dict[str, np.ndarray]:
        """Samples ``start`` to ``start + batch`` of every input (see :func:`take_batch`)."""
        return take_batch(self.inputs, batch, self.sample_axes, start=start)

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feeds of ``batch_size`` samples (see :func:`iter_batches`)."""
        return iter_batches(self.inputs, batch_size, self.sample_axes)


def load_data(data, input_names: Sequence[str] | None = None, *, sample_axes=None, limit: int | None = None,
              need_labels: bool = False, what: str = "data") -> ModelData:
    """The one loader of model data: inputs, their data description and raw labels, checked.

    Args:
        data: An ``.npz`` path; ``(inputs mapping, labels or None)``; a :class:`ModelData`; or a
            mapping of input name -> array that may hold ``labels`` and ``__spec__``.
        input_names: The model's inputs; each must be present. Other arrays are ignored. None
            takes every array but ``labels``.
        sample_axes: Input name -> sample axis or None; wins over a ``__spec__`` in the data.
        limit: Keep only the first ``limit`` samples.
        need_labels: Refuse data without labels.
        what: What the data is for (``"evaluation"``), for messages.

    Returns:
        The data; labels as given (count checked against the samples), not converted.

    Raises:
        InputDataError: A missing input, an unknown name in the description, empty or
            mismatched arrays, NaN/Inf, or no labels where they are needed.
    """
    if isinstance(data, ModelData):
        arrays, labels, spec, source = dict(data.inputs), data.labels, dict(data.sample_axes), data.source
    elif isinstance(data, (str, os.PathLike)):
        source = str(Path(data).expanduser())
        arrays, labels, spec = _read_npz(Path(data).expanduser())
    elif isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Mapping):
        arrays, labels, source = dict(data[0]), data[1], "arrays"
        spec = normalize_sample_axes(arrays.pop(SPEC_KEY, None), source=source)
    elif isinstance(data, Mapping):
        arrays, source = dict(data), "arrays"
        labels = arrays.pop(LABELS_KEY, None)
        spec = normalize_sample_axes(arrays.pop(SPEC_KEY, None), source=source)
    else:
        raise InputDataError(
            f"{what} data must be an .npz path, a dict of input name -> array, or (inputs, labels); "
            f"got {type(data).__name__}."
        )
    spec.update(normalize_sample_axes(sample_axes, source=source))
    stray = sorted(set(spec) - set(arrays))
    if stray:
        raise InputDataError(f"{source}: the data description names {stray}, which hold no array "
                             f"(arrays: {sorted(arrays)}). Fix the names in sample_axes / {SPEC_KEY}.")
    names = list(input_names) if input_names is not None else sorted(arrays)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputDataError(
            f"{source}: the {what} data has no array for model input(s) {missing}; it holds {sorted(arrays)}. "
            "Name each array after the model input it feeds."
        )
    inputs = {n: np.asarray(arrays[n]) for n in names}
    labels = None if labels is None else np.asarray(labels)
    check_source = source if what == "data" or source != "arrays" else f"{what} data"
    axes = resolve_sample_axes(inputs, {n: a for n, a in spec.items() if n in inputs}, source=check_source)
    if limit is not None:
        inputs = take_batch(inputs, int(limit), axes)
        labels = None if labels is None else labels[:limit]
    check_inputs(inputs, source=check_source, sample_axes=axes)
    if labels is None and need_labels:
        raise InputDataError(
            f"{source}: the {what} data has no 'labels' array; top-1 accuracy needs one integer label "
            "per sample (numpy.savez(path, input=..., labels=...))."
        )
    count = num_samples(inputs, axes, source=check_source)
    if labels is not None and labels.ndim and labels.shape[0] != count:
        raise InputDataError(f"{source}: {labels.shape[0]} labels for {count} samples; give one label per sample.")
    return ModelData(inputs, labels, source, axes)


def load_labelled(data, input_names: Sequence[str] | None = None, *, limit: int | None = None,
                  need_labels: bool = False, what: str = "data", sample_axes=None,
                  ) -> tuple[dict[str, np.ndarray], np.ndarray | None, str]:
    """Model inputs and (optional) class labels, checked: :func:`load_data` plus :func:`check_labels`.

    Args:
        data: An ``.npz`` path; ``(inputs mapping, labels or None)``; or a mapping of input
            name -> array that may hold ``labels`` (and ``__spec__``).
        input_names: The model's inputs; each must be present. Other arrays are ignored. None
            takes every array but ``labels``.
        limit: Keep only the first ``limit`` samples.
        need_labels: Refuse data without labels.
        what: What the data is for (``"evaluation"``), for messages.
        sample_axes: Input name -> sample axis or None (see :func:`load_data`, which also
            returns the description).

    Returns:
        ``(inputs, labels, source)``: labels as ``[N]`` int64 class indices or None; ``source``
        the path or ``"arrays"``.

    Raises:
        InputDataError: A missing input, empty or mismatched arrays, NaN/Inf, bad labels, or no
            labels where they are needed.
    """
    loaded = load_data(data, input_names, sample_axes=sample_axes, limit=limit, need_labels=need_labels, what=what)
    labels = check_labels(loaded.labels, loaded.num_samples, loaded.source)
    return loaded.inputs, labels, loaded.source
