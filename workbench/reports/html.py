"""The run report: one self-contained HTML file a reviewer opens from a CI artifact, offline.

:func:`render_report` fills a Jinja2 template (``templates/report.html.j2``) with a
:class:`~workbench.workflows.run.RunResult`: the verdict and the gates, the model summary, the
variants table, the accuracy-vs-latency plot with its Pareto front
(:func:`workbench.views.tradeoff_figures.tradeoff_figure`, as notebook 05 draws it), per-layer
time (:func:`workbench.views.engine_figures.layer_time_bar`, as notebook 03), the doctor's
findings when the plan asked for them (notebook 04's figures), the TensorRT builds or the
trtexec commands that would make them, tool versions and the machine.

Every figure comes from the notebooks' own figure functions (no second copy of any figure) and
is exported with plotly's ``to_html(include_plotlyjs=False)``; plotly.js itself is embedded once,
in the page's head, so the file works offline and stays one file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import plotly.io as pio
import plotly.offline
from markupsafe import Markup

from workbench.doctor.diagnose import results_rows
from workbench.model.summary import format_shape
from workbench.tables.results import rows_to_frame
from workbench.views.doctor_figures import (
    before_after_figure,
    error_curve_figure,
    sensitivity_figure,
)
from workbench.views.engine_figures import layer_time_bar
from workbench.views.tradeoff_figures import AXIS_TITLES, tradeoff_figure
from workbench.workflows.plan_metric import plan_metric
from workbench.workflows.run import REPORT_MARKER, RunResult
from workbench.workspace import write_atomic

TEMPLATE = "report.html.j2"
LAYER_BARS = 15  # slowest layers per per-layer figure
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("workbench.reports", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: Any, kind: str = "") -> str:
    """A number for people: ``-`` when missing, ``exact`` for an infinite SQNR."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isinf(value):
        return "exact" if value > 0 else "-inf"
    if kind == "fraction":
        return f"{100 * value:.2f}%"
    if kind == "count":
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_environment.filters["fmt"] = _fmt


def _frame(result: RunResult) -> pd.DataFrame:
    """The run's entries as a results frame (what the figure functions take)."""
    rows = []
    for entry in result.entries:
        rows.append({**entry, "id": f"{entry['name']}@{entry['backend']}", "variant": entry["name"],
                     "model": result.plan.model.stem, "precision": str(entry["precision"]).upper()})
    return rows_to_frame(rows)


def report_figures(result: RunResult) -> dict:
    """The report's figures, made by the notebooks' figure functions.

    Returns:
        ``{"tradeoff": Figure, "layers": [(title, Figure)], "doctor": [(title, Figure)]}``.
    """
    column = plan_metric(result.metric).column
    frame = _frame(result)
    tradeoff = tradeoff_figure(frame, x="median_ms", y=column, color="variant", symbol="backend")
    notes = (tradeoff.layout.meta or {}).get("title_notes", "")  # the machine, front steps within noise
    tradeoff.update_layout(title=f"{AXIS_TITLES.get(column, column)} vs median latency at batch "
                                 f"{result.plan.batch_sizes[0]}: {len(frame)} measurements, Pareto front dashed"
                                 f"{notes}")
    layers = []
    for (name, backend), table in result.layers.items():
        if table is not None and "time_ms" in table and table["time_ms"].notna().any():
            layers.append((f"{name} on {backend}", layer_time_bar(table, top=LAYER_BARS)))
    return {"tradeoff": tradeoff, "layers": layers, "doctor": _doctor_figures(result.doctor)}


def _doctor_figures(report: dict | None) -> list:
    if not report:
        return []
    figures = []
    jump = (report.get("layerwise") or {}).get("first_jump") or {}
    tensors = (report.get("layerwise") or {}).get("tensors") or []
    if tensors:
        figures.append(("Quantization error per tensor", error_curve_figure(tensors, first_jump=jump.get("tensor"))))
    ranking = (report.get("sensitivity") or {}).get("ranking") or []
    if ranking:
        figures.append(("Sensitivity", sensitivity_figure(ranking, fix_exclude=report["recipe"]["exclude"])))
    target = report["fp32_accuracy"] - report["target_drop"] / 100
    figures.append(("Before and after the fix", before_after_figure(results_rows(report), target_top1=target)))
    return figures


def _figure_html(fig, index: int) -> str:
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"figure-{index}",
                       config=PLOTLY_CONFIG)


def _model_facts(result: RunResult) -> tuple[list, list]:
    summary = result.facts.model.summary
    facts = [("sha256", result.facts.model_sha256), *summary.facts()]
    io = [(kind, t["name"], t["dtype"], format_shape(t["shape"]))
          for kind, tensors in (("input", summary.inputs), ("output", summary.outputs)) for t in tensors]
    return facts, io


def render_report(result: RunResult) -> str:
    """The report as one HTML document (plotly.js inline once; no network needed to view it).

    Args:
        result: A finished run.

    Returns:
        The HTML text.
    """
    figures = report_figures(result)
    counter = iter(range(10_000))
    tradeoff_html = _figure_html(figures["tradeoff"], next(counter))
    layer_html = [(title, _figure_html(fig, next(counter))) for title, fig in figures["layers"]]
    doctor_html = [(title, _figure_html(fig, next(counter))) for title, fig in figures["doctor"]]
    facts, io = _model_facts(result)
    metric = plan_metric(result.metric)
    data = result.to_dict()
    template = _environment.get_template(TEMPLATE)
    return template.render(
        marker=Markup(REPORT_MARKER),
        plotly_js=Markup(plotly.offline.get_plotlyjs()),
        result=result,
        data=data,
        plan=result.plan,
        metric=metric,
        metric_kind="fraction" if metric.points == 100.0 else "",
        gates=result.gates,
        failed=[g for g in result.gates if g.passed is False],
        skipped=[g for g in result.gates if g.passed is None],
        entries=result.entries,
        builds=result.builds,
        model_facts=facts,
        model_io=io,
        tradeoff_html=Markup(tradeoff_html),
        layer_html=[(t, Markup(h)) for t, h in layer_html],
        doctor=data["doctor"],
        doctor_html=[(t, Markup(h)) for t, h in doctor_html],
        environment=result.environment,
        layer_bars=LAYER_BARS,
    )


def write_report(result: RunResult, path) -> Path:
    """Render the report and write it atomically to ``path`` (check it with
    :func:`workbench.workflows.run.check_outputs` first: a run never overwrites a user's file).

    Returns:
        The path written; ``result.report`` is set to it.
    """
    path = Path(path).expanduser()
    result.report = str(path)
    return write_atomic(path, render_report(result))
