"""The handlers' tables in the task's state store (the same SQLite file, its own
connection): the outbox, each handler's checkpoint and the dead-letter store.

* ``handler_outbox``: the change records of the batches the task applied, in commit
  order (``seq``), one row per record; ``record_id`` is unique per task, so a batch
  handed off again after a crash adds nothing. Rows every handler has passed are pruned.
* ``handler_checkpoints``: per handler, the outbox ``seq`` it has passed (delivered or
  dead-lettered), what it delivered, and its last error while it retries.
* ``handler_dead_letters``: records a handler failed on after its retries (or that
  grew older than its ``MaximumRecordAgeInSeconds``), until ``opendms handlers replay``
  delivers them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opendms.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS handler_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    record_id TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    table_name TEXT NOT NULL,
    commit_time TEXT NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (task, record_id)
);
CREATE INDEX IF NOT EXISTS handler_outbox_order ON handler_outbox (task, seq);
CREATE TABLE IF NOT EXISTS handler_checkpoints (
    task TEXT NOT NULL,
    handler TEXT NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,
    last_record TEXT NOT NULL DEFAULT '',
    delivered INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (task, handler)
);
CREATE TABLE IF NOT EXISTS handler_dead_letters (
    task TEXT NOT NULL,
    handler TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    table_name TEXT NOT NULL,
    commit_time TEXT NOT NULL,
    record TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at TEXT NOT NULL,
    PRIMARY KEY (task, handler, seq)
);
"""


@dataclass(frozen=True)
class Row:
    """One record of the outbox (or a dead letter): ``record`` is its envelope JSON."""

    seq: int
    record_id: str
    schema: str
    table: str
    commit_time: str
    record: str


@dataclass(frozen=True)
class Checkpoint:
    """Where a handler is: the outbox seq it has passed, the id of the newest record it
    has passed, how many records it has delivered, its last error while it retries."""

    seq: int = 0
    last_record: str = ""
    delivered: int = 0
    last_error: str = ""
    updated_at: str = ""


