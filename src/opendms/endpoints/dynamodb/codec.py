"""Canonical values as DynamoDB AttributeValues (the low-level client form,
``{"N": "12.50"}``) and back, and the size DynamoDB counts for an item.

By canonical kind (:class:`opendms.model.Kind`): integers, decimals and floats become
``N`` with their exact decimal digits (never through a binary float; no exponent), but
decimals of an unconstrained type or of a precision over 38 become ``S``, their exact
text (a DynamoDB number holds 38 digits); booleans ``BOOL``; binary ``B``; JSON an
``M``/``L`` document (numbers inside as ``N``, exactly); arrays ``L``; dates, times and
timestamps ISO 8601 text (``2021-03-01``, ``12:30:00.5``, ``2021-03-01T12:30:00``, with
``+00:00`` for a time zone); intervals ``P<months>M<days>DT<seconds>S``; text, enums and
UUIDs ``S``. NULL has no attribute. A value DynamoDB cannot hold (NaN or an infinity, a
number of more than 38 significant digits or out of DynamoDB's range) raises :class:`CodecError`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import pyarrow as pa

from opendms.model import ColumnType, Kind, arrow_type

__all__ = [
    "MAX_ITEM_BYTES",
    "CodecError",
    "decode",
    "encode",
    "item_size",
    "number_text",
    "text_of",
    "wide",
]

MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's limit on one item: attribute names and values."""
MAX_DIGITS = 38
_MAX_EXPONENT = 126  # DynamoDB: magnitudes from 1E-130 to 9.9...E+125
_MIN_EXPONENT = -130

AttributeValue = dict[str, Any]


class CodecError(ValueError):
    """A value DynamoDB cannot hold as it is (a data error of its row); ``column``: the
    column or attribute at fault, when one is."""

    def __init__(self, message: str, column: str = "") -> None:
        super().__init__(message)
        self.column = column


# -- numbers ----------------------------------------------------------------


def number_text(value: int | float | Decimal | str) -> str:
    """The exact decimal text of a number DynamoDB can hold (no exponent)."""
    if isinstance(value, bool):
        raise CodecError("a boolean is not a number")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CodecError(f"{value} cannot be stored as a DynamoDB number")
        number = Decimal(repr(value))  # the shortest text that reads back as this float
    else:
        number = _decimal(value)
    return _checked_text(number)


