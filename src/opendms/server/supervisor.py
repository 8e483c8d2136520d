"""Supervision of the server's task processes.

A started task runs as its own process (:mod:`opendms.service.control`), which the
server outlives and which outlives the server. :class:`Supervisor` looks at every task
about once a second (a thread, stopped with the server; the tasks keep running):

* a task recorded as running whose process holds its run lock is watched (after a
  server restart: adopted);
* a task recorded as running whose process is gone (killed, crashed; no ``start`` or
  ``stop`` of it under way) is marked failed, its reason saying so with the process's
  exit status when known and the last error lines of its log;
* such a task is then resumed from its checkpoint (``resume``: never a fresh load) as
  its ``ErrorBehavior`` settings say (DMS RecoverableErrorCount, -Interval,
  -Throttling, -ThrottlingMax, -StopRetryAfterThrottlingMax; the same back-off as the
  engine's in-process retries, :class:`~opendms.engine.recover.Retries`); once they are
  used up (RecoverableErrorCount 0: at once) it stays failed, its reason ending with
  :data:`NO_RESTART`. A start by the user begins a new count.
* at server start, a task failed this way (while no server watched it) that was not
  given up on is resumed the same way.

Each tick also runs the :class:`~opendms.server.schedules.Scheduler`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from opendms.config import ErrorBehaviorSection
from opendms.engine.recover import Retries
from opendms.errors import OpenDMSError
from opendms.server.schedules import Clock, Scheduler
from opendms.service import TaskService, control
from opendms.service.logs import append_line, tail_reason
from opendms.state import TaskRecord, TaskStatus, TaskStore
from opendms.state.status import ACTIVE, GONE, transition

log = logging.getLogger("opendms.server.supervisor")

TICK = 1.0  # seconds between looks at the tasks
EXIT_WAIT = 2.0  # seconds to wait for a child process found gone to be reapable
NO_RESTART = "not restarted"  # ends the reason of a lost run the supervisor gave up on


@dataclass
class Watch:
    """What the supervisor knows of one task."""

    retries: Retries
    run: str | None = None  # the run (its start time) last seen running
    pid: int | None = None  # the process of the run last seen active
    pid_run: str | None = None  # that run
    ended: str = ""  # how that process ended (its exit status, once reaped)
    handled: set[str] = field(default_factory=set)  # lost runs already dealt with
    ours: set[str] = field(default_factory=set)  # runs the supervisor started
    restart_at: float | None = None  # monotonic time of the planned resume
    restart_run: str | None = None  # the lost run that resume continues


def error_behavior(record: TaskRecord) -> ErrorBehaviorSection:
    """The task's ErrorBehavior settings (from its recorded definition)."""
    try:
        settings = json.loads(record.spec).get("task_settings") or {}
        return ErrorBehaviorSection.model_validate(settings.get("ErrorBehavior") or {})
    except (ValueError, AttributeError):
        return ErrorBehaviorSection()


