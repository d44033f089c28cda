"""The results table: every variant the user tried, with what it cost in accuracy and gained in speed.

One row per (variant, backend) experiment: the model, the variant's name and precision, the
recipe that made it (a dict, plus a short label), the calibration set and method, the accuracy
(:class:`workbench.analysis.accuracy.EvaluationResult`; the chosen metric as ``metric``,
``metric_value`` and ``metric_unit``, one accuracy axis for any task), the latency
(:class:`workbench.backends.BenchmarkResult`), the model size, tool versions and when it ran.

Rows are kept in the workspace as JSON lines (``<workspace>/results.jsonl``, one JSON object a
line), rewritten atomically on every change under a lock file, so a notebook and a command line
adding rows at the same time do not lose each other's rows. Loading is tolerant: rows written by
older or newer versions, with keys missing or extra, still load (missing values are NaN/None,
extra keys become extra columns), and a damaged line is skipped with a warning in
``frame.attrs["warnings"]``. Non-finite numbers are written as Python's JSON does
(``Infinity``/``NaN``), so an identical reference's infinite SQNR round-trips.

Example::

    table = ResultsTable()
    row_id = table.add(make_row(model="digits_cnn", variant="int8-minmax", precision="INT8",
                                evaluation=result, benchmark=bench, recipe={...},
                                calibration="digits_cnn.calib.npz", calibration_method="minmax",
                                variant_path="variants/digits_cnn.int8.onnx"))
    frame = table.frame()
    front = pareto_front(frame, x="median_ms", y="top1")
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import math
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from workbench import __version__
from workbench.errors import WorkbenchError
from workbench.workspace import workspace_dir, write_atomic

RESULTS_FILE = "results.jsonl"
SCHEMA_VERSION = 1

# Column order of the frame; rows may lack any of them and may carry others.
COLUMNS = (
    "id",
    "created",
    "model",
    "variant",
    "precision",
    "backend",
    "recipe",
    "recipe_label",
    "calibration",
    "calibration_method",
    "samples",
    "top1",
    "top5",
    "top1_agreement",
    "min_cosine",
    "min_sqnr_db",
    "metric",
    "metric_value",
    "metric_unit",
    "mean_ms",
    "median_ms",
    "p90_ms",
    "p99_ms",
    "throughput",
    "batch",
    "size_bytes",
    "variant_path",
    "outputs",
    "versions",
    "notes",
    "schema",
    "p10_ms",
)
NUMERIC_COLUMNS = (
    "samples", "top1", "top5", "top1_agreement", "min_cosine", "min_sqnr_db", "metric_value", "mean_ms",
    "median_ms", "p90_ms", "p99_ms", "throughput", "batch", "size_bytes", "schema", "p10_ms",
)
TEXT_COLUMNS = ("id", "created", "model", "variant", "precision", "backend", "recipe_label",
                "calibration", "calibration_method", "variant_path", "notes", "metric", "metric_unit")
TOOLS = ("onnx", "onnxruntime", "polygraphy", "numpy", "tensorrt", "nvidia-modelopt")
LABEL_WIDTH = 48


class ResultsError(WorkbenchError, ValueError):
    """A row that cannot be added, or a row id the table does not hold."""


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _installed_versions() -> tuple[tuple[str, str], ...]:
    found = []
    for name in TOOLS:
        try:
            found.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return tuple(found)


def tool_versions() -> dict[str, str]:
    """Versions of the workbench and the tools that shape results (installed ones only).

    Returns:
        Tool name -> version string; TensorRT and ModelOpt only where installed (read from
        package metadata, never imported).
    """

    return {"workbench": __version__, **dict(_installed_versions())}


def recipe_label(recipe: Any, width: int = LABEL_WIDTH) -> str:
    """A short label for a recipe, for legends and hover text.

    Args:
        recipe: A dict (its ``label`` or ``name`` entry if present, else its ``key=value``
            pairs; True flags show as their key, False/None ones are left out), a string, or None.
        width: Cut the label to this many characters.

    Returns:
        The label ("" for no recipe).
    """
    if recipe is None or (isinstance(recipe, float) and math.isnan(recipe)):
        return ""
    if isinstance(recipe, Mapping):
        for key in ("label", "name"):
            if isinstance(recipe.get(key), str) and recipe[key]:
                return _cut(recipe[key], width)
        parts = []
        for key, value in recipe.items():
            if value is None or value is False:
                continue
            if value is True:
                parts.append(str(key))
            elif isinstance(value, (list, tuple)):
                parts.append(f"{key}={','.join(map(str, value))}")
            elif isinstance(value, Mapping):
                parts.append(f"{key}={{{len(value)}}}")
            else:
                parts.append(f"{key}={value}")
        return _cut(" ".join(parts), width)
    return _cut(str(recipe), width)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _as_dict(obj: Any) -> dict:
    """A result object (``to_dict()``) or mapping as a plain dict; None as {}."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if callable(getattr(obj, "to_dict", None)):
        return dict(obj.to_dict())
    raise ResultsError(f"expected a result object with to_dict() or a dict, got {type(obj).__name__}")


