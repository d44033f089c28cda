"""Putting figures and tables into ``ipywidgets.Output`` areas.

Widgets replace an output area's content with :func:`show_in` rather than ``with output:
display(...)``: it sets the area's ``outputs`` directly, so it works the same in a kernel, in a
test and when a callback fires from a thread.

Plotly figures are not formatted through IPython's display formatter: a figure has an
``_ipython_display_`` method, which the formatter calls first and which *displays* the figure in
the cell that is running (or nowhere, in a callback) instead of returning its data; the Output
area would stay empty. They get plotly's ``application/vnd.plotly.v1+json`` bundle instead,
which JupyterLab's plotly renderer draws inside the Output widget.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def mime_bundle(obj: Any) -> tuple[dict, dict]:
    """The ``(data, metadata)`` a notebook front end needs to show ``obj``."""
    try:
        import plotly.graph_objects as go
    except ImportError:  # pragma: no cover - plotly is a dependency
        go = None
    if go is not None and isinstance(obj, go.Figure):
        import plotly.io as pio

        data = pio.renderers["plotly_mimetype"].to_mimebundle(obj.to_dict())
        return {**data, "text/plain": repr_figure(obj)}, {}
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance().display_formatter.format(obj)


def repr_figure(fig: Any) -> str:
    """A short plain-text stand-in for a figure (shown where plotly's renderer is missing)."""
    title = fig.layout.title.text or "untitled"
    return f"<plotly figure: {title}>"


def show_in(output: widgets.Output, *objects) -> None:
    """Replace what ``output`` shows with ``objects`` (figures, DataFrames, widgets, HTML...)."""
    outputs = []
    for obj in objects:
        data, metadata = mime_bundle(obj)
        outputs.append({"output_type": "display_data", "data": data, "metadata": metadata})
    output.outputs = tuple(outputs)
