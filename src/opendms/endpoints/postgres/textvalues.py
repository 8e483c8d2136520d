"""PostgreSQL text forms (as pgoutput sends them) to opendms's canonical Python form.

Changes from a PostgreSQL source carry the server's text output. A PostgreSQL
target takes that text as it is (with casts); any other target gets the
canonical Python form: the values ``pa.array(values, arrow_type(ctype))``
accepts, i.e. what the full load would have carried for the same column. The
replication connection runs with ``DateStyle=ISO``, ``IntervalStyle=iso_8601``,
``TimeZone=UTC`` and ``extra_float_digits=3`` so the text is unambiguous and exact.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from opendms.endpoints.pyvalues import parse_iso_interval
from opendms.model import ColumnType, Kind, arrow_type

Convert = Callable[[str], Any]

SESSION_OPTIONS = (
    "-c DateStyle=ISO -c IntervalStyle=iso_8601 -c TimeZone=UTC -c extra_float_digits=3"
)


def _bool(text: str) -> bool:
    return text == "t"


def _binary(text: str) -> bytes:
    if not text.startswith("\\x"):
        raise ValueError("bytea text is not in hex form")
    return bytes.fromhex(text[2:])


def _finite(parse: Callable[[str], Any]) -> Convert:
    def convert(text: str) -> Any:
        if text in ("infinity", "-infinity") or text.endswith(" BC"):
            raise ValueError(f"{text!r} is outside the range the target types can carry")
        return parse(text)

    return convert


def _timestamptz(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} cannot be carried as a decimal")
    return value


_SIMPLE: dict[Kind, Convert] = {
    Kind.BOOL: _bool,
    Kind.INT16: int,
    Kind.INT32: int,
    Kind.INT64: int,
    Kind.FLOAT32: float,
    Kind.FLOAT64: float,
    Kind.STRING: str,
    Kind.JSON: str,
    Kind.UUID: str,
    Kind.ENUM: str,
    Kind.BINARY: _binary,
    Kind.DATE: _finite(date.fromisoformat),
    Kind.TIME: time.fromisoformat,
    Kind.TIMESTAMP: _finite(datetime.fromisoformat),
    Kind.TIMESTAMPTZ: _finite(_timestamptz),
    Kind.INTERVAL: parse_iso_interval,
}


def converter(ctype: ColumnType) -> Convert:
    """The function turning one non-NULL text value of ``ctype`` into Python form."""
    if ctype.kind is Kind.DECIMAL:
        return str if arrow_type(ctype) == arrow_type(ColumnType(Kind.STRING)) else _decimal
    if ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        element = converter(ctype.element)
        return lambda text: [None if v is None else element(v) for v in parse_array(text)]
    return _SIMPLE[ctype.kind]


def parse_array(text: str) -> list[str | None]:
    """Elements of a one-dimensional PostgreSQL array literal (``{a,"b c",NULL}``)."""
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(f"not an array literal: {text[:40]!r}")
    body = text[1:-1]
    if body.startswith("{"):
        raise ValueError("a multi-dimensional array cannot be represented as a list")
    out: list[str | None] = []
    pos = 0
    while pos < len(body):
        value, pos = _element(body, pos)
        out.append(value)
        pos += 1  # the comma
    return out


def _element(body: str, pos: int) -> tuple[str | None, int]:
    if body[pos] != '"':
        end = body.find(",", pos)
        end = len(body) if end < 0 else end
        raw = body[pos:end]
        return (None if raw == "NULL" else raw), end
    chars: list[str] = []
    pos += 1
    while body[pos] != '"':
        if body[pos] == "\\":
            pos += 1
        chars.append(body[pos])
        pos += 1
    return "".join(chars), pos + 1
