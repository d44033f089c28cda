"""Every TensorRT name the backend uses exists in TensorRT 10.16 and 11.1 (or is version-guarded).

TensorRT cannot be installed here, so the check is static. ../shared/trt-api/ lists every name
the ``tensorrt`` Python module exposes in 10.16 and 11.1 (read from the bindings' sources; see
its README). The tests read every module of ``workbench/backends/tensorrt/`` that talks to
TensorRT (the build side and the runtime side) with :mod:`ast` and collect:

* attribute chains rooted at the name ``tensorrt`` is imported as (it must be ``trt``):
  ``trt.Builder``, ``trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED``, ``trt.nptype``...;
* members used on TensorRT objects: a variable, parameter or ``self`` attribute annotated with a
  TensorRT class (``engine: trt.ICudaEngine``) makes ``engine.get_tensor_name`` count as
  ``ICudaEngine.get_tensor_name``; the modules annotate every TensorRT object they touch;
* methods overridden in subclasses of TensorRT interfaces (``IProgressMonitor.phase_start``).

Each collected name must be in the module's declared list (``TRT_BUILD_NAMES_USED``,
``TRT_RUNTIME_NAMES_USED`` in ``backends/tensorrt/api_names.py``; ``TRT_NAMES_USED`` is their union) and vice versa, and must exist in
both API lists. The one documented exception is ``ILogger.log``: the lists come from the
bindings' ``def`` calls and the abstract ``ILogger`` has none, but TensorRT's Python docs
(python_api/infer/Core/Logger.html) tell users to subclass ``trt.ILogger`` and override
``log(severity, msg)``, which ``Logger.log`` (in both lists) corroborates.

Version guard: a name found in only one list may be used only inside an ``if`` whose test calls
``trt_major()``, and must be listed in ``api_names.VERSION_GUARDED`` as
``{"name": "10"}`` (the major version that has it). Names 11.x removed (``BuilderFlag.FP16``,
``IInt8Calibrator``...) can therefore not slip in unguarded.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workbench.backends.tensorrt import api_names

REPO = Path(__file__).resolve().parents[1]
API_DIR = REPO.parent / "shared" / "trt-api"
TRT_DIR = REPO / "workbench" / "backends" / "tensorrt"
BUILD_FILES = ("recipe", "shapes", "cache", "trtexec", "progress", "log", "build", "onnx_ops")
RUNTIME_FILES = ("runtime", "engine_io", "execution", "timing")
# side -> (its files, the names it declares)
MODULES = {
    "build": ([TRT_DIR / f"{name}.py" for name in BUILD_FILES], api_names.TRT_BUILD_NAMES_USED),
    "runtime": ([TRT_DIR / f"{name}.py" for name in RUNTIME_FILES], api_names.TRT_RUNTIME_NAMES_USED),
}
DOCUMENTED_OVERRIDES = {
    "ILogger.log": "python_api/infer/Core/Logger.html: class MyLogger(trt.ILogger): def log(self, severity, msg)",
}
GUARD_FUNCTION = "trt_major"


def read_names(version: str) -> set[str]:
    lines = (API_DIR / f"tensorrt-{version}.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


@pytest.fixture(scope="module")
def api() -> dict[str, set[str]]:
    return {"10": read_names("10.16"), "11": read_names("11.1")}


# ------------------------------------------------------------------------------------------
# The collector


@dataclass
class Usage:
    """TensorRT names used by one source file: name -> line numbers, plus import problems."""

    names: dict[str, list[int]] = field(default_factory=dict)
    guarded: dict[str, list[int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, name: str, line: int, guarded: bool) -> None:
        self.names.setdefault(name, []).append(line)
        if guarded:
            self.guarded.setdefault(name, []).append(line)


def chain_of(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ``["a", "b", "c"]``; None if not a pure name/attribute chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


class TrtUsageCollector(ast.NodeVisitor):
    """Collects TensorRT names from a module's AST (see the module docstring)."""

    def __init__(self, aliases: set[str]):
        self.aliases = aliases
        self.usage = Usage()
        self.scopes: list[dict[str, str]] = [{}]  # variable -> TensorRT class, per function
        self.self_types: list[dict[str, str]] = [{}]  # self attribute -> class, per class
        self.guards = 0  # depth of `if trt_major() ...` blocks

    # -- helpers
    def annotation_class(self, annotation) -> str | None:
        if annotation is None:
            return None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            annotation = ast.parse(annotation.value, mode="eval").body
        if isinstance(annotation, ast.BinOp):  # trt.X | None
            return self.annotation_class(annotation.left) or self.annotation_class(annotation.right)
        chain = chain_of(annotation)
        if chain and chain[0] in self.aliases and len(chain) == 2:
            return chain[1]
        return None

    def record(self, name: str, node: ast.AST) -> None:
        self.usage.add(name, node.lineno, self.guards > 0)

    # -- scopes
    def visit_ClassDef(self, node: ast.ClassDef):
        for base in node.bases:
            chain = chain_of(base)
            if chain and chain[0] in self.aliases:
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                        self.record(f"{'.'.join(chain[1:])}.{item.name}", item)
        types = {}
        for item in ast.walk(node):
            if isinstance(item, ast.AnnAssign):
                target = chain_of(item.target)
                cls = self.annotation_class(item.annotation)
                if cls and target and len(target) == 2 and target[0] == "self":
                    types[target[1]] = cls
        self.self_types.append(types)
        self.generic_visit(node)
        self.self_types.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef):
        scope = {}
        for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
            cls = self.annotation_class(arg.annotation)
            if cls:
                scope[arg.arg] = cls
        for item in ast.walk(node):
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                cls = self.annotation_class(item.annotation)
                if cls:
                    scope[item.target.id] = cls
        self.scopes.append(scope)
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If):
        is_guard = any(
            isinstance(n, ast.Call) and chain_of(n.func) and chain_of(n.func)[-1] == GUARD_FUNCTION
            for n in ast.walk(node.test)
        )
        self.visit(node.test)
        self.guards += is_guard
        for item in node.body + node.orelse:
            self.visit(item)
        self.guards -= is_guard

    # -- names
    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "tensorrt" and alias.asname != "trt":
                self.usage.problems.append(f"line {node.lineno}: import tensorrt as trt (not {alias.asname!r})")

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if (node.module or "").split(".")[0] == "tensorrt":
            self.usage.problems.append(f"line {node.lineno}: 'from tensorrt import' hides names from this check")

    def visit_Attribute(self, node: ast.Attribute):
        chain = chain_of(node)
        if chain:
            if chain[0] in self.aliases:
                self.record(".".join(chain[1:]), node)
                return  # the whole chain is one name; do not count its prefixes
            cls = self.scopes[-1].get(chain[0])
            if cls:
                self.record(f"{cls}.{chain[1]}", node)
            elif chain[0] == "self" and len(chain) >= 3 and chain[1] in self.self_types[-1]:
                self.record(f"{self.self_types[-1][chain[1]]}.{chain[2]}", node)
        self.generic_visit(node)


