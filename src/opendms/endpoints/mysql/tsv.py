"""Arrow batch -> the tab-separated text ``LOAD DATA`` reads, built vectorised.

Escapes follow LOAD DATA's defaults (``\\`` escape, ``\\N`` for NULL), so every
string survives byte for byte. Binary columns travel hex-encoded and are
decoded with ``UNHEX`` in the LOAD statement.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendms.arrowutil import join_element_wise
from opendms.endpoints.mysql.values import is_time, is_year, time_of_day_text, time_text
from opendms.endpoints.pyvalues import python_values
from opendms.model import Column, Kind

_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\x00", "\\0"))


def escape(text: pa.Array[Any]) -> pa.Array[Any]:
    for old, new in _ESCAPES:
        text = pc.replace_substring(text, old, new)
    return text


def column_text(array: pa.Array[Any], col: Column) -> pa.Array[Any]:
    """One column as LOAD DATA text (NULL -> \\N)."""
    kind = col.type.kind
    text: pa.Array[Any]
    if kind is Kind.BOOL:
        text = pc.if_else(array, "1", "0")
    elif kind is Kind.TIMESTAMPTZ:
        text = pc.cast(pc.cast(array, pa.timestamp("us")), pa.string())
    elif kind is Kind.BINARY:
        text = pa.array([None if v is None else v.hex() for v in array.to_pylist()], pa.string())
    elif is_time(col.type):
        text = pa.array([time_text(v) for v in array.to_pylist()], pa.string())
    elif kind is Kind.TIME:
        text = time_of_day_text(array)
    elif is_year(col.type):
        text = pc.utf8_lpad(pc.cast(array, pa.string()), 4, "0")
    elif kind in (Kind.INTERVAL, Kind.ARRAY):
        text = escape(pa.array(python_values(array, col.type), pa.string()))
    elif kind in (Kind.STRING, Kind.JSON, Kind.ENUM, Kind.UUID):
        text = escape(array)
    elif kind is Kind.FLOAT32:
        # The float32 shortest form can round past FLT_MAX when MySQL parses it
        # as a double; the exact double text converts back to the same float.
        text = pc.cast(pc.cast(array, pa.float64()), pa.string())
    else:
        text = pc.cast(array, pa.string())
    return text.fill_null("\\N")


def batch_tsv(batch: pa.RecordBatch, columns: tuple[Column, ...]) -> bytes:
    """The whole batch as TSV bytes, one line per row."""
    texts = [column_text(batch.column(c.name), c) for c in columns]
    texts[-1] = join_element_wise(texts[-1], "\n", "")
    joined = join_element_wise(*texts, "\t") if len(texts) > 1 else texts[0]
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    offsets = joined.buffers()[1]
    data = joined.buffers()[2]
    if data is None:
        return b""
    first = pa.Array.from_buffers(pa.int32(), 1, [None, offsets], offset=joined.offset)[0].as_py()
    last = pa.Array.from_buffers(
        pa.int32(), 1, [None, offsets], offset=joined.offset + len(joined)
    )[0].as_py()
    return data.to_pybytes()[first:last]
