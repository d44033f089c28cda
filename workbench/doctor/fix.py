"""Making and scoring INT8 configurations for the doctor, and the search for the smallest fix.

One function makes variants (:func:`quantize_int8`, the only place that calls
:func:`workbench.precision.make_variant`); one object scores them (:class:`Evaluator`: the
chosen :mod:`~workbench.analysis.metrics` metric on the evaluation set, against the labels or
the FP32 model's outputs; one *full evaluation* per new configuration, cached, counted and logged).

The search (:func:`search_exclusions`) never tries nodes one at a time. It takes the candidates
ranked by the layerwise pass (worst local error first), and:

1. gallops: excludes the first 1, 2, 4, ... candidates until the metric reaches the target
   (excluding every quantized node gives the FP32 model: known without an evaluation);
2. bisects between the last prefix that failed and the first that passed;
3. prunes: tries putting members of the passing prefix back into INT8, least suspicious
   first, keeping each removal when the target still holds (so an innocent neighbour in the
   ranking is not kept in FP32). A long prefix is pruned in blocks first (half of it, then
   quarters...), then member by member, within an evaluation budget: the fix keeps as much of
   the model in INT8 as the target allows.

With monotone accuracy (excluding more never hurts) step 1-2 finds the shortest passing prefix
in ``O(log n)`` evaluations; step 3 costs about one evaluation per member kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from workbench.analysis.accuracy import evaluate
from workbench.analysis.metrics import Metric, get_metric, reference_value
from workbench.datasets.arrays import ModelData, select_samples
from workbench.datasets.calibration_sets import CalibrationSet
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
        calib: Calibration data: a :class:`~workbench.datasets.calibration_sets.CalibrationSet`
            (with its data description) or input name -> ``[samples, ...]`` arrays.
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
    data = calib if isinstance(calib, CalibrationSet) else dict(calib)
    if config.drop_samples:
        if not isinstance(data, CalibrationSet):
            data = CalibrationSet(data, "calibration", {"mode": "all"})
        keep = np.setdiff1d(np.arange(data.num_samples), np.asarray(config.drop_samples))
        data = CalibrationSet(select_samples(data.inputs, keep, data.sample_axes), data.source,
                              {"mode": "dropped", "dropped": list(config.drop_samples)}, data.sample_axes)
    return make_variant(str(model_path), changed, data, workspace=workspace, progress=False)


def top1_of(metric: Metric, value: float | None) -> float | None:
    """The top-1 fraction a value of ``metric`` stands for (``top1`` is in percent), else None."""
    if value is None or metric.name != "top1":
        return None
    return value / 100.0


@dataclass
class Evaluation:
    """One full pass over the evaluation set.

    Attributes:
        what: Why it ran (``"fp32"``, ``"naive int8"``, ``"search"``...).
        config: The configuration (None for the FP32 model).
        value: The metric's value.
        seconds: Wall time (making the variant included).
        path: The model evaluated.
        top1: The top-1 fraction when the metric is top1, else None.
    """

    what: str
    config: dict | None
    value: float
    seconds: float
    path: str
    top1: float | None = None
    worker: str | None = None  # the Dask worker that ran it; None in process


@dataclass
class Evaluator:
    """Scores configurations with full evaluations, each configuration at most once.

    Attributes:
        model_path: The FP32 model (also the reference of reference metrics).
        calib: Calibration arrays.
        inputs, labels: The evaluation set (labels may be None for reference metrics).
        sample_axes: The evaluation inputs' data description (input -> sample axis or None).
        recipe: The base recipe.
        workspace: Variant folder.
        all_nodes: The quantized nodes (excluding them all is the FP32 model).
        metric: The :class:`~workbench.analysis.metrics.Metric` (default top1).
        batch_size: Samples per inference.
        progress: A :class:`workbench.progress.Progress` for each evaluation's batches, or None.
        report: Called with one line after each evaluation (its value), or None.
        fp32_value: The FP32 model's value once known.
        runner: None to evaluate here; else ``runner(evaluator, configs) -> [{"value", "seconds",
            "path", "worker"}]``, which evaluates the configurations elsewhere (in parallel) the
            way :meth:`evaluate_here` does (``workbench.workflows.doctor_jobs`` makes one for a
            Dask cluster).
        log: Every evaluation run, in order.
    """

    model_path: Path
    calib: Mapping[str, np.ndarray]
    inputs: Mapping[str, np.ndarray]
    labels: np.ndarray | None
    recipe: object = None
    workspace: object = None
    all_nodes: frozenset = frozenset()
    metric: Metric = field(default_factory=lambda: get_metric("top1"))
    sample_axes: dict | None = None
    batch_size: int = 256
    progress: object = None
    report: Callable[[str], None] | None = None
    fp32_value: float | None = None
    runner: Callable | None = None
    log: list[Evaluation] = field(default_factory=list)
    _cache: dict = field(default_factory=dict)
    _variants: dict = field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        """Full passes over the evaluation set so far."""
        return len(self.log)

    def _score(self, path, options=None) -> float:
        """The metric of one model over the evaluation set (the FP32 model run beside it when the
        metric compares with a reference)."""
        reference = self.model_path if self.metric.wants_reference else None
        data = ModelData(dict(self.inputs), self.labels, "evaluation", dict(self.sample_axes or {}))
        result = evaluate(path, data, reference=reference, backend_options=dict(options or {}),
                          batch_size=self.batch_size, top_k=(1,), metric=self.metric, compare_outputs=False,
                          progress=self.progress or False)
        return float(result.metric.value)

    def fp32(self) -> float:
        """The FP32 model's value: known for reference metrics (100 % agreement, infinite SQNR...),
        else one evaluation, the first time."""
        if self.fp32_value is None:
            known = reference_value(self.metric)
            if known is not None:
                self.fp32_value = known
                return known
            started = time.perf_counter()
            self.fp32_value = self._score(self.model_path)
            self._logged(Evaluation("fp32", None, self.fp32_value, time.perf_counter() - started,
                                    str(self.model_path), top1_of(self.metric, self.fp32_value)))
        return self.fp32_value

    def _logged(self, entry: Evaluation) -> None:
        self.log.append(entry)
        if self.report is not None:
            exclude = len((entry.config or {}).get("exclude") or [])
            self.report(f"evaluation {len(self.log)} ({entry.what}"
                        + (f", {exclude} node(s) kept out of INT8" if exclude else "")
                        + f"): {self.metric.name} {self.metric.format(entry.value)} in {entry.seconds:.1f} s")

    def variant(self, config: Config):
        """The variant for ``config`` (made once)."""
        if config not in self._variants:
            self._variants[config] = quantize_int8(self.model_path, self.calib, recipe=self.recipe, config=config,
                                                   workspace=self.workspace)
        return self._variants[config]

    def known(self, config: Config) -> float | None:
        """The value of ``config`` if known without a new evaluation (cached, or every node excluded)."""
        if config in self._cache:
            return self._cache[config]
        if self.all_nodes and set(config.exclude) >= self.all_nodes and self.fp32_value is not None:
            return self.fp32_value  # nothing quantized: the FP32 model
        return None

    def __call__(self, config: Config, what: str = "search") -> float:
        """The metric's value for ``config`` (a full evaluation unless known)."""
        return self.evaluate_many([config], what)[0]

    def evaluate_here(self, config: Config) -> dict:
        """One full evaluation of ``config`` in this process (what a runner runs on a worker).

        Returns:
            ``{"value", "seconds", "path", "worker": None}``.
        """
        started = time.perf_counter()
        variant = self.variant(config)
        value = self._score(variant.ort_path, variant.ort_session_options)
        return {"value": value, "seconds": time.perf_counter() - started, "path": str(variant.path), "worker": None}

    def evaluate_many(self, configs: Sequence[Config], what: str | Sequence[str] = "search") -> list[float]:
        """The metric's value of each configuration; those not yet known are evaluated together
        (in parallel with a runner).

        Args:
            configs: The configurations.
            what: The log's label, one for all or one per configuration.

        Returns:
            The values, in order.
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
                value = outcome["value"]
                self._cache[config] = value
                self._logged(Evaluation(label, config.to_dict(), value, outcome["seconds"], outcome["path"],
                                        top1_of(self.metric, value), outcome.get("worker")))
        return [self.known(c) for c in configs]

    def log_dicts(self) -> list[dict]:
        """The evaluation log as JSON-able dicts (``what``, ``config``, ``value``, ``top1``, ``seconds``, ``path``,
        ``worker``)."""
        return [{"what": e.what, "config": e.config, "value": e.value, "top1": e.top1, "seconds": round(e.seconds, 4),
                 "path": e.path, "worker": e.worker} for e in self.log]


@dataclass
class SearchResult:
    """What :func:`search_exclusions` found.

    Attributes:
        exclude: The smallest passing set found (empty when none was needed), or None if none passes.
        value: Its metric value.
        steps: Every configuration scored, in order: ``{"exclude", "value", "passed", "phase"}``.
        evaluations: Full evaluations the search itself ran.
    """

    exclude: list[str] | None
    value: float | None
    steps: list[dict]
    evaluations: int


SINGLE_PRUNE = 12  # a passing prefix up to this long is pruned member by member
PRUNE_BUDGET = 24  # evaluations the pruning may spend


def search_exclusions(
    ranked: Sequence[str],
    score: Callable[[Sequence[str]], float],
    passes: Callable[[float], bool],
    *,
    known: Callable[[Sequence[str]], float | None] = lambda exclude: None,
    prune: bool = True,
    max_prune: int = PRUNE_BUDGET,
) -> SearchResult:
    """The shortest prefix of ``ranked`` whose exclusion passes, then pruned (see the module docstring).

    Args:
        ranked: Candidate nodes, most suspicious first.
        score: The metric with these nodes excluded (a full evaluation).
        passes: Whether a value meets the target.
        known: A value known without an evaluation (cached or trivially FP32), or None.
        prune: Try putting members of the found prefix back into INT8.
        max_prune: Evaluations the pruning may spend.

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
        steps.append({"exclude": list(exclude), "value": value, "passed": ok, "phase": phase})
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
    if prune and len(chosen) > 1:
        before = evaluations
        chosen = _prune(chosen, run, lambda: evaluations - before < max_prune)
    final = next(s["value"] for s in reversed(steps) if s["passed"] and sorted(s["exclude"]) == sorted(chosen))
    return SearchResult(chosen, final, steps, evaluations)


