"""Measure a served model through ``tritonclient``: latency percentiles and throughput per
concurrency level, the server's own queue and compute times, accuracy of the served outputs, and
rows for the results table (backend ``"triton"``) so served latency sits on the tradeoff plot.

:class:`TritonEngine` wraps a served model as an engine (``run(inputs) -> outputs``), so
:func:`workbench.evaluate` scores what the server returns exactly as it scores ONNX Runtime.

``perf_analyzer`` (Triton's own load generator) is not used here: its wheel needs a newer glibc
than these machines have. Where it runs, :func:`perf_analyzer_rows` turns its ``-f`` CSV into the
same rows.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from workbench.analysis.accuracy import evaluate
from workbench.datasets.arrays import load_labelled, synthetic_inputs
from workbench.errors import WorkbenchError
from workbench.tables.results import ResultsTable, make_row
from workbench.workflows.triton.config import TritonUnavailable
from workbench.workflows.triton.export import read_record

STAT_PHASES = ("queue", "compute_input", "compute_infer", "compute_output")
PERCENTILES = (50, 90, 95, 99)


class TritonRequestError(WorkbenchError, RuntimeError):
    """The server refused or failed a request; the message carries Triton's own error."""


def parse_url(url: str, protocol: str | None = None) -> tuple[str, str]:
    """``(protocol, host:port)`` from ``http://h:p``, ``grpc://h:p`` or ``h:p`` (HTTP unless told)."""
    text = str(url).strip().rstrip("/")
    for scheme in ("http", "grpc"):
        if text.startswith(f"{scheme}://"):
            return protocol or scheme, text[len(scheme) + 3:]
    if "://" in text:
        raise TritonRequestError(f"{url}: only http:// and grpc:// URLs are served by Triton here.")
    return protocol or "http", text


def _client_module(protocol: str):
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        elif protocol == "http":
            import tritonclient.http as module
        else:
            raise TritonRequestError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
    except ImportError as err:
        raise TritonUnavailable(f"tritonclient is not installed ({err}). Fix: pip install -e '.[triton]'.") from err
    return module


