"""PostgreSQL target: faithful CREATE TABLE, Arrow batches in by binary COPY (ADBC).

Columns whose Arrow form has no direct binary COPY encoding (unconstrained
numeric carried as text, native types carried as text) go through a staging
table and one INSERT ... SELECT with casts.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendms.arrowutil import join_element_wise
from opendms.endpoints.base import EndpointURL, PrepMode, Rejection, target_index_name, too_long
from opendms.endpoints.engine import StopFlag
from opendms.endpoints.postgres.conn import (
    connect,
    conninfo,
    libpq_conninfo,
    set_server_timeouts,
    translate,
)
from opendms.endpoints.postgres.fastcopy import CopySpec, CopyTarget, RowEstimator, copy_table
from opendms.endpoints.postgres.source import _adbc
from opendms.endpoints.postgres.types import quote_ident, to_pg
from opendms.errors import EndpointError, OpenDMSError, StopRequested
from opendms.model import Column, ColumnType, Index, Kind, Table

MAX_DECIMAL_PRECISION = 76  # wider decimals travel as text, as unconstrained ones do


def qualified(table: Table) -> str:
    return f"{quote_ident(table.schema)}.{quote_ident(table.name)}"


def needs_staging(ctype: ColumnType) -> bool:
    """True when ADBC's binary COPY cannot write this column directly."""
    if ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        staged = (Kind.UUID, Kind.JSON, Kind.DECIMAL, Kind.ENUM)
        return ctype.element.kind in staged or needs_staging(ctype.element)
    if ctype.kind is Kind.DECIMAL:
        return ctype.precision is None or ctype.precision > MAX_DECIMAL_PRECISION
    return ctype.kind is Kind.STRING and ctype.type_name is not None


def _key_sql(table: Table) -> str:
    """The primary key constraint: named by define-primary-key (else ``<table>_pkey``),
    its index in the index tablespace the mapping names."""
    keys = ", ".join(map(quote_ident, table.primary_key))
    name = quote_ident((table.primary_key_name or f"{table.name}_pkey")[:63])
    space = _index_space(table)
    using = f" USING INDEX TABLESPACE {space}" if space else ""
    return f"CONSTRAINT {name} PRIMARY KEY ({keys}){using}"


def _index_space(table: Table) -> str:
    return quote_ident(table.index_tablespace) if table.index_tablespace else ""


