"""Plotly figures of a model's summary: pure functions of the summary, no widgets."""

from __future__ import annotations

import plotly.graph_objects as go

from workbench.model.summary import ModelSummary
from workbench.views.figure_style import fit_labels


def op_histogram_figure(summary: ModelSummary, top: int = 25) -> go.Figure:
    """Bar chart of how many nodes of each op type the main graph has, most common first.

    Args:
        summary: The model's summary.
        top: Show at most this many op types; the rest are summed into "other".

    Returns:
        A plotly figure.
    """
    items = sorted(summary.op_histogram.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > top:
        rest = sum(n for _, n in items[top - 1 :])
        items = items[: top - 1] + [(f"other ({len(items) - top + 1} types)", rest)]
    ops = [op for op, _ in items]
    counts = [n for _, n in items]
    flops = [summary.flops_by_op.get(op, 0) for op in ops]
    fig = go.Figure(
        go.Bar(
            x=ops,
            y=counts,
            customdata=flops,
            hovertemplate="%{x}: %{y} nodes<br>FLOPs: %{customdata:.3s}<extra></extra>",
            marker_color="#76b900",
        )
    )
    name = summary.path.rsplit("/", 1)[-1] if summary.path else "model"
    fig.update_layout(
        title=f"Op types in {name} ({summary.node_count} nodes)",
        xaxis_title="op type",
        yaxis_title="nodes",
        height=360,
        margin=dict(l=50, r=20, t=50, b=80),
        template="plotly_white",
    )
    return fit_labels(fig)
