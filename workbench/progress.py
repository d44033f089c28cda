"""One progress convention for all long work (calibration, evaluation, sweeps, the doctor, builds).

Every long-running function takes ``progress=`` with one meaning everywhere:

* ``None`` or ``False``: silent;
* ``"log"``: INFO lines on the ``workbench`` logger (the command line prints them on stderr);
* ``"tqdm"`` or ``True``: a progress bar (``tqdm.auto``: a widget in a notebook, text elsewhere);
* a callable: called with each :class:`ProgressUpdate`;
* a :class:`Progress`: used as it is (to share one reporter across nested work).

Functions turn the argument into a :class:`Progress` with :func:`resolve_progress` and report
through tasks::

    reporter = resolve_progress(progress)
    with reporter.task("calibration: ranges", total=samples, unit="sample") as task:
        for batch in batches:
            ...
            task.update(len(batch))
"""

from __future__ import annotations

import html
import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable

LOGGER = logging.getLogger("workbench")
PROGRESS_HELP = "progress must be None, False, True, 'log', 'tqdm', a callable or a workbench.progress.Progress"


@dataclass(frozen=True)
class ProgressUpdate:
    """One report: a task started (``done == 0``), advanced, or finished (``finished``).

    Attributes:
        task: The task's name (``"calibration: ranges"``).
        done: Units done so far.
        total: Units in the task, or None when unknown.
        unit: What is counted (``"sample"``, ``"phase"``, ``"variant"``).
        message: What is happening now, if anything.
        finished: True for the task's last report.
    """

    task: str
    done: int
    total: int | None
    unit: str = "step"
    message: str = ""
    finished: bool = False

    def text(self) -> str:
        """One line for a log: ``task: message (3/10 sample)``, or ``task: 3/10 sample``."""
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        state = "done" if self.finished else f"{count} {self.unit}"
        return f"{self.task}: {self.message} ({state})" if self.message else f"{self.task}: {state}"


class Progress:
    """Reports progress to a sink: a callable taking :class:`ProgressUpdate` (None: silent).

    Subclasses draw instead (:class:`TqdmProgress`, :class:`LogProgress`) by overriding the three
    hooks a :class:`Task` calls: :meth:`started`, :meth:`advanced` and :meth:`finished`.

    Args:
        sink: Called with every update; None reports nothing.
    """

    def __init__(self, sink: Callable[[ProgressUpdate], Any] | None = None):
        self.sink = sink

    def task(self, name: str, total: int | None = None, *, unit: str = "step") -> "Task":
        """A task to report on; use it as a context manager so that it always finishes."""
        task = Task(self, name, total, unit)
        self.started(task)
        return task

    def link(self, text: str, url: str) -> None:
        """Point at a page that shows the work in detail (the Dask dashboard of a cluster run)."""
        self._emit(ProgressUpdate(text, 0, None, "link", url))

    def started(self, task: "Task") -> None:
        self._emit(task.snapshot())

    def advanced(self, task: "Task", n: int) -> None:
        self._emit(task.snapshot())

    def finished(self, task: "Task") -> None:
        self._emit(task.snapshot(finished=True))

    def _emit(self, update: ProgressUpdate) -> None:
        if self.sink is not None:
            self.sink(update)


class Task:
    """One unit of long work inside a :class:`Progress`; made by :meth:`Progress.task`."""

    def __init__(self, progress: Progress, name: str, total: int | None, unit: str):
        self.progress, self.name, self.total, self.unit = progress, name, total, unit
        self.done, self.message, self.closed = 0, "", False

    def snapshot(self, *, finished: bool = False) -> ProgressUpdate:
        return ProgressUpdate(self.name, self.done, self.total, self.unit, self.message, finished)

    def update(self, n: int = 1, message: str = "") -> None:
        """Advance by ``n`` units; ``message`` says what is happening now."""
        self.done += n
        if message:
            self.message = message
        self.progress.advanced(self, n)

    def close(self) -> None:
        """Finish the task (once; the context manager calls it)."""
        if not self.closed:
            self.closed = True
            self.progress.finished(self)

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LogProgress(Progress):
    """INFO lines on the ``workbench`` logger: each task's start, its messages, quarter marks and end."""

    def __init__(self, logger: logging.Logger = LOGGER):
        super().__init__(None)
        self.logger = logger

    def link(self, text: str, url: str) -> None:
        self.logger.info("%s: %s", text, url)

    def started(self, task: Task) -> None:
        task.logged_quarter, task.logged_message = 0, ""
        size = f" ({task.total} {task.unit}s)" if task.total else ""
        self.logger.info("%s: started%s", task.name, size)

    def advanced(self, task: Task, n: int) -> None:
        quarter = int(4 * task.done / task.total) if task.total else 0
        new_message = task.message and task.message != getattr(task, "logged_message", "")
        if quarter > getattr(task, "logged_quarter", 0) or new_message:
            task.logged_quarter, task.logged_message = quarter, task.message
            self.logger.info("%s", task.snapshot().text())

    def finished(self, task: Task) -> None:
        self.logger.info("%s: done%s", task.name, f" ({task.message})" if task.message else "")


class TqdmProgress(Progress):
    """One ``tqdm.auto`` bar per task (an ipywidgets bar in a notebook)."""

    def __init__(self):
        super().__init__(None)

    def link(self, text: str, url: str) -> None:
        """A clickable link in a notebook, a line on stderr elsewhere."""
        try:
            from IPython import get_ipython
            from IPython.display import HTML, display
        except ImportError:
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None and "IPKernelApp" in get_ipython().config:
            display(HTML(f'{html.escape(text)}: <a href="{html.escape(url)}" target="_blank">{html.escape(url)}</a>'))
        else:
            print(f"{text}: {url}", file=sys.stderr)

    def started(self, task: Task) -> None:
        from tqdm.auto import tqdm  # picks the notebook widget where there is one

        task.bar = tqdm(total=task.total, desc=task.name, unit=task.unit, leave=False)

    def advanced(self, task: Task, n: int) -> None:
        if task.message:
            task.bar.set_description(f"{task.name}: {task.message}", refresh=False)
        task.bar.update(n)

    def finished(self, task: Task) -> None:
        task.bar.close()


def resolve_progress(progress: Any) -> Progress:
    """The :class:`Progress` for a ``progress=`` argument (see the module docstring).

    Args:
        progress: None, False, True, ``"log"``, ``"tqdm"``, a callable or a :class:`Progress`.

    Returns:
        The reporter.

    Raises:
        ValueError: Anything else, naming the accepted values.
    """
    if isinstance(progress, Progress):
        return progress
    if progress is None or progress is False:
        return Progress(None)
    if progress is True or progress == "tqdm":
        return TqdmProgress()
    if progress == "log":
        return LogProgress()
    if callable(progress):
        return Progress(progress)
    raise ValueError(f"{PROGRESS_HELP}; got {progress!r}")
