"""App mode for a room: the INT8 doctor and the tradeoff explorer behind a start button.

``workbench app doctor`` and ``workbench app tradeoffs`` serve the notebooks in
``workbench/apps/`` with Voilà: no code on the page, only these two controllers. Each one
shows its choices (a sample model, its evaluation samples, a target...) and a button; long work
(calibration, the doctor's search, a sweep) starts from the button, never on page load, and
reports its progress in a bar. What it shows once done is the notebooks' own explorers
(:class:`~workbench.views.doctor_widgets.DoctorExplorer`,
:class:`~workbench.views.tradeoff.TradeoffExplorer`), not a copy of them.

Both work on a CPU-only machine with the sample models (:mod:`workbench.samples`) and their data.
"""

from __future__ import annotations

import html
from typing import Callable

import ipywidgets as widgets

from workbench.datasets.arrays import ModelData, load_data
from workbench.doctor.diagnose import diagnose
from workbench.doctor.teaching import teaching_case_path, teaching_cases
from workbench.precision.recipe import Recipe
from workbench.progress import ProgressUpdate
from workbench.samples import sample_data_path, sample_names, sample_path
from workbench.tables.results import ResultsTable
from workbench.views.doctor_widgets import DoctorExplorer
from workbench.views.model_picker import error_html
from workbench.views.tradeoff import TradeoffExplorer
from workbench.workflows.sweep import measure_variants

WIDE = {"description_width": "150px"}
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


class ProgressBar(widgets.HBox):
    """A progress bar and a line of text, fed as a ``progress=`` callable (:mod:`workbench.progress`)."""

    def __init__(self):
        self.bar = widgets.IntProgress(value=0, min=0, max=1, layout={"width": "300px"})
        self.text = widgets.HTML()
        super().__init__([self.bar, self.text], layout={"visibility": "hidden"})

    def __call__(self, update: ProgressUpdate) -> None:
        """Show one :class:`~workbench.progress.ProgressUpdate`: the latest task's count and name."""
        self.layout.visibility = "visible"
        if update.total:
            self.bar.max = max(int(update.total), 1)
            self.bar.value = min(int(update.done), self.bar.max)
        self.text.value = f"<code>{html.escape(update.text())}</code>"

    def done(self, text: str) -> None:
        """Fill the bar and say what finished."""
        self.bar.value = self.bar.max
        self.text.value = html.escape(text)


def _run_guarded(button: widgets.Button, status: widgets.HTML, work: Callable[[], object]):
    """Run ``work`` with ``button`` disabled; an error goes into ``status`` as one red box.

    Returns:
        What ``work`` returned, or None when it failed.
    """
    button.disabled = True
    status.value = ""
    try:
        return work()
    except Exception as err:  # shown on the page: a room's app has no traceback to read
        status.value = error_html(str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}")
        return None
    finally:
        button.disabled = False


def doctor_choices() -> dict[str, tuple]:
    """The models the doctor app offers: every sample model, then every teaching case.

    Returns:
        ``{label: (model path, sample name whose calib/eval data it uses)}``; a teaching case
        (a function-preserving copy of a sample with one channel rescaled) uses its sample's data.
    """
    samples = sample_names()
    choices = {f"{name} (sample model)": (sample_path(name), name) for name in samples}
    for name in teaching_cases():
        base = max((s for s in samples if name.startswith(s)), key=len, default=None)
        if base is not None:  # the label keeps the answer out: finding it is the exercise
            choices[f"{name} (teaching case)"] = (teaching_case_path(name), base)
    return choices


class DoctorApp(widgets.VBox):
    """The INT8 doctor as an app: pick a model and a target, press the button, explore the diagnosis.

    Args:
        choices: ``{label: (model path, sample name)}`` (default :func:`doctor_choices`).
        model: The label (or its start) chosen at first; default the first choice.

    Attributes:
        diagnosis: The last :class:`~workbench.doctor.report.Diagnosis`, or None.
        explorer: Its :class:`DoctorExplorer`, or None.
    """

    def __init__(self, choices: dict[str, tuple] | None = None, *, model: str | None = None):
        self.choices = doctor_choices() if choices is None else dict(choices)
        if not self.choices:
            raise ValueError("no models to diagnose: sample_models/ holds no sample model (make samples)")
        labels = list(self.choices)
        first = next((label for label in labels if model and label.startswith(model)), labels[0])
        self.model_dropdown = widgets.Dropdown(options=labels, value=first, description="Model",
                                               style=WIDE, layout={"width": "560px"})
        self.samples_dropdown = widgets.Dropdown(description="Evaluation samples", style=WIDE)
        self.method_dropdown = widgets.Dropdown(options=CALIBRATION_METHODS, value="minmax",
                                                description="Calibration", style=WIDE)
        self.target_drop = widgets.BoundedFloatText(value=0.5, min=0.0, max=100.0, step=0.1, style=WIDE,
                                                    description="Allowed drop (points)")
        self.run_button = widgets.Button(description="Run the doctor", icon="stethoscope", button_style="primary",
                                         tooltip="quantize to INT8, compare layer by layer, find the culprits "
                                                 "and search for a fix")
        self.progress = ProgressBar()
        self.status = widgets.HTML()
        self.result = widgets.VBox()
        self.diagnosis = None
        self.explorer: DoctorExplorer | None = None
        self.model_dropdown.observe(lambda _change: self._fill_samples(), names="value")
        self.run_button.on_click(lambda _b: _run_guarded(self.run_button, self.status, self.run))
        self._fill_samples()
        super().__init__([self.model_dropdown, self.samples_dropdown, self.method_dropdown, self.target_drop,
                          widgets.HBox([self.run_button, self.progress]), self.status, self.result])

    def _fill_samples(self) -> None:
        _model, base = self.choices[self.model_dropdown.value]
        total = load_data(sample_data_path(base, "eval"), what="evaluation").num_samples
        sizes = [n for n in (60, 120) if n < total]
        # 0 for "all": a Dropdown shows a None value as no selection at all
        self.samples_dropdown.options = [(f"all {total}", 0)] + [(str(n), n) for n in sizes]
        self.samples_dropdown.value = 0

    def evaluation_data(self) -> ModelData:
        """The chosen model's evaluation split, cut to the chosen number of samples (labels too)."""
        _model, base = self.choices[self.model_dropdown.value]
        return load_data(sample_data_path(base, "eval"), limit=self.samples_dropdown.value or None,
                         what="evaluation")

    def run(self):
        """Run the doctor on the chosen model: what the button does.

        Returns:
            The :class:`~workbench.doctor.report.Diagnosis` (also shown, in a :class:`DoctorExplorer`).
        """
        model, base = self.choices[self.model_dropdown.value]
        self.result.children = ()
        self.diagnosis = diagnose(model, sample_data_path(base, "calib"), self.evaluation_data(),
                                  target_drop=float(self.target_drop.value), method=self.method_dropdown.value,
                                  progress=self.progress)
        self.explorer = DoctorExplorer(self.diagnosis)
        self.progress.done(f"done: {self.diagnosis.evaluations} full evaluations")
        self.result.children = (self.explorer,)
        return self.diagnosis


