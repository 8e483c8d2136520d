"""PostgreSQL source: catalog via psycopg, rows via ADBC (binary COPY -> Arrow).

All readers of a full load run under one exported snapshot, so parallel
segments see the same data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from opendms.arrowutil import read_rejections, with_rejections
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.canonical import canonical_batch
from opendms.endpoints.postgres import catalog
from opendms.endpoints.postgres.conn import (
    connect,
    conninfo,
    libpq_conninfo,
    require_psycopg,
    set_server_timeouts,
    translate,
)
from opendms.endpoints.postgres.fastcopy import CopySpec
from opendms.endpoints.postgres.types import quote_ident
from opendms.endpoints.sqlutil import limit_clause, where_clause
from opendms.errors import ConfigError, MissingExtraError
from opendms.model import ColumnType, Kind, ReadPlan, Table, TableRef, arrow_type

# Kinds read as text and rebuilt in Arrow (exact digits; no driver extension types).
_TEXT_KINDS = {Kind.DECIMAL, Kind.UUID, Kind.JSON, Kind.ENUM}

# ADBC reads any array as a flat list, so '{{1,2},{3,4}}' would arrive as [1,2,3,4] and
# '[0:1]={5,6}' would lose its bounds: such rows are data errors.
_BAD_ARRAY = (
    "a multi-dimensional array or one whose lower bound is not 1 cannot be represented as a list"
)


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def select_expr(name: str, ctype: ColumnType) -> str:
    """The SELECT expression that reads ``name`` in the form Arrow conversion expects."""
    col = quote_ident(name)
    if ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        if ctype.element.kind in _TEXT_KINDS or ctype.element.type_name:
            return f"{col}::text[]"
        return col
    if ctype.kind in _TEXT_KINDS or (ctype.kind is Kind.STRING and ctype.type_name):
        return f"{col}::text"
    return col


def select_sql(plan: ReadPlan, exprs: bool = True, extra: tuple[str, ...] = ()) -> str:
    """SELECT for one plan (segment, partition and filters applied); ``extra``
    expressions are appended after the plan's columns."""
    table = plan.table
    cols = [select_expr(c, table.column(c).type) if exprs else quote_ident(c) for c in plan.columns]
    select = ", ".join([*cols, *extra])
    where = where_clause(plan, quote_ident, literal)
    return f"SELECT {select} FROM {relation(plan)}{where}{limit_clause(plan)}"


def relation(plan: ReadPlan) -> str:
    """What a plan reads: one partition, a partitioned table (rows live in its
    partitions) or ``ONLY`` the table (rows of tables inheriting from it are theirs)."""
    table = plan.table
    if plan.segment is not None and plan.segment.partition:
        return partition(table, plan.segment.partition)
    rel = catalog.regclass(TableRef(table.schema, table.name))
    return rel if table.partitions or table.view else f"ONLY {rel}"


def partition(table: Table, name: str) -> str:
    """The quoted, qualified partition of ``table`` that ``name`` (``part``,
    ``schema.part`` or already quoted) names; ConfigError when it is not one."""
    wanted = {name, catalog.regclass(TableRef(table.schema, name))}
    if "." in name:
        wanted.add(catalog.regclass(TableRef(*name.split(".", 1))))
    for part in table.partitions:
        if part in wanted:
            return part
    known = ", ".join(table.partitions) or "none"
    raise ConfigError(
        f"table {table.qualified}: {name!r} is not a partition of the table "
        f"(its partitions: {known})",
        path="$.table_mappings",
    )


def shape_checks(plan: ReadPlan) -> tuple[str, ...]:
    """One boolean per array column: true where the value is not a plain 1-based list."""
    return tuple(
        f"coalesce(array_ndims({quote_ident(c)}) > 1 OR array_lower({quote_ident(c)}, 1) <> 1,"
        f" false) AS {quote_ident(f'opendms_shape_{i}')}"
        for i, c in enumerate(_arrays(plan))
    )


def _arrays(plan: ReadPlan) -> list[str]:
    return [c for c in plan.columns if plan.table.column(c).type.kind is Kind.ARRAY]


