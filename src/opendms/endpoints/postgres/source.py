"""PostgreSQL source: catalog via psycopg, rows via ADBC (binary COPY -> Arrow).

All readers of a full load run under one exported snapshot, so parallel
segments see the same data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.canonical import canonical_batch
from opendms.endpoints.postgres import catalog
from opendms.endpoints.postgres.conn import connect, conninfo, translate
from opendms.endpoints.postgres.fastcopy import CopySpec
from opendms.endpoints.postgres.types import quote_ident
from opendms.endpoints.sqlutil import where_clause
from opendms.errors import MissingExtraError
from opendms.model import ColumnType, Kind, ReadPlan, Table, TableRef, arrow_type

# Kinds read as text and rebuilt in Arrow (exact digits; no driver extension types).
_TEXT_KINDS = {Kind.DECIMAL, Kind.UUID, Kind.JSON, Kind.ENUM}


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


def select_sql(plan: ReadPlan, exprs: bool = True) -> str:
    """SELECT for one plan (segment, partition and filters applied)."""
    table = plan.table
    cols = [select_expr(c, table.column(c).type) if exprs else quote_ident(c) for c in plan.columns]
    source = catalog.regclass(TableRef(table.schema, table.name))
    if plan.segment is not None and plan.segment.partition:
        source = plan.segment.partition
    return f"SELECT {', '.join(cols)} FROM {source}" + where_clause(plan, quote_ident, literal)


class PostgresSource:
    """Reads one PostgreSQL database."""

    def __init__(self, url: EndpointURL) -> None:
        self.url = url
        self.conn = connect(url)

    def list_tables(self) -> list[TableRef]:
        return catalog.list_tables(self.conn)

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
            conn.rollback()
            conn.close()

    def read(self, plan: ReadPlan, snapshot: str | None) -> Iterator[pa.RecordBatch]:
        dbapi = _adbc()
        types = [plan.table.column(c).type for c in plan.columns]
        try:
            conn = dbapi.connect(conninfo(self.url))
        except Exception as exc:
            raise translate(exc, self.url) from exc
        try:
            cur = conn.cursor()
            _begin(cur, snapshot)
            cur.execute(select_sql(plan))
            for batch in cur.fetch_record_batch():
                yield canonical_batch(plan, types, batch, _column)
        finally:
            conn.close()

    def copy_spec(self, plan: ReadPlan, snapshot: str | None) -> CopySpec:
        """How a PostgreSQL target pulls this plan as raw binary COPY data."""
        whole = not plan.filters and plan.segment is None and not plan.table.partitions
        query = None if whole else select_sql(plan, exprs=False)
        return CopySpec(
            conninfo(self.url), snapshot, plan.table.schema, plan.table.name, plan.columns, query
        )

    def close(self) -> None:
        self.conn.close()


def _adbc() -> Any:
    try:
        import adbc_driver_postgresql.dbapi as dbapi
    except ImportError as exc:
        raise MissingExtraError("adbc_driver_postgresql", "postgresql") from exc
    return dbapi


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
