"""Small vectorised Arrow helpers shared by endpoints."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def join_element_wise(*strings: pa.Array[Any] | str | bytes) -> pa.Array[Any]:
    """``pc.binary_join_element_wise`` over arrays; the last argument is the separator.

    Arrow takes plain ``str``/``bytes`` operands; the stubs only accept Arrow
    scalars or arrays of one string type, so the kernel is called untyped.
    """
    kernel: Any = pc.binary_join_element_wise
    joined: pa.Array[Any] = kernel(*strings)
    return joined


def parse_time(text: pa.Array[Any]) -> pa.Array[Any]:
    """``HH:MM:SS[.ffffff]`` strings to time64[us] (Arrow has no direct cast)."""
    stamped = join_element_wise("1970-01-01 ", text, "")
    return pc.cast(pc.cast(stamped, pa.timestamp("us")), pa.time64("us"))


def parse_temporal(text: pa.Array[Any], target: pa.DataType) -> pa.Array[Any]:
    """ISO date / time / timestamp strings (``T`` or space separated) to ``target``."""
    if pa.types.is_time(target):
        return parse_time(text)
    return pc.cast(pc.replace_substring(text, "T", " ", max_replacements=1), target)


# PostgreSQL 'infinity' / '-infinity' dates and timestamps read through ADBC
# overflow into values far below the earliest instant PostgreSQL can store
# (4714-11-24 BC). No Arrow-fed target can hold them, so such rows are data errors.
PG_MIN_TIMESTAMP_US = -210866803200000000
PG_MIN_DATE_DAYS = -2440588


def infinite_rows(array: pa.Array[Any]) -> list[int]:
    """Rows of a date/timestamp array that carry a PostgreSQL infinity."""
    raw: pa.Array[Any]
    if pa.types.is_date32(array.type):
        raw, floor = array.cast(pa.int32()), PG_MIN_DATE_DAYS
    elif pa.types.is_timestamp(array.type):
        raw, floor = array.cast(pa.int64()), PG_MIN_TIMESTAMP_US
    else:
        return []
    below: Any = pc.less(raw, pa.scalar(floor))  # the stubs' fill_null rejects a bool fill
    mask = pc.fill_null(below, False)
    if not pc.any(mask).as_py():
        return []
    return [i for i, v in enumerate(mask.to_pylist()) if v]


REJECTIONS_KEY = b"opendms.rejections"
Converter = Callable[["pa.Array[Any]"], "pa.Array[Any]"]


def convert_rows(array: pa.Array[Any], convert: Converter) -> tuple[pa.Array[Any], list[int]]:
    """``convert(array)``; when that fails, convert value by value.

    Returns the converted array (NULL where a value could not be converted)
    and the indexes of those rows, so a source can report them as data errors
    instead of failing the whole batch, even when no value of the batch converts.
    Raises only when ``convert`` fails on an empty array too (a type mismatch).
    """
    bad_value = (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OverflowError)
    try:
        return convert(array), []
    except bad_value:
        pass
    target = convert(array.slice(0, 0)).type
    pieces: list[pa.Array[Any]] = []
    bad: list[int] = []
    for i in range(len(array)):
        try:
            pieces.append(convert(array.slice(i, 1)).cast(target))
        except bad_value:
            bad.append(i)
            pieces.append(pa.nulls(1, target))
    return pa.concat_arrays(pieces) if pieces else pa.nulls(0, target), bad


def with_rejections(batch: pa.RecordBatch, rejected: list[tuple[int, str, str]]) -> pa.RecordBatch:
    """Attach (row, column, reason) rejections found while reading to ``batch``."""
    if not rejected:
        return batch
    meta = dict(batch.schema.metadata or {})
    meta[REJECTIONS_KEY] = json.dumps(rejected).encode()
    return batch.replace_schema_metadata(meta)


def read_rejections(batch: pa.RecordBatch) -> list[tuple[int, str, str]]:
    """The rejections a source attached with :func:`with_rejections`."""
    raw = (batch.schema.metadata or {}).get(REJECTIONS_KEY)
    return [(int(r[0]), str(r[1]), str(r[2])) for r in json.loads(raw)] if raw else []
