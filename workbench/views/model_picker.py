"""The model picker: choose a sample, type a path or upload a file; see its summary.

A thin controller: loading is :func:`workbench.model.load_model`, the chart is
:func:`workbench.views.model_figures.op_histogram_figure`; this only wires them to widgets.
"""

from __future__ import annotations

import html
from typing import Callable

import ipywidgets as widgets

from workbench.errors import WorkbenchError
from workbench.model import LoadedModel, load_model
from workbench.samples import DEFAULT_SAMPLE, sample_names, sample_path
from workbench.views.model_figures import op_histogram_figure
from workbench.views.output import show_in
from workbench.workspace import unused_path, workspace_dir, write_atomic


def error_html(message: str) -> str:
    """How the widgets show an error: one red box with the message, no traceback."""
    return (
        "<div class='wb-error' style='color:#a00;border:1px solid #a00;padding:6px;"
        f"border-radius:4px;white-space:pre-wrap'><b>Error:</b> {html.escape(message)}</div>"
    )


class ModelPicker(widgets.VBox):
    """Pick an ONNX model and show its summary table and op-type chart.

    Args:
        sample: The sample model to load first (None to start empty).

    Attributes:
        model: The current :class:`LoadedModel` (None until one loads).
    """

    def __init__(self, sample: str | None = DEFAULT_SAMPLE):
        self.model: LoadedModel | None = None
        self._callbacks: list[Callable[[LoadedModel], None]] = []
        names = sample_names()
        self.sample_dropdown = widgets.Dropdown(
            options=names, value=sample if sample in names else None, description="Sample"
        )
        # continuous_update=False: the value changes on Enter (or leaving the box), not per key
        self.path_box = widgets.Text(
            placeholder="/path/to/model.onnx", description="Path", continuous_update=False
        )
        self.load_button = widgets.Button(description="Load path", icon="folder-open")
        self.upload = widgets.FileUpload(accept=".onnx", multiple=False, description="Upload")
        self.status = widgets.HTML()
        self.summary_out = widgets.Output()
        self.sample_dropdown.observe(self._on_sample, names="value")
        self.load_button.on_click(lambda _b: self.load(self.path_box.value.strip()))
        self.path_box.observe(lambda change: self.load(change["new"].strip()) if change["new"].strip() else None, names="value")
        self.upload.observe(self._on_upload, names="value")
        controls = widgets.HBox([self.sample_dropdown, self.path_box, self.load_button, self.upload])
        super().__init__([controls, self.status, self.summary_out])
        if self.sample_dropdown.value:
            self.load(sample_path(self.sample_dropdown.value))

    def on_change(self, callback: Callable[[LoadedModel], None]) -> None:
        """Call ``callback(model)`` whenever a model loads."""
        self._callbacks.append(callback)

    def load(self, path) -> LoadedModel | None:
        """Load ``path`` and show it; on bad input show the error and keep the current model.

        Returns:
            The loaded model, or None if it could not be loaded.
        """
        if not str(path):
            self.status.value = error_html("type the path of an .onnx file first")
            return None
        try:
            model = load_model(path)
        except (WorkbenchError, OSError) as err:
            self.status.value = error_html(str(err))
            return None
        self.model = model
        self.status.value = f"<span class='wb-ok'>Loaded <code>{html.escape(str(model.path))}</code></span>"
        self._show(model)
        for callback in self._callbacks:
            callback(model)
        return model

    def _show(self, model: LoadedModel) -> None:
        show_in(self.summary_out, widgets.HTML(model.summary.to_html()), op_histogram_figure(model.summary))

    def _on_sample(self, change) -> None:
        if change["new"]:
            self.load(sample_path(change["new"]))

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[0]
        # Keep the upload in the workspace under a name that overwrites nothing.
        target = unused_path(workspace_dir("uploads"), upload["name"])
        write_atomic(target, bytes(upload["content"]))
        self.load(target)
