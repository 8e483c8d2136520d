"""Change data capture from a MySQL/MariaDB binlog (ROW format, full row images).

There is no shareable snapshot: the engine records :meth:`MySqlChangeSource.start`
before the full load, loads, then applies the changes from that position on
idempotently until :meth:`MySqlChangeSource.current_position` taken after the load.
Resuming uses the GTID state of the saved position on MariaDB (falling back to
file:offset), and the binlog file and offset elsewhere; a transaction that ends
at or before the resume position is never emitted twice.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any, Literal

from opendms.changes import Backlog, BinlogPosition, Position, Transaction
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.binlog.decoder import BinlogDecoder, file_number
from opendms.endpoints.mysql.binlogclient import BinlogClient, BinlogServerError
from opendms.endpoints.mysql.conn import connect, pymysql_module, translate
from opendms.errors import ConfigError, EndpointError, PrivilegeError, TaskError
from opendms.model import ColumnType, Kind, T, TableRef

IDLE_WAIT = 0.5  # seconds without data before the stream reports an idle tick
PURGED = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG

SETTINGS = (
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "server_id",
    "binlog_transaction_compression",
    "binlog_row_value_options",
)

_REQUIRED: tuple[tuple[str, str, str], ...] = (
    ("log_bin", "ON", "start the server with --log-bin (it cannot be switched on at runtime)"),
    (
        "binlog_format",
        "ROW",
        "SET GLOBAL binlog_format = 'ROW' and set binlog_format=ROW in the server "
        "configuration (open sessions keep their format until they reconnect)",
    ),
    (
        "binlog_row_image",
        "FULL",
        "SET GLOBAL binlog_row_image = 'FULL' and set it in the server configuration",
    ),
    (
        "binlog_row_metadata",
        "FULL",
        "SET GLOBAL binlog_row_metadata = 'FULL' and set it in the server configuration "
        "(MySQL 8.0.1+ / MariaDB 10.5+)",
    ),
)


def check_settings(settings: Mapping[str, str], grants: Sequence[str]) -> list[str]:
    """What keeps the server from binlog capture: one line per wrong setting or
    missing privilege, each naming the fix (empty: ready)."""
    problems = []
    for name, want, fix in _REQUIRED:
        value = settings.get(name)
        if value is None:
            problems.append(f"{name} does not exist on this server (too old?): {fix}")
        elif value.upper() not in (want, "1" if want == "ON" else want):
            problems.append(f"{name} is {value}, needs {want}: {fix}")
    if settings.get("server_id", "0") in ("0", ""):
        problems.append("server_id is 0: set server_id to a non-zero value (SET GLOBAL server_id)")
    if settings.get("binlog_transaction_compression", "OFF").upper() not in ("OFF", "0"):
        problems.append(
            "binlog_transaction_compression is ON: SET GLOBAL binlog_transaction_compression = OFF"
        )
    if settings.get("binlog_row_value_options", ""):
        problems.append("binlog_row_value_options is set: SET GLOBAL binlog_row_value_options = ''")
    return problems + missing_privileges(grants)


_GRANT = re.compile(r"^GRANT (.+?) ON \*\.\* TO ", re.I)


def missing_privileges(grants: Sequence[str]) -> list[str]:
    """The replication privileges SHOW GRANTS does not show (global grants only)."""
    held: set[str] = set()
    for line in grants:
        m = _GRANT.match(line)
        if m:
            held |= {p.strip().upper() for p in m.group(1).split(",")}
    if "ALL PRIVILEGES" in held or any(" ON " not in line.upper() for line in grants):
        return []  # all granted, or granted through roles, which SHOW GRANTS does not expand
    out = []
    if "REPLICATION SLAVE" not in held and "REPLICATION REPLICA" not in held:
        out.append("privilege REPLICATION SLAVE is missing: GRANT REPLICATION SLAVE ON *.* TO ...")
    if not held & {"REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"}:
        out.append(
            "privilege REPLICATION CLIENT (MariaDB 10.5+: BINLOG MONITOR) is missing: "
            "GRANT REPLICATION CLIENT ON *.* TO ..."
        )
    return out


def capture_server_id(task: str) -> int:
    """A replica server_id derived from the task name (stable, unlikely to clash)."""
    return 1_000_000_000 + zlib.crc32(task.encode()) % 3_000_000_000


class MySqlChangeSource:
    """One task's binlog capture on a MySQL/MariaDB source."""

    value_form: Literal["pg-text", "python"] = "python"
    consistent_snapshot = False

    def __init__(self, url: EndpointURL, task: str) -> None:
        self.url = url
        self.task = task
        self.server_id = capture_server_id(task)
        self.tables: set[tuple[str, str]] | None = None  # None: every table
        self.old_rows: set[tuple[str, str]] = set()
        self.ctypes: dict[tuple[str, str], dict[str, ColumnType]] = {}
        self.confirmed: BinlogPosition | None = None
        self._end: BinlogPosition | None = None
        self._reached = False
        self._client: BinlogClient | None = None

    # -- queries on a plain connection

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = connect(self.url, database="")
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args or None)
                return [tuple(r) for r in cur.fetchall()]
        except pymysql_module().Error as exc:
            raise translate(exc, self.url) from exc
        finally:
            conn.close()

    def _settings(self) -> dict[str, str]:
        names = ", ".join(f"'{n}'" for n in (*SETTINGS, "lower_case_table_names", "version"))
        rows = self._query(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")
        return {str(k).lower(): str(v) for k, v in rows}

    # -- ChangeSource

    def parse_position(self, text: str) -> Position:
        return BinlogPosition.parse(text)

    def prepare(self, tables: list[TableRef]) -> None:
        """Check the server settings and privileges; remember the captured tables."""
        grants = [str(r[0]) for r in self._query("SHOW GRANTS")]
        problems = check_settings(self._settings(), grants)
        if problems:
            kind = PrivilegeError if all("privilege" in p for p in problems) else EndpointError
            lines = "\n  - ".join(problems)
            raise kind(str(self.url), f"the server is not ready for binlog capture:\n  - {lines}")
        self.tables = {(t.schema, t.name) for t in tables}
        self.ctypes = self._uuid_columns(tables)

    def _uuid_columns(self, tables: list[TableRef]) -> dict[tuple[str, str], dict[str, ColumnType]]:
        """MariaDB UUID columns look like BINARY(16) in the binlog: take them from the catalog."""
        rows = self._query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE DATA_TYPE = 'uuid'"
        )
        wanted = {(t.schema, t.name) for t in tables}
        out: dict[tuple[str, str], dict[str, ColumnType]] = {}
        for schema, table, column in rows:
            if (schema, table) in wanted:
                out.setdefault((schema, table), {})[column] = T(Kind.UUID)
        return out

    def exists(self) -> bool:
        return True  # nothing is created on the server; a purged binlog fails in stream()

    def start(self) -> tuple[Position, str | None]:
        return self.current_position(), None

    def release_snapshot(self) -> None:
        return None

    def current_position(self) -> Position:
        """SHOW MASTER STATUS with the GTID state (read first: never ahead of the file
        position; a transaction in between is skipped by position when resuming)."""
        conn = connect(self.url, database="")
        try:
            return _master_position(conn, self.url)
        finally:
            conn.close()

    def caught_up(self) -> bool:
        return self._reached

    def confirm(self, position: Position) -> None:
        if isinstance(position, BinlogPosition):
            self.confirmed = position

    def backlog(self, applied: str | None) -> Backlog:
        """Binlog bytes the server holds after the applied position (0 while there is
        none); ``gone`` when that position's file was purged."""
        if applied is None:
            return Backlog(0, "bytes", "no applied position yet")
        files = [(str(r[0]), int(r[1])) for r in self._query("SHOW BINARY LOGS")]
        at = BinlogPosition.parse(applied.partition(" until ")[0])
        numbers = [BinlogPosition.parse(f"{name}:0").file_number for name, _ in files]
        if at.file_number not in numbers:
            what = f"binlog file {at.file} of the applied position {at} was purged"
            return Backlog(0, "bytes", what, gone=True)
        behind = sum(
            size - (at.offset if number == at.file_number else 0)
            for (_, size), number in zip(files, numbers, strict=True)
            if number >= at.file_number
        )
        return Backlog(max(behind, 0), "bytes", f"binlog after the applied position {at}")

    def drop(self) -> None:
        return None

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- streaming

    def stream(self, start: Position, stop: threading.Event) -> Generator[Transaction | None]:
        """Committed transactions after ``start`` (None every IDLE_WAIT when idle)."""
        if not isinstance(start, BinlogPosition):
            raise ConfigError(f"{start} is not a binlog position (like mysql-bin.000003:1234)")
        decoder, use_gtid = self._prepare_stream(start)
        client = self._client = BinlogClient(self.url, self.server_id)
        try:
            client.connect()
            client.dump(start.file, start.offset, start.gtid if use_gtid else "")
            yield from self._events(client, decoder, start, stop)
        except BinlogServerError as exc:
            raise self._dump_error(exc, start) from exc
        finally:
            self._client = None
            client.close()

    def _prepare_stream(self, start: BinlogPosition) -> tuple[BinlogDecoder, bool]:
        """The decoder for a stream from ``start``; checks the start is still there."""
        conn = connect(self.url, database="")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@version, @@lower_case_table_names")
                version, fold = cur.fetchone()
            mariadb = "mariadb" in str(version).lower()
            use_gtid = mariadb and bool(start.gtid)
            gtid: str | None = start.gtid or None
            if not use_gtid:
                _check_file(conn, self.url, start, self._applied())
                if mariadb:
                    gtid = _binlog_gtid_pos(conn, start)
            self._end = _master_position(conn, self.url)
            charsets = _charsets(conn)
        except pymysql_module().Error as exc:
            raise translate(exc, self.url) from exc
        finally:
            conn.close()
        self._reached = start >= self._end
        decoder = BinlogDecoder(
            file=start.file,
            offset=start.offset,
            gtid=gtid,
            captured=self.tables,
            charsets=charsets,
            ctypes=self.ctypes,
            fold_case=str(fold) != "0",
            mariadb=mariadb,
            old_rows=self.old_rows,
        )
        return decoder, use_gtid

    def _events(
        self,
        client: BinlogClient,
        decoder: BinlogDecoder,
        start: BinlogPosition,
        stop: threading.Event,
    ) -> Iterator[Transaction | None]:
        decoder.crc = 4 if client.checksum else 0
        end = self._end
        assert end is not None
        goal = (end.file_number, end.offset)
        feed = decoder.feed
        ticked, delivered = time.monotonic(), False
        while not stop.is_set():
            # right after a transaction only look: nothing more is an idle tick at once, so
            # the loop applies what it holds now rather than after IDLE_WAIT of silence
            events = client.read_events(0.0 if delivered else IDLE_WAIT)
            delivered = False
            for event in events:
                txn = feed(event)
                if not self._reached and (decoder.file_number, decoder.offset) >= goal:
                    self._reached = True
                if txn is not None and txn.end > start:
                    ticked, delivered = time.monotonic(), True
                    yield txn
            if not events or time.monotonic() - ticked >= IDLE_WAIT:  # idle, or heartbeats
                self._reached = self._reached or _heartbeat_reached(decoder, end)
                ticked = time.monotonic()
                yield None

    def _applied(self) -> str:
        """For error messages: the last position the target confirmed, if any."""
        return f" (the target holds changes up to {self.confirmed})" if self.confirmed else ""

    def _dump_error(self, exc: BinlogServerError, start: BinlogPosition) -> Exception:
        if exc.code == PURGED:
            where = f"{start.file}:{start.offset}"
            return TaskError(
                f"{self.url}: binlog {where} is no longer on the server (purged): {exc.text}; "
                f"the changes after it are lost to this task{self._applied()} — "
                "run a new full load"
            )
        return translate(Exception(exc.code, exc.text), self.url)


