"""task start|stop|resume|reload: background CDC tasks controlled by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import yaml

from opendms.state import StateStore, TaskStatus
from tests.waiting import wait_until

EXE = [sys.executable, "-m", "opendms.cli.main"]


def _cli(state: Path, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [*EXE, "--state", str(state), *args], capture_output=True, text=True, timeout=180
    )
    return proc.returncode, proc.stdout + proc.stderr


def _wait_for(url: str, sql: str, expected: Any, timeout: float = 30) -> None:
    seen: list[Any] = [None]

    def arrived() -> bool:
        with psycopg.connect(url) as conn:
            try:
                row = conn.execute(sql).fetchone()
            except psycopg.errors.UndefinedTable:  # the task has not created it yet
                return False
        seen[0] = row[0] if row else None
        return bool(seen[0] == expected)

    try:
        wait_until(arrived, timeout, f"{sql} to give {expected!r}", 0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the query last gave {seen[0]!r}") from None


def test_start_stop_resume_reload(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g")
    file = tmp_path / "task.yaml"
    file.write_text(
        yaml.safe_dump(
            {
                "name": "ctl",
                "source": pg_db,
                "target": pg_target_db,
                "migration_type": "full-load-and-cdc",
                "task_settings": {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}},
            }
        )
    )
    state = tmp_path / "state.db"
    code, out = _cli(state, "task", "start", "ctl", "--file", str(file))
    assert code == 0, out
    _wait_for(pg_target_db, "SELECT count(*) FROM t", 100)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("INSERT INTO t VALUES (101, 'live')")
    _wait_for(pg_target_db, "SELECT v FROM t WHERE id = 101", "live")

    code, out = _cli(state, "task", "stop", "ctl")
    assert code == 0 and "STOPPED_BY_USER" in out, out
    record = StateStore(state).task("ctl")
    assert record is not None and record.status is TaskStatus.STOPPED and record.pid is None

    code, out = _cli(state, "task", "start", "ctl")
    assert code == 2 and "has run before" in out and "task resume ctl" in out, out

    with psycopg.connect(pg_db, autocommit=True) as conn:  # while stopped
        conn.execute("UPDATE t SET v = 'while stopped' WHERE id = 1")
    code, out = _cli(state, "task", "resume", "ctl")
    assert code == 0, out
    _wait_for(pg_target_db, "SELECT v FROM t WHERE id = 1", "while stopped")
    code, out = _cli(state, "task", "resume", "ctl")
    assert code == 1 and "already running" in out, out
    assert _cli(state, "task", "stop", "ctl")[0] == 0

    with psycopg.connect(pg_target_db, autocommit=True) as conn:  # damage the target
        conn.execute("DELETE FROM t WHERE id <= 50")
    code, out = _cli(state, "task", "reload", "ctl")
    assert code == 0, out
    _wait_for(pg_target_db, "SELECT count(*) FROM t", 101, timeout=60)
    assert _cli(state, "task", "stop", "ctl")[0] == 0
    code, out = _cli(state, "task", "stop", "ctl")
    assert code == 1 and "not running" in out
    code, out = _cli(state, "task", "delete", "ctl", "--file", str(file))
    assert code == 0, out
    with psycopg.connect(pg_db) as conn:
        slots = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()
    assert slots == (0,)


def test_follow_stops_gracefully_on_sigterm(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    import signal

    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    file = tmp_path / "task.yaml"
    spec = {"name": "fg", "source": pg_db, "target": pg_target_db, "migration_type": "cdc"}
    file.write_text(yaml.safe_dump(spec))
    with psycopg.connect(pg_target_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    state = tmp_path / "state.db"
    proc = subprocess.Popen(
        [*EXE, "--state", str(state), "task", "run", "--quiet", "--follow", str(file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def streaming() -> bool:
        assert proc.poll() is None, f"the task ended before streaming: {proc.communicate()}"
        record = StateStore(state).task("fg") if state.exists() else None
        return record is not None and record.phase == "ongoing replication"

    wait_until(streaming, 60, "the task's phase 'ongoing replication'", 0.2)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("INSERT INTO t VALUES (1, 'x')")
    _wait_for(pg_target_db, "SELECT v FROM t WHERE id = 1", "x")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err
    record = StateStore(state).task("fg")
    assert record is not None and record.stop_reason == "STOPPED_BY_USER"
