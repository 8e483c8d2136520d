"""A query's answer written as CSV, JSON lines or Parquet.

CSV and JSON lines keep values exact: decimals with every digit (JSON numbers),
timestamps in ISO 8601 with their offset, binary as base64 text, lists and JSON
columns as JSON text in CSV. Parquet keeps the Arrow types.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["FORMATS", "cell_text", "write"]

FORMATS = ("table", "csv", "jsonl", "parquet")


def write(table: pa.Table, fmt: str, out: IO[bytes]) -> None:
    """Write ``table`` to the binary stream ``out`` as ``fmt`` (csv, jsonl, parquet)."""
    writers: dict[str, Callable[[pa.Table, IO[bytes]], None]] = {
        "csv": _csv,
        "jsonl": _jsonl,
        "parquet": _parquet,
    }
    writers[fmt](table, out)


def _parquet(table: pa.Table, out: IO[bytes]) -> None:
    pq.write_table(table, out)


def _csv(table: pa.Table, out: IO[bytes]) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(table.column_names)
    for batch in table.to_batches():
        for row in batch.to_pylist():
            writer.writerow(["" if v is None else cell_text(v) for v in row.values()])
    text.flush()
    text.detach()


def _jsonl(table: pa.Table, out: IO[bytes]) -> None:
    for batch in table.to_batches():
        for row in batch.to_pylist():
            fields = (f"{json.dumps(k)}:{_json(v)}" for k, v in row.items())
            out.write(("{" + ",".join(fields) + "}\n").encode())


def cell_text(value: Any) -> str:
    """One value as text (CSV cells, the terminal table)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | list | dict):
        return _json(value) if not isinstance(value, bytes) else _base64(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> str:
    """JSON text of one value; a decimal is a number with exactly its digits."""
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, bool | int | float | str) or value is None:
        return json.dumps(value)
    if isinstance(value, bytes):
        return json.dumps(_base64(value))
    if isinstance(value, list):
        return "[" + ",".join(_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, timedelta):
        return json.dumps(str(value))
    return json.dumps(cell_text(value))


def json_value(value: Any) -> Any:
    """One value as a JSON document built by another library holds it: an exact decimal
    as text with its digits (a float would round it), binary as base64, times in ISO."""
    if isinstance(value, Decimal):
        return str(value)
    return json.loads(_json(value))


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode()
