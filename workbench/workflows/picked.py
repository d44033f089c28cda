"""A picked model and the data it runs on: what the notebooks' steps take when a user brings a model.

The model picker (:mod:`workbench.views.model_picker`) holds a :class:`Picked`: the loaded model
and its :class:`PickedData`, chosen in this order:

1. an ``.npz`` the user gave (a path or an upload), checked against the model's inputs;
2. a sample model's own evaluation split, for the sample models;
3. random inputs shaped like the model's inputs, saying so (their "accuracy" means nothing; a
   dynamic dim other than the batch is refused, never guessed: give an ``.npz`` then).

Labels are optional: with labels the check is the task metric (top-1 for class scores); without,
it is the agreement of the optimized engine with the graph run as written (FP32 against FP32,
through the metrics of :mod:`workbench.analysis.metrics`). Input and output names always come
from the model, never from a sample's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.analysis.accuracy import evaluate
from workbench.backends import get_backend
from workbench.datasets.arrays import (
    SPEC_KEY,
    ModelData,
    check_model_inputs,
    load_data,
    spec_array,
    synthetic_inputs,
)
from workbench.doctor.diagnose import diagnose
from workbench.precision.variants import make_variant
from workbench.samples import SAMPLE_DIR, sample_data_path
from workbench.workflows.sweep import accuracy_table, measure_variants

SYNTHETIC_SAMPLES = 32


@dataclass
class PickedData:
    """The data a picked model runs on.

    Attributes:
        data: The inputs (named after the model's inputs), their sample axes and labels or None.
        synthetic: True when the inputs are random (no data was given and the model has none).
        note: One sentence for the reader: where the data comes from and what it allows.
    """

    data: ModelData
    synthetic: bool
    note: str

    @property
    def inputs(self) -> dict:
        return self.data.inputs

    @property
    def labels(self):
        return self.data.labels

    @property
    def num_samples(self) -> int:
        return self.data.num_samples

    def take(self, count: int) -> dict:
        """The first ``count`` samples (fewer when the data holds fewer) of every input."""
        return self.data.take(min(int(count), self.num_samples))

    def calibration(self, count: int) -> dict:
        """The first ``count`` samples as calibration arrays, with their data description (``__spec__``)
        so inputs whose samples do not run along axis 0 are cut and read right."""
        return {**self.take(count), SPEC_KEY: spec_array(self.data.sample_axes)}


@dataclass
class Picked:
    """A loaded model and its data, as the picker hands them to the steps that follow it.

    Attributes:
        model: The :class:`workbench.model.LoadedModel`.
        data: Its :class:`PickedData`.
    """

    model: Any
    data: PickedData

    @property
    def name(self) -> str:
        return self.model.name

    def feed(self, count: int = 32) -> dict:
        """One batch of up to ``count`` samples; a model whose batch dim is fixed gets its own size."""
        for spec in self.model.summary.inputs:
            shape = spec.get("shape") or []
            axis = self.data.data.sample_axes.get(spec["name"], 0)
            if axis is not None and len(shape) > axis and isinstance(shape[axis], int) and shape[axis] > 0:
                count = shape[axis]
                break
        return self.data.take(count)


def sample_name_of(model) -> str | None:
    """The sample model's name when ``model`` is one of ``sample_models/``, else None."""
    path = Path(model.path).resolve()
    return path.stem if path.parent == SAMPLE_DIR.resolve() else None


def data_for(model, data=None, *, samples: int = SYNTHETIC_SAMPLES, seed: int = 0) -> PickedData:
    """The data ``model`` runs on: ``data`` if given, a sample's own split, else random inputs.

    Args:
        model: A :class:`workbench.model.LoadedModel`.
        data: An ``.npz`` path or a :class:`ModelData` the user chose, or None.
        samples: How many random samples to make when there is no data.
        seed: Their random seed.

    Returns:
        The :class:`PickedData`.

    Raises:
        InputDataError: The given data lacks a model input or does not fit its shapes, or no
            data was given and an input has a dynamic dim other than the batch (not guessed).
    """
    if data is not None:
        loaded = load_data(data, model.input_names, what="evaluation")
        check_model_inputs(loaded.inputs, model.summary.inputs, loaded.sample_axes, source=loaded.source)
        labelled = "with labels" if loaded.labels is not None else "without labels (checks compare with FP32)"
        return PickedData(loaded, False, f"{loaded.num_samples} samples from {Path(loaded.source).name}, {labelled}.")
    sample = sample_name_of(model)
    if sample is not None:
        try:
            path = sample_data_path(sample, "eval")
        except ValueError:
            path = None
        if path is not None:
            loaded = load_data(path, model.input_names, what="evaluation")
            return PickedData(loaded, False, f"{loaded.num_samples} held-out samples from the sample's own "
                                             f"{path.name}, with labels.")
    inputs = synthetic_inputs(model.summary.inputs, batch=samples, seed=seed)
    loaded = load_data((inputs, None), model.input_names)
    return PickedData(loaded, True, f"No data given: {samples} random samples shaped like the model's inputs "
                                    "(synthetic: timing and fusion are real, accuracy cannot be measured; pick "
                                    "an .npz with the model's input names, and labels if you have them).")


class Text(str):
    """A line of text that a notebook shows as plain text (not as a quoted string)."""

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def describe_picked(picked: Picked) -> Text:
    """One line on the model (nodes, parameters, FLOPs or why unknown) and one on its data."""
    summary = picked.model.summary
    flops = (f"{summary.flops / 1e6:.2f} MFLOPs per sample" if summary.flops is not None
             else f"FLOPs unknown ({summary.flops_unknown_reason})")
    inputs = ", ".join(f"{t['name']} {t['shape']}" for t in summary.inputs)
    outputs = ", ".join(f"{t['name']} {t['shape']}" for t in summary.outputs)
    return Text(f"{picked.name}: {summary.node_count} nodes, {summary.parameters:,} parameters, {flops}\n"
                f"inputs: {inputs}; outputs: {outputs}\n"
                f"data: {picked.data.note}")


def check_picked(picked: Picked) -> Text:
    """Run the model on its data and check it: the task metric with labels, else FP32 agreement.

    With labels (and class-score outputs): top-1 accuracy, worded as the tour always did for the
    digits samples. Without labels: ONNX Runtime's optimized engine against the graph run as
    written (no optimizations), with the metric :func:`~workbench.analysis.metrics.default_metric`
    picks for the first output (agreement for class scores, SQNR otherwise).

    Returns:
        The result as one or two lines of text.
    """
    ort = get_backend("onnxruntime")
    model, data = picked.model, picked.data
    optimized = ort.build(model, {"graph_optimization_level": "all"})
    shapes = ", ".join(f"{name} {list(array.shape)}" for name, array in optimized.run(data.take(1)).items())
    if data.labels is not None:
        result = evaluate(optimized, data.data, compare_outputs=False)
        if result.top1 is not None:
            what = "digits" if (sample_name_of(model) or "").startswith("digits") else "samples"
            return Text(f"top-1 accuracy on {result.samples} held-out {what}: {result.top1:.2%}")
        metric = result.metric
        return Text(f"{metric.name} on {result.samples} labelled samples: {metric.value:.4g} {metric.unit}".rstrip())
    plain = ort.build(model, {"graph_optimization_level": "disable"})
    result = evaluate(optimized, data.data, reference=plain)
    metric = result.metric
    source = "random samples" if data.synthetic else "samples"
    return Text(f"No labels, so no accuracy: on {result.samples} {source}, the optimized engine's outputs "
                f"({shapes} for one sample) against the graph run as written: {metric.name} "
                f"{metric.value:.4g} {metric.unit} (the FP32 reference every variant is compared with).")


def latency_picked(picked: Picked, *, batch: int = 32, iterations: int = 300, warmup: int = 30) -> Text:
    """Benchmark the picked model on ONNX Runtime (this machine's CPU unless a GPU provider is there).

    Returns:
        One line: batch, median and p10-p90 latency, throughput, and the provider it ran on.
    """
    engine = get_backend("onnxruntime").build(picked.model)
    result = engine.benchmark(picked.feed(batch), iterations=iterations, warmup=warmup)
    provider = result.settings["providers"][0]
    spread = "" if result.p10_ms is None else f" (p10-p90 {result.p10_ms:.3f}-{result.p90_ms:.3f} ms)"
    where = " (CPU latency: not what TensorRT on a GPU would give)" if provider == "CPUExecutionProvider" else ""
    return Text(f"batch {result.batch_size}: median {result.median_ms:.3f} ms{spread}, p99 {result.p99_ms:.3f} ms, "
                f"{result.throughput:,.0f} samples/s on {provider}{where}")


def precision_picked(picked: Picked, precisions=("fp16", "bf16", "int8"), *, calib_samples: int = 256,
                     progress: bool = False):
    """Variants of the picked model and their accuracy against its FP32 self, on the picked data.

    INT8 is calibrated on the first ``calib_samples`` samples of the picked data (the only data
    there is; for a real evaluation calibrate on other samples than you evaluate on, as notebook 02
    does with the samples' calib split).

    Args:
        picked: The model and data (:class:`Picked`).
        precisions: The variants to make beside FP32.
        calib_samples: Calibration samples for INT8/FP8.
        progress: Show calibration progress bars.

    Returns:
        ``(note, table)``: one line on what was compared, and :func:`accuracy_table`'s frame (top-1
        against the labels when there are any; agreement, cosine and SQNR against FP32 always).
    """
    model, data = picked.model, picked.data
    calib = data.calibration(calib_samples)
    variants = {"fp32": make_variant(model, "fp32", progress=progress)}
    for precision in precisions:
        variants[precision] = make_variant(model, precision, calib, progress=progress)
    table = accuracy_table(variants, data.data, reference=model.path)
    judged = ("top-1 against the labels" if data.labels is not None and table["top1"].notna().any()
              else "no labels: agreement with FP32 (top1_agreement), cosine and SQNR")
    origin = "random inputs (synthetic)" if data.synthetic else "the picked data"
    note = Text(f"{picked.name}: {', '.join(variants)} on {data.num_samples} samples of {origin}; {judged}; "
                f"INT8 calibrated on the first {min(calib_samples, data.num_samples)} of them.")
    return note, table


def doctor_picked(picked: Picked, *, calib_samples: int = 256, target_drop: float | None = None,
                  progress: bool = False):
    """The INT8 doctor on the picked model and data (labels optional: agreement with FP32 without).

    Args:
        picked: The model and data.
        calib_samples: Calibration samples (the first of the picked data).
        target_drop: The allowed drop in the metric's unit (None: the metric's default).
        progress: Show progress bars.

    Returns:
        ``(summary, culprits)``: the doctor's summary lines as text and its culprits, worst first.
    """
    data = picked.data
    result = diagnose(picked.model.path, data.calibration(calib_samples), data.data, target_drop=target_drop,
                      progress=progress)
    lines = list(result.summary())
    if data.synthetic:
        lines.insert(0, "On random inputs (no data picked): the mechanics are real, the verdict is not.")
    return Text("\n".join(lines)), result.culprits_frame()


def tradeoff_rows(picked: Picked, recipes=("fp32", "fp16", "bf16", "int8"), *, calib_samples: int = 256,
                  iterations: int = 50, table=None, progress: bool = False) -> list[dict]:
    """Measure the picked model's variants for accuracy and latency (ONNX Runtime): results rows.

    Args:
        picked: The model and data.
        recipes: Recipes or precision names.
        calib_samples: Calibration samples (the first of the picked data).
        iterations: Benchmark iterations per variant.
        table: A :class:`~workbench.tables.results.ResultsTable` to add the rows to, or None.
        progress: Show a progress bar.

    Returns:
        The rows (the metric is top-1 with labels, else agreement with FP32).
    """
    data = picked.data
    return measure_variants(picked.model.path, list(recipes), calib=data.calibration(calib_samples),
                            eval_data=data.data, model_name=picked.name, batch_sizes=(1,),
                            iterations=iterations, warmup=5, table=table, progress=progress)
