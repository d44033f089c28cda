"""The plan file's schema and its reader: YAML with the line of every key, JSON Schema errors as
problems that name the key, its line and the fix.

:data:`PLAN_SCHEMA` is a JSON Schema (draft 2020-12); its variant entries take every
:class:`~workbench.precision.Recipe` setting, read from the dataclass itself so that a setting
added to recipes is accepted in plans without a second list to keep. :func:`parse_yaml` reads
YAML 1.2 numbers (``1e-3`` is a number, not text as in PyYAML's YAML 1.1) and refuses keys given
twice; :func:`schema_problems` turns every schema error into a :class:`Problem`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

import jsonschema
import yaml

from workbench.errors import WorkbenchError
from workbench.precision.calibrator import METHODS
from workbench.precision.recipe import HIGH_PRECISIONS, PRECISIONS, TOOLS, Recipe
from workbench.workflows.cluster import check_address
from workbench.workflows.jobs import ClusterError
from workbench.workflows.plan_metric import metric_names

PLAN_VERSION = 1
BACKENDS = ("onnxruntime", "tensorrt")
PERCENTILES = {"median": "median_ms", "p50": "median_ms", "p90": "p90_ms", "p99": "p99_ms"}
# Gate -> the settings a gate entry may carry besides ``limit``, ``variants`` and ``backend``.
GATE_SETTINGS = {
    "max_accuracy_drop": (),
    "min_sqnr_db": (),
    "min_cosine": (),
    "atol": (),
    "rtol": (),
    "max_latency_ms": ("percentile", "batch"),
    "min_throughput": ("batch",),
    "max_model_mb": (),
}
# Keys of a variant entry that are not Recipe settings.
VARIANT_EXTRA_KEYS = ("drop_calibration_samples", "expect")


class PlanError(WorkbenchError, ValueError):
    """A plan that cannot run as written. ``problems`` holds every problem found.

    ``str(err)`` is one line: the first problem (``plan.yaml:7: variants[1].method: ...``),
    and how many more there are.
    """

    def __init__(self, problems: Sequence["Problem"], path=None):
        self.problems = list(problems)
        self.path = None if path is None else str(path)
        first = self.problems[0].text(self.path) if self.problems else "invalid plan"
        more = len(self.problems) - 1
        if more > 0:
            first += f" (and {more} more problem{'s' if more > 1 else ''}: `workbench plan check PLAN` lists them)"
        super().__init__(first)

    def to_dict(self) -> dict:
        return {"plan": self.path, "problems": [p.to_dict() for p in self.problems]}


@dataclass(frozen=True)
class Problem:
    """One problem in a plan: the key (``gates.max_latency_ms[0].batch``), its line and what to do."""

    key: str
    message: str
    line: int | None = None

    def text(self, path: str | None = None) -> str:
        where = f"{path}:{self.line}" if path and self.line else (path or (f"line {self.line}" if self.line else ""))
        return f"{where + ': ' if where else ''}{self.key or '(plan)'}: {self.message}"

    def to_dict(self) -> dict:
        return {"key": self.key, "line": self.line, "message": self.message}


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------

_ANNOTATION_SCHEMAS = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "tuple[str, ...]": {"type": "array", "items": {"type": "string"}},
}
_RECIPE_ENUMS = {
    "precision": list(PRECISIONS),
    "method": sorted(METHODS),
    "sample_selection": ["first", "random"],
    "high_precision": list(HIGH_PRECISIONS),
    "tool": list(TOOLS),
}


def _recipe_properties() -> dict:
    """JSON Schema properties for every :class:`Recipe` setting, read from the dataclass itself,
    so a setting added to recipes is accepted in plans without a second list to keep."""
    props = {}
    for f in fields(Recipe):
        parts = [p.strip() for p in str(f.type).split("|")]
        options = [dict(_ANNOTATION_SCHEMAS[p]) for p in parts if p != "None"]
        if f.name in _RECIPE_ENUMS:
            options[0]["enum"] = _RECIPE_ENUMS[f.name]
        if "None" in parts:
            options.append({"type": "null"})
        props[f.name] = options[0] if len(options) == 1 else {"anyOf": options}
    return props


def _gate_schema(gate: str) -> dict:
    entry = {
        "type": "object",
        "properties": {
            "limit": {"type": "number"},
            "variants": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "backend": {"enum": list(BACKENDS)},
            "percentile": {"enum": list(PERCENTILES)},
            "batch": {"type": "integer", "minimum": 1},
        },
        "required": ["limit"],
        "additionalProperties": False,
    }
    for setting in ("percentile", "batch"):
        if setting not in GATE_SETTINGS[gate]:
            del entry["properties"][setting]
    return {"anyOf": [{"type": "number"}, entry, {"type": "array", "items": entry, "minItems": 1}]}


PLAN_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "trt-workbench plan",
    "type": "object",
    "properties": {
        "version": {"const": PLAN_VERSION},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "model": {"type": "string"},
        "model_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "calibration": {"type": ["string", "null"]},
        "evaluation": {"type": "string"},
        "metric": {"enum": metric_names()},
        "variants": {
            "type": "array",
            "minItems": 1,
            "items": {"anyOf": [
                {"enum": list(PRECISIONS)},
                {
                    "type": "object",
                    "properties": {
                        **_recipe_properties(),
                        "drop_calibration_samples": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "expect": {
                            "type": "object",
                            "properties": {
                                "calibration_sha256": {"type": ["string", "null"]},
                                "sha256": {"type": "string"},
                            },
                            "additionalProperties": False,
                        },
                    },
                    "required": ["precision"],
                    "additionalProperties": False,
                },
            ]},
        },
        "backends": {"type": "array", "items": {"enum": list(BACKENDS)}, "minItems": 1, "uniqueItems": True},
        "batch_sizes": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                        "uniqueItems": True},
        "benchmark": {
            "type": "object",
            "properties": {
                "iterations": {"type": "integer", "minimum": 1},
                "warmup": {"type": "integer", "minimum": 0},
                "rounds": {"type": "integer", "minimum": 1},
                "threads": {"type": ["integer", "null"], "minimum": 1},
            },
            "additionalProperties": False,
        },
        "profile_layers": {"type": "boolean"},
        "require_tensorrt": {"type": "boolean"},
        "build_recipe": {"type": "string"},
        "doctor": {"anyOf": [
            {"type": "boolean"},
            {
                "type": "object",
                "properties": {
                    "target_drop": {"type": "number", "exclusiveMinimum": 0},
                    "variant": {"type": "string"},
                    "layerwise_samples": {"type": "integer", "minimum": 1},
                },
                "additionalProperties": False,
            },
        ]},
        "gates": {
            "type": ["object", "null"],
            "properties": {gate: _gate_schema(gate) for gate in GATE_SETTINGS},
            "additionalProperties": False,
        },
        "report": {"type": ["string", "null"]},
        "junit": {"type": ["string", "null"]},
        "results": {"type": ["string", "null"]},
        "scheduler": {"type": ["string", "null"]},
    },
    "required": ["model", "evaluation", "variants"],
    "additionalProperties": False,
}

_FIXES = {
    "model": "add `model: path/to/model.onnx` (relative to the plan file)",
    "evaluation": "add `evaluation: path/to/eval.npz` (one array per model input, plus `labels`)",
    "variants": "add `variants:` with at least one recipe, e.g. `- precision: fp16`",
    "limit": "give the gate's limit, e.g. `{limit: 1.0}`",
    "precision": "give each variant a `precision:` (fp32, fp16, bf16, int8 or fp8)",
}


# --------------------------------------------------------------------------------------------
# Reading YAML with lines
# --------------------------------------------------------------------------------------------


class _PlanLoader(yaml.SafeLoader):
    """YAML with YAML 1.2's floats: ``1e-3`` is a number (PyYAML's 1.1 rules read it as text)."""


_PlanLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def key_text(path: Iterable) -> str:
    """``("variants", 1, "method")`` -> ``variants[1].method``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_yaml(text: str, source: str = "plan") -> tuple[Any, dict[tuple, int]]:
    """Parse YAML, keeping the line (1-based) of every key and list item.

    Args:
        text: The YAML text.
        source: The file name, for messages.

    Returns:
        ``(data, lines)`` with ``lines`` mapping key paths (``("variants", 1, "method")``) to lines.

    Raises:
        PlanError: Not YAML (with the line the parser stopped at), or a key given twice.
    """
    loader = _PlanLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        raise PlanError([Problem("", f"not valid YAML: {problem}. Fix the syntax there.",
                                 None if mark is None else mark.line + 1)], source) from err
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {}
    problems: list[Problem] = []
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _walk(node, (), lines, problems)
    if problems:
        raise PlanError(problems, source)
    return data, lines


