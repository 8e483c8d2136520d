"""SQLite target: CREATE TABLE from canonical types, batched INSERTs."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

from opendms.endpoints.base import EndpointURL, PrepMode, Rejection, target_index_name
from opendms.endpoints.pyvalues import day_end_rows, negative_zero_rows, python_values
from opendms.endpoints.pyvalues import float_nan_rows as nan_rows
from opendms.endpoints.sqlite.source import quote
from opendms.endpoints.sqlite.types import to_declared
from opendms.errors import EndpointError
from opendms.model import Index, Kind, Table


def create_table_sql(table: Table) -> str:
    cols = [
        f"{quote(c.name)} {to_declared(c.type)}{'' if c.nullable else ' NOT NULL'}"
        for c in table.columns
    ]
    if table.primary_key:
        cols.append("PRIMARY KEY (" + ", ".join(quote(c) for c in table.primary_key) + ")")
    return f"CREATE TABLE {quote(table.name)} (\n  " + ",\n  ".join(cols) + "\n)"


BUSY_SECONDS = 300.0
_NAN = "SQLite stores NaN as NULL"
_DAY_END = "24:00:00 (PostgreSQL) is no time of day SQLite's time functions read"
_NEGATIVE_ZERO = "SQLite REAL columns store -0.0 as 0.0 (the sign would be lost)"


class SQLiteTarget:
    """Writes into one SQLite database file; one writer at a time."""

    # SQLite takes one writing transaction per database at a time and every writer of a
    # target shares its one connection: ParallelLoadThreads gives one writer per unit.
    # Full-load units each open a target of their own, so a writer waits out another
    # connection's transaction (or an index build) for up to BUSY_SECONDS.

    def __init__(self, url: EndpointURL, path: str) -> None:
        self.url = url
        self.conn = sqlite3.connect(
            path, timeout=BUSY_SECONDS, check_same_thread=False, isolation_level=None
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.lock = threading.Lock()

    def prepare(self, table: Table, mode: PrepMode) -> None:
        with self.lock, self._errors(table):
            self._prepare(table, mode)

    def _prepare(self, table: Table, mode: PrepMode) -> None:
        name = quote(table.name)
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table.name,)
        ).fetchone()
        if mode is PrepMode.DROP_AND_CREATE or not exists:
            self.conn.execute(f"DROP TABLE IF EXISTS {name}")
            self.conn.execute(create_table_sql(table))
        elif mode is PrepMode.TRUNCATE_BEFORE_LOAD:
            self.conn.execute(f"DELETE FROM {name}")

    def drop_table(self, table: Table) -> None:
        with self.lock, self._errors(table):
            self.conn.execute(f"DROP TABLE IF EXISTS {quote(table.name)}")

    def rename_table(self, old: Table, new: Table) -> None:
        with self.lock, self._errors(old):
            rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            names = {r[0].casefold() for r in rows}
            if old.name.casefold() in names and new.name.casefold() not in names:
                self.conn.execute(f"ALTER TABLE {quote(old.name)} RENAME TO {quote(new.name)}")

    @contextmanager
    def _errors(self, table: Table) -> Iterator[None]:
        """sqlite3 errors as one-line EndpointErrors naming the table."""
        try:
            yield
        except sqlite3.Error as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EndpointError(str(self.url), f"table {table.name}: {first}") from exc

    def writer(self, table: Table, segment: int | str | None) -> SQLiteWriter:
        return SQLiteWriter(self, table)

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        """NaN (stored as NULL) and -0.0 (a REAL column stores it as 0.0) in float columns,
        and times of 24:00:00, in the columns the batch carries."""
        out = []
        for col in table.columns:
            if col.type.kind is Kind.TIME and col.name in batch.schema.names:
                rows = day_end_rows(batch.column(col.name))
                out += [Rejection(r, col.name, _DAY_END) for r in rows]
            if col.type.kind in (Kind.FLOAT32, Kind.FLOAT64) and col.name in batch.schema.names:
                array = batch.column(col.name)
                out += [Rejection(r, col.name, _NAN) for r in nan_rows(array)]
                out += [Rejection(r, col.name, _NEGATIVE_ZERO) for r in negative_zero_rows(array)]
        return out

    def run_ddl(self, table: Table, statements: list[str]) -> None:
        """Replace ``table`` with one created by converted DDL."""
        with self.lock, self._errors(table):
            self.conn.execute(f"DROP TABLE IF EXISTS {quote(table.name)}")
            for sql in statements:
                self.conn.execute(sql)

    def finish(self, table: Table) -> None:
        with self.lock, self._errors(table):
            for idx in table.indexes:
                self._create_index(table, idx)

    def _create_index(self, table: Table, idx: Index) -> None:
        name = target_index_name(table.name, idx.name)
        owner = self.conn.execute(
            "SELECT tbl_name FROM sqlite_master WHERE type='index' AND name=? COLLATE NOCASE",
            (name,),
        ).fetchone()
        if owner and owner[0].lower() != table.name.lower():
            raise EndpointError(
                str(self.url),
                f"table {table.name}: index {name!r} already exists on table {owner[0]!r}",
            )
        cols = ", ".join(quote(c) for c in idx.columns)
        unique = "UNIQUE " if idx.unique else ""
        self.conn.execute(
            f"CREATE {unique}INDEX IF NOT EXISTS {quote(name)} ON {quote(table.name)} ({cols})"
        )

    def close(self) -> None:
        self.conn.close()


class SQLiteWriter:
    """Inserts batches; each batch is one transaction."""

    def __init__(self, target: SQLiteTarget, table: Table) -> None:
        self.target = target
        self.table = table
        self.rows = 0
        marks = ", ".join("?" for _ in table.columns)
        cols = ", ".join(quote(c.name) for c in table.columns)
        self.sql = f"INSERT INTO {quote(table.name)} ({cols}) VALUES ({marks})"

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [python_values(batch.column(c.name), c.type) for c in self.table.columns]
        rows = list(zip(*columns, strict=True))
        conn = self.target.conn
        with self.target.lock:
            conn.execute("BEGIN")
            try:
                conn.executemany(self.sql, rows)
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise EndpointError(
                    str(self.target.url), f"table {self.table.name}: {exc}"
                ) from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        self.rows += len(rows)

    def close(self) -> int:
        return self.rows

    def abort(self) -> None:
        pass