class PostgresSource:
    """Reads one PostgreSQL database."""

    def __init__(self, url: EndpointURL) -> None:
        self.url = url
        self.conn = connect(url)

    def list_tables(self) -> list[TableRef]:
        return catalog.list_tables(self.conn)

    def list_views(self) -> list[TableRef]:
        return catalog.list_views(self.conn)

    def describe(self, ref: TableRef) -> Table:
        return catalog.describe(self.conn, ref)

    @contextmanager
    def snapshot(self) -> Iterator[str | None]:
        """Export a snapshot that every reader of this load imports."""
        conn = connect(self.url, autocommit=False)
        try:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snap = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
            yield str(snap)
        finally:
            with contextlib.suppress(Exception):  # the server may have restarted meanwhile
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()

    def snapshot_alive(self, snapshot: str) -> bool:
        """Whether readers can still import ``snapshot`` (its exporting session lives);
        a source that cannot be reached raises ConnectError."""
        conn = connect(self.url, autocommit=False)
        try:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            return True
        except require_psycopg().Error:
            return False
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()
                conn.close()

    def read(self, plan: ReadPlan, snapshot: str | None) -> Iterator[pa.RecordBatch]:
        dbapi = _adbc()
        types = [plan.table.column(c).type for c in plan.columns]
        try:
            conn = dbapi.connect(libpq_conninfo(self.url))
        except Exception as exc:
            raise translate(exc, self.url) from exc
        try:
            set_server_timeouts(conn, self.url.query)
            for fetched in self._fetch(dbapi, conn, plan, snapshot):
                for batch in _slices(fetched, plan.batch_rows):
                    out = canonical_batch(plan, types, batch, _column)
                    yield _reject_shapes(plan, batch, out)
        finally:
            conn.close()

    def _fetch(
        self, dbapi: Any, conn: Any, plan: ReadPlan, snapshot: str | None
    ) -> Iterator[pa.RecordBatch]:
        """The plan's rows (then its shape checks) as ADBC batches; driver errors
        become one-line EndpointErrors."""
        try:
            cur = conn.cursor()
            _begin(cur, snapshot)
            cur.execute(self.read_sql(plan))
            yield from cur.fetch_record_batch()
        except (dbapi.Error, pa.ArrowException) as exc:  # the reader raises Arrow errors
            raise translate(exc, self.url) from exc

    def read_sql(self, plan: ReadPlan) -> str:
        """The SELECT :meth:`read` sends for ``plan``."""
        return select_sql(plan, extra=shape_checks(plan))

    def copy_spec(self, plan: ReadPlan, snapshot: str | None) -> CopySpec:
        """How a PostgreSQL target pulls this plan as raw binary COPY data."""
        table = plan.table
        whole = not plan.filters and plan.segment is None and not table.partitions
        whole = whole and not table.view and not plan.where and plan.limit is None
        query = None if whole else select_sql(plan, exprs=False)
        return CopySpec(
            conninfo(self.url), snapshot, plan.table.schema, plan.table.name, plan.columns, query
        )

    def close(self) -> None:
        """Close the connection; one the server already dropped has nothing to say."""
        with contextlib.suppress(Exception):
            self.conn.close()


def _adbc() -> Any:
    try:
        import adbc_driver_postgresql.dbapi as dbapi
    except ImportError as exc:
        raise MissingExtraError("adbc_driver_postgresql", "postgresql") from exc
    return dbapi


def _slices(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    """The driver's batch in pieces of at most ``rows`` rows (CommitRate; zero-copy)."""
    if batch.num_rows <= rows or rows <= 0:
        yield batch
        return
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


def _reject_shapes(plan: ReadPlan, raw: pa.RecordBatch, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Attach a rejection for each row whose array is not a plain list (see _BAD_ARRAY)."""
    found = []
    for i, name in enumerate(_arrays(plan)):
        flags = raw.column(len(plan.columns) + i)
        if pc.any(flags).as_py():
            found += [(row, name, _BAD_ARRAY) for row, bad in enumerate(flags.to_pylist()) if bad]
    return with_rejections(batch, read_rejections(batch) + found) if found else batch


def _begin(cur: Any, snapshot: str | None) -> None:
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    if snapshot:
        cur.execute(f"SET TRANSACTION SNAPSHOT {literal(snapshot)}")


def _column(array: pa.Array[Any], ctype: ColumnType) -> pa.Array[Any]:
    if isinstance(array.type, pa.ExtensionType):
        array = cast("pa.ExtensionArray[Any]", array).storage
    target = arrow_type(ctype)
    if array.type == target:
        return array
    return pc.cast(array, target)
