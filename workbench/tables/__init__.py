"""Tables: the contracts producers write and views read (the engine layer table, the results table)."""

from __future__ import annotations

from workbench._lazy import lazy_exports

_EXPORTS = {
    "make_layer_table": "workbench.tables.engine_table",
    "table_records": "workbench.tables.engine_table",
    "table_totals": "workbench.tables.engine_table",
    "ResultsTable": "workbench.tables.results",
    "pareto_front": "workbench.tables.results",
    "make_row": "workbench.tables.results",
    "rows_to_frame": "workbench.tables.results",
    "machine_facts": "workbench.tables.machine",
    "machines_in": "workbench.tables.machine",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