def collect(source: str) -> Usage:
    """The TensorRT names a module's source uses (see the module docstring)."""
    tree = ast.parse(source)
    aliases = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "tensorrt"
    }
    collector = TrtUsageCollector(aliases)
    collector.visit(tree)
    return collector.usage


def problems_with(usage: Usage, api: dict[str, set[str]], guarded: dict[str, str]) -> list[str]:
    """Names missing from a supported version, unguarded, or guarded wrongly."""
    both = api["10"] & api["11"]
    problems = list(usage.problems)
    for name, lines in sorted(usage.names.items()):
        if name in both or name in DOCUMENTED_OVERRIDES:
            continue
        if name not in guarded:
            missing = [v for v in ("10", "11") if name not in api[v]]
            problems.append(f"{name} (lines {lines}) is not in TensorRT {', '.join(missing)}")
        elif usage.guarded.get(name, []) != lines:
            problems.append(f"{name} (lines {lines}) is used outside an `if {GUARD_FUNCTION}()` block")
    for name, version in guarded.items():
        if name not in api[version]:
            problems.append(f"VERSION_GUARDED says {name} is in TensorRT {version}; it is not")
    return problems


def collect_files(paths) -> Usage:
    """The TensorRT names several files use, lines as ``"file.py:line"``."""
    merged = Usage()
    for path in paths:
        usage = collect(path.read_text())
        for name, lines in usage.names.items():
            for line in lines:
                merged.add(name, f"{path.name}:{line}", line in usage.guarded.get(name, []))
        merged.problems += [f"{path.name}: {problem}" for problem in usage.problems]
    return merged


@pytest.fixture(scope="module")
def usages() -> dict[str, Usage]:
    return {key: collect_files(paths) for key, (paths, _declared) in MODULES.items()}


def test_every_tensorrt_module_is_checked():
    # a new module under backends/tensorrt/ that touches TensorRT must join a side above
    checked = {p.name for paths, _ in MODULES.values() for p in paths}
    for path in TRT_DIR.glob("*.py"):
        if "tensorrt" in path.read_text() and "import tensorrt" in path.read_text():
            assert path.name in checked, path.name


# ------------------------------------------------------------------------------------------
# The checks on the real modules