class TritonEngine:
    """A model served by Triton, used like any workbench engine: ``run(inputs) -> {output: array}``.

    Args:
        url: The server (``http://127.0.0.1:8000``, ``grpc://127.0.0.1:8001`` or ``host:port``).
        model: The model's name in the repository.
        version: A version ("" for the server's choice, the highest).
        protocol: ``"http"`` or ``"grpc"`` (default: from the URL).

    Attributes:
        input_names, output_names: From the server's model metadata.
        input_shapes: Input name -> shape with ``None`` for dynamic dimensions.
        max_batch_size: From the served config.
    """

    backend = "triton"

    def __init__(self, url: str, model: str, *, version: str = "", protocol: str | None = None):
        from tritonclient.utils import InferenceServerException

        self.protocol, self.address = parse_url(url, protocol)
        self.model, self.version = model, str(version or "")
        self._module = _client_module(self.protocol)
        self._error = InferenceServerException
        self.client = self._module.InferenceServerClient(self.address)
        try:
            metadata = self._json(self.client.get_model_metadata(model, self.version, **self._as_json()))
            config = self._json(self.client.get_model_config(model, self.version, **self._as_json()))
        except InferenceServerException as err:
            raise TritonRequestError(f"Triton at {url} does not serve model '{model}': {err.message()}. Fix: check "
                                     "the name (workbench serve lists the models it serves).") from err
        config = config.get("config", config)
        self.max_batch_size = int(config.get("max_batch_size") or 0)
        self.datatypes = {t["name"]: t["datatype"] for t in metadata["inputs"]}
        self.input_names = [t["name"] for t in metadata["inputs"]]
        self.output_names = [t["name"] for t in metadata["outputs"]]
        self.input_shapes = {t["name"]: [None if int(d) < 0 else int(d) for d in t["shape"]] for t in metadata["inputs"]}

    def _as_json(self) -> dict:
        return {"as_json": True} if self.protocol == "grpc" else {}

    @staticmethod
    def _json(value) -> dict:
        return value if isinstance(value, dict) else {}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One inference request with these arrays (batch dimension first when batching).

        Raises:
            TritonRequestError: Triton's error for the request (e.g. a batch over max_batch_size).
        """
        from tritonclient.utils import np_to_triton_dtype

        requests = []
        for name in self.input_names:
            array = np.ascontiguousarray(inputs[name])
            tensor = self._module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            requests.append(tensor)
        outputs = [self._module.InferRequestedOutput(name) for name in self.output_names]
        try:
            result = self.client.infer(self.model, requests, model_version=self.version, outputs=outputs)
        except self._error as err:
            raise TritonRequestError(self._explain(err.message() or str(err), inputs)) from err
        return {name: result.as_numpy(name) for name in self.output_names}

    def _explain(self, message: str, inputs: Mapping[str, np.ndarray]) -> str:
        batch = next(iter(inputs.values())).shape[0] if inputs else 0
        text = f"Triton refused the request to '{self.model}': {message}"
        if "batch-size must be" in message or "batch size" in message.lower():
            text += (f". The request held {batch} samples; this model takes at most {self.max_batch_size} per request "
                     "(its max_batch_size): send smaller batches, or export with a larger --max-batch-size.")
        return text

    def statistics(self) -> dict:
        """The server's statistics for this model (Triton's statistics extension), as a dict."""
        stats = self._json(self.client.get_inference_statistics(self.model, self.version, **self._as_json()))
        return (stats.get("model_stats") or [{}])[0]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "TritonEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------


def perf(url: str, model: str, *, concurrency: Sequence[int] = (1, 2, 4, 8), data=None, batch: int = 1,
         duration_s: float = 2.0, warmup_requests: int = 5, protocol: str | None = None, version: str = "",
         reference=None, evaluate_data: bool = True) -> dict:
    """Latency and throughput of a served model at each concurrency level, with the server's view.

    Each level runs ``concurrency`` client threads, each with its own connection, sending requests
    of ``batch`` samples back to back for ``duration_s`` seconds (after ``warmup_requests``
    untimed ones). Latency is per request, from send to response, as the client sees it.

    Args:
        url, model, version, protocol: The served model (see :class:`TritonEngine`).
        concurrency: The concurrency levels.
        data: Real samples (``.npz`` path or arrays; ``labels`` optional); None: random inputs.
        batch: Samples per request.
        duration_s: Measured seconds per level.
        warmup_requests: Untimed requests per thread before each level.
        reference: An ONNX model to compare the served outputs with (e.g. the FP32 model).
        evaluate_data: Score the served outputs on ``data`` (top-1 when it has labels).

    Returns:
        ``{"url", "model", "protocol", "batch", "levels": [...], "evaluation": {...} | None}``;
        each level has ``concurrency``, ``requests``, ``samples``, ``seconds``, ``throughput``
        (samples/s), ``requests_per_s``, ``mean_ms``, ``median_ms``, ``p90_ms``, ``p95_ms``,
        ``p99_ms``, ``min_ms``, ``max_ms``, and ``server`` (per-request averages of Triton's
        ``queue``/``compute_input``/``compute_infer``/``compute_output`` in ms, ``executions``
        and ``avg_batch``: the batch the server ran, larger than ``batch`` when the dynamic
        batcher joined requests).

    Raises:
        TritonRequestError: A request failed (Triton's message); bad arguments.
    """
    levels = [int(c) for c in concurrency]
    if not levels or min(levels) < 1 or int(batch) < 1 or duration_s <= 0:
        raise TritonRequestError(f"concurrency levels and batch must be >= 1 and duration > 0; got {concurrency}, "
                                 f"{batch}, {duration_s}.")
    with TritonEngine(url, model, version=version, protocol=protocol) as engine:
        if engine.max_batch_size and batch > engine.max_batch_size:
            raise TritonRequestError(f"batch {batch} is over '{model}''s max_batch_size {engine.max_batch_size}. "
                                     f"Fix: --batch {engine.max_batch_size} or less.")
        inputs, labels = _inputs(engine, data, batch)
        evaluation = None
        if data is not None and evaluate_data:
            size = min(engine.max_batch_size or 1, 32) if engine.max_batch_size else 1
            evaluation = evaluate(engine, (inputs, labels), reference, batch_size=size).to_dict()
        results = []
        for level in levels:
            timing, before = _run_level(engine, url, inputs, batch, level, duration_s, warmup_requests)
            results.append({**timing, "server": _server_delta(before, engine.statistics())})
    return {"url": url, "model": model, "protocol": engine.protocol, "batch": int(batch),
            "data": None if data is None else str(data) if not isinstance(data, (Mapping, tuple)) else "arrays",
            "duration_s": float(duration_s), "levels": results, "evaluation": evaluation}


triton_perf = perf  # the name the workbench.workflows face exports


def _inputs(engine: TritonEngine, data, batch: int) -> tuple[dict, np.ndarray | None]:
    if data is not None:
        inputs, labels, _source = load_labelled(data, engine.input_names)
        return inputs, labels
    specs = [{"name": n, "shape": [batch] + [d or 1 for d in engine.input_shapes[n][1:]] if engine.max_batch_size
              else [d or 1 for d in engine.input_shapes[n]],
              "dtype": str(_np_dtype(engine.datatypes[n]))} for n in engine.input_names]
    return synthetic_inputs(specs, batch=batch), None


def _np_dtype(datatype: str):
    from tritonclient.utils import triton_to_np_dtype

    return np.dtype(triton_to_np_dtype(datatype))


def _batches(inputs: Mapping[str, np.ndarray], batch: int, offset: int) -> list[dict]:
    """Request payloads cut from the data, starting at ``offset`` (each thread its own samples)."""
    count = next(iter(inputs.values())).shape[0]
    out = []
    for start in range(0, max(count, batch), batch):
        index = (np.arange(start, start + batch) + offset) % count
        out.append({n: np.ascontiguousarray(a[index]) for n, a in inputs.items()})
        if len(out) >= 64:
            break
    return out


def _run_level(engine: TritonEngine, url, inputs, batch, threads, duration_s, warmup) -> tuple[dict, dict]:
    """Run one concurrency level; returns its timing and the server statistics at its start."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    window = {}
    # Two barriers: every thread has warmed up; then this thread (whose client must stay on this
    # thread: tritonclient's HTTP client is gevent-based) snapshots the statistics and opens the window.
    warmed, released = threading.Barrier(threads + 1), threading.Barrier(threads + 1)

    def worker(slot: int) -> None:
        try:
            with TritonEngine(url, engine.model, version=engine.version, protocol=engine.protocol) as client:
                payloads = _batches(inputs, batch, offset=slot * batch)
                for i in range(warmup):
                    client.run(payloads[i % len(payloads)])
                warmed.wait()
                released.wait()
                i = 0
                while time.perf_counter() < window["stop"]:
                    started = time.perf_counter()
                    client.run(payloads[i % len(payloads)])
                    latencies[slot].append(time.perf_counter() - started)
                    i += 1
        except BaseException as err:  # reported below, after every thread stopped
            errors.append(err)
            warmed.abort()
            released.abort()

    pool = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in range(threads)]
    for thread in pool:
        thread.start()
    try:
        warmed.wait()
        window["stats"] = engine.statistics()
        window["start"] = time.perf_counter()
        window["stop"] = window["start"] + duration_s
        released.wait()
    except threading.BrokenBarrierError:
        pass
    for thread in pool:
        thread.join()
    if errors:
        first = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        raise first if isinstance(first, WorkbenchError) else TritonRequestError(str(first))
    seconds = time.perf_counter() - window["start"]
    timing = _summary(np.concatenate([np.asarray(x) for x in latencies]) * 1e3, threads, batch, seconds)
    return timing, window["stats"]


