"""Handler functions end to end: a SQLite CDC task whose change records go to Python
functions in processes of their own (docs/handlers.md)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from opendms.handlers.store import HandlerStore

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
    spec = {
        "name": name,
        "source": f"sqlite:///{tmp / 'src.db'}",
        "target": f"sqlite:///{tmp / 'dst.db'}",
        "migration_type": "full-load-and-cdc",
        "task_settings": {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}},
        "handlers": [{"function": f"{FIXTURES}:apply", "name": "mirror", **handler}],
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
