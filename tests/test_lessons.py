"""Every notebook is a lesson: what it teaches and how long, two or more exercises with a checker
and a solution that the checker accepts, the glossary linked, and a "Next" at the end."""

from __future__ import annotations

import re

import nbformat
import pytest
from notebook_runs import NOTEBOOKS, REPO_ROOT, cell_text, executed, tagged

import workbench
from workbench.views import check


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_a_lesson(path):
    nb = nbformat.read(path, as_version=4)
    (intro,) = tagged(nb, "lesson-intro")
    assert nb.cells.index(intro) <= 2
    assert "you learn" in intro.source and re.search(r"about \d+ minutes", intro.source)
    assert "../docs/glossary.md" in intro.source and (REPO_ROOT / "docs" / "glossary.md").exists()
    exercises = tagged(nb, "exercise")
    assert len(exercises) >= 2
    for cell in exercises:
        name = re.search(r'check\("([\w-]+)", \.\.\.', cell.source).group(1)
        following = nb.cells[nb.cells.index(cell) + 1]
        assert f"solution-{name}" in _tags(following) and "<details>" in following.source
    last = nb.cells[-1]
    assert "lesson-next" in _tags(last) and last.source.startswith("## Next")
    links = re.findall(r"\]\(([\w.]+\.ipynb)\)", last.source)
    assert links and all((path.parent / link).exists() for link in links)


def _solutions():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in tagged(nb, "solution"):
            name = next(t for t in _tags(cell) if t.startswith("solution-"))[len("solution-"):]
            if name.startswith("pytorch-"):
                continue  # checked against the model the notebook exports, in test_notebook_facts
            code = re.search(r"```python\n(.*?)\n```", cell.source, re.S).group(1)
            yield pytest.param(name, code, path, id=f"{path.stem[:2]}-{name}")


@pytest.mark.parametrize(("name", "code", "path"), list(_solutions()))
def test_each_solution_is_accepted_and_a_wrong_answer_is_not(name, code, path):
    namespace = {"workbench": workbench, "check": check}
    *setup, last = code.strip().splitlines()
    exec("\n".join(setup), namespace)  # noqa: S102 - the notebook's own solution code
    verdict = eval(last, namespace)  # noqa: S307
    assert verdict, f"{name}: {verdict}"
    assert not check(name, "certainly not the answer")


def test_the_executed_tour_shows_an_unanswered_exercise(tmp_path, monkeypatch):
    nb = executed("00", tmp_path, monkeypatch)
    shown = cell_text(tagged(nb, "exercise")[0])
    assert "Not yet" in shown and "replace ..." in shown


def test_the_tour_has_the_tensorrt_primer():
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    (primer,) = tagged(nb, "primer")
    for word in ("builder", "engine", "plan", "tactic", "strong typing"):
        assert f"**{word}**" in primer.source
