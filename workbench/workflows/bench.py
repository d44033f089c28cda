"""workbench bench: latency of a model or engine on a backend, as the CLI's JSON."""

from __future__ import annotations

from workbench.backends.tensorrt.runtime import load_engine
from workbench.datasets.arrays import load_data


def bench_engine(
    engine_path,
    *,
    data=None,
    batch: int | None = None,
    iterations: int = 200,
    warmup: int = 20,
    duration_s: float | None = None,
    cuda_graph: bool = False,
) -> dict:
    """Load an engine and benchmark it: the ``workbench bench ENGINE --backend tensorrt`` command.

    Args:
        engine_path: The engine file.
        data: An ``.npz`` with one array per engine input, samples along its ``__spec__`` sample
            axes (default: random inputs at the profile's opt shapes).
        batch: Samples per inference (first ``batch`` samples of the data, or the random batch).
        iterations, warmup, duration_s, cuda_graph: As :meth:`TensorRTEngine.benchmark`.

    Returns:
        ``{"engine": path, **BenchmarkResult.to_dict()}`` (JSON-ready).
    """
    engine = load_engine(engine_path)
    if data is not None:
        loaded = load_data(data, engine.input_names)  # batched along its __spec__ sample axes
        inputs = loaded.take(batch) if batch is not None else loaded.inputs
    else:
        inputs = engine.synthetic_inputs(batch=batch)
    result = engine.benchmark(inputs, iterations=iterations, warmup=warmup, duration_s=duration_s, cuda_graph=cuda_graph)
    return {"engine": str(engine.path), **result.to_dict()}
