"""How validation checksums MySQL/MariaDB rows in the database (see
:mod:`opendms.validate.checksum`): each compared column as text, the row's MD5."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from opendms.endpoints.engine import ChecksumDialect
from opendms.model import ColumnType, Kind

INTEGERS = (Kind.INT16, Kind.INT32, Kind.INT64)


def _my_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _my_expr(c: str, own: ColumnType, hint: ColumnType, common: pa.DataType | None) -> str | None:
    if common is not None:
        dec: Any = common
        if dec.precision > 65 or dec.scale > 30:
            return None
        return f"CAST(CAST({c} AS DECIMAL({dec.precision},{dec.scale})) AS CHAR)"
    kind = hint.kind
    if kind in (Kind.STRING, Kind.ENUM) and not (hint.fixed or own.fixed):
        return c
    if kind is Kind.UUID:
        return f"LOWER({c})"
    if kind is Kind.BOOL and own.kind in INTEGERS:
        return f"CAST({c} AS CHAR)"
    return _same_kind_expr(c, kind, own.kind)


def _same_kind_expr(c: str, kind: Kind, own: Kind) -> str | None:
    """The text of a column whose two sides are of one kind (None: not comparable here)."""
    if (kind in INTEGERS and own in INTEGERS) or (kind is own and kind in _AS_CHAR):
        return f"CAST({c} AS CHAR)"
    if kind is Kind.DATE and own is Kind.DATE:
        return f"DATE_FORMAT({c}, '%Y-%m-%d')"
    if kind in _TIMESTAMPS and own in _TIMESTAMPS:
        return f"DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')"  # the session is UTC
    if kind is Kind.BINARY and own is Kind.BINARY:
        return f"LOWER(HEX({c}))"
    return None


_AS_CHAR = (Kind.BOOL, Kind.FLOAT64)
_TIMESTAMPS = (Kind.TIMESTAMP, Kind.TIMESTAMPTZ)


CHECKSUMS = ChecksumDialect(
    "mysql",
    _my_quote,
    _my_expr,
    lambda e: f"COALESCE(CONCAT(CHAR_LENGTH({e}), ':', {e}), 'N')",
    lambda parts: "CONCAT_WS('|', " + ", ".join(parts) + ")",
    lambda row: f"CAST(CONV(SUBSTR(MD5({row}), 1, 15), 16, 10) AS UNSIGNED)",
    "DIV",
)
