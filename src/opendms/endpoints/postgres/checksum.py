"""How validation checksums PostgreSQL rows in the database (see
:mod:`opendms.validate.checksum`): each compared column as text, the row's MD5."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from opendms.endpoints.engine import ChecksumDialect
from opendms.model import ColumnType, Kind

INTEGERS = (Kind.INT16, Kind.INT32, Kind.INT64)


def _pg_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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


CHECKSUMS = ChecksumDialect(
    "postgres",
    _pg_quote,
    _pg_expr,
    lambda e: f"coalesce(length({e})::text || ':' || {e}, 'N')",
    lambda parts: " || '|' || ".join(parts),
    lambda row: f"('x' || substr(md5({row}), 1, 15))::bit(60)::bigint",
    "/",
)