def _summary(ms: np.ndarray, threads: int, batch: int, seconds: float) -> dict:
    requests = int(ms.size)
    stats = {f"p{p}_ms": float(np.percentile(ms, p)) for p in PERCENTILES if p != 50} if requests else {}
    return {
        "concurrency": threads, "requests": requests, "samples": requests * batch, "seconds": seconds,
        "throughput": requests * batch / seconds if seconds > 0 else float("nan"),
        "requests_per_s": requests / seconds if seconds > 0 else float("nan"),
        "mean_ms": float(ms.mean()) if requests else float("nan"),
        "median_ms": float(np.median(ms)) if requests else float("nan"),
        **stats,
        "min_ms": float(ms.min()) if requests else float("nan"),
        "max_ms": float(ms.max()) if requests else float("nan"),
        "batch_size": batch,
    }


def _server_delta(before: Mapping, after: Mapping) -> dict:
    """Per-request averages of the server's phases between two statistics snapshots (ms)."""
    def total(stats, phase, key):
        return int((((stats.get("inference_stats") or {}).get(phase) or {}).get(key)) or 0)

    requests = total(after, "success", "count") - total(before, "success", "count")
    out: dict[str, Any] = {"requests": requests}
    for phase in STAT_PHASES:
        ns = total(after, phase, "ns") - total(before, phase, "ns")
        out[f"{phase}_ms"] = ns / requests / 1e6 if requests else None
    executions = int(after.get("execution_count") or 0) - int(before.get("execution_count") or 0)
    inferences = int(after.get("inference_count") or 0) - int(before.get("inference_count") or 0)
    out["executions"] = executions
    out["avg_batch"] = inferences / executions if executions else None
    return out


# --------------------------------------------------------------------------------------------
# Rows for the results table
# --------------------------------------------------------------------------------------------


