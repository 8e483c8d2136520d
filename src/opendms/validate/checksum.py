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

from typing import Any

import pyarrow as pa

from opendms.endpoints import engine_for
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.engine import ChecksumDialect
from opendms.errors import EndpointError
from opendms.model import ColumnType, Kind, Table

INTEGERS = (Kind.INT16, Kind.INT32, Kind.INT64)
Sums = dict[int, tuple[int, int]]


Dialect = ChecksumDialect


def dialect_of(url: EndpointURL) -> Dialect | None:
    """How ``url``'s engine checksums rows in the database, or None when it cannot."""
    return engine_for(url).checksum_dialect()


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
        self.conn = engine_for(self.url).connect(self.url)

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
