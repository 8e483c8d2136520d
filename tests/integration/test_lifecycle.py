"""Task lifecycle: one run at a time, a status that tells the truth, the source backlog
of stopped CDC tasks (issue 8, section 7)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from opendms.state import StateStore, TableState, TaskStatus
from tests.support.sql import execute, table_rows
from tests.waiting import wait_until

EXE = [sys.executable, "-m", "opendms.cli.main"]
BIG = 400_000


def _cli(state: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [*EXE, "--state", str(state), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr


def _spawn(state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*EXE, "--state", str(state), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _record(state: Path, name: str) -> Any:
    return StateStore(state).task(name) if state.exists() else None


def _phase(state: Path, name: str) -> str:
    record = _record(state, name)
    return record.phase if record is not None else ""


def _big_source(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE ledger (n INTEGER, note TEXT)")  # no key: duplicates show
        conn.execute(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) "
            "INSERT INTO ledger SELECT n, 'row ' || n FROM g",
            (BIG,),
        )


def _task_file(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / f"{fields['name']}.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def _loading(state: Path, name: str) -> bool:
    if not state.exists():
        return False
    tables = StateStore(state).tables(name)
    return any(0 < t.full_load_rows < BIG for t in tables)


def test_a_second_run_is_refused_and_leaves_no_duplicates(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    _big_source(src)
    settings = {
        "FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD", "CommitRate": 5000}
    }
    file = _task_file(
        tmp_path,
        name="dup",
        source=f"sqlite:///{src}",
        target=f"sqlite:///{dst}",
        task_settings=settings,
    )
    state = tmp_path / "state.db"
    first = _spawn(state, "task", "run", "--quiet", str(file))
    wait_until(lambda: _loading(state, "dup"), 60, "the first run to be loading")
    # held mid-load (SIGSTOP) while the second run tries: however fast the load, the
    # first run still holds the task when the second one starts
    first.send_signal(signal.SIGSTOP)
    try:
        code, out, err = _cli(state, "task", "run", "--quiet", str(file))
        record = _record(state, "dup")  # the refused run left the first run's record alone
    finally:
        first.send_signal(signal.SIGCONT)
    assert code == 1 and f"already running (pid {first.pid})" in err, (out, err)
    assert record.status is TaskStatus.RUNNING and record.pid == first.pid, record
    assert first.wait(timeout=120) == 0, first.communicate()
    record = _record(state, "dup")
    assert record.status is TaskStatus.STOPPED and record.stop_reason == "FULL_LOAD_ONLY_FINISHED"
    with sqlite3.connect(dst) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT n) FROM ledger").fetchone() == (
            BIG,
            BIG,
        )


def test_ctrl_c_during_the_load_shows_where_it_stopped(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    _big_source(src)
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE other (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO other VALUES (1)")
    settings = {"FullLoadSettings": {"CommitRate": 5000, "MaxFullLoadSubTasks": 1}}
    file = _task_file(
        tmp_path,
        name="cc",
        source=f"sqlite:///{src}",
        target=f"sqlite:///{dst}",
        task_settings=settings,
    )
    state = tmp_path / "state.db"
    proc = _spawn(state, "task", "run", "--quiet", str(file))
    wait_until(lambda: _loading(state, "cc"), 60, "the load to be under way")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    code, out, _ = _cli(state, "task", "status", "--json", "cc")
    assert code == 0, out
    status = json.loads(out)
    assert status["status"] == "stopped" and status["stop_reason"] == "STOPPED_BY_USER"
    assert 0 < status["progress_percent"] < 100, status
    states = {t.name: t.state for t in StateStore(state).tables("cc")}
    assert TableState.CANCELLED in states.values() and TableState.COMPLETED not in (
        states["ledger"],
    )


def _cdc_source(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 51)])


def test_background_task_lock_kill_resume_and_delete(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    _cdc_source(src)
    settings = {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}}
    file = _task_file(
        tmp_path,
        name="bg",
        source=f"sqlite:///{src}",
        target=f"sqlite:///{dst}",
        migration_type="full-load-and-cdc",
        task_settings=settings,
    )
    state = tmp_path / "state.db"
    code, out, err = _cli(state, "task", "start", "bg", "--file", str(file))
    assert code == 0, (out, err)
    pid = _record(state, "bg").pid
    wait_until(lambda: _phase(state, "bg") == "ongoing replication", 60, "the live phase")

    code, _, err = _cli(state, "task", "run", str(file), "--skip-assessment")
    assert code == 1 and f"already running (pid {pid})" in err, err
    code, _, err = _cli(state, "task", "delete", "bg")
    assert code == 1 and "already running" in err and "task stop bg" in err, err
    record = _record(state, "bg")
    assert record.status is TaskStatus.RUNNING and record.pid == pid  # untouched

    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _gone(pid), 60, "the process to die")
    code, out, _ = _cli(state, "task", "status")
    assert code == 0 and "failed" in out and "process gone" in out, out
    assert _record(state, "bg").status is TaskStatus.FAILED  # recorded, not only shown
    code, out, err = _cli(state, "task", "stop", "bg")
    assert code == 0 and "process gone" in out, (out, err)

    execute(f"sqlite:///{src}", ["INSERT INTO t VALUES (99, 'after the kill')"])
    code, out, err = _cli(state, "task", "resume", "bg")
    assert code == 0, (out, err)
    wait_until(lambda: (99, "after the kill") in _rows(dst), 60, "the change after the kill")
    code, out, err = _cli(state, "task", "stop", "bg")
    assert code == 0 and "STOPPED_BY_USER" in out, (out, err, _log_tail(state, "bg"))
    assert _rows(dst) == _rows(src)
    code, out, err = _cli(state, "task", "delete", "bg")
    assert code == 0, (out, err)
    with sqlite3.connect(src) as conn:
        triggers = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='trigger'")
        assert triggers.fetchone() == (0,)


def _log_tail(state: Path, name: str) -> list[str]:
    """The last lines of a background task's log (why it ended, when it did)."""
    log = state.parent / "logs" / f"{name}.log"
    return log.read_text(errors="replace").splitlines()[-20:] if log.exists() else []


