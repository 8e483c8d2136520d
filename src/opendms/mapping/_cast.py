"""Casting Arrow arrays to a target type without altering any value.

A cast that would overflow, truncate, round or fail to parse raises
:class:`~opendms.errors.DataError` naming the first offending row (by primary
key when the batch carries it, else by row index). Narrowing float casts and
decimal-to-float casts must cast back to the original value. Strings and
binaries longer than the target length are errors too, and so are times and
timestamps with more fractional-second digits than the target precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendms.errors import DataError
from opendms.model import ColumnType, Kind

RowLabel = Callable[[int], str]


def row_labeler(batch: pa.RecordBatch, key: tuple[str, ...]) -> RowLabel:
    """A function naming row ``i`` of ``batch`` by its key, or by index."""
    names = set(batch.schema.names)
    if not key or not all(k in names for k in key):
        return lambda i: f"index {i}"

    def label(i: int) -> str:
        return ", ".join(f"{k}={batch.column(k)[i].as_py()!r}" for k in key)

    return label


def convert(array: pa.Array[Any], to_type: pa.DataType) -> pa.Array[Any]:
    """Arrow's safe cast, with integers reaching decimals through a wide decimal.

    (Arrow refuses integer-to-decimal casts whose precision could not hold
    every integer of the source type, whatever the actual values are.) Intervals
    (MySQL TIME) reach times of day when they are one.
    """
    if pa.types.is_interval(array.type) and pa.types.is_time(to_type):
        return _time_of_day(array, to_type)
    if pa.types.is_integer(array.type) and isinstance(to_type, pa.Decimal128Type):
        array = pc.cast(array, pa.decimal128(38, to_type.scale))
    elif pa.types.is_integer(array.type) and isinstance(to_type, pa.Decimal256Type):
        array = pc.cast(array, pa.decimal256(76, to_type.scale))
    return pc.cast(array, to_type, safe=True)


_DAY_NS = 86_400_000_000_000


def _time_of_day(array: pa.Array[Any], to_type: pa.DataType) -> pa.Array[Any]:
    """Intervals (a MySQL TIME) as times of day; ArrowInvalid for one that is not."""
    unit = 1000 if getattr(to_type, "unit", "us") == "us" else 1
    ticks: list[int | None] = []
    for value in array.to_pylist():
        if value is None:
            ticks.append(None)
            continue
        nanos = value.nanoseconds
        if value.months or value.days or not 0 <= nanos < _DAY_NS or nanos % unit:
            raise pa.ArrowInvalid(f"{value} is not a time of day")
        ticks.append(nanos // unit)
    return pc.cast(pa.array(ticks, pa.int64()), to_type)


def _round_trip_altered(before: pa.Array[Any], after: pa.Array[Any]) -> Any:
    """Rows of ``after`` that do not cast back to exactly ``before`` (NaN stays NaN)."""
    old: Any = before  # the stubs type these kernels per concrete array class
    try:
        back: Any = pc.cast(after, before.type, safe=True)
    except pa.ArrowInvalid:
        # A value that no longer fits the source type (decimal(10,2) 99999999.99
        # is 1e8 as real4) was certainly altered; rows before it may be too.
        j = _first_failure(after, before.type)
        head = _round_trip_altered(before.slice(0, j), after.slice(0, j))
        tail = pa.array([True] + [False] * (len(before) - j - 1), pa.bool_())
        return pa.concat_arrays([head, tail])
    same = pc.equal(back, old)
    if pa.types.is_floating(before.type):
        same = pc.or_(same, pc.and_(pc.is_nan(old), pc.is_nan(back)))
    return pc.fill_null(pc.invert(same), False)


def _altered(before: pa.Array[Any], after: pa.Array[Any]) -> Any:
    """Rows a successful cast still altered (casts Arrow does not check), or None."""
    src, dst = before.type, after.type
    old: Any = before  # the stubs type these kernels per concrete array class
    new: Any = after
    if pa.types.is_floating(dst) and (
        pa.types.is_decimal(src) or (pa.types.is_floating(src) and dst.bit_width < src.bit_width)
    ):
        return _round_trip_altered(before, after)
    if (pa.types.is_floating(src) and pa.types.is_decimal(dst)) or (
        pa.types.is_timestamp(src) and pa.types.is_date(dst)
    ):
        return pc.fill_null(pc.not_equal(pc.cast(new, src), old), False)
    return None


def _fails(array: pa.Array[Any], to_type: pa.DataType) -> bool:
    try:
        convert(array, to_type)
    except pa.ArrowInvalid:
        return True
    return False


def _first_failure(array: pa.Array[Any], to_type: pa.DataType) -> int:
    """Index of the first element that does not cast (bisection over slices)."""
    lo, hi = 0, len(array)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fails(array.slice(lo, mid - lo), to_type):
            hi = mid
        else:
            lo = mid
    return lo


def cast_exact(
    array: pa.Array[Any],
    ctype: ColumnType,
    to_type: pa.DataType,
    *,
    table: str,
    column: str,
    label: RowLabel,
) -> pa.Array[Any]:
    """``array`` as ``to_type``; DataError when any value would change."""
    if array.type != to_type:
        try:
            result = convert(array, to_type)
        except pa.ArrowInvalid as exc:
            i = _first_failure(array, to_type)
            message = f"column {column}: value {array[i].as_py()!r} does not fit {ctype} ({exc})"
            raise DataError(table, message, row=label(i)) from exc
        altered = _altered(array, result)
        if altered is not None and pc.any(altered).as_py():
            i = pc.index(altered, True).as_py()
            before, after = array[i].as_py(), result[i].as_py()
            message = f"column {column}: value {before!r} would become {after!r} as {ctype}"
            raise DataError(table, message, row=label(i))
        array = result
    _check_length(array, ctype, table=table, column=column, label=label)
    _check_precision(array, ctype, table=table, column=column, label=label)
    return array


def _check_length(
    array: pa.Array[Any], ctype: ColumnType, *, table: str, column: str, label: RowLabel
) -> None:
    if ctype.length is None or ctype.kind not in (Kind.STRING, Kind.BINARY):
        return
    values: Any = array  # the stubs type these kernels per concrete array class
    lengths = pc.utf8_length(values) if ctype.kind is Kind.STRING else pc.binary_length(values)
    too_long = pc.greater(lengths, pa.scalar(ctype.length))
    if not pc.any(too_long).as_py():
        return
    i = pc.index(too_long, True).as_py()
    raise DataError(
        table,
        f"column {column}: value of length {lengths[i].as_py()} does not fit {ctype}",
        row=label(i),
    )


_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_FRACTIONAL_KINDS = (Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ)


def _check_precision(
    array: pa.Array[Any], ctype: ColumnType, *, table: str, column: str, label: RowLabel
) -> None:
    """Times and timestamps must not have digits beyond ``ctype.precision``.

    The Arrow type keeps every digit of its unit, so a target column of lower
    precision would round or truncate them: truncate here and compare.
    """
    if ctype.precision is None or ctype.kind not in _FRACTIONAL_KINDS:
        return
    digits = _UNIT_DIGITS.get(getattr(array.type, "unit", ""))
    if digits is None or ctype.precision >= digits:
        return
    step = 10 ** (digits - ctype.precision)
    ticks: Any = pc.cast(array, pa.int32() if array.type.bit_width == 32 else pa.int64())
    truncated = pc.multiply(pc.divide(ticks, step), step)  # division truncates toward 0
    extra = pc.fill_null(pc.not_equal(truncated, ticks), False)
    if not pc.any(extra).as_py():
        return
    i = pc.index(extra, True).as_py()
    p = ctype.precision
    message = f"column {column}: value {array[i].as_py()!r} does not fit {ctype}({p})"
    raise DataError(table, f"{message}: more than {p} fractional-second digits", row=label(i))