def _decimal(value: Decimal | str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise CodecError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise CodecError(f"{value} cannot be stored as a DynamoDB number")
    return number


def _checked_text(number: Decimal) -> str:
    if number.is_zero():
        return "0"
    digits = number.as_tuple().digits
    significant = len("".join(map(str, digits)).strip("0"))
    if significant > MAX_DIGITS:
        raise CodecError(
            f"{number} has {significant} significant digits; a DynamoDB number holds at most "
            f"{MAX_DIGITS} (map the column to a string attribute to keep it)"
        )
    magnitude = number.adjusted()
    if not _MIN_EXPONENT <= magnitude < _MAX_EXPONENT:
        raise CodecError(f"{number} is outside the range of a DynamoDB number")
    return format(number, "f")


# -- canonical value -> AttributeValue -----------------------------------------


def _seconds(delta: int) -> str:
    """Nanoseconds as exact decimal seconds."""
    return format(Decimal(delta).scaleb(-9).normalize(), "f")


def _interval(value: Any) -> str:
    months, days, nanos = value.months, value.days, value.nanoseconds
    return f"P{months}M{days}DT{_seconds(nanos)}S"


def _json_value(value: Any) -> AttributeValue:
    """A parsed JSON value as a DynamoDB document."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": number_text(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [_json_value(v) for v in value]}
    return {"M": {str(k): _json_value(v) for k, v in value.items()}}


def _json(value: Any) -> AttributeValue:
    try:
        parsed = json.loads(value, parse_float=Decimal) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise CodecError(f"not JSON: {exc.msg}") from None
    return _json_value(parsed)


def _number(value: Any) -> AttributeValue:
    return {"N": number_text(value)}


def _text(value: Any) -> AttributeValue:
    return {"S": str(value)}


def _iso(value: Any) -> AttributeValue:
    return {"S": value.isoformat()}


_ENCODERS: dict[Kind, Callable[[Any], AttributeValue]] = {
    Kind.BOOL: lambda v: {"BOOL": bool(v)},
    Kind.INT16: _number,
    Kind.INT32: _number,
    Kind.INT64: _number,
    Kind.FLOAT32: _number,
    Kind.FLOAT64: _number,
    Kind.DECIMAL: _number,
    Kind.STRING: _text,
    Kind.ENUM: _text,
    Kind.UUID: _text,
    Kind.BINARY: lambda v: {"B": bytes(v)},
    Kind.DATE: _iso,
    Kind.TIME: _iso,
    Kind.TIMESTAMP: _iso,
    Kind.TIMESTAMPTZ: _iso,
    Kind.INTERVAL: lambda v: {"S": _interval(v)},
    Kind.JSON: _json,
}


def wide(ctype: ColumnType) -> bool:
    """A decimal type that may hold more digits than a DynamoDB number (unconstrained, or
    a precision over 38): its values are ``S``, their exact text."""
    return ctype.kind is Kind.DECIMAL and (ctype.precision is None or ctype.precision > MAX_DIGITS)


def encode(ctype: ColumnType, value: Any) -> AttributeValue | None:
    """The AttributeValue of a canonical Python value of ``ctype`` (None for NULL)."""
    if value is None:
        return None
    if wide(ctype):
        return {"S": format(_decimal(value), "f")}
    if ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        element = ctype.element
        return {"L": [encode(element, v) or {"NULL": True} for v in value]}
    return _ENCODERS[ctype.kind](value)


def text_of(value: Any) -> str:
    """A value as a template puts it into text (``${col}``): numbers exactly, booleans
    ``true``/``false``, dates ISO 8601, binary as hex, NULL as nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return number_text(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, pa.MonthDayNano):
        return _interval(value)
    if isinstance(value, list):
        return json.dumps([json.loads(json.dumps(v, default=str)) for v in value])
    return str(value)


# -- AttributeValue -> canonical value -------------------------------------------

_INTERVAL = re.compile(r"P(-?\d+)M(-?\d+)DT(-?[\d.]+)S")


def _parse_interval(text: str) -> Any:
    found = _INTERVAL.fullmatch(text)
    if found is None:
        raise CodecError(f"{text!r} is not an interval")
    nanos = int(Decimal(found.group(3)).scaleb(9))
    # the stubs declare a NamedTuple; at runtime MonthDayNano is built from one sequence
    return pa.MonthDayNano([int(found.group(1)), int(found.group(2)), nanos])  # type: ignore[call-arg,arg-type]


def _plain(av: AttributeValue) -> Any:
    """A document as plain JSON values (numbers as Decimal)."""
    kind, inner = next(iter(av.items()))
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    if kind == "L":
        return [_plain(v) for v in inner]
    if kind == "N":
        return Decimal(inner)
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(inner).hex()
    return inner


def _json_text(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return int(obj) if obj == obj.to_integral_value() else float(obj)
        raise TypeError(type(obj).__name__)

    return json.dumps(value, default=default, ensure_ascii=False)


def _decoded_decimal(ctype: ColumnType, text: str) -> Any:
    number = Decimal(text)
    if pa.types.is_string(arrow_type(ctype)):
        return format(number, "f")
    with localcontext(prec=100):
        return number.quantize(Decimal(1).scaleb(-(ctype.scale or 0)))


_DECODERS: dict[Kind, Callable[[ColumnType, Any], Any]] = {
    Kind.INT16: lambda t, v: int(v),
    Kind.INT32: lambda t, v: int(v),
    Kind.INT64: lambda t, v: int(v),
    Kind.FLOAT32: lambda t, v: float(v),
    Kind.FLOAT64: lambda t, v: float(v),
    Kind.DECIMAL: _decoded_decimal,
    Kind.BINARY: lambda t, v: bytes(v),
    Kind.DATE: lambda t, v: dt.date.fromisoformat(v),
    Kind.TIME: lambda t, v: dt.time.fromisoformat(v),
    Kind.TIMESTAMP: lambda t, v: dt.datetime.fromisoformat(v),
    Kind.TIMESTAMPTZ: lambda t, v: dt.datetime.fromisoformat(v),
    Kind.INTERVAL: lambda t, v: _parse_interval(v),
}


def decode(ctype: ColumnType, av: AttributeValue | None) -> Any:
    """The canonical Python value of ``ctype`` an AttributeValue holds (read back)."""
    if av is None or "NULL" in av:
        return None
    if ctype.kind is Kind.JSON:
        return _json_text(_plain(av))
    inner = next(iter(av.values()))
    if ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        element = ctype.element
        return [decode(element, v) for v in inner]
    convert = _DECODERS.get(ctype.kind)
    return convert(ctype, inner) if convert else inner


# -- sizes ----------------------------------------------------------------------


def value_size(av: AttributeValue) -> int:
    """The bytes DynamoDB counts for one AttributeValue."""
    kind, inner = next(iter(av.items()))
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "B":
        return len(inner)
    if kind == "N":
        digits = len(inner.replace("-", "").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    return 1  # BOOL, NULL


def item_size(item: dict[str, AttributeValue]) -> int:
    """The bytes DynamoDB counts for an item: each attribute's name and value."""
    return sum(len(name.encode("utf-8")) + value_size(av) for name, av in item.items())