def test_stop_right_after_start_or_resume_stops_the_task(tmp_path: Path) -> None:
    """`task start` and `task resume` return once the task's process holds the task, so a
    `task stop` right after them always finds it and stops it (whatever phase it is in)."""
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    _cdc_source(src)
    file = _task_file(
        tmp_path,
        name="quick",
        source=f"sqlite:///{src}",
        target=f"sqlite:///{dst}",
        migration_type="full-load-and-cdc",
    )
    state = tmp_path / "state.db"
    for verb in ("start", "resume", "resume"):
        code, out, err = _cli(state, "task", verb, "quick", "--file", str(file))
        assert code == 0, (out, err)
        code, out, err = _cli(state, "task", "stop", "quick")
        assert code == 0 and "stopped (STOPPED_BY_USER)" in out, (
            verb,
            out,
            err,
            _log_tail(state, "quick"),
        )
        record = _record(state, "quick")
        assert record.status is TaskStatus.STOPPED and record.pid is None, record


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie until its parent (the short-lived `task start`) is gone: ask /proc
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()


def test_cdc_run_reports_changes_applied(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    _cdc_source(src)
    file = _task_file(
        tmp_path,
        name="sum",
        source=f"sqlite:///{src}",
        target=f"sqlite:///{dst}",
        migration_type="full-load-and-cdc",
    )
    state = tmp_path / "state.db"
    code, out, _ = _cli(state, "task", "run", "--quiet", str(file))
    assert code == 0 and "full load 1 tables, 50 rows" in out, out
    execute(
        f"sqlite:///{src}",
        [
            "INSERT INTO t VALUES (51, 'new')",
            "UPDATE t SET v = 'x' WHERE id = 1",
            "DELETE FROM t WHERE id IN (2, 3)",
        ],
    )
    code, out, _ = _cli(state, "task", "run", "--quiet", str(file))
    assert code == 0, out
    assert "changes applied so far: 1 inserts, 1 updates, 2 deletes" in out, out
    assert "0 rows loaded" not in out and _rows(dst) == _rows(src)


def _backlog_task(tmp_path: Path, name: str, source: str, target: str) -> Path:
    return _task_file(
        tmp_path, name=name, source=source, target=target, migration_type="full-load-and-cdc"
    )


def test_stopped_pg_task_shows_and_warns_about_retained_wal(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    execute(pg_db, ["CREATE TABLE t (id int PRIMARY KEY, v text)", "INSERT INTO t VALUES (1, 'a')"])
    file = _backlog_task(tmp_path, "walk", pg_db, pg_target_db)
    state = tmp_path / "state.db"
    code, out, err = _cli(state, "task", "run", "--quiet", str(file))
    assert code == 0, (out, err)
    execute(pg_db, ["INSERT INTO t SELECT g, repeat('x', 1000) FROM generate_series(2, 5000) g"])
    code, out, err = _cli(state, "task", "status", "--json", "walk")
    backlog = json.loads(out)["source_backlog"]
    assert backlog["unit"] == "bytes" and backlog["amount"] > 5_000_000, backlog
    assert "opendms_walk" in backlog["what"] and not backlog["gone"]
    assert "warning" not in err
    env = {"OPENDMS_BACKLOG_WARN_MB": "1"}
    code, out, err = _cli(state, "task", "status", env=env)
    assert code == 0 and "MiB" in out and "warning: task walk" in err, (out, err)
    code, out, err = _cli(state, "assess", "--json", str(file), env=env)
    checks = {c["id"]: c for c in json.loads(out)}
    assert checks["cdc-source-backlog"]["status"] == "warning", checks["cdc-source-backlog"]
    code, out, err = _cli(state, "task", "delete", "walk")
    assert code == 0, (out, err)
    assert table_rows(pg_db, "pg_replication_slots WHERE slot_name = 'opendms_walk'") == []


def test_stopped_mysql_and_sqlite_tasks_show_their_backlog(mysql_db: str, tmp_path: Path) -> None:
    execute(
        mysql_db, ["CREATE TABLE t (id int PRIMARY KEY, v text)", "INSERT INTO t VALUES (1, 'a')"]
    )
    mfile = _backlog_task(tmp_path, "mys", mysql_db, f"sqlite:///{tmp_path / 'm.db'}")
    src = tmp_path / "src.db"
    _cdc_source(src)
    sfile = _backlog_task(tmp_path, "lite", f"sqlite:///{src}", f"sqlite:///{tmp_path / 'l.db'}")
    state = tmp_path / "state.db"
    for file in (mfile, sfile):
        code, out, err = _cli(state, "task", "run", "--quiet", str(file))
        assert code == 0, (out, err)
    execute(mysql_db, [f"INSERT INTO t VALUES ({i}, '{'y' * 2000}')" for i in range(2, 102)])
    execute(f"sqlite:///{src}", [f"UPDATE t SET v = 'w{i}' WHERE id = {i}" for i in range(1, 8)])
    code, out, _ = _cli(state, "task", "status", "--json")
    views = {v["name"]: v["source_backlog"] for v in json.loads(out)}
    assert views["mys"]["unit"] == "bytes" and views["mys"]["amount"] > 200_000, views
    assert "binlog after the applied position" in views["mys"]["what"]
    assert views["lite"] == {
        "amount": 7,
        "unit": "changes",
        "what": views["lite"]["what"],
        "gone": False,
        "warning": None,
    }


@pytest.mark.parametrize("kill", [signal.SIGKILL])
def test_killed_foreground_run_is_failed_not_running(tmp_path: Path, kill: int) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    _cdc_source(src)
    file = _task_file(
        tmp_path,
        name="fk",
        source=f"sqlite:///{src}",
        target=f"sqlite:///{dst}",
        migration_type="full-load-and-cdc",
    )
    state = tmp_path / "state.db"
    proc = _spawn(state, "task", "run", "--quiet", "--follow", str(file))
    wait_until(lambda: _phase(state, "fk") == "ongoing replication", 60, "the live phase")
    proc.send_signal(kill)
    proc.wait(timeout=30)
    code, out, _ = _cli(state, "task", "status", "--json", "fk")
    assert code == 0, out
    view = json.loads(out)
    assert view["status"] == "failed" and "process gone" in view["stop_reason"], view
