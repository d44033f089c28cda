"""The model picker: choose a sample, type a path or upload a file, and the data it runs on.

A thin controller: loading is :func:`workbench.model.load_model`, the data is
:func:`workbench.workflows.picked.data_for` (an ``.npz`` the user picks, a sample's own split,
or random inputs, saying so), the chart is :func:`workbench.views.model_figures.op_histogram_figure`.
Notebook steps that depend on the model follow the picker with :meth:`ModelPicker.follow`: they
run now, in their cell, and again in place whenever another model or data set is picked.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets
from IPython.display import HTML, display

from workbench.errors import WorkbenchError
from workbench.model import LoadedModel, load_model
from workbench.samples import DEFAULT_SAMPLE, sample_names, sample_path
from workbench.views.model_figures import op_histogram_figure
from workbench.views.output import mime_bundle, show_in
from workbench.views.upload import ChunkedUpload
from workbench.workflows.picked import Picked, data_for
from workbench.workspace import workspace_dir

EMPTY = {"text/html": ""}


def error_html(message: str) -> str:
    """How the widgets show an error: one red box with the message, no traceback."""
    return (
        "<div class='wb-error' style='color:#a00;border:1px solid #a00;padding:6px;"
        f"border-radius:4px;white-space:pre-wrap'><b>Error:</b> {html.escape(message)}</div>"
    )


def ok_html(message: str) -> str:
    return f"<span class='wb-ok'>{message}</span>"


class ModelPicker(widgets.VBox):
    """Pick an ONNX model (and optionally its data) and show its summary table and op-type chart.

    Args:
        sample: The sample model to load first (None to start empty).

    Attributes:
        model: The current :class:`LoadedModel` (None until one loads).
        picked: The current :class:`~workbench.workflows.picked.Picked` (model and data), or None.
    """

    def __init__(self, sample: str | None = DEFAULT_SAMPLE):
        self.model: LoadedModel | None = None
        self.picked: Picked | None = None
        self._data_choice = None  # the .npz the user picked, kept across models while it fits
        self._callbacks: list[Callable[[LoadedModel], None]] = []
        self._steps: list[Callable[[], None]] = []
        names = sample_names()
        self.sample_dropdown = widgets.Dropdown(
            options=names, value=sample if sample in names else None, description="Sample"
        )
        # continuous_update=False: the value changes on Enter (or leaving the box), not per key
        self.path_box = widgets.Text(
            placeholder="/path/to/model.onnx", description="Path", continuous_update=False
        )
        self.load_button = widgets.Button(description="Load path", icon="folder-open")
        self.upload = ChunkedUpload(lambda: workspace_dir("uploads"), accept=".onnx", description="Upload model")
        self.data_box = widgets.Text(placeholder="/path/to/data.npz (optional)", description="Data",
                                     continuous_update=False)
        self.data_upload = ChunkedUpload(lambda: workspace_dir("uploads"), accept=".npz", description="Upload data")
        self.status = widgets.HTML()
        self.data_status = widgets.HTML()
        self.summary_out = widgets.Output()
        self.sample_dropdown.observe(self._on_sample, names="value")
        self.load_button.on_click(lambda _b: self.load(self.path_box.value.strip()))
        self.path_box.observe(lambda change: self.load(change["new"].strip()) if change["new"].strip() else None,
                              names="value")
        self.upload.on_upload(self._on_upload)
        self.upload.on_refuse(lambda message: setattr(self.status, "value", error_html(message)))
        self.data_box.observe(lambda change: self.load_data(change["new"].strip() or None), names="value")
        self.data_upload.on_upload(lambda path: self.load_data(path, uploaded=True))
        self.data_upload.on_refuse(lambda message: setattr(self.data_status, "value", error_html(message)))
        controls = widgets.HBox([self.sample_dropdown, self.path_box, self.load_button, self.upload])
        data_row = widgets.HBox([self.data_box, self.data_upload])
        super().__init__([controls, data_row, self.data_status, self.status, self.summary_out])
        if self.sample_dropdown.value:
            self.load(sample_path(self.sample_dropdown.value))

    def on_change(self, callback: Callable[[LoadedModel], None]) -> None:
        """Call ``callback(model)`` whenever a model loads."""
        self._callbacks.append(callback)

    def load(self, path, *, uploaded: bool = False) -> LoadedModel | None:
        """Load ``path`` and show it; on bad input show the error and keep the current model.

        Args:
            path: The ``.onnx`` file.
            uploaded: The file is an upload: one that does not load is deleted.

        Returns:
            The loaded model, or None if it could not be loaded.
        """
        if not str(path):
            self.status.value = error_html("type the path of an .onnx file first")
            return None
        try:
            model = load_model(path)
        except (WorkbenchError, OSError) as err:
            message = str(err)
            if uploaded:
                message += _drop_upload(path, self.upload, "not a model that loads")
            if self.model is not None:
                message += f"\n{self.model.path.name} stays loaded."
            self.status.value = error_html(message)
            return None
        self.model = model
        self._match_controls(model)
        self.status.value = ok_html(f"Loaded <code>{html.escape(str(model.path))}</code>")
        show_in(self.summary_out, widgets.HTML(model.summary.to_html()), op_histogram_figure(model.summary))
        self._pick(model)
        for callback in self._callbacks:
            callback(model)
        return model

    def load_data(self, path, *, uploaded: bool = False) -> bool:
        """Use the ``.npz`` at ``path`` as the model's data (None: the default data again).

        Args:
            path: The ``.npz`` file, or None.
            uploaded: The file is an upload: one that does not fit is deleted.

        Returns:
            Whether the data fits the model (on a misfit the error shows and the data stays).
        """
        if self.model is None:
            self.data_status.value = error_html("pick a model first, then its data")
            return False
        try:
            picked = Picked(self.model, data_for(self.model, path))
        except (WorkbenchError, OSError) as err:
            message = str(err)
            if uploaded:
                message += _drop_upload(path, self.data_upload, "it does not fit the model")
            self.data_status.value = error_html(message)
            return False
        self._data_choice = path
        self._set_picked(picked)
        self._rerun()
        return True

    def follow(self, step: Callable[[Picked], Any], *, outputs: int = 1) -> None:
        """Show what ``step(picked)`` returns here, and show it again whenever the pick changes.

        ``step`` returns one object or a tuple of them (figures, tables, text); the first run's
        outputs are the cell's, later runs replace them in place (IPython display updates), so the
        number of places is fixed by the first run: keep the number of objects the same for every
        model, and give it as ``outputs`` when the picker starts empty. A :class:`WorkbenchError`
        shows as a red box; on a later run any error does (there is no cell to show a traceback in).

        Args:
            step: A function of the :class:`~workbench.workflows.picked.Picked`.
            outputs: How many objects ``step`` returns (places reserved when nothing is picked yet).
        """
        handles: list = []

        def run(first: bool) -> None:
            if self.picked is None:
                shown = [HTML("<em>Pick a model above.</em>")]
            else:
                try:
                    result = step(self.picked)
                    shown = list(result) if isinstance(result, tuple) else [result]
                except Exception as err:  # noqa: BLE001 - shown, not lost in a callback
                    if first and not isinstance(err, WorkbenchError):
                        raise
                    shown = [HTML(error_html(f"{self.picked.name}: {err}"))]
            bundles = [mime_bundle(obj) for obj in shown]
            if first:
                bundles += [(EMPTY, {})] * (outputs - len(bundles))
                for data, metadata in bundles:
                    handles.append(display(data, metadata=metadata, raw=True, display_id=True))
                return
            bundles += [(EMPTY, {})] * (len(handles) - len(bundles))
            for handle, (data, metadata) in zip(handles, bundles[: len(handles)]):
                handle.update(data, metadata=metadata, raw=True)

        self._steps.append(lambda: run(False))
        run(True)

    # -- internals

    def _match_controls(self, model: LoadedModel) -> None:
        """Leave no control naming another model: the Sample menu and Path box show what loaded."""
        shown = self.sample_dropdown.value
        if shown and sample_path(shown).resolve() != model.path.resolve():
            self.sample_dropdown.value = None  # no reload: None loads nothing
        typed = self.path_box.value.strip()
        if typed and Path(typed).expanduser().resolve() != model.path.resolve():
            self.path_box.value = ""  # no reload: an empty path loads nothing

    def _pick(self, model: LoadedModel) -> None:
        misfit = None
        try:
            data = data_for(model, self._data_choice)
        except (WorkbenchError, OSError) as err:
            if self._data_choice is None:  # random inputs refused (dynamic dims): say so, keep the model
                self.picked = None
                self.data_status.value = error_html(f"{err}\nPick an .npz for this model's inputs.")
                self._rerun()
                return
            misfit = f"{err}\nThe data picked before does not fit this model: its default data is used instead."
            self._data_choice = None
            data = data_for(model)
        self._set_picked(Picked(model, data))
        if misfit:
            self.data_status.value = error_html(misfit) + self.data_status.value
        self._rerun()

    def _set_picked(self, picked: Picked) -> None:
        self.picked = picked
        kind = "wb-synthetic" if picked.data.synthetic else "wb-data"
        self.data_status.value = f"<span class='{kind}'>{html.escape(picked.data.note)}</span>"

    def _rerun(self) -> None:
        if not self._steps:
            return
        done = self.status.value
        self.status.value = done + f" <em>(running the {len(self._steps)} steps below that follow the picker...)</em>"
        try:
            for step in self._steps:
                step()
        finally:
            self.status.value = done

    def _on_sample(self, change) -> None:
        if change["new"]:
            self.load(sample_path(change["new"]))

    def _on_upload(self, path) -> None:
        self.load(path, uploaded=True)


def _drop_upload(path: Path, upload, why: str) -> str:
    """Delete a refused upload (a user's file never stays half-accepted) and note why on its widget.

    Returns:
        The sentence to add to the error message.
    """
    path.unlink(missing_ok=True)
    upload.note = f"{path.name} refused: {why}"
    return f"\nThe upload was not kept ({path.name} removed from {path.parent})."
