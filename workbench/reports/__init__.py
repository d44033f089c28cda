"""Reports: the run's self-contained HTML report, made from the notebooks' own figure functions.

Sits above the views (it reuses their figures) and below the command line."""

from __future__ import annotations

from workbench._lazy import lazy_exports

_EXPORTS = {
    "render_report": "workbench.reports.html",
    "write_report": "workbench.reports.html",
    "report_figures": "workbench.reports.html",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
