"""PostgreSQL -> lake CDC: the lake's LOAD and I/U/D files, read by the independent
reader (:mod:`tests.oracles.lake`), hold the changes' exact Ops in commit order and,
folded strictly by Op, equal the source read back with plain SQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opendms.config import task_from_dict
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.oracles.lake import NOT_SENT, read_lake

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
# the CDC rows CHANGES make, in commit order: (Op, id); PostgreSQL's default replica
# identity sends the key of a delete, and a key change is D (old key) then U (new row)
OPS = [
    ("I", 201),
    *(("U", i) for i in range(1, 11)),
    ("D", 20),
    ("U", 1001),
    *(("D", i) for i in range(30, 40)),
    ("I", 202),
    ("U", 202),
    ("D", 1),
]
PARSE: dict[str, Callable[[str], Any]] = {
    "id": int,
    "balance": Decimal,
    "seen": datetime.fromisoformat,
}


def _source_rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        cur = conn.execute("SELECT id, name, balance, seen, doc FROM accounts ORDER BY id")
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _run(source: str, lake: str, tmp_path: Path, settings: str | dict[str, Any]) -> StateStore:
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
    accounts = read_lake(lake, settings, keys=["id"], parse=PARSE)["public.accounts"]
    assert len(accounts.loads) == 1 and accounts.cdc  # one LOAD file, then CDC files
    assert len(accounts.load_rows) == 200
    assert accounts.op_rows("id") == OPS
    deleted = [c.row for c in accounts.changes if c.op == "D"]
    assert all(set(r.values()) - {r["id"]} == {None} for r in deleted)  # the key alone
    expected = _source_rows(source)
    assert len(expected) == 200 + 2 - 10 - 1
    assert accounts.rows == expected
    counts = store.change_counts("lake")["public.accounts"]
    assert counts[:3] == (2, 12, 11)  # inserts, updates (incl. the key change), deletes


TOAST_SETUP = """
CREATE TABLE docs (id int PRIMARY KEY, n int, body text);
INSERT INTO docs SELECT g, g, (SELECT string_agg(md5(random()::text || i || g), '')
  FROM generate_series(1, 300) i) FROM generate_series(1, 2) g;
"""


@pytest.mark.parametrize(
    "settings",
    [
        "CdcMaxBatchInterval=1;useCsvNoSupValue=true;csvNoSupValue=NOSUP",
        {"CdcMaxBatchInterval": 1, "UseCsvNoSupValue": True, "CsvNoSupValue": "NOSUP"},
        "CdcMaxBatchInterval=1",
    ],
    ids=["eca", "json", "without"],
)
def test_pg_unchanged_toast_value_in_csv_cdc(
    pg_db: str, tmp_path: Path, settings: str | dict[str, Any]
) -> None:
    """An update of another column of a row whose TOASTed text (about 10 KB of random
    hex, stored out of line) PostgreSQL does not send under the default replica identity:
    with UseCsvNoSupValue and CsvNoSupValue the CSV CDC row holds the marker there,
    unquoted, and folded (the row keeps its value) the lake equals the source; without
    them the row holds NULL."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(TOAST_SETUP)
        outside = conn.execute(
            "SELECT pg_column_size(body) < length(body) / 2 FROM docs WHERE id = 1"
        ).fetchone()
    assert outside == (False,)  # random hex barely compresses: it is stored out of line
    lake = f"file://{tmp_path}/lake"
    _run(pg_db, lake, tmp_path, settings)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("UPDATE docs SET n = n + 10 WHERE id = 1")
    _run(pg_db, lake, tmp_path, settings)
    docs = read_lake(
        lake, settings, keys=["id"], columns=["id", "n", "body"], parse={"id": int, "n": int}
    )["public.docs"]
    with psycopg.connect(pg_db) as conn:
        source = conn.execute("SELECT id, n, body FROM docs ORDER BY id").fetchall()
    [cdc] = docs.cdc
    text = (tmp_path / "lake" / cdc).read_text()
    marked = "NOSUP" in str(settings)
    assert text == ('"U",1,11,NOSUP\n' if marked else '"U",1,11,\n')
    assert docs.op_rows("id", "n", "body") == [("U", 1, 11, NOT_SENT if marked else None)]
    folded = [(r["id"], r["n"], r["body"]) for r in docs.rows]
    assert folded == (source if marked else [(1, 11, None), source[1]])