class Supervisor:
    """Watches, fails and resumes the tasks of one server's state folder, and runs its
    schedules. :meth:`start` the thread, :meth:`close` it (the tasks keep running);
    :meth:`tick` is one look (tests call it directly)."""

    def __init__(self, state: Path, *, clock: Clock | None = None, tick: float = TICK) -> None:
        self.state_dir = state
        self.service = TaskService(state / "state.db")
        self.scheduler = Scheduler(state, self.service, clock)
        self.interval = tick
        self.watches: dict[str, Watch] = {}
        self._first = True
        self._first_tick = True
        self.extra_ticks: list[Callable[[], Any]] = []  # more to look at each tick
        self.on_start: list[Callable[[], Any]] = []  # once, before the first tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> TaskStore:
        return self.service.store

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="opendms-supervisor", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop looking (the tasks go on running) and close the stores."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.scheduler.close()
        self.service.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        """One look at every task, then the schedules; an error is logged, never raised
        (the next tick tries again)."""
        try:
            self._check_tasks()
        except Exception:
            log.exception("supervisor: checking the tasks failed")
        finally:
            self._first = False
        if self._first_tick:
            self._first_tick = False
            self._run_all(self.on_start)
        try:
            self.scheduler.tick()
        except Exception:
            log.exception("supervisor: running the schedules failed")
        self._run_all(self.extra_ticks)

    def _run_all(self, calls: list[Callable[[], Any]]) -> None:
        for call in calls:
            try:
                call()
            except Exception:
                log.exception("supervisor: %s failed", getattr(call, "__qualname__", call))

    def _check_tasks(self) -> None:
        records = self.store.tasks()
        for gone in set(self.watches) - {r.name for r in records}:
            del self.watches[gone]
        for record in records:
            if self._stop.is_set():
                return
            watch = self.watches.get(record.name)
            if watch is None:
                watch = self.watches[record.name] = Watch(Retries(error_behavior(record)))
            self._check(record, watch)

    def _check(self, record: TaskRecord, watch: Watch) -> None:
        if record.status in ACTIVE:
            self._check_active(record, watch)
        elif self._lost(record, watch):
            self._enrich(record, watch)
            self._after_loss(record, watch)
        elif watch.restart_at is not None and time.monotonic() >= watch.restart_at:
            self._restart(record, watch)

    def _check_active(self, record: TaskRecord, watch: Watch) -> None:
        name = record.name
        if record.pid:  # kept: a lost run's record no longer names its process
            if watch.pid_run != record.started_at:
                watch.ended = ""
            watch.pid, watch.pid_run = record.pid, record.started_at
        if control.in_hand(self.store, name):
            return  # a start or a stop settles this run
        if control.running_pid(self.store, name) is not None:
            if watch.run != record.started_at:
                self._new_run(record, watch)
            return
        reason = self._reason(record, watch)
        if not transition(
            self.store, name, TaskStatus.FAILED, reason, run=record.started_at, conditional=True
        ):
            return  # the run recorded its own end meanwhile (or another began)
        log.error("task %s: %s", name, reason)
        self._after_loss(record, watch)

    def _new_run(self, record: TaskRecord, watch: Watch) -> None:
        """A run not seen before: adopted; a start that was not ours resets the count."""
        watch.run = record.started_at
        watch.restart_at = None
        if record.started_at not in watch.ours:
            watch.retries = Retries(error_behavior(record))
        log.info("task %s: watching its process (pid %s)", record.name, record.pid)

    def _lost(self, record: TaskRecord, watch: Watch) -> bool:
        """A run failed because its process was found gone, by someone else (the API's
        or the CLI's status reads) or before this server started, not yet dealt with."""
        reason = record.stop_reason
        return (
            record.status is TaskStatus.FAILED
            and reason.startswith(GONE)
            and NO_RESTART not in reason
            and record.started_at not in watch.handled
            and (reason == GONE or self._first)
        )

    def _enrich(self, record: TaskRecord, watch: Watch) -> None:
        """The plain "process gone" reason of a run someone else failed, with what the
        supervisor knows (exit status, the log's last errors)."""
        if record.stop_reason == GONE:
            reason = self._reason(record, watch)
            self.store.set_status(
                record.name,
                TaskStatus.FAILED,
                reason,
                allowed_from=(TaskStatus.FAILED,),
                run=record.started_at,
            )

    def _reason(self, record: TaskRecord, watch: Watch) -> str:
        parts = [GONE]
        if watch.pid_run == record.started_at:  # reaped once: kept for the next look
            watch.ended = watch.ended or _exit_status(record.pid or watch.pid)
            status = watch.ended
        else:
            status = _exit_status(record.pid)
        if status:
            parts.append(status)
        why = tail_reason(self.store.path, record.name, record.started_at)
        if why:
            parts.append(f"last log lines: {why}")
        return "; ".join(parts)

    def _after_loss(self, record: TaskRecord, watch: Watch) -> None:
        """Plan the resume of a lost run, or give up on it as the settings say."""
        name, run = record.name, record.started_at
        if run is not None:
            watch.handled.add(run)
        watch.run, watch.pid, watch.pid_run, watch.ended = None, None, None, ""
        wait = watch.retries.next_wait()
        if wait is None:
            self._give_up(record, watch.retries)
            return
        watch.restart_at, watch.restart_run = time.monotonic() + wait, run
        text = f"process gone; resuming in {wait:.0f} s (restart {watch.retries.attempts})"
        log.warning("task %s: %s", name, text)
        append_line(self.store.path, name, "W", text)

    def _give_up(self, record: TaskRecord, retries: Retries) -> None:
        count = retries.settings.RecoverableErrorCount
        why = (
            "RecoverableErrorCount is 0"
            if count == 0
            else f"after {retries.attempts} restart(s) (RecoverableErrorCount {count})"
        )
        now = self.store.task(record.name)
        if now is None or now.status is not TaskStatus.FAILED:
            return
        reason = f"{now.stop_reason}; {NO_RESTART}: {why}"
        self.store.set_status(
            record.name,
            TaskStatus.FAILED,
            reason,
            allowed_from=(TaskStatus.FAILED,),
            run=record.started_at,
        )
        log.error("task %s: %s", record.name, reason)
        append_line(self.store.path, record.name, "E", f"process gone; {NO_RESTART}: {why}")

    def _restart(self, record: TaskRecord, watch: Watch) -> None:
        """Resume the lost run from its checkpoint, unless someone acted meanwhile."""
        watch.restart_at = None
        if record.status is not TaskStatus.FAILED or record.started_at != watch.restart_run:
            return
        append_line(
            self.store.path, record.name, "I", "resuming the task after its process was lost"
        )
        try:
            launched = self.service.resume(record.name)
        except OpenDMSError as exc:
            log.error("task %s: resuming it failed: %s", record.name, exc)
            return
        after = self.store.task(record.name)
        if after is not None and after.started_at is not None:
            watch.ours.add(after.started_at)
        log.warning("task %s: resumed (pid %d)", record.name, launched.pid)


def _exit_status(pid: int | None) -> str:
    """How process ``pid`` ended, when it was this server's child (else "")."""
    if not pid or pid <= 0:
        return ""
    deadline = time.monotonic() + EXIT_WAIT
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return ""
        if done == pid:
            break
        if time.monotonic() > deadline:
            return ""
        time.sleep(0.02)  # its lock is let go before the kernel has finished ending it
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def lifespan_of(supervisor: Supervisor) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A Starlette lifespan that runs ``supervisor`` while the server serves (its end
    stops the supervisor, not the tasks)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        # the first look before serving: running tasks adopted, lost ones failed
        await anyio.to_thread.run_sync(supervisor.tick)
        supervisor.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(supervisor.close)

    return lifespan