def make_row(
    *,
    model: str,
    variant: str | None = None,
    precision: str | None = None,
    backend: str | None = None,
    evaluation: Any = None,
    benchmark: Any = None,
    recipe: Mapping[str, Any] | None = None,
    calibration: str | None = None,
    calibration_method: str | None = None,
    variant_path=None,
    **extra: Any,
) -> dict:
    """Build a results row from what an experiment produced (a pure function but for file size).

    Args:
        model: The original model's name (e.g. ``"digits_cnn"``).
        variant: The variant's name; default: the variant file's stem, else the model.
        precision: ``"FP32"``, ``"FP16"``, ``"BF16"``, ``"INT8"``, ``"FP8"``...
        backend: Default: the benchmark's or the evaluation's backend.
        evaluation: An :class:`~workbench.analysis.accuracy.EvaluationResult` or its dict.
        benchmark: A :class:`~workbench.backends.BenchmarkResult` or its dict.
        recipe: How the variant was made (precision recipe settings), as a JSON-able dict.
        calibration: The calibration set (path or name), if any.
        calibration_method: ``"minmax"``, ``"entropy"``, ``"percentile"``...
        variant_path: The variant's ``.onnx`` (or engine) file; its size is recorded.
        **extra: Further columns (``notes``...), kept as given.

    Returns:
        The row dict (no ``id``/``created`` yet: :meth:`ResultsTable.add` sets them).
    """
    ev = _as_dict(evaluation)
    bench = _as_dict(benchmark)
    path = Path(variant_path).expanduser() if variant_path is not None else None
    row = {
        "model": model,
        "variant": variant or (path.stem if path is not None else model),
        "precision": precision,
        "backend": backend or bench.get("backend") or ev.get("backend"),
        "recipe": dict(recipe) if recipe is not None else None,
        "recipe_label": recipe_label(recipe),
        "calibration": None if calibration is None else str(calibration),
        "calibration_method": calibration_method,
        "samples": ev.get("samples"),
        "top1": ev.get("top1"),
        "top5": ev.get("top5"),
        "top1_agreement": ev.get("top1_agreement"),
        "min_cosine": ev.get("min_cosine"),
        "min_sqnr_db": _min_sqnr(ev),
        "metric": ev.get("metric"),
        "metric_value": _metric_value(evaluation, ev),
        "metric_unit": ev.get("metric_unit"),
        "mean_ms": bench.get("mean_ms"),
        "median_ms": bench.get("median_ms"),
        "p90_ms": bench.get("p90_ms"),
        "p99_ms": bench.get("p99_ms"),
        "p10_ms": bench.get("p10_ms"),
        "throughput": bench.get("throughput"),
        "batch": bench.get("batch_size"),
        "size_bytes": path.stat().st_size if path is not None and path.is_file() else None,
        "variant_path": None if path is None else str(path),
        "outputs": ev.get("outputs"),
        "versions": {**dict(ev.get("versions") or {}), **tool_versions()},
    }
    row.update(extra)
    return row


def _metric_value(evaluation: Any, ev: Mapping) -> float | None:
    """The evaluation's metric value; from the result object itself when there is one, so an infinite
    value (SQNR/PSNR of identical outputs) stays infinite (its JSON form writes None)."""
    scored = getattr(evaluation, "metric", None)
    value = getattr(scored, "value", None)
    return float(value) if isinstance(value, (int, float)) else ev.get("metric_value")


def _min_sqnr(ev: Mapping) -> float | None:
    """The lowest SQNR of an evaluation dict; inf when every output was identical (the JSON
    form writes infinite SQNR as None with ``identical: true``)."""
    outputs = ev.get("outputs") or {}
    if not outputs:
        return ev.get("min_sqnr_db")
    values = [math.inf if o.get("sqnr_db") is None and o.get("identical") else o.get("sqnr_db")
              for o in outputs.values()]
    values = [v for v in values if v is not None]
    return min(values) if values else None


