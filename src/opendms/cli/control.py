"""Background task control: ``task start|stop|resume|reload NAME``.

A started task runs as its own process (``opendms task run FILE --follow``) with
its log in ``<state dir>/logs/NAME.log``; the state store keeps the task file and
the process id, so ``stop`` can ask it to finish its batch and stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from opendms.errors import OpenDMSError
from opendms.state import StateStore, TaskStatus
from opendms.state.store import TaskRecord

START_WAIT = 10.0  # seconds to wait for a started task to report running (or fail)


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _record(store: StateStore, name: str) -> TaskRecord:
    record = store.task(name)
    if record is None:
        raise OpenDMSError(
            f"no task named {name!r} in {store.path}; run it once with "
            "`opendms task run FILE` or pass --file"
        )
    return record


def task_file(store: StateStore, name: str, file: Path | None) -> Path:
    """The task file: given, or the one the task last ran from."""
    if file is not None:
        return file.resolve()
    record = _record(store, name)
    if not record.file:
        raise OpenDMSError(f"task {name!r} has no task file on record; pass --file TASK_FILE")
    path = Path(record.file)
    if not path.is_file():
        raise OpenDMSError(f"task {name!r}: its task file {record.file} is gone; pass --file")
    return path


def check_not_running(store: StateStore, name: str) -> None:
    record = store.task(name)
    if record is not None and alive(record.pid):
        raise OpenDMSError(f"task {name!r} is already running (pid {record.pid})")


def check_first_start(store: StateStore, name: str) -> None:
    """DMS's start-replication is for a task's first run: afterwards resume or reload."""
    record = store.task(name)
    if record is not None and record.started_at and record.migration_type != "full-load":
        raise OpenDMSError(
            f"task {name!r} has run before: `opendms task resume {name}` continues where it "
            f"stopped, `opendms task reload {name}` starts over with a new full load"
        )


def spawn(store: StateStore, name: str, file: Path, fresh: bool) -> tuple[int, Path]:
    """Start ``task run FILE --follow`` in the background; returns (pid, log file)."""
    logs = store.path.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    args = [sys.executable, "-m", "opendms.cli.main", "--state", str(store.path)]
    args += ["task", "run", "--quiet", "--follow", str(file)]
    if fresh:
        args.append("--fresh")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    _wait_started(store, name, proc, log)
    return proc.pid, log


def _wait_started(store: StateStore, name: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise OpenDMSError(f"task {name!r} stopped at once: " + " | ".join(tail))
        record = store.task(name)
        if record is not None and record.pid == proc.pid and record.status is TaskStatus.RUNNING:
            return
        time.sleep(0.1)


def stop(store: StateStore, name: str, timeout: float) -> TaskRecord:
    """Ask the task's process to stop (SIGTERM: finish the batch, checkpoint) and wait."""
    record = _record(store, name)
    if not alive(record.pid):
        raise OpenDMSError(f"task {name!r} is not running (status {record.status.value})")
    assert record.pid is not None
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(record.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(record.pid):
        raise OpenDMSError(f"task {name!r} (pid {record.pid}) did not stop within {timeout:.0f}s")
    return _record(store, name)
