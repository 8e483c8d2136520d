"""Logical replication from PostgreSQL: publication, slot and the pgoutput stream.

The slot is created with an exported snapshot; the full load reads under that
snapshot, and streaming starts at the slot's consistent point, so the hand-off
has no gap and no duplicate. The flush position is confirmed only for changes
the target has committed (see :meth:`PgChangeSource.confirm`).

With ``CaptureDdls`` the DDL-capture objects of :mod:`opendms.endpoints.postgres.ddl`
are created and their audit table joins the publication; the stream's audit rows
become :data:`Op.DDL` changes in commit order (see :meth:`PgChangeSource.rewrite`).
"""

from __future__ import annotations

import re
import select
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import replace
from typing import Any, Literal

from opendms.changes import LSN, Backlog, Change, Op, Position, TableChange, Transaction
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.postgres import ddl, ddlaudit
from opendms.endpoints.postgres.catalog import regclass
from opendms.endpoints.postgres.conn import (
    connect,
    libpq_conninfo,
    require_psycopg,
    translate,
)
from opendms.endpoints.postgres.pgoutput import Decoder
from opendms.endpoints.postgres.textvalues import SESSION_OPTIONS, converter
from opendms.endpoints.postgres.types import from_pg, quote_ident
from opendms.errors import EndpointError, MissingExtraError, TaskError
from opendms.model import Column, ColumnType, Table, TableRef

IDLE_WAIT = 0.5  # seconds to wait for data between idle ticks
SLOT_FREE_WAIT = 30.0  # seconds to wait for a slot still held by an ended run's WAL sender
TYPES = """
SELECT format_type(t.oid, m.mod), coalesce(et.typtype, t.typtype),
       coalesce((SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
                 WHERE e.enumtypid = coalesce(et.oid, t.oid)), '{}')
FROM unnest(%s::oid[], %s::int[]) WITH ORDINALITY AS m(typ, mod, ord)
LEFT JOIN pg_type t ON t.oid = m.typ
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
ORDER BY m.ord
"""


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


