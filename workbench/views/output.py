"""Putting figures and tables into ``ipywidgets.Output`` areas.

Widgets replace an output area's content with :func:`show_in` rather than ``with output:
display(...)``: appending display data sets the area's ``outputs`` directly, so it works the same
in a kernel, in a test and when a callback fires from a thread.
"""

from __future__ import annotations

import ipywidgets as widgets


def show_in(output: widgets.Output, *objects) -> None:
    """Replace what ``output`` shows with ``objects`` (figures, DataFrames, widgets, HTML...)."""
    output.outputs = ()
    for obj in objects:
        output.append_display_data(obj)
