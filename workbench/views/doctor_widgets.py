"""The doctor's explorer: a thin ipywidgets controller over :mod:`workbench.views.doctor_figures`.

:class:`DoctorExplorer` shows a :class:`~workbench.doctor.report.Diagnosis` in tabs (summary
and culprits, the error curve, ranges with a tensor picker, sensitivity and the fix search,
before/after). Picking a tensor redraws its histogram with every method's clipping range, its
per-channel ranges and the drill-down of its FP32 vs INT8 values.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import pandas as pd

from workbench.doctor.report import results_rows
from workbench.errors import WorkbenchError
from workbench.views.doctor_figures import (
    before_after_figure,
    channel_ranges_figure,
    distribution_figure,
    error_curve_figure,
    histogram_figure,
    search_figure,
    sensitivity_figure,
)
from workbench.views.model_picker import error_html
from workbench.views.output import show_in
from workbench.workflows.plan_save import plan_from_doctor, save_plan


def culprits_html(culprits) -> str:
    """The culprit list as an HTML table (node, role, reason)."""
    if not culprits:
        return "<em>No culprits: every quantized node's error is in line with the others.</em>"
    rows = "".join(
        f"<tr><td>{i + 1}</td><td><code>{html.escape(c['node'])}</code></td><td>{html.escape(c['role'])}</td>"
        f"<td style='text-align:left'>{html.escape(c['reason'])}</td></tr>"
        for i, c in enumerate(culprits))
    return ("<table><tr><th>#</th><th>node</th><th>role</th><th style='text-align:left'>evidence</th></tr>"
            f"{rows}</table>")


def zoom_for(row, dominance: float = 16.0) -> float | None:
    """A drill-down zoom for an activation row: twice its median channel's range when one channel dominates.

    Args:
        row: A :attr:`LayerwiseResult.inputs` row (``channel_amax``, ``channel_dominance``).
        dominance: How many times the median channel counts as dominating.

    Returns:
        The zoom half-width, or None (no dominating channel: show the whole range).
    """
    amax = row.get("channel_amax") if hasattr(row, "get") else None
    dom = row.get("channel_dominance") if hasattr(row, "get") else None
    if amax is None or dom is None or pd.isna(dom) or dom < dominance:
        return None
    median = float(pd.Series(amax).median())
    return 2 * median if median > 0 else None


class DoctorExplorer(widgets.VBox):
    """Tabs over a diagnosis.

    Args:
        diagnosis: A :class:`workbench.doctor.report.Diagnosis`.
    """

    def __init__(self, diagnosis):
        self.diagnosis = diagnosis
        report = diagnosis.to_dict()
        self.report = report
        inputs = diagnosis.layerwise.inputs
        pairs = [] if inputs.empty else [(f"{r['tensor']}  ->  {r['node']}", (r["node"], r["tensor"]))
                                         for r in inputs.to_dict("records")]
        self.tensor_dropdown = widgets.Dropdown(options=pairs, description="Tensor",
                                                layout=widgets.Layout(width="95%"))
        self.summary_out = widgets.Output()
        self.curve_out = widgets.Output()
        self.ranges_out = widgets.Output()
        self.sensitivity_out = widgets.Output()
        self.tradeoff_out = widgets.Output()
        self.tabs = widgets.Tab(children=[self.summary_out, self.curve_out,
                                          widgets.VBox([self.tensor_dropdown, self.ranges_out]),
                                          self.sensitivity_out, self.tradeoff_out])
        for index, title in enumerate(("Summary", "Error curve", "Ranges", "Sensitivity", "Before/after")):
            self.tabs.set_title(index, title)
        self.tensor_dropdown.observe(lambda _change: self.show_tensor(), names="value")
        self.save_button = widgets.Button(description="Save as plan", icon="save",
                                          tooltip="write a plan file that re-creates the fix in CI (workbench run PLAN)")
        self.save_status = widgets.HTML()
        self.save_button.on_click(lambda _b: self._on_save())
        super().__init__([widgets.HBox([self.save_button, self.save_status]), self.tabs])
        self._draw()

    def save_plan(self, path=None, **options):
        """Save the doctor's fix as a plan file: what the "Save as plan" button does.

        Args:
            path: The ``.yaml`` to write (default: ``<workspace>/plans/<model>-int8-doctor-fix.plan.yaml``,
                numbered so no file is replaced).
            **options: Passed to :func:`~workbench.workflows.plan_save.plan_from_doctor`.

        Returns:
            The plan file's path.
        """
        return save_plan(plan_from_doctor(self.report, **options), path, source="the INT8 doctor")

    def _on_save(self) -> None:
        try:
            path = self.save_plan()
        except WorkbenchError as err:
            self.save_status.value = error_html(str(err))
            return
        self.save_status.value = (f"Plan saved: <code>{html.escape(str(path))}</code>. Run it with "
                                  f"<code>workbench run {html.escape(str(path))}</code>.")

    def _draw(self) -> None:
        d, report = self.diagnosis, self.report
        summary = "<br>".join(html.escape(line) for line in report["summary"])
        show_in(self.summary_out, widgets.HTML(f"<p>{summary}</p>"), widgets.HTML(culprits_html(d.culprits)))
        jump = d.layerwise.first_jump()
        show_in(self.curve_out, error_curve_figure(d.layerwise.tensors, first_jump=jump["tensor"] if jump else None))
        if d.ranking:
            show_in(self.sensitivity_out, sensitivity_figure(d.ranking, fix_exclude=d.fix["config"]["exclude"]),
                    search_figure(d.search.get("steps", []), metric=d.metric_name, unit=d.metric_unit,
                                  naive_value=d.int8_value, target_value=d.target_value))
        target = d.target_value
        show_in(self.tradeoff_out, before_after_figure(
            results_rows(report), target=target,
            target_top1=None if target is None or d.metric_name != "top1" else target / 100))
        self.show_tensor()

    def show_tensor(self) -> None:
        """Redraw the Ranges tab for the selected (node, tensor)."""
        if self.tensor_dropdown.value is None:
            show_in(self.ranges_out, widgets.HTML("<em>The variant quantizes no activation.</em>"))
            return
        node, tensor = self.tensor_dropdown.value
        d = self.diagnosis
        try:
            clips = d.clips[(d.clips["node"] == node) & (d.clips["tensor"] == tensor)]
            clip_map = dict(zip(clips["method"], clips["clip"]))
            row = d.layerwise.inputs[(d.layerwise.inputs["node"] == node)
                                     & (d.layerwise.inputs["tensor"] == tensor)].iloc[0]
            figures = [histogram_figure(d.calib_stats[tensor], clip_map, tensor=tensor)]
            if row["channel_amax"] is not None:
                figures.append(channel_ranges_figure(
                    row["channel_amax"], title=f"Per-channel max |x| of {tensor} (evaluation samples)",
                    highlight=None if pd.isna(row["dominant_channel"]) else int(row["dominant_channel"])))
            if tensor in d.layerwise.samples:
                figures.append(distribution_figure(d.layerwise.values(tensor), tensor=tensor, zoom=zoom_for(row)))
            show_in(self.ranges_out, *figures)
        except (KeyError, ValueError, IndexError) as err:
            show_in(self.ranges_out, widgets.HTML(error_html(str(err))))