@dataclass(frozen=True)
class DeadLetter:
    """A record a handler failed on, with the last error and the attempts made."""

    row: Row
    error: str
    attempts: int
    failed_at: str


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class HandlerStore:
    """The handlers' tables of one task in the state file at ``path``."""

    def __init__(self, path: Path, task: str) -> None:
        self.task = task
        self.lock = threading.Lock()
        try:
            self.conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the state store {str(path)!r}: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock, self.conn:
            yield self.conn

    # -- outbox ---------------------------------------------------------------------

    def append(self, rows: Iterable[tuple[str, str, str, str, str]]) -> None:
        """Add (record_id, schema, table, commit_time, record JSON) rows; ids already
        there are left as they are."""
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO handler_outbox (task, record_id, schema_name, "
                "table_name, commit_time, record) VALUES (?, ?, ?, ?, ?, ?)",
                ((self.task, *row) for row in rows),
            )

    def after(self, seq: int, limit: int) -> list[Row]:
        """Up to ``limit`` outbox rows after ``seq``, in order."""
        with self._tx() as conn:
            found = conn.execute(
                "SELECT seq, record_id, schema_name, table_name, commit_time, record "
                "FROM handler_outbox WHERE task=? AND seq>? ORDER BY seq LIMIT ?",
                (self.task, seq, limit),
            ).fetchall()
        return [Row(*r) for r in found]

    def last_seq(self) -> int:
        """The newest outbox seq of the task (0 when empty)."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT max(seq) FROM handler_outbox WHERE task=?", (self.task,)
            ).fetchone()
        return int(row[0] or 0)

    def pending(self, seq: int) -> list[tuple[str, str, int, str]]:
        """Per table after ``seq``: (schema, table, records, oldest commit time)."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT schema_name, table_name, count(*), min(commit_time) FROM "
                "handler_outbox WHERE task=? AND seq>? GROUP BY 1, 2",
                (self.task, seq),
            ).fetchall()
        return [tuple(r) for r in rows]

    def prune(self, handlers: Iterable[str]) -> int:
        """Delete the outbox rows every one of ``handlers`` has passed; how many."""
        names = list(handlers)
        marks = [self.checkpoint(n).seq for n in names]
        if not marks:
            return 0
        with self._tx() as conn:
            cursor = conn.execute(
                "DELETE FROM handler_outbox WHERE task=? AND seq<=?", (self.task, min(marks))
            )
        return cursor.rowcount

    # -- checkpoints ----------------------------------------------------------------

    def checkpoint(self, handler: str) -> Checkpoint:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT seq, last_record, delivered, last_error, updated_at FROM "
                "handler_checkpoints WHERE task=? AND handler=?",
                (self.task, handler),
            ).fetchone()
        return Checkpoint(*row) if row else Checkpoint()

    def handlers(self) -> list[str]:
        """The handlers with a checkpoint, by name."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT handler FROM handler_checkpoints WHERE task=? ORDER BY handler",
                (self.task,),
            ).fetchall()
        return [r[0] for r in rows]

    def advance(self, handler: str, seq: int, record_id: str, delivered: int) -> None:
        """The handler has passed ``seq`` (the record ``record_id``), having delivered
        ``delivered`` more records; clears its last error."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO handler_checkpoints (task, handler, seq, last_record, delivered, "
                "last_error, updated_at) VALUES (?, ?, ?, ?, ?, '', ?) "
                "ON CONFLICT (task, handler) DO UPDATE SET seq=excluded.seq, "
                "last_record=excluded.last_record, delivered=delivered+excluded.delivered, "
                "last_error='', updated_at=excluded.updated_at",
                (self.task, handler, seq, record_id, delivered, now()),
            )

    def note_error(self, handler: str, error: str) -> None:
        """The handler's last failure, while it retries (shown by ``handlers status``)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO handler_checkpoints (task, handler, last_error, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (task, handler) DO UPDATE SET "
                "last_error=excluded.last_error, updated_at=excluded.updated_at",
                (self.task, handler, error[:2000], now()),
            )

    # -- dead letters ---------------------------------------------------------------

    def dead_letter(self, handler: str, rows: Iterable[Row], error: str, attempts: int) -> None:
        """Keep ``rows`` as dead letters of ``handler`` (again: the newer error)."""
        stamp = now()
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO handler_dead_letters (task, handler, seq, record_id, "
                "schema_name, table_name, commit_time, record, error, attempts, failed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_dead_row(self.task, handler, r, (error[:2000], attempts, stamp)) for r in rows),
            )

    def dead_letters(self, handler: str) -> list[DeadLetter]:
        """The handler's dead letters, in commit order."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT seq, record_id, schema_name, table_name, commit_time, record, error, "
                "attempts, failed_at FROM handler_dead_letters WHERE task=? AND handler=? "
                "ORDER BY seq",
                (self.task, handler),
            ).fetchall()
        return [DeadLetter(Row(*r[:6]), r[6], r[7], r[8]) for r in rows]

    def dead_letter_count(self, handler: str) -> int:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT count(*) FROM handler_dead_letters WHERE task=? AND handler=?",
                (self.task, handler),
            ).fetchone()
        return int(row[0])

    def forget(self, handler: str, seqs: Iterable[int]) -> None:
        """Dead letters delivered at last: gone from the store."""
        with self._tx() as conn:
            conn.executemany(
                "DELETE FROM handler_dead_letters WHERE task=? AND handler=? AND seq=?",
                ((self.task, handler, s) for s in seqs),
            )


def drop_task(path: Path, task: str) -> None:
    """Forget a deleted task's outbox, checkpoints and dead letters (if it had any; a
    store that is not a SQLite state file has none)."""
    if not path.is_file():
        return
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            for table in ("handler_outbox", "handler_checkpoints", "handler_dead_letters"):
                if table in names:
                    conn.execute(f"DELETE FROM {table} WHERE task=?", (task,))
    except sqlite3.DatabaseError:
        return
    finally:
        conn.close()


def _dead_row(
    task: str, handler: str, row: Row, why: tuple[str, int, str]
) -> tuple[str | int, ...]:
    return (
        task,
        handler,
        row.seq,
        row.record_id,
        row.schema,
        row.table,
        row.commit_time,
        row.record,
        *why,
    )


def age_s(commit_time: str) -> float:
    """Seconds since a record's commit time (ISO 8601 UTC)."""
    try:
        stamp = datetime.fromisoformat(commit_time.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(time.time() - stamp.timestamp(), 0.0)
