"""Logical replication from PostgreSQL: publication, slot and the pgoutput stream.

The slot is created with an exported snapshot; the full load reads under that
snapshot, and streaming starts at the slot's consistent point, so the hand-off
has no gap and no duplicate. The flush position is confirmed only for changes
the target has committed (see :meth:`PgReplication.confirm`).
"""

from __future__ import annotations

import re
import select
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from typing import Any

from opendms.cdc import LSN, Backlog, Position, Transaction
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.postgres.conn import connect, libpq_conninfo, translate
from opendms.endpoints.postgres.pgoutput import Decoder
from opendms.endpoints.postgres.textvalues import SESSION_OPTIONS
from opendms.endpoints.postgres.types import quote_ident
from opendms.errors import EndpointError, MissingExtraError, TaskError
from opendms.model import TableRef

IDLE_WAIT = 0.5  # seconds to wait for data between idle ticks
SLOT_FREE_WAIT = 30.0  # seconds to wait for a slot still held by an ended run's WAL sender


def replication_names(task: str) -> tuple[str, str]:
    """(slot, publication) names derived from the task name (valid slot names)."""
    base = "opendms_" + re.sub(r"[^a-z0-9_]", "_", task.lower())
    return base[:63], base[:63]


def _psycopg2() -> Any:
    try:
        import psycopg2
        import psycopg2.extras
    except ImportError as exc:
        raise MissingExtraError("psycopg2", "postgresql") from exc
    return psycopg2


