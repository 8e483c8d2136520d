"""Cron schedules of the server's tasks.

A task file may carry ``schedule: "0 2 * * *"`` (cron, five fields, the server's local
time) and ``schedule_type`` (:class:`~opendms.config.ScheduleType`): at each due time the
:class:`Scheduler` (run by the supervisor's ~1 s tick) starts the task: ``reload-target``
(the default) is a fresh full load (a nightly refresh), ``start-replication`` the task's
first start and afterwards a resume. A task still running at its due time is not
started again: that run is recorded as skipped. Every due time is recorded (time,
outcome ``started`` / ``skipped`` / ``failed``, reason) in ``<state>/schedules.db``;
:func:`schedule_runs` lists them for the API. Due times missed while no server ran are
not made up; the first due time counts from when the server first saw the schedule.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from croniter import croniter  # type: ignore[import-untyped]

from opendms.config import ScheduleType
from opendms.errors import ConfigError, OpenDMSError
from opendms.service import TaskService, control
from opendms.service.logs import Scrubber, append_line
from opendms.state import TaskRecord
from opendms.state.private import private_file
from opendms.state.status import ACTIVE

__all__ = [
    "Clock",
    "ScheduleRun",
    "Scheduler",
    "next_time",
    "schedule_of",
    "schedule_runs",
]

log = logging.getLogger("opendms.server.schedules")
Clock = Callable[[], datetime]
STARTED, SKIPPED, FAILED = "started", "skipped", "failed"
RUNS_FILE = "schedules.db"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schedule_runs (task TEXT NOT NULL, due TEXT NOT NULL, "
    "at TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '')"
)


def local_now() -> datetime:
    return datetime.now().astimezone()


def next_time(expression: str, after: datetime) -> datetime:
    """The first time after ``after`` that ``expression`` is due."""
    found: datetime = croniter(expression, after).get_next(datetime)
    return found


def schedule_of(record: TaskRecord) -> tuple[str, ScheduleType] | None:
    """The task's schedule and schedule type (from its recorded definition), or None."""
    try:
        spec = json.loads(record.spec)
    except ValueError:
        return None
    expression = spec.get("schedule") if isinstance(spec, dict) else None
    if not expression:
        return None
    try:
        kind = ScheduleType(spec.get("schedule_type") or ScheduleType.RELOAD_TARGET)
    except ValueError:
        kind = ScheduleType.RELOAD_TARGET
    return str(expression), kind


@dataclass(frozen=True)
class ScheduleRun:
    """One due time of a task's schedule and what came of it."""

    task: str
    due: str  # the due time (ISO 8601)
    at: str  # when the scheduler acted (ISO 8601)
    outcome: str  # started, skipped or failed
    reason: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "task": self.task,
            "due": self.due,
            "at": self.at,
            "outcome": self.outcome,
            "reason": self.reason,
        }


def connect_runs(path: Path) -> sqlite3.Connection:
    private_file(path)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute(SCHEMA)
    return conn


def schedule_runs(state: Path, task: str | None = None, limit: int = 100) -> list[ScheduleRun]:
    """The recorded runs of the schedules of the server whose state folder is ``state``
    (``task``: of that task only): the last ``limit``, oldest first."""
    if limit < 1:
        raise ConfigError(f"limit {limit} must be at least 1")
    path = state / RUNS_FILE
    if not path.exists():
        return []
    conn = connect_runs(path)
    try:
        where, args = ("WHERE task = ?", (task, limit)) if task else ("", (limit,))
        rows = conn.execute(
            f"SELECT task, due, at, outcome, reason FROM schedule_runs {where} "
            "ORDER BY rowid DESC LIMIT ?",
            args,
        ).fetchall()
    finally:
        conn.close()
    return [ScheduleRun(*r) for r in reversed(rows)]


class Scheduler:
    """Starts the tasks of ``service`` whose schedules are due; ``clock``: the current
    time (aware; default the local time), replaceable (tests)."""

    def __init__(self, state: Path, service: TaskService, clock: Clock | None = None) -> None:
        self.state = state
        self.service = service
        self.clock: Clock = clock or local_now
        self.due: dict[str, tuple[str, datetime]] = {}  # task -> (expression, next due)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def next_due(self, task: str) -> datetime | None:
        """When the task's schedule is next due (None: no schedule seen for it)."""
        known = self.due.get(task)
        return known[1] if known else None

    def tick(self) -> list[ScheduleRun]:
        """Start the tasks that are due; the runs this tick recorded."""
        now = self.clock()
        done: list[ScheduleRun] = []
        records = self.service.store.tasks()
        for gone in set(self.due) - {r.name for r in records}:
            del self.due[gone]
        for record in records:
            schedule = schedule_of(record)
            if schedule is None:
                self.due.pop(record.name, None)
                continue
            expression, kind = schedule
            known = self.due.get(record.name)
            if known is None or known[0] != expression:
                self.due[record.name] = (expression, next_time(expression, now))
            elif now >= known[1]:
                self.due[record.name] = (expression, next_time(expression, now))
                done.append(self._fire(record, kind, known[1], now))
        return done

    def _fire(
        self, record: TaskRecord, kind: ScheduleType, due: datetime, now: datetime
    ) -> ScheduleRun:
        name = record.name
        if record.status in ACTIVE or control.running_pid(self.service.store, name) is not None:
            why = f"the task is still running (status {record.status.value})"
            return self._record(ScheduleRun(name, due.isoformat(), now.isoformat(), SKIPPED, why))
        try:
            if kind is ScheduleType.RELOAD_TARGET:
                self.service.reload(name)
            elif record.started_at is None:
                self.service.start(name)
            else:
                self.service.resume(name)
        except OpenDMSError as exc:
            why = Scrubber()(str(exc))
            return self._record(ScheduleRun(name, due.isoformat(), now.isoformat(), FAILED, why))
        what = f"{kind.value} on schedule"
        return self._record(ScheduleRun(name, due.isoformat(), now.isoformat(), STARTED, what))

    def _record(self, run: ScheduleRun) -> ScheduleRun:
        with self._lock:
            if self._conn is None:
                self._conn = connect_runs(self.state / RUNS_FILE)
            self._conn.execute(
                "INSERT INTO schedule_runs VALUES (?, ?, ?, ?, ?)",
                (run.task, run.due, run.at, run.outcome, run.reason),
            )
        level = "W" if run.outcome != STARTED else "I"
        text = f"scheduled run due {run.due}: {run.outcome}" + (
            f" ({run.reason})" if run.reason else ""
        )
        append_line(self.service.store.path, run.task, level, text)
        log.info("task %s: %s", run.task, text)
        return run

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