def check_row(row: Mapping[str, Any]) -> dict:
    """Validate and normalize a row before it is stored.

    Args:
        row: Column -> value; ``model`` is required, the known numeric columns must be numbers
            (or None), and every value must be JSON-serializable.

    Returns:
        A copy with numpy scalars/arrays made plain, ``precision`` upper-cased and
        ``recipe_label`` filled in from ``recipe`` if missing.

    Raises:
        ResultsError: Naming the column and the problem.
    """
    if not isinstance(row, Mapping):
        raise ResultsError(f"a row must be a dict of column -> value, got {type(row).__name__}")
    out = {str(k): _plain(v) for k, v in row.items()}
    if not isinstance(out.get("model"), str) or not out["model"]:
        raise ResultsError("a row needs 'model': the original model's name, e.g. 'digits_cnn'")
    for column in NUMERIC_COLUMNS:
        value = out.get(column)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ResultsError(f"column '{column}' must be a number or None, got {value!r}")
    for column in ("top1", "top5", "top1_agreement"):
        value = out.get(column)
        if value is not None and math.isfinite(value) and not 0.0 <= value <= 1.0:
            raise ResultsError(
                f"column '{column}' is a fraction 0..1, got {value!r} (divide percentages by 100)"
            )
    if isinstance(out.get("precision"), str):
        out["precision"] = out["precision"].upper()
    if "recipe_label" not in out and "recipe" in out:
        out["recipe_label"] = recipe_label(out["recipe"])
    try:
        json.dumps(out)
    except (TypeError, ValueError) as err:
        raise ResultsError(f"the row is not JSON-serializable ({err}); store plain values") from err
    return out


def _plain(value: Any) -> Any:
    """numpy scalars/arrays and Paths as plain Python values, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


class ResultsTable:
    """The workspace's results, one JSON line per experiment; grows as the user tries things.

    Args:
        path: The JSON-lines file; default ``<workspace>/results.jsonl`` (the workspace is
            ``$WORKBENCH_WORKSPACE`` or ``<repo>/workspace``).

    Attributes:
        path: The file (created on the first :meth:`add`).
    """

    def __init__(self, path=None):
        self.path = Path(path).expanduser() if path is not None else workspace_dir() / RESULTS_FILE

    def __repr__(self) -> str:
        return f"ResultsTable({str(self.path)!r})"

    def __len__(self) -> int:
        return len(self.load())

    # -- reading -------------------------------------------------------------------------

    def load(self) -> list[dict]:
        """Read every row from the file (fresh from disk: other sessions may have added some).

        Returns:
            The rows as dicts, in the order they were added; damaged lines are skipped (see
            :meth:`frame` for the warnings).
        """
        rows, _warnings = read_rows(self.path)
        return rows

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame, the known columns first (missing ones filled with NaN/None).

        Returns:
            One row per experiment; ``attrs`` has ``path`` and ``warnings`` (damaged lines).
        """
        rows, warnings = read_rows(self.path)
        frame = rows_to_frame(rows)
        frame.attrs.update(path=str(self.path), warnings=warnings)
        return frame

    def get(self, row_id: str) -> dict:
        """The row with id ``row_id``.

        Raises:
            ResultsError: No such row.
        """
        for row in self.load():
            if row.get("id") == row_id:
                return row
        raise ResultsError(f"no row with id {row_id!r} in {self.path}")

    def filter(self, backend=None, precision=None, model=None, **equals) -> pd.DataFrame:
        """Rows whose columns equal the given values (a value or a list of accepted values).

        Args:
            backend, precision, model: Column filters (precision is case-insensitive).
            **equals: Any other column filters.

        Returns:
            The matching rows of :meth:`frame`.
        """
        return filter_frame(self.frame(), backend=backend, precision=precision, model=model, **equals)

    # -- writing -------------------------------------------------------------------------

    def add(self, row: Mapping[str, Any]) -> str:
        """Append a row (validated with :func:`check_row`) and save the file atomically.

        Args:
            row: Column -> value, e.g. from :func:`make_row`. ``id`` and ``created`` are set
                when absent.

        Returns:
            The row's id.

        Raises:
            ResultsError: An invalid row, or an id already in the table.
        """
        row = check_row(row)
        row.setdefault("id", new_row_id())
        row.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        row.setdefault("schema", SCHEMA_VERSION)
        with self._locked():
            text = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
            existing, _ = parse_rows(text)
            if any(r.get("id") == row["id"] for r in existing):
                raise ResultsError(f"a row with id {row['id']!r} is already in {self.path}")
            if text and not text.endswith("\n"):
                text += "\n"
            write_atomic(self.path, text + json.dumps(row) + "\n")
        return row["id"]

    def remove(self, row_id: str) -> None:
        """Delete the row with id ``row_id`` (other lines are kept byte for byte).

        Raises:
            ResultsError: No such row.
        """
        with self._locked():
            text = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
            kept, found = [], False
            for line in text.splitlines():
                try:
                    is_it = json.loads(line).get("id") == row_id
                except (ValueError, AttributeError):
                    is_it = False
                found |= is_it
                if not is_it:
                    kept.append(line)
            if not found:
                raise ResultsError(f"no row with id {row_id!r} in {self.path}")
            write_atomic(self.path, "".join(line + "\n" for line in kept))

    @contextlib.contextmanager
    def _locked(self):
        """Hold an exclusive lock on ``<file>.lock`` (POSIX; best effort elsewhere)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+b") as handle:
            try:
                import fcntl
            except ImportError:  # Windows: one user, one kernel at a time is the norm
                yield
                return
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def new_row_id() -> str:
    """A short random row id (12 hex digits), unique across sessions for practical purposes."""
    return uuid.uuid4().hex[:12]


def read_rows(path) -> tuple[list[dict], list[str]]:
    """Read a results file; a missing file is an empty table.

    Returns:
        ``(rows, warnings)`` as :func:`parse_rows`.
    """
    path = Path(path)
    if not path.is_file():
        return [], []
    return parse_rows(path.read_text(encoding="utf-8", errors="replace"), source=str(path))


def parse_rows(text: str, *, source: str = "results") -> tuple[list[dict], list[str]]:
    """Parse JSON lines tolerantly.

    Args:
        text: The file's text.
        source: For warnings.

    Returns:
        ``(rows, warnings)``: one dict per valid line (rows without an id get ``line-<n>``);
        one warning per line that is not a JSON object.
    """
    rows, warnings = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            warnings.append(f"{source}:{number}: skipped a damaged line ({err})")
            continue
        if not isinstance(row, dict):
            warnings.append(f"{source}:{number}: skipped a line that is not a JSON object")
            continue
        row.setdefault("id", f"line-{number}")
        rows.append(row)
    return rows, warnings


def rows_to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame with :data:`COLUMNS` first, then any extra columns in first-seen order.

    Numeric columns are floats (NaN where missing or not a number), text columns objects
    (None where missing), ``recipe``/``outputs``/``versions`` dicts (None where missing).
    ``recipe_label`` is filled in from ``recipe`` where a row lacks it.
    """
    rows = [dict(r) for r in rows]
    extras: list[str] = []
    for row in rows:
        extras.extend(k for k in row if k not in COLUMNS and k not in extras)
    columns = list(COLUMNS) + extras
    data = {c: [row.get(c) for row in rows] for c in columns}
    data["recipe_label"] = [
        label if isinstance(label, str) else recipe_label(row.get("recipe"))
        for label, row in zip(data["recipe_label"], rows)
    ]
    frame = pd.DataFrame({c: pd.Series(data[c], dtype=object) for c in columns}, columns=columns)
    for column in NUMERIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame.reset_index(drop=True)


