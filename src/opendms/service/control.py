"""Background task control, under :class:`~opendms.service.tasks.TaskService`: start
(resume, reload) and stop a task's process, find who runs a task, and reconcile a task
whose process vanished.

A started task runs as its own process (``opendms task run FILE --follow``) with
its log in ``<state dir>/logs/NAME.log`` (:mod:`opendms.service.logs`; its raw console
output in ``NAME.out``); the state store keeps the task file and the process id, so
``stop`` can ask it to finish its batch and stop.

Timing never makes ``stop`` fail: ``start`` returns only once the task's process holds
the task's run lock (so a ``stop`` after it always finds the process), ``stop`` waits
out the moment a process has the lock but has not written its pid yet, takes a process
that ends by itself meanwhile as stopped, and records a run that its signal ended
before the run could record it as stopped by the user; a task's status is only ever
marked failed ("process gone") for the run that was recorded, never over the end a run
recorded itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from opendms.errors import ConfigError, OpenDMSError, TaskLockedError
from opendms.service.logs import console_path, log_path, tail_reason
from opendms.state import TaskRecord, TaskStatus, TaskStore
from opendms.state.lock import holder_pid, lock_path, pid_alive
from opendms.state.private import private_dir, private_file
from opendms.state.status import ACTIVE, GONE, STOPPED_BY_USER, end_lost_run, transition

__all__ = [
    "ACTIVE",
    "GONE",
    "STOPPED_BY_USER",
    "alive",
    "check_first_start",
    "check_not_running",
    "in_hand",
    "reconciled",
    "record_of",
    "running_pid",
    "spawn",
    "starting_path",
    "stop",
    "stopping_path",
    "task_file",
]

START_WAIT = 10.0  # seconds to wait for a started task to report running (or fail)
LOCK_WAIT = 600.0  # seconds to wait for a started task's process to take its run lock


def alive(pid: int | None) -> bool:
    return pid_alive(pid)


def running_pid(store: TaskStore, name: str) -> int | None:
    """The pid of the process running task ``name`` (it holds the task's lock), or None."""
    return holder_pid(store.path, name)


def reconciled(store: TaskStore, record: TaskRecord) -> TaskRecord:
    """``record``, with a task recorded as starting/running whose process is gone (killed,
    crashed) marked failed in the store: the status never claims a run nobody does.

    A run records its end before it lets go of its lock, so once the lock is free the
    store holds that end; only a run still recorded as active is marked failed (a
    conditional update: a run that ended between the two reads keeps its own end)."""
    if record.status not in ACTIVE or running_pid(store, record.name) is not None:
        return record
    end_lost_run(store, record)
    return store.task(record.name) or record


def record_of(store: TaskStore, name: str) -> TaskRecord:
    """The task's record (reconciled), or a ConfigError for an unknown task."""
    record = store.task(name)
    if record is None:
        raise ConfigError(
            f"no task named {name!r} in {store.path}; run it once with "
            "`opendms task run FILE` or pass --file"
        )
    return reconciled(store, record)


def task_file(store: TaskStore, name: str, file: Path | None) -> Path:
    """The task file: given, or the one the task last ran from."""
    if file is not None:
        return file.resolve()
    record = record_of(store, name)
    if not record.file:
        raise ConfigError(f"task {name!r} has no task file on record; pass --file TASK_FILE")
    path = Path(record.file)
    if not path.is_file():
        raise ConfigError(f"task {name!r}: its task file {record.file} is gone; pass --file")
    return path


def check_not_running(store: TaskStore, name: str) -> None:
    pid = running_pid(store, name)
    if pid is not None:
        who = f"pid {pid}" if pid > 0 else "another process"
        raise TaskLockedError(
            f"task {name!r} is already running ({who}); stop it with `opendms task stop {name}`"
        )


def check_first_start(store: TaskStore, name: str) -> None:
    """DMS's start-replication is for a task's first run: afterwards resume or reload."""
    record = store.task(name)
    if record is not None and record.started_at and record.migration_type != "full-load":
        raise ConfigError(
            f"task {name!r} has run before: `opendms task resume {name}` continues where it "
            f"stopped, `opendms task reload {name}` starts over with a new full load"
        )


def spawn(store: TaskStore, name: str, file: Path, fresh: bool) -> tuple[int, Path]:
    """Start ``task run FILE --follow`` in the background; returns (pid, log file)."""
    log, out_path = log_path(store.path, name), console_path(store.path, name)
    private_dir(log.parent)
    private_file(log)  # the log names rows (data errors)
    private_file(out_path)
    args = [sys.executable, "-m", "opendms.cli.main", "--state", str(store.path)]
    args += ["task", "run", "--quiet", "--follow", str(file)]
    if fresh:
        args.append("--fresh")
    known = store.task(name)
    before = known.started_at if known is not None else None  # the last run's start
    marker = starting_path(store, name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))  # a stop meanwhile waits for the task's process
    try:
        with out_path.open("wb") as out:  # this run's console output only
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        _wait_started(store, name, proc, log, before)
    finally:
        marker.unlink(missing_ok=True)
    return proc.pid, log


