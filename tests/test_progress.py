"""The one progress convention: what each ``progress=`` value reports."""

from __future__ import annotations

import io
import logging

import pytest

from workbench.progress import LogProgress, Progress, TqdmProgress, resolve_progress


def test_callable_sees_start_updates_and_finish():
    updates = []
    with resolve_progress(updates.append).task("calibration: ranges", total=10, unit="sample") as task:
        task.update(4)
        task.update(6, "last batch")
    assert [(u.done, u.finished) for u in updates] == [(0, False), (4, False), (10, False), (10, True)]
    assert updates[-2].text() == "calibration: ranges: last batch (10/10 sample)"
    assert updates[1].text() == "calibration: ranges: 4/10 sample"


def test_log_reports_start_quarters_messages_and_end(caplog):
    with caplog.at_level(logging.INFO, logger="workbench"):
        with resolve_progress("log").task("evaluate", total=8, unit="sample") as task:
            for _ in range(8):
                task.update(1)
        with resolve_progress("log").task("doctor", total=3, unit="phase") as task:
            task.update(0, "layerwise comparison")
            task.update(1, "fix search")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:6] == ["evaluate: started (8 samples)", "evaluate: 2/8 sample", "evaluate: 4/8 sample",
                         "evaluate: 6/8 sample", "evaluate: 8/8 sample", "evaluate: done"]
    assert "doctor: layerwise comparison (0/3 phase)" in lines and "doctor: fix search (1/3 phase)" in lines


def test_silent_values_report_nothing_and_a_task_closes_once():
    for quiet in (None, False):
        reporter = resolve_progress(quiet)
        assert type(reporter) is Progress and reporter.sink is None
    updates = []
    task = resolve_progress(updates.append).task("x", 1)
    task.close()
    task.close()
    assert sum(u.finished for u in updates) == 1


def test_bar_values_draw_and_close_a_bar(monkeypatch):
    import tqdm.auto

    out = io.StringIO()
    real = tqdm.auto.tqdm
    monkeypatch.setattr(tqdm.auto, "tqdm", lambda **kw: real(file=out, **kw))
    for bar in (True, "tqdm"):
        reporter = resolve_progress(bar)
        assert isinstance(reporter, TqdmProgress)
        with reporter.task("variants", total=2, unit="variant") as task:
            task.update(2)
        assert task.bar.n == 2
    assert "variants" in out.getvalue()


def test_a_progress_object_is_shared_as_it_is():
    reporter = LogProgress()
    assert resolve_progress(reporter) is reporter


@pytest.mark.parametrize("bad", ["loud", 3, ["log"]])
def test_other_values_are_refused_naming_the_accepted_ones(bad):
    with pytest.raises(ValueError, match="progress must be None, False, True, 'log', 'tqdm'"):
        resolve_progress(bad)
