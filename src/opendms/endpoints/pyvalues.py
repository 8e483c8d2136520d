"""Arrow columns to plain Python values for DB-API drivers (SQLite, fallbacks)."""

from __future__ import annotations

import json
import math
import re
from decimal import Context, Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendms.model import ColumnType, Kind


def iso_interval(value: Any) -> str | None:
    """ISO 8601 duration text for an Arrow month-day-nano interval."""
    if value is None:
        return None
    months, days, nanos = value.months, value.days, value.nanoseconds
    sign = "-" if nanos < 0 else ""
    secs, frac = divmod(abs(nanos), 1_000_000_000)
    out = f"P{months}M{days}DT{sign}{secs}"
    if frac:
        out += "." + f"{frac:09d}".rstrip("0")
    return out + "S"


_DURATION = re.compile(
    r"^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?$"
)


def parse_iso_interval(text: str) -> pa.MonthDayNano:
    """ISO 8601 duration text (as :func:`iso_interval` writes it) to a MonthDayNano."""
    m = _DURATION.match(text.strip())
    if not m or text.strip() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    y, mo, w, d, h, mi, s = m.groups()
    seconds = Decimal(s or 0) + int(h or 0) * 3600 + int(mi or 0) * 60
    months = int(y or 0) * 12 + int(mo or 0)
    fields = [months, int(w or 0) * 7 + int(d or 0), int(seconds * 1_000_000_000)]
    # The stubs declare a NamedTuple; at runtime MonthDayNano is built from one sequence.
    return pa.MonthDayNano(fields)  # type: ignore[call-arg, arg-type]


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def decimal_text(array: pa.Array[Any]) -> pa.Array[Any]:
    """Decimals as plain fixed-point text with exactly the column's scale.

    Arrow's decimal->string cast writes ``1E-10``, ``0E-10`` or ``-1.200E-7``; only
    arrays where it did are formatted again, value by value.
    """
    text = pc.cast(array, pa.string())
    if not pa.types.is_decimal(array.type) or not pc.any(pc.match_substring(text, "E")).as_py():
        return text
    exp, ctx = Decimal(1).scaleb(-array.type.scale), Context(prec=array.type.precision + 1)
    values = [
        None if d is None else format(d.quantize(exp, context=ctx), "f") for d in array.to_pylist()
    ]
    return pa.array(values, pa.string())


def python_values(array: pa.Array[Any] | pa.ChunkedArray[Any], ctype: ColumnType) -> list[Any]:
    """Values of ``array`` as the Python objects a text-oriented driver stores."""
    kind = ctype.kind
    if kind is Kind.DECIMAL:
        chunk = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        return decimal_text(chunk).to_pylist()
    if kind in (Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        return pc.cast(array, pa.string()).to_pylist()
    if kind is Kind.BOOL:
        return [None if v is None else int(v) for v in array.to_pylist()]
    if kind is Kind.INTERVAL:
        return [iso_interval(v) for v in array.to_pylist()]
    if kind is Kind.ARRAY:
        return [None if v is None else json.dumps(_jsonable(v)) for v in array.to_pylist()]
    return array.to_pylist()


def float_nan_rows(array: pa.Array[Any] | pa.ChunkedArray[Any]) -> list[int]:
    """Row indexes holding NaN (for targets that would turn NaN into NULL)."""
    mask = pc.is_nan(array)
    return [i for i, v in enumerate(mask.to_pylist()) if v]


def negative_zero_rows(array: pa.Array[Any] | pa.ChunkedArray[Any]) -> list[int]:
    """Row indexes holding -0.0 (for targets that would store it as 0.0)."""
    values: Any = array  # the stubs type these kernels per concrete array class
    zero = pc.fill_null(pc.equal(values, pa.scalar(0.0, values.type)), False)
    if not pc.any(zero).as_py():
        return []
    signs = values.to_pylist()
    return [i for i, z in enumerate(zero.to_pylist()) if z and math.copysign(1.0, signs[i]) < 0]


def day_end_rows(array: pa.Array[Any] | pa.ChunkedArray[Any]) -> list[int]:
    """Row indexes of times of day at or past 24:00:00 (PostgreSQL allows 24:00:00)."""
    micros: Any = pc.cast(array, pa.int64())  # the stubs type these kernels per array class
    late = pc.fill_null(pc.greater_equal(micros, pa.scalar(86_400_000_000)), False)
    if not pc.any(late).as_py():
        return []
    return [i for i, v in enumerate(late.to_pylist()) if v]
