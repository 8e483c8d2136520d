"""Handler functions end to end: a SQLite CDC task whose change records go to Python
functions in processes of their own (docs/handlers.md)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from opendms.handlers.store import HandlerStore
from opendms.state import StateStore
from tests.waiting import wait_until

EXE = [sys.executable, "-m", "opendms.cli.main"]
FIXTURES = "tests.handlers_fixtures.mirror"


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HANDLER_DIR": str(tmp)}
    return subprocess.run(
        [*EXE, "--state", str(tmp / "state.db"), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def _task(tmp: Path, name: str, **handler: Any) -> Path:
    handler = {"function": f"{FIXTURES}:apply", "name": "mirror", **handler}
    spec = {
        "name": name,
        "source": f"sqlite:///{tmp / 'src.db'}",
        "target": f"sqlite:///{tmp / 'dst.db'}",
        "migration_type": "full-load-and-cdc",
        "task_settings": {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}},
        "handlers": [handler],
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _source(tmp: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp / "src.db", isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, v TEXT)")
    return conn


def _changes(tmp: Path, rows: int) -> None:
    """``rows`` inserts, an update of every third row, a delete of every fifth."""
    conn = _source(tmp)
    for i in range(1, rows + 1):
        conn.execute("INSERT INTO items VALUES (?, ?)", (i, f"v{i}"))
    conn.execute("UPDATE items SET v = v || '!' WHERE id % 3 = 0")
    conn.execute("DELETE FROM items WHERE id % 5 = 0")
    conn.close()


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _run(tmp: Path, file: Path) -> str:
    done = _cli(tmp, "task", "run", "--quiet", "--skip-assessment", str(file))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stderr


def test_a_handler_killed_mid_batch_gets_every_record_applied_once(tmp_path: Path) -> None:
    _source(tmp_path).close()
    file = _task(tmp_path, "kill", batch_size=20)
    _run(tmp_path, file)  # capture set up, nothing to deliver yet
    (tmp_path / "kill_at").write_text("50")
    _changes(tmp_path, 120)
    log = _run(tmp_path, file)

    assert (tmp_path / "killed").read_text() == "50"
    assert "killed by SIGKILL" in log, log
    out = tmp_path / "out.db"
    source = _rows(tmp_path / "src.db", "SELECT id, v FROM items ORDER BY id")
    assert _rows(out, "SELECT id, v FROM items ORDER BY id") == source
    deliveries = dict(_rows(out, "SELECT rid, n FROM deliveries"))
    changes = 120 + 120 // 3 + 120 // 5  # inserts, updates, deletes
    assert len(deliveries) == changes  # every record, at least once
    assert sorted(set(deliveries.values())) == [1, 2]  # the killed batch came again
    assert _killed_call(out) == {rid for rid, n in deliveries.items() if n == 2}
    store = HandlerStore(tmp_path / "state.db", "kill")
    assert store.checkpoint("mirror").delivered == changes
    assert store.dead_letter_count("mirror") == 0


def _killed_call(out: Path) -> set[str]:
    """The record ids of the call that held the 50th record (the kill)."""
    seen = 0
    for (ids,) in _rows(out, "SELECT ids FROM calls ORDER BY n"):
        batch = ids.split(",")
        seen += len(batch)
        if seen >= 50:
            return set(batch)
    raise AssertionError("no call held the 50th record")


def _inserts(tmp: Path, ids: range) -> None:
    conn = _source(tmp)
    conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"v{i}") for i in ids])
    conn.close()


def _calls(out: Path) -> list[list[str]]:
    return [ids.split(",") for (ids,) in _rows(out, "SELECT ids FROM calls ORDER BY n")]


def test_a_poison_record_is_isolated_dead_lettered_and_replayed(tmp_path: Path) -> None:
    _source(tmp_path).close()
    settings = {"BatchSize": 10, "BisectBatchOnFunctionError": True, "MaximumRetryAttempts": 2}
    file = _task(tmp_path, "poison", **settings)
    _run(tmp_path, file)
    (tmp_path / "poison").write_text("7")
    _inserts(tmp_path, range(1, 31))
    _run(tmp_path, file)

    out = tmp_path / "out.db"
    mirror = _rows(out, "SELECT id FROM items ORDER BY id")
    assert mirror == [(i,) for i in range(1, 31) if i != 7]  # the others got through
    letters = _cli(tmp_path, "handlers", "dead-letters", "poison", "--json")
    assert letters.returncode == 0, letters.stderr
    (letter,) = json.loads(letters.stdout)
    poison = letter["record_id"]
    calls = _calls(out)
    assert calls.count([poison]) == 3  # alone (bisected down to it), then 2 retries
    assert max(len(c) for c in calls if poison in c) == 10  # first in a whole batch
    assert letter["attempts"] == 3 and letter["handler"] == "mirror"
    assert letter["table"] == "items" and "ValueError: poison record 7" in letter["error"]
    assert json.loads(letter["record"])["after"] == {"id": 7, "v": "v7"}
    status = json.loads(_cli(tmp_path, "handlers", "status", "poison", "--json").stdout)
    assert [(s["name"], s["dead_letters"], s["pending"]) for s in status] == [("mirror", 1, 0)]
    assert status[0]["checkpoint"]["delivered"] == 29

    still = _cli(tmp_path, "handlers", "replay", "poison")
    assert still.returncode == 1, still.stdout + still.stderr
    assert "0 delivered, 1 still dead letters (ValueError: poison record 7" in still.stdout
    (tmp_path / "fixed").write_text("")
    done = _cli(tmp_path, "handlers", "replay", "poison", "--handler", "mirror")
    assert done.returncode == 0 and "handler mirror: 1 delivered, 0 still" in done.stdout, done
    assert _rows(out, "SELECT id FROM items ORDER BY id") == [(i,) for i in range(1, 31)]
    assert HandlerStore(tmp_path / "state.db", "poison").dead_letters("mirror") == []
    table = _cli(tmp_path, "handlers", "status", "poison")
    assert table.returncode == 0 and "mirror" in table.stdout and "29" in table.stdout

    unknown = _cli(tmp_path, "handlers", "replay", "poison", "--handler", "nosuch")
    assert unknown.returncode == 2
    assert "task 'poison' has no handler 'nosuch' (it has: mirror)" in unknown.stderr

    assert _cli(tmp_path, "task", "delete", "poison").returncode == 0
    store = HandlerStore(tmp_path / "state.db", "poison")
    assert store.handlers() == [] and store.last_seq() == 0  # forgotten with the task
    gone = _cli(tmp_path, "handlers", "status", "poison")
    assert gone.returncode == 2 and "error: no task named 'poison'" in gone.stderr


def test_a_hanging_handler_is_killed_and_retried_while_the_stream_goes_on(
    tmp_path: Path,
) -> None:
    _source(tmp_path).close()
    file = _task(tmp_path, "hang", Timeout=4, BatchSize=5)
    started = _cli(tmp_path, "task", "start", "hang", "--file", str(file))
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        wait_until(lambda: _phase(tmp_path, "hang") == "ongoing replication", 60, "live")
        (tmp_path / "hang").write_text("3")
        _inserts(tmp_path, range(1, 11))
        wait_until(lambda: (tmp_path / "hung").exists(), 30, "the handler to hang")
        # the target has every change while the handler hangs
        target = tmp_path / "dst.db"
        wait_until(lambda: len(_rows(target, "SELECT id FROM items")) == 10, 30, "the target")
        assert not _rows(tmp_path / "out.db", "SELECT id FROM items WHERE id = 3")
        source = _rows(tmp_path / "src.db", "SELECT id, v FROM items ORDER BY id")
        mirror = tmp_path / "out.db"
        wait_until(
            lambda: _rows(mirror, "SELECT id, v FROM items ORDER BY id") == source, 60, "mirror"
        )
    finally:
        stopped = _cli(tmp_path, "task", "stop", "hang")
    assert stopped.returncode == 0 and "STOPPED_BY_USER" in stopped.stdout, stopped
    log = (tmp_path / "logs" / "hang.log").read_text()
    assert "timed out after 4 s (the handler process was killed)" in log, log[-2000:]
    store = HandlerStore(tmp_path / "state.db", "hang")
    assert store.dead_letter_count("mirror") == 0 and store.checkpoint("mirror").delivered == 10


def _phase(tmp: Path, name: str) -> str:
    record = StateStore(tmp / "state.db").task(name)
    return record.phase if record is not None else ""


def test_a_function_that_cannot_be_imported_fails_the_run_before_it_starts(
    tmp_path: Path,
) -> None:
    _inserts(tmp_path, range(1, 4))
    for function, why in [
        ("tests.handlers_fixtures.nosuch:apply", "ModuleNotFoundError"),
        (f"{FIXTURES}:nosuch", "AttributeError"),
        (f"{FIXTURES}:NOT_CALLABLE", "is a int, not a function"),
    ]:
        file = _task(tmp_path, "bad", function=function)
        done = _cli(tmp_path, "task", "run", "--quiet", "--skip-assessment", str(file))
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"$.handlers[0].function: cannot import {function}: " in done.stderr
        assert why in done.stderr, done.stderr
    assert not (tmp_path / "dst.db").exists() or not _rows(
        tmp_path / "dst.db", "SELECT name FROM sqlite_master WHERE name = 'items'"
    )


def _workers_of(tmp: Path) -> list[int]:
    """Live handler processes of this test (their environment names its folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"opendms.handlers.worker" in cmdline and f"HANDLER_DIR={tmp}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_a_killed_task_resumes_its_handlers_where_they_were(tmp_path: Path) -> None:
    _source(tmp_path).close()
    file = _task(tmp_path, "crash", batch_size=5)
    (tmp_path / "slow").write_text("0.2")
    assert _cli(tmp_path, "task", "start", "crash", "--file", str(file)).returncode == 0
    state = tmp_path / "state.db"
    wait_until(lambda: _phase(tmp_path, "crash") == "ongoing replication", 60, "live")
    _inserts(tmp_path, range(1, 51))
    store = HandlerStore(state, "crash")
    wait_until(lambda: store.checkpoint("mirror").delivered >= 10, 60, "some deliveries")
    pid = StateStore(state).task("crash").pid  # type: ignore[union-attr]
    assert pid and _workers_of(tmp_path)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _workers_of(tmp_path), 30, "the handler process to end too")
    assert store.checkpoint("mirror").delivered < 50  # killed before it was done

    (tmp_path / "slow").unlink()
    _inserts(tmp_path, range(51, 61))
    resumed = _cli(tmp_path, "task", "resume", "crash", "--file", str(file))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    mirror = tmp_path / "out.db"
    try:
        wait_until(lambda: len(_rows(mirror, "SELECT id FROM items")) == 60, 60, "all rows")
    finally:
        _cli(tmp_path, "task", "stop", "crash")
    source = _rows(tmp_path / "src.db", "SELECT id, v FROM items ORDER BY id")
    assert _rows(mirror, "SELECT id, v FROM items ORDER BY id") == source
    assert len(_rows(mirror, "SELECT rid FROM deliveries")) == 60  # each record arrived
    assert not _workers_of(tmp_path)