class PostgresTarget:
    """Creates and loads tables in one PostgreSQL database."""

    # Several writers may load one table at once (ParallelLoadThreads): each has its own
    # connection and commits each batch on its own.

    def __init__(self, url: EndpointURL, same_engine: bool = False) -> None:
        self.url = url
        self.conn = connect(url)
        self.same_engine = same_engine
        self.lock = threading.Lock()
        self.pending_keys: set[str] = set()
        self.created: set[str] = set()  # tables this load created (empty, no other writer)

    def column_sql(self, table: Table, col: Column) -> str:
        ctype = col.type
        name = to_pg(ctype, self.same_engine)
        if ctype.kind is Kind.ENUM and not ctype.type_name:
            name = f"{quote_ident(table.schema)}.{quote_ident(f'{table.name}_{col.name}')}"
        null = "" if col.nullable else " NOT NULL"
        return f"{quote_ident(col.name)} {name}{null}"

    def create_sql(self, table: Table, with_key: bool = True) -> str:
        cols = [self.column_sql(table, c) for c in table.columns]
        if table.primary_key and with_key:
            cols.append(_key_sql(table))
        space = f" TABLESPACE {quote_ident(table.tablespace)}" if table.tablespace else ""
        return f"CREATE TABLE {qualified(table)} (\n  " + ",\n  ".join(cols) + "\n)" + space

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        """One statement on the admin connection, which reconnects when it broke (the
        server restarted since the last one)."""
        try:
            with self.lock:
                if self.conn.closed or self.conn.broken:
                    self.conn = connect(self.url)
                return self.conn.execute(sql, args)
        except OpenDMSError:
            raise
        except Exception as exc:
            raise translate(exc, self.url) from exc

    def _exists(self, table: Table) -> bool:
        row = self._execute("SELECT to_regclass(%s)", (qualified(table),)).fetchone()
        return row[0] is not None

    def run_ddl(self, table: Table, statements: list[str]) -> None:
        """Replace ``table`` with one created by converted DDL (the key comes with it)."""
        self._execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(table.schema)}")
        self._execute(f"DROP TABLE IF EXISTS {qualified(table)} CASCADE")
        for sql in statements:
            self._execute(sql)

    def prepare(self, table: Table, mode: PrepMode) -> None:
        self._execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(table.schema)}")
        exists = self._exists(table)
        if mode is PrepMode.DROP_AND_CREATE or not exists:
            if exists:
                self._execute(f"DROP TABLE {qualified(table)}")
            self._create_enums(table)
            # The primary key is added after the data: one sorted index build is
            # cheaper than maintaining the B-tree row by row during COPY.
            self._execute(self.create_sql(table, with_key=False))
            self.created.add(qualified(table))
            if table.primary_key:
                self.pending_keys.add(qualified(table))
        elif mode is PrepMode.TRUNCATE_BEFORE_LOAD:
            self._execute(f"TRUNCATE TABLE {qualified(table)}")

    def drop_table(self, table: Table) -> None:
        self._execute(f"DROP TABLE IF EXISTS {qualified(table)}")

    def rename_table(self, old: Table, new: Table) -> None:
        """``ALTER TABLE ... SET SCHEMA`` and ``RENAME TO`` in one transaction."""
        if not self._exists(old) or self._exists(new):
            return
        moved = f"{quote_ident(new.schema)}.{quote_ident(old.name)}"
        steps = [f"CREATE SCHEMA IF NOT EXISTS {quote_ident(new.schema)}"]
        if old.schema != new.schema:
            steps.append(f"ALTER TABLE {qualified(old)} SET SCHEMA {quote_ident(new.schema)}")
        if old.name != new.name:
            steps.append(f"ALTER TABLE {moved} RENAME TO {quote_ident(new.name)}")
        self._execute(";\n".join(steps))

    def _create_enums(self, table: Table) -> None:
        for col in table.columns:
            ctype = col.type.element if col.type.kind is Kind.ARRAY else col.type
            if ctype is None or ctype.kind is not Kind.ENUM:
                continue
            name = ctype.type_name or quote_ident(f"{table.name}_{col.name}")
            if ctype.type_name is None:
                name = f"{quote_ident(table.schema)}.{name}"
            if self._execute("SELECT to_regtype(%s)", (name,)).fetchone()[0] is None:
                labels = ", ".join("'" + v.replace("'", "''") + "'" for v in ctype.labels)
                self._execute(f"CREATE TYPE {name} AS ENUM ({labels})")

    def writer(self, table: Table, segment: int | str | None) -> PostgresWriter:
        return PostgresWriter(self, table)

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        out = [
            Rejection(i, c.name, "PostgreSQL text cannot hold NUL characters")
            for c in table.columns
            if c.type.kind in (Kind.STRING, Kind.JSON, Kind.ENUM)
            for i in _nul_rows(batch.column(c.name))
        ]
        out += [
            Rejection(i, c.name, "not a valid UUID")
            for c in table.columns
            if c.type.kind is Kind.UUID
            for i in _bad_uuid_rows(batch.column(c.name))
        ]
        return out + too_long(table, batch)

    def finish(self, table: Table) -> None:
        if qualified(table) in self.pending_keys:
            self._execute(f"ALTER TABLE {qualified(table)} ADD {_key_sql(table)}")
            self.pending_keys.discard(qualified(table))
        for idx in table.indexes:
            self._create_index(table, idx)

    def _create_index(self, table: Table, idx: Index) -> None:
        """Index names are per schema: an index of the same name on another table
        (or a relation of that name) is an error, one on this table is kept."""
        name = _identifier(target_index_name(table.name, idx.name))
        found = self._execute(_INDEX_OWNER, (table.schema, name)).fetchone()
        if found and found[0] != table.name:
            clash = f"on table {found[0]!r}" if found[0] else "as another relation"
            raise EndpointError(
                str(self.url),
                f"table {table.qualified}: cannot create index {name!r}: "
                f"the name already exists in schema {table.schema!r} {clash}",
            )
        unique = "UNIQUE " if idx.unique else ""
        cols = ", ".join(map(quote_ident, idx.columns))
        space = _index_space(table)
        self._execute(
            f"CREATE {unique}INDEX IF NOT EXISTS {quote_ident(name)} ON {qualified(table)} ({cols})"
            + (f" TABLESPACE {space}" if space else "")
        )

    def created_empty(self, table: Table) -> bool:
        return qualified(table) in self.created

    def copy_from(
        self,
        table: Table,
        spec: CopySpec,
        on_rows: Callable[[int], None],
        stop: StopFlag,
        fresh: bool = False,
    ) -> int:
        """Pull raw binary COPY data from a PostgreSQL source into ``table``.

        ``on_rows`` hears estimated row counts as chunks arrive; the exact count
        (returned) comes from the server at the end. ``fresh``: the only writer into a
        table this load created (COPY FREEZE in the transaction that empties it).
        """
        columns = tuple(c.name for c in table.columns)
        target = CopyTarget(conninfo(self.url), table.schema, table.name, columns, freeze=fresh)
        estimate = RowEstimator()

        def seen(chunk: bytes) -> None:
            on_rows(estimate.add(chunk))

        try:
            return copy_table(spec, target, seen, stop)
        except (StopRequested, EndpointError):
            raise
        except Exception as exc:
            raise translate(exc, self.url) from exc

    def close(self) -> None:
        """Close the connection; one the server already dropped has nothing to say."""
        with contextlib.suppress(Exception):
            self.conn.close()


