"""The one table every engine view reads: a row per executed layer.

Every source (ONNX Runtime, TensorRT JSON exported by trtexec or the engine inspector, a live
TensorRT engine) produces a :class:`pandas.DataFrame` with the columns below, built through
:func:`make_layer_table`, so views and analyses never care where an engine came from.

Columns
-------
name : str
    The layer's name as the backend reports it (unique within a table).
type : str
    The layer's type as the backend reports it (``CaskConvolution``, ``Reformat``, ``Conv``...).
inputs, outputs : list of dict
    One dict per tensor: ``name``, ``dtype`` (``FP32``, ``FP16``, ``INT8``...; None if unknown),
    ``format`` (memory layout text if known) and ``shape`` (list, may be None); sources may add
    ``layout`` (``LINEAR``, ``CHW32``...) and ``location`` (``Device``/``Host``).
input_precision, output_precision : str or None
    The distinct dtypes of the inputs / outputs joined by ``+`` (``"INT8"``, ``"FP32+INT8"``).
precision : str or None
    The precision the layer computes in, as well as can be told (for TensorRT: the weights' type
    if the layer has weights, else its first input's dtype).
tactic : str or None
    Kernel or tactic name where the backend reports one.
onnx_nodes : list of str
    The original ONNX node names this layer implements. Fused layers list several; layers the
    backend inserted (reformats, copies, memcpy) list none.
inserted : bool
    True for layers that no ONNX node asked for (reformat/copy layers TensorRT inserts,
    MemcpyToHost nodes ONNX Runtime inserts).
source : str
    ``"onnxruntime"``, ``"tensorrt"`` (live) or ``"trt-json"`` (imported).

Sources may add columns of their own (TensorRT JSON: ``weights_dtype``, ``origin``,
``trt_percentage``...); views must not require them.

Profiled tables add:

time_ms : float
    Mean time per inference of this layer, in milliseconds.
median_ms : float
    Median time per inference, in milliseconds (NaN where the source has none).
share : float
    Percent (0-100) of the *sum of layer times*; not a share of end-to-end latency.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

LAYER_COLUMNS = (
    "name",
    "type",
    "inputs",
    "outputs",
    "input_precision",
    "output_precision",
    "precision",
    "tactic",
    "onnx_nodes",
    "inserted",
    "source",
)
PROFILE_COLUMNS = ("time_ms", "median_ms", "share")

_DEFAULTS = {
    "type": None,
    "inputs": None,
    "outputs": None,
    "input_precision": None,
    "output_precision": None,
    "precision": None,
    "tactic": None,
    "onnx_nodes": None,
    "inserted": False,
    "source": None,
}


def make_layer_table(records: Iterable[Mapping], attrs: Mapping | None = None) -> pd.DataFrame:
    """Build a layer table from per-layer records, filling absent columns with defaults.

    Args:
        records: One mapping per executed layer, in execution order. ``name`` is required;
            other known columns default as documented in this module; extra keys are kept
            as extra columns.
        attrs: Table-wide facts (source file, TensorRT version, warnings...) stored in
            ``DataFrame.attrs``.

    Returns:
        A DataFrame with at least :data:`LAYER_COLUMNS` (and :data:`PROFILE_COLUMNS` when any
        record carries ``time_ms``), one row per layer.
    """
    rows = []
    for i, record in enumerate(records):
        if "name" not in record or record["name"] is None:
            raise ValueError(f"layer record {i} has no 'name': {dict(record)!r}")
        row = dict(_DEFAULTS)
        row.update(record)
        row["inputs"] = list(row["inputs"] or [])
        row["outputs"] = list(row["outputs"] or [])
        row["onnx_nodes"] = list(row["onnx_nodes"] or [])
        row["inserted"] = bool(row["inserted"])
        rows.append(row)
    columns = list(LAYER_COLUMNS)
    if any("time_ms" in r for r in rows):
        columns += list(PROFILE_COLUMNS)
    extra = [k for r in rows for k in r if k not in columns]
    columns += list(dict.fromkeys(extra))
    # object dtype keeps None as None (pandas 3 would turn text columns into strings with NaN)
    table = pd.DataFrame(rows, columns=columns, dtype=object)
    table["inserted"] = table["inserted"].astype(bool)
    if "time_ms" in table:
        table["time_ms"] = table["time_ms"].astype(float)
        table["median_ms"] = table["median_ms"].astype(float)
        table["share"] = table["share"].astype(float)
    table.attrs.update(dict(attrs or {}))
    table.attrs.setdefault("warnings", [])
    return table


def precision_of(dtypes: Iterable[str | None]) -> str | None:
    """Join the distinct known dtypes of some tensors into one label (``"FP32+INT8"``)."""
    known = sorted({d for d in dtypes if d})
    return "+".join(known) if known else None


def add_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with ``share`` recomputed as percent of the summed ``time_ms``."""
    out = table.copy()
    total = out["time_ms"].sum()
    out["share"] = 100.0 * out["time_ms"] / total if total > 0 else 0.0
    return out


def table_records(table: pd.DataFrame) -> list[dict]:
    """The table as JSON-ready records: NaN becomes None, numpy scalars plain Python."""
    records = []
    for row in table.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, float) and value != value:  # NaN
                value = None
            elif hasattr(value, "item") and not isinstance(value, (list, dict)):
                value = value.item()
            clean[key] = value
        records.append(clean)
    return records


def table_totals(table: pd.DataFrame) -> dict:
    """Headline counts of a table: layers, inserted layers, and total layer time if profiled."""
    totals = {
        "layers": int(len(table)),
        "inserted_layers": int(table["inserted"].sum()),
        "fused_layers": int((table["onnx_nodes"].map(len) > 1).sum()),
    }
    if "time_ms" in table:
        totals["total_layer_time_ms"] = float(table["time_ms"].sum())
    return totals
