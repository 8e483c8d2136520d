"""Handler functions the handler tests run (each in its own handler process).

They keep what they receive in ``$HANDLER_DIR/out.db``:

* ``items``: the mirror of the source table ``items`` (id, v), applied idempotently
  (upserts and deletes by key) in one transaction per batch;
* ``deliveries``: how often each record (by record id) arrived;
* ``calls``: one row per call, with the ids of the call's records (``,``-joined).

Behaviours, by marker files in ``$HANDLER_DIR``: ``kill_at`` (a number N): the process
kills itself with SIGKILL at the N-th record it receives, once (``killed`` marks it done);
``poison`` (a key): a record with that id raises, until ``fixed`` exists; ``hang`` (a
key): a record with that id sleeps 60 s, once (``hung`` marks it done); ``slow`` (seconds):
every call sleeps that long before it applies its batch.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from opendms.envelope import ChangeRecord, record_id

SEEN = [0]  # records this process received


def _dir() -> Path:
    return Path(os.environ["HANDLER_DIR"])


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(_dir() / "out.db", isolation_level=None, timeout=30)
    conn.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS deliveries (rid TEXT PRIMARY KEY, n INTEGER)")
    conn.execute("CREATE TABLE IF NOT EXISTS calls (n INTEGER PRIMARY KEY, ids TEXT)")
    return conn


def _marker(name: str) -> str | None:
    path = _dir() / name
    return path.read_text().strip() if path.exists() else None


def _behave(record: ChangeRecord) -> None:
    SEEN[0] += 1
    kill_at = _marker("kill_at")
    if kill_at is not None and SEEN[0] >= int(kill_at) and _marker("killed") is None:
        (_dir() / "killed").write_text(str(SEEN[0]))
        os.kill(os.getpid(), signal.SIGKILL)
    key = str(record.key.get("id"))
    if key == _marker("poison") and _marker("fixed") is None:
        raise ValueError(f"poison record {key}")
    if key == _marker("hang") and _marker("hung") is None:
        (_dir() / "hung").write_text("1")
        time.sleep(60)


def apply(records: list[ChangeRecord]) -> None:
    """Mirror ``items``; count deliveries (committed before the batch is applied)."""
    conn = _connect()
    try:
        _apply(conn, records)
    finally:
        conn.close()  # also when a record raised: its transaction rolls back


def _apply(conn: sqlite3.Connection, records: list[ChangeRecord]) -> None:
    ids = [record_id(r) for r in records]
    slow = _marker("slow")
    if slow is not None:
        time.sleep(float(slow))
    conn.execute("INSERT INTO calls (ids) VALUES (?)", (",".join(ids),))
    conn.executemany(
        "INSERT INTO deliveries VALUES (?, 1) ON CONFLICT (rid) DO UPDATE SET n = n + 1",
        [(i,) for i in ids],
    )
    conn.execute("BEGIN")
    for record in records:
        _behave(record)
        if record.table != "items":
            continue
        if record.op in ("I", "U") and record.after is not None:
            conn.execute(
                "INSERT OR REPLACE INTO items VALUES (?, ?)", (record.key["id"], record.after["v"])
            )
        elif record.op == "D":
            conn.execute("DELETE FROM items WHERE id = ?", (record.key["id"],))
    conn.execute("COMMIT")


def nothing(records: list[ChangeRecord]) -> None:
    """Takes the records and does nothing (the bench's no-op handler)."""


NOT_CALLABLE = 42
