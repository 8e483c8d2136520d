"""Checksums computed in the database: per key-range count and order-independent sum.

For PostgreSQL and MySQL/MariaDB sides every compared column becomes one text in SQL
(the same text on both engines for equal values: integers, decimals at the common
scale, dates, UTC timestamps with microseconds, booleans 1/0, lower-case UUIDs, hex
binary), each length-prefixed so the row text is unambiguous; the row's hash is the
first 60 bits of its MD5 and a segment's checksum is ``(count(*), sum(hash))``.

A text form that differs between the engines for equal values (a float's exponent
spelling, say) only makes a segment look different: such segments are compared row by
row afterwards, so the checksums can cost time but never hide a difference.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from opendms.endpoints import REGISTRY
from opendms.endpoints.base import EndpointURL
from opendms.errors import EndpointError
from opendms.model import ColumnType, Kind, Table

INTEGERS = (Kind.INT16, Kind.INT32, Kind.INT64)
Sums = dict[int, tuple[int, int]]


@dataclass(frozen=True)
class Dialect:
    name: str
    quote: Callable[[str], str]
    expr: Callable[[str, ColumnType, ColumnType, pa.DataType | None], str | None]
    part: Callable[[str], str]
    join: Callable[[list[str]], str]
    hash: Callable[[str], str]
    div: str


def _pg_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _my_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _pg_expr(c: str, own: ColumnType, hint: ColumnType, common: pa.DataType | None) -> str | None:
    if common is not None:
        dec: Any = common
        return f"({c})::numeric({dec.precision},{dec.scale})::text"
    kind = hint.kind
    if kind in INTEGERS and own.kind in INTEGERS:
        return f"{c}::text"
    if kind is Kind.BOOL:
        return f"{c}::int::text" if own.kind is Kind.BOOL else f"{c}::text"
    if kind in (Kind.STRING, Kind.ENUM) and not (hint.fixed or own.fixed):
        return f"{c}::text"
    if kind is Kind.UUID:
        return f"lower({c}::text)"
    if kind is Kind.DATE and own.kind is Kind.DATE:
        return f"to_char({c}, 'YYYY-MM-DD')"
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ) and own.kind in (
        Kind.TIMESTAMP,
        Kind.TIMESTAMPTZ,
    ):
        utc = f"{c} AT TIME ZONE 'UTC'" if own.kind is Kind.TIMESTAMPTZ else c
        return f"to_char({utc}, 'YYYY-MM-DD HH24:MI:SS.US')"
    if kind is Kind.FLOAT64 and own.kind is Kind.FLOAT64:
        return f"{c}::text"
    if kind is Kind.BINARY and own.kind is Kind.BINARY:
        return f"encode({c}, 'hex')"
    return None


def _my_expr(c: str, own: ColumnType, hint: ColumnType, common: pa.DataType | None) -> str | None:
    if common is not None:
        dec: Any = common
        if dec.precision > 65 or dec.scale > 30:
            return None
        return f"CAST(CAST({c} AS DECIMAL({dec.precision},{dec.scale})) AS CHAR)"
    kind = hint.kind
    if (kind in INTEGERS and own.kind in INTEGERS) or (kind is Kind.BOOL and own.kind is Kind.BOOL):
        return f"CAST({c} AS CHAR)"
    if kind is Kind.BOOL and own.kind in INTEGERS:
        return f"CAST({c} AS CHAR)"
    if kind in (Kind.STRING, Kind.ENUM) and not (hint.fixed or own.fixed):
        return c
    if kind is Kind.UUID:
        return f"LOWER({c})"
    if kind is Kind.DATE and own.kind is Kind.DATE:
        return f"DATE_FORMAT({c}, '%Y-%m-%d')"
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ) and own.kind in (
        Kind.TIMESTAMP,
        Kind.TIMESTAMPTZ,
    ):
        return f"DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')"  # the session is UTC
    if kind is Kind.FLOAT64 and own.kind is Kind.FLOAT64:
        return f"CAST({c} AS CHAR)"
    if kind is Kind.BINARY and own.kind is Kind.BINARY:
        return f"LOWER(HEX({c}))"
    return None


PG = Dialect(
    "postgres",
    _pg_quote,
    _pg_expr,
    lambda e: f"coalesce(length({e})::text || ':' || {e}, 'N')",
    lambda parts: " || '|' || ".join(parts),
    lambda row: f"('x' || substr(md5({row}), 1, 15))::bit(60)::bigint",
    "/",
)
MYSQL = Dialect(
    "mysql",
    _my_quote,
    _my_expr,
    lambda e: f"COALESCE(CONCAT(CHAR_LENGTH({e}), ':', {e}), 'N')",
    lambda parts: "CONCAT_WS('|', " + ", ".join(parts) + ")",
    lambda row: f"CAST(CONV(SUBSTR(MD5({row}), 1, 15), 16, 10) AS UNSIGNED)",
    "DIV",
)
_DIALECTS = {"opendms.endpoints.postgres": PG, "opendms.endpoints.mysql": MYSQL}


def dialect_of(url: EndpointURL) -> Dialect | None:
    engine = REGISTRY.get(url.scheme)
    return _DIALECTS.get(engine.module) if engine else None


class Checksums:
    """Checksum queries on one side: ``table`` with the compared ``columns``."""

    def __init__(
        self, url: EndpointURL, dialect: Dialect, table: Table, exprs: list[str], key: str
    ):
        self.url = url
        self.dialect = dialect
        q = dialect.quote
        self.relation = f"{q(table.schema)}.{q(table.name)}" if table.schema else q(table.name)
        self.key = q(key)
        row = dialect.join([dialect.part(e) for e in exprs])
        self.hash = dialect.hash(row)
        self.conn: Any = None

    def open(self) -> None:
        engine = REGISTRY[self.url.scheme].module
        self.conn = importlib.import_module(f"{engine}.conn").connect(self.url)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            cur = self.conn.cursor()
            try:
                cur.execute(sql)
                return list(cur.fetchall())
            finally:
                cur.close()
        except Exception as exc:  # driver errors: name the endpoint, never the password
            raise EndpointError(str(self.url), f"checksum query failed: {exc}") from exc

    def bounds(self) -> tuple[int | None, int | None, int]:
        row = self._query(f"SELECT min({self.key}), max({self.key}), count(*) FROM {self.relation}")
        lo, hi, count = row[0]
        return (None if lo is None else int(lo)), (None if hi is None else int(hi)), int(count)

    def segments(self, lo: int, hi: int, width: int) -> Sums:
        """(rows, hash sum) per segment ``(key - lo) // width`` of keys in [lo, hi]."""
        k, d = self.key, self.dialect.div
        sql = (
            f"SELECT ({k} - {lo}) {d} {width}, count(*), sum({self.hash}) FROM {self.relation} "
            f"WHERE {k} BETWEEN {lo} AND {hi} GROUP BY 1"
        )
        return {int(r[0]): (int(r[1]), int(r[2] or 0)) for r in self._query(sql)}


def column_exprs(
    dialect: Dialect,
    columns: tuple[str, ...],
    own: list[ColumnType],
    hints: list[ColumnType],
    common: list[pa.DataType | None],
) -> list[str] | None:
    """The SQL text of every column, or None when one has no engine-neutral form."""
    out = []
    for name, o, h, c in zip(columns, own, hints, common, strict=True):
        expr = dialect.expr(dialect.quote(name), o, h, c)
        if expr is None:
            return None
        out.append(expr)
    return out