class PgReplication:
    """One task's slot and publication on a PostgreSQL source (a ChangeSource)."""

    value_form = "pg-text"
    consistent_snapshot = True
    can_rewind = False  # a new slot cannot stream from before its creation

    def __init__(self, url: EndpointURL, task: str) -> None:
        self.url = url
        self.slot, self.publication = replication_names(task)
        self.label = f"replication slot {self.slot!r}"
        self.holder: Any = None  # replication connection keeping the exported snapshot alive
        self.cursor: Any = None
        self.flushed = LSN(0)
        self.decoder = Decoder()
        self.mark = b""
        self.old_rows: set[tuple[str, str]] = set()  # unused: REPLICA IDENTITY decides

    def _repl_connect(self) -> Any:
        pg2 = _psycopg2()
        try:
            return pg2.connect(
                libpq_conninfo(self.url),
                connection_factory=pg2.extras.LogicalReplicationConnection,
                options=SESSION_OPTIONS,
            )
        except pg2.Error as exc:
            raise translate(exc, self.url) from exc

    def parse_position(self, text: str) -> LSN:
        return LSN.parse(text)

    def prepare(self, tables: list[TableRef]) -> None:
        self.ensure_publication(tables)

    def exists(self) -> bool:
        return self.slot_position() is not None

    def start(self) -> tuple[Position, str | None]:
        """A new slot (replacing an old one): its consistent point and exported snapshot."""
        if self.exists():
            self.drop_slot()
        return self.create_slot()

    def current_position(self) -> LSN:
        with connect(self.url) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        return LSN.parse(row[0])

    def close(self) -> None:
        self.release_snapshot()

    def ensure_publication(self, tables: list[TableRef]) -> None:
        names = ", ".join(f"{quote_ident(t.schema)}.{quote_ident(t.name)}" for t in tables)
        with connect(self.url) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            what = "SET TABLE" if exists else "FOR TABLE"
            conn.execute(f"{verb} PUBLICATION {quote_ident(self.publication)} {what} {names}")

    def slot_position(self) -> LSN | None:
        """The slot's confirmed flush position, or None when there is no slot."""
        with connect(self.url) as conn:
            row = conn.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            ).fetchone()
        return LSN.parse(row[0]) if row and row[0] else None

    def create_slot(self) -> tuple[LSN, str]:
        """Create the slot; returns its consistent point and the exported snapshot.

        The snapshot stays importable until :meth:`release_snapshot`.
        """
        self.holder = self._repl_connect()
        cur = self.holder.cursor()
        try:
            cur.execute(f"CREATE_REPLICATION_SLOT {self.slot} LOGICAL pgoutput EXPORT_SNAPSHOT")
            _name, consistent, snapshot, _plugin = cur.fetchone()
        except Exception as exc:
            raise translate(exc, self.url) from exc
        return LSN.parse(consistent), str(snapshot)

    def release_snapshot(self) -> None:
        if self.holder is not None:
            self.holder.close()
            self.holder = None

    def drop_slot(self) -> None:
        with connect(self.url) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s",
                (self.slot,),
            )

    def drop(self) -> None:
        """Drop the slot and the publication (task deletion)."""
        self.drop_slot()
        with connect(self.url) as conn:
            conn.execute(f"DROP PUBLICATION IF EXISTS {quote_ident(self.publication)}")

    def stream(self, start: Position, stop: threading.Event) -> Generator[Transaction | None]:
        """Committed transactions from ``start`` on; ``None`` when the stream is idle."""
        assert isinstance(start, LSN)
        self.flushed = max(self.flushed, start)
        self._wait_slot_free()
        conn = self._repl_connect()
        self.cursor = cur = conn.cursor()
        options = {"proto_version": "1", "publication_names": self.publication, "messages": "true"}
        try:
            cur.start_replication(
                slot_name=self.slot, decode=False, start_lsn=str(start), options=options
            )
            yield from self._messages(cur, stop)
        except EndpointError:
            raise
        except Exception as exc:
            raise _stream_error(exc, self) from exc
        finally:
            self.cursor = None
            conn.close()

    def _wait_slot_free(self, timeout: float = SLOT_FREE_WAIT) -> None:
        """A previous run's WAL sender may still hold the slot for a moment after that run
        ended (or its connection dropped): wait for the server to let it go."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with connect(self.url) as conn:
                row = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
                ).fetchone()
            if not row or not row[0]:
                return
            time.sleep(0.1)

    def _messages(self, cur: Any, stop: threading.Event) -> Iterator[Transaction | None]:
        self.decoder = decoder = Decoder()
        self._emit_mark()
        while not stop.is_set():
            msg = cur.read_message()
            if msg is None:  # nothing more for now: tick first, so the loop applies the
                yield None  # batch it holds at once rather than after IDLE_WAIT of silence
                select.select([cur], [], [], IDLE_WAIT)
                continue
            txn = decoder.feed(msg.payload)
            if txn is not None:
                yield txn

    def _emit_mark(self) -> None:
        """Write a logical message into the WAL: reading it back means caught up."""
        self.mark = uuid.uuid4().hex.encode()
        with connect(self.url) as conn:
            conn.execute(
                "SELECT pg_logical_emit_message(false, 'opendms', %s::bytea)", (self.mark,)
            )

    def caught_up(self) -> bool:
        """True once the stream has delivered everything committed before it started."""
        return self.mark in self.decoder.markers

    def heartbeat(self) -> None:
        """Idle with nothing pending: confirm the server's WAL end, so a slot whose
        tables see no writes does not hold WAL written for other tables."""
        cur = self.cursor
        if cur is None or self.decoder.current is not None or not cur.wal_end:
            return
        self.confirm(LSN(cur.wal_end))

    def backlog(self, applied: str | None) -> Backlog:
        """WAL the slot keeps on the server (from its restart LSN to the WAL end)."""
        with connect(self.url) as conn:
            row = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
                "FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            ).fetchone()
        if row is None:
            return Backlog(0, "bytes", f"{self.label} does not exist", gone=True)
        return Backlog(int(row[0] or 0), "bytes", f"WAL retained by {self.label}")

    def lag_bytes(self) -> int:
        """WAL the server has that the target does not hold yet (slot lag)."""
        cur = self.cursor
        return max(int(cur.wal_end) - self.flushed.value, 0) if cur is not None else 0

    def confirm(self, lsn: Position) -> None:
        """Tell the server the target durably holds everything up to ``lsn``."""
        assert isinstance(lsn, LSN)
        self.flushed = max(self.flushed, lsn)
        if self.cursor is not None:
            self.cursor.send_feedback(flush_lsn=self.flushed.value, write_lsn=self.flushed.value)


def _stream_error(exc: Exception, repl: PgReplication) -> Exception:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "does not exist" in text and "slot" in text:
        return TaskError(
            f"{repl.url}: replication slot {repl.slot!r} is gone; the changes after the "
            f"last applied position ({repl.flushed}) cannot be read — run a new full load"
        )
    if "requested WAL segment" in text or "has already been removed" in text:
        return TaskError(
            f"{repl.url}: the WAL for position {repl.flushed} has been removed from the "
            f"source; changes were lost to this task — run a new full load ({text})"
        )
    return translate(exc, repl.url)
