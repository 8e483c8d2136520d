"""Source filters (DMS selection-rule ``filters``) on rows of canonical Python values:
conditions on one column are ORed, columns are ANDed, a comparison with NULL is not true.
The CDC transformer and sources that filter decoded rows themselves (DynamoDB) use it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from opendms.errors import DataError
from opendms.model import ColumnType, FilterGroup, Kind, Table, arrow_type

__all__ = ["passes"]


def passes(groups: tuple[FilterGroup, ...], row: dict[str, Any], table: Table) -> bool:
    """DMS filter semantics: conditions on one column are ORed, columns are ANDed."""
    for group in groups:
        value = row.get(group.column)
        parse = _parser(table.column(group.column).type)
        if not any(_holds(f.op, value, [parse(v) for v in f.values]) for f in group.conditions):
            return False
    return True


def _holds(op: str, value: Any, operands: list[Any]) -> bool:
    if op == "null":
        return value is None
    if op == "notnull":
        return value is not None
    if value is None:
        return False  # SQL: a comparison with NULL is not true
    if op == "eq":
        return bool(value == operands[0])
    if op == "noteq":
        return bool(value != operands[0])
    if op == "gte":
        return bool(value >= operands[0])
    if op == "lte":
        return bool(value <= operands[0])
    if op == "between":
        return bool(operands[0] <= value <= operands[1])
    if op == "notbetween":
        return not operands[0] <= value <= operands[1]
    raise DataError("filter", f"unknown filter operator {op!r}")


def _parser(ctype: ColumnType) -> Callable[[str], Any]:
    kind = ctype.kind
    if kind in (Kind.INT16, Kind.INT32, Kind.INT64):
        return int
    if kind in (Kind.FLOAT32, Kind.FLOAT64):
        return float
    if kind is Kind.DECIMAL and arrow_type(ctype) != pa.string():
        return _decimal
    if kind is Kind.DATE:
        return date.fromisoformat
    if kind is Kind.TIMESTAMP:
        return datetime.fromisoformat
    if kind is Kind.TIMESTAMPTZ:
        return _aware
    if kind is Kind.BOOL:
        return lambda text: text.strip().lower() in ("1", "t", "true", "y", "yes")
    return str


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise DataError("filter", f"filter value {text!r} is not a number") from None
