"""Every notebook executes top to bottom on this CPU-only machine with no error output.

Each executed notebook is saved to ``test-artifacts/notebooks/`` (see ``notebook_runs.py``), where
``test_notebook_facts.py`` and ``test_workshop_doc.py`` read its outputs instead of running it again."""

from __future__ import annotations

import pytest
from notebook_runs import NOTEBOOKS, execute_notebook


def test_the_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"00_tour.ipynb", "01_explore_model.ipynb"} <= names


def _problems(nb) -> list[str]:
    problems = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}")
            elif output.get("name") == "stderr" and "Traceback" in output.get("text", ""):
                problems.append(f"cell {index}: traceback on stderr:\n{output['text'][-2000:]}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_without_errors(path, tmp_path, monkeypatch):
    nb = execute_notebook(path, tmp_path / "workspace", monkeypatch)  # raises on the first failing cell
    assert _problems(nb) == []
    executed = [c for c in nb.cells if c.cell_type == "code"]
    assert executed and all(c.get("execution_count") for c in executed)
