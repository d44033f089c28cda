"""Views: plotly figures (pure functions of data) and ipywidgets controllers that wire them.

Widgets import ipywidgets; import them from their modules (``workbench.views.model_picker``) so
that the figure modules stay usable without a notebook.
"""
