"""The README's measured figures equal the last measured ones.

``make bench`` writes ``bench/results/*.json`` (committed); ``bench/readme_tables.py`` makes the
README's measured blocks from them. Here every block in README.md must be exactly what the
committed result files give, and every result file must say what machine it ran on. After a new
``make bench`` run: ``python bench/readme_tables.py --write``, then commit the results with it.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from workbench.samples import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"
README = REPO_ROOT / "README.md"
MACHINE_KEYS = ("cpu", "cores", "platform", "python", "onnxruntime", "onnx", "numpy", "date")


def _readme_tables():
    spec = importlib.util.spec_from_file_location("readme_tables", REPO_ROOT / "bench" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = _readme_tables()


@pytest.mark.parametrize("name", sorted(tables.BLOCKS))
def test_readme_block_is_the_last_measurement(name):
    blocks = tables.readme_blocks(README.read_text(encoding="utf-8"))
    assert name in blocks, f"README.md lacks the <!-- bench:{name} --> ... <!-- /bench:{name} --> block"
    made = tables.BLOCKS[name](RESULTS)  # a missing result file fails here, naming its bench script
    assert blocks[name] == made, (
        f"README.md's {name!r} figures differ from bench/results: run python bench/readme_tables.py --write")


@pytest.mark.parametrize("name", ["load_model", "overhead", "calibration", "variants", "doctor"])
def test_result_file_names_its_machine(name):
    data = json.loads((RESULTS / f"{name}.json").read_text())
    machine = data["machine"]
    assert set(MACHINE_KEYS) <= set(machine), f"{name}.json: machine lacks {set(MACHINE_KEYS) - set(machine)}"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", machine["date"]) and int(machine["cores"]) >= 1
    assert all(str(machine[key]).strip() for key in MACHINE_KEYS)
    assert f"`bench/results/{name}.json`: measured {machine['date']} on {machine['cpu']}" in README.read_text()


def test_result_files_are_committed_not_ignored():
    rules = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "bench/results/*" in rules and "!bench/results/*.json" in rules
    assert "bench/results/" not in rules  # ignoring the folder would hide the files the rule un-ignores

