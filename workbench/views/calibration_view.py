"""Preview a calibration set: a few samples as images, and per-input statistics.

:func:`samples_figure` is a pure function of a
:class:`~workbench.datasets.calibration_sets.CalibrationSet`; :class:`CalibrationPreview` is a thin
ipywidgets controller over it (page through the samples, pick the input) with the set's
:meth:`~workbench.datasets.calibration_sets.CalibrationSet.stats` table below.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.datasets.calibration_sets import CalibrationSet
from workbench.views.figure_style import fit_labels
from workbench.views.output import show_in

MAX_SAMPLES = 32


def image_of(array: np.ndarray) -> np.ndarray:
    """One sample as a 2-D image: the last two axes are height and width; other axes average.

    Args:
        array: One sample (no sample axis), e.g. ``[C, H, W]`` or ``[H, W]``; a 1-D sample
            becomes a single row.

    Returns:
        A ``[H, W]`` float array.
    """
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        return array.reshape(1, -1)
    return array.reshape(-1, *array.shape[-2:]).mean(axis=0)


def samples_figure(calib: CalibrationSet, n: int = 8, *, start: int = 0, input_name: str | None = None,
                   columns: int = 8) -> go.Figure:
    """A grid of calibration samples drawn as grayscale heatmaps, on one shared color scale.

    Args:
        calib: The calibration set.
        n: How many samples to show (at most 32).
        start: Index of the first sample shown.
        input_name: Which input to draw (default: the first).
        columns: Images per row.

    Returns:
        A plotly figure; each panel's title is the sample index, hover shows pixel values.

    Raises:
        TypeError: ``calib`` is not a CalibrationSet.
        ValueError: ``n``/``start`` out of range or an unknown input, naming what is available.
    """
    if not isinstance(calib, CalibrationSet):
        raise TypeError(f"expected a CalibrationSet (workbench.datasets.calibration_sets), got {type(calib).__name__}")
    name = input_name or calib.input_names[0]
    if name not in calib.inputs:
        raise ValueError(f"no input {name!r} in the calibration set; it has {calib.input_names}.")
    if not 1 <= int(n) <= MAX_SAMPLES:
        raise ValueError(f"n must be 1..{MAX_SAMPLES}, got {n}.")
    total = calib.num_samples
    if not 0 <= int(start) < total:
        raise ValueError(f"start must be 0..{total - 1} (the set has {total} samples), got {start}.")
    indices = list(range(int(start), min(int(start) + int(n), total)))
    array = calib.inputs[name]
    images = [image_of(array[i]) for i in indices]
    low = float(min(img.min() for img in images))
    high = float(max(img.max() for img in images))
    cols = max(1, min(int(columns), len(images)))
    rows = -(-len(images) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"#{i}" for i in indices],
                        horizontal_spacing=0.02, vertical_spacing=0.08)
    for k, (index, img) in enumerate(zip(indices, images)):
        fig.add_trace(go.Heatmap(
            z=img[::-1], zmin=low, zmax=high, colorscale="gray", showscale=k == 0,
            hovertemplate=f"sample {index}<br>row %{{y}}, col %{{x}}: %{{z:.3g}}<extra></extra>",
        ), row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, scaleanchor="x")
    fig.update_layout(
        title=f"{name}: samples {indices[0]}-{indices[-1]} of {total} ({calib.source})",
        height=130 * rows + 90, margin=dict(l=10, r=10, t=70, b=10),
    )
    return fit_labels(fig)


class CalibrationPreview(widgets.VBox):
    """Page through a calibration set's samples and see per-input statistics.

    Args:
        calib: The calibration set.
        n: Samples per page.

    Attributes:
        calib: The set.
        figure_out: Where the samples figure is drawn.
        stats: The statistics table (HTML).
    """

    def __init__(self, calib: CalibrationSet, n: int = 8):
        if not isinstance(calib, CalibrationSet):
            raise TypeError(f"expected a CalibrationSet, got {type(calib).__name__}; load one with "
                            "workbench.datasets.calibration_sets.load_calibration_set(path, model).")
        self.calib = calib
        self.n = int(n)
        self.input_dropdown = widgets.Dropdown(options=calib.input_names, description="Input")
        self.start_slider = widgets.IntSlider(value=0, min=0, max=max(0, calib.num_samples - 1), step=self.n,
                                              description="First sample", continuous_update=False)
        self.figure_out = widgets.Output()
        head = (f"<b>{calib.num_samples} samples</b> from <code>{calib.source}</code>, selection "
                f"{calib.selection.get('mode')}, {calib.nbytes / 1024:.1f} KiB")
        stats = calib.stats().reset_index()  # one header row: "input" as a column, not an index name
        self.stats = widgets.HTML(head + stats.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}"))
        self.input_dropdown.observe(lambda _c: self.redraw(), names="value")
        self.start_slider.observe(lambda _c: self.redraw(), names="value")
        super().__init__([widgets.HBox([self.input_dropdown, self.start_slider]), self.figure_out, self.stats])
        self.redraw()

    def figure(self) -> go.Figure:
        """The samples figure for the current input and page."""
        return samples_figure(self.calib, self.n, start=self.start_slider.value, input_name=self.input_dropdown.value)

    def redraw(self) -> None:
        """Draw the current page of samples."""
        show_in(self.figure_out, self.figure())
