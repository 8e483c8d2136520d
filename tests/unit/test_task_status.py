"""The task status machine (opendms.state.status): its table of moves, and transition()
against the SQLite store: legal moves written with their stamps, illegal ones refused
as an internal error naming both statuses (and logged), conditional ends left alone
when the task moved on, and a refused move never hiding why a run failed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from opendms.engine import task as engine_task
from opendms.errors import TaskError
from opendms.state import IllegalTransitionError, StateStore, TaskStatus, transition
from opendms.state.status import ACTIVE, GONE, TRANSITIONS, allowed, end_lost_run, sources

S = TaskStatus

# the whole table, spelled out: a change to the machine changes this test on purpose
EXPECTED = {
    ("creating", "ready"),
    ("creating", "failed"),
    ("creating", "deleting"),
    ("ready", "starting"),
    ("ready", "running"),  # ValidationOnly: no start phase
    ("ready", "deleting"),
    ("starting", "running"),
    ("starting", "stopping"),
    ("starting", "stopped"),
    ("starting", "failed"),
    ("running", "stopping"),
    ("running", "stopped"),
    ("running", "failed"),
    ("stopping", "stopped"),
    ("stopping", "failed"),
    ("stopped", "starting"),
    ("stopped", "running"),
    ("stopped", "deleting"),
    ("failed", "starting"),
    ("failed", "running"),
    ("failed", "deleting"),
    ("deleting", "creating"),  # the delete failed: back as it was
    ("deleting", "ready"),
    ("deleting", "stopped"),
    ("deleting", "failed"),
}


def test_the_table_of_moves() -> None:
    table = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == EXPECTED
    assert set(TRANSITIONS) == set(TaskStatus)  # every status has its entry
    assert [s.value for s in TaskStatus] == [
        "creating",
        "ready",
        "starting",
        "running",
        "stopping",
        "stopped",
        "failed",
        "deleting",
    ]


def test_the_shape_of_the_machine() -> None:
    """No status moves to itself; a run only begins from a resting status and only ends
    in stopped or failed; only the end of a run or a failed delete goes back."""
    assert not any(s in TRANSITIONS[s] for s in TaskStatus)
    resting = {S.READY, S.STOPPED, S.FAILED}
    assert sources(S.STARTING) == resting
    assert sources(S.RUNNING) == resting | {S.STARTING}
    for active in ACTIVE:
        assert TRANSITIONS[active] - set(ACTIVE) <= {S.STOPPED, S.FAILED}
    assert sources(S.DELETING) == resting | {S.CREATING}
    assert not allowed(None, S.READY) and allowed(S.CREATING, S.READY)


def _store(tmp_path: Path, status: TaskStatus | None = None) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    assert store.save_task("t", "sqlite:///a", "sqlite:///b", "full-load-and-cdc", "{}")
    if status is not None:
        store.set_status("t", status, stamp=False)  # put it there, whatever the rules
    return store


@pytest.mark.parametrize("current", list(TaskStatus))
@pytest.mark.parametrize("to", list(TaskStatus))
def test_transition_writes_exactly_the_allowed_moves(
    tmp_path: Path, current: TaskStatus, to: TaskStatus, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path, current)
    if (current.value, to.value) in EXPECTED:
        assert transition(store, "t", to, "why")
        record = store.task("t")
        assert record is not None and record.status is to
        return
    with (
        caplog.at_level(logging.ERROR, logger="opendms.status"),
        pytest.raises(IllegalTransitionError) as refused,
    ):
        transition(store, "t", to, "why")
    message = f"illegal status transition {current.value} -> {to.value} (recording: why)"
    assert str(refused.value) == f"internal error: task 't': {message}"
    assert (refused.value.current, refused.value.to) == (current, to)
    assert any(message in r.getMessage() for r in caplog.records)  # logged, not only raised
    record = store.task("t")
    assert record is not None and record.status is current  # untouched
    assert transition(store, "t", to, conditional=True) is False  # conditional: no error


def test_an_unknown_task_cannot_move(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    with pytest.raises(IllegalTransitionError, match=r"\(no such task\) -> starting"):
        transition(store, "nope", S.STARTING)
    assert transition(store, "nope", S.FAILED, GONE, conditional=True) is False


def test_stamps_of_a_run(tmp_path: Path) -> None:
    """starting begins a run (start time, no reason, stop time or phase); stopped and
    failed end it (reason, stop time, no pid); an undo (stamp=False) changes only the
    status."""
    store = _store(tmp_path)
    transition(store, "t", S.READY)
    transition(store, "t", S.STARTING)
    store.set_pid("t", 4242)
    store.set_phase("t", "full load")
    started = store.task("t")
    assert started is not None and started.started_at and started.stopped_at is None
    transition(store, "t", S.RUNNING)
    transition(store, "t", S.STOPPED, "CAUGHT_UP")
    ended = store.task("t")
    assert ended is not None
    assert (ended.status, ended.stop_reason, ended.pid) == (S.STOPPED, "CAUGHT_UP", None)
    assert ended.stopped_at and ended.started_at == started.started_at
    transition(store, "t", S.DELETING)
    transition(store, "t", S.STOPPED, stamp=False)
    assert store.task("t") == ended  # back exactly as it was
    transition(store, "t", S.STARTING)
    again = store.task("t")
    assert again is not None and (again.stop_reason, again.stopped_at, again.phase) == (
        "",
        None,
        "",
    )


def test_a_conditional_end_leaves_a_run_that_moved_on(tmp_path: Path) -> None:
    """Ending a run one does not own (a vanished process, a stop): only that run, and only
    while it is active; its own end, or a newer run, is left as it is."""
    store = _store(tmp_path)
    transition(store, "t", S.READY)
    transition(store, "t", S.STARTING)
    first = store.task("t")
    assert first is not None
    transition(store, "t", S.RUNNING)
    transition(store, "t", S.STOPPED, "CAUGHT_UP")  # the run recorded its own end
    assert end_lost_run(store, first) is False
    record = store.task("t")
    assert record is not None and (record.status, record.stop_reason) == (S.STOPPED, "CAUGHT_UP")
    time.sleep(0.01)  # a run is known by its start time, in milliseconds
    transition(store, "t", S.STARTING)  # a newer run
    transition(store, "t", S.RUNNING)
    newer = store.task("t")
    assert newer is not None and newer.started_at != first.started_at
    assert end_lost_run(store, first) is False  # not that run any more
    assert transition(store, "t", S.FAILED, GONE, run=first.started_at, conditional=True) is False
    assert end_lost_run(store, newer) is True
    gone = store.task("t")
    assert gone is not None and (gone.status, gone.stop_reason) == (S.FAILED, GONE)


def test_a_refused_move_never_hides_why_the_run_failed(tmp_path: Path) -> None:
    store = _store(tmp_path, S.STOPPED)  # a bug: the run's status lost (stopped -> failed)
    failure = TaskError("task t: 1 table(s) failed: main.x")
    engine_task._record_end(store, "t", S.FAILED, "1 table(s) failed: main.x", failure)
    assert failure.__notes__ == [
        "internal error: task 't': illegal status transition stopped -> failed "
        "(recording: 1 table(s) failed: main.x)"
    ]
    assert str(failure) == "task t: 1 table(s) failed: main.x"


def test_the_store_creates_a_task_as_creating_and_keeps_a_redefined_ones_status(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    record = store.task("t")
    assert record is not None and record.status is S.CREATING
    transition(store, "t", S.READY)
    assert store.save_task("t", "sqlite:///c", "sqlite:///d", "full-load", "{}") is False
    record = store.task("t")
    assert record is not None and (record.status, record.source) == (S.READY, "sqlite:///c")
