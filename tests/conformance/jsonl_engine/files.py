"""The folder of a ``jsonl://`` endpoint: a table is ``<schema>.<name>.jsonl`` (one JSON
object a row) beside ``<schema>.<name>.schema.json`` (its columns and key).

Values are stored in plain JSON: decimals as text, bytes as base64, dates and times in
ISO 8601, intervals as ``[months, days, nanoseconds]``; they are read back by each
column's canonical type.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from opendms.model import Column, ColumnType, Kind, Table, TableRef, arrow_type

Row = dict[str, Any]

_DECODE: dict[Kind, Callable[[Any], Any]] = {
    Kind.DECIMAL: Decimal,
    Kind.BINARY: base64.b64decode,
    Kind.DATE: dt.date.fromisoformat,
    Kind.TIME: dt.time.fromisoformat,
    Kind.TIMESTAMP: dt.datetime.fromisoformat,
    Kind.TIMESTAMPTZ: dt.datetime.fromisoformat,
    # the stubs declare a NamedTuple; at runtime MonthDayNano is built from one sequence
    Kind.INTERVAL: lambda v: pa.MonthDayNano(v),  # type: ignore[call-arg]
}
"""How a stored JSON value becomes the Python value of its kind (others: as stored)."""


def _encode(value: Any) -> Any:
    """``json.dumps`` default: what plain JSON cannot hold (tuples are lists already)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise TypeError(f"no JSON form for {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_encode, ensure_ascii=False)


def plain(value: Any) -> Any:
    """``value`` as it is stored (plain JSON types)."""
    return json.loads(dumps(value))


def decode(ctype: ColumnType, value: Any) -> Any:
    """A stored value as the Python value of ``ctype`` that Arrow takes."""
    if value is None:
        return None
    if ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        return [decode(ctype.element, v) for v in value]
    if pa.types.is_string(arrow_type(ctype)):
        return value  # text, and decimals beyond 76 digits kept as text
    convert = _DECODE.get(ctype.kind)
    return convert(value) if convert else value


class Folder:
    """The tables of one ``jsonl://`` folder."""

    def __init__(self, root: Path, fsync: bool = False) -> None:
        self.root, self.fsync = root, fsync

    def path(self, schema: str, name: str, suffix: str = ".jsonl") -> Path:
        return self.root / f"{TableRef(schema, name)}{suffix}"

    def tables(self) -> list[TableRef]:
        found = (p.name.removesuffix(".schema.json") for p in self.root.glob("*.schema.json"))
        return [TableRef(*n.split(".", 1)) if "." in n else TableRef("", n) for n in found]

    def save_schema(self, table: Table) -> None:
        cols = [
            {"name": c.name, "type": c.type.to_json(), "null": c.nullable} for c in table.columns
        ]
        text = json.dumps({"columns": cols, "key": list(table.primary_key)})
        self.replace(self.path(table.schema, table.name, ".schema.json"), [text])

    def load_schema(self, ref: TableRef) -> Table:
        data = json.loads(self.path(ref.schema, ref.name, ".schema.json").read_text())
        cols = (
            Column(c["name"], ColumnType.from_json(c["type"]), c["null"]) for c in data["columns"]
        )
        return Table(ref.schema, ref.name, tuple(cols), primary_key=tuple(data["key"]))

    def rows(self, schema: str, name: str) -> Iterator[Row]:
        """The stored rows of a table, in plain JSON form."""
        path = self.path(schema, name)
        if path.exists():
            with path.open(encoding="utf-8") as f:
                yield from (json.loads(line) for line in f)

    def append(self, schema: str, name: str, rows: Iterable[Row]) -> None:
        with self.path(schema, name).open("a", encoding="utf-8") as f:
            f.writelines(dumps(row) + "\n" for row in rows)
            self._sync(f.fileno())

    def replace(self, path: Path, lines: Iterable[str]) -> None:
        """Write ``path`` whole, atomically (a crash leaves the old file or the new)."""
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
            self._sync(f.fileno())
        os.replace(tmp, path)

    def drop(self, schema: str, name: str) -> None:
        for suffix in (".jsonl", ".schema.json"):
            self.path(schema, name, suffix).unlink(missing_ok=True)

    def _sync(self, fd: int) -> None:
        if self.fsync:
            os.fsync(fd)


def batch_rows(table: Table, columns: tuple[str, ...], rows: list[Row]) -> pa.RecordBatch:
    """Stored rows as one Arrow batch of ``columns`` of ``table``."""
    types = [table.column(name).type for name in columns]
    arrays = [
        pa.array([decode(t, r.get(n)) for r in rows], arrow_type(t))
        for n, t in zip(columns, types, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, names=list(columns))