def filter_frame(frame: pd.DataFrame, **equals) -> pd.DataFrame:
    """Rows of ``frame`` whose columns equal the given values; None means no filter.

    Args:
        frame: A results frame.
        **equals: Column -> value or list of accepted values. ``precision`` compares
            case-insensitively.

    Returns:
        The matching rows.

    Raises:
        ResultsError: A column the frame does not have.
    """
    mask = pd.Series(True, index=frame.index)
    for column, wanted in equals.items():
        if wanted is None:
            continue
        if column not in frame.columns:
            raise ResultsError(f"no column {column!r} to filter on; columns: {list(frame.columns)}")
        values = list(wanted) if isinstance(wanted, (list, tuple, set)) else [wanted]
        series = frame[column]
        if column == "precision":
            values = [str(v).upper() for v in values]
            series = series.map(lambda v: v.upper() if isinstance(v, str) else v)
        mask &= series.isin(values)
    return frame[mask]


# --------------------------------------------------------------------------------------------
# Pareto front
# --------------------------------------------------------------------------------------------


def pareto_mask(frame: pd.DataFrame, x: str = "median_ms", y: str = "top1", *,
                minimize_x: bool = True, maximize_y: bool = True) -> pd.Series:
    """Which rows no other row dominates (no worse in both ``x`` and ``y``, better in one).

    Rows missing ``x`` or ``y`` are never on the front. Rows with identical ``(x, y)`` are all
    on it when one of them is.

    Args:
        frame: The results.
        x: The cost column (latency by default).
        y: The benefit column (accuracy by default).
        minimize_x: Lower ``x`` is better (else higher).
        maximize_y: Higher ``y`` is better (else lower).

    Returns:
        A boolean Series aligned with ``frame``.

    Raises:
        ResultsError: A missing column.
    """
    for column in (x, y):
        if column not in frame.columns:
            raise ResultsError(f"no column {column!r} in the results; columns: {list(frame.columns)}")
    xs = pd.to_numeric(frame[x], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(frame[y], errors="coerce").to_numpy(dtype=float)
    cost = xs if minimize_x else -xs
    gain = ys if maximize_y else -ys
    valid = ~(np.isnan(cost) | np.isnan(gain))
    on_front = np.zeros(len(frame), dtype=bool)
    order = sorted(np.flatnonzero(valid), key=lambda i: (cost[i], -gain[i]))
    best_gain, best_cost = -np.inf, None
    for i in order:  # cost ascending; within a cost, gain descending
        if gain[i] > best_gain:
            best_gain, best_cost = gain[i], cost[i]
            on_front[i] = True
        elif gain[i] == best_gain and cost[i] == best_cost:
            on_front[i] = True  # a duplicate of a front point
    return pd.Series(on_front, index=frame.index, name="pareto")


def pareto_front(frame: pd.DataFrame, x: str = "median_ms", y: str = "top1", *,
                 minimize_x: bool = True, maximize_y: bool = True) -> pd.DataFrame:
    """The non-dominated rows: for latency vs accuracy, the best accuracy at each latency.

    Args:
        frame: The results.
        x, y, minimize_x, maximize_y: As :func:`pareto_mask`.

    Returns:
        The front's rows sorted by ``x`` (best first), so ``y`` improves monotonically along
        it: each row is better in ``y`` than the previous one and costs more in ``x``.
    """
    mask = pareto_mask(frame, x, y, minimize_x=minimize_x, maximize_y=maximize_y)
    front = frame[mask]
    return front.sort_values([x, y], ascending=[minimize_x, not maximize_y], kind="stable")


# --------------------------------------------------------------------------------------------
# How finely an evaluation set resolves accuracy
# --------------------------------------------------------------------------------------------

CONFIDENCE_Z = 1.96  # a 95 % interval


def wilson_interval(fraction, samples, z: float = CONFIDENCE_Z) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a fraction (top-1, top-5, agreement) measured on ``samples`` items.

    A top-1 of 99.4 % on 360 images is 358 of 360 right: one image more or less moves it by 0.28
    points, and the interval says how far the true accuracy can be from the measured one. Wilson's
    interval (not the normal approximation) stays inside 0..1 and is not zero-width at 0 or 100 %.

    Args:
        fraction: The measured fraction(s), 0..1 (scalar or array).
        samples: How many items it was measured on (scalar or array); NaN or <= 0 gives NaN bounds.
        z: The normal quantile of the confidence level (1.96: 95 %).

    Returns:
        ``(low, high)`` arrays of the interval's bounds (NaN where either input is missing).
    """
    p = np.asarray(pd.to_numeric(pd.Series(np.atleast_1d(fraction)), errors="coerce"), dtype=float)
    n = np.asarray(pd.to_numeric(pd.Series(np.atleast_1d(samples)), errors="coerce"), dtype=float)
    p, n = np.broadcast_arrays(p, n)
    n = np.where(n > 0, n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = 1.0 + z * z / n
        center = (p + z * z / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)


def front_within_noise(front: pd.DataFrame, y: str, *, samples: str = "samples",
                       z: float = CONFIDENCE_Z) -> pd.Series:
    """Which steps of a Pareto front the evaluation set cannot resolve.

    Along a front (as :func:`pareto_front` orders it, cheapest first) each row buys ``y`` with
    cost. A row's step is *within noise* when its ``y`` lies inside the Wilson interval
    (:func:`wilson_interval`) of the cheaper row before it: the data cannot tell the two apart,
    so the cheaper row is as good as far as this evaluation set can say.

    Args:
        front: One model's front, cheapest first.
        y: A fraction column (``top1``, ``top5``, ``top1_agreement``).
        samples: The column with each row's number of evaluated items.
        z: As :func:`wilson_interval`.

    Returns:
        A boolean Series aligned with ``front`` (the first row, and rows without a sample count, False).
    """
    flags = pd.Series(False, index=front.index, name="within_noise")
    if samples not in front.columns or len(front) < 2:
        return flags
    values = pd.to_numeric(front[y], errors="coerce").to_numpy(dtype=float)
    _low, high = wilson_interval(values, front[samples].to_numpy())
    for k in range(1, len(front)):
        flags.iloc[k] = bool(np.isfinite(high[k - 1]) and values[k] <= high[k - 1])
    return flags