class PgChangeSource:
    """One task's slot and publication on a PostgreSQL source (a ChangeSource)."""

    value_form: Literal["pg-text", "python"] = "pg-text"
    consistent_snapshot = True
    can_rewind = False  # a new slot cannot stream from before its creation

    def __init__(
        self, url: EndpointURL, task: str, capture_ddls: bool = True, ddl_schema: str = "public"
    ) -> None:
        self.url = url
        self.slot, self.publication = replication_names(task)
        self.label = f"replication slot {self.slot!r}"
        self.holder: Any = None  # replication connection keeping the exported snapshot alive
        self.cursor: Any = None
        self.flushed = LSN(0)
        self.decoder = Decoder()
        self.mark = b""
        self.old_rows: set[tuple[str, str]] = set()  # unused: REPLICA IDENTITY decides
        self.artifacts = ddl.Artifacts(ddl_schema)
        self.capture_ddls = capture_ddls
        self.audit = ddlaudit.AuditReader(ddl_schema, self.publication)
        self.rules: list[tuple[str, str, bool]] = []
        self.types: dict[tuple[int, int], ColumnType] = {}
        self.catalog: Any = None  # a plain connection for type lookups while streaming

    def text_converter(self, ctype: ColumnType) -> Callable[[str], Any]:
        """pgoutput's text of a ``ctype`` value in Python form (TextValueCapture)."""
        return converter(ctype)

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

    def select_new_tables(self, rules: Iterable[tuple[str, str, bool]]) -> None:
        """The selection rules as (schema regex, table regex, exclude): a table created
        on the source that they select joins the publication (CaptureDdls)."""
        self.rules = list(rules)

    def prepare(self, tables: list[TableRef]) -> None:
        """The publication (and, with CaptureDdls, the DDL-capture objects)."""
        try:
            self._prepare(tables)
        except EndpointError:
            raise
        except require_psycopg().Error as exc:
            raise translate(exc, self.url) from exc

    def _prepare(self, tables: list[TableRef]) -> None:
        if not self.capture_ddls:
            self.ensure_publication(tables)
            return
        with connect(self.url) as conn:
            ddl.install(conn, self.artifacts, str(self.url))
        audit = TableRef(self.artifacts.schema, ddl.AUDIT)
        self.ensure_publication([*tables, audit])
        with connect(self.url) as conn:
            names = [regclass(t) for t in tables]
            ddl.register(conn, self.artifacts, self.publication, self.rules, names)

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
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None

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
        """Drop the slot and the publication (task deletion), and the DDL-capture objects
        unless another task still uses them."""
        self.drop_slot()
        with connect(self.url) as conn:
            conn.execute(f"DROP PUBLICATION IF EXISTS {quote_ident(self.publication)}")
            try:
                ddl.uninstall(conn, self.artifacts, self.publication)
            except Exception as exc:
                error = translate(exc, self.url)
                detail = error.message.removeprefix(f"{self.url}: ")
                raise type(error)(
                    str(self.url),
                    f"the slot and publication are dropped, but not the DDL-capture objects "
                    f"(event triggers {', '.join(self.artifacts.triggers)}, function and tables "
                    f"opendms_ddl_* in schema {self.artifacts.schema}): {detail}",
                ) from exc

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
        self.decoder = decoder = Decoder(relation_markers=True)
        self._emit_mark()
        while not stop.is_set():
            msg = cur.read_message()
            if msg is None:  # nothing more for now: tick first, so the loop applies the
                yield None  # batch it holds at once rather than after IDLE_WAIT of silence
                select.select([cur], [], [], IDLE_WAIT)
                continue
            txn = decoder.feed(msg.payload)
            if txn is not None:
                yield self.rewrite(txn)

    def rewrite(self, txn: Transaction) -> Transaction:
        """The transaction as the engine takes it: audit rows become DDL changes, row
        messages inserts, relation markers carry their column types."""
        if not any(c.op is Op.DDL or c.table.startswith("opendms_") for c in txn.changes):
            return txn
        self.audit.created.clear()  # row messages count in the creating transaction only
        out: list[Change] = []
        for change in txn.changes:
            if change.schema == "" and change.table.startswith("opendms_"):
                row = self._row_message(change)
                out += [row] if row is not None else []
            elif self.audit.is_audit(change):
                out += self.audit.changes(change) if self.capture_ddls else []
            elif change.table_ddl is not None and change.table_ddl.table is None:
                typed = self._typed(change)
                out += [typed] if typed is not None else []
            else:
                out.append(change)
        return replace(txn, changes=out)

    def _row_message(self, change: Change) -> Change | None:
        if not change.table.startswith(ddl.ROW_PREFIX):
            return None
        return self.audit.row(change.table, str(change.values[0]))

    def _typed(self, marker: Change) -> Change | None:
        """A relation marker with the column types (catalog lookups, cached); None when a
        type is gone from the catalog (nothing to compare then)."""
        pairs = [(int(t), int(m)) for t, m in marker.values]
        missing = [p for p in pairs if p not in self.types]
        if missing:
            self._look_up(missing)
        if any(p not in self.types for p in pairs):
            return None
        columns = tuple(
            Column(name, self.types[p]) for name, p in zip(marker.columns, pairs, strict=True)
        )
        table = Table(marker.schema, marker.table, columns)
        return replace(marker, columns=(), values=(), table_ddl=TableChange("columns", table))

    def _look_up(self, pairs: list[tuple[int, int]]) -> None:
        if self.catalog is None:
            self.catalog = connect(self.url)
        rows = self.catalog.execute(TYPES, ([p[0] for p in pairs], [p[1] for p in pairs]))
        for pair, (formatted, typtype, labels) in zip(pairs, rows.fetchall(), strict=True):
            if formatted is not None and typtype is not None:
                self.types[pair] = from_pg(formatted, typtype, tuple(labels))

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


def _stream_error(exc: Exception, repl: PgChangeSource) -> Exception:
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
