"""A full load through the CLI (``opendms task run``) from SQLite into the jsonl engine."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from click.testing import CliRunner

from opendms.cli.main import cli
from opendms.endpoints.base import EndpointURL
from opendms.model import TableRef
from tests.conformance.jsonl_engine.engine import ENGINE
from tests.conformance.jsonl_engine.files import Folder

SCHEMA = """CREATE TABLE items (
    id INTEGER PRIMARY KEY, name TEXT, price DECIMAL(10,2), weight REAL, data BLOB,
    born DATE, seen DATETIME, n INTEGER)"""
ROWS: list[tuple[Any, ...]] = [
    (1, "plain", "12.50", 1.5, b"\x00\x01\xff", "2024-02-29", "2024-02-29 23:59:59", 7),
    (2, 'héllo 😀 "q" \\ \n tab\t', "-0.01", -2.25, b"", "1999-12-31", None, -(2**62)),
    (3, None, None, None, None, None, None, None),
]
EXPECTED = [
    (1, "plain", Decimal("12.50"), 1.5, b"\x00\x01\xff", dt.date(2024, 2, 29),
     dt.datetime(2024, 2, 29, 23, 59, 59), 7),
    (2, "héllo 😀 \"q\" \\ \n tab\t", Decimal("-0.01"), -2.25, b"", dt.date(1999, 12, 31),
     None, -(2**62)),
    (3, None, None, None, None, None, None, None),
]  # fmt: skip


def _source(path: Path) -> str:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(SCHEMA)
        conn.executemany(f"INSERT INTO items VALUES ({', '.join('?' * 8)})", ROWS)
    conn.close()
    return f"sqlite:///{path}"


def _read(url: str) -> list[tuple[Any, ...]]:
    """The target table's rows as validation reads them (the engine's table_rows)."""
    parsed = EndpointURL.parse(url)
    table = Folder(Path(parsed.path), False).load_schema(TableRef("main", "items"))
    reader = ENGINE.table_rows(parsed, {})
    batches = list(reader.batches(table, tuple(c.name for c in table.columns)))
    rows = pa.Table.from_batches(batches).sort_by("id").to_pylist()
    return [tuple(row.values()) for row in rows]


def test_a_full_load_from_sqlite_lands_value_by_value(tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    target = f"jsonl://{tmp_path}/folder"
    spec = {"name": "to-jsonl", "source": _source(tmp_path / "src.db"), "target": target}
    task.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        cli, ["--state", str(tmp_path / "state.db"), "task", "run", str(task)]
    )
    assert result.exit_code == 0, result.output
    assert _read(target) == EXPECTED
    stored = [json.loads(line) for line in (tmp_path / "folder" / "main.items.jsonl").open()]
    assert min(stored, key=lambda row: int(row["id"])) == {  # the file holds plain JSON
        "id": 1, "name": "plain", "price": "12.50", "weight": 1.5, "data": "AAH/",
        "born": "2024-02-29", "seen": "2024-02-29T23:59:59", "n": 7,
    }  # fmt: skip
