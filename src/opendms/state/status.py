"""Task status as a state machine: the AWS DMS task statuses and the moves between them.

Every status change of a task (the engine's run, the task service's start, stop, delete
and reconciliation) goes through :func:`transition`, which writes it only from a status
that may move there, in one conditional update of the store (no read-then-write race
between processes). The store inserts a new task as ``creating``; deleting it removes
its record. The moves (:data:`TRANSITIONS`)::

    creating -> ready | failed | deleting
    ready    -> starting | running* | deleting
    starting -> running | stopping | stopped | failed
    running  -> stopping | stopped | failed
    stopping -> stopped | failed
    stopped  -> starting | running* | deleting
    failed   -> starting | running* | deleting
    deleting -> creating | ready | stopped | failed   (the delete failed: back as it was)

    * a ValidationOnly run compares source and target without a start phase

A refused move is a bug: :func:`transition` logs it and raises
:class:`IllegalTransitionError` naming both statuses (and the reason it was to record),
except for a ``conditional`` move, which ends a run the caller does not own (a process
found gone, a stop whose signal ended the run before it recorded anything): a task that
has moved on meanwhile (its run recorded its own end, another run started) is left as it
is and False returned.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from opendms.errors import OpenDMSError

if TYPE_CHECKING:
    from opendms.state.store import TaskRecord
    from opendms.state.taskstore import TaskStore

log = logging.getLogger("opendms.status")


class TaskStatus(enum.StrEnum):
    """The AWS DMS replication-task statuses (lower case, as the store records them)."""

    CREATING = "creating"
    READY = "ready"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    DELETING = "deleting"


class AnyRun(enum.Enum):
    """The type of :data:`ANY_RUN`."""

    ANY = "any"


ANY_RUN: Final = AnyRun.ANY  # no condition on which run the task is in

S = TaskStatus
TRANSITIONS: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    S.CREATING: frozenset({S.READY, S.FAILED, S.DELETING}),
    S.READY: frozenset({S.STARTING, S.RUNNING, S.DELETING}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.STOPPED, S.FAILED}),
    S.RUNNING: frozenset({S.STOPPING, S.STOPPED, S.FAILED}),
    S.STOPPING: frozenset({S.STOPPED, S.FAILED}),
    S.STOPPED: frozenset({S.STARTING, S.RUNNING, S.DELETING}),
    S.FAILED: frozenset({S.STARTING, S.RUNNING, S.DELETING}),
    S.DELETING: frozenset({S.CREATING, S.READY, S.STOPPED, S.FAILED}),
}

ACTIVE = (S.STARTING, S.RUNNING, S.STOPPING)  # a run is (or claims to be) under way

GONE = "process gone (killed?)"  # why a run whose process vanished is failed
STOPPED_BY_USER = "STOPPED_BY_USER"


def allowed(current: TaskStatus | None, to: TaskStatus) -> bool:
    """Whether a task in status ``current`` (None: no such task) may move to ``to``."""
    return current is not None and to in TRANSITIONS[current]


def sources(to: TaskStatus) -> frozenset[TaskStatus]:
    """The statuses a task may move to ``to`` from."""
    return frozenset(s for s, targets in TRANSITIONS.items() if to in targets)


class IllegalTransitionError(OpenDMSError):
    """A status change the state machine does not allow: a bug in opendms."""

    def __init__(
        self, task: str, current: TaskStatus | None, to: TaskStatus, reason: str = ""
    ) -> None:
        self.task = task
        self.current = current
        self.to = to
        self.reason = reason
        was = current.value if current is not None else "(no such task)"
        why = f" (recording: {reason})" if reason else ""
        super().__init__(
            f"internal error: task {task!r}: illegal status transition {was} -> {to.value}{why}"
        )


def transition(
    store: TaskStore,
    name: str,
    to: TaskStatus,
    reason: str = "",
    *,
    run: str | AnyRun | None = ANY_RUN,
    conditional: bool = False,
    stamp: bool = True,
) -> bool:
    """Move task ``name`` to status ``to`` (``reason``: why a run stopped or failed); True
    when written.

    ``run``: only in the run that started at that time (``started_at``). ``conditional``:
    a task that is not in a status that may move to ``to``, or not in that run, is left
    as it is (False) instead of raising :class:`IllegalTransitionError`. ``stamp``: see
    :meth:`TaskStore.set_status` (False only changes the status: an undo)."""
    froms = sources(to)
    for _ in range(3):
        if store.set_status(name, to, reason, allowed_from=froms, run=run, stamp=stamp):
            return True
        record = store.task(name)
        current = record.status if record is not None else None
        moved_on = record is None or (run is not ANY_RUN and record.started_at != run)
        if conditional and (moved_on or current not in froms):
            log.debug("task %s: left %s, not moved to %s", name, current, to.value)
            return False
        if current not in froms or moved_on:
            error = IllegalTransitionError(name, current, to, reason)
            log.error("%s", error)
            raise error
        # the task moved into a status that may go to `to` between the write and the
        # read (another process): write again
    error = IllegalTransitionError(name, current, to, reason)
    log.error("%s (the task kept changing)", error)
    raise error


def end_lost_run(store: TaskStore, record: TaskRecord) -> bool:
    """Record as failed (:data:`GONE`) the run ``record`` shows as active, whose process
    the caller knows is gone (nobody holds the task's run lock); False when that run had
    recorded its own end, or another run has started."""
    if record.status not in ACTIVE:
        return False
    return transition(store, record.name, S.FAILED, GONE, run=record.started_at, conditional=True)
