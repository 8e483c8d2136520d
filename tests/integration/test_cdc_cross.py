"""CDC between engines: after the changes, the target equals a fresh full load of the
source into the same engine (so CDC and full load carry every value the same way)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.engine.task import run_task
from opendms.state import StateStore

PG_SETUP = """
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2), qty bigint,
  ok boolean, born date, at timestamp, atz timestamptz, ratio double precision,
  raw bytea, doc jsonb, tags text[], span interval, code uuid);
INSERT INTO items SELECT g, 'item ' || g || ' ✓', g * 1.25, g * 1000000000::bigint, g % 2 = 0,
  date '2024-01-01' + g, timestamp '2024-01-01 10:00:00.123456' + g * interval '1 min',
  timestamptz '2024-01-01 10:00+02' + g * interval '1 hour', g / 7.0, '\\x00ff'::bytea,
  jsonb_build_object('g', g), ARRAY['a', g::text], g * interval '1 day 2 hours',
  md5(g::text)::uuid
  FROM generate_series(1, 50) g;
"""
PG_CHANGES = [
    "INSERT INTO items VALUES (100, 'new 😀', 99.99, -5, true, '1999-12-31', "
    "'2020-02-29 23:59:59.999999', '2020-02-29 23:59:59+05:30', 1e-300, '\\x', '{\"a\": [1]}',"
    " ARRAY[NULL, 'x'], '1 year 2 mons 3 days 04:05:06.5', gen_random_uuid())",
    "INSERT INTO items (id) VALUES (101)",
    "UPDATE items SET price = price * 2, name = NULL, doc = '{}' WHERE id <= 10",
    "UPDATE items SET id = 1000 WHERE id = 20",
    "DELETE FROM items WHERE id BETWEEN 30 AND 35",
    "BEGIN; UPDATE items SET qty = 1 WHERE id = 100; DELETE FROM items WHERE id = 101; COMMIT",
]


def _task(name: str, source: str, target: str, mtype: str) -> Any:
    return task_from_dict(
        {"name": name, "source": source, "target": target, "migration_type": mtype},
        where="test",
    )


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    parsed = EndpointURL.parse(url)
    if parsed.scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        conn.close()
        return rows
    if parsed.scheme == "mysql":
        conn = pymysql.connect(
            host=parsed.host,
            port=parsed.port or 3306,
            user=parsed.user,
            password=str(parsed.password),
            database=parsed.database,
        )
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table} ORDER BY 1")
            return list(cur.fetchall())
    with psycopg.connect(url) as pg:
        return pg.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def _cdc_equals_full_load(
    source: str,
    target: str,
    reference: str,
    changes: list[str],
    run_changes: Any,
    tmp_path: Path,
    table: str,
) -> None:
    store = StateStore(tmp_path / "state.db")
    spec = _task("cdc", source, target, "full-load-and-cdc")
    run_task(spec, store)
    run_changes(changes)
    run_task(spec, store)
    run_task(_task("ref", source, reference, "full-load"), store)
    got, want = _rows(target, table), _rows(reference, table)
    assert len(got) == len(want) > 0
    assert got == want


def _pg_changes(url: str) -> Any:
    def run(changes: list[str]) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for sql in changes:
                conn.execute(sql)

    return run


@pytest.fixture
def pg_source(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(PG_SETUP)
    return pg_db


def test_pg_to_sqlite(pg_source: str, tmp_path: Path) -> None:
    _cdc_equals_full_load(
        pg_source,
        f"sqlite:///{tmp_path}/t.db",
        f"sqlite:///{tmp_path}/ref.db",
        PG_CHANGES,
        _pg_changes(pg_source),
        tmp_path,
        "items",
    )


def test_pg_to_mysql(pg_source: str, mysql_db: str, mysql_target_db: str, tmp_path: Path) -> None:
    _cdc_equals_full_load(
        pg_source,
        mysql_db,
        mysql_target_db,
        PG_CHANGES,
        _pg_changes(pg_source),
        tmp_path,
        "items",
    )
