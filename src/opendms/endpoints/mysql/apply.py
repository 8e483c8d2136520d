"""Applying captured changes to a MySQL/MariaDB target, exactly once.

The engine-neutral part (runs, segments, error policies, checkpoint atomicity) is
:class:`opendms.endpoints.sqlite.apply.RowApplier`; this module adds MySQL's SQL and I/O:

- values are sent as the text the full load's LOAD DATA file carries for them
  (``tsv.column_text``, unescaped) and binaries as bytes, so the server converts them
  with the same field conversion; key values in WHERE clauses are typed (integers,
  floats, ``CAST(... AS DECIMAL(p,s))``) so comparisons are exact;
- the session is strict (``STRICT_ALL_TABLES``) and a statement that still warns is
  a data error, as in the full load;
- the connection has ``CLIENT_FOUND_ROWS`` (an UPDATE counts matched rows, not changed
  ones) and ``CLIENT_MULTI_STATEMENTS``: a segment of single-row statements travels as
  one packet and gives one affected-row count (or error) per statement; inserts go as
  multi-row INSERTs and only a refused one is retried row by row;
- DDL commits implicitly, so a batch is cut at each DDL transaction: the changes before
  it commit with the checkpoint at the end of the transaction before the DDL, the DDL
  runs (each column change skipped when already done, so a crash between the DDL and
  its checkpoint is retried safely), then the checkpoint moves past the DDL;
- the checkpoint table ``opendms_checkpoints`` lives in the URL's database (MySQL has
  no schemas inside a database), or in a database ``opendms`` for URLs without one.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from opendms.changes import ApplyPlan, ColumnChange
from opendms.endpoints.apply.policy import OnError
from opendms.endpoints.apply.rows import RowApplier
from opendms.endpoints.apply.session import CHECKPOINTS, Result, StatementError, Stmt
from opendms.endpoints.mysql.conn import connect, pymysql_module, translate
from opendms.endpoints.mysql.source import quote
from opendms.endpoints.mysql.target import MySQLTarget
from opendms.endpoints.mysql.tsv import column_text
from opendms.endpoints.mysql.types import cast_type, key_lengths, to_mysql
from opendms.endpoints.mysql.values import is_bit
from opendms.errors import TableError
from opendms.model import Column, ColumnType, Kind, Table

log = logging.getLogger("opendms.apply")

PACKET_BYTES = 1_000_000  # below the smallest max_allowed_packet in use (1 MiB on 5.7 clients)
PACKET_STATEMENTS = 500
_CONFLICT = {1062, 1586}  # duplicate entry (for key)
# (host, port, user, task) -> the server thread id of the task's last apply session
_APPLY_SESSIONS: dict[tuple[str | None, int | None, str | None, str], int] = {}
# Refusals of one statement's values (the batch goes on to the error policy or a DataError).
# no such table or column, no privilege on it: the table, not one record
_TABLE_ERRORS = {1054, 1142, 1143, 1146}
_VALUE_ERRORS = {1048, 1264, 1265, 1292, 1366, 1406, 1451, 1452, 3140, 4025}
_ESCAPED_KINDS = (Kind.STRING, Kind.JSON, Kind.ENUM, Kind.UUID, Kind.INTERVAL, Kind.ARRAY)
_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r", "\\0": "\x00"}
_ESCAPE = re.compile(r"\\[\\tnr0]")
_WARNED = StatementError("MySQL would alter a value (the statement warned)", conflict=False)
_INTEGERS = (Kind.BOOL, Kind.INT16, Kind.INT32, Kind.INT64)
_COLUMNS = (
    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
)


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _UNESCAPES[m.group()], text) if "\\" in text else text


def _version(text: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in m.groups()) if m else (0, 0, 0)


def _templated(sql: str) -> str:
    """``sql`` made safe for %-formatting (quoted names may hold '%')."""
    return sql.replace("%", "%%")


class MySqlApplier(RowApplier):
    """Applies changes to a MySQL/MariaDB target through its own connection."""

    placeholder = "%s"
    null_safe = " <=> "
    transactional_ddl = False

    def __init__(
        self,
        target: MySQLTarget,
        task: str,
        plans: list[ApplyPlan],
        policies: Mapping[str, str] | None = None,
        on_error: OnError | None = None,
    ) -> None:
        super().__init__(target, task, plans, policies, on_error)
        self.mysql = target
        self.url = target.url
        self.pymysql = pymysql_module()
        self.database = target.url.database or "opendms"
        self.mariadb = True
        self.row_alias = False
        self._open()

    @contextmanager
    def _driver(self) -> Iterator[None]:
        try:
            yield
        except self.pymysql.MySQLError as exc:
            raise translate(exc, self.url) from exc

    def _open(self) -> None:
        flags = self.pymysql.constants.CLIENT
        flag = flags.MULTI_STATEMENTS | flags.FOUND_ROWS
        self.conn = connect(self.url, database="", client_flag=flag)  # names are qualified
        self._session(self.conn)
        self._end_orphan()
        self.formatter = self.conn.cursor()  # mogrify only: quotes values as the server reads them

    def _end_orphan(self) -> None:
        """KILL this task's previous apply session on this server, if it is still there.

        A session whose client vanished behind a cut link stays on the server (MySQL has
        no keepalive of its own; ``wait_timeout`` is hours) with its transaction's row
        locks, which the new session would wait on until the lock wait timeout, again
        and again. One task applies through one session at a time, so the previous one
        is an orphan."""
        key = (self.url.host, self.url.port, self.url.user, self.task)
        previous, current = _APPLY_SESSIONS.get(key), int(self.conn.thread_id())
        _APPLY_SESSIONS[key] = current
        if previous is None or previous == current:
            return
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"KILL {int(previous)}")
            log.info("task %s: ended its previous apply session %d", self.task, previous)
        except self.pymysql.MySQLError as exc:  # 1094: gone already, as it should be
            log.debug("task %s: previous apply session %d: %s", self.task, previous, exc)

    def _session(self, conn: Any) -> None:
        """Strict values, backslash escapes on (PyMySQL quotes with them)."""
        with self._driver(), conn.cursor() as cur:
            cur.execute("SELECT VERSION(), @@SESSION.sql_mode")
            version, mode = cur.fetchone()
            modes = {m for m in str(mode).split(",") if m} - {"NO_BACKSLASH_ESCAPES"}
            modes.add("STRICT_ALL_TABLES")
            cur.execute("SET SESSION sql_mode = %s", (",".join(sorted(modes)),))
        with contextlib.suppress(self.pymysql.MySQLError), conn.cursor() as cur:
            cur.execute("SET SESSION explicit_defaults_for_timestamp = ON")  # see the target
        self.mariadb = "mariadb" in str(version).lower()
        self.row_alias = not self.mariadb and _version(str(version)) >= (8, 0, 19)

    def _alive(self) -> None:
        """A new connection when the last one was lost (a failed batch is retried)."""
        try:
            self.conn.ping()
        except self.pymysql.MySQLError:
            self.close()
            self._open()

    def _mogrify(self, sql: str, args: tuple[Any, ...]) -> str:
        text: str = self.formatter.mogrify(sql, args)
        return text

    def _exec(self, sql: str, args: tuple[Any, ...] | None = None) -> list[Any]:
        """One statement; ``args`` None runs ``sql`` as is (no %-formatting)."""
        with self._driver(), self.conn.cursor() as cur:
            cur.execute(sql if args is None else self._mogrify(sql, args))
            return list(cur.fetchall())

    # -- SQL hooks --

    def q(self, name: str) -> str:
        return _templated(quote(name))

    def table_sql(self, table: Table) -> str:
        return _templated(self.mysql.qualified(table))

    def key_sql(self, ctype: ColumnType) -> str:
        if ctype.kind is Kind.DECIMAL:
            return f"CAST(%s AS {cast_type(ctype)})"
        if ctype.kind in (Kind.JSON, Kind.ARRAY) and not self.mariadb:
            return "CAST(%s AS JSON)"  # MySQL compares a JSON column with JSON values
        return "%s"

    def key_param(self, value: Any, ctype: ColumnType) -> Any:
        if value is None:
            return None
        if ctype.kind in _INTEGERS:
            return int(value)
        if ctype.kind in (Kind.FLOAT32, Kind.FLOAT64):
            return float(value)  # a double literal (1.5e0): exact, unlike the string '1.5'
        return value

    def one_row(self, table: str, where: str) -> tuple[str, str]:
        return where, " LIMIT 1"

    def upsert_suffix(self, table: Table, cols: tuple[str, ...]) -> str:
        updates = [c for c in cols if c not in table.primary_key] or list(cols[:1])
        if self.row_alias:  # MySQL 8.0.20 deprecates VALUES() here
            sets = ", ".join(f"{self.q(c)} = opendms_new.{self.q(c)}" for c in updates)
            return f" AS opendms_new ON DUPLICATE KEY UPDATE {sets}"
        sets = ", ".join(f"{self.q(c)} = VALUES({self.q(c)})" for c in updates)
        return f" ON DUPLICATE KEY UPDATE {sets}"

    def stored(self, array: pa.Array[Any], ctype: ColumnType) -> list[Any]:
        """The values the full load's LOAD DATA file carries, unescaped (NULL as None)."""
        if ctype.kind is Kind.BINARY:
            return array.to_pylist()  # the load sends hex and UNHEXes it: the same bytes
        if is_bit(ctype):  # the load CASTs its text to a number: BIT(n) takes numbers
            return [None if v is None else int(v) for v in array.to_pylist()]
        texts = column_text(array, Column("value", ctype)).to_pylist()
        valid = array.is_valid().to_pylist()
        if ctype.kind in _ESCAPED_KINDS:
            return [_unescape(str(t)) if ok else None for t, ok in zip(texts, valid, strict=True)]
        return [t if ok else None for t, ok in zip(texts, valid, strict=True)]

    # -- execution --

    def execute_each(self, stmts: list[Stmt], checked: bool) -> list[Result]:
        return self._each([self._mogrify(sql, args) for sql, args in stmts])

    def insert(
        self, table: Table, cols: tuple[str, ...], rows: list[list[Any]], upsert: bool
    ) -> list[Result]:
        """Multi-row INSERTs; a refused one is retried row by row to find the row."""
        names = ", ".join(self.q(c) for c in cols)
        head = self._mogrify(f"INSERT INTO {self.table_sql(table)} ({names}) VALUES ", ())
        tail = self._mogrify(self.upsert_suffix(table, cols), ()) if upsert else ""
        mark = "(" + ", ".join("%s" for _ in cols) + ")"
        out: list[Result] = []
        for chunk in _chunks([self._mogrify(mark, tuple(r)) for r in rows]):
            result = self._send([head + ",".join(chunk) + tail])[0]
            if not isinstance(result, StatementError):
                out += [-1] * len(chunk)
                continue
            done = self._each([head + v + tail for v in chunk]) if len(chunk) > 1 else [result]
            out += done
            if len(done) < len(chunk):
                break
        return out

    def _each(self, texts: list[str]) -> list[Result]:
        """Statements in multi-statement packets; ends early at a non-conflict refusal."""
        out: list[Result] = []
        while len(out) < len(texts):
            results = self._send(_packet(texts, len(out)))
            out += results
            last = results[-1]
            if isinstance(last, StatementError) and not last.conflict:
                break
        return out

    def _send(self, texts: list[str]) -> list[Result]:
        """One packet: a count per statement, up to (and including) the first refusal."""
        out: list[Result] = []
        cur = self.conn.cursor()
        try:
            cur.execute(";\n".join(texts))
            while True:
                out.append(self._count(cur))
                if isinstance(out[-1], StatementError) or len(out) == len(texts):
                    break
                if not cur.nextset():
                    break
        except self.pymysql.MySQLError as exc:
            out.append(self._refused(exc))
        finally:
            self._drain(cur)
        if out[-1] is _WARNED and len(out) == len(texts):
            out[-1] = StatementError(self._warnings(), conflict=False)  # SHOW WARNINGS: last only
        return out

    def _count(self, cur: Any) -> Result:
        return _WARNED if cur.warning_count else int(cur.rowcount)

    def _warnings(self) -> str:
        rows = self._exec("SHOW WARNINGS LIMIT 3")
        return "MySQL would alter a value: " + "; ".join(str(r[2]) for r in rows)

    def _drain(self, cur: Any) -> None:
        try:
            cur.close()  # reads any results left in the packet
        except self.pymysql.MySQLError as exc:
            log.debug("draining a refused packet: %s", exc)

    def _refused(self, exc: Exception) -> StatementError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        statement_level = (self.pymysql.err.IntegrityError, self.pymysql.err.DataError)
        if code in _TABLE_ERRORS:
            raise TableError("", f"MySQL error {code}: {exc.args[-1]}") from exc
        if not isinstance(exc, statement_level) and code not in _VALUE_ERRORS:
            raise translate(exc, self.url) from exc
        text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        return StatementError(f"MySQL error {code}: {text}", conflict=code in _CONFLICT)

    # -- transactions --

    def begin(self) -> None:
        self._alive()
        with self._driver():
            self.conn.begin()

    def commit(self) -> None:
        with self._driver():
            self.conn.commit()

    def rollback(self) -> None:
        try:
            self.conn.rollback()
        except self.pymysql.MySQLError as exc:
            log.warning("rollback failed (the server rolls back on disconnect): %s", exc)

    def savepoint(self, name: str, action: str) -> None:
        self._exec(f"{action} {name}")

    # -- checkpoints --

    def _checkpoints(self) -> str:
        return f"{quote(self.database)}.{quote(CHECKPOINTS)}"

    def ensure_checkpoints(self) -> None:
        self._alive()
        self._exec(f"CREATE DATABASE IF NOT EXISTS {quote(self.database)}")
        self._exec(
            f"CREATE TABLE IF NOT EXISTS {self._checkpoints()} ("
            "task VARCHAR(255) NOT NULL PRIMARY KEY, position TEXT NOT NULL, "
            "applied_at DATETIME(6) NOT NULL"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        )

    def save_checkpoint(self, position: str) -> None:
        self._exec(
            f"INSERT INTO {_templated(self._checkpoints())} (task, position, applied_at) "
            "VALUES (%s, %s, UTC_TIMESTAMP(6)) "
            "ON DUPLICATE KEY UPDATE position = %s, applied_at = UTC_TIMESTAMP(6)",
            (self.task, position, position),
        )

    def read_checkpoint(self) -> str | None:
        self.ensure_checkpoints()
        self.ready = True
        rows = self._exec(
            f"SELECT position FROM {_templated(self._checkpoints())} WHERE task = %s", (self.task,)
        )
        return str(rows[0][0]) if rows else None

    # -- DDL --

    def alter_column(self, tmap: ApplyPlan, cc: ColumnChange) -> None:
        """Column DDL (commits implicitly), skipped when already done."""
        name = tmap.target_name(cc)
        if name is None:
            return
        self._alive()
        table = tmap.target
        found = self._exec(_COLUMNS, (self.mysql.database(table), table.name))
        present = name.lower() in {str(r[0]).lower() for r in found}
        head = f"ALTER TABLE {self.mysql.qualified(table)}"
        if cc.action == "add" and not present:
            assert cc.ctype is not None
            null = " NULL" if cc.nullable else " NOT NULL"
            self._exec(f"{head} ADD COLUMN {quote(name)} {to_mysql(cc.ctype)}{null}")
        elif cc.action == "drop" and present:
            self._exec(f"{head} DROP COLUMN {quote(name)}")
        elif cc.action == "rename" and present:
            new = cc.new_name or name
            self._exec(f"{head} RENAME COLUMN {quote(name)} TO {quote(new)}")
        elif cc.action == "alter_type" and present:
            assert cc.ctype is not None
            in_key = name in table.primary_key
            null = " NULL" if cc.nullable and not in_key else " NOT NULL"
            retyped = tmap.after(cc).target
            ctype = to_mysql(cc.ctype, in_key, key_lengths(retyped).get(name))
            self._exec(f"{head} MODIFY COLUMN {quote(name)} {ctype}{null}")

    def close(self) -> None:
        try:
            self.conn.close()
        except self.pymysql.MySQLError as exc:
            log.debug("closing the apply connection: %s", exc)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for value in values:
        if chunk and size + len(value) > PACKET_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(value)
        size += len(value) + 1
    if chunk:
        yield chunk


def _packet(texts: list[str], start: int) -> list[str]:
    """Statements from ``start`` that fit one packet (at least one)."""
    end, size = start, 0
    while end < len(texts) and end - start < PACKET_STATEMENTS:
        if end > start and size + len(texts[end]) > PACKET_BYTES:
            break
        size += len(texts[end]) + 2
        end += 1
    return texts[start:end]
