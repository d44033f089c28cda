"""Making and scoring INT8 configurations for the doctor, and the search for the smallest fix.

One function makes variants (:func:`quantize_int8`, the only place that calls
:func:`workbench.precision.make_variant`); one object scores them (:class:`Evaluator`: top-1 on
the evaluation set, one *full evaluation* per new configuration, cached, counted and logged).

The search (:func:`search_exclusions`) never tries nodes one at a time. It takes the candidates
ranked by the layerwise pass (worst local error first), and:

1. gallops: excludes the first 1, 2, 4, ... candidates until the top-1 drop is under the target
   (excluding every quantized node gives the FP32 model: known without an evaluation);
2. bisects between the last prefix that failed and the first that passed;
3. prunes: tries dropping each member of the passing prefix, least suspicious first, keeping
   the drop when the target still holds (so an innocent neighbour in the ranking is not kept
   in FP32).

With monotone accuracy (excluding more never hurts) step 1-2 finds the shortest passing prefix
in ``O(log n)`` evaluations; step 3 costs one evaluation per member kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from workbench.analysis.accuracy import top1_accuracy
from workbench.errors import WorkbenchError
from workbench.precision import Recipe, make_variant


class DoctorError(WorkbenchError, ValueError):
    """The doctor cannot run as asked; the message names the problem and the fix."""


@dataclass(frozen=True)
class Config:
    """One INT8 configuration: the user's recipe with some changes.

    Attributes:
        exclude: Node names kept out of INT8 (sorted).
        method: Calibration method.
        drop_samples: Calibration sample indices left out (sorted).
        num_samples: Use only the first this many calibration samples (None: all).
    """

    exclude: tuple[str, ...] = ()
    method: str = "minmax"
    drop_samples: tuple[int, ...] = ()
    num_samples: int | None = None

    @classmethod
    def make(cls, exclude=(), method="minmax", drop_samples=(), num_samples=None) -> "Config":
        """A configuration with ``exclude``/``drop_samples`` sorted and de-duplicated (so equal ones hash equal)."""
        return cls(tuple(sorted(set(exclude))), method, tuple(sorted(set(int(i) for i in drop_samples))),
                   None if num_samples is None else int(num_samples))

    def to_dict(self) -> dict:
        """The configuration as a JSON-able dict."""
        return {"exclude": list(self.exclude), "method": self.method, "drop_samples": list(self.drop_samples),
                "num_samples": self.num_samples}


def quantize_int8(model_path, calib: Mapping[str, np.ndarray], *, recipe=None, config: Config = Config(),
                  workspace=None):
    """Make (or reuse from the workspace cache) the Q/DQ variant for a configuration.

    The one place the doctor makes variants: :func:`workbench.precision.make_variant` with the
    user's :class:`~workbench.precision.Recipe` changed by ``config`` (``exclude_nodes`` added,
    ``method``, ``num_samples``; dropped calibration samples removed from the data).

    Args:
        model_path: The FP32 model file.
        calib: Calibration arrays (input name -> ``[samples, ...]``).
        recipe: The base recipe (a Recipe or dict; default ``Recipe("int8")``).
        config: What to change.
        workspace: Variant folder (default: the workspace's ``variants``).

    Returns:
        The :class:`workbench.precision.Variant`.
    """

    base = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe) if recipe else Recipe("int8")
    exclude = tuple(dict.fromkeys(tuple(base.exclude_nodes) + tuple(config.exclude)))
    changed = base.with_(exclude_nodes=exclude, method=config.method,
                         num_samples=config.num_samples if config.num_samples is not None else base.num_samples)
    data = dict(calib)
    if config.drop_samples:
        keep = np.setdiff1d(np.arange(next(iter(data.values())).shape[0]), np.asarray(config.drop_samples))
        data = {k: v[keep] for k, v in data.items()}
    return make_variant(str(model_path), changed, data, workspace=workspace, progress=False)


@dataclass
class Evaluation:
    """One full pass over the evaluation set (``worker``: the Dask worker that ran it, None here)."""

    what: str
    config: dict | None
    top1: float
    seconds: float
    path: str
    worker: str | None = None


@dataclass
class Evaluator:
    """Scores configurations with full evaluations, each configuration at most once.

    Attributes:
        model_path: The FP32 model.
        calib: Calibration arrays.
        inputs, labels: The evaluation set.
        recipe: The base recipe.
        workspace: Variant folder.
        runner: None to evaluate here; else ``runner(evaluator, configs) -> [{"top1", "seconds",
            "path", "worker"}]``, which evaluates the configurations elsewhere (in parallel) the
            way :meth:`evaluate_here` does (``workbench.workflows.doctor_jobs`` makes one for a
            Dask cluster).
        log: Every evaluation run, in order.
    """

    model_path: Path
    calib: Mapping[str, np.ndarray]
    inputs: Mapping[str, np.ndarray]
    labels: np.ndarray
    recipe: object = None
    workspace: object = None
    all_nodes: frozenset = frozenset()
    fp32_top1: float | None = None
    runner: Callable | None = None
    log: list[Evaluation] = field(default_factory=list)
    _cache: dict = field(default_factory=dict)
    _variants: dict = field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        """Full passes over the evaluation set so far."""
        return len(self.log)

    def fp32(self) -> float:
        """Top-1 of the FP32 model (one evaluation, the first time)."""
        if self.fp32_top1 is None:
            started = time.perf_counter()
            self.fp32_top1 = top1_accuracy(self.model_path, self.inputs, self.labels, batch_size=256)
            self.log.append(Evaluation("fp32", None, self.fp32_top1, time.perf_counter() - started,
                                       str(self.model_path)))
        return self.fp32_top1

    def variant(self, config: Config):
        """The variant for ``config`` (made once)."""
        if config not in self._variants:
            self._variants[config] = quantize_int8(self.model_path, self.calib, recipe=self.recipe, config=config,
                                                   workspace=self.workspace)
        return self._variants[config]

    def known(self, config: Config) -> float | None:
        """Top-1 of ``config`` if known without a new evaluation (cached, or every node excluded)."""
        if config in self._cache:
            return self._cache[config]
        if self.all_nodes and set(config.exclude) >= self.all_nodes and self.fp32_top1 is not None:
            return self.fp32_top1  # nothing quantized: the FP32 model
        return None

    def __call__(self, config: Config, what: str = "search") -> float:
        """Top-1 of ``config`` (a full evaluation unless known)."""
        return self.evaluate_many([config], what)[0]

    def evaluate_here(self, config: Config) -> dict:
        """One full evaluation of ``config`` in this process (what a runner runs on a worker).

        Returns:
            ``{"top1", "seconds", "path", "worker": None}``.
        """
        started = time.perf_counter()
        variant = self.variant(config)
        value = top1_accuracy(variant.ort_path, self.inputs, self.labels, options=variant.ort_session_options,
                              batch_size=256)
        return {"top1": value, "seconds": time.perf_counter() - started, "path": str(variant.path), "worker": None}

    def evaluate_many(self, configs: Sequence[Config], what: str | Sequence[str] = "search") -> list[float]:
        """Top-1 of each configuration; those not yet known are evaluated together (in parallel with a runner).

        Args:
            configs: The configurations.
            what: The log's label, one for all or one per configuration.

        Returns:
            The top-1 values, in order.
        """
        whats = [what] * len(configs) if isinstance(what, str) else list(what)
        todo = {}
        for config, label in zip(configs, whats):
            if self.known(config) is None and config not in todo:
                todo[config] = label
        if todo:
            outcomes = (self.runner(self, list(todo)) if self.runner is not None
                        else [self.evaluate_here(c) for c in todo])
            for (config, label), outcome in zip(todo.items(), outcomes):
                self._cache[config] = outcome["top1"]
                self.log.append(Evaluation(label, config.to_dict(), outcome["top1"], outcome["seconds"],
                                           outcome["path"], outcome.get("worker")))
        return [self.known(c) for c in configs]

    def log_dicts(self) -> list[dict]:
        """The evaluation log as JSON-able dicts (``what``, ``config``, ``top1``, ``seconds``, ``path``, ``worker``)."""
        return [{"what": e.what, "config": e.config, "top1": e.top1, "seconds": round(e.seconds, 4), "path": e.path,
                 "worker": e.worker} for e in self.log]


@dataclass
class SearchResult:
    """What :func:`search_exclusions` found.

    Attributes:
        exclude: The smallest passing set found (empty when none was needed), or None if none passes.
        top1: Its top-1.
        steps: Every configuration scored, in order: ``{"exclude", "top1", "passed", "phase"}``.
        evaluations: Full evaluations the search itself ran.
    """

    exclude: list[str] | None
    top1: float | None
    steps: list[dict]
    evaluations: int


def search_exclusions(
    ranked: Sequence[str],
    score: Callable[[Sequence[str]], float],
    passes: Callable[[float], bool],
    *,
    known: Callable[[Sequence[str]], float | None] = lambda exclude: None,
    prune: bool = True,
    max_prune: int = 12,
) -> SearchResult:
    """The shortest prefix of ``ranked`` whose exclusion passes, then pruned (see the module docstring).

    Args:
        ranked: Candidate nodes, most suspicious first.
        score: Top-1 with these nodes excluded (a full evaluation).
        passes: Whether a top-1 meets the target.
        known: Top-1 known without an evaluation (cached or trivially FP32), or None.
        prune: Try removing members of the found prefix.
        max_prune: Skip pruning when the prefix is longer than this.

    Returns:
        The :class:`SearchResult`.
    """
    steps: list[dict] = []
    evaluations = 0

    def run(exclude: Sequence[str], phase: str) -> bool:
        nonlocal evaluations
        value = known(exclude)
        if value is None:
            value = score(exclude)
            evaluations += 1
        ok = bool(passes(value))
        steps.append({"exclude": list(exclude), "top1": value, "passed": ok, "phase": phase})
        return ok

    n = len(ranked)
    if n == 0:
        return SearchResult(None, None, steps, 0)
    lo, hi = 0, None  # prefix lengths: lo fails (0 = the naive variant), hi passes
    k = 1
    while k < n:
        if run(ranked[:k], "gallop"):
            hi = k
            break
        lo = k
        k *= 2
    if hi is None:
        if not run(ranked[:n], "gallop"):
            return SearchResult(None, None, steps, evaluations)
        hi = n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run(ranked[:mid], "bisect"):
            hi = mid
        else:
            lo = mid
    chosen = list(ranked[:hi])
    if prune and 1 < len(chosen) <= max_prune:
        for node in reversed(list(ranked[:hi])):
            trial = [c for c in chosen if c != node]
            if trial and run(trial, "prune"):
                chosen = trial
    final = next(s["top1"] for s in reversed(steps) if s["passed"] and sorted(s["exclude"]) == sorted(chosen))
    return SearchResult(chosen, final, steps, evaluations)


def one_at_a_time(
    nodes: Sequence[str],
    score: Callable[[Sequence[str]], float],
    passes: Callable[[float], bool],
) -> SearchResult:
    """The brute-force baseline: exclude each node alone, rank by top-1, then add them greedily.

    Costs ``len(nodes)`` evaluations for the ranking plus one per node added (the bench compares
    :func:`search_exclusions` against this).

    Args:
        nodes: The quantized nodes.
        score: Top-1 with these nodes excluded (a full evaluation).
        passes: Whether a top-1 meets the target.

    Returns:
        The :class:`SearchResult` (``exclude`` None when even every node excluded fails).
    """
    steps = []
    evaluations = 0
    alone = {}
    for node in nodes:
        alone[node] = score([node])
        evaluations += 1
        steps.append({"exclude": [node], "top1": alone[node], "passed": passes(alone[node]), "phase": "alone"})
    order = sorted(nodes, key=lambda n: -alone[n])
    chosen: list[str] = []
    for node in order:
        chosen.append(node)
        value = alone[node] if len(chosen) == 1 else score(list(chosen))
        if len(chosen) > 1:
            evaluations += 1
            steps.append({"exclude": list(chosen), "top1": value, "passed": passes(value), "phase": "greedy"})
        if passes(value):
            return SearchResult(list(chosen), value, steps, evaluations)
    return SearchResult(None, None, steps, evaluations)
