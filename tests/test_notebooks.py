"""Every notebook executes top to bottom on this CPU-only machine with no error output."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


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
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )  # the kernel inherits os.environ, so it writes into the test's workspace
    client.execute()  # raises CellExecutionError on the first failing cell
    assert _problems(nb) == []
    executed = [c for c in nb.cells if c.cell_type == "code"]
    assert executed and all(c.get("execution_count") for c in executed)
