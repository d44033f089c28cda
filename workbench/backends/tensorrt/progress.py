"""Build progress: TensorRT's IProgressMonitor phases as events, bars in a notebook, a log on the command line."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from workbench.progress import PROGRESS_HELP, Progress
from workbench.progress import resolve_progress as resolve_workbench_progress


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report of an engine build.

    Attributes:
        kind: ``"start"``, ``"step"`` or ``"finish"``.
        phase: The phase name TensorRT gave.
        parent: The parent phase, or None for a top-level phase.
        depth: 0 for top-level phases, parent's depth + 1 otherwise.
        done: Steps completed so far in the phase.
        total: Steps in the phase.
        elapsed_s: Seconds since the phase started.
    """

    kind: str
    phase: str
    parent: str | None
    depth: int
    done: int
    total: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total > 0 else 1.0

@dataclass
class _Phase:
    parent: str | None
    depth: int
    total: int
    done: int
    started: float

class BuildProgress:
    """The bookkeeping of TensorRT's ``IProgressMonitor``, without TensorRT.

    TensorRT calls ``phase_start(name, parent, num_steps)``, ``step_complete(name, step)`` (``step``
    is the 0-based index of the step just finished; returning False cancels the build) and
    ``phase_finish(name)``, possibly before all steps were reported and from several threads.
    This class tracks the active phases and turns the calls into :class:`ProgressEvent` for a
    callback; :func:`make_progress_monitor` wraps it in the TensorRT interface.

    Args:
        callback: Called with each :class:`ProgressEvent`. Its exceptions are kept in
            :attr:`errors` rather than raised, because TensorRT's callbacks must not throw.
        clock: Seconds clock (tests pass a fake one).
    """

    def __init__(self, callback: Callable[[ProgressEvent], Any] | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.callback = callback
        self.clock = clock
        self.cancelled = False
        self.errors: list[BaseException] = []
        self.finished: list[ProgressEvent] = []
        self._phases: dict[str, _Phase] = {}
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Ask TensorRT to stop the build at its next step."""
        self.cancelled = True

    @property
    def active(self) -> list[tuple[str, int, int, int]]:
        """``(phase, depth, done, total)`` of the phases in progress, in start order."""
        with self._lock:
            return [(name, p.depth, p.done, p.total) for name, p in self._phases.items()]

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            parent = self._phases.get(parent_phase) if parent_phase else None
            phase = _Phase(parent_phase or None, parent.depth + 1 if parent else 0, int(num_steps), 0, self.clock())
            self._phases[phase_name] = phase
            event = self._event("start", phase_name, phase)
        self._emit(event)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            phase = self._phases.get(phase_name)
            if phase is None:  # a step of a phase we never saw start: nothing to draw
                return not self.cancelled
            phase.done = max(phase.done, min(int(step) + 1, phase.total))
            event = self._event("step", phase_name, phase)
        self._emit(event)
        return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            phase = self._phases.pop(phase_name, None)
            if phase is None:
                return
            event = self._event("finish", phase_name, phase)
            self.finished.append(event)
        self._emit(event)

    def _event(self, kind: str, name: str, phase: _Phase) -> ProgressEvent:
        return ProgressEvent(kind, name, phase.parent, phase.depth, phase.done, phase.total, self.clock() - phase.started)

    def _emit(self, event: ProgressEvent) -> None:
        if self.callback is None:
            return
        try:
            self.callback(event)
        except Exception as err:  # never let a drawing error reach TensorRT's noexcept callback
            self.errors.append(err)

class TqdmProgressBars:
    """Draw :class:`ProgressEvent` as one tqdm bar per active phase, nested by depth.

    In a notebook ``tqdm.auto`` draws ipywidgets bars; in a terminal, text bars.

    Args:
        tqdm_class: The tqdm class (default ``tqdm.auto.tqdm``).
        **tqdm_kwargs: Passed to every bar (e.g. ``file=`` for tests).
    """

    def __init__(self, tqdm_class=None, **tqdm_kwargs):
        if tqdm_class is None:
            from tqdm.auto import tqdm as tqdm_class
        self.tqdm_class = tqdm_class
        self.tqdm_kwargs = tqdm_kwargs
        self.bars: dict[str, Any] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "start":
            self.bars[event.phase] = self.tqdm_class(
                total=event.total,
                desc=("  " * event.depth) + event.phase,
                position=event.depth,
                leave=event.depth == 0,
                **self.tqdm_kwargs,
            )
            return
        bar = self.bars.get(event.phase)
        if bar is None:
            return
        bar.update(event.done - bar.n)
        if event.kind == "finish":
            bar.close()
            del self.bars[event.phase]

def _progress_monitor_class():
    """The ``trt.IProgressMonitor`` subclass, created only when TensorRT imports."""
    import tensorrt as trt

    class ProgressMonitor(trt.IProgressMonitor):
        """Forwards TensorRT's progress calls to a :class:`BuildProgress`."""

        def __init__(self, progress: BuildProgress):
            super().__init__()  # pybind11 needs the base initialised explicitly
            self.progress = progress

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return self.progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            self.progress.phase_finish(phase_name)

    return ProgressMonitor

def make_progress_monitor(progress: BuildProgress):
    """A TensorRT ``IProgressMonitor`` that reports to ``progress`` (needs TensorRT)."""
    return _progress_monitor_class()(progress)

class PhaseTasks:
    """Draw :class:`ProgressEvent` as tasks of a :class:`workbench.progress.Progress` (one per
    top-level phase), so ``"log"`` and shared reporters work for builds as for all long work."""

    def __init__(self, reporter: Progress):
        self.reporter = reporter
        self.tasks: dict[str, Any] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if event.depth > 0:  # nested phases are too fine for a log; bars show them (TqdmProgressBars)
            return
        if event.kind == "start":
            self.tasks[event.phase] = self.reporter.task(f"build: {event.phase}", event.total)
            return
        task = self.tasks.get(event.phase)
        if task is None:
            return
        task.update(event.done - task.done)
        if event.kind == "finish":
            task.close()
            del self.tasks[event.phase]


def resolve_progress(progress: Any) -> BuildProgress | None:
    """Turn the ``progress`` argument of :func:`build_engine` into a :class:`BuildProgress`.

    Args:
        progress: The one convention of :mod:`workbench.progress` (None, False, True,
            ``"tqdm"``: nested bars per build phase; ``"log"``; a :class:`workbench.progress.Progress`),
            plus a :class:`BuildProgress` or a callable taking :class:`ProgressEvent`.

    Returns:
        The progress tracker or None.
    """
    if progress is None or progress is False:
        return None
    if isinstance(progress, BuildProgress):
        return progress
    if progress == "tqdm" or progress is True:
        return BuildProgress(TqdmProgressBars())
    if progress == "log" or isinstance(progress, Progress):
        return BuildProgress(PhaseTasks(resolve_workbench_progress(progress)))
    if callable(progress):
        return BuildProgress(progress)
    raise ValueError(f"{PROGRESS_HELP}; got {progress!r}")
