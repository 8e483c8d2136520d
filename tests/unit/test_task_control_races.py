"""``task stop`` and the task run lock under unlucky timing: a lock probe met by a run
that takes the lock, a holder that has not written its pid yet, a run that ends while
its status is read, a process that a stop's signal ends before it records anything."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from opendms.errors import TaskLockedError
from opendms.service import control
from opendms.state import StateStore, TaskStatus
from opendms.state.lock import TaskLock, holder_pid, lock_path


def _store(tmp_path: Path, status: TaskStatus = TaskStatus.RUNNING) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    store.save_task("t", "sqlite:///a", "sqlite:///b", "cdc", "{}")
    store.set_status("t", TaskStatus.STARTING)
    if status is not TaskStatus.STARTING:
        store.set_status("t", status)
    return store


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_a_run_taking_the_lock_waits_out_a_probe(tmp_path: Path) -> None:
    """holder_pid holds the lock shared for a moment; a run meeting it is not refused."""
    path = lock_path(tmp_path / "state.db", "t")
    path.parent.mkdir(parents=True)
    path.write_text("")
    probe = os.open(path, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe, caught in the act
    threading.Timer(0.1, lambda: os.close(probe)).start()
    with TaskLock(tmp_path / "state.db", "t"):
        assert holder_pid(tmp_path / "state.db", "t") == os.getpid()
    assert holder_pid(tmp_path / "state.db", "t") is None


def test_a_run_holding_the_lock_refuses_another(tmp_path: Path) -> None:
    with TaskLock(tmp_path / "state.db", "t"):
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, pathlib; from opendms.state.lock import TaskLock; "
                "TaskLock(pathlib.Path(sys.argv[1]), 't').acquire()",
                str(tmp_path / "state.db"),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    assert other.returncode == 1 and f"already running (pid {os.getpid()})" in other.stderr


def test_a_holder_whose_pid_is_not_written_yet_is_unknown_not_the_old_one(tmp_path: Path) -> None:
    """Between taking the lock and writing its pid, the file is empty or names the last
    holder (gone): -1, never a pid to signal."""
    state = tmp_path / "state.db"
    path = lock_path(state, "t")
    path.parent.mkdir(parents=True)
    path.write_text(str(_dead_pid()))
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert holder_pid(state, "t") == -1
        os.ftruncate(fd, 0)
        assert holder_pid(state, "t") == -1
        os.write(fd, str(os.getpid()).encode())
        assert holder_pid(state, "t") == os.getpid()
    finally:
        os.close(fd)


def test_reconcile_never_overwrites_the_end_a_run_recorded(tmp_path: Path) -> None:
    """A status read while the run was active, the run then records its end and lets go
    of its lock: the end stays (not "process gone")."""
    store = _store(tmp_path)
    seen = store.task("t")
    assert seen is not None and seen.status is TaskStatus.RUNNING
    store.set_status("t", TaskStatus.STOPPED, "CAUGHT_UP")  # the run ends meanwhile
    after = control.reconciled(store, seen)
    assert (after.status, after.stop_reason) == (TaskStatus.STOPPED, "CAUGHT_UP")
    store.set_status("t", TaskStatus.STARTING)
    store.set_status("t", TaskStatus.RUNNING)
    gone = control.reconciled(store, store.task("t"))  # type: ignore[arg-type]
    assert (gone.status, gone.stop_reason, gone.pid) == (TaskStatus.FAILED, control.GONE, None)


def _holder(tmp_path: Path, setup: str = "") -> subprocess.Popen[str]:
    """A process that takes the task's lock, runs ``setup``, says so, and sleeps."""
    code = (
        "import pathlib, sys, time; from opendms.state.lock import TaskLock\n"
        "lock = TaskLock(pathlib.Path(sys.argv[1]), 't'); lock.acquire()\n"
        + setup
        + "\nprint('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "state.db")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_stop_of_a_run_its_signal_ends_before_it_records_anything(tmp_path: Path) -> None:
    """SIGTERM before the run's handlers could record a stop (the default action ends
    it): recorded as stopped by the user, not as a process gone."""
    store = _store(tmp_path, TaskStatus.STARTING)
    proc = _holder(tmp_path)
    record = control.stop(store, "t", timeout=30)
    assert proc.wait(timeout=10) != 0 and record is not None
    assert (record.status, record.stop_reason, record.pid) == (
        TaskStatus.STOPPED,
        "STOPPED_BY_USER",
        None,
    )


def test_stop_of_a_run_that_records_its_own_end_keeps_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    setup = (
        "import signal; from opendms.state import StateStore, TaskStatus\n"
        "def end(*a):\n"
        "    StateStore(sys.argv[1]).set_status('t', TaskStatus.STOPPED, 'STOP_POSITION_REACHED')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, end)"
    )
    proc = _holder(tmp_path, setup)
    record = control.stop(store, "t", timeout=30)
    assert proc.wait(timeout=10) == 0 and record is not None
    assert (record.status, record.stop_reason) == (TaskStatus.STOPPED, "STOP_POSITION_REACHED")


def test_stop_waits_for_a_holder_to_write_its_pid(tmp_path: Path) -> None:
    """The lock taken, its pid not yet written: stop waits for the pid, then signals."""
    state = tmp_path / "state.db"
    store = _store(tmp_path)
    path = lock_path(state, "t")
    path.parent.mkdir(parents=True)
    path.write_text(str(_dead_pid()))  # an earlier holder's pid, gone
    script = (
        "import fcntl, os; fd = os.open(sys.argv[2], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX);"
        " print('locked', flush=True); time.sleep(0.5); os.ftruncate(fd, 0);"
        " os.write(fd, str(os.getpid()).encode()); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; " + script, str(state), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    started = time.monotonic()
    record = control.stop(store, "t", timeout=30)
    assert proc.wait(timeout=10) == -15  # its own SIGTERM, sent once the pid was known
    assert time.monotonic() - started >= 0.4
    assert record is not None and record.status is TaskStatus.STOPPED


def test_stop_of_a_task_not_running_says_its_status_and_why(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.set_status("t", TaskStatus.FAILED, "endpoint error: boom")
    with pytest.raises(Exception, match=r"not running \(status failed: endpoint error: boom\)"):
        control.stop(store, "t", timeout=5)


def test_stop_of_an_unknown_task(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    with pytest.raises(Exception, match="no task named 'x'"):
        control.stop(store, "x", timeout=5)
    lock = TaskLock(tmp_path / "state.db", "x")
    with lock, pytest.raises(TaskLockedError):
        TaskLock(tmp_path / "state.db", "x").acquire()


def test_stop_while_start_waits_for_the_task_process(tmp_path: Path) -> None:
    """A stop issued while `task start` still waits for the process it launched to take
    the lock (the task may not even be recorded yet) waits for it, then stops it; a
    marker left by a start that is gone is ignored."""
    store = StateStore(tmp_path / "state.db")
    marker = control.starting_path(store, "t")
    marker.parent.mkdir(parents=True)
    marker.write_text(str(_dead_pid()))
    with pytest.raises(Exception, match="no task named 't'"):
        control.stop(store, "t", timeout=5)
    marker.write_text(str(os.getpid()))  # this process plays the waiting `task start`
    holder: list[subprocess.Popen[str]] = []

    def launch() -> None:
        holder.append(_holder(tmp_path))
        marker.unlink()

    timer = threading.Timer(0.5, launch)
    timer.start()
    record = control.stop(store, "t", timeout=30)
    timer.join()
    assert record is None  # stopped before it recorded itself (its first run)
    assert holder[0].wait(timeout=10) == -15