def test_api_lists_are_what_the_checks_assume(api):
    removed = api["10"] - api["11"]
    for name in ("BuilderFlag.FP16", "BuilderFlag.INT8", "IInt8Calibrator", "Builder.platform_has_fast_fp16",
                 "NetworkDefinitionCreationFlag.EXPLICIT_BATCH", "IBuilderConfig.int8_calibrator"):
        assert name in removed, name
    assert "NetworkDefinitionCreationFlag.STRONGLY_TYPED" in api["10"] & api["11"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_declared_names_match_the_source(module, usages):
    _path, declared = MODULES[module]
    found = set(usages[module].names)
    assert found, "the collector found nothing: did the import alias change?"
    assert sorted(found - set(declared)) == [], "used but not declared"
    assert sorted(set(declared) - found) == [], "declared but not used"
    assert usages[module].problems == []


def test_union_is_declared():
    assert set(api_names.TRT_NAMES_USED) == set(api_names.TRT_BUILD_NAMES_USED) | set(
        api_names.TRT_RUNTIME_NAMES_USED
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_name_exists_in_tensorrt_10_and_11(module, usages, api):
    assert problems_with(usages[module], api, api_names.VERSION_GUARDED) == []


def test_no_name_removed_in_11_is_used_unguarded(usages, api):
    removed = api["10"] - api["11"]
    for module, usage in usages.items():
        unguarded = {name for name in usage.names if name not in usage.guarded}
        assert sorted(unguarded & removed) == [], module


def test_no_bindings_api():
    # TensorRT 10 removed the binding-index API; the name-based I/O API replaces it.
    for path in [p for paths, _declared in MODULES.values() for p in paths]:
        source = path.read_text()
        for old in ("get_binding_", "num_bindings", "execute_async_v2", "binding_is_input", "max_batch_size"):
            assert old not in source, (path.name, old)


def test_documented_override_is_corroborated(api):
    assert "ILogger" in api["10"] & api["11"]
    assert "Logger.log" in api["10"] & api["11"]
    assert "ILogger.log" not in api["10"] | api["11"]  # why it needs documenting


def test_version_guarded_entries_are_single_version(api):
    for name, version in api_names.VERSION_GUARDED.items():
        other = "11" if version == "10" else "10"
        assert version in ("10", "11") and name in api[version] and name not in api[other], name


# ------------------------------------------------------------------------------------------
# The checker itself catches what it must


BAD_SOURCE = '''
from __future__ import annotations

def weak_build(builder, network):
    import tensorrt as trt

    config: trt.IBuilderConfig = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    config.int8_calibrator = None
    return config

def bindings(engine: trt.ICudaEngine):
    return engine.get_binding_shape(0)

class Monitor(trt.IProgressMonitor):
    def phase_begin(self, name):
        pass
'''

GUARDED_SOURCE = '''
def compat(engine):
    import tensorrt as trt

    if trt_major() < 11:
        return trt.BuilderFlag.FP16
    return trt.BuilderFlag.TF32

def careless():
    import tensorrt as trt
    return trt.BuilderFlag.FP16
'''


def test_checker_flags_removed_and_unknown_names(api):
    usage = collect(BAD_SOURCE)
    assert {"BuilderFlag.FP16", "IBuilderConfig.int8_calibrator", "IBuilderConfig.set_flag",
            "ICudaEngine.get_binding_shape", "IProgressMonitor.phase_begin", "ICudaEngine"} <= set(usage.names)
    problems = "\n".join(problems_with(usage, api, {}))
    assert "BuilderFlag.FP16 (lines [8]) is not in TensorRT 11" in problems
    assert "IBuilderConfig.int8_calibrator (lines [9]) is not in TensorRT 11" in problems
    assert "ICudaEngine.get_binding_shape (lines [13]) is not in TensorRT 10, 11" in problems
    assert "IProgressMonitor.phase_begin" in problems
    assert "IBuilderConfig.set_flag" not in problems


def test_checker_accepts_only_guarded_single_version_names(api):
    usage = collect(GUARDED_SOURCE)
    assert usage.guarded == {"BuilderFlag.FP16": [6]}
    problems = problems_with(usage, api, {"BuilderFlag.FP16": "10"})
    assert problems == ["BuilderFlag.FP16 (lines [6, 11]) is used outside an `if trt_major()` block"]
    guarded_only = collect(GUARDED_SOURCE.split("def careless")[0])
    assert problems_with(guarded_only, api, {"BuilderFlag.FP16": "10"}) == []
    assert problems_with(guarded_only, api, {"BuilderFlag.FP16": "11"}) == [
        "VERSION_GUARDED says BuilderFlag.FP16 is in TensorRT 11; it is not"
    ]


def test_checker_requires_the_trt_alias():
    usage = collect("import tensorrt as tr\nfrom tensorrt import Builder\nx = tr.Builder\n")
    assert len(usage.problems) == 2 and usage.names == {"Builder": [3]}