def starting_path(store: TaskStore, name: str) -> Path:
    """``<lock>.starting``: the pid of a ``start`` (``resume``, ``reload``) waiting for the
    process it launched to take the task's lock (removed once it has, or has ended)."""
    lock = lock_path(store.path, name)
    return lock.with_name(lock.name + ".starting")


def stopping_path(store: TaskStore, name: str) -> Path:
    """``<lock>.stopping``: the pid of a ``stop`` under way (removed once it is done)."""
    lock = lock_path(store.path, name)
    return lock.with_name(lock.name + ".stopping")


def _starting(store: TaskStore, name: str) -> bool:
    """Whether a ``start`` is still waiting for its task's process to take the lock. Only
    waited for, never signalled: a stale file (its ``start`` killed) names no one."""
    return _marked(starting_path(store, name))


def in_hand(store: TaskStore, name: str) -> bool:
    """Whether a ``start`` (``resume``, ``reload``) or a ``stop`` of the task is under
    way in some process: its run's status is theirs to settle, not a supervisor's."""
    return _marked(starting_path(store, name)) or _marked(stopping_path(store, name))


def _marked(path: Path) -> bool:
    try:
        text = path.read_text().strip()
    except OSError:
        return False
    return text.isdigit() and alive(int(text))


def _wait_started(
    store: TaskStore, name: str, proc: subprocess.Popen[bytes], log: Path, before: str | None
) -> None:
    """Wait until the task's process holds its run lock (from then on ``stop`` finds it;
    before, it may still be loading or assessing), then, up to START_WAIT seconds from
    the start, until it reports running: a task that fails at once says why."""
    start = time.monotonic()
    while running_pid(store, name) != proc.pid:
        if _ended(store, name, proc, log, before):
            return
        if time.monotonic() - start > LOCK_WAIT:
            raise OpenDMSError(
                f"task {name!r} (pid {proc.pid}) has not started within {LOCK_WAIT:.0f}s; see {log}"
            )
        time.sleep(0.05)
    while time.monotonic() - start < START_WAIT:
        if _ended(store, name, proc, log, before):
            return
        record = store.task(name)
        if record is not None and record.pid == proc.pid and record.status is TaskStatus.RUNNING:
            return
        time.sleep(0.1)


def _ended(
    store: TaskStore, name: str, proc: subprocess.Popen[bytes], log: Path, before: str | None
) -> bool:
    """True when the task's process has already ended well (a short task, or one that a
    ``task stop`` stopped meanwhile: its run, started after ``before``, says so); an error
    with the log's last lines when it failed."""
    code = proc.poll()
    if code is None:
        return False
    record = store.task(name)
    if code == 0 or (
        record is not None
        and record.started_at != before  # this run's end, not the last run's
        and record.stop_reason == STOPPED_BY_USER
    ):
        return True
    why = tail_reason(store.path, name, record.started_at if record is not None else None)
    raise OpenDMSError(f"task {name!r} stopped at once: {why or f'exit status {code}'}")


def stop(store: TaskStore, name: str, timeout: float) -> TaskRecord | None:
    """Ask the task's process to stop (SIGTERM: finish the batch, checkpoint) and wait;
    the task's record after (None: it was stopped before it recorded itself, in its
    first run).

    A task whose process is already gone is recorded as failed (its reason says so)
    and returned as it is: there is nothing left to stop. A task that is not running
    (it has stopped or failed, and said so) is an error naming its status."""
    deadline = time.monotonic() + timeout
    pid = _holder(store, name, deadline)
    if pid is None:
        record = record_of(store, name)  # read after the lock: the run's own end
        if record.stop_reason.startswith(GONE):
            return record
        why = f": {record.stop_reason}" if record.stop_reason else ""
        raise OpenDMSError(f"task {name!r} is not running (status {record.status.value}{why})")
    marker = stopping_path(store, name)
    marker.write_text(str(os.getpid()))  # a supervisor leaves this run's end to us
    try:
        return _stop_process(store, name, pid, timeout, deadline)
    finally:
        marker.unlink(missing_ok=True)


def _stop_process(
    store: TaskStore, name: str, pid: int, timeout: float, deadline: float
) -> TaskRecord | None:
    with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
        os.kill(pid, signal.SIGTERM)
    while running_pid(store, name) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if running_pid(store, name) is not None:
        raise OpenDMSError(f"task {name!r} (pid {pid}) did not stop within {timeout:.0f}s")
    ended = store.task(name)
    if ended is not None and ended.status in ACTIVE:
        # the signal ended the run before it could record anything (it was still
        # starting): stopped, as the user asked, rather than "process gone"
        transition(
            store,
            name,
            TaskStatus.STOPPED,
            STOPPED_BY_USER,
            run=ended.started_at,
            conditional=True,
        )
    return record_of(store, name) if ended is not None else None


def _holder(store: TaskStore, name: str, deadline: float) -> int | None:
    """The pid of the process holding the task's run lock, or None. Waited for (until
    ``deadline``): a process that has just taken the lock and not yet written its pid,
    and one that ``start`` launched and that has not taken the lock yet."""
    while True:
        pid = running_pid(store, name)
        if pid is not None and pid > 0:
            return pid
        if pid is None and not _starting(store, name):
            return None
        if time.monotonic() > deadline:
            raise OpenDMSError(f"task {name!r} did not start or stop within the timeout")
        time.sleep(0.02)
