"""The handlers' tables in the task's state store (the same SQLite file, its own
connection): the outbox, each handler's checkpoint and the dead-letter store.

* ``handler_chunks``: the changes of the batches the task applied, in commit order, in
  chunks (:mod:`opendms.handlers.outbox`): ``seq`` is the ordinal of a chunk's first
  change, ``records`` how many it holds, ``tables`` how many per table, ``body`` the
  pickled changes. Chunks every handler has passed are pruned.
* ``handler_marks``: per task, the next ordinal and the newest change in the outbox
  (a batch handed off again after a crash adds only what comes after it).
* ``handler_checkpoints``: per handler, the outbox ``seq`` it has passed (delivered or
  dead-lettered), what it delivered, and its last error while it retries.
* ``handler_dead_letters``: records a handler failed on after its retries (or that
  grew older than its ``MaximumRecordAgeInSeconds``), until ``opendms handlers replay``
  delivers them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opendms.changes import Transaction
from opendms.handlers import outbox
from opendms.state.store import SideStore

TABLES = ("handler_chunks", "handler_marks", "handler_checkpoints", "handler_dead_letters")
SCHEMA = """
CREATE TABLE IF NOT EXISTS handler_chunks (
    task TEXT NOT NULL,
    seq INTEGER NOT NULL,
    records INTEGER NOT NULL,
    commit_time TEXT NOT NULL,
    tables TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (task, seq)
);
CREATE TABLE IF NOT EXISTS handler_marks (
    task TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    last_position TEXT NOT NULL,
    last_index INTEGER NOT NULL
);
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
    """A dead letter's record: ``seq`` its outbox ordinal, ``record`` its envelope JSON."""

    seq: int
    record_id: str
    schema: str
    table: str
    commit_time: str
    record: str

    @property
    def chunk(self) -> tuple[int, bytes] | None:
        return None

    def wire(self) -> outbox.Wire:
        """What goes to the handler process for it."""
        return ("j", self.record)


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


class HandlerStore(SideStore):
    """The handlers' tables of one task in the state file at ``path``."""

    def __init__(self, path: Path, task: str) -> None:
        super().__init__(path, SCHEMA)
        self.task = task

    # -- outbox ---------------------------------------------------------------------

    def append(self, batch: Sequence[Transaction]) -> int:
        """Add the changes of ``batch`` that make records and come after the newest
        one the outbox holds; how many."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT next_seq, last_position, last_index FROM handler_marks WHERE task=?",
                (self.task,),
            ).fetchone()
            seq, mark = (int(row[0]), (row[1], int(row[2]))) if row else (1, None)
            found = outbox.chunks(batch, mark)
            if not found:
                return 0
            rows = []
            for chunk in found:
                rows.append(
                    (
                        self.task,
                        seq,
                        chunk.records,
                        chunk.commit_time,
                        chunk.tables_json(),
                        chunk.body(),
                    )
                )
                seq += chunk.records
            conn.executemany(
                "INSERT INTO handler_chunks (task, seq, records, commit_time, tables, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            last = found[-1].last
            conn.execute(
                "INSERT OR REPLACE INTO handler_marks (task, next_seq, last_position, "
                "last_index) VALUES (?, ?, ?, ?)",
                (self.task, seq, *last),
            )
        return sum(c.records for c in found)

    def chunks_after(self, seq: int, limit: int = 4) -> list[tuple[int, bytes]]:
        """(first seq, body) of up to ``limit`` chunks holding changes after ``seq``."""
        with self._tx() as conn:
            return [
                (int(r[0]), bytes(r[1]))
                for r in conn.execute(
                    "SELECT seq, body FROM handler_chunks WHERE task=? AND seq+records>? "
                    "ORDER BY seq LIMIT ?",
                    (self.task, seq + 1, limit),
                )
            ]

    def last_seq(self) -> int:
        """The ordinal of the outbox's newest change (0 when there was none)."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT next_seq FROM handler_marks WHERE task=?", (self.task,)
            ).fetchone()
        return int(row[0]) - 1 if row else 0

    def pending(self, seq: int) -> list[tuple[str, str, int, str]]:
        """Per table after ``seq``: (schema, table, records, oldest commit time)."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT seq, commit_time, tables, body FROM handler_chunks "
                "WHERE task=? AND seq+records>? ORDER BY seq",
                (self.task, seq + 1),
            ).fetchall()
        counts: dict[tuple[str, str], list[Any]] = {}
        for first, stamp, tables, body in rows:
            if first > seq:
                found = [(s, t, n, stamp) for s, t, n in json.loads(tables)]
            else:  # partly passed: count what is left
                left = outbox.entries(bytes(body))[seq + 1 - first :]
                found = [(c.schema, c.table, 1, where[0]) for c, _, where, _ in left]
            for schema, table, n, when in found:
                slot = counts.setdefault((schema, table), [0, when])
                slot[0] += n
                slot[1] = min(slot[1], when)
        return [(s, t, int(n), str(when)) for (s, t), (n, when) in counts.items()]

    def prune(self, handlers: Iterable[str]) -> int:
        """Delete the outbox chunks every one of ``handlers`` has passed; how many."""
        names = list(handlers)
        marks = [self.checkpoint(n).seq for n in names]
        if not marks:
            return 0
        with self._tx() as conn:
            cursor = conn.execute(
                "DELETE FROM handler_chunks WHERE task=? AND seq+records-1<=?",
                (self.task, min(marks)),
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
            for table in (*TABLES, "handler_outbox"):  # handler_outbox: before chunks
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
