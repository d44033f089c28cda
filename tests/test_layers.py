"""The layout as a contract: layers (import-linter), faces for notebooks, deprecated paths, sizes.

`make test` runs ``lint-imports`` (the contracts in pyproject.toml); these tests check what
import-linter does not: old import paths still work for one release and warn, nothing of ours
uses them, notebooks import only the public faces, and modules and functions stay small.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workbench"

# old path -> new home (kept for one release with a DeprecationWarning)
MOVED = {
    "workbench.analysis.doctor": "workbench.doctor.diagnose",
    "workbench.analysis.doctor_fix": "workbench.doctor.fix",
    "workbench.analysis.doctor_graph": "workbench.doctor.graph",
    "workbench.analysis.doctor_layerwise": "workbench.doctor.layerwise",
    "workbench.analysis.doctor_ranges": "workbench.doctor.ranges",
    "workbench.analysis.doctor_trt": "workbench.doctor.engine_join",
    "workbench.analysis.doctor_teaching": "workbench.doctor.teaching",
    "workbench.analysis.engine_table": "workbench.tables.engine_table",
    "workbench.analysis.results": "workbench.tables.results",
    "workbench.backends.onnxruntime_backend": "workbench.backends.onnxruntime.engine",
    "workbench.backends.trt_build": "workbench.backends.tensorrt.build",
    "workbench.backends.tensorrt_backend": "workbench.backends.tensorrt.runtime",
    "workbench.backends.trt_json": "workbench.backends.tensorrt.trt_json",
    "workbench.backends.trtexec_log": "workbench.backends.tensorrt.trtexec_log",
    "workbench.precision.command": "workbench.workflows.quantize",
    "workbench.precision.sweep": "workbench.workflows.sweep",
    "workbench.precision.evaluate": None,  # split: see its docstring
}
FACES = {"workbench", "workbench.doctor", "workbench.views", "workbench.workflows", "workbench.analysis",
         "workbench.tables", "workbench.datasets", "workbench.precision", "workbench.backends"}


def _fresh_import(name: str):
    for key in [k for k in sys.modules if k == name]:
        del sys.modules[key]
    return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_paths_warn_and_resolve_to_the_new_home(old):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = _fresh_import(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
    new = MOVED[old]
    if new is None:
        assert module.ort_session is importlib.import_module("workbench.backends.onnxruntime.session").ort_session
        assert module.top1_accuracy is importlib.import_module("workbench.analysis.accuracy").top1_accuracy
        return
    target = importlib.import_module(new)
    public = [n for n in vars(target) if not n.startswith("_") and getattr(target, n).__class__.__name__ in
              ("function", "type")]
    assert public, new
    for name in public:
        assert getattr(module, name) is getattr(target, name), name


def test_renamed_build_recipe_error_keeps_its_old_name_at_the_old_path():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = _fresh_import("workbench.backends.trt_build")
    from workbench.backends.tensorrt.recipe import BuildRecipeError
    from workbench.errors import WorkbenchError
    from workbench.precision.recipe import RecipeError

    assert old.RecipeError is BuildRecipeError
    assert BuildRecipeError is not RecipeError  # one name, one meaning
    from workbench.backends.tensorrt.trt_json import TrtJsonError

    assert issubclass(TrtJsonError, WorkbenchError)


def _imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


def test_nothing_of_ours_imports_a_deprecated_path():
    sources = [p for p in PACKAGE.rglob("*.py")] + list((REPO / "tests").rglob("*.py")) + list(
        (REPO / "bench").glob("*.py"))
    offenders = []
    for path in sources:
        if path == Path(__file__) or path.relative_to(REPO).as_posix().replace("/", ".")[:-3] in MOVED:
            continue
        for name in _imports(ast.parse(path.read_text())):
            if name in MOVED:
                offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


# The lessons, and the apps Voilà serves (workbench app doctor|tradeoffs).
@pytest.mark.parametrize("notebook", sorted(str(p.relative_to(REPO)) for p in [
    *(REPO / "notebooks").glob("*.ipynb"), *(PACKAGE / "apps").glob("*.ipynb")]))
def test_notebooks_import_only_the_public_faces(notebook):
    code = _notebook_code(REPO / notebook)
    lines = [line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))]
    tree = ast.parse("\n".join(lines))
    deep = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workbench"):
            if node.module not in FACES:
                deep.append(node.module)
        elif isinstance(node, ast.Import):
            deep += [a.name for a in node.names if a.name.startswith("workbench") and a.name not in FACES]
    assert deep == [], f"{notebook} imports internal modules; export what it needs from a face"


def test_faces_resolve_every_public_name():
    deprecated = {"workbench.precision": {"evaluate_variant", "top1_accuracy", "quantize_command",
                                          "OutputExistsError", "measure_variants"}}
    for face in sorted(FACES):
        module = importlib.import_module(face)
        for name in module.__all__:
            if name in deprecated.get(face, ()):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)
                assert getattr(module, name) is not None, f"{face}.{name}"


def test_import_workbench_imports_nothing_heavy():
    code = ("import sys, workbench, workbench.doctor, workbench.views, workbench.workflows\n"
            "heavy = ['onnxruntime', 'pandas', 'plotly', 'ipywidgets', 'tensorrt', 'pycuda', 'modelopt', 'torch']\n"
            "print([m for m in heavy if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_import_linter_contracts_hold():
    # make test runs lint-imports too; here it also guards a plain `pytest` run
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


MAX_MODULE_LINES = 900
MAX_FUNCTION_LINES = 80
LONG_REASON = "# long:"  # a function may be longer with its reason written beside its def


def test_modules_and_functions_stay_small():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        name = path.relative_to(REPO)
        if len(lines) > MAX_MODULE_LINES:
            problems.append(f"{name}: {len(lines)} lines (split it along its sections)")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            nearby = " ".join(lines[max(start - 2, 0):node.lineno])
            if length > MAX_FUNCTION_LINES and LONG_REASON not in nearby:
                problems.append(f"{name}:{node.lineno} {node.name}: {length} lines (split it by phase, or "
                                f"write '{LONG_REASON} why' beside its def)")
    assert problems == []
