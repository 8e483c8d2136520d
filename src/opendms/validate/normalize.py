"""One canonical text form per value, whatever engine the value was read from.

Both sides of a validation are read in the canonical Arrow form of their own column
types; :func:`canonical_text` turns each column into text that is equal exactly when
the values are equal for a migration: decimals without trailing-zero differences,
timestamps in UTC with microseconds, floats in their shortest repr, JSON with sorted
keys and no spaces, booleans 1/0, binary as hex. NULL stays NULL (distinct from ``''``).

The *source* column type (``hint``) chooses the rule, so a target that stores a value
in another type (a boolean in ``tinyint``, an array in JSON, an interval as text)
is compared in the source's terms.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from opendms.endpoints.pyvalues import decimal_text, iso_interval
from opendms.model import ColumnType, Kind

NULL = "\x00"  # NULL in a row text: no database text value holds NUL
SEP = "\x1f"

_INTEGERS = (Kind.INT16, Kind.INT32, Kind.INT64)
_TIMESTAMPS = (Kind.TIMESTAMP, Kind.TIMESTAMPTZ)


def canonical_text(
    array: pa.Array[Any], own: ColumnType, hint: ColumnType, common: pa.DataType | None = None
) -> pa.Array[Any]:
    """``array`` (of type ``own``) as canonical text under the rules of ``hint``;
    ``common``: the decimal type both sides of a decimal column are compared in."""
    if common is not None and (pa.types.is_decimal(array.type) or pa.types.is_integer(array.type)):
        return decimal_text(pc.cast(array, common))
    structured = _structured_text(array, own, hint)
    if structured is not None:
        return structured
    return _scalar_text(array, own, hint)


def _structured_text(
    array: pa.Array[Any], own: ColumnType, hint: ColumnType
) -> pa.Array[Any] | None:
    """JSON, arrays, binary, intervals, decimals and timestamps (None: another kind)."""
    kind = hint.kind
    if kind in (Kind.JSON, Kind.ARRAY):
        return _python(array, _json_text)
    if kind is Kind.BINARY or own.kind is Kind.BINARY:
        return _python(array, _hex)
    if kind is Kind.INTERVAL or own.kind is Kind.INTERVAL:
        return _python(array, _interval_text)
    if kind is Kind.DECIMAL:
        return _decimal(array)
    if kind in _TIMESTAMPS or own.kind in _TIMESTAMPS:
        return _timestamp(array)
    return None


_VIA: dict[Kind, pa.DataType] = {
    Kind.BOOL: pa.int8(),
    Kind.FLOAT32: pa.float32(),
    Kind.TIME: pa.time64("us"),
}


def _scalar_text(array: pa.Array[Any], own: ColumnType, hint: ColumnType) -> pa.Array[Any]:
    kind = hint.kind
    if kind in _VIA:
        return _as(array, _VIA[kind])
    if kind is Kind.UUID:
        return pc.utf8_lower(_as(array, pa.string()))
    text = _as(array, pa.string())
    if kind is Kind.STRING and (hint.fixed or own.fixed):
        return pc.utf8_rtrim(text, characters=" ")
    return text


def _as(array: pa.Array[Any], via: pa.DataType) -> pa.Array[Any]:
    if array.type != via:
        array = pc.cast(array, via)
    return pc.cast(array, pa.string())


def _timestamp(array: pa.Array[Any]) -> pa.Array[Any]:
    """UTC wall-clock text with microseconds (a zone-less value is taken as UTC)."""
    if pa.types.is_timestamp(array.type):
        return pc.cast(array.cast(pa.timestamp("us")), pa.string())
    return pc.cast(array, pa.string())


def _decimal(array: pa.Array[Any]) -> pa.Array[Any]:
    """Fixed-point text without trailing fractional zeros (1.50 and 1.5 are one value)."""
    if pa.types.is_decimal(array.type):
        text = decimal_text(array)
    elif pa.types.is_integer(array.type):
        return pc.cast(array, pa.string())
    else:
        return _python(array, _decimal_value)
    text = pc.replace_substring_regex(text, r"(\.\d*?)0+$", r"\1")
    text = pc.replace_substring_regex(text, r"\.$", "")
    return pc.replace_substring_regex(text, r"^-0$", "0")


def _python(array: pa.Array[Any], fn: Any) -> pa.Array[Any]:
    return pa.array([None if v is None else fn(v) for v in array.to_pylist()], pa.string())


def _decimal_value(value: Any) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(number)
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _hex(value: Any) -> str:
    return value.hex() if isinstance(value, bytes) else str(value).lower()


def _interval_text(value: Any) -> str:
    return value if isinstance(value, str) else str(iso_interval(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    text: str = json.dumps(
        _jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return text


def common_decimal(a: ColumnType, b: ColumnType) -> pa.DataType | None:
    """The decimal type holding both columns' values exactly (None: compare as text).

    At one scale, 1.5 and 1.50 print alike and 1.50 and 1.51 do not."""
    kinds = (Kind.DECIMAL, *_INTEGERS)
    if a.kind is not Kind.DECIMAL or b.kind not in kinds:
        return None
    if a.precision is None or (b.kind is Kind.DECIMAL and b.precision is None):
        return None
    scale = max(a.scale or 0, b.scale or 0 if b.kind is Kind.DECIMAL else 0)
    whole = max(a.precision - (a.scale or 0), (b.precision or 20) - (b.scale or 0))
    if whole + scale <= 38:
        return pa.decimal128(38, scale)
    if whole + scale <= 76:
        return pa.decimal256(76, scale)
    return None


def row_text(columns: list[pa.Array[Any]]) -> pa.Array[Any]:
    """One text per row: the canonical column texts joined, NULL marked."""
    filled: list[Any] = [pc.fill_null(c, pa.scalar(NULL)) for c in columns]
    if len(filled) == 1:
        return cast("pa.Array[Any]", filled[0])
    joined: Any = pc.binary_join_element_wise(*filled, SEP)
    return cast("pa.Array[Any]", joined)


def key_value(text: str | None, ctype: ColumnType) -> Any:
    """A key part as it goes into the failure's JSON key."""
    if text is not None and ctype.kind in _INTEGERS:
        return int(text)
    return text