# For a relation of that name: the table it indexes (NULL if it is no index).
_INDEX_OWNER = """
SELECT t.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index x ON x.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = x.indrelid
WHERE n.nspname = %s AND c.relname = %s
"""


def _identifier(name: str) -> str:
    """``name`` cut to PostgreSQL's 63-byte identifier limit (as the server would)."""
    return name.encode()[:63].decode(errors="ignore")


def _bad_uuid_rows(array: pa.Array[Any]) -> list[int]:
    if not pa.types.is_string(array.type):
        return []
    return [i for i, v in enumerate(array.to_pylist()) if v is not None and not _is_uuid(v)]


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _nul_rows(array: pa.Array[Any]) -> list[int]:
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return []
    found: Any = pc.match_substring(array, "\x00")  # the stubs' fill_null rejects a bool fill
    mask = pc.fill_null(found, False)
    if not pc.any(mask).as_py():
        return []
    return [i for i, v in enumerate(mask.to_pylist()) if v]


class PostgresWriter:
    """Binary COPY of Arrow batches (ADBC ingest), one transaction per batch."""

    def __init__(self, target: PostgresTarget, table: Table) -> None:
        self.target = target
        self.table = table
        self.rows = 0
        self.staged = [c.name for c in table.columns if needs_staging(c.type)]
        try:
            self.conn = _adbc().connect(libpq_conninfo(target.url))
            set_server_timeouts(self.conn, target.url.query)
        except Exception as exc:
            raise translate(exc, target.url) from exc
        self.stage = f"opendms_stage_{id(self):x}"
        if self.staged:
            self._create_stage()

    def _create_stage(self) -> None:
        cols = []
        for col in self.table.columns:
            pg = to_pg(col.type, self.target.same_engine)
            if col.name in self.staged or col.type.kind is Kind.ENUM:
                pg = "text[]" if col.type.kind is Kind.ARRAY else "text"
            cols.append(f"{quote_ident(col.name)} {pg}")
        cur = self.conn.cursor()
        cur.execute(f"CREATE TEMP TABLE {self.stage} ({', '.join(cols)})")
        self.conn.commit()

    def write(self, batch: pa.RecordBatch) -> None:
        data = _adapt(batch, self.table)
        try:
            cur = self.conn.cursor()
            if self.staged:
                cur.adbc_ingest(self.stage, data, mode="append", temporary=True)
                cur.execute(self._merge_sql())
                cur.execute(f"TRUNCATE {self.stage}")
            else:
                cur.adbc_ingest(
                    self.table.name, data, mode="append", db_schema_name=self.table.schema
                )
            self.conn.commit()
        except Exception as exc:
            self.conn.rollback()
            raise translate(exc, self.target.url) from exc
        self.rows += batch.num_rows

    def _merge_sql(self) -> str:
        cols = [quote_ident(c.name) for c in self.table.columns]
        exprs = []
        for c in self.table.columns:
            sql_type = self.target.column_sql(self.table, c).split(" ", 1)[1]
            exprs.append(f"{quote_ident(c.name)}::{sql_type}".replace(" NOT NULL", ""))
        return (
            f"INSERT INTO {qualified(self.table)} ({', '.join(cols)}) "
            f"SELECT {', '.join(exprs)} FROM {self.stage}"
        )

    def close(self) -> int:
        self.conn.close()
        return self.rows

    def abort(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()


def _adapt(batch: pa.RecordBatch, table: Table) -> pa.RecordBatch:
    """Re-encode columns whose binary COPY form differs from their Arrow form."""
    arrays = []
    for col, array in zip(table.columns, batch.columns, strict=True):
        if col.type.kind is Kind.UUID:
            array = _uuid_bytes(array)
        elif col.type.kind is Kind.JSON and col.type.binary_json:
            array = join_element_wise(b"\x01", array.cast(pa.binary()), b"")
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in table.columns])


def _uuid_bytes(array: pa.Array[Any]) -> pa.Array[Any]:
    """Binary COPY form of UUID text (``reject`` has turned away invalid values)."""
    values = [None if v is None else uuid.UUID(v).bytes for v in array.to_pylist()]
    return pa.array(values, pa.binary(16))