def _prune(chosen: list[str], run: Callable[[Sequence[str], str], bool], budget_left: Callable[[], bool]) -> list[str]:
    """Put members of a passing exclusion set back into INT8 while the target holds.

    Adaptive group testing, least suspicious members first: a short set is tried member by
    member; a long one in groups (about eight), and a group that cannot go back whole is split
    in halves. Stops when ``budget_left()`` says so.

    Args:
        chosen: The passing set, most suspicious first.
        run: Scores an exclusion set and says whether it passes (records the step).
        budget_left: Whether another evaluation may be spent.

    Returns:
        The pruned set (still passing).
    """
    order = list(reversed(chosen))
    size = 1 if len(order) <= SINGLE_PRUNE else -(-len(order) // 8)
    queue = [order[i:i + size] for i in range(0, len(order), size)]
    while queue and budget_left():
        group = queue.pop(0)
        trial = [c for c in chosen if c not in group]
        if trial and run(trial, "prune"):
            chosen = trial
        elif len(group) > 1:
            half = len(group) // 2
            queue[:0] = [group[:half], group[half:]]
    return chosen


def one_at_a_time(
    nodes: Sequence[str],
    score: Callable[[Sequence[str]], float],
    passes: Callable[[float], bool],
) -> SearchResult:
    """The brute-force baseline: exclude each node alone, rank by the metric, then add them greedily.

    Costs ``len(nodes)`` evaluations for the ranking plus one per node added (the bench compares
    :func:`search_exclusions` against this).

    Args:
        nodes: The quantized nodes.
        score: The metric with these nodes excluded (a full evaluation).
        passes: Whether a value meets the target.

    Returns:
        The :class:`SearchResult` (``exclude`` None when even every node excluded fails).
    """
    steps = []
    evaluations = 0
    alone = {}
    for node in nodes:
        alone[node] = score([node])
        evaluations += 1
        steps.append({"exclude": [node], "value": alone[node], "passed": passes(alone[node]), "phase": "alone"})
    order = sorted(nodes, key=lambda n: -alone[n])
    chosen: list[str] = []
    for node in order:
        chosen.append(node)
        value = alone[node] if len(chosen) == 1 else score(list(chosen))
        if len(chosen) > 1:
            evaluations += 1
            steps.append({"exclude": list(chosen), "value": value, "passed": passes(value), "phase": "greedy"})
        if passes(value):
            return SearchResult(list(chosen), value, steps, evaluations)
    return SearchResult(None, None, steps, evaluations)