def _heartbeat_reached(decoder: BinlogDecoder, end: BinlogPosition) -> bool:
    """A heartbeat comes when the server has sent everything: past ``end``, caught up."""
    beat = decoder.heartbeat
    return beat is not None and beat >= end


def _master_position(conn: Any, url: EndpointURL) -> BinlogPosition:
    with conn.cursor() as cur:
        cur.execute("SELECT @@version")
        mariadb = "mariadb" in str(cur.fetchone()[0]).lower()
        gtid = _gtid_executed(cur, mariadb)
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql_module().Error:
            cur.execute("SHOW BINARY LOG STATUS")  # MySQL 8.4+
        row = cur.fetchone()
    if not row:
        raise EndpointError(str(url), "binary logging is off (log_bin=OFF): start with --log-bin")
    file, offset = str(row[0]), int(row[1])
    return BinlogPosition(file_number(file), offset, file, gtid)


def _gtid_executed(cur: Any, mariadb: bool) -> str:
    if mariadb:
        cur.execute("SELECT @@global.gtid_binlog_pos")
    else:
        cur.execute("SELECT IF(@@global.gtid_mode = 'ON', @@global.gtid_executed, '')")
    return str(cur.fetchone()[0] or "").replace("\n", "")


def _check_file(conn: Any, url: EndpointURL, start: BinlogPosition, note: str) -> None:
    """The start file must still be on the server (never skip changes silently)."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        sizes = {str(r[0]): int(r[1]) for r in cur.fetchall()}
    where = f"{start.file}:{start.offset}"
    if start.file not in sizes:
        newest = max(sizes, key=file_number) if sizes else ""
        if sizes and start.file_number > file_number(newest):
            raise ConfigError(f"binlog {start.file} does not exist on {url} (newest: {newest})")
        first = min(sizes, key=file_number) if sizes else "none"
        raise TaskError(
            f"{url}: binlog {where} is no longer on the server (purged): the oldest binlog "
            f"is {first}; the changes after it are lost to this task{note} — run a new full load"
        )
    if start.offset > sizes[start.file]:
        raise ConfigError(
            f"binlog position {where} is beyond the end of {start.file} "
            f"({sizes[start.file]} bytes) on {url}"
        )


def _binlog_gtid_pos(conn: Any, start: BinlogPosition) -> str | None:
    """MariaDB's GTID state at a file position (None when unknown)."""
    with conn.cursor() as cur:
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (start.file, start.offset))
        row = cur.fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _charsets(conn: Any) -> dict[int, str]:
    """Collation id -> character set name, from the server itself."""
    out: dict[int, str] = {}
    queries = (
        "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS",
        "SELECT ID, CHARACTER_SET_NAME FROM information_schema"
        ".COLLATION_CHARACTER_SET_APPLICABILITY WHERE ID IS NOT NULL",
    )
    for sql in queries:
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                out.update({int(i): str(n) for i, n in cur.fetchall() if i is not None})
        except pymysql_module().Error:
            continue  # the second table exists on MariaDB 10.10+ only
    return out
