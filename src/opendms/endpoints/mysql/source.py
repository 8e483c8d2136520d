"""MySQL/MariaDB source: catalog via PyMySQL, rows via connectorx (Arrow stream)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendms.arrowutil import read_rejections, with_rejections
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.canonical import canonical_batch
from opendms.endpoints.mysql import catalog
from opendms.endpoints.mysql.conn import connect, cx_url, translate
from opendms.endpoints.mysql.values import time_array
from opendms.endpoints.sqlutil import limit_clause, where_clause
from opendms.errors import DataError, EndpointError, MissingExtraError
from opendms.model import ColumnType, Kind, ReadPlan, Table, TableRef, arrow_type


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


_DATED = (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ)
ZERO_DATE = "MySQL zero date (a zero month or day) has no value on other engines"


def _zero_date(col: str) -> str:
    """True for '0000-00-00' and dates with a zero month or day (allowed by some sql_modes)."""
    return f"(MONTH({col}) = 0 OR DAYOFMONTH({col}) = 0)"


def select_expr(name: str, ctype: ColumnType) -> str:
    """Read decimals and TIMEs as text (exact), bits as numbers, zero dates as NULL."""
    col = quote(name)
    if ctype.kind in (Kind.DECIMAL, Kind.INTERVAL):
        return f"CAST({col} AS CHAR)"
    if ctype.kind in (Kind.BOOL, Kind.INT64) and ctype.type_name is None:
        return f"{col} + 0" if ctype.kind is Kind.INT64 else f"{col} <> 0"
    if ctype.kind in _DATED:
        return f"CASE WHEN {_zero_date(col)} THEN NULL ELSE {col} END"
    return col


def dated_columns(plan: ReadPlan) -> list[str]:
    return [c for c in plan.columns if plan.table.column(c).type.kind in _DATED]


def select_sql(plan: ReadPlan) -> str:
    """SELECT for a plan; date columns add a flag column each marking zero dates."""
    table = plan.table
    exprs = [f"{select_expr(c, table.column(c).type)} AS {quote(c)}" for c in plan.columns]
    exprs += [f"COALESCE({_zero_date(quote(c))}, 0)" for c in dated_columns(plan)]
    cols = ", ".join(exprs)
    sql = f"SELECT {cols} FROM {quote(table.schema)}.{quote(table.name)}"
    if plan.segment is not None and plan.segment.partition is not None:
        sql += f" PARTITION ({quote(plan.segment.partition)})"
    return sql + where_clause(plan, quote, literal) + limit_clause(plan)


class MySQLSource:
    """Reads one MySQL/MariaDB server (one database when the URL names it)."""

    def __init__(self, url: EndpointURL) -> None:
        self.url = url
        self.conn = connect(url)

    def list_tables(self) -> list[TableRef]:
        return catalog.list_tables(self.conn, self.url.database)

    def list_views(self) -> list[TableRef]:
        return catalog.list_tables(self.conn, self.url.database, views=True)

    def describe(self, ref: TableRef) -> Table:
        return catalog.describe(self.conn, ref)

    @contextmanager
    def snapshot(self) -> Iterator[str | None]:
        yield None

    def snapshot_alive(self, snapshot: str) -> bool:
        return True  # no shared snapshot is ever handed out

    def read(self, plan: ReadPlan, snapshot: str | None) -> Iterator[pa.RecordBatch]:
        cx = _connectorx()
        types = [plan.table.column(c).type for c in plan.columns]
        try:
            reader = cx.read_sql(
                cx_url(self.url),
                self.read_sql(plan),
                return_type="arrow_stream",
                batch_size=plan.batch_rows,
                pre_execution_query=["SET time_zone = '+00:00'"],
            )
            dated = dated_columns(plan)
            for batch in reader:
                yield _with_zero_dates(canonical_batch(plan, types, batch, _column), batch, dated)
        except (DataError, EndpointError):
            raise
        except BaseException as exc:
            if type(exc).__name__ != "PanicException" and not isinstance(exc, RuntimeError):
                raise
            raise _read_error(exc, plan, self.url) from exc

    def read_sql(self, plan: ReadPlan) -> str:
        """The SELECT :meth:`read` sends for ``plan``."""
        return select_sql(plan)

    def close(self) -> None:
        """Close the connection; one the server already dropped has nothing to say."""
        with contextlib.suppress(Exception):
            self.conn.close()


def _connectorx() -> Any:
    try:
        import connectorx
    except ImportError as exc:
        raise MissingExtraError("connectorx", "mysql") from exc
    return connectorx


def _read_error(exc: BaseException, plan: ReadPlan, url: EndpointURL) -> Exception:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "convert" in text.lower() or "value" in text.lower():
        return DataError(plan.table.qualified, f"a value cannot be read: {text}")
    return translate(Exception(text), url)


def _with_zero_dates(out: pa.RecordBatch, raw: pa.RecordBatch, dated: list[str]) -> pa.RecordBatch:
    """Report rows holding zero dates (read as NULL) as data errors."""
    rejected = read_rejections(out)
    first = out.num_columns
    for i, name in enumerate(dated):
        flags = raw.column(first + i).to_pylist()
        rejected += [(row, name, ZERO_DATE) for row, flag in enumerate(flags) if flag]
    return with_rejections(out.replace_schema_metadata(None), rejected)


def _column(array: pa.Array[Any], ctype: ColumnType) -> pa.Array[Any]:
    target = arrow_type(ctype)
    if ctype.kind is Kind.INTERVAL:
        return time_array(array)
    if array.type == target:
        return array
    return pc.cast(array, target)
