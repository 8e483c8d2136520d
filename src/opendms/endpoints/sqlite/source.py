"""SQLite source: tables described by :mod:`.catalog`, rows read in batches into Arrow."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendms.arrowutil import parse_temporal, with_rejections
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.pyvalues import parse_iso_interval
from opendms.endpoints.sqlite import catalog
from opendms.endpoints.sqlite.catalog import quote as quote  # apply, target, capture import it here
from opendms.endpoints.sqlutil import limit_clause, where_clause
from opendms.errors import ConfigError
from opendms.model import ColumnType, Kind, ReadPlan, Table, TableRef, arrow_type

# Columns read as text (SQLite's date and time functions work on text).
_AS_TEXT = {Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ}
_STAMPS = (Kind.TIMESTAMP, Kind.TIMESTAMPTZ)
# A time of day followed by a zone: ``Z``, ``+05:00``, ``-0230`` (SQLite's own forms).
_ZONE = r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"
_ZONED = r"\d\d:\d\d(?::\d\d(?:\.\d+)?)?\s*" + _ZONE


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class SQLiteSource:
    """Reads tables of one SQLite database file."""

    def __init__(self, url: EndpointURL, path: str) -> None:
        self.url = url
        self.path = path
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    def list_tables(self) -> list[TableRef]:
        return catalog.list_tables(self.conn)

    def list_views(self) -> list[TableRef]:
        return catalog.list_views(self.conn)

    def describe(self, ref: TableRef) -> Table:
        return catalog.describe(self.conn, ref)

    @contextmanager
    def snapshot(self) -> Iterator[str | None]:
        yield None

    def snapshot_alive(self, snapshot: str) -> bool:
        return True  # no shared snapshot is ever handed out

    def read(self, plan: ReadPlan, snapshot: str | None) -> Iterator[pa.RecordBatch]:
        if plan.segment is not None and plan.segment.partition is not None:
            raise ConfigError(
                f"table {plan.table.qualified}: SQLite tables have no partitions; "
                "use parallel-load 'ranges' instead of 'partitions-list'",
                path="$.table_mappings",
            )
        types = [plan.table.column(c).type for c in plan.columns]
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            cur = conn.execute(self.read_sql(plan))
            while rows := cur.fetchmany(plan.batch_rows):
                yield _to_batch(plan, types, rows)
        finally:
            conn.close()

    def read_sql(self, plan: ReadPlan) -> str:
        """The SELECT :meth:`read` sends for ``plan``."""
        types = [plan.table.column(c).type for c in plan.columns]
        select = ", ".join(_select_expr(c, t) for c, t in zip(plan.columns, types, strict=True))
        where = where_clause(plan, quote, literal) + limit_clause(plan)
        return f"SELECT {select} FROM {quote(plan.table.name)}{where}"

    def close(self) -> None:
        self.conn.close()


def _select_expr(name: str, ctype: ColumnType) -> str:
    if ctype.kind in _AS_TEXT:
        return f"CAST({quote(name)} AS TEXT)"
    return quote(name)


_BAD_VALUE = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)


def _to_batch(plan: ReadPlan, types: list[ColumnType], rows: list[Any]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays, rejected = [], []
    for name, ctype, values in zip(plan.columns, types, columns, strict=True):
        try:
            arrays.append(_to_array(list(values), ctype))
            continue
        except _BAD_VALUE:
            pass
        array, bad = _values_one_by_one(list(values), ctype)
        arrays.append(array)
        rejected += [(row, name, f"value cannot be represented as {ctype}") for row in bad]
    batch = pa.RecordBatch.from_arrays(arrays, names=list(plan.columns))
    return with_rejections(batch, rejected)


def _values_one_by_one(values: list[Any], ctype: ColumnType) -> tuple[pa.Array[Any], list[int]]:
    """Convert value by value; NULL (and a reported row) where one does not fit."""
    good, bad = [], []
    for i, value in enumerate(values):
        try:
            _to_array([value], ctype)
            good.append(value)
        except _BAD_VALUE:
            bad.append(i)
            good.append(None)
    return _to_array(good, ctype), bad


def _to_array(values: list[Any], ctype: ColumnType) -> pa.Array[Any]:
    target = arrow_type(ctype)
    if ctype.kind in _STAMPS:
        return _timestamps(pa.array(values, pa.string()), target)
    if ctype.kind in _AS_TEXT:
        return parse_temporal(pa.array(values, pa.string()), target)
    if ctype.kind is Kind.DECIMAL:
        return pc.cast(pa.array([_decimal(v) for v in values], pa.string()), target)
    if ctype.kind in (Kind.STRING, Kind.JSON, Kind.UUID, Kind.ENUM):
        values = [v if v is None or isinstance(v, str) else _text(v) for v in values]
    if ctype.kind is Kind.BINARY:
        values = [v.encode() if isinstance(v, str) else v for v in values]
    elif ctype.kind is Kind.BOOL:
        values = [None if v is None else _bool(v) for v in values]
    elif ctype.kind is Kind.INTERVAL:
        values = [v if v is None else parse_iso_interval(str(v)) for v in values]
    elif ctype.kind is Kind.ARRAY:
        values = [v if v is None else json.loads(v) for v in values]
    return pa.array(values, target)


def _decimal(value: Any) -> str | None:
    """A stored number as exact decimal text: a REAL by the shortest text that reads back
    as the same double (``3.141592653589793``; SQLite's own text keeps 15 digits)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a decimal number")
        return format(Decimal(repr(value)), "f")
    if isinstance(value, int):
        return str(value)
    raise TypeError("a BLOB value in a decimal column")


def _timestamps(text: pa.Array[Any], target: pa.DataType) -> pa.Array[Any]:
    """SQLite date-time text as timestamps. Text with a zone (``Z``, ``+05:00``) is an
    instant and is taken to UTC, as SQLite's date functions do; text without one is UTC
    already (for ``timestamp`` columns: the wall-clock value as written)."""
    text = pc.replace_substring(text, "T", " ", max_replacements=1)
    zoned: Any = pc.match_substring_regex(text, _ZONED)  # the stubs reject a bool fill
    zoned = pc.fill_null(zoned, False)
    naive: Any
    if pc.any(zoned).as_py():
        text = pc.replace_substring_regex(text, r"\s+(" + _ZONE[:-1] + ")$", r"\1")
        plain = pc.cast(pc.if_else(zoned, None, text), pa.timestamp("us"))
        instants = pc.cast(pc.if_else(zoned, text, None), pa.timestamp("us", tz="UTC"))
        naive = pc.coalesce(plain, pc.cast(instants, pa.timestamp("us")))
    else:
        naive = pc.cast(text, pa.timestamp("us"))
    result: pa.Array[Any] = pc.cast(naive, target)
    return result


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _bool(value: Any) -> bool:
    """0/1 or boolean words (any case); anything else is not a boolean."""
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"not a boolean: {value!r}")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        raise TypeError("a BLOB value in a text column")
    return str(value)
