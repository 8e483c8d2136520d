"""PostgreSQL -> lake CDC: the lake's LOAD and I/U/D files replayed equal the source."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opendms.config import task_from_dict
from opendms.endpoints.lake.settings import lake_settings
from opendms.engine.task import run_task
from opendms.state import StateStore
from opendms.testing.lakereplay import lake_files, open_lake, replay

SETUP = """
CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric(12,2),
                       seen timestamptz, doc text);
INSERT INTO accounts SELECT g, 'name ' || g, g * 1.5,
  timestamptz '2024-01-01 00:00+00' + g * interval '1 hour', NULL
  FROM generate_series(1, 200) g;
"""
CHANGES = [
    "INSERT INTO accounts VALUES (201, 'new', 1.25, '2024-05-01 10:00+02', 'x')",
    "UPDATE accounts SET balance = balance + 1 WHERE id <= 10",
    "UPDATE accounts SET id = 1001 WHERE id = 20",  # key change
    "DELETE FROM accounts WHERE id BETWEEN 30 AND 39",
    "BEGIN; INSERT INTO accounts VALUES (202, 'tx', 2, NULL, NULL); "
    "UPDATE accounts SET name = 'in tx' WHERE id = 202; DELETE FROM accounts WHERE id = 1; COMMIT",
    "BEGIN; INSERT INTO accounts VALUES (203, 'rolled back', 0, NULL, NULL); ROLLBACK",
]
SETTINGS = "DataFormat=parquet;TimestampColumnName=ts;CdcMaxBatchInterval=1"


def _source_rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        cur = conn.execute("SELECT id, name, balance, seen, doc FROM accounts ORDER BY id")
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _run(source: str, lake: str, tmp_path: Path, settings: str) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    spec = task_from_dict(
        {
            "name": "lake",
            "source": source,
            "target": {"url": lake, "settings": settings},
            "migration_type": "full-load-and-cdc",
        },
        where="test",
    )
    run_task(spec, store)
    return store


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_pg_to_local_lake(pg_db: str, tmp_path: Path, fmt: str) -> None:
    settings = SETTINGS.replace("parquet", fmt) + (";AddColumnName=true" if fmt == "csv" else "")
    _scenario(pg_db, f"file://{tmp_path}/lake", tmp_path, settings)


def test_pg_to_s3_lake(pg_db: str, s3_url: str, tmp_path: Path) -> None:
    _scenario(pg_db, s3_url, tmp_path, SETTINGS)


def _scenario(source: str, lake: str, tmp_path: Path, settings: str) -> None:
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(SETUP)
    store = _run(source, lake, tmp_path, settings)
    with psycopg.connect(source, autocommit=True) as conn:
        for sql in CHANGES:
            conn.execute(sql)
    _run(source, lake, tmp_path, settings)
    parsed = lake_settings(dict(p.split("=") for p in settings.split(";")))
    storage = open_lake(lake)
    loads, changes = lake_files(storage, "public", "accounts")
    assert len(loads) == 1 and changes  # one LOAD file, then CDC files
    rows = replay(storage, "public", "accounts", ["id"], settings=parsed)
    rows.sort(key=lambda r: int(r["id"]))  # CSV values read back as text
    expected = _source_rows(source)
    assert len(rows) == len(expected) == 200 + 2 - 10 - 1
    for got, want in zip(rows, expected, strict=True):
        assert int(got["id"]) == want["id"]
        assert got["name"] == want["name"]
        assert Decimal(str(got["balance"])) == want["balance"]
        assert (got["doc"] or None) == want["doc"]
    counts = store.change_counts("lake")["public.accounts"]
    assert counts[:3] == (2, 12, 11)  # inserts, updates (incl. the key change), deletes
