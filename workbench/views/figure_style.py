"""What every workbench figure shares in its layout: room for its axis labels.

A plotly figure keeps the margins it is given; a long category label (a layer name, an op type,
a tensor) or a two-line axis title then runs off the edge of the figure and is cut. Axes with
``automargin`` grow the margin to fit their tick labels and titles instead.
"""

from __future__ import annotations

import plotly.graph_objects as go


def fit_labels(fig: go.Figure) -> go.Figure:
    """Let every axis of ``fig`` (subplots included) grow its margin so no label is cut.

    Args:
        fig: The figure (changed in place).

    Returns:
        The same figure.
    """
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    # not title.automargin: with the default container reference it pins the title to the very
    # top edge, where its first line is cut; each figure's top margin holds its title instead
    return fig
