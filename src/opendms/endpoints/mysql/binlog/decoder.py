"""The binlog decoder: MySQL/MariaDB binlog events in, opendms transactions out (no I/O).

:class:`BinlogDecoder` takes the events of a binlog stream one by one (bytes as
the server sends them: 19-byte header, body, optional CRC32) and returns a
:class:`~opendms.changes.Transaction` at each commit. Row values come out in the
canonical Python form of the column's canonical type (what the full load gives),
decoded by the walkers ``rowcode`` generates per table definition.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from opendms.changes import BinlogPosition, Change, Op, Transaction
from opendms.endpoints.mysql.badrows import decode_rows_slowly
from opendms.endpoints.mysql.binlog.events import (
    ARTIFICIAL,
    DECODE_ERRORS,
    HEADER,
    HEADER_LEN,
    ROWS_DELETE,
    ROWS_KINDS,
    ROWS_UPDATE,
    ROWS_WRITE,
    U16,
    U32,
    U64,
    Ev,
    lenenc,
    uncompress,
)
from opendms.endpoints.mysql.binlog.gtid import GtidState
from opendms.endpoints.mysql.binlog.rowcode import rows_fn
from opendms.endpoints.mysql.binlog.statements import Statement, classify
from opendms.endpoints.mysql.binlog.tablemap import TableMapEvent, parse_table_map
from opendms.errors import DecodeError, TaskError
from opendms.model import ColumnType

_FILE_NUMBER = re.compile(r"(\d+)$")


def file_number(name: str) -> int:
    """The number of a binlog file name (``mariadb-bin.000042`` -> 42)."""
    m = _FILE_NUMBER.search(name)
    return int(m.group(1)) if m else 0


class BinlogDecoder:
    """Stateful decoder: events in, committed transactions out.

    ``captured``: the (schema, table) pairs whose changes are emitted (None: all);
    other tables' row events are skipped without decoding, but their transactions
    still come out (with no changes) so the position moves on. ``gtid``: the GTID
    state at the start position (None: unknown). ``charsets``: collation id ->
    character set name (the server's table); ``ctypes``: canonical column types
    by (schema, table) from the catalog. ``fold_case``: lower_case_table_names.
    ``old_rows``: the tables whose updates and deletes carry the whole before image
    (decoding it costs time; the lake and source filters need it).
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings of one decoder, all defaulted
        self,
        *,
        file: str = "",
        offset: int = 4,
        gtid: str | None = None,
        checksum: bool = True,
        captured: set[tuple[str, str]] | None = None,
        charsets: dict[int, str] | None = None,
        ctypes: dict[tuple[str, str], dict[str, ColumnType]] | None = None,
        fold_case: bool = False,
        mariadb: bool = True,
        old_rows: set[tuple[str, str]] | None = None,
    ) -> None:
        self.file, self.file_number, self.offset = file, file_number(file), offset
        self.gtid = GtidState(gtid)
        self.crc = 4 if checksum else 0
        self.fold_case = fold_case
        self.old_rows = {self._key(s, t) for s, t in old_rows or ()}
        self.captured = None if captured is None else {self._key(s, t) for s, t in captured}
        self.charsets = charsets
        self.ctypes = {self._key(*k): dict(v) for k, v in (ctypes or {}).items()}
        self.mariadb = mariadb
        self.maps: dict[int, TableMapEvent | None] = {}
        self._compiled: dict[bytes, TableMapEvent] = {}
        self.changes: list[Change] = []
        self.in_txn = self.standalone = self.xa = False
        self.pending: tuple[Any, ...] | None = None
        self.heartbeat: BinlogPosition | None = None
        self.event_pos = 0  # log_pos of the event being decoded (for error messages)

    def _key(self, schema: str, table: str) -> tuple[str, str]:
        return (schema.lower(), table.lower()) if self.fold_case else (schema, table)

    def wanted(self, schema: str, table: str) -> bool:
        return self.captured is None or self._key(schema, table) in self.captured

    @property
    def position(self) -> BinlogPosition:
        """Where the stream is: just after the last event decoded."""
        return BinlogPosition(self.file_number, self.offset, self.file, str(self.gtid))

    def feed(self, event: bytes) -> Transaction | None:
        """Decode one event; returns the transaction its commit completes."""
        try:
            return self._feed(event)
        except DECODE_ERRORS as exc:
            kind = event[4] if len(event) > 4 else -1
            raise DecodeError(
                f"binlog {self.file}:{self.event_pos}: malformed event of type {kind} "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def _feed(self, event: bytes) -> Transaction | None:
        stamp, kind, server, _size, log_pos, flags = HEADER.unpack_from(event)
        self.event_pos = log_pos
        if log_pos and not flags & ARTIFICIAL and kind not in _NO_POSITION:
            self.offset = log_pos
        elif kind == Ev.FORMAT_DESCRIPTION and log_pos > self.offset:
            self.offset = log_pos  # a new file's start (one re-sent on connect is older)
        rows = ROWS_KINDS.get(kind)
        if rows is not None:
            self._rows(event, *rows)
            return None
        handler = _HANDLERS.get(kind)
        return None if handler is None else handler(self, event, stamp, server, log_pos)

    # -- file and format

    def _rotate(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        self.file = ev[HEADER_LEN + 8 : len(ev) - self.crc].decode("utf-8", "replace")
        self.file_number = file_number(self.file)
        self.offset = U64(ev, HEADER_LEN)[0]
        self.maps.clear()
        return None

    def _format(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        version = ev[HEADER_LEN + 2 : HEADER_LEN + 52].split(b"\0", 1)[0].decode("ascii", "replace")
        self.mariadb = "mariadb" in version.lower()
        alg = ev[len(ev) - 5] if len(ev) >= HEADER_LEN + 57 else 255
        if alg in (0, 1):
            self.crc = 4 * alg
        self.maps.clear()
        return None

    def _heartbeat(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        name = ev[HEADER_LEN : len(ev) - self.crc].decode("utf-8", "replace")
        self.heartbeat = BinlogPosition(file_number(name), log_pos, name)
        return None

    # -- transactions

    def _gtid(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        seq, domain = U64(ev, HEADER_LEN)[0], U32(ev, HEADER_LEN + 8)[0]
        flags = ev[HEADER_LEN + 12]
        self.pending = (domain, server, seq)
        self.changes = []
        self.in_txn, self.standalone, self.xa = True, bool(flags & 1), bool(flags & 64)
        return None

    def _gtid_list(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        count = U32(ev, HEADER_LEN)[0] & 0x0FFFFFFF
        items = []
        for i in range(count):
            at = HEADER_LEN + 4 + 16 * i
            items.append((U32(ev, at)[0], U32(ev, at + 4)[0], U64(ev, at + 8)[0]))
        self.gtid.merge_list(items)
        return None

    def _mysql_gtid(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        sid = ev[HEADER_LEN + 1 : HEADER_LEN + 17].hex()
        uuid = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
        self.pending = ("mysql", uuid, U64(ev, HEADER_LEN + 17)[0])
        self.changes = []
        return None

    def _anonymous_gtid(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        self.pending = None
        self.changes = []
        return None

    def _xa_prepare(self, ev: bytes, stamp: int, server: int, log_pos: int) -> Transaction | None:
        self.xa = True
        return self._xa(stamp, log_pos)

    def _xid(self, ev: bytes, stamp: int, server: int, log_pos: int) -> Transaction:
        return self._commit(stamp, log_pos, U64(ev, HEADER_LEN)[0])

    def _commit(self, stamp: int, log_pos: int, xid: int) -> Transaction:
        pending = self.pending
        if pending is not None:
            if pending[0] == "mysql":
                self.gtid.add_mysql(pending[1], pending[2])
            else:
                self.gtid.add_mariadb(*pending)
            xid = xid or int(pending[-1])
        end = BinlogPosition(self.file_number, log_pos, self.file, str(self.gtid))
        txn = Transaction(xid, datetime.fromtimestamp(stamp, UTC), end, self.changes)
        self.changes = []
        self.pending = None
        self.in_txn = self.standalone = self.xa = False
        return txn

    # -- statements

    def _query(self, ev: bytes, stamp: int, server: int, log_pos: int) -> Transaction | None:
        return self._statement(ev, stamp, log_pos, compressed=False)

    def _query_compressed(
        self, ev: bytes, stamp: int, server: int, log_pos: int
    ) -> Transaction | None:
        return self._statement(ev, stamp, log_pos, compressed=True)

    def _statement(
        self, ev: bytes, stamp: int, log_pos: int, compressed: bool
    ) -> Transaction | None:
        p = HEADER_LEN
        db_len, status_len = ev[p + 8], U16(ev, p + 11)[0]
        p += 13 + status_len
        db = ev[p : p + db_len].decode("utf-8", "surrogateescape")
        raw = ev[p + db_len + 1 : len(ev) - self.crc]
        if compressed:
            raw = uncompress(raw)
        if raw == b"BEGIN":
            self.in_txn = True
            return None
        if raw == b"COMMIT":
            return self._commit(stamp, log_pos, 0)
        return self._other_statement(classify(raw.decode("utf-8", "replace"), db), stamp, log_pos)

    def _other_statement(self, st: Statement, stamp: int, log_pos: int) -> Transaction | None:
        if st.kind == "begin":
            self.in_txn = True
            return None
        if st.kind == "savepoint":
            return None
        if st.kind == "commit":
            return self._commit(stamp, log_pos, 0)
        if st.kind == "rollback":
            self.changes = []
            return self._commit(stamp, log_pos, 0)
        if st.kind == "xa":
            return self._xa(stamp, log_pos)
        self.changes += self._statement_changes(st)
        if self.in_txn and not self.standalone:
            return None
        return self._commit(stamp, log_pos, 0)

    def _xa(self, stamp: int, log_pos: int) -> Transaction | None:
        if not self.xa and not self.changes:
            return None  # XA START / END
        if self.changes:
            raise TaskError(
                f"binlog {self.file}:{log_pos}: an XA transaction changed captured tables; "
                "XA transactions are not supported by opendms's MySQL capture yet"
            )
        return self._commit(stamp, log_pos, 0)

    def _statement_changes(self, st: Statement) -> list[Change]:
        if st.kind not in ("truncate", "alter") or not self.wanted(st.schema, st.table):
            return []
        if st.kind == "truncate":
            return [Change(Op.TRUNCATE, st.schema, st.table)]
        if not st.ddl:
            return []
        self._schema_changed(st)
        return [Change(Op.DDL, st.schema, st.table, ddl=st.ddl)]

    def _schema_changed(self, st: Statement) -> None:
        """Keep the catalog types in step with the DDL; recompile the table's decoders."""
        key = self._key(st.schema, st.table)
        types = self.ctypes.setdefault(key, {})
        for change in st.ddl:
            if change.action == "drop":
                types.pop(change.column, None)
            elif change.action == "rename" and change.new_name is not None:
                moved = types.pop(change.column, None)
                if moved is not None:
                    types[change.new_name] = moved
            elif change.ctype is not None:
                types[change.column] = change.ctype
        self._compiled = {
            k: v for k, v in self._compiled.items() if self._key(v.schema, v.table) != key
        }

    # -- rows

    def _table_map(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        table_id = int.from_bytes(ev[HEADER_LEN : HEADER_LEN + 6], "little")
        p = HEADER_LEN + 8
        schema = ev[p + 1 : p + 1 + ev[p]].decode("utf-8", "surrogateescape")
        p += ev[p] + 2
        table = ev[p + 1 : p + 1 + ev[p]].decode("utf-8", "surrogateescape")
        if not self.wanted(schema, table):
            self.maps[table_id] = None
            return None
        end = len(ev) - self.crc
        body = ev[HEADER_LEN + 6 : end]
        tm = self._compiled.get(body)
        if tm is None:
            tm = self._parse_map(ev, end, schema, table, log_pos)
            if len(self._compiled) > 1000:
                self._compiled.clear()
            self._compiled[body] = tm
        self.maps[table_id] = tm
        return None

    def _parse_map(
        self, ev: bytes, end: int, schema: str, table: str, log_pos: int
    ) -> TableMapEvent:
        ctypes = self.ctypes.get(self._key(schema, table))
        tm = parse_table_map(
            ev, HEADER_LEN, end, mariadb=self.mariadb, charsets=self.charsets, ctypes=ctypes
        )
        if not tm.has_names:
            raise TaskError(
                f"binlog {self.file}:{log_pos}: the table map of {schema}.{table} has no "
                "column names; set binlog_row_metadata=FULL on the source server"
            )
        tm.old_rows = self._key(schema, table) in self.old_rows
        return tm

    def _rows(self, ev: bytes, kind: int, version: int, compressed: bool) -> None:
        tm = self.maps.get(int.from_bytes(ev[HEADER_LEN : HEADER_LEN + 6], "little"))
        if tm is None:
            return
        p = HEADER_LEN + 8
        if version == 2:
            p += U16(ev, p)[0]
        count, p = lenenc(ev, p)
        if count != len(tm.columns):
            raise TaskError(
                f"binlog {self.file}:{self.event_pos}: a rows event of {tm.qualified} has "
                f"{count} columns, its table map {len(tm.columns)}"
            )
        nbytes = (count + 7) // 8
        first = int.from_bytes(ev[p : p + nbytes], "little")
        p += nbytes
        before, after = (0, first) if kind == ROWS_WRITE else (first, 0)
        if kind == ROWS_UPDATE:
            after = int.from_bytes(ev[p : p + nbytes], "little")
            p += nbytes
        if not (before or kind == ROWS_WRITE) or not (after or kind == ROWS_DELETE):
            raise ValueError(f"a rows event of {tm.qualified} with an image of no columns")
        end = len(ev) - self.crc
        if compressed:
            rows = uncompress(ev[p:end])
            self._decode_rows(tm, kind, before, after, rows, 0, len(rows))
        else:
            self._decode_rows(tm, kind, before, after, ev, p, end)

    def _decode_rows(
        self, tm: TableMapEvent, kind: int, before: int, after: int, buf: bytes, p: int, end: int
    ) -> None:
        """The rows' changes into ``self.changes``: by the compiled walker, or row by row
        when a value cannot be decoded (bad rows become changes with ``error`` set)."""
        mark = len(self.changes)
        try:
            stop = rows_fn(tm, kind, before, after)(buf, p, end, self.changes)
            if stop != end:  # into the checksum, or rows cut short: not this table's rows
                raise ValueError(f"the rows of {tm.qualified} end {stop - end} bytes off")
        except DECODE_ERRORS:
            del self.changes[mark:]
            self.changes += decode_rows_slowly(tm, kind, before, after, buf, p, end)


_NO_POSITION = {Ev.FORMAT_DESCRIPTION, Ev.HEARTBEAT, Ev.HEARTBEAT_V2, Ev.ROTATE}


def _unsupported(what: str, fix: str) -> Callable[[BinlogDecoder, bytes, int, int, int], None]:
    def handler(dec: BinlogDecoder, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        raise TaskError(f"binlog {dec.file}:{log_pos}: {what} is not supported; {fix}")

    return handler


_HANDLERS: dict[int, Callable[[BinlogDecoder, bytes, int, int, int], Transaction | None]] = {
    Ev.ROTATE: BinlogDecoder._rotate,
    Ev.FORMAT_DESCRIPTION: BinlogDecoder._format,
    Ev.HEARTBEAT: BinlogDecoder._heartbeat,
    Ev.QUERY: BinlogDecoder._query,
    Ev.QUERY_COMPRESSED: BinlogDecoder._query_compressed,
    Ev.XID: BinlogDecoder._xid,
    Ev.TABLE_MAP: BinlogDecoder._table_map,
    Ev.GTID: BinlogDecoder._gtid,
    Ev.GTID_LIST: BinlogDecoder._gtid_list,
    Ev.GTID_LOG: BinlogDecoder._mysql_gtid,
    Ev.ANONYMOUS_GTID: BinlogDecoder._anonymous_gtid,
    Ev.XA_PREPARE: BinlogDecoder._xa_prepare,
    Ev.TRANSACTION_PAYLOAD: _unsupported(
        "a compressed transaction payload", "set binlog_transaction_compression=OFF"
    ),
    Ev.PARTIAL_UPDATE: _unsupported(
        "a partial JSON update", "set binlog_row_value_options='' (full JSON images)"
    ),
}