def _walk(node, path: tuple, lines: dict, problems: list) -> None:
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            here = path + (key,)
            if key in seen:
                problems.append(Problem(key_text(here), "given twice; keep one.", key_node.start_mark.line + 1))
            seen.add(key)
            lines[here] = key_node.start_mark.line + 1
            _walk(value_node, here, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), lines, problems)


def line_of(lines: Mapping[tuple, int], path: Sequence) -> int | None:
    """The line of ``path``, else of its nearest parent that has one."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


# --------------------------------------------------------------------------------------------
# Schema errors as problems
# --------------------------------------------------------------------------------------------


def schema_problems(data: Any, lines: Mapping[tuple, int] | None = None) -> list[Problem]:
    """Every way ``data`` breaks :data:`PLAN_SCHEMA`, as problems naming the key and the fix."""
    lines = lines or {}
    validator = jsonschema.Draft202012Validator(PLAN_SCHEMA)
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator == "required":
            present = error.instance if isinstance(error.instance, dict) else {}
            for key in [k for k in error.validator_value if k not in present]:
                path = tuple(error.absolute_path) + (key,)
                problems.append(Problem(key_text(path), f"missing; {_FIXES.get(key, 'add it')}.", line_of(lines, path)))
            continue
        path, message = _describe(error)
        problems.append(Problem(key_text(path), message, line_of(lines, path)))
    problems += _scheduler_problems(data, lines)
    return list(dict.fromkeys(problems))  # jsonschema reports a missing key once per missing key


def _scheduler_problems(data: Any, lines: Mapping[tuple, int]) -> list[Problem]:
    """``scheduler:`` must be a Dask scheduler's address (``tcp://HOST:PORT``); reaching it is the run's job."""
    value = data.get("scheduler") if isinstance(data, dict) else None
    if not isinstance(value, str):
        return []  # absent, null, or a wrong type the schema already names
    try:
        check_address(value)
    except ClusterError as err:
        return [Problem("scheduler", str(err), line_of(lines, ("scheduler",)))]
    return []


def _describe(error: jsonschema.ValidationError) -> tuple[tuple, str]:
    """The key path and a message with the fix for one schema error."""
    path = tuple(error.absolute_path)
    if error.validator == "anyOf" and error.context:
        return _describe(_branch_error(error))
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known))
        key = extra[0] if extra else "?"
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return path + (key,), f"unknown key; {hint}known keys here: {', '.join(known)}."
    if error.validator == "required":
        missing = [k for k in error.validator_value if not isinstance(error.instance, dict) or k not in error.instance]
        key = missing[0] if missing else "?"
        return path + (key,), f"missing; {_FIXES.get(key, 'add it')}."  # (nested: the first missing key)
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        return path, f"{error.instance!r} is not allowed; use one of: {', '.join(map(str, allowed))}."
    if error.validator == "type":
        return path, (f"expected {_type_words(error.validator_value)}, got {error.instance!r} "
                      f"({yaml_type(error.instance)}).")
    return path, f"{error.message}."


def _branch_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The sub-error of an ``anyOf`` that matches the value's own kind (a mapping's object branch...)."""
    kind = yaml_type(error.instance)
    candidates = [e for e in error.context if not (e.validator == "type" and len(e.relative_schema_path) <= 2)
                  and not (e.validator == "enum" and len(e.relative_schema_path) <= 2 and kind != "text")]
    if not candidates:  # no branch fits the value's kind: say which kinds are allowed
        kinds = []
        for sub in error.validator_value:
            kinds.append("one of " + ", ".join(map(str, sub["enum"])) if "enum" in sub else
                         _type_words(sub.get("type")))
        return jsonschema.ValidationError(f"expected {' or '.join(kinds)}, got {error.instance!r} ({kind})",
                                          validator="message", path=error.absolute_path, instance=error.instance)
    return jsonschema.exceptions.best_match(candidates)


_TYPE_WORDS = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "nothing (null)"}


def _type_words(wanted) -> str:
    wanted = wanted if isinstance(wanted, list) else [wanted]
    return " or ".join(_TYPE_WORDS.get(w, str(w)) for w in wanted)


def yaml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__
