"""Executing the notebooks once, and reading their executed outputs from other tests.

``tests/test_notebooks.py`` executes every notebook and saves it, outputs included, to
``test-artifacts/notebooks/<name>.ipynb``. Tests that check what the notebooks *say* against what
they *measured* (``test_notebook_facts.py``, ``test_workshop_doc.py``) read those files; when one is
missing or older than its notebook (the tests run alone), :func:`executed` runs the notebook then.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
EXECUTED_DIR = REPO_ROOT / "test-artifacts" / "notebooks"


def execute_notebook(path: Path, workspace: Path, monkeypatch) -> nbformat.NotebookNode:
    """Execute one notebook in a fresh workspace and save the executed copy.

    Args:
        path: the notebook.
        workspace: the folder the kernel uses as its workspace (``WORKBENCH_WORKSPACE``).
        monkeypatch: pytest's monkeypatch, to set the variable for the kernel only during the test.

    Returns:
        The executed notebook (raises ``CellExecutionError`` on the first failing cell).
    """
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(workspace))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )  # the kernel inherits os.environ, so it writes into the test's workspace
    client.execute()
    EXECUTED_DIR.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, EXECUTED_DIR / path.name)
    return nb


def executed(name: str, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    """The executed notebook ``name`` (a stem prefix such as ``"04"``), run now if not saved fresh.

    Args:
        name: the notebook's number or stem prefix.
        tmp_path: a folder for the workspace if the notebook must be executed.
        monkeypatch: pytest's monkeypatch.

    Returns:
        The executed notebook.
    """
    (path,) = [p for p in NOTEBOOKS if p.stem.startswith(name)]
    saved = EXECUTED_DIR / path.name
    if saved.exists() and saved.stat().st_mtime >= path.stat().st_mtime:
        nb = nbformat.read(saved, as_version=4)
        if [c.source for c in nb.cells] == [c.source for c in nbformat.read(path, as_version=4).cells]:
            return nb
    return execute_notebook(path, tmp_path / "workspace", monkeypatch)


def cell_text(cell) -> str:
    """Everything a code cell showed as text: streams, text/plain results and HTML tables."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        data = output.get("data", {})
        for kind in ("text/markdown", "text/plain", "text/html"):
            if kind in data:
                parts.append(data[kind] if isinstance(data[kind], str) else "".join(data[kind]))
    return "\n".join(parts)


def tagged(nb, tag: str) -> list:
    """The cells carrying ``tag`` in their metadata (how the fact checks find their cells)."""
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def figures(cell) -> list[dict]:
    """The plotly figures a cell displayed, as JSON (data and layout)."""
    found = []
    for output in cell.get("outputs", []):
        fig = output.get("data", {}).get("application/vnd.plotly.v1+json")
        if fig is not None:
            found.append(fig if isinstance(fig, dict) else json.loads(fig))
    return found


def numbers(text: str) -> list[float]:
    """Every decimal number in ``text``, in order."""
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


class _TableParser(HTMLParser):
    """The cells of every <table> in an HTML fragment (pandas' ``to_html`` and Styler output)."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def html_tables(cell) -> list[pd.DataFrame]:
    """The DataFrames a cell displayed, parsed back from their HTML (values as float where they parse).

    The first header row gives the columns (its first, empty, cell is the index); rows keep the
    index in column ``""``.
    """
    frames = []
    for output in cell.get("outputs", []):
        html = output.get("data", {}).get("text/html")
        if html is None:
            continue
        parser = _TableParser()
        parser.feed(html if isinstance(html, str) else "".join(html))
        for rows in parser.tables:
            header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
            frames.append(pd.DataFrame([[_number(v) for v in r] for r in body], columns=header))
    return frames