def perf_rows(result: Mapping, *, repository=None, model: str | None = None, variant: str | None = None,
              precision: str | None = None, variant_path=None) -> list[dict]:
    """One results row per concurrency level of a :func:`perf` result (backend ``"triton"``).

    Args:
        result: From :func:`perf`.
        repository: The model repository served, to read the export record (original model,
            variant, precision, file) from ``<repository>/<model>/workbench.json``.
        model, variant, precision, variant_path: Override what the record says.

    Returns:
        :func:`~workbench.tables.results.make_row` rows with extra columns ``concurrency``,
        ``protocol``, ``served_model``, ``url``, ``requests``, ``p95_ms``, ``server_queue_ms``,
        ``server_compute_ms``, ``server_avg_batch``.
    """
    record = read_record(Path(repository) / result["model"]) if repository is not None else {}
    served = result["model"]
    model = model or record.get("model") or served
    variant = variant or record.get("variant") or served
    rows = []
    for level in result["levels"]:
        server = level.get("server") or {}
        compute = [server.get(f"{p}_ms") for p in ("compute_input", "compute_infer", "compute_output")]
        rows.append(make_row(
            model=model, variant=f"{variant} @triton c{level['concurrency']}",
            precision=precision or record.get("precision"), backend="triton",
            evaluation=result.get("evaluation"), benchmark=level,
            variant_path=variant_path or record.get("source"),
            concurrency=level["concurrency"], protocol=result["protocol"], served_model=served, url=result["url"],
            requests=level["requests"], p95_ms=level.get("p95_ms"),
            server_queue_ms=server.get("queue_ms"),
            server_compute_ms=sum(c for c in compute if c is not None) if any(c is not None for c in compute) else None,
            server_avg_batch=server.get("avg_batch"),
            notes=f"served by Triton ({result['protocol']}), {level['concurrency']} concurrent client(s), "
                  f"batch {level['batch_size']} per request; latency per request as the client sees it",
        ))
    return rows


def add_rows(rows: Sequence[Mapping], table: ResultsTable | None = None) -> list[str]:
    """Add rows to the results table (default: the workspace's); returns their ids."""
    table = table if table is not None else ResultsTable()
    return [table.add(row) for row in rows]


# perf_analyzer -f CSV columns (microseconds) -> our names; "Concurrency" or "Request Rate" leads.
_CSV_COLUMNS = {
    "p50 latency": "median_ms", "p90 latency": "p90_ms", "p95 latency": "p95_ms", "p99 latency": "p99_ms",
    "Avg latency": "mean_ms", "Server Queue": "queue_ms", "Server Compute Input": "compute_input_ms",
    "Server Compute Infer": "compute_infer_ms", "Server Compute Output": "compute_output_ms",
}


def read_perf_analyzer_csv(path_or_text, *, batch: int = 1) -> list[dict]:
    """The levels of a ``perf_analyzer -f perf.csv`` file, in :func:`perf`'s level format.

    Args:
        path_or_text: The CSV file or its text (columns as perf_analyzer writes them, latencies
            in microseconds; rows sorted by throughput, as it writes them).
        batch: The ``-b`` batch size perf_analyzer ran with (``Inferences/Second`` counts samples).

    Raises:
        TritonRequestError: Not perf_analyzer's CSV (the columns it needs are missing).
    """
    text = Path(path_or_text).read_text(encoding="utf-8") if isinstance(path_or_text, Path) or (
        isinstance(path_or_text, str) and "\n" not in path_or_text) else str(path_or_text)
    reader = csv.DictReader(io.StringIO(text))
    lead = next((c for c in ("Concurrency", "Request Rate") if c in (reader.fieldnames or [])), None)
    if lead is None or "Inferences/Second" not in (reader.fieldnames or []):
        raise TritonRequestError(f"not a perf_analyzer -f CSV (columns {reader.fieldnames}); run perf_analyzer "
                                 "-m MODEL --concurrency-range 1:8 -f perf.csv and pass perf.csv.")
    levels = []
    for row in reader:
        level: dict[str, Any] = {"concurrency": float(row[lead]), "throughput": float(row["Inferences/Second"]),
                                 "batch_size": int(batch), "requests": None}
        level["requests_per_s"] = level["throughput"] / batch
        server = {}
        for column, key in _CSV_COLUMNS.items():
            if row.get(column) not in (None, ""):
                value = float(row[column]) / 1000.0
                (server if key.endswith(("queue_ms", "input_ms", "infer_ms", "output_ms")) else level)[key] = value
        level["server"] = server
        if level["concurrency"].is_integer():
            level["concurrency"] = int(level["concurrency"])
        levels.append(level)
    return sorted(levels, key=lambda lv: lv["concurrency"])


def perf_analyzer_rows(csv_path, *, url: str = "", model: str, protocol: str = "http", batch: int = 1,
                       **row_args) -> list[dict]:
    """Results rows from perf_analyzer's CSV, the same shape :func:`perf_rows` makes."""
    levels = read_perf_analyzer_csv(csv_path, batch=batch)
    result = {"url": url, "model": model, "protocol": protocol, "levels": levels, "evaluation": None}
    return perf_rows(result, **row_args)
