"""Changes captured from a real SQLite source become change-record envelopes whose JSON
carries the rows exactly, validates against the JSON Schema and reads back equal."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import jsonschema

from opendms.changes import Position, Transaction
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.sqlite.changesource import SqliteChangeSource
from opendms.envelope import from_json, json_schema, record_id, records_of, to_arrow, to_json
from opendms.model import TableRef


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _drain(cap: SqliteChangeSource, start: Position) -> list[Transaction]:
    stop = threading.Event()
    out: list[Transaction] = []
    for txn in cap.stream(start, stop):
        if txn is not None:
            out.append(txn)
        if cap.caught_up():
            break
    return out


def test_captured_sqlite_changes_as_envelopes(tmp_path: Path) -> None:
    path = tmp_path / "src.db"
    with _connect(path) as conn:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price DECIMAL(10,2),"
            " raw BLOB, at DATETIME)"
        )
    cap = SqliteChangeSource(EndpointURL.parse(f"sqlite:///{path}"), "env")
    try:
        cap.prepare([TableRef("main", "items")])
        cap.old_rows = {("main", "items")}
        start = cap.start()[0]
        with _connect(path) as conn:
            conn.execute(
                "INSERT INTO items VALUES (1, 'one', '19.99', x'00ff', '2024-01-02 03:04:05')"
            )
        txns = _drain(cap, start)  # a SQLite Transaction is a chunk of the change table
        with _connect(path) as conn:
            conn.execute("BEGIN")
            conn.execute("UPDATE items SET id = 2, price = '0.50', raw = NULL WHERE id = 1")
            conn.execute("INSERT INTO items VALUES (3, 'three', NULL, x'', NULL)")
            conn.execute("DELETE FROM items WHERE id = 3")
            conn.execute("COMMIT")
        txns += _drain(cap, cap.parse_position(str(txns[-1].end)))
    finally:
        cap.close()
    assert len(txns) == 2
    records = [r for txn in txns for r in records_of(txn, lambda s, t: ("id",))]
    data = [to_json(r) for r in records]

    row1 = {
        "id": 1,
        "name": "one",
        "price": {"$decimal": "19.99"},
        "raw": {"$binary": "AP8="},
        "at": {"$timestamp": "2024-01-02T03:04:05"},
    }
    row2 = {**row1, "id": 2, "price": {"$decimal": "0.50"}, "raw": None}
    row3 = {"id": 3, "name": "three", "price": None, "raw": {"$binary": ""}, "at": None}
    assert [
        (d["op"], d["schema"], d["table"], d["key"], d["before"], d["after"], d["sequence"])
        for d in data
    ] == [
        ("I", "main", "items", {"id": 1}, None, row1, 0),
        ("U", "main", "items", {"id": 2}, row1, row2, 0),
        ("I", "main", "items", {"id": 3}, None, row3, 0),
        ("D", "main", "items", {"id": 3}, row3, None, 0),
    ]  # each SQLite change is its own position (sequence 0): see the ids below
    assert records[1].after is not None and records[1].after["price"] == Decimal("0.50")
    assert records[0].after is not None and records[0].after["at"] == datetime(2024, 1, 2, 3, 4, 5)

    # each change's own change-table seq as its position (the chunk's end is the last's);
    # one transaction id and commit time per chunk
    seqs = [int(d["position"]) for d in data]
    assert seqs == sorted(set(seqs)) and seqs[0] == int(str(txns[0].end))
    assert seqs[-1] == int(str(txns[1].end))
    assert [d["transaction_id"] for d in data] == [str(txns[0].xid)] + [str(txns[1].xid)] * 3
    for d in data:
        stamp = datetime.fromisoformat(d["commit_time"])
        assert stamp.tzinfo is not None and stamp.utcoffset() == UTC.utcoffset(None)
        assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60

    validator = jsonschema.Draft202012Validator(json_schema())
    assert [list(validator.iter_errors(d)) for d in data] == [[]] * 4
    assert [from_json(json.loads(json.dumps(d))) for d in data] == records
    ids = [record_id(r) for r in records]
    assert sorted(set(ids)) == ids
    batch = to_arrow(records)
    assert batch.column("op").to_pylist() == ["I", "U", "I", "D"]
    after = batch.column("after").to_pylist()
    assert [json.loads(t) for t in after[:3] if t is not None] == [row1, row2, row3]
    assert after[3] is None
