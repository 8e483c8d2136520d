"""MySQL value forms without a canonical Arrow twin, and exact DECIMAL checks.

- ``TIME`` is a signed duration (up to 838:59:59.999999 either way), carried as a
  month-day-nano interval with months and days 0: read from its text, written back
  as ``[-]H:MM:SS.ffffff``.
- ``YEAR`` travels as an integer and is written with four digits (``'0'`` would be
  read as 2000, ``'0000'`` is the year 0000); ``BIT(n)`` travels as an integer.
- Whether a decimal fits ``DECIMAL(M,D)`` is decided by counting its digits exactly
  (never through a rounding context): trailing fractional zeros are not digits MySQL
  needs, anything else beyond M-D integer or D fraction digits does not fit.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendms.endpoints.pyvalues import day_end_rows
from opendms.model import ColumnType, Kind

# MariaDB TIME range, either sign (MySQL stops at 838:59:59.000000 and refuses the rest)
MAX_TIME_US = ((838 * 60 + 59) * 60 + 59) * 1_000_000 + 999_999
_TIME = re.compile(r"^(-?)(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?$")


def fits_decimal(text: str, precision: int, scale: int) -> bool:
    """Whether the decimal number ``text`` fits ``DECIMAL(precision, scale)`` unchanged."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return False
    if not value.is_finite():
        return False
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    significant = "".join(map(str, digits)).lstrip("0")
    if not significant:
        return True  # zero, whatever its exponent
    kept = significant.rstrip("0")
    exponent += len(significant) - len(kept)
    fraction = max(-exponent, 0)
    whole = max(len(kept) + exponent, 0)
    return fraction <= scale and whole <= precision - scale


def decimal_misfits(array: pa.Array[Any], precision: int, scale: int) -> list[int]:
    """Rows of a decimal (or decimal text) array that do not fit ``DECIMAL(M,D)``."""
    kind = array.type
    whole = precision - scale
    if pa.types.is_decimal(kind) and kind.precision - kind.scale <= whole and kind.scale <= scale:
        return []  # every value of the Arrow type fits
    text = pc.cast(array, pa.string()) if pa.types.is_decimal(kind) else array
    return [
        i
        for i, v in enumerate(text.to_pylist())
        if v is not None and not fits_decimal(str(v), precision, scale)
    ]


def is_time(ctype: ColumnType) -> bool:
    """An interval column a MySQL target creates as its source's TIME."""
    return ctype.kind is Kind.INTERVAL and (ctype.native or "").lower().startswith("time")


def is_bit(ctype: ColumnType) -> bool:
    return (ctype.native or "").lower().startswith("bit")


def is_year(ctype: ColumnType) -> bool:
    return (ctype.native or "").lower().startswith("year")


def parse_time(text: str) -> pa.MonthDayNano:
    """MySQL TIME text (``-838:59:59.000000`` ...) as an interval of nanoseconds."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"not a MySQL TIME: {text!r}")
    sign, hours, minutes, seconds, fraction = m.groups()
    micros = ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1_000_000
    micros += int((fraction or "0").ljust(6, "0"))
    return time_interval(-micros if sign else micros)


def time_interval(micros: int) -> pa.MonthDayNano:
    """A MySQL TIME of ``micros`` microseconds as a month-day-nano interval."""
    # The stubs declare a NamedTuple; at runtime MonthDayNano is built from one sequence.
    return pa.MonthDayNano([0, 0, micros * 1000])  # type: ignore[call-arg, arg-type]


def time_array(text: pa.Array[Any]) -> pa.Array[Any]:
    """A column of MySQL TIME text as month-day-nano intervals (ValueError if one is not)."""
    values = [None if v is None else parse_time(v) for v in text.to_pylist()]
    return pa.array(values, pa.month_day_nano_interval())


def time_text(value: Any) -> str | None:
    """An interval as MySQL TIME text (``[-]H:MM:SS.ffffff``)."""
    if value is None:
        return None
    micros = value.nanoseconds // 1000
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{sign}{hours}:{minute:02d}:{second:02d}.{fraction:06d}"


def interval_misfits(array: pa.Array[Any], ctype: ColumnType) -> list[tuple[int, str]]:
    """Rows of an interval array a MySQL TIME column of ``ctype`` cannot hold."""
    if not is_time(ctype):
        return []
    out = []
    for i, v in enumerate(array.to_pylist()):
        if v is None:
            continue
        if v.months or v.days or v.nanoseconds % 1000 or abs(v.nanoseconds) > MAX_TIME_US * 1000:
            out.append((i, "outside TIME (-838:59:59.999999 .. 838:59:59.999999, microseconds)"))
    return out


def time_of_day_text(array: pa.Array[Any]) -> pa.Array[Any]:
    """Times of day as MySQL TIME text, PostgreSQL's ``24:00:00`` included (Arrow's own
    text form has no clock for it)."""
    text = pc.cast(array, pa.string())
    late = set(day_end_rows(array))
    if not late:
        return text
    micros = pc.cast(array, pa.int64()).to_pylist()
    clock = text.to_pylist()
    for i in late:
        clock[i] = time_text(time_interval(int(micros[i] or 0)))
    return pa.array(clock, pa.string())