def tradeoff_recipes() -> list[Recipe]:
    """The grid the tradeoff app measures: FP32, FP16, BF16 and INT8 (minmax, percentile; 32 and 256 samples)."""
    return [Recipe("fp32"), Recipe("fp16"), Recipe("bf16")] + [
        Recipe("int8", method=method, num_samples=size) for method in ("minmax", "percentile") for size in (32, 256)]


class TradeoffsApp(widgets.VBox):
    """The tradeoff explorer as an app: measure the sample models' variants, then click through them.

    The results table starts with what the workspace already holds (notebook 05, ``workbench
    run``...); the button measures the chosen sample model's grid (:func:`tradeoff_recipes`) on
    ONNX Runtime and adds the rows (variants measured before are read back, not measured again).

    Args:
        table: The :class:`ResultsTable` (default: the workspace's).
        recipes: The grid (default :func:`tradeoff_recipes`).
        iterations: Timed runs per variant (batch 1).

    Attributes:
        explorer: The :class:`TradeoffExplorer` over ``table``, made once the table has rows
            (a plotly FigureWidget first shown empty does not draw the traces added later in
            Voilà 0.5, so the app shows none until there is something to plot).
    """

    ALL_SAMPLES = "all sample models"

    def __init__(self, table: ResultsTable | None = None, *, recipes=None, iterations: int = 50):
        self.table = ResultsTable() if table is None else table
        self.recipes = tradeoff_recipes() if recipes is None else list(recipes)
        self.iterations = int(iterations)
        # "Measure", not "Model": the explorer below has a Model filter of its own
        self.model_dropdown = widgets.Dropdown(options=sample_names() + [self.ALL_SAMPLES], description="Measure",
                                               style={"description_width": "70px"})
        self.measure_button = widgets.Button(
            description="Measure variants", icon="play", button_style="primary",
            tooltip=f"make, evaluate and time {len(self.recipes)} variants on ONNX Runtime (CPU)")
        self.progress = ProgressBar()
        self.status = widgets.HTML()
        self.explorer: TradeoffExplorer | None = None
        self.result = widgets.VBox()
        self.measure_button.on_click(lambda _b: _run_guarded(self.measure_button, self.status, self.measure))
        self._show_explorer()
        super().__init__([widgets.HBox([self.model_dropdown, self.measure_button, self.progress]), self.status,
                          self.result])

    def _show_explorer(self) -> None:
        """Make the explorer once the table has rows, else re-read the table into it; say how many."""
        if self.explorer is not None:
            self.explorer.refresh()
        elif len(self.table):
            self.explorer = TradeoffExplorer(self.table)
            self.result.children = (self.explorer,)
        rows = 0 if self.explorer is None else len(self.explorer.frame)
        if rows == 0:
            self.status.value = ("<em>No results yet: pick a model and press <b>Measure variants</b> "
                                 f"({len(self.recipes)} variants, made, evaluated and timed on this CPU).</em>")
        else:
            self.status.value = (f"{rows} results in <code>{html.escape(str(self.table.path))}</code>. "
                                 "Click a point to see how that variant was made.")

    def measure(self) -> list[dict]:
        """Measure the chosen model's grid and show it: what the button does.

        Returns:
            The rows measured (or read back from the table).
        """
        names = sample_names() if self.model_dropdown.value == self.ALL_SAMPLES else [self.model_dropdown.value]
        rows = []
        for name in names:
            rows += measure_variants(sample_path(name), self.recipes, calib=sample_data_path(name, "calib"),
                                     eval_data=sample_data_path(name, "eval"), batch_sizes=(1,),
                                     iterations=self.iterations, warmup=5, threads=1, table=self.table,
                                     progress=self.progress)
        self.progress.done(f"done: {len(rows)} variants of {', '.join(names)}")
        self._show_explorer()
        if len(names) == 1:
            self.explorer.model_dropdown.value = names[0]
        return rows
