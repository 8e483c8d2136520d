"""PostgreSQL → NATS and Redis, full load and CDC with a SIGKILL mid-stream: a
PostgreSQL source gives each changed value's text form, and the targets' read-back
(validation's) folds and casts them into the same rows as the source's."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from opendms.endpoints import engine_for
from opendms.endpoints.base import EndpointURL
from opendms.model import Column, ColumnType, Kind, Table
from tests.integration.brokercdc import TASK, Run
from tests.support.sql import connect, query

TABLE = Table(
    "public",
    "items",
    (
        Column("id", ColumnType(Kind.INT64), nullable=False),
        Column("price", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
        Column("day", ColumnType(Kind.DATE)),
        Column("note", ColumnType(Kind.STRING)),
    ),
    primary_key=("id",),
)
NAMES = tuple(c.name for c in TABLE.columns)


def _write(url: str, first: int) -> None:
    conn = connect(url)
    try:
        for i in range(first, first + 20):
            query(
                conn, "INSERT INTO items VALUES (%s, %s, %s, %s)", (i, i * 1.5, "2024-03-01", "n")
            )
        query(
            conn,
            f"UPDATE items SET price = price + 1, note = 'u' WHERE id % 3 = 0 AND id >= {first}",
        )
        query(conn, f"DELETE FROM items WHERE id % 5 = 0 AND id >= {first}")
    finally:
        conn.close()


def _source_rows(url: str) -> list[dict[str, Any]]:
    conn = connect(url)
    try:
        rows = query(conn, "SELECT id, price, day, note FROM items ORDER BY id")
    finally:
        conn.close()
    return [dict(zip(NAMES, row, strict=True)) for row in rows]


@pytest.mark.parametrize("kind", ["nats", "redis"])
def test_pg_changes_read_back_as_the_source_rows(
    kind: str, pg_db: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    conn = connect(pg_db)
    try:
        query(
            conn,
            "CREATE TABLE items (id bigint PRIMARY KEY, price numeric(10,2), day date, note text)",
        )
        query(
            conn,
            "INSERT INTO items SELECT g, g * 0.5, DATE '2024-01-01' + g, 'x' "
            "FROM generate_series(1, 50) g",
        )
    finally:
        conn.close()
    url = str(request.getfixturevalue(f"{kind}_url"))
    run = Run(tmp_path, pg_db, url)
    proc = run.start()
    _write(pg_db, 100)
    run.kill(proc)
    _write(pg_db, 200)
    run.catch_up()
    parsed = EndpointURL.parse(url)
    reader = engine_for(parsed).table_rows(parsed, {}, TASK)
    assert reader is not None
    got = pa.Table.from_batches(list(reader.batches(TABLE, NAMES))).to_pylist()
    want = _source_rows(pg_db)
    assert sorted(got, key=lambda r: r["id"]) == want
    assert len(want) == 50 + 2 * 16  # the load's rows, two rounds of 20 inserts, 4 deletes
    assert want[-1] == {
        "id": 219,
        "price": Decimal("329.50"),
        "day": dt.date(2024, 3, 1),
        "note": "u",
    }
