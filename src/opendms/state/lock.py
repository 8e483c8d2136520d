"""One run of a task at a time: an exclusive lock per task beside the state store.

The lock is an ``flock`` on ``<state dir>/locks/<task>.lock``, held by the process
that runs the task for as long as it runs. The kernel drops it when that process
ends in any way (exit, crash, SIGKILL), so a lock whose process is gone is simply
taken over by the next run: there is no stale-lock file to clean up. The file holds
the holder's pid, so a refused run can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from urllib.parse import quote

from opendms.errors import TaskLockedError

PROBE_GRACE = 0.5  # seconds a run retries a lock that a holder_pid probe may hold


def lock_path(state: Path, task: str) -> Path:
    """The lock file of ``task`` for the state store at ``state``."""
    return state.parent / "locks" / f"{quote(task, safe='-_.')}.lock"


class TaskLock:
    """The run lock of one task (use as a context manager, or acquire/release)."""

    def __init__(self, state: Path, task: str) -> None:
        self.path = lock_path(state, task)
        self.task = task
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise TaskLockedError naming the process that holds it.

        A process asking who holds the lock (:func:`holder_pid`) holds it shared for a
        moment; a run that meets such a probe tries again for :data:`PROBE_GRACE`
        seconds, so only a run that really holds the lock refuses this one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + PROBE_GRACE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                os.close(fd)
                holder = _held_by(self.path)
                who = f"pid {holder}" if holder and holder > 0 else "another process"
                raise TaskLockedError(
                    f"task {self.task!r} is already running ({who}); stop it with "
                    f"`opendms task stop {self.task}` or wait for it to end"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> TaskLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_pid(state: Path, task: str) -> int | None:
    """The pid of the live process running ``task``, or None when nobody holds the task's
    lock; -1 when a process holds it but its pid is not known yet (it has just taken
    the lock: the file is still empty, or still names an earlier holder that is gone)."""
    return _held_by(lock_path(state, task))


def _held_by(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() and pid_alive(int(text)) else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists (one of another user's counts)."""
    if not pid or pid <= 0:  # 0 and negative numbers name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
